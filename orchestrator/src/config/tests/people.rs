//! The people keys: calendar, operator tasks, unattended machines, maintenance, simulated
//! operators.

use super::*;

const PEOPLE: &str = r#"
[plant]
name = "test"

[simulation]
time_scale = 600
start = "2026-12-07T06:00:00+01:00"
operators = { count = 2, reaction_seconds = 30, scrap_rate = 0.02 }

[calendar]
utc_offset = "+01:00"
holidays = ["2026-12-25"]
shifts = [
  { days = ["mon", "tue", "wed", "thu", "fri"], start = "06:00", end = "14:00", operators = 2 },
  { days = ["sat"], start = "08:00", end = "12:00", operators = 1 },
]

[operator_tasks.laser]
load = { text = "Load a 6 mm birch sheet and zero Z", minutes = 4 }
unload = { text = "Remove the parts and inspect them", minutes = 3 }

[operator_tasks.fdm]
unattended = true
unattended_reason = "ejection script pushes the part off the bed"

[[machines]]
id = "laser-1"
name = "Laser"
capabilities = ["laser"]
envelope_mm = [600, 400, 20]
driver = { kind = "sim", seed = 1 }
after_hours = true
maintenance = [{ task = "clean lens", every_runs = 20, minutes = 15 }]

[[machines]]
id = "printer-1"
name = "Printer"
capabilities = ["fdm"]
envelope_mm = [200, 200, 200]
driver = { kind = "sim", seed = 2 }
"#;

#[test]
fn a_config_with_people_loads_and_says_what_they_do() {
    assert_eq!(errors(PEOPLE), Vec::<String>::new());
    let config = PlantConfig::parse("plant.toml", PEOPLE).unwrap();
    let calendar = config.calendar().expect("a calendar");
    let monday_7 = crate::clock::parse_start("2026-12-07T07:00:00+01:00").unwrap();
    assert_eq!(calendar.operators_at(monday_7), 2);
    let laser = config.operator_work(config.machine("laser-1").unwrap());
    assert_eq!(laser.load.unwrap().minutes, 4.0);
    assert_eq!(
        config
            .operator_work(config.machine("printer-1").unwrap())
            .unattended
            .as_deref(),
        Some("ejection script pushes the part off the bed")
    );
}

#[test]
fn bad_people_keys_say_what_and_where() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "\"sat\"]",
            "\"saturday\"]",
            "plant.toml:10:1: calendar.shifts[1].days[0]: 'saturday' is not a weekday",
        ),
        (
            "start = \"06:00\"",
            "start = \"25:00\"",
            "plant.toml:10:1: calendar.shifts[0].start: '25:00' is not a time of day",
        ),
        (
            "end = \"12:00\"",
            "end = \"08:00\"",
            "plant.toml:10:1: calendar.shifts[1].end: the shift ends when it starts",
        ),
        (
            "\"2026-12-25\"",
            "\"Christmas\"",
            "plant.toml:10:1: calendar.holidays[0]: 'Christmas' is not a date",
        ),
        (
            "utc_offset = \"+01:00\"",
            "utc_offset = \"CET\"",
            "plant.toml:10:1: calendar.utc_offset: 'CET' is not an offset",
        ),
        (
            "operators = 1 }",
            "operators = 0 }",
            "calendar.shifts[1].operators: a shift has at least one operator",
        ),
        (
            "unattended_reason = \"ejection script pushes the part off the bed\"",
            "",
            "plant.toml:22:1: operator_tasks.fdm.unattended_reason: unattended machines say why",
        ),
        (
            "unattended_reason = \"ejection script pushes the part off the bed\"",
            "",
            "plant.toml:35:1: machines[1].unattended_reason: an unattended machine says why",
        ),
        (
            "seed = 2 }",
            "seed = 2 }\nunattended = true\nunattended_reason = \"  \"",
            "plant.toml:35:1: machines[1].unattended_reason: an unattended machine says why",
        ),
        (
            "zero Z\", minutes = 4",
            "zero Z\", minutes = 0",
            "plant.toml:18:1: operator_tasks.laser.load.minutes: 0 minutes",
        ),
        (
            "inspect them\", minutes = 3",
            "inspect them\", minutes = -1",
            "operator_tasks.laser.unload.minutes: -1 minutes",
        ),
        (
            "after_hours = true",
            "after_hours = true\nunload = { text = \"\", minutes = 2 }",
            "plant.toml:26:1: machines[0].unload.text: say what the operator does",
        ),
        (
            "every_runs = 20, minutes = 15",
            "minutes = 15",
            "plant.toml:26:1: machines[0].maintenance[0].every_runs: maintenance needs an interval",
        ),
        (
            "every_runs = 20, minutes = 15",
            "every_hours = 0, minutes = 15",
            "machines[0].maintenance[0].every_hours: every_hours must be positive",
        ),
        (
            "every_runs = 20, minutes = 15",
            "every_runs = 20, minutes = 0",
            "machines[0].maintenance[0].minutes: 0 minutes",
        ),
        (
            "minutes = 15 }]",
            "minutes = 15 }, { task = \"clean lens\", every_hours = 8, minutes = 5 }]",
            "machines[0].maintenance[1].task: maintenance task 'clean lens' is listed twice",
        ),
        (
            "[operator_tasks.fdm]",
            "[operator_tasks.cnc-router]\nunload = { text = \"Vacuum\", minutes = 2 }\n\n[operator_tasks.fdm]",
            "plant.toml:22:1: operator_tasks.cnc-router: no machine has the capability 'cnc-router'",
        ),
        (
            "start = \"2026-12-07T06:00:00+01:00\"",
            "start = \"Monday morning\"",
            "simulation.start: 'Monday morning' is not an RFC 3339 instant",
        ),
        (
            "count = 2",
            "count = 0",
            "simulation.operators.count: simulated operators need at least one",
        ),
        (
            "scrap_rate = 0.02",
            "scrap_rate = 1.5",
            "simulation.operators.scrap_rate: scrap_rate must be in [0, 1)",
        ),
        (
            "reaction_seconds = 30",
            "reaction_seconds = -1",
            "simulation.operators.reaction_seconds: reaction_seconds must be zero or more",
        ),
        (
            "time_scale = 600",
            "time_scale = 0",
            "simulation.time_scale: time_scale must be positive",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(PEOPLE.contains(from), "{from:?} is not in the config");
        let got = errors(&PEOPLE.replacen(from, to, 1));
        assert!(
            got.iter().any(|e| e.contains(expected)),
            "replacing {from:?} by {to:?}: expected an error containing {expected:?}, got {got:?}"
        );
    }
}

#[test]
fn after_hours_without_a_calendar_is_fine() {
    let text = GOOD.replacen("seed = 1 }", "seed = 1 }\nafter_hours = true", 1);
    assert_eq!(errors(&text), Vec::<String>::new());
    assert!(
        PlantConfig::parse("plant.toml", &text)
            .unwrap()
            .calendar()
            .is_none()
    );
}
