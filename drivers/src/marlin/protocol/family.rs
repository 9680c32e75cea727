//! Firmware families told apart by M115's `FIRMWARE_NAME`, and the window each can take.

use super::command_word;

/// `FIRMWARE_NAME:Marlin 2.1.2 (Jun 1 2023) SOURCE_CODE_URL:...` → `Marlin 2.1.2 (Jun 1 2023)`.
pub(super) fn firmware_name(info: &str) -> String {
    let rest = info.trim_start_matches("FIRMWARE_NAME:");
    let mut name = Vec::new();
    for token in rest.split_whitespace() {
        let is_key = token.split_once(':').is_some_and(|(key, _)| {
            !key.is_empty() && key.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        });
        if is_key {
            break;
        }
        name.push(token);
    }
    name.join(" ")
}

/// The window for firmware that rejects the unnumbered tail of a cut line. Measured with 1 % of
/// lines corrupted (`microfab bench streaming`, 10,000 lines at 115,200 baud): 3 keeps the wire
/// busiest on Prusa-Firmware (0.90 of it with the lines' framing, against 0.79-0.85 for 2,
/// which idles on every round trip that takes longer than a line, and 0.84 for 4, where each
/// line error throws away more stale lines). Marlin's command queue holds 4 (`BUFSIZE`), so 3
/// unanswered lines always fit and never overrun its receive buffer.
pub const TAIL_REJECTING_WINDOW: usize = 3;

/// Marlin 1.0 and Sprinter answer `ok` for G0-G3 when they read the line into their queue
/// (`get_command`), not when they have run it: that `ok` overtakes those of the commands queued
/// ahead of it, a probe among them.
pub fn acknowledges_moves_on_read(firmware: Option<&str>) -> bool {
    let name = firmware.unwrap_or("");
    name.starts_with("Sprinter") || is_marlin_1_0(name)
}

fn is_marlin_1_0(name: &str) -> bool {
    name.starts_with("Marlin V1") && name.contains("Sprinter/grbl mashup")
}

/// G0-G3, which Marlin 1.0 acknowledges as it reads them.
pub(super) fn is_move(line: &str) -> bool {
    matches!(command_word(line).as_str(), "G0" | "G1" | "G2" | "G3")
}

/// Marlin 1.1/2.x (Prusa-Firmware-Buddy is Marlin 2) checks only lines that start with `N` and
/// runs the tail of a line cut by its receive-buffer flush (see the module documentation). Any
/// name starting with `Marlin` but Marlin 1.0's report counts: vendors' builds print any version.
pub fn runs_cut_tails(firmware: Option<&str>) -> bool {
    let name = firmware.unwrap_or("");
    (name.starts_with("Marlin") && !is_marlin_1_0(name)) || name.starts_with("Prusa-Firmware-Buddy")
}

/// The line window for a firmware identified by its `FIRMWARE_NAME`
/// ([`Protocol::firmware`](super::Protocol::firmware)): [`TAIL_REJECTING_WINDOW`] for the families
/// that reject the unnumbered tail of a line cut by their receive-buffer flush (see the module
/// documentation), 1 for Marlin 1.1/2.x, which runs it, and for anything else.
pub fn auto_line_window(firmware: Option<&str>) -> usize {
    let name = firmware.unwrap_or("");
    // Not `Prusa-Firmware-Buddy` (MK4, XL, MINI): that is Marlin 2.
    let prusa_firmware = name.starts_with("Prusa-Firmware ");
    // Early Marlin still called itself `Sprinter/grbl mashup for gen6`.
    let sprinter = name.starts_with("Sprinter");
    // Marlin 1.0.x reports `Marlin V1; Sprinter/grbl mashup for gen6`. From 1.1 on the name is
    // `Marlin <version>`, and vendors' builds of Marlin 1.1/2.x print any version there
    // (`Marlin 1.0.0 (Github)`, `Marlin V1.1.4 (...)`): the version number proves nothing.
    let marlin_1_0 = is_marlin_1_0(name);
    if prusa_firmware || sprinter || marlin_1_0 {
        TAIL_REJECTING_WINDOW
    } else {
        1
    }
}
