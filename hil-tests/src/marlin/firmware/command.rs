//! A command line as Marlin's parser reads it: the line number and checksum taken off, the
//! command word and its parameters, numbers read as `strtol` reads them.

/// C's `strtol(s, NULL, 10)`: optional blanks and sign, then digits; 0 if none.
pub(super) fn strtol(text: &str) -> i64 {
    let text = text.trim_start();
    let (sign, digits) = match text.as_bytes().first() {
        Some(b'-') => (-1, &text[1..]),
        Some(b'+') => (1, &text[1..]),
        _ => (1, text),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    sign * digits[..end].parse::<i64>().unwrap_or(0)
}

/// What `GCodeParser::parse` keeps: no leading `N<n>`, nothing from `*` on, no trailing blanks.
pub(super) fn strip_number_and_checksum(text: &str) -> String {
    let mut rest = text.trim_start();
    if let Some(after) = rest.strip_prefix('N')
        && after.starts_with(|c: char| c.is_ascii_digit() || c == '-')
    {
        let end = after[1..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(after.len(), |i| i + 1);
        rest = after[end..].trim_start();
    }
    let rest = rest.split('*').next().unwrap_or("");
    rest.trim_end().to_string()
}

/// The command word (`G1`, `M109`) and its parameters.
pub(super) struct Words {
    pub(super) code: String,
    pub(super) params: Vec<(char, f64)>,
}

impl Words {
    pub(super) fn parse(command: &str) -> Words {
        let mut tokens = command.split_whitespace();
        let code = tokens.next().unwrap_or("").to_ascii_uppercase();
        let code = match code.split_once('.') {
            Some((whole, _)) => whole.to_string(),
            None => code,
        };
        let params = tokens
            .filter_map(|token| {
                let mut chars = token.chars();
                let letter = chars.next()?.to_ascii_uppercase();
                let value = chars.as_str().parse().unwrap_or(0.0);
                letter.is_ascii_alphabetic().then_some((letter, value))
            })
            .collect();
        Words { code, params }
    }

    pub(super) fn get(&self, letter: char) -> Option<f64> {
        self.params
            .iter()
            .find(|(l, _)| *l == letter)
            .map(|(_, v)| *v)
    }
}
