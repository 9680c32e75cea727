//! A generated plant of many simulated machines, for measurements at fleet scale (the scrape
//! cost here, the fleet board in `tests/browser.rs`).

/// A plant config named `name` of `machines` simulated machines of the bench bracket's three
/// kinds (laser, CNC, manual assembly) in that proportion, machine seconds running
/// `time_scale` times wall time, with stock for thousands of brackets.
pub fn fleet_config(name: &str, machines: usize, time_scale: f64) -> String {
    let mut text =
        format!("[plant]\nname = \"{name}\"\n\n[simulation]\ntime_scale = {time_scale}\n");
    let kinds: &[(&str, &str, [u32; 3])] = &[
        ("laser", "laser", [600, 400, 20]),
        ("router", "cnc-3axis", [1200, 800, 120]),
        ("assembly", "manual:assembly", [2000, 1000, 1000]),
    ];
    for i in 0..machines {
        let (prefix, capability, [x, y, z]) = kinds[i % kinds.len()];
        let number = i / kinds.len() + 1;
        text.push_str(&format!(
            "\n[[machines]]\nid = \"{prefix}-{number}\"\nname = \"{prefix} {number}\"\n\
             capabilities = [\"{capability}\"]\nenvelope_mm = [{x}, {y}, {z}]\n\
             driver = {{ kind = \"sim\", seed = {seed}, scrap_rate = 0.0 }}\n",
            seed = 100 + i
        ));
    }
    for (id, material, unit, on_hand) in [
        ("ply6@common", "plywood-birch-6mm", "sheet", 5000),
        ("albar@common", "aluminium-bar-40x10", "m", 5000),
        ("m4@common", "fasteners-m4", "piece", 100000),
    ] {
        text.push_str(&format!(
            "\n[[materials]]\nid = \"{id}\"\nmaterial = \"{material}\"\nunit = \"{unit}\"\n\
             owner = \"common\"\norigin = \"recycled\"\non_hand = {on_hand}\n"
        ));
    }
    text
}
