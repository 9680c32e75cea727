//! `[metrics]`: who may scrape `/metrics` without an account.

use super::*;

#[test]
fn a_loopback_peer_may_scrape_unless_the_config_says_no() {
    let config = PlantConfig::parse("plant.toml", GOOD).unwrap();
    assert!(config.metrics.allow_localhost);
    let off = format!("{GOOD}\n[metrics]\nallow_localhost = false\n");
    let config = PlantConfig::parse("plant.toml", &off).unwrap();
    assert!(!config.metrics.allow_localhost);
}

#[test]
fn a_wrong_metrics_key_or_value_names_its_line() {
    let lines = GOOD.lines().count();
    let typo = format!("{GOOD}\n[metrics]\nallow_local_host = false\n");
    let got = errors(&typo);
    assert!(
        got.iter().any(|e| e.contains(&format!("plant.toml:{}:1: unknown field `allow_local_host`", lines + 3))),
        "{got:?}"
    );
    let wrong_type = format!("{GOOD}\n[metrics]\nallow_localhost = \"no\"\n");
    let got = errors(&wrong_type);
    assert!(
        got.iter().any(|e| e.contains(&format!("plant.toml:{}:", lines + 3)) && e.contains("bool")),
        "{got:?}"
    );
}
