//! G-code preflight: parse with the `gcode` crate, then interpret the words that matter for
//! planning (units, distance mode, motion, feeds, dwells) to get a bounding box and a run-time
//! estimate. This is not a machine simulation: no acceleration, no tool offsets, no work offsets.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::f64::consts::{FRAC_PI_2, TAU};

use gcode::{Code, Value};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::diagnostic::{Diagnostic, LineIndex};

/// Largest program accepted, in bytes: a large print's G-code runs to 50 MB.
pub const MAX_PROGRAM_BYTES: u64 = 64 * 1024 * 1024;

/// Largest total of one spec's programs, in bytes: what a plant holds in memory for one upload.
pub const MAX_PROGRAMS_TOTAL_BYTES: u64 = 128 * 1024 * 1024;

/// Rapid (G0) rate assumed for the time estimate, in mm/min.
pub const DEFAULT_RAPID_MM_PER_MIN: f64 = 5000.0;

const MM_PER_INCH: f64 = 25.4;

/// A binary file fed as G-code fails on every line; a screenful of errors is enough.
const MAX_REPORTED_SYNTAX_LINES: usize = 20;

const LINES_PER_CHUNK: usize = 4096;

/// Words the preflight interprets or knows to have no effect on geometry and time. Anything else
/// is listed in [`GcodeProgram::unsupported_words`] for the driver to judge.
const RECOGNISED_WORDS: &[&str] = &[
    // motion, dwell, planes, units, homing, distance modes, set position
    "G0", "G1", "G2", "G3", "G4", "G17", "G18", "G19", "G20", "G21", "G28", "G90", "G91", "G92",
    // compensation/cycle cancels, work offsets, path control, feed mode, arc centre mode
    "G40", "G49", "G54", "G55", "G56", "G57", "G58", "G59", "G61", "G64", "G80", "G90.1", "G91.1",
    "G94", // stops and program end
    "M0", "M1", "M2", "M30", // spindle or laser, tool change, coolant
    "M3", "M4", "M5", "M6", "M7", "M8",
    "M9", // printer: steppers, extruder mode, fans, heaters
    "M17", "M18", "M84", "M82", "M83", "M104", "M105", "M106", "M107", "M109", "M140", "M190",
    "M400",
];

/// Length units a program declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LengthUnits {
    /// G21, or no units word at all (then a warning says so).
    Millimetres,
    /// G20 only: every figure in [`GcodeProgram`] is still converted to mm.
    Inches,
    /// Both G20 and G21 appear.
    Mixed,
}

/// Axis-aligned box swept by the tool, in mm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BoundingBox {
    pub min: [f64; 3],
    pub max: [f64; 3],
}

impl BoundingBox {
    /// Extent along X, Y and Z in mm.
    pub fn size(&self) -> [f64; 3] {
        [0, 1, 2].map(|axis| self.max[axis] - self.min[axis])
    }

    /// Whether the box fits in a machine envelope given as X, Y, Z sizes in mm.
    pub fn fits_within(&self, envelope: [f64; 3]) -> bool {
        self.size()
            .iter()
            .zip(envelope)
            .all(|(size, limit)| *size <= limit + 1e-9)
    }
}

/// What the preflight learned about one G-code program.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GcodeProgram {
    /// The path as written in the spec.
    pub path: String,
    pub text: String,
    /// Hex SHA-256 of the text: the program identity recorded in every unit's genealogy.
    pub sha256: String,
    pub lines: usize,
    /// Longest line, in characters.
    pub longest_line: usize,
    pub units: LengthUnits,
    /// Box of all motion endpoints and arc extremes, in mm; `None` without motion.
    pub bounding_box: Option<BoundingBox>,
    /// Feed-rate time of all moves (rapids at [`DEFAULT_RAPID_MM_PER_MIN`]) plus dwells.
    pub estimated_seconds: f64,
    /// G and M words used, normalised (`G01` is `G1`).
    pub words: BTreeSet<String>,
    /// The used words the preflight does not interpret; drivers decide whether they are fine.
    pub unsupported_words: BTreeSet<String>,
    /// Things that make the estimate less certain (no units word, feed moves without F, ...).
    pub warnings: Vec<String>,
}

/// Parses and interprets one G-code program. `path` names it in errors.
pub fn preflight_gcode(path: &str, text: &str) -> Result<GcodeProgram, Vec<Diagnostic>> {
    let error = |line: Option<usize>, column: Option<usize>, message: String| Diagnostic {
        line,
        column,
        ..Diagnostic::in_file(path, "", message)
    };
    if text.len() as u64 > MAX_PROGRAM_BYTES {
        return Err(vec![error(
            None,
            None,
            format!(
                "program is {} bytes; the limit is {MAX_PROGRAM_BYTES} bytes (64 MiB)",
                text.len()
            ),
        )]);
    }
    let mut machine = Interpreter::default();
    let mut syntax_errors: BTreeMap<usize, gcode::Diagnostic> = BTreeMap::new();
    let mut unreported_lines = 0;
    for chunk in chunks(text) {
        match gcode::parse(chunk.text) {
            Ok(program) if syntax_errors.is_empty() => {
                for block in &program.blocks {
                    machine.block(block, chunk.first_line);
                }
            }
            Ok(_) => {}
            Err(diagnostics) => {
                for (line, diagnostic) in first_diagnostic_per_line(diagnostics.into_inner()) {
                    if syntax_errors.len() < MAX_REPORTED_SYNTAX_LINES {
                        let span = gcode::core::Span::new(
                            diagnostic.span.start + chunk.offset,
                            diagnostic.span.length,
                            line + chunk.first_line,
                        );
                        syntax_errors.insert(span.line, gcode::Diagnostic { span, ..diagnostic });
                    } else {
                        unreported_lines += 1;
                    }
                }
            }
        }
    }

    if !syntax_errors.is_empty() {
        let index = LineIndex::new(text);
        let mut errors: Vec<Diagnostic> = syntax_errors
            .values()
            .map(|diagnostic| {
                let (line, column) = index.line_column(diagnostic.span.start);
                let shown: String = index
                    .line_text(line)
                    .unwrap_or_default()
                    .trim()
                    .chars()
                    .take(80)
                    .collect();
                error(
                    Some(line),
                    Some(column),
                    format!("G-code syntax: {} in `{shown}`", describe(&diagnostic.kind)),
                )
            })
            .collect();
        if unreported_lines > 0 {
            errors.push(error(
                None,
                None,
                format!(
                    "G-code syntax errors on {unreported_lines} more lines not shown; is this a G-code file?"
                ),
            ));
        }
        return Err(errors);
    }
    if !machine.commands_seen {
        return Err(vec![error(
            None,
            None,
            "program is empty: it has no G-code commands".to_owned(),
        )]);
    }
    Ok(machine.finish(path, text))
}

/// A run of whole lines of a program.
struct Chunk<'t> {
    text: &'t str,
    /// Byte offset of the chunk in the program.
    offset: usize,
    /// Zero-based number of the chunk's first line.
    first_line: usize,
}

/// Splits a program into runs of about [`LINES_PER_CHUNK`] lines, never inside a parenthesised
/// comment (which some dialects let run over several lines). The parser builds a syntax tree
/// of about 20 times the text's size, so a 64 MiB program is parsed piece by piece.
fn chunks(text: &str) -> impl Iterator<Item = Chunk<'_>> {
    let mut offset = 0;
    let mut first_line = 0;
    std::iter::from_fn(move || {
        if offset >= text.len() {
            return None;
        }
        let rest = &text[offset..];
        let (mut lines, mut in_comment, mut in_line_comment) = (0, false, false);
        let mut end = rest.len();
        for (index, byte) in rest.bytes().enumerate() {
            match byte {
                b'(' if !in_line_comment => in_comment = true,
                b')' if !in_line_comment => in_comment = false,
                b';' if !in_comment => in_line_comment = true,
                b'\n' => {
                    in_line_comment = false;
                    lines += 1;
                    if lines >= LINES_PER_CHUNK && !in_comment {
                        end = index + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        let chunk = Chunk {
            text: &rest[..end],
            offset,
            first_line,
        };
        offset += end;
        first_line += lines;
        Some(chunk)
    })
}

/// One error per line, by zero-based line: the parser recovers by reporting the tokens after a bad
/// character too, which only repeats the problem. Unreadable characters are the cause when present.
fn first_diagnostic_per_line(
    diagnostics: Vec<gcode::Diagnostic>,
) -> BTreeMap<usize, gcode::Diagnostic> {
    let is_cause = |diagnostic: &gcode::Diagnostic| {
        matches!(
            diagnostic.kind,
            gcode::DiagnosticKind::UnknownContent { .. }
        )
    };
    let mut by_line: BTreeMap<usize, gcode::Diagnostic> = BTreeMap::new();
    for diagnostic in diagnostics {
        match by_line.entry(diagnostic.span.line) {
            Entry::Vacant(slot) => {
                slot.insert(diagnostic);
            }
            Entry::Occupied(mut slot) => {
                let kept = slot.get();
                let earlier = diagnostic.span.start < kept.span.start;
                if (is_cause(&diagnostic) && !is_cause(kept))
                    || (is_cause(&diagnostic) == is_cause(kept) && earlier)
                {
                    slot.insert(diagnostic);
                }
            }
        }
    }
    by_line
}

fn describe(kind: &gcode::DiagnosticKind) -> String {
    match kind {
        gcode::DiagnosticKind::UnknownContent { text } => format!("unexpected '{text}'"),
        gcode::DiagnosticKind::Unexpected { actual, expected } => {
            let expected: Vec<&str> = expected.iter().map(|token| token.as_str()).collect();
            format!("unexpected '{actual}' (expected {})", expected.join(" or "))
        }
        other => other.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Motion {
    Rapid,
    Linear,
    ArcClockwise,
    ArcCounterClockwise,
}

/// The arc plane as (first axis, second axis, normal axis), ordered so that counter-clockwise
/// is the positive turn from the first axis to the second.
#[derive(Debug, Clone, Copy)]
struct Plane([usize; 3]);

const XY: Plane = Plane([0, 1, 2]);
const ZX: Plane = Plane([2, 0, 1]);
const YZ: Plane = Plane([1, 2, 0]);

struct Interpreter {
    commands_seen: bool,
    /// Printer firmware (Marlin, RepRapFirmware) reads `G4 P` in milliseconds; CNC and laser
    /// controllers (GRBL, LinuxCNC) in seconds. Heater and extruder words tell the two apart,
    /// wherever they appear, so `P` dwells are summed and scaled at the end.
    printer_words_seen: bool,
    dwell_p_total: f64,
    millimetres_per_unit: f64,
    seen_millimetres: bool,
    seen_inches: bool,
    relative: bool,
    extruder_relative: bool,
    plane: Plane,
    motion: Option<Motion>,
    /// mm/min
    feed: Option<f64>,
    /// Per axis, in mm; `None` until the program sets it.
    position: [Option<f64>; 3],
    extruder: f64,
    min: [f64; 3],
    max: [f64; 3],
    seen_axis: [bool; 3],
    seconds: f64,
    words: BTreeSet<String>,
    warnings: Vec<String>,
    warned_no_feed: bool,
}

impl Default for Interpreter {
    fn default() -> Self {
        Self {
            commands_seen: false,
            printer_words_seen: false,
            dwell_p_total: 0.0,
            millimetres_per_unit: 1.0,
            seen_millimetres: false,
            seen_inches: false,
            relative: false,
            extruder_relative: false,
            plane: XY,
            motion: None,
            feed: None,
            position: [None; 3],
            extruder: 0.0,
            min: [f64::INFINITY; 3],
            max: [f64::NEG_INFINITY; 3],
            seen_axis: [false; 3],
            seconds: 0.0,
            words: BTreeSet::new(),
            warnings: Vec::new(),
            warned_no_feed: false,
        }
    }
}

/// The letter-value words of one block that matter for motion (G-code arguments and bare words;
/// M-code arguments such as `M104 S200` are left out).
#[derive(Default)]
struct Words {
    values: Vec<(char, f64)>,
}

impl Words {
    fn get(&self, letter: char) -> Option<f64> {
        self.values
            .iter()
            .rev()
            .find(|(l, _)| *l == letter)
            .map(|&(_, value)| value)
    }

    fn has_any(&self, letters: &str) -> bool {
        self.values.iter().any(|(l, _)| letters.contains(*l))
    }

    fn push(&mut self, letter: char, value: &Value) {
        if let Value::Literal(number) = value {
            // The parser reads f32; going through its shortest decimal form keeps 11.0 from
            // becoming 10.99999994 in f64.
            let number = number.to_string().parse().unwrap_or(f64::from(*number));
            self.values.push((letter.to_ascii_uppercase(), number));
        }
    }
}

impl Interpreter {
    /// Interprets one block; `first_line` is the zero-based line its chunk starts at.
    fn block(&mut self, block: &gcode::Block, first_line: usize) {
        let line = first_line + block.span.line + 1;
        self.commands_seen |= !block.codes.is_empty() || !block.word_addresses.is_empty();
        let mut words = Words::default();
        let mut block_motion = None;
        let mut dwell = false;
        let mut home = false;
        let mut set_position = false;
        for code in &block.codes {
            match code {
                Code::General(general) => {
                    for argument in &general.args {
                        words.push(argument.letter, &argument.value);
                        self.printer_words_seen |= argument.letter.eq_ignore_ascii_case(&'E');
                    }
                    let word = format!("G{}", general.number);
                    match word.as_str() {
                        "G0" => block_motion = Some(Motion::Rapid),
                        "G1" => block_motion = Some(Motion::Linear),
                        "G2" => block_motion = Some(Motion::ArcClockwise),
                        "G3" => block_motion = Some(Motion::ArcCounterClockwise),
                        "G4" => dwell = true,
                        "G17" => self.plane = XY,
                        "G18" => self.plane = ZX,
                        "G19" => self.plane = YZ,
                        "G20" => {
                            self.millimetres_per_unit = MM_PER_INCH;
                            self.seen_inches = true;
                        }
                        "G21" => {
                            self.millimetres_per_unit = 1.0;
                            self.seen_millimetres = true;
                        }
                        "G28" => home = true,
                        "G90" => {
                            self.relative = false;
                            self.extruder_relative = false;
                        }
                        "G91" => {
                            self.relative = true;
                            self.extruder_relative = true;
                        }
                        "G92" => set_position = true,
                        _ => {}
                    }
                    self.words.insert(word);
                }
                Code::Miscellaneous(miscellaneous) => {
                    let word = format!("M{}", miscellaneous.number);
                    match word.as_str() {
                        "M82" => self.extruder_relative = false,
                        "M83" => self.extruder_relative = true,
                        _ => {}
                    }
                    self.printer_words_seen |= matches!(
                        miscellaneous.number.major(),
                        82 | 83 | 104 | 109 | 140 | 190
                    );
                    self.words.insert(word);
                }
                _ => {}
            }
        }
        for word in &block.word_addresses {
            words.push(word.letter, &word.value);
        }

        if let Some(feed) = words.get('F').filter(|&feed| feed > 0.0) {
            self.feed = Some(feed * self.millimetres_per_unit);
        }
        if dwell {
            match (words.get('S'), words.get('P')) {
                (Some(seconds), _) => self.seconds += seconds.max(0.0),
                (None, Some(p)) => self.dwell_p_total += p.max(0.0),
                (None, None) => {}
            }
        } else if home {
            self.home(&words);
        } else if set_position {
            self.set_position(&words);
        } else {
            if block_motion.is_some() {
                self.motion = block_motion;
            }
            if words.has_any("XYZIJKRE") {
                let motion = self.motion.unwrap_or_else(|| {
                    self.warnings.push(format!(
                        "line {line}: coordinates before any G0/G1/G2/G3; treated as G0"
                    ));
                    Motion::Rapid
                });
                self.motion = Some(motion);
                self.motion(motion, &words, line);
            }
        }
    }

    /// The target position in mm: given axes converted and resolved against the mode, others kept.
    fn target(&self, words: &Words) -> [Option<f64>; 3] {
        let mut target = self.position;
        for (axis, letter) in ['X', 'Y', 'Z'].into_iter().enumerate() {
            if let Some(value) = words.get(letter) {
                let millimetres = value * self.millimetres_per_unit;
                target[axis] = Some(if self.relative {
                    self.position[axis].unwrap_or(0.0) + millimetres
                } else {
                    millimetres
                });
            }
        }
        target
    }

    fn home(&mut self, words: &Words) {
        let named: Vec<usize> = (0..3)
            .filter(|&axis| words.get(['X', 'Y', 'Z'][axis]).is_some())
            .collect();
        let axes = if named.is_empty() {
            vec![0, 1, 2]
        } else {
            named
        };
        for axis in axes {
            self.position[axis] = Some(0.0);
        }
    }

    fn set_position(&mut self, words: &Words) {
        for (axis, letter) in ['X', 'Y', 'Z'].into_iter().enumerate() {
            if let Some(value) = words.get(letter) {
                self.position[axis] = Some(value * self.millimetres_per_unit);
            }
        }
        if let Some(value) = words.get('E') {
            self.extruder = value * self.millimetres_per_unit;
        }
    }

    fn include(&mut self, point: [Option<f64>; 3]) {
        for (axis, coordinate) in point.into_iter().enumerate() {
            if let Some(value) = coordinate {
                self.min[axis] = self.min[axis].min(value);
                self.max[axis] = self.max[axis].max(value);
                self.seen_axis[axis] = true;
            }
        }
    }

    fn extrusion(&mut self, words: &Words) -> f64 {
        let Some(value) = words.get('E') else {
            return 0.0;
        };
        let value = value * self.millimetres_per_unit;
        let length = if self.extruder_relative {
            value
        } else {
            value - self.extruder
        };
        self.extruder = if self.extruder_relative {
            self.extruder + value
        } else {
            value
        };
        length.abs()
    }

    fn motion(&mut self, motion: Motion, words: &Words, line: usize) {
        let start = self.position;
        let end = self.target(words);
        let filament = self.extrusion(words);
        let path_length = match motion {
            Motion::Rapid | Motion::Linear => {
                self.include(end);
                distance(start, end)
            }
            Motion::ArcClockwise | Motion::ArcCounterClockwise => {
                match self.arc(motion == Motion::ArcClockwise, start, end, words) {
                    Some(length) => length,
                    None => {
                        self.warnings.push(format!(
                            "line {line}: arc without a usable centre (I/J/K or R); counted as a straight move"
                        ));
                        self.include(end);
                        distance(start, end)
                    }
                }
            }
        };
        self.position = end;
        // Moves of the extruder alone (retractions) take time too.
        let length = if path_length > 0.0 {
            path_length
        } else {
            filament
        };
        let rate = match motion {
            Motion::Rapid => DEFAULT_RAPID_MM_PER_MIN,
            _ => self.feed.unwrap_or_else(|| {
                if !self.warned_no_feed {
                    self.warned_no_feed = true;
                    self.warnings.push(format!(
                        "line {line}: feed move before any F word; timed at the rapid rate"
                    ));
                }
                DEFAULT_RAPID_MM_PER_MIN
            }),
        };
        self.seconds += length / rate * 60.0;
    }

    /// Adds an arc's endpoints and extremes to the box and returns its length, or `None` when its
    /// centre cannot be found.
    fn arc(
        &mut self,
        clockwise: bool,
        start: [Option<f64>; 3],
        end: [Option<f64>; 3],
        words: &Words,
    ) -> Option<f64> {
        let Plane([first, second, normal]) = self.plane;
        let offset_letter = |axis: usize| ['I', 'J', 'K'][axis];
        let s = [start[first].unwrap_or(0.0), start[second].unwrap_or(0.0)];
        let e = [end[first].unwrap_or(0.0), end[second].unwrap_or(0.0)];
        let (centre, radius) = if let Some(radius) = words.get('R') {
            let radius = radius * self.millimetres_per_unit;
            let chord = [e[0] - s[0], e[1] - s[1]];
            let chord_length = chord[0].hypot(chord[1]);
            if chord_length == 0.0 || radius == 0.0 {
                return None;
            }
            let half = chord_length / 2.0;
            let height = (radius * radius - half * half).max(0.0).sqrt();
            // The centre is left of the chord for counter-clockwise arcs under 180 degrees;
            // a negative R asks for the longer arc, with the centre on the other side.
            let left = !clockwise ^ (radius < 0.0);
            let sign = if left { 1.0 } else { -1.0 };
            let unit_left = [-chord[1] / chord_length, chord[0] / chord_length];
            (
                [
                    s[0] + chord[0] / 2.0 + sign * height * unit_left[0],
                    s[1] + chord[1] / 2.0 + sign * height * unit_left[1],
                ],
                radius.abs().max(half),
            )
        } else {
            let i = words.get(offset_letter(first));
            let j = words.get(offset_letter(second));
            if i.is_none() && j.is_none() {
                return None;
            }
            let centre = [
                s[0] + i.unwrap_or(0.0) * self.millimetres_per_unit,
                s[1] + j.unwrap_or(0.0) * self.millimetres_per_unit,
            ];
            (centre, (s[0] - centre[0]).hypot(s[1] - centre[1]))
        };
        if radius == 0.0 {
            return None;
        }
        let start_angle = (s[1] - centre[1]).atan2(s[0] - centre[0]);
        let end_angle = (e[1] - centre[1]).atan2(e[0] - centre[0]);
        let mut sweep = if clockwise {
            start_angle - end_angle
        } else {
            end_angle - start_angle
        }
        .rem_euclid(TAU);
        let closed = (s[0] - e[0]).hypot(s[1] - e[1]) < 1e-9;
        if closed || sweep < 1e-12 {
            sweep = TAU;
        }

        self.include(end);
        // Extremes: the quarter-turn points the arc passes through.
        for quarter in 0..4 {
            let angle = f64::from(quarter) * FRAC_PI_2;
            let travelled = if clockwise {
                start_angle - angle
            } else {
                angle - start_angle
            }
            .rem_euclid(TAU);
            if travelled <= sweep {
                let mut point = [None; 3];
                point[first] = Some(centre[0] + radius * angle.cos());
                point[second] = Some(centre[1] + radius * angle.sin());
                self.include(point);
            }
        }
        let rise = end[normal].unwrap_or(0.0) - start[normal].unwrap_or(0.0);
        Some((radius * sweep).hypot(rise))
    }

    fn finish(self, path: &str, text: &str) -> GcodeProgram {
        let p_seconds = if self.printer_words_seen { 0.001 } else { 1.0 };
        let units = match (self.seen_millimetres, self.seen_inches) {
            (_, false) => LengthUnits::Millimetres,
            (false, true) => LengthUnits::Inches,
            (true, true) => LengthUnits::Mixed,
        };
        let mut warnings = self.warnings;
        if !self.seen_millimetres && !self.seen_inches {
            warnings.insert(0, "no G20/G21 units word; millimetres assumed".to_owned());
        }
        let bounding_box = self
            .seen_axis
            .iter()
            .any(|&seen| seen)
            .then(|| BoundingBox {
                min: [0, 1, 2].map(|axis| {
                    if self.seen_axis[axis] {
                        self.min[axis]
                    } else {
                        0.0
                    }
                }),
                max: [0, 1, 2].map(|axis| {
                    if self.seen_axis[axis] {
                        self.max[axis]
                    } else {
                        0.0
                    }
                }),
            });
        let unsupported_words = self
            .words
            .iter()
            .filter(|word| !RECOGNISED_WORDS.contains(&word.as_str()))
            .cloned()
            .collect();
        GcodeProgram {
            path: path.to_owned(),
            text: text.to_owned(),
            sha256: Sha256::digest(text.as_bytes())
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect(),
            lines: text.lines().count(),
            longest_line: text
                .lines()
                .map(|line| line.chars().count())
                .max()
                .unwrap_or(0),
            units,
            bounding_box,
            estimated_seconds: self.seconds + self.dwell_p_total * p_seconds,
            words: self.words,
            unsupported_words,
            warnings,
        }
    }
}

fn distance(start: [Option<f64>; 3], end: [Option<f64>; 3]) -> f64 {
    // An axis whose start is unknown (before the first move on it) adds no distance.
    (0..3)
        .map(|axis| match (start[axis], end[axis]) {
            (Some(from), Some(to)) => (to - from).powi(2),
            _ => 0.0,
        })
        .sum::<f64>()
        .sqrt()
}

#[cfg(test)]
mod tests;
