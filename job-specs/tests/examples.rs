//! Every example under `examples/` is a spec a maker could submit to the demo plant today.

use std::path::{Path, PathBuf};

use microfab_job_specs::{
    CheckedSpec, Directory, ProgramRef, SpecFormat, check_file, check_text, is_manual_capability,
};

/// What the demo plant has: capability, machine envelope in mm (None for manual work).
const DEMO_CAPABILITIES: &[(&str, Option<[f64; 3]>)] = &[
    ("laser", Some([600.0, 400.0, 20.0])),
    ("cnc-3axis", Some([1200.0, 800.0, 120.0])),
    ("fdm", Some([220.0, 220.0, 250.0])),
    ("pcb-mill", Some([160.0, 100.0, 30.0])),
    ("waterjet", Some([1500.0, 1000.0, 100.0])),
    ("manual:assembly", None),
    ("manual:inspection", None),
];

const DEMO_MATERIALS: &[&str] = &[
    "plywood-birch-6mm",
    "plywood-birch-18mm",
    "acrylic-clear-3mm",
    "pla-recycled",
    "petg-black",
    "fr4-copper-clad",
    "aluminium-sheet-2mm",
    "aluminium-bar-40x10",
    "steel-sheet-3mm",
    "fasteners-m4",
];

fn example_specs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut specs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|entry| {
            let folder = entry.unwrap().path();
            let name = folder.file_name().unwrap().to_str().unwrap().to_owned();
            folder.join(format!("{name}.toml"))
        })
        .collect();
    specs.sort();
    specs
}

fn checked(path: &Path) -> CheckedSpec {
    check_file(path).unwrap_or_else(|errors| panic!("{} rejected:\n{errors}", path.display()))
}

#[test]
fn there_are_at_least_five_examples_and_all_pass() {
    let specs = example_specs();
    assert!(specs.len() >= 5, "{specs:?}");
    for path in &specs {
        checked(path);
    }
}

#[test]
fn examples_only_use_what_the_demo_plant_has_and_fit_its_machines() {
    for path in example_specs() {
        let spec = checked(&path);
        let name = path.display();
        assert!((50..=500).contains(&spec.spec.quantity), "{name}: quantity");
        assert!(
            spec.spec.due.to_string().starts_with("2027-"),
            "{name}: due"
        );
        assert!(
            (2..=4).contains(&spec.spec.steps.len()),
            "{name}: step count"
        );
        for (index, step) in spec.spec.steps.iter().enumerate() {
            let envelope = DEMO_CAPABILITIES
                .iter()
                .find(|(capability, _)| *capability == step.capability)
                .unwrap_or_else(|| panic!("{name}: {} not in the demo plant", step.capability))
                .1;
            for draw in &step.materials {
                assert!(
                    DEMO_MATERIALS.contains(&draw.material.as_str()),
                    "{name}: {}",
                    draw.material
                );
            }
            if let Some(envelope) = envelope {
                let program = spec
                    .program(index)
                    .unwrap_or_else(|| panic!("{name}: {} has no G-code", step.id));
                let bounding_box = program.bounding_box.expect("programs move");
                assert!(
                    bounding_box.fits_within(envelope),
                    "{name}: {} is {:?} mm, the machine holds {envelope:?}",
                    program.path,
                    bounding_box.size()
                );
                assert!(program.lines < 2000, "{name}: {} is long", program.path);
                assert!(
                    program.unsupported_words.is_empty(),
                    "{name}: {:?}",
                    program.unsupported_words
                );
                assert!(
                    program.warnings.is_empty(),
                    "{name}: {:?}",
                    program.warnings
                );
                // The estimate ignores acceleration and heating, so a real run takes longer.
                assert!(
                    step.run_seconds >= program.estimated_seconds,
                    "{name}: {} declares {} s, the program alone takes {:.0} s",
                    step.id,
                    step.run_seconds,
                    program.estimated_seconds
                );
            } else {
                assert!(is_manual_capability(&step.capability));
                assert!(!matches!(step.program, Some(ProgramRef::GCode(_))));
            }
        }
    }
}

#[test]
fn the_demo_set_has_a_parallel_branch_joined_by_a_manual_step() {
    let joined = example_specs()
        .iter()
        .map(|path| checked(path))
        .any(|spec| {
            spec.predecessors[spec.final_step].len() >= 2
                && is_manual_capability(&spec.spec.steps[spec.final_step].capability)
        });
    assert!(joined);
}

/// The first fenced block of `language` in the README.
fn readme_block(language: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let fence = format!("```{language}\n");
    let start = readme.find(&fence).unwrap() + fence.len();
    let length = readme[start..].find("```").unwrap();
    readme[start..start + length].to_owned()
}

#[test]
fn the_readme_examples_are_valid_specs() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let cases = [
        ("toml", SpecFormat::Toml, "community-bench-bracket"),
        ("json", SpecFormat::Json, "bike-light-mount"),
    ];
    for (language, format, programs_from) in cases {
        let programs = Directory::new(examples.join(programs_from)).unwrap();
        let text = readme_block(language);
        if let Err(errors) = check_text(&format!("README.{language}"), &text, format, &programs) {
            panic!("README {language} example rejected:\n{errors}");
        }
    }
}
