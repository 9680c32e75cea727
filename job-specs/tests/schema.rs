//! The committed `batch-spec.schema.json` is what the types generate, and it accepts the examples.

use std::path::Path;

use microfab_job_specs::{BatchSpec, check_file, json_schema};

const SCHEMA_FILE: &str = "batch-spec.schema.json";

#[test]
fn committed_schema_matches_the_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SCHEMA_FILE);
    let generated = json_schema();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
    }
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_default())
            .unwrap_or_default();
    assert!(
        committed == generated,
        "{SCHEMA_FILE} is out of date; regenerate it with:\n  UPDATE_SCHEMA=1 cargo test -p microfab-job-specs --test schema"
    );
}

#[test]
fn schema_describes_the_format() {
    let schema = json_schema();
    let properties = &schema["properties"];
    assert_eq!(properties["quantity"]["maximum"], 10000);
    assert_eq!(properties["quantity"]["minimum"], 1);
    assert_eq!(schema["additionalProperties"], false);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key.as_str().unwrap())
        .collect();
    for key in [
        "spec_version",
        "product",
        "maker",
        "quantity",
        "priority",
        "due",
        "steps",
    ] {
        assert!(required.contains(&key), "{key} not required");
    }
    let step = &schema["$defs"]["Step"];
    assert_eq!(step["additionalProperties"], false);
    assert_eq!(step["properties"]["run_seconds"]["exclusiveMinimum"], 0);
    assert!(
        step["properties"]["capability"]["pattern"]
            .as_str()
            .unwrap()
            .contains("manual:")
    );
}

#[test]
fn checked_examples_round_trip_through_json() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for entry in std::fs::read_dir(examples).unwrap() {
        let folder = entry.unwrap().path();
        let name = folder.file_name().unwrap().to_str().unwrap().to_owned();
        let spec = check_file(&folder.join(format!("{name}.toml")))
            .unwrap()
            .spec;
        let json = serde_json::to_string(&spec).unwrap();
        let back: BatchSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec, "{name}");
    }
}
