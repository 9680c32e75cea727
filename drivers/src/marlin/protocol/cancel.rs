//! The cancel script: a new stream that starts at once, its emergency commands first.

use std::time::Instant;

use super::{Protocol, Purpose, SYNC_LINES, Stream, StreamLine, command_word};

/// Commands Marlin's emergency parser acts on as soon as they arrive, even while a command
/// blocks its queue (`EMERGENCY_PARSER`).
const EMERGENCY_COMMANDS: [&str; 3] = ["M108", "M410", "M112"];

pub fn default_cancel_script() -> Vec<String> {
    ["M108", "M410", "M104 S0", "M140 S0", "M107", "M84"]
        .map(String::from)
        .to_vec()
}

impl Protocol {
    pub(super) fn start_cancel_stream(&mut self, now: Instant) {
        let script = &self.settings.cancel_script;
        let urgent = script
            .iter()
            .take_while(|line| EMERGENCY_COMMANDS.contains(&command_word(line).as_str()))
            .count();
        let mut lines = vec![StreamLine::added("M110 N0"), StreamLine::added("M105")];
        lines.extend(script[..urgent].iter().map(|line| StreamLine::added(line)));
        if urgent > 0 {
            // Marlin also applies `M110 N0` when it executes it, which may come after it has
            // read the lines sent with it: the numbering is then 0, or the last of them. A
            // second M110, sent once they are answered, makes it certain.
            let number = lines.len();
            lines.push(StreamLine::added(&format!("M110 N{number}")));
        }
        lines.extend(script[urgent..].iter().map(|line| StreamLine::added(line)));
        self.line_errors = None;
        self.stale_request = None;
        self.swallow_ok = false;
        self.tickle_at = None;
        self.last_progress = now;
        self.stream = Some(Stream::new(Purpose::Cancel, lines, 0));
        for _ in 0..SYNC_LINES + urgent {
            self.send_numbered(now);
        }
    }

    pub(super) fn switch_to_cancel_script(&mut self, now: Instant) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        stream.lines.truncate(stream.next);
        let script = self.settings.cancel_script.iter();
        stream
            .lines
            .extend(script.map(|line| StreamLine::added(line)));
        stream.purpose = Purpose::Cancel;
        stream.paused = false;
        self.pump(now);
    }
}
