//! Line framing: programs stripped and checked, lines numbered and checksummed.

/// Marlin's `MAX_CMD_SIZE`: a line longer than this, framing included, is cut by the firmware.
pub const MAX_CMD_SIZE: usize = 96;

/// Commands that may legitimately keep the printer silent for minutes.
const LONG_COMMANDS: [&str; 17] = [
    "M109", "M190", "M191", "M400", "M303", "M600", "M0", "M1", "M226", "M116", "M48", "G4", "G28",
    "G29", "G34", "G35", "G76",
];

/// XOR of all bytes, as Marlin computes it over everything before `*`.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |sum, byte| sum ^ byte)
}

/// `N<number> <command>*<checksum>`, without the newline.
pub fn frame(number: u64, command: &str) -> String {
    let body = format!("N{number} {command}");
    let sum = checksum(body.as_bytes());
    format!("{body}*{sum}")
}

/// A program line without its `;` comment and surrounding blanks; `None` if nothing is left.
pub fn strip(line: &str) -> Option<&str> {
    let code = line.split(';').next().unwrap_or("").trim();
    (!code.is_empty()).then_some(code)
}

/// The command word, upper-cased: `g1 x5` → `G1`.
pub fn command_word(line: &str) -> String {
    line.split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

pub fn is_long_command(line: &str) -> bool {
    LONG_COMMANDS.contains(&command_word(line).as_str())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    #[error("the program has no commands")]
    Empty,
    #[error("program line {line}: {reason}")]
    BadLine { line: usize, reason: String },
}

/// One command of a prepared program, with the line of the submitted file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramLine {
    /// 1-based line in the program file.
    pub line: u32,
    pub text: String,
}

/// Strip comments and blank lines and check that each line can be framed for Marlin.
pub fn prepare_program(text: &str) -> Result<Vec<ProgramLine>, ProgramError> {
    let mut lines = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let Some(code) = strip(raw) else { continue };
        let bad = |reason: &str| ProgramError::BadLine {
            line: index + 1,
            reason: reason.to_string(),
        };
        if code.contains('*') {
            return Err(bad(
                "contains '*', which Marlin reads as the checksum marker",
            ));
        }
        if code.bytes().any(|b| b.is_ascii_control()) {
            return Err(bad("contains a control character"));
        }
        let framed = frame(lines.len() as u64 + 1, code).len() + 1;
        if framed > MAX_CMD_SIZE - 1 {
            return Err(bad(&format!(
                "{framed} bytes with line number and checksum, Marlin reads at most {}",
                MAX_CMD_SIZE - 1
            )));
        }
        lines.push(ProgramLine {
            line: (index + 1) as u32,
            text: code.to_string(),
        });
    }
    if lines.is_empty() {
        return Err(ProgramError::Empty);
    }
    Ok(lines)
}
