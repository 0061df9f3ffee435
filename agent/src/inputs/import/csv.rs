//! CSV (`embargo import csv`), read with the `csv` crate: a header row and named columns, or
//! no header row (`--no-header`, columns by number, 1 for the first, `#` lines comments), any
//! one-byte delimiter (`--delimiter`, e.g. a tab).
//!
//! The indicator column holds an address or CIDR (defanged forms accepted, as in
//! [`super::ioc::refang`]; for types naming a port, `ip:port` or MISP's `ip|port`, the port is
//! dropped). With a type column, rows whose type is not one of the accepted types (`--types`,
//! default [`IP_TYPES`], compared case-insensitively) are skipped and counted by type; an empty
//! type is read as accepted. A row whose indicator is not an address is an error naming the
//! file and line, or with `--on-bad-line skip` skipped, counted and listed. Optional columns
//! give each row its evidence: the source (else `--source`), the first-seen date (the
//! evidence's `valid_from`) and the last-seen date (the evidence counts through that day:
//! `expires` is the day after, or with `--max-age` see [`super::Lifetime`]). Dates are
//! `YYYY-MM-DD` or RFC 3339 timestamps (their UTC day); empty means none. A filter column and
//! value keep only the rows of one entity.

use std::path::Path;

use chrono::{DateTime, NaiveDate};

use super::{Defaults, EvidenceKey, ImportError, Imported, Indicator, ioc::refang, parse_net};
use crate::config::{
    self, ColumnRef, Confidence, Date, OnBadLine,
    validate::{self, Column},
};

/// Type-column values (compared case-insensitively) that say a row is an IP indicator: the
/// accepted types unless `--types` (or a source's `types`) says otherwise. The names of common
/// IOC tables: STIX/OpenCTI (`ipv4-addr`), MISP (`ip-dst`, `ip-src`, `ip-dst|port`,
/// `ip-src|port`), abuse.ch ThreatFox (`ip:port`) and generic ones.
pub const IP_TYPES: &[&str] = &[
    "ip",
    "ipv4",
    "ipv6",
    "ip-src",
    "ip-dst",
    "ip-src|port",
    "ip-dst|port",
    "ip:port",
    "ipv4-addr",
    "ipv6-addr",
    "ip-address",
    "cidr",
    "ipv4-cidr",
    "ipv6-cidr",
    "netblock",
];

/// Which columns mean what (header names, or 1-based numbers), and how the file is laid out.
#[derive(Clone, Debug)]
pub struct Columns {
    pub indicator: String,
    pub kind: Option<String>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub source: Option<String>,
    /// Keep only rows whose column (first) equals the value (second), both trimmed.
    pub filter: Option<(String, String)>,
    /// One byte (default `,`).
    pub delimiter: u8,
    /// Whether the first row is a header (default true).
    pub header: bool,
    /// With `kind`: the accepted types (default [`IP_TYPES`]).
    pub types: Option<Vec<String>>,
    /// What a bad row does (default refuse: the whole file).
    pub on_bad_line: OnBadLine,
}

impl Default for Columns {
    fn default() -> Self {
        Self {
            indicator: String::new(),
            kind: None,
            first_seen: None,
            last_seen: None,
            source: None,
            filter: None,
            delimiter: b',',
            header: true,
            types: None,
            on_bad_line: OnBadLine::Refuse,
        }
    }
}

/// Reads the CSV file at `path`.
pub fn read(path: &Path, columns: &Columns, defaults: &Defaults) -> Result<Imported, ImportError> {
    let text = config::read_text(path)?;
    parse(path, &text, columns, defaults)
}

/// A date column's value: `None` when empty.
fn date(text: &str) -> Result<Option<NaiveDate>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .or_else(|_| DateTime::parse_from_rfc3339(t).map(|d| d.naive_utc().date()))
        .map(Some)
        .map_err(|_| format!("`{t}` is not a date like 2024-09-18 or 2024-09-18T10:00:00Z"))
}

/// A column option checked as a feed's is ([`validate::csv_column`]); `flag` names it.
fn column(text: &str, header: bool, flag: &str) -> Result<Column, ImportError> {
    validate::csv_column(&ColumnRef::Name(text.to_owned()), header, flag)
        .map_err(|m| ImportError::Usage(m.to_string().replacen(flag, &format!("--{flag}"), 1)))
}

/// Reads CSV text; `path` names it in errors.
pub fn parse(
    path: &Path,
    text: &str,
    columns: &Columns,
    defaults: &Defaults,
) -> Result<Imported, ImportError> {
    let header = columns.header;
    let types: Vec<String> = match &columns.types {
        Some(t) => validate::csv_types(t).map_err(|m| ImportError::Usage(format!("--{m}")))?,
        None => IP_TYPES.iter().map(|t| (*t).to_owned()).collect(),
    };
    if columns.types.is_some() && columns.kind.is_none() {
        return Err(ImportError::Usage(
            "--types needs --type-column, the column the types are in".into(),
        ));
    }
    let layout = validate::CsvLayout {
        delimiter: columns.delimiter,
        header,
        column: column(&columns.indicator, header, "column")?,
        type_column: columns
            .kind
            .as_deref()
            .map(|c| column(c, header, "type-column"))
            .transpose()?,
        types,
    };
    let optional =
        |c: &Option<String>, flag: &str| c.as_deref().map(|c| column(c, header, flag)).transpose();
    let first_col = optional(&columns.first_seen, "first-seen-column")?;
    let last_col = optional(&columns.last_seen, "last-seen-column")?;
    let source_col = optional(&columns.source, "source-column")?;
    let filter_col = match &columns.filter {
        Some((c, v)) => Some((column(c, header, "filter-column")?, c.as_str(), v.trim())),
        None => None,
    };
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(header)
        .delimiter(layout.delimiter)
        .comment(if header { None } else { Some(b'#') })
        .from_reader(crate::files::read::strip_bom(text).as_bytes());
    let at_line = |line: u64| format!("{}:{line}", path.display());
    let csv_error = |e: &::csv::Error| {
        let line = e.position().map_or(1, |p| p.line());
        ImportError::invalid(at_line(line), format!("not valid CSV: {e}"))
    };
    let headers = if header {
        Some(reader.headers().map_err(|e| csv_error(&e))?.clone())
    } else {
        None
    };
    let find = |c: &Column| -> Result<usize, ImportError> {
        c.index(headers.as_ref())
            .map_err(|m| ImportError::invalid(at_line(1), m.to_string()))
    };
    let indicator = find(&layout.column)?;
    let kind = layout.type_column.as_ref().map(find).transpose()?;
    let first_seen = first_col.as_ref().map(find).transpose()?;
    let last_seen = last_col.as_ref().map(find).transpose()?;
    let source = source_col.as_ref().map(find).transpose()?;
    let filter = match &filter_col {
        Some((c, name, v)) => Some((find(c)?, *name, *v)),
        None => None,
    };
    let confidence = defaults.confidence.unwrap_or(Confidence::Medium);
    let skip = columns.on_bad_line == OnBadLine::Skip;
    let mut out = Imported::default();
    let mut kept = 0usize;
    let mut record = ::csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) if skip && matches!(e.kind(), ::csv::ErrorKind::UnequalLengths { .. }) => {
                let line = e.position().map_or(1, |p| p.line());
                out.summary.skip(BAD_LINES);
                out.summary
                    .bad_lines
                    .push((at_line(line), format!("not valid CSV: {e}")));
                continue;
            }
            Err(e) => return Err(csv_error(&e)),
        }
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(i).unwrap_or_default().trim();
        if let Some((fi, name, value)) = filter
            && field(fi) != value
        {
            out.summary
                .skip(format!("rows whose `{name}` is not `{value}`"));
            continue;
        }
        kept += 1;
        let t = kind.map(field).unwrap_or_default();
        if kind.is_some() && !layout.accepts(t) {
            out.summary.skip(format!("rows of type `{t}`"));
            continue;
        }
        let cols = RowColumns {
            indicator,
            port: t.to_ascii_lowercase().contains("port"),
            has_kind: kind.is_some(),
            first_seen,
            last_seen,
            source,
        };
        match row(&record, cols, columns, defaults, confidence) {
            Ok(ind) => {
                out.summary.imported += 1;
                out.indicators.push(ind);
            }
            Err(RowError::Bad(m)) if skip => {
                out.summary.skip(BAD_LINES);
                out.summary.bad_lines.push((at_line(line), m));
            }
            Err(RowError::Bad(m) | RowError::Fatal(m)) => {
                return Err(ImportError::invalid(at_line(line), m));
            }
        }
    }
    if let Some((_, name, value)) = filter
        && kept == 0
    {
        return Err(ImportError::invalid(
            path.display(),
            format!("no row has `{name}` = `{value}`; check --filter-value (matched exactly)"),
        ));
    }
    Ok(out)
}

/// The summary's reason for bad lines skipped with `--on-bad-line skip`.
pub const BAD_LINES: &str = "bad lines (--on-bad-line skip; listed below)";

/// The column indexes one row is read with.
#[derive(Clone, Copy)]
struct RowColumns {
    indicator: usize,
    /// The row's type names a port (`ip:port`, `ip-dst|port`): drop it from the value.
    port: bool,
    has_kind: bool,
    first_seen: Option<usize>,
    last_seen: Option<usize>,
    source: Option<usize>,
}

/// Why a row was not read: `Bad` is the row's data (skipped with `--on-bad-line skip`),
/// `Fatal` what the command line must fix.
enum RowError {
    Bad(String),
    Fatal(String),
}

/// One row of an accepted type, as an indicator.
fn row(
    record: &::csv::StringRecord,
    c: RowColumns,
    columns: &Columns,
    defaults: &Defaults,
    confidence: Confidence,
) -> Result<Indicator, RowError> {
    let field = |i: usize| record.get(i).unwrap_or_default().trim();
    let raw = refang(field(c.indicator));
    let value = if c.port {
        crate::inputs::sources::parse::without_port(&raw).unwrap_or(&raw)
    } else {
        &raw
    };
    let net = parse_net(value).map_err(|m| {
        let hint = if c.has_kind {
            "fix it, or give the row a type that is not an IP type"
        } else {
            "fix it, or name the type column with --type-column"
        };
        RowError::Bad(format!("column `{}`: {m}; {hint}", columns.indicator))
    })?;
    let source = match c.source.map(field).filter(|s| !s.is_empty()) {
        Some(s) => s.to_owned(),
        None => defaults
            .source
            .clone()
            .ok_or_else(|| match &columns.source {
                Some(col) => RowError::Bad(format!(
                    "column `{col}` is empty; fill it in or pass --source URL"
                )),
                None => RowError::Fatal(
                    "the rows name no source: pass --source URL or --source-column".into(),
                ),
            })?,
    };
    let read_date = |col: Option<usize>, name: &Option<String>| {
        col.map(|i| {
            date(field(i)).map_err(|m| {
                RowError::Bad(format!(
                    "column `{}`: {m}",
                    name.as_deref().unwrap_or_default()
                ))
            })
        })
        .transpose()
        .map(Option::flatten)
    };
    let from = read_date(c.first_seen, &columns.first_seen)?;
    let last = read_date(c.last_seen, &columns.last_seen)?;
    if let (Some(f), Some(l)) = (from, last)
        && f > l
    {
        return Err(RowError::Bad(format!(
            "first seen {f} is after last seen {l}; fix the dates"
        )));
    }
    Ok(Indicator {
        net,
        evidence: EvidenceKey {
            source,
            confidence,
            valid_from: from.map(Date),
            // Seen on its last-seen day: it counts through that day.
            expires: last.map(|l| Date(l.succ_opt().unwrap_or(l))),
            last_seen: last.map(Date),
            max_age: None,
        },
        label: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EvidenceKind;

    fn defaults(source: Option<&str>) -> Defaults {
        Defaults {
            kind: EvidenceKind::Advisory,
            source: source.map(String::from),
            retrieved: Date(NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()),
            confidence: None,
        }
    }

    fn cols() -> Columns {
        Columns {
            indicator: "indicator".into(),
            kind: Some("type".into()),
            ..Columns::default()
        }
    }

    const TEXT: &str = "entity,indicator,type,first_seen,last_seen,source\n\
                        a,192.0.2.1,ipv4,2024-01-01,2024-06-30,https://one.example/\n\
                        a,evil.example,domain,,,https://one.example/\n\
                        b,198.51.100.0/24,ipv4,,,https://two.example/\n\
                        a,203.0.113[.]9,ipv4,2024-01-01,2024-06-30,https://one.example/\n";

    #[test]
    fn rows_become_indicators_with_their_evidence() {
        let c = Columns {
            first_seen: Some("first_seen".into()),
            last_seen: Some("last_seen".into()),
            source: Some("source".into()),
            filter: Some(("entity".into(), "a".into())),
            ..cols()
        };
        let got = parse(Path::new("i.csv"), TEXT, &c, &defaults(None)).unwrap();
        let nets: Vec<String> = got.indicators.iter().map(|i| i.net.to_string()).collect();
        assert_eq!(nets, ["192.0.2.1/32", "203.0.113.9/32"]);
        let e = &got.indicators[0].evidence;
        assert_eq!(e.source, "https://one.example/");
        assert_eq!(e.valid_from.unwrap().to_string(), "2024-01-01");
        assert_eq!(e.expires.unwrap().to_string(), "2024-07-01");
        assert_eq!(got.summary.skipped.get("rows of type `domain`"), Some(&1));
        assert_eq!(
            got.summary.skipped.get("rows whose `entity` is not `a`"),
            Some(&1)
        );
    }

    #[test]
    fn bad_rows_name_the_file_and_line() {
        let bad = TEXT.replace("203.0.113[.]9", "203.0.113.999");
        let err = parse(Path::new("i.csv"), &bad, &cols(), &defaults(Some("s")))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("i.csv:5: column `indicator`"), "{err}");
        // Without a type column, a domain is an error too.
        let c = Columns {
            kind: None,
            ..cols()
        };
        let err = parse(Path::new("i.csv"), TEXT, &c, &defaults(Some("s")))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("i.csv:3: "), "{err}");
        assert!(err.contains("--type-column"), "{err}");
        // An IP type with a non-address is an error, not a skip.
        let bad = TEXT.replace("evil.example,domain", "evil.example,ipv4");
        assert!(parse(Path::new("i.csv"), &bad, &cols(), &defaults(Some("s"))).is_err());
        let bad = TEXT.replace("2024-06-30,https://one.example/\na", "2023-06-30,x\na");
        let c = Columns {
            first_seen: Some("first_seen".into()),
            last_seen: Some("last_seen".into()),
            ..cols()
        };
        let err = parse(Path::new("i.csv"), &bad, &c, &defaults(Some("s")))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("i.csv:2: first seen"), "{err}");
        let err = parse(
            Path::new("i.csv"),
            TEXT,
            &Columns {
                indicator: "ioc".into(),
                ..cols()
            },
            &defaults(Some("s")),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("no column `ioc`") && err.contains("entity, indicator"),
            "{err}"
        );
        let err = parse(
            Path::new("i.csv"),
            TEXT,
            &Columns {
                filter: Some(("entity".into(), "c".into())),
                ..cols()
            },
            &defaults(Some("s")),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no row has `entity` = `c`"), "{err}");
        assert!(
            parse(Path::new("i.csv"), TEXT, &cols(), &defaults(None))
                .unwrap_err()
                .to_string()
                .contains("--source")
        );
    }
}
