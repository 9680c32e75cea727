//! GRBL 1.1's numbered replies, with the firmware's own meaning (from its interface
//! documentation, `doc/csv/error_codes_en_US.csv` and `alarm_codes_en_US.csv`).

use std::fmt;

/// `error:N`: a line or command the firmware rejected; it was not executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrblError(pub u16);

/// `ALARM:N`: the machine stopped and locked out motion until an operator unlocks or homes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrblAlarm(pub u16);

const ERRORS: &[(u16, &str)] = &[
    (
        1,
        "Expected command letter: G-code words consist of a letter and a value. Letter was not found.",
    ),
    (
        2,
        "Bad number format: Missing the expected G-code word value or numeric value format is not valid.",
    ),
    (
        3,
        "Invalid statement: Grbl '$' system command was not recognized or supported.",
    ),
    (
        4,
        "Value < 0: Negative value received for an expected positive value.",
    ),
    (
        5,
        "Setting disabled: Homing cycle failure. Homing is not enabled via settings.",
    ),
    (
        6,
        "Value < 3 usec: Minimum step pulse time must be greater than 3usec.",
    ),
    (
        7,
        "EEPROM read fail. Using defaults: An EEPROM read failed. Auto-restoring affected EEPROM to default values.",
    ),
    (
        8,
        "Not idle: Grbl '$' command cannot be used unless Grbl is IDLE. Ensures smooth operation during a job.",
    ),
    (
        9,
        "G-code lock: G-code commands are locked out during alarm or jog state.",
    ),
    (
        10,
        "Homing not enabled: Soft limits cannot be enabled without homing also enabled.",
    ),
    (
        11,
        "Line overflow: Max characters per line exceeded. Received command line was not executed.",
    ),
    (
        12,
        "Step rate > 30kHz: Grbl '$' setting value cause the step rate to exceed the maximum supported.",
    ),
    (
        13,
        "Check Door: Safety door detected as opened and door state initiated.",
    ),
    (
        14,
        "Line length exceeded: Build info or startup line exceeded EEPROM line length limit. Line not stored.",
    ),
    (
        15,
        "Travel exceeded: Jog target exceeds machine travel. Jog command has been ignored.",
    ),
    (
        16,
        "Invalid jog command: Jog command has no '=' or contains prohibited g-code.",
    ),
    (17, "Setting disabled: Laser mode requires PWM output."),
    (
        20,
        "Unsupported command: Unsupported or invalid g-code command found in block.",
    ),
    (
        21,
        "Modal group violation: More than one g-code command from same modal group found in block.",
    ),
    (
        22,
        "Undefined feed rate: Feed rate has not yet been set or is undefined.",
    ),
    (23, "G-code command in block requires an integer value."),
    (
        24,
        "More than one g-code command that requires axis words found in block.",
    ),
    (25, "Repeated g-code word found in block."),
    (
        26,
        "No axis words found in block for g-code command or current modal state which requires them.",
    ),
    (27, "Line number value is invalid."),
    (28, "G-code command is missing a required value word."),
    (29, "G59.x work coordinate systems are not supported."),
    (30, "G53 only allowed with G0 and G1 motion modes."),
    (
        31,
        "Axis words found in block when no command or current modal state uses them.",
    ),
    (
        32,
        "G2 and G3 arcs require at least one in-plane axis word.",
    ),
    (33, "Motion command target is invalid."),
    (34, "Arc radius value is invalid."),
    (
        35,
        "G2 and G3 arcs require at least one in-plane offset word.",
    ),
    (36, "Unused value words found in block."),
    (
        37,
        "G43.1 dynamic tool length offset is not assigned to configured tool length axis.",
    ),
    (38, "Tool number greater than max supported value."),
];

const ALARMS: &[(u16, &str)] = &[
    (
        1,
        "Hard limit: Hard limit has been triggered. Machine position is likely lost due to sudden halt. Re-homing is highly recommended.",
    ),
    (
        2,
        "Soft limit: G-code motion target exceeds machine travel. Machine position retained. Alarm may be safely unlocked.",
    ),
    (
        3,
        "Abort during cycle: Reset while in motion. Machine position is likely lost due to sudden halt. Re-homing is highly recommended.",
    ),
    (
        4,
        "Probe fail: Probe is not in the expected initial state before starting probe cycle when G38.2 and G38.3 is not triggered and G38.4 and G38.5 is triggered.",
    ),
    (
        5,
        "Probe fail: Probe did not contact the workpiece within the programmed travel for G38.2 and G38.4.",
    ),
    (6, "Homing fail: The active homing cycle was reset."),
    (
        7,
        "Homing fail: Safety door was opened during homing cycle.",
    ),
    (
        8,
        "Homing fail: Pull off travel failed to clear limit switch. Try increasing pull-off setting or check wiring.",
    ),
    (
        9,
        "Homing fail: Could not find limit switch within search distances. Try increasing max travel, decreasing pull-off distance, or check wiring.",
    ),
];

fn lookup(table: &[(u16, &'static str)], code: u16) -> Option<&'static str> {
    table
        .iter()
        .find(|(number, _)| *number == code)
        .map(|(_, meaning)| *meaning)
}

impl GrblError {
    /// GRBL's description, or `None` for a code GRBL 1.1 does not define (other firmwares,
    /// e.g. grblHAL, define more).
    pub fn meaning(self) -> Option<&'static str> {
        lookup(ERRORS, self.0)
    }
}

impl GrblAlarm {
    pub fn meaning(self) -> Option<&'static str> {
        lookup(ALARMS, self.0)
    }
}

impl fmt::Display for GrblError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let meaning = self.meaning().unwrap_or("code not defined by GRBL 1.1");
        write!(f, "error:{} ({meaning})", self.0)
    }
}

impl fmt::Display for GrblAlarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let meaning = self.meaning().unwrap_or("code not defined by GRBL 1.1");
        write!(f, "ALARM:{} ({meaning})", self.0)
    }
}

impl std::error::Error for GrblError {}
impl std::error::Error for GrblAlarm {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_code_has_a_meaning() {
        let defined: Vec<u16> = (1..=38)
            .filter(|&c| GrblError(c).meaning().is_some())
            .collect();
        let expected: Vec<u16> = (1..=17).chain(20..=38).collect();
        assert_eq!(defined, expected);
        assert!((1..=9).all(|c| GrblAlarm(c).meaning().is_some()));
        assert_eq!(GrblAlarm(10).meaning(), None);
    }

    #[test]
    fn display_carries_the_code_and_meaning() {
        assert_eq!(
            GrblError(22).to_string(),
            "error:22 (Undefined feed rate: Feed rate has not yet been set or is undefined.)"
        );
        assert!(GrblAlarm(1).to_string().starts_with("ALARM:1 (Hard limit:"));
        assert_eq!(
            GrblError(70).to_string(),
            "error:70 (code not defined by GRBL 1.1)"
        );
    }
}
