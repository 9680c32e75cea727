//! The pre-screen report (`GET /api/v1/orders/{id}/prescreen`) on a real plant: an order
//! whose program fits no machine, whose material is short and whose due date is past is
//! reported field by field, and its flags are those recorded at submission; a good order
//! gets a clean report with its critical path.

mod common;

use common::{BRACKET_SPEC, TestDb, TestPlant, plant_config};
use serde_json::{Value, json};

/// 60 coasters cut from a 700 x 90 mm move (the lasers are 600 x 400), drawing 20 sheets a
/// run (10 runs: 200 sheets, 100 in stock), due long ago, with a run time shorter than the
/// program's own moves.
const OVERSIZED_SPEC: &str = r#"spec_version = 1
product = "Wide coaster"
maker = "coaster-co"
quantity = 60
priority = "standard"
due = "2020-01-01"

[[steps]]
id = "cut"
capability = "laser"
program = "programs/wide.nc"
units_per_run = 6
run_seconds = 30
materials = [{ material = "plywood-birch-6mm", per_run = 20 }]
"#;

const WIDE_PROGRAM: &str = "G21\nG90\nG0 X0 Y0\nM4 S800\nG1 X700 F1200\nG1 Y90\nG1 X0\nG1 Y0\nM5\n";

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_that_does_not_fit_lacks_material_and_misses_its_due_date() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, &plant_config(1.0, 0.0)).await;
    let client = &plant.client;
    let (status, submitted) = client
        .post(
            "/api/v1/orders",
            json!({ "spec_toml": OVERSIZED_SPEC, "source_name": "wide.toml",
                    "programs": { "programs/wide.nc": WIDE_PROGRAM } }),
        )
        .await;
    assert_eq!(status, 201, "{submitted}");
    let order = &submitted["order"];
    let id = order["id"].as_str().unwrap();

    let screen = client.ok(&format!("/api/v1/orders/{id}/prescreen")).await;
    let report = &screen["report"];
    assert_eq!(screen["order_id"], id);
    assert!(
        report["spec_toml"]
            .as_str()
            .unwrap()
            .contains(r#"product = "Wide coaster""#)
    );
    assert_eq!(report["quantity"]["within_policy"], true);
    // 30 s declared, but the program's moves alone take longer: the checker's warning.
    assert!(
        report["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .starts_with("steps[0].run_seconds: 30 s declared")),
        "{report}"
    );

    let programs = report["programs"].as_array().unwrap();
    assert_eq!(programs.len(), 1);
    assert_eq!(programs[0]["name"], "programs/wide.nc");
    assert_eq!(programs[0]["bytes"], WIDE_PROGRAM.len());
    assert_eq!(programs[0]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(programs[0]["size_mm"], json!([700.0, 90.0, 0.0]));

    // Both lasers are capable, neither fits: 100 mm too long along X; the sim driver takes it.
    let step = &report["steps"][0];
    assert_eq!(step["runs"], 10);
    assert_eq!(step["lanes"], 0);
    let machines = step["machines"].as_array().unwrap();
    let ids: Vec<&str> = machines
        .iter()
        .map(|m| m["machine_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["laser-1", "laser-2"]);
    for machine in machines {
        assert_eq!(machine["fits"], false);
        assert_eq!(machine["driver"], "sim");
        assert!(
            (number(&machine["excess_mm"][0]) - 100.0).abs() < 1e-3,
            "{machine}"
        );
        assert_eq!(number(&machine["excess_mm"][1]), 0.0);
        assert_eq!(machine["driver_refusal"], Value::Null);
    }

    // 10 runs x 20 sheets against the 100 in common stock.
    let material = &report["materials"][0];
    assert_eq!(material["material"], "plywood-birch-6mm");
    assert_eq!(number(&material["needed"]), 200.0);
    assert_eq!(number(&material["available"]), 100.0);
    assert_eq!(material["accounts"][0]["account"], "ply6@common");
    assert_eq!(material["accounts"][0]["owner"], "common");

    // No lane fits, so the estimate counts one: 10 x 30 s.
    let timing = &report["timing"];
    assert_eq!(timing["critical_path"], json!(["cut"]));
    assert_eq!(number(&timing["critical_seconds"]), 300.0);
    assert!(number(&timing["slack_seconds"]) < 0.0);
    assert_eq!(timing["due"], "2020-01-01T23:59:59.999Z");

    let flags: Vec<&str> = screen["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(flags.len(), 3, "{flags:?}");
    assert!(flags[0].contains("larger than every 'laser' machine's envelope"));
    assert!(flags[1].starts_with("material short: plywood-birch-6mm needs 200, 100 available"));
    assert!(flags[2].starts_with("due date 2020-01-01T23:59:59.999Z is not reachable"));
    // The same function made the flags recorded at submission.
    assert_eq!(order["prescreen"], screen["flags"]);

    let (status, missing) = client.get("/api/v1/orders/ord-999999/prescreen").await;
    assert_eq!(status, 404, "{missing}");
    plant.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_order_has_a_clean_report_with_its_critical_path() {
    let db = TestDb::sqlite().await;
    let plant = TestPlant::start(&db, &plant_config(1.0, 0.0)).await;
    let order = plant.client.submit_file(BRACKET_SPEC).await;
    let id = order["id"].as_str().unwrap();
    let screen = plant
        .client
        .ok(&format!("/api/v1/orders/{id}/prescreen"))
        .await;
    let report = &screen["report"];
    assert_eq!(screen["flags"], json!([]), "{screen}");
    assert_eq!(report["programs"].as_array().unwrap().len(), 2);

    // The bar (50 runs of 1500 s over the CNC lanes, 900 s setup) is longer than the gussets,
    // so the assembly waits for it.
    let steps = report["steps"].as_array().unwrap();
    let bar = &steps[1];
    let lanes = number(&bar["lanes"]);
    assert!(lanes >= 1.0);
    assert_eq!(
        number(&bar["earliest_end_seconds"]),
        (50.0 / lanes).ceil() * 1500.0 + 900.0
    );
    let assembly = &steps[2];
    assert_eq!(assembly["machines"].as_array().unwrap().len(), 4);
    assert_eq!(assembly["machines"][0]["fits"], Value::Null);
    assert_eq!(
        number(&assembly["earliest_start_seconds"]),
        number(&bar["earliest_end_seconds"])
    );
    assert_eq!(
        report["timing"]["critical_path"],
        json!(["bar", "assembly"])
    );
    assert_eq!(steps[0]["critical"], false);
    assert_eq!(steps[1]["critical"], true);
    assert_eq!(
        number(&report["timing"]["critical_seconds"]),
        number(&assembly["earliest_end_seconds"])
    );
    let needed: Vec<(&str, f64)> = report["materials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["material"].as_str().unwrap(), number(&m["needed"])))
        .collect();
    assert_eq!(
        needed,
        [
            ("aluminium-bar-40x10", 33.0),
            ("fasteners-m4", 800.0),
            ("plywood-birch-6mm", 34.0)
        ]
    );
    plant.shutdown.cancel();
}
