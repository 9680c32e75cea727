//! The G-code GRBL 1.1 accepts, and the preflight that checks a program against it before a
//! single byte is sent: a job that would stop half-way on `error:20` must never start.
//!
//! Lines are normalised the way careful senders do, to save bytes on the wire: comments
//! (`(...)` and `;...`) and all whitespace removed, letters upper-cased, `%` tape marks dropped.
//! GRBL itself strips the same things, so the firmware executes exactly what it would have
//! executed from the raw text.

use std::fmt;

/// Words GRBL 1.1 parses (`gcode.c`); anything else is `error:20`.
const WORD_LETTERS: &str = "FGIJKLMNPRSTXYZ";

/// G-codes GRBL 1.1 supports, in tenths (`G38.2` is 382).
pub const G_CODES: &[u16] = &[
    0, 10, 20, 30, 40, 100, 170, 180, 190, 200, 210, 280, 281, 300, 301, 382, 383, 384, 385, 400,
    431, 490, 530, 540, 550, 560, 570, 580, 590, 610, 800, 900, 910, 911, 920, 921, 930, 940,
];

/// M-codes GRBL 1.1 supports (M56 only with parking override compiled in; kept: harmless).
pub const M_CODES: &[u16] = &[0, 10, 20, 300, 30, 40, 50, 70, 80, 90, 560];

/// Characters GRBL takes out of the stream as real-time commands wherever they appear: inside a
/// program they would pause, resume or query the machine instead of being part of a line.
const REALTIME: &[u8] = b"?!~\x18";

/// One word of a block: a letter and its value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Word {
    pub letter: char,
    pub value: f64,
}

/// Why a normalised line cannot be parsed into words (GRBL's own error for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordError {
    /// `error:1`
    ExpectedLetter(usize),
    /// `error:2`
    BadNumber(usize),
}

/// Strip comments and whitespace and upper-case the rest. `Err` for an unclosed `(` comment.
pub fn normalize(raw: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(raw.len());
    let mut in_comment = false;
    for c in raw.chars() {
        match c {
            ')' if in_comment => in_comment = false,
            _ if in_comment => {}
            '(' => in_comment = true,
            ';' => break,
            c if c.is_whitespace() => {}
            c => out.push(c.to_ascii_uppercase()),
        }
    }
    if in_comment {
        return Err("unclosed '(' comment");
    }
    if out == "%" {
        out.clear();
    }
    Ok(out)
}

/// Split a normalised line into words.
pub fn words(line: &str) -> Result<Vec<Word>, WordError> {
    let bytes = line.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let letter = bytes[i];
        if !letter.is_ascii_uppercase() {
            return Err(WordError::ExpectedLetter(i));
        }
        let start = i + 1;
        let mut end = start;
        while end < bytes.len() && matches!(bytes[end], b'0'..=b'9' | b'.' | b'-' | b'+') {
            end += 1;
        }
        let value = line[start..end]
            .parse::<f64>()
            .map_err(|_| WordError::BadNumber(start))?;
        words.push(Word {
            letter: char::from(letter),
            value,
        });
        i = end;
    }
    Ok(words)
}

/// A code's value in tenths (`38.2` → 382), or `None` if it has finer digits.
pub fn tenths(value: f64) -> Option<u16> {
    let scaled = (value * 10.0).round();
    ((value * 10.0 - scaled).abs() < 1e-6 && (0.0..=10_000.0).contains(&scaled))
        .then_some(scaled as u16)
}

/// What GRBL would say about one normalised line, without running it: `Ok` or the reason.
pub fn check_supported(line: &str) -> Result<(), String> {
    if let Some(&byte) = line
        .as_bytes()
        .iter()
        .find(|b| REALTIME.contains(b) || !b.is_ascii_graphic())
    {
        return Err(match byte {
            b'?' | b'!' | b'~' | 0x18 => format!(
                "contains '{}', which GRBL takes as a real-time command",
                char::from(byte).escape_default()
            ),
            _ => format!("contains the byte 0x{byte:02x}, not printable ASCII"),
        });
    }
    if line.starts_with('$') {
        return Err("'$' system commands are operator actions, not program content".into());
    }
    let words = words(line).map_err(|error| match error {
        WordError::ExpectedLetter(at) => format!("expected a word letter at column {}", at + 1),
        WordError::BadNumber(at) => format!("bad number at column {}", at + 1),
    })?;
    for word in words {
        if !WORD_LETTERS.contains(word.letter) {
            return Err(format!("word '{}' is not supported by GRBL", word.letter));
        }
        let table = match word.letter {
            'G' => G_CODES,
            'M' => M_CODES,
            _ => continue,
        };
        if !tenths(word.value).is_some_and(|code| table.contains(&code)) {
            return Err(format!(
                "{}{} is not supported by GRBL",
                word.letter, word.value
            ));
        }
    }
    Ok(())
}

/// A program rejected by preflight, with every offending line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightError {
    /// `(1-based line number in the original text, problem)`.
    pub problems: Vec<(usize, String)>,
}

impl fmt::Display for PreflightError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 10;
        for (i, (line, problem)) in self.problems.iter().take(SHOWN).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "line {line}: {problem}")?;
        }
        if self.problems.len() > SHOWN {
            write!(f, "; and {} more", self.problems.len() - SHOWN)?;
        }
        Ok(())
    }
}

/// A program ready to stream: normalised lines with their line numbers in the original text,
/// and the tool changes between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedProgram {
    pub lines: Vec<String>,
    pub source_lines: Vec<usize>,
    pub tool_changes: Vec<ToolChange>,
}

/// An `M6` in the program. GRBL 1.1 has no tool changer (`M6` is `error:20`), so, like bCNC
/// and CNCjs, the sender takes it out of the stream: it lets every line before it finish, then
/// waits for the operator to change the tool (and set its length) before sending the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolChange {
    /// Index in [`PreparedProgram::lines`] of the first line sent after the change.
    pub before: usize,
    /// The last `T` word up to the `M6`, if any.
    pub tool: Option<u32>,
    pub source_line: usize,
}

/// Take an `M6` word out of a normalised line: the rest of the line, or `None` without one.
fn without_tool_change(line: &str) -> Option<String> {
    let bytes = line.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let mut end = start + 1;
        while end < bytes.len() && !bytes[end].is_ascii_uppercase() {
            end += 1;
        }
        let word = &line[start..end];
        let is_m6 =
            word.starts_with('M') && word[1..].parse::<f64>().ok().and_then(tenths) == Some(60);
        if is_m6 {
            return Some(format!("{}{}", &line[..start], &line[end..]));
        }
        start = end;
    }
    None
}

/// The value of the last `T` word in a normalised line.
fn tool_word(line: &str) -> Option<u32> {
    words(line)
        .ok()?
        .iter()
        .rev()
        .find(|w| w.letter == 'T')
        .map(|w| w.value as u32)
}

/// Normalise a program and check every line; all problems are reported, not just the first.
/// `line_buffer` is GRBL's `LINE_BUFFER_SIZE` (80): a line may hold one character less.
pub fn preflight(text: &str, line_buffer: usize) -> Result<PreparedProgram, PreflightError> {
    let mut program = PreparedProgram {
        lines: Vec::new(),
        source_lines: Vec::new(),
        tool_changes: Vec::new(),
    };
    let mut tool = None;
    let mut problems = Vec::new();
    let max_len = line_buffer.saturating_sub(1);
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = match normalize(raw) {
            Ok(line) => line,
            Err(problem) => {
                problems.push((number, problem.to_string()));
                continue;
            }
        };
        tool = tool_word(&line).or(tool);
        let line = match without_tool_change(&line) {
            Some(rest) => {
                program.tool_changes.push(ToolChange {
                    before: program.lines.len(),
                    tool,
                    source_line: number,
                });
                rest
            }
            None => line,
        };
        if line.is_empty() {
            continue;
        }
        if line.len() > max_len {
            problems.push((
                number,
                format!(
                    "{} characters after stripping, GRBL's line buffer holds {max_len}",
                    line.len()
                ),
            ));
        } else if let Err(problem) = check_supported(&line) {
            problems.push((number, problem));
        }
        program.lines.push(line);
        program.source_lines.push(number);
    }
    // A tool change after the last line changes nothing.
    let lines = program.lines.len();
    program.tool_changes.retain(|change| change.before < lines);
    if problems.is_empty() {
        Ok(program)
    } else {
        Err(PreflightError { problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_strips_what_grbl_strips() {
        let cases = [
            ("G1 x10 (move) y2 ; done", Ok::<_, &str>("G1X10Y2")),
            ("  ", Ok("")),
            ("%", Ok("")),
            ("(only a comment)", Ok("")),
            ("G0 (open", Err("unclosed '(' comment")),
            ("m3 s1000\t", Ok("M3S1000")),
        ];
        for (raw, expected) in cases {
            assert_eq!(
                normalize(raw).as_deref().map_err(|e| *e),
                expected,
                "{raw:?}"
            );
        }
    }

    #[test]
    fn supported_codes_and_words() {
        let cases = [
            ("G0X1", true),
            ("G00X1", true),
            ("G38.2Z-5F10", true),
            ("G91.1", true),
            ("G2X1Y1I1J0F100", true),
            ("M30", true),
            ("G4P0.5", true),
            ("N10G1X1F100", true),
            ("G1X1A2", false),
            ("G41", false),
            ("M6T1", false),
            ("G38.6Z1", false),
            ("G1X1.2.3", false),
            ("X", false),
            ("1G1", false),
            ("$H", false),
            ("G1X1!", false),
            ("G1X1?", false),
        ];
        for (line, ok) in cases {
            assert_eq!(check_supported(line).is_ok(), ok, "{line}");
        }
    }

    #[test]
    fn preflight_reports_every_bad_line_with_its_number() {
        let long = format!("G1X{}", "1".repeat(80));
        let text = format!("G21\n\nG1 X1 F100 ; ok\nG41 D2\n{long}\n(unclosed\nG0 X0\n");
        let error = preflight(&text, 80).unwrap_err();
        let lines: Vec<usize> = error.problems.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [4, 5, 6]);
        assert!(
            error
                .to_string()
                .starts_with("line 4: G41 is not supported by GRBL")
        );
    }

    #[test]
    fn preflight_keeps_source_line_numbers() {
        let program = preflight("G21\n; setup\nG0 X1\n\nG1 X2 F300\n", 80).unwrap();
        assert_eq!(program.lines, ["G21", "G0X1", "G1X2F300"]);
        assert_eq!(program.source_lines, [1, 3, 5]);
    }

    #[test]
    fn tool_changes_leave_the_stream_and_remember_the_tool() {
        let text = "T1 M6\nG0 X1\nT2\nG0 Z5\nM06\nG1 X2 F100\nG0 Z5 M6 T3\nG0 X0\nM6\n";
        let program = preflight(text, 80).unwrap();
        assert_eq!(
            program.lines,
            ["T1", "G0X1", "T2", "G0Z5", "G1X2F100", "G0Z5T3", "G0X0"]
        );
        let changes: Vec<_> = program
            .tool_changes
            .iter()
            .map(|c| (c.before, c.tool, c.source_line))
            .collect();
        // The trailing M6 has nothing after it: dropped.
        assert_eq!(changes, [(0, Some(1), 1), (4, Some(2), 5), (5, Some(3), 7)]);
        assert_eq!(without_tool_change("M60X1"), None, "M60 is not M6");
        assert_eq!(without_tool_change("M6.0T4").as_deref(), Some("T4"));
    }

    #[test]
    fn a_line_of_exactly_79_characters_fits() {
        let fits = format!("G1X{}", "1".repeat(76));
        assert_eq!(fits.len(), 79);
        assert!(preflight(&fits, 80).is_ok());
        assert!(preflight(&format!("{fits}1"), 80).is_err());
    }
}
