//! The body parsers: `list`, `csv` and `json`. A body is accepted whole or not at all: the first
//! bad line refuses it, with its 1-based line number and what is wrong.

use std::fmt;

use ipnetwork::IpNetwork;
use serde_json::value::RawValue;

use super::spec::Format;
use crate::config;

/// A refused body: where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// 1-based.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Every prefix in `text` with its line, in order. A sanctions list holds no prefixes: it is
/// refused here (see [`count`]).
pub fn parse(format: &Format, text: &str) -> Result<Vec<(IpNetwork, u32)>, LineError> {
    let text = crate::files::read::strip_bom(text);
    match format {
        Format::List => list(text),
        Format::Csv { column } => csv(text, column),
        Format::Json { field } => json(text, field.as_deref()),
        Format::Sanctions(f) => Err(LineError {
            line: 1,
            message: format!(
                "a {f} sanctions list holds designations, not prefixes; name this source in a \
                 [[lists]] entry (source = \"...\"), not in a network group"
            ),
        }),
    }
}

/// How many entries `text` holds: prefixes, or designations for a sanctions list (parsed whole
/// with its list parser; one with no designation is refused). The check a body passes before
/// it is cached.
pub fn count(format: &Format, text: &str) -> Result<usize, LineError> {
    match format {
        Format::Sanctions(f) => {
            let input = crate::inputs::lists::ListInput {
                path: std::path::Path::new("body"),
                text,
                alt: None,
            };
            crate::inputs::lists::parse(*f, &input)
                .map(|d| d.designations.len())
                .map_err(|e| LineError {
                    line: e.line,
                    message: format!("not a valid {f} list: {}", e.message),
                })
        }
        other => parse(other, text).map(|v| v.len()),
    }
}

fn prefix(text: &str, line: usize) -> Result<(IpNetwork, u32), LineError> {
    config::parse_prefix(text)
        .map(|n| (n, line as u32))
        .map_err(|e| LineError {
            line,
            message: e.to_string(),
        })
}

/// One CIDR or address per line; `#` starts a comment; blank lines are ignored.
pub fn list(text: &str) -> Result<Vec<(IpNetwork, u32)>, LineError> {
    let text = crate::files::read::strip_bom(text);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.split('#').next().unwrap_or_default().trim();
        if !t.is_empty() {
            out.push(prefix(t, i + 1)?);
        }
    }
    Ok(out)
}

/// CSV with a header row; `#` lines are comments; every row needs a prefix in `column`.
fn csv(text: &str, column: &str) -> Result<Vec<(IpNetwork, u32)>, LineError> {
    let csv_err = |e: csv::Error| LineError {
        line: e.position().map_or(1, |p| p.line() as usize),
        message: format!("not valid CSV: {e}"),
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(csv_err)?.clone();
    let header_line = headers.position().map_or(1, |p| p.line() as usize);
    let Some(index) = headers.iter().position(|h| h == column) else {
        return Err(LineError {
            line: header_line,
            message: format!(
                "the header has no column `{column}` (columns: {})",
                headers.iter().collect::<Vec<_>>().join(", ")
            ),
        });
    };
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        match record.get(index) {
            Some(v) if !v.is_empty() => out.push(prefix(v, line)?),
            _ => {
                return Err(LineError {
                    line,
                    message: format!("column `{column}` is empty"),
                });
            }
        }
    }
    Ok(out)
}

/// A JSON array of strings, or of objects whose `field` is a string.
fn json(text: &str, field: Option<&str>) -> Result<Vec<(IpNetwork, u32)>, LineError> {
    let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| LineError {
        line: e.line().max(1),
        message: match field {
            None => format!("not a JSON array of strings: {e}"),
            Some(f) => format!("not a JSON array of objects with `{f}`: {e}"),
        },
    })?;
    let mut out = Vec::with_capacity(items.len());
    let lines = crate::files::read::LineIndex::new(text);
    for raw in items {
        // The element is a slice of `text`: its offset gives its line.
        let offset = raw.get().as_ptr() as usize - text.as_ptr() as usize;
        let line = lines.line(offset);
        let bad = |message: String| LineError { line, message };
        let value = match field {
            None => serde_json::from_str::<String>(raw.get())
                .map_err(|_| bad(format!("expected a string, found `{}`", short(raw.get()))))?,
            Some(f) => {
                let obj: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(raw.get()).map_err(|_| {
                        bad(format!(
                            "expected an object with `{f}`, found `{}`",
                            short(raw.get())
                        ))
                    })?;
                match obj.get(f) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => {
                        return Err(bad(format!("`{f}` is {other}, not a string")));
                    }
                    None => return Err(bad(format!("the object has no `{f}`"))),
                }
            }
        };
        out.push(prefix(&value, line)?);
    }
    Ok(out)
}

/// The start of a JSON value, for messages.
fn short(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[(IpNetwork, u32)]) -> Vec<(String, u32)> {
        v.iter().map(|(n, l)| (n.to_string(), *l)).collect()
    }

    fn csv_fmt(c: &str) -> Format {
        Format::Csv { column: c.into() }
    }

    #[test]
    fn list_reads_prefixes_addresses_and_comments() {
        let text = "# header\n192.0.2.0/24\n\n  198.51.100.7  # a host\n2001:db8::/32\n";
        let v = parse(&Format::List, text).unwrap();
        assert_eq!(
            nets(&v),
            vec![
                ("192.0.2.0/24".into(), 2),
                ("198.51.100.7/32".into(), 4),
                ("2001:db8::/32".into(), 5)
            ]
        );
    }

    #[test]
    fn list_refuses_the_whole_body_at_the_first_bad_line() {
        let e = parse(&Format::List, "192.0.2.0/24\n192.0.2.1/24\n10.0.0.0/8\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("host bits"), "{e}");
        let e = parse(&Format::List, "192.0.2.0/24\nexample.com\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("not an IP address"), "{e}");
        assert_eq!(e.to_string().split(':').next(), Some("line 2"));
    }

    #[test]
    fn csv_reads_the_named_column() {
        let text = "# exported 2026-11-01\nid,network,comment\n1,192.0.2.0/24,\"a, quoted\"\n2, 2001:db8:1::/48 ,x\n";
        let v = parse(&csv_fmt("network"), text).unwrap();
        assert_eq!(
            nets(&v),
            vec![("192.0.2.0/24".into(), 3), ("2001:db8:1::/48".into(), 4)]
        );
        // A byte order mark before the header is not part of the first column's name.
        let v = parse(&csv_fmt("ip"), "\u{feff}ip\n192.0.2.9\n").unwrap();
        assert_eq!(nets(&v), vec![("192.0.2.9/32".into(), 2)]);
    }

    #[test]
    fn csv_refusals_name_the_line() {
        let e = parse(&csv_fmt("cidr"), "id,network\n1,192.0.2.0/24\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(
            e.message
                .contains("no column `cidr` (columns: id, network)"),
            "{e}"
        );
        let e = parse(&csv_fmt("network"), "id,network\n1,192.0.2.0/24\n2,nope\n").unwrap_err();
        assert_eq!((e.line, e.message.contains("`nope`")), (3, true), "{e}");
        let e = parse(&csv_fmt("network"), "id,network\n1,192.0.2.0/24\n2\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("not valid CSV"), "{e}");
        let e = parse(&csv_fmt("network"), "id,network\n1,192.0.2.0/24\n2,\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("empty"), "{e}");
    }

    #[test]
    fn json_reads_strings_or_a_field_of_objects() {
        let text = "[\n  \"192.0.2.0/24\",\n  \"2001:db8::1\"\n]";
        let v = parse(&Format::Json { field: None }, text).unwrap();
        assert_eq!(
            nets(&v),
            vec![("192.0.2.0/24".into(), 2), ("2001:db8::1/128".into(), 3)]
        );
        let text = "[{\"ip\": \"192.0.2.0/24\", \"seen\": 3},\n {\"ip\": \"198.51.100.0/24\"}]";
        let v = parse(
            &Format::Json {
                field: Some("ip".into()),
            },
            text,
        )
        .unwrap();
        assert_eq!(
            nets(&v),
            vec![("192.0.2.0/24".into(), 1), ("198.51.100.0/24".into(), 2)]
        );
    }

    #[test]
    fn json_refusals_name_the_line() {
        let strings = Format::Json { field: None };
        let field = Format::Json {
            field: Some("ip".into()),
        };
        let e = parse(&strings, "[\"192.0.2.0/24\",\n 7]").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("expected a string, found `7`"), "{e}");
        let e = parse(&strings, "{\"ips\": []}").unwrap_err();
        assert!(e.message.contains("not a JSON array of strings"), "{e}");
        let e = parse(&strings, "[\"192.0.2.0/24\",\n\n \"192.0.2.300\"]").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        let e = parse(
            &field,
            "[{\"ip\": \"192.0.2.0/24\"},\n{\"addr\": \"192.0.2.1\"}]",
        )
        .unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (2, "the object has no `ip`"));
        let e = parse(&field, "[{\"ip\": 5}]").unwrap_err();
        assert!(e.message.contains("`ip` is 5, not a string"), "{e}");
        let e = parse(&field, "[\"192.0.2.0/24\"]").unwrap_err();
        assert!(e.message.contains("expected an object with `ip`"), "{e}");
        let e = parse(&strings, "[\"192.0.2.0/24\",\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }
}
