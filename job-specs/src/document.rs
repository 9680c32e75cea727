//! A spec document as a tree of values that remember where they were written, built from TOML
//! or JSON, so validation can point every error at its source position whatever the format.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// Where an error is: a byte offset into the source, or a line and column given by a parser that
/// only reports those (serde_json).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Position {
    Offset(usize),
    LineColumn(usize, usize),
}

/// An error before it is turned into a [`crate::Diagnostic`]: positions are still byte offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub position: Position,
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub span: Range<usize>,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    String(String),
    /// Integers out of the i64 range are kept as text so the message can quote them.
    Integer(Result<i64, String>),
    Float(f64),
    Boolean(bool),
    /// A TOML date/time literal, in its TOML spelling.
    Datetime(String),
    Array(Vec<Node>),
    Table(Vec<Entry>),
    /// Only in JSON; never valid in a spec, kept so the error can say so.
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_span: Range<usize>,
    pub value: Node,
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        match &self.value {
            Value::Table(entries) => entries.iter().find(|entry| entry.key == key),
            _ => None,
        }
    }
}

/// Parses TOML, reporting every syntax error the parser can recover from.
pub(crate) fn parse_toml(text: &str) -> Result<Node, Vec<Finding>> {
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        return Err(errors
            .iter()
            .map(|error| Finding {
                position: Position::Offset(error.span().map_or(0, |span| span.start)),
                field: String::new(),
                message: format!("TOML syntax: {}", error.message().trim_end()),
            })
            .collect());
    }
    let span = root.span();
    Ok(Node {
        span,
        value: Value::Table(toml_table(root.get_ref())),
    })
}

fn toml_table(table: &DeTable<'_>) -> Vec<Entry> {
    // The parser's map is ordered by key; validation wants source order.
    let mut entries: Vec<Entry> = table
        .iter()
        .map(|(key, value)| Entry {
            key: key.get_ref().to_string(),
            key_span: key.span(),
            value: toml_node(value.span(), value.get_ref()),
        })
        .collect();
    entries.sort_by_key(|entry| entry.key_span.start);
    entries
}

fn toml_node(span: Range<usize>, value: &DeValue<'_>) -> Node {
    let value = match value {
        DeValue::String(text) => Value::String(text.to_string()),
        DeValue::Integer(integer) => Value::Integer(
            i64::from_str_radix(integer.as_str(), integer.radix()).map_err(|_| integer.to_string()),
        ),
        DeValue::Float(float) => Value::Float(float.as_str().parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(flag) => Value::Boolean(*flag),
        DeValue::Datetime(datetime) => Value::Datetime(datetime.to_string()),
        DeValue::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| toml_node(item.span(), item.get_ref()))
                .collect(),
        ),
        DeValue::Table(table) => Value::Table(toml_table(table)),
    };
    Node { span, value }
}

/// Parses JSON. serde_json checks the syntax (its line and column go into the error); a small
/// reader then walks the known-good text to record where every value is, which serde_json does
/// not expose. Duplicate keys, which serde_json silently collapses, are reported.
pub(crate) fn parse_json(text: &str) -> Result<Node, Vec<Finding>> {
    // Parsing to a `Value` (not `IgnoredAny`) keeps serde_json's nesting limit, which also
    // bounds the recursion of the reader below.
    if let Err(error) = serde_json::from_str::<serde_json::Value>(text) {
        let message = error.to_string();
        // serde_json appends " at line L column C"; the position is reported separately.
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(head, _)| head);
        return Err(vec![Finding {
            position: Position::LineColumn(error.line().max(1), error.column().max(1)),
            field: String::new(),
            message: format!("JSON syntax: {message}"),
        }]);
    }
    let mut reader = JsonReader {
        text,
        position: 0,
        findings: Vec::new(),
    };
    let root = reader.value("");
    if reader.findings.is_empty() {
        Ok(root)
    } else {
        Err(reader.findings)
    }
}

struct JsonReader<'t> {
    text: &'t str,
    position: usize,
    findings: Vec<Finding>,
}

impl JsonReader<'_> {
    fn skip_whitespace(&mut self) {
        let rest = &self.text[self.position..];
        self.position += rest.len() - rest.trim_start_matches([' ', '\t', '\n', '\r']).len();
    }

    fn peek(&self) -> u8 {
        self.text
            .as_bytes()
            .get(self.position)
            .copied()
            .unwrap_or(0)
    }

    /// Reads the value at `path` (the field path used in error messages).
    fn value(&mut self, path: &str) -> Node {
        self.skip_whitespace();
        let start = self.position;
        let value = match self.peek() {
            b'{' => self.object(path),
            b'[' => self.array(path),
            b'"' => Value::String(self.string()),
            b't' => self.literal("true", Value::Boolean(true)),
            b'f' => self.literal("false", Value::Boolean(false)),
            b'n' => self.literal("null", Value::Null),
            _ => self.number(),
        };
        Node {
            span: start..self.position,
            value,
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Value {
        self.position += word.len();
        value
    }

    fn string(&mut self) -> String {
        let start = self.position;
        let bytes = self.text.as_bytes();
        let mut index = start + 1;
        while bytes[index] != b'"' {
            index += if bytes[index] == b'\\' { 2 } else { 1 };
        }
        self.position = index + 1;
        serde_json::from_str(&self.text[start..self.position])
            .expect("serde_json validated this string")
    }

    fn number(&mut self) -> Value {
        let start = self.position;
        let rest = &self.text[start..];
        let length = rest
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')))
            .unwrap_or(rest.len());
        self.position += length;
        let literal = &rest[..length];
        if literal.contains(['.', 'e', 'E']) {
            Value::Float(literal.parse().unwrap_or(f64::NAN))
        } else {
            Value::Integer(literal.parse().map_err(|_| literal.to_owned()))
        }
    }

    fn array(&mut self, path: &str) -> Value {
        self.position += 1;
        let mut items = Vec::new();
        loop {
            self.skip_whitespace();
            match self.peek() {
                b']' => {
                    self.position += 1;
                    return Value::Array(items);
                }
                b',' => self.position += 1,
                _ => {
                    let item = self.value(&format!("{path}[{}]", items.len()));
                    items.push(item);
                }
            }
        }
    }

    fn object(&mut self, path: &str) -> Value {
        self.position += 1;
        let mut entries: Vec<Entry> = Vec::new();
        loop {
            self.skip_whitespace();
            match self.peek() {
                b'}' => {
                    self.position += 1;
                    return Value::Table(entries);
                }
                b',' => self.position += 1,
                _ => {
                    let key_start = self.position;
                    let key = self.string();
                    let key_span = key_start..self.position;
                    self.skip_whitespace();
                    self.position += 1; // the ':'
                    let field = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    let value = self.value(&field);
                    if entries.iter().any(|entry| entry.key == key) {
                        self.findings.push(Finding {
                            position: Position::Offset(key_start),
                            field,
                            message: format!("duplicate key '{key}'"),
                        });
                    } else {
                        entries.push(Entry {
                            key,
                            key_span,
                            value,
                        });
                    }
                }
            }
        }
    }
}
