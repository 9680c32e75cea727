//! One problem in a file a person wrote (a batch spec, a G-code program, the plant config, a
//! request body): where it is and what is wrong. Shown to people as one line, optionally with
//! the source line and a caret under the column; sent as JSON by the API.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Lines and columns are 1-based; columns count characters, not bytes. `file` is absent for a
/// problem in a request body, which has no file name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Diagnostic {
    pub file: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Path of the field the problem is about, e.g. `steps[2].after[0]`; empty for problems that
    /// belong to no field (a TOML syntax error, a G-code parse error).
    pub field: String,
    pub message: String,
}

impl Diagnostic {
    /// A problem in `file` with no known position.
    pub fn in_file(
        file: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            file: Some(file.into()),
            line: None,
            column: None,
            field: field.into(),
            message: message.into(),
        }
    }

    /// A problem at a byte offset of `file`'s text.
    pub fn at_offset(
        file: impl Into<String>,
        index: &LineIndex<'_>,
        offset: usize,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = index.line_column(offset);
        Diagnostic {
            line: Some(line),
            column: Some(column),
            ..Diagnostic::in_file(file, field, message)
        }
    }

    /// The one-line form, then the source line it points at with a caret under its column, the
    /// way compilers show it; `source` is the text of `file` when the caller has it.
    pub fn render(&self, source: Option<&str>) -> String {
        let mut shown = self.to_string();
        let (Some(text), Some(line)) = (source, self.line) else {
            return shown;
        };
        let index = LineIndex::new(text);
        let Some(source_line) = index.line_text(line).filter(|text| !text.trim().is_empty()) else {
            return shown;
        };
        let gutter = " ".repeat(line.to_string().len());
        shown.push_str(&format!("\n{gutter} |\n{line} | {source_line}"));
        if let Some(column) = self.column {
            // Tabs keep their width so the caret stays under the column it names.
            let pad: String = source_line
                .chars()
                .take(column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            shown.push_str(&format!("\n{gutter} | {pad}^"));
        }
        shown
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut place = self.file.clone().unwrap_or_default();
        if let Some(line) = self.line {
            place.push_str(&format!(":{line}"));
            if let Some(column) = self.column {
                place.push_str(&format!(":{column}"));
            }
        }
        let mut parts = [place.as_str(), self.field.as_str()]
            .into_iter()
            .filter(|part| !part.is_empty());
        if let Some(first) = parts.next() {
            write!(f, "{first}: ")?;
        }
        if let Some(second) = parts.next() {
            write!(f, "{second}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// Every problem found, in source order. Displays one per line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Each problem with its source line, for people; `source_of` gives a file's text when it
    /// can be read.
    pub fn render(&self, mut source_of: impl FnMut(&str) -> Option<String>) -> String {
        self.0
            .iter()
            .map(|diagnostic| {
                let source = diagnostic.file.as_deref().and_then(&mut source_of);
                diagnostic.render(source.as_deref())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, diagnostic) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Turns byte offsets into 1-based lines and character columns.
pub struct LineIndex<'t> {
    text: &'t str,
    line_starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    pub fn new(text: &'t str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(index, _)| index + 1))
            .collect();
        Self { text, line_starts }
    }

    /// The text of a 1-based line, without its line break; `None` past the end.
    pub fn line_text(&self, line: usize) -> Option<&'t str> {
        let start = *self.line_starts.get(line.wrapping_sub(1))?;
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |&next| next);
        Some(self.text[start..end].trim_end_matches(['\n', '\r']))
    }

    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |prefix| prefix.chars().count());
        (line + 1, column + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diagnostic(
        file: Option<&str>,
        line: Option<usize>,
        column: Option<usize>,
        field: &str,
    ) -> Diagnostic {
        Diagnostic {
            file: file.map(String::from),
            line,
            column,
            field: field.into(),
            message: "wrong".into(),
        }
    }

    #[test]
    fn one_line_forms() {
        let cases = [
            (
                diagnostic(Some("a.toml"), Some(3), Some(7), "steps[0].name"),
                "a.toml:3:7: steps[0].name: wrong",
            ),
            (
                diagnostic(Some("a.toml"), Some(3), None, ""),
                "a.toml:3: wrong",
            ),
            (
                diagnostic(Some("a.toml"), None, None, "quantity"),
                "a.toml: quantity: wrong",
            ),
            (diagnostic(None, None, None, "reason"), "reason: wrong"),
            (diagnostic(None, None, None, ""), "wrong"),
        ];
        for (input, expected) in cases {
            assert_eq!(input.to_string(), expected);
        }
    }

    #[test]
    fn render_points_at_the_column() {
        let text = "name = \"x\"\n\tqty = -1\n  \n";
        let cases = [
            (
                diagnostic(Some("a.toml"), Some(2), Some(8), "qty"),
                "a.toml:2:8: qty: wrong\n  |\n2 | \tqty = -1\n  | \t      ^",
            ),
            (
                diagnostic(Some("a.toml"), Some(1), None, ""),
                "a.toml:1: wrong\n  |\n1 | name = \"x\"",
            ),
            (
                diagnostic(Some("a.toml"), Some(9), Some(1), ""),
                "a.toml:9:1: wrong",
            ),
            (
                diagnostic(Some("a.toml"), None, None, "qty"),
                "a.toml: qty: wrong",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(input.render(Some(text)), expected, "{input:?}");
        }
    }

    #[test]
    fn columns_count_characters() {
        let index = LineIndex::new("a\nüb = 1\n");
        assert_eq!(index.line_column(0), (1, 1));
        assert_eq!(index.line_column(2), (2, 1));
        assert_eq!(index.line_column(4), (2, 2));
        assert_eq!(index.line_text(2), Some("üb = 1"));
        assert_eq!(index.line_text(4), None);
    }
}
