use super::*;

const GOOD: &str = r#"
[plant]
name = "test"

[[machines]]
id = "laser-1"
name = "Laser"
capabilities = ["laser"]
envelope_mm = [600, 400, 20]
driver = { kind = "sim", seed = 1 }

[[materials]]
id = "ply@common"
material = "plywood-birch-6mm"
unit = "sheet"
owner = "common"
origin = "local"
on_hand = 10
"#;

fn errors(text: &str) -> Vec<String> {
    match PlantConfig::parse("plant.toml", text) {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn a_good_config_loads() {
    assert_eq!(errors(GOOD), Vec::<String>::new());
}

#[test]
fn bad_configs_say_what_and_where() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "name = \"Laser\"",
            "name = \"Laser\"\nnmae = \"x\"",
            "plant.toml:8:1: unknown field `nmae`",
        ),
        (
            "capabilities = [\"laser\"]",
            "capabilities = [\"lazer\"]",
            "plant.toml:5:1: machines[0].capabilities[0]: unknown capability 'lazer'",
        ),
        (
            "envelope_mm = [600, 400, 20]",
            "envelope_mm = [600, -1, 20]",
            "machines[0].envelope_mm: every envelope dimension",
        ),
        (
            "seed = 1 }",
            "seed = 1, scrap_rate = 2.0 }",
            "machines[0].driver.scrap_rate: scrap_rate must be in [0, 1)",
        ),
        (
            "kind = \"sim\"",
            "kind = \"telnet\"",
            "unknown variant `telnet`",
        ),
        (
            "on_hand = 10",
            "on_hand = -3",
            "plant.toml:18:11: -3 is negative",
        ),
        (
            "[plant]\nname = \"test\"",
            "[plant]\nname = \"test\"\nlisten = \"nowhere\"",
            "plant.listen: 'nowhere' is not an address:port",
        ),
    ];
    for (from, to, expected) in cases {
        let text = GOOD.replacen(from, to, 1);
        let got = errors(&text);
        assert!(
            got.iter().any(|e| e.contains(expected)),
            "replacing {from:?} by {to:?}: expected an error containing {expected:?}, got {got:?}"
        );
    }
}

/// Each driver kind checks its own table; problems name the machine's line and the field.
#[test]
fn driver_tables_are_checked_by_their_kind() {
    let sim = "driver = { kind = \"sim\", seed = 1 }";
    let cases: &[(&str, &str)] = &[
        (
            "driver = { kind = \"sim\", time_scale = 0.0 }",
            "plant.toml:5:1: machines[0].driver.time_scale: time_scale must be positive",
        ),
        (
            "driver = { kind = \"sim\", failure_rate = 1.0 }",
            "plant.toml:5:1: machines[0].driver.failure_rate: failure_rate must be in [0, 1)",
        ),
        (
            "driver = { kind = \"sim\", sed = 1 }",
            "plant.toml:10:10: unknown field `sed`, expected one of `seed`, `time_scale`, `jitter`, `failure_rate`, `scrap_rate`",
        ),
        (
            "driver = { kind = \"manual\", port = \"/dev/ttyUSB0\" }",
            "plant.toml:10:10: unknown field `port`, there are no fields",
        ),
        (
            "driver = { kind = \"manual\" }\nresume_interrupted = true",
            "plant.toml:5:1: machines[0].resume_interrupted: the manual driver cannot resume a run from a line; only marlin can",
        ),
        (
            "driver = { kind = \"grbl\", port = \" \" }",
            "plant.toml:5:1: machines[0].driver: port is empty",
        ),
        (
            "driver = { kind = \"grbl\", port = \"/dev/ttyUSB0\", rx_buffer = 64 }",
            "plant.toml:5:1: machines[0].driver: rx_buffer (64) must hold a full line (line_buffer 80)",
        ),
        (
            "driver = { kind = \"grbl\", port = \"/dev/ttyUSB0\" }\nresume_interrupted = true",
            "plant.toml:5:1: machines[0].resume_interrupted: the grbl driver cannot resume a run from a line; only marlin can",
        ),
        (
            "driver = { kind = \"marlin\", port = \"\" }",
            "plant.toml:5:1: machines[0].driver: port is empty",
        ),
        (
            "driver = { kind = \"marlin\", port = \"/dev/ttyACM0\", in_flight = 0 }",
            "plant.toml:5:1: machines[0].driver: in_flight must be at least 1",
        ),
    ];
    for (driver, expected) in cases {
        let got = errors(&GOOD.replacen(sim, driver, 1));
        assert_eq!(got, vec![expected.to_string()], "{driver}");
    }
}

#[test]
fn two_machines_on_one_port_are_refused() {
    let machines = GOOD.find("[[machines]]").unwrap();
    let materials = GOOD.find("[[materials]]").unwrap();
    let machine = &GOOD[machines..materials];
    let on_port = |id: &str, kind: &str| {
        machine.replace("laser-1", id).replace(
            "driver = { kind = \"sim\", seed = 1 }",
            &format!("driver = {{ kind = \"{kind}\", port = \"/dev/ttyUSB0\" }}"),
        )
    };
    let text = format!(
        "{}{}{}{}",
        &GOOD[..machines],
        on_port("laser-1", "grbl"),
        on_port("printer-1", "marlin"),
        &GOOD[materials..]
    );
    assert_eq!(
            errors(&text),
            vec![
                "plant.toml:12:1: machines[1].driver.port: port '/dev/ttyUSB0' is already used by machine 'laser-1'"
                    .to_string()
            ]
        );
}

#[test]
fn what_each_driver_kind_supports() {
    let machine = |driver: &str, resume: &str| {
        let text = GOOD.replacen(
            "driver = { kind = \"sim\", seed = 1 }",
            &format!("driver = {driver}\n{resume}"),
            1,
        );
        let config = PlantConfig::parse("plant.toml", &text).unwrap();
        config.machine("laser-1").unwrap().clone()
    };
    let grbl = "{ kind = \"grbl\", port = \"/dev/ttyUSB0\", line_buffer = 10 }";
    let marlin = "{ kind = \"marlin\", port = \"/dev/ttyACM0\" }";
    let sim = "{ kind = \"sim\" }";
    let manual = "{ kind = \"manual\" }";
    // (driver, resume_interrupted line, kind, resumes, state survives a restart)
    let cases = [
        (sim, "", "sim", false, false),
        (manual, "", "manual", false, false),
        (grbl, "", "grbl", false, true),
        (marlin, "", "marlin", true, true),
        (marlin, "resume_interrupted = false", "marlin", false, true),
    ];
    for (driver, resume, kind, resumes, survives) in cases {
        let m = machine(driver, resume);
        assert_eq!(m.driver.kind(), kind);
        assert_eq!(m.resumes_interrupted(), resumes, "{driver} {resume}");
        assert_eq!(m.driver.can_resume(), kind == "marlin");
        assert_eq!(m.driver.machine_state_survives_restart(), survives);
    }
    let long_line = "G1 X10 Y10 ; a comment the preflight strips\nG1 X100.000 Y100.000\n";
    assert_eq!(machine(sim, "").driver.preflight(long_line), Ok(()));
    assert_eq!(machine(manual, "").driver.preflight("*"), Ok(()));
    assert!(
        machine(grbl, "")
            .driver
            .preflight(long_line)
            .unwrap_err()
            .contains("line 2"),
    );
    assert_eq!(
        machine(marlin, "").driver.preflight("G1 X1*5"),
        Err("program line 1: contains '*', which Marlin reads as the checksum marker".into())
    );
}

#[test]
fn every_semantic_error_is_reported_at_once() {
    let text = format!("{GOOD}\n{}", &GOOD[GOOD.find("[[machines]]").unwrap()..])
        .replace("envelope_mm = [600, 400, 20]", "envelope_mm = [0, 400, 20]");
    let got = errors(&text);
    assert!(got.iter().any(|e| e.contains("used twice")), "{got:?}");
    assert!(got.iter().any(|e| e.contains("listed twice")), "{got:?}");
    assert_eq!(
        got.iter().filter(|e| e.contains("envelope")).count(),
        2,
        "{got:?}"
    );
}

mod metrics;
mod people;
