//! Specs that must be rejected, each with the errors it must produce.
//!
//! Most cases are files in `tests/malformed/`: `<case>.toml` or `<case>.json`, and next to it
//! `<case>.expected` with one expected error per line, in order:
//! `<file>:<line>:<column>: <field>: <part of the message>`. Everything up to the field must
//! match exactly; the message must contain the given text. Cases that need a file system
//! layout no repository can hold (a symbolic link out of the folder) are built in a tempdir.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use microfab_job_specs::{
    Diagnostics, Directory, InMemory, MAX_PROGRAM_BYTES, MAX_PROGRAMS_TOTAL_BYTES, SpecFormat,
    check_file, check_text,
};

fn malformed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed")
}

/// Compares rejected errors with the expectation lines described in the module docs.
fn check(outcome: Result<microfab_job_specs::CheckedSpec, Diagnostics>, expected: &str) {
    let errors = match outcome {
        Ok(spec) => panic!("accepted, expected rejection: {}", spec.source_name),
        Err(errors) => errors,
    };
    let actual: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    let expected: Vec<&str> = expected
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let matches = actual.len() == expected.len()
        && actual.iter().zip(&expected).all(|(actual, expected)| {
            let (location_and_field, fragment) = split_expectation(expected);
            actual.starts_with(location_and_field)
                && actual[location_and_field.len()..].contains(fragment)
        });
    assert!(
        matches,
        "errors differ\n--- expected\n{}\n--- actual\n{}\n",
        expected.join("\n"),
        actual.join("\n")
    );
}

/// `file:line:col: field: message` -> (`file:line:col: field: `, `message`). The field is
/// the fourth `: `-separated part; messages may contain `: ` themselves.
fn split_expectation(line: &str) -> (&str, &str) {
    let mut end = 0;
    for _ in 0..2 {
        end += line[end..].find(": ").map_or(line.len() - end, |i| i + 2);
    }
    (&line[..end.min(line.len())], line.get(end..).unwrap_or(""))
}

#[test]
fn every_malformed_file_is_rejected_as_expected() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(malformed_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| SpecFormat::from_path(path).is_some())
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let expected_path = case.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} has no {}", case.display(), expected_path.display()));
        let outcome = std::panic::catch_unwind(|| check(check_file(case), &expected));
        if let Err(panic) = outcome {
            let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
            failures.push(format!("== {}\n{message}", case.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A valid one-step spec whose program path is `program`.
fn one_step_spec(program: &str) -> String {
    format!(
        r#"spec_version = 1
product = "Test bracket"
maker = "test-maker"
quantity = 100
priority = "standard"
due = "2027-01-15"

[[steps]]
id = "cut"
capability = "laser"
program = "{program}"
units_per_run = 10
run_seconds = 600
"#
    )
}

const SMALL_PROGRAM: &str = "G21\nG90\nG0 X0 Y0\nG1 X10 F600\n";

#[cfg(unix)]
#[test]
fn a_symbolic_link_out_of_the_spec_folder_is_rejected() {
    let root = tempfile::tempdir().unwrap();
    let secret = root.path().join("secret.nc");
    std::fs::write(&secret, SMALL_PROGRAM).unwrap();
    let folder = root.path().join("spec");
    std::fs::create_dir_all(folder.join("programs")).unwrap();
    std::os::unix::fs::symlink(&secret, folder.join("programs/link.nc")).unwrap();
    // A link that stays inside the folder is fine.
    std::fs::write(folder.join("programs/real.nc"), SMALL_PROGRAM).unwrap();
    std::os::unix::fs::symlink(
        folder.join("programs/real.nc"),
        folder.join("programs/inside.nc"),
    )
    .unwrap();

    let spec_path = folder.join("linked.toml");
    std::fs::write(&spec_path, one_step_spec("programs/link.nc")).unwrap();
    check(
        check_file(&spec_path),
        "linked.toml:11:11: steps[0].program: program path 'programs/link.nc' resolves outside the spec's folder",
    );

    std::fs::write(&spec_path, one_step_spec("programs/inside.nc")).unwrap();
    let checked = check_file(&spec_path).unwrap();
    assert_eq!(checked.programs["programs/inside.nc"].text, SMALL_PROGRAM);
}

#[test]
fn uploaded_programs_are_held_to_the_same_rules() {
    let programs = InMemory(BTreeMap::from([
        ("programs/a.nc".to_owned(), SMALL_PROGRAM.to_owned()),
        ("../a.nc".to_owned(), SMALL_PROGRAM.to_owned()),
        ("/a.nc".to_owned(), SMALL_PROGRAM.to_owned()),
    ]));
    let cases = [
        ("programs/a.nc", None),
        (
            "../a.nc",
            Some(
                "api.toml:11:11: steps[0].program: program path '../a.nc' leaves the spec's folder",
            ),
        ),
        (
            "/a.nc",
            Some("api.toml:11:11: steps[0].program: program path '/a.nc' is absolute"),
        ),
        (
            "programs/b.nc",
            Some("api.toml:11:11: steps[0].program: program file 'programs/b.nc' not found"),
        ),
    ];
    for (program, expected) in cases {
        let outcome = check_text(
            "api.toml",
            &one_step_spec(program),
            SpecFormat::Toml,
            &programs,
        );
        match expected {
            None => assert!(outcome.is_ok(), "{program}: {outcome:?}"),
            Some(expected) => check(outcome, expected),
        }
    }
}

#[test]
fn oversized_programs_are_refused_before_parsing() {
    let huge = "G1 X1 F100\n".repeat(usize::try_from(MAX_PROGRAM_BYTES).unwrap() / 11 + 1);
    assert_eq!(MAX_PROGRAM_BYTES, 64 * 1024 * 1024, "the documented limit");
    let programs = InMemory(BTreeMap::from([(
        "programs/huge.nc".to_owned(),
        huge.clone(),
    )]));
    check(
        check_text(
            "api.toml",
            &one_step_spec("programs/huge.nc"),
            SpecFormat::Toml,
            &programs,
        ),
        &format!(
            "api.toml:11:11: steps[0].program: program 'programs/huge.nc' is {} bytes; the limit is 67108864 bytes",
            huge.len()
        ),
    );

    let folder = tempfile::tempdir().unwrap();
    std::fs::create_dir(folder.path().join("programs")).unwrap();
    std::fs::write(folder.path().join("programs/huge.nc"), &huge).unwrap();
    std::fs::write(
        folder.path().join("big.toml"),
        one_step_spec("programs/huge.nc"),
    )
    .unwrap();
    check(
        check_file(&folder.path().join("big.toml")),
        &format!(
            "big.toml:11:11: steps[0].program: program 'programs/huge.nc' is {} bytes",
            huge.len()
        ),
    );
    // The directory source itself works on the folder.
    let directory = Directory::new(folder.path()).unwrap();
    assert!(directory.root().is_absolute());
}

#[test]
fn a_spec_without_a_known_extension_is_refused() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("spec.yaml");
    std::fs::write(&path, "spec_version: 1\n").unwrap();
    check(
        check_file(&path),
        "spec.yaml: unknown spec format: the file name must end in .toml or .json",
    );
}

#[test]
fn programs_over_the_total_limit_are_refused_without_reading_on() {
    // Programs each under the per-program limit; the third takes the total over the per-spec one.
    let each = usize::try_from(MAX_PROGRAMS_TOTAL_BYTES).unwrap() / 2 - 1024;
    let program = format!("{SMALL_PROGRAM}{}", "\n".repeat(each - SMALL_PROGRAM.len()));
    let spec = format!(
        "{}\n[[steps]]\nid = \"engrave\"\ncapability = \"laser\"\nprogram = \"programs/b.nc\"\nunits_per_run = 10\nrun_seconds = 600\n\n[[steps]]\nid = \"mark\"\ncapability = \"laser\"\nprogram = \"programs/c.nc\"\nunits_per_run = 10\nrun_seconds = 600\n\n[[steps]]\nid = \"pack\"\ncapability = \"laser\"\nprogram = \"programs/d.nc\"\nunits_per_run = 10\nrun_seconds = 600\n",
        one_step_spec("programs/a.nc")
    );
    struct Counting(InMemory, std::cell::RefCell<Vec<String>>);
    impl microfab_job_specs::ProgramSource for Counting {
        fn read(&self, path: &str) -> Result<String, microfab_job_specs::ProgramReadError> {
            self.1.borrow_mut().push(path.to_owned());
            self.0.read(path)
        }
    }
    let programs = Counting(
        InMemory(
            ["a", "b", "c", "d"]
                .map(|name| (format!("programs/{name}.nc"), program.clone()))
                .into(),
        ),
        Default::default(),
    );
    let errors = check_text("api.toml", &spec, SpecFormat::Toml, &programs).unwrap_err();
    let messages: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    assert!(
        messages.iter().any(|m| m.contains("steps[2].program")
            && m.contains("the limit is 134217728 bytes (128 MiB) per spec")),
        "{messages:?}"
    );
    assert_eq!(
        *programs.1.borrow(),
        ["programs/a.nc", "programs/b.nc", "programs/c.nc"],
        "no program is read past the limit"
    );
}
