//! What a checked spec tells the orchestrator: resolved plan, defaults, deadlines, programs.

use std::collections::BTreeMap;
use std::path::Path;

use microfab_job_specs::{Directory, InMemory, ProgramRef, SpecFormat, check_file, check_text};

const PROGRAM: &str = "G21 G90\nG0 X0 Y0\nG1 X100 Y50 F1200\n";

fn programs() -> InMemory {
    InMemory(BTreeMap::from([
        ("a.nc".to_owned(), PROGRAM.to_owned()),
        ("b.nc".to_owned(), PROGRAM.to_owned()),
    ]))
}

/// A plan with every kind of `after`: default, explicit, empty, a join.
const PLAN: &str = r#"
spec_version = 1
product = "Plan test"
maker = "m"
quantity = 250
priority = "public-service"
due = 2027-03-31

[[steps]]
id = "sheet"
capability = "laser"
program = "a.nc"
units_per_run = 12
run_seconds = 600
materials = [{ material = "plywood-birch-6mm", per_run = 1 }, { material = "acrylic-clear-3mm", per_run = 0.25 }]

[[steps]]
id = "engrave"
capability = "laser"
program = "a.nc"
units_per_run = 24
run_seconds = 300
setup_family = "engraving"

[[steps]]
id = "bar"
capability = "cnc-3axis"
program = { opcua = "BAR_01" }
units_per_run = 4
run_seconds = 900.5
after = []

[[steps]]
id = "mill"
capability = "cnc-3axis"
program = "b.nc"
units_per_run = 7
run_seconds = 60
after = []

[[steps]]
id = "assemble"
capability = "manual:assembly"
units_per_run = 1
run_seconds = 120
after = ["engrave", "bar", "mill"]
"#;

#[test]
fn the_plan_is_resolved_with_defaults() {
    let checked = check_text("plan.toml", PLAN, SpecFormat::Toml, &programs()).unwrap();
    assert_eq!(
        checked.predecessors,
        vec![vec![], vec![0], vec![], vec![], vec![1, 2, 3]]
    );
    assert_eq!(checked.final_step, 4);
    assert_eq!(checked.topological_order(), vec![0, 1, 2, 3, 4]);
    let mut reversed = checked.clone();
    reversed.predecessors = vec![vec![1], vec![2, 3], vec![], vec![4], vec![]];
    assert_eq!(reversed.topological_order(), vec![2, 4, 3, 1, 0]);
    let runs: Vec<u32> = (0..5).map(|step| checked.runs(step)).collect();
    assert_eq!(runs, vec![21, 11, 63, 36, 250]);
    let families: Vec<String> = (0..5).map(|step| checked.setup_family(step)).collect();
    assert_eq!(
        families,
        [
            "plywood-birch-6mm",
            "engraving",
            "opcua:BAR_01",
            "b.nc",
            "assemble"
        ]
    );
    // Each G-code file is preflighted once; OPC UA programs live on the controller.
    assert_eq!(
        checked.programs.keys().collect::<Vec<_>>(),
        ["a.nc", "b.nc"]
    );
    assert_eq!(
        checked.program(0).unwrap().bounding_box.unwrap().size(),
        [100.0, 50.0, 0.0]
    );
    assert!(checked.program(2).is_none());
    assert_eq!(
        checked.spec.steps[2].program,
        Some(ProgramRef::OpcUa {
            opcua: "BAR_01".into()
        })
    );
    assert_eq!(checked.spec.steps[1].after, None);
    assert_eq!(checked.spec.steps[2].after, Some(vec![]));
}

#[test]
fn optimistic_run_times_and_vague_programs_are_flagged() {
    // a.nc moves 111.8 mm at 1200 mm/min: about 5.6 s.
    let text = PLAN.replace("run_seconds = 300", "run_seconds = 4");
    let vague = InMemory(BTreeMap::from([
        ("a.nc".to_owned(), PROGRAM.to_owned()),
        ("b.nc".to_owned(), "G0 X0 Y0\nG1 X5\n".to_owned()),
    ]));
    let checked = check_text("plan.toml", &text, SpecFormat::Toml, &vague).unwrap();
    assert_eq!(
        checked.warnings(),
        [
            "steps[1].run_seconds: 4 s declared, but a.nc alone needs about 6 s",
            "b.nc: no G20/G21 units word; millimetres assumed",
            "b.nc: line 2: feed move before any F word; timed at the rapid rate",
        ]
    );
    let sound = check_text("plan.toml", PLAN, SpecFormat::Toml, &programs()).unwrap();
    assert!(sound.warnings().is_empty(), "{:?}", sound.warnings());
}

#[test]
fn due_dates_become_deadlines() {
    let cases = [
        // A date is due at the end of that day, UTC.
        ("\"2027-03-31\"", 1_806_537_599_999),
        ("2027-03-31", 1_806_537_599_999),
        ("\"2027-03-31T17:00:00+02:00\"", 1_806_505_200_000),
        ("2027-03-31T15:00:00Z", 1_806_505_200_000),
    ];
    for (due, millis) in cases {
        let text = PLAN.replace("due = 2027-03-31", &format!("due = {due}"));
        let checked = check_text("plan.toml", &text, SpecFormat::Toml, &programs())
            .unwrap_or_else(|errors| panic!("{due}: {errors}"));
        assert_eq!(checked.spec.due_unix_millis(), millis, "{due}");
    }
}

#[test]
fn json_specs_check_like_toml_specs() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/community-bench-bracket");
    let from_toml = check_file(&folder.join("community-bench-bracket.toml")).unwrap();
    let json = serde_json::to_string_pretty(&from_toml.spec).unwrap();
    let directory = Directory::new(&folder).unwrap();
    let from_json = check_text("bracket.json", &json, SpecFormat::Json, &directory).unwrap();
    assert_eq!(from_json.spec, from_toml.spec);
    assert_eq!(from_json.predecessors, from_toml.predecessors);
    assert_eq!(from_json.programs, from_toml.programs);

    // Positions in JSON errors point at the value.
    let broken = json.replace("\"quantity\": 200", "\"quantity\": \"200\"");
    let errors = check_text("bracket.json", &broken, SpecFormat::Json, &directory).unwrap_err();
    let line = broken
        .lines()
        .position(|line| line.contains("\"quantity\""))
        .unwrap()
        + 1;
    assert_eq!(
        errors.to_string(),
        format!("bracket.json:{line}:15: quantity: expected an integer, found string \"200\"")
    );
}

/// Tiny deterministic generator for the mutation test; no need for a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(bound).unwrap()).unwrap()
    }
}

#[test]
fn no_input_makes_the_checker_panic() {
    let json = serde_json::to_string_pretty(
        &check_text("plan.toml", PLAN, SpecFormat::Toml, &programs())
            .unwrap()
            .spec,
    )
    .unwrap();
    let alphabet: Vec<char> = "[]{}\"',=.:-_ \n#0123456789aeiostux\u{e9}\u{1F600}\\"
        .chars()
        .collect();
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
    for (text, format) in [
        (PLAN.to_owned(), SpecFormat::Toml),
        (json, SpecFormat::Json),
    ] {
        // Every prefix: a spec cut short anywhere.
        for end in (0..=text.len()).filter(|&end| text.is_char_boundary(end)) {
            let _ = check_text("cut.spec", &text[..end], format, &programs());
        }
        // Random edits: replace, insert or delete characters.
        for _ in 0..1500 {
            let mut chars: Vec<char> = text.chars().collect();
            for _ in 0..1 + random.below(4) {
                let at = random.below(chars.len());
                let replacement = alphabet[random.below(alphabet.len())];
                match random.below(3) {
                    0 => chars[at] = replacement,
                    1 => chars.insert(at, replacement),
                    _ => {
                        chars.remove(at);
                    }
                }
            }
            let mutated: String = chars.into_iter().collect();
            if let Err(errors) = check_text("mutated.spec", &mutated, format, &programs()) {
                assert!(!errors.0.is_empty());
                let mut positions: Vec<(Option<usize>, Option<usize>)> = errors
                    .0
                    .iter()
                    .filter(|error| error.file.as_deref() == Some("mutated.spec"))
                    .map(|error| (error.line, error.column))
                    .collect();
                let in_order = positions.windows(2).all(|pair| pair[0] <= pair[1]);
                positions.dedup();
                assert!(
                    in_order,
                    "errors out of source order:\n{errors}\n--- input\n{mutated}"
                );
            }
        }
    }
}

#[test]
fn deeply_nested_input_is_rejected_without_overflowing_the_stack() {
    for depth in [1_000, 100_000] {
        let toml = format!(
            "spec_version = {}{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let inline_tables = format!(
            "spec_version = {}{}\n",
            "{ a = ".repeat(depth),
            "}".repeat(depth)
        );
        let json = format!(
            "{{\"spec_version\": {}{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        for (text, format) in [
            (toml, SpecFormat::Toml),
            (inline_tables, SpecFormat::Toml),
            (json, SpecFormat::Json),
        ] {
            let errors = check_text("deep.spec", &text, format, &programs()).unwrap_err();
            assert!(!errors.0.is_empty());
        }
    }
}
