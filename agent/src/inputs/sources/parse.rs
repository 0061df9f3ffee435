//! The body parsers: `list`, `csv` and `json` (and `taxii`, whose copy [`super::taxii`] reads
//! with the STIX importer). With `on_bad_line = "refuse"` (the default) a
//! body is accepted whole or not at all: the first bad line refuses it, with its 1-based line
//! number and what is wrong. With `on_bad_line = "skip"` (`list` and `csv`), a bad line is left
//! out, counted by [`SkipReason`] and kept in [`Skipped`] (the first [`MAX_LISTED_LINES`] with
//! their line and message) for `embargo fetch`, `embargo status` and the
//! `embargo_source_skipped_lines` metric. CSV rows whose type (a `type_column`) is not one of
//! `types` are not bad lines: they are skipped and counted by type, in either mode.

use std::{collections::BTreeMap, fmt};

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::spec::{Format, SourceSpec};
use crate::config::{self, OnBadLine, validate::CsvLayout};

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

/// Skipped lines listed one by one at most; past it they are only counted.
pub const MAX_LISTED_LINES: usize = 1000;

/// Why a line was skipped: the `reason` label of `embargo_source_skipped_lines` (a fixed set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Not an address or CIDR (or host bits set): a bad line.
    InvalidValue,
    /// The indicator cell is empty: a bad line.
    EmptyValue,
    /// A CSV row that does not have the columns (or is not CSV): a bad line.
    MalformedRow,
    /// A CSV row of a type not in `types`: filtered, in either mode.
    OtherType,
}

impl SkipReason {
    /// Every reason, in label order.
    pub const ALL: [SkipReason; 4] = [
        SkipReason::EmptyValue,
        SkipReason::InvalidValue,
        SkipReason::MalformedRow,
        SkipReason::OtherType,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            SkipReason::InvalidValue => "invalid_value",
            SkipReason::EmptyValue => "empty_value",
            SkipReason::MalformedRow => "malformed_row",
            SkipReason::OtherType => "other_type",
        }
    }
}

/// One skipped bad line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedLine {
    /// 1-based.
    pub line: usize,
    pub reason: SkipReason,
    pub message: String,
}

/// What a body's parse left out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// Skipped lines by reason (bad lines, and rows of other types), all of them.
    #[serde(default)]
    pub by_reason: BTreeMap<SkipReason, usize>,
    /// Rows of other types, by type as written (lowercase).
    #[serde(default)]
    pub by_type: BTreeMap<String, usize>,
    /// The bad lines skipped, in order: the first [`MAX_LISTED_LINES`].
    #[serde(default)]
    pub lines: Vec<SkippedLine>,
}

impl Skipped {
    /// Whether nothing was left out.
    pub fn is_empty(&self) -> bool {
        self.by_reason.is_empty()
    }

    /// Bad lines skipped in all (not counting rows of other types).
    pub fn bad_lines(&self) -> usize {
        self.by_reason
            .iter()
            .filter(|(r, _)| **r != SkipReason::OtherType)
            .map(|(_, n)| n)
            .sum()
    }

    fn other_type(&mut self, t: &str) {
        *self.by_reason.entry(SkipReason::OtherType).or_default() += 1;
        *self.by_type.entry(t.to_ascii_lowercase()).or_default() += 1;
    }
}

/// What a body holds: its prefixes (each with its line) and what was left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub entries: Vec<(IpNetwork, u32)>,
    pub skipped: Skipped,
}

/// Collects a body's entries, refusing or skipping bad lines.
struct Collect {
    on_bad_line: OnBadLine,
    out: Parsed,
}

impl Collect {
    fn new(on_bad_line: OnBadLine) -> Self {
        Self {
            on_bad_line,
            out: Parsed::default(),
        }
    }

    /// A bad line: the error with `refuse`, counted and listed with `skip`.
    fn bad(&mut self, line: usize, reason: SkipReason, message: String) -> Result<(), LineError> {
        if self.on_bad_line == OnBadLine::Refuse {
            return Err(LineError { line, message });
        }
        let s = &mut self.out.skipped;
        *s.by_reason.entry(reason).or_default() += 1;
        if s.lines.len() < MAX_LISTED_LINES {
            s.lines.push(SkippedLine {
                line,
                reason,
                message,
            });
        }
        Ok(())
    }

    fn value(&mut self, text: &str, line: usize) -> Result<(), LineError> {
        match prefix(text, line) {
            Ok(p) => {
                self.out.entries.push(p);
                Ok(())
            }
            Err(e) => self.bad(line, SkipReason::InvalidValue, e.message),
        }
    }
}

/// Every prefix in `text` with its line, in order, refusing at the first bad line. A sanctions
/// list holds no prefixes: it is refused here (see [`count`]).
pub fn parse(format: &Format, text: &str) -> Result<Vec<(IpNetwork, u32)>, LineError> {
    parse_with(format, OnBadLine::Refuse, text).map(|p| p.entries)
}

/// `spec`'s body parsed with its `on_bad_line`.
pub fn parse_source(spec: &SourceSpec, text: &str) -> Result<Parsed, LineError> {
    parse_with(&spec.format, spec.on_bad_line, text)
}

/// Every prefix in `text` with its line, bad lines refused or skipped.
pub fn parse_with(
    format: &Format,
    on_bad_line: OnBadLine,
    text: &str,
) -> Result<Parsed, LineError> {
    let text = crate::files::read::strip_bom(text);
    match format {
        Format::List => list_with(text, on_bad_line),
        Format::Csv { layout } => csv(text, layout, on_bad_line),
        Format::Json { field } => json(text, field.as_deref()).map(|entries| Parsed {
            entries,
            skipped: Skipped::default(),
        }),
        Format::Taxii { .. } => super::taxii::parse(text, crate::today()),
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
    list_with(crate::files::read::strip_bom(text), OnBadLine::Refuse).map(|p| p.entries)
}

fn list_with(text: &str, on_bad_line: OnBadLine) -> Result<Parsed, LineError> {
    let mut c = Collect::new(on_bad_line);
    for (i, line) in text.lines().enumerate() {
        let t = line.split('#').next().unwrap_or_default().trim();
        if !t.is_empty() {
            c.value(t, i + 1)?;
        }
    }
    Ok(c.out)
}

/// An address given with a port, as IOC tables of `ip:port` types write it (`192.0.2.1:443`,
/// `[2001:db8::1]:443`, MISP's `192.0.2.1|443`): the address alone, else `None`.
pub fn without_port(value: &str) -> Option<&str> {
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if let Some((addr, port)) = value.split_once('|') {
        return digits(port.trim()).then_some(addr.trim());
    }
    if let Some(rest) = value.strip_prefix('[') {
        let (addr, port) = rest.split_once("]:")?;
        return digits(port).then_some(addr);
    }
    let (addr, port) = value.rsplit_once(':')?;
    (!addr.contains(':') && digits(port)).then_some(addr)
}

/// CSV in `layout`: `#` lines are comments; every row (of an accepted type) needs a prefix in
/// the layout's column.
fn csv(text: &str, layout: &CsvLayout, on_bad_line: OnBadLine) -> Result<Parsed, LineError> {
    let csv_err = |e: &csv::Error| LineError {
        line: e.position().map_or(1, |p| p.line() as usize),
        message: format!("not valid CSV: {e}"),
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(layout.header)
        .delimiter(layout.delimiter)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = if layout.header {
        Some(reader.headers().map_err(|e| csv_err(&e))?.clone())
    } else {
        None
    };
    let header_line = headers
        .as_ref()
        .and_then(|h| h.position())
        .map_or(1, |p| p.line() as usize);
    let at_header = |message: String| LineError {
        line: header_line,
        message,
    };
    let index = layout
        .column
        .index(headers.as_ref())
        .map_err(|e| at_header(e.to_string()))?;
    let type_index = layout
        .type_column
        .as_ref()
        .map(|c| c.index(headers.as_ref()))
        .transpose()
        .map_err(|e| at_header(e.to_string()))?;
    let mut c = Collect::new(on_bad_line);
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                // A row of the wrong length is a bad line; the reader goes on after it.
                if !matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. }) {
                    return Err(csv_err(&e));
                }
                let line = e.position().map_or(1, |p| p.line() as usize);
                c.bad(line, SkipReason::MalformedRow, csv_err(&e).message)?;
                continue;
            }
        }
        let line = record.position().map_or(0, |p| p.line() as usize);
        let mut port_type = false;
        if let Some(ti) = type_index {
            let t = record.get(ti).unwrap_or_default();
            if !layout.accepts(t) {
                c.out.skipped.other_type(t);
                continue;
            }
            port_type = t.to_ascii_lowercase().contains("port");
        }
        match record.get(index) {
            Some(v) if !v.is_empty() => {
                let v = if port_type {
                    without_port(v).unwrap_or(v)
                } else {
                    v
                };
                c.value(v, line)?;
            }
            Some(_) => c.bad(
                line,
                SkipReason::EmptyValue,
                format!("column {} is empty", layout.column),
            )?,
            None => c.bad(
                line,
                SkipReason::MalformedRow,
                format!(
                    "the row has {} fields, no column {}",
                    record.len(),
                    layout.column
                ),
            )?,
        }
    }
    Ok(c.out)
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
        Format::Csv {
            layout: CsvLayout::named(c),
        }
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
