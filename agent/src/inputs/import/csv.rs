//! CSV with a header row and named columns (`embargo import csv`), read with the `csv` crate.
//!
//! The indicator column holds an address or CIDR (defanged forms accepted, as in
//! [`super::ioc::refang`]). A row whose indicator is not one is an error naming the file and
//! line, unless the type column says it is not an IP indicator (any value other than those in
//! [`IP_TYPES`], e.g. `domain`, `url`, `sha256`): such rows are skipped and counted. Optional
//! columns give each row its evidence: the source (else `--source`), the first-seen date (the
//! evidence's `valid_from`) and the last-seen date (the evidence counts through that day:
//! `expires` is the day after). Dates are `YYYY-MM-DD` or RFC 3339 timestamps (their UTC day);
//! empty means none. A filter column and value keep only the rows of one entity.

use std::path::Path;

use chrono::{DateTime, NaiveDate};

use super::{Defaults, EvidenceKey, ImportError, Imported, Indicator, ioc::refang, parse_net};
use crate::config::{self, Confidence, Date};

/// Type-column values (compared case-insensitively) that say a row is an IP indicator: its
/// indicator must then be an address or CIDR.
pub const IP_TYPES: &[&str] = &[
    "ip",
    "ipv4",
    "ipv6",
    "ip-src",
    "ip-dst",
    "ipv4-addr",
    "ipv6-addr",
    "ip-address",
    "cidr",
    "ipv4-cidr",
    "ipv6-cidr",
    "netblock",
];

/// Which columns mean what (header names, matched exactly).
#[derive(Clone, Debug, Default)]
pub struct Columns {
    pub indicator: String,
    pub kind: Option<String>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub source: Option<String>,
    /// Keep only rows whose column (first) equals the value (second), both trimmed.
    pub filter: Option<(String, String)>,
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

/// Reads CSV text; `path` names it in errors.
pub fn parse(
    path: &Path,
    text: &str,
    columns: &Columns,
    defaults: &Defaults,
) -> Result<Imported, ImportError> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(crate::files::read::strip_bom(text).as_bytes());
    let at_line = |line: u64| format!("{}:{line}", path.display());
    let csv_error = |e: ::csv::Error| {
        let line = e.position().map_or(1, |p| p.line());
        ImportError::invalid(at_line(line), format!("not valid CSV: {e}"))
    };
    let headers = reader.headers().map_err(csv_error)?.clone();
    let find = |name: &str| -> Result<usize, ImportError> {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| {
                ImportError::invalid(
                    at_line(1),
                    format!(
                        "no column `{name}`; the header has: {}",
                        headers.iter().collect::<Vec<_>>().join(", ")
                    ),
                )
            })
    };
    let indicator = find(&columns.indicator)?;
    let kind = columns.kind.as_deref().map(find).transpose()?;
    let first_seen = columns.first_seen.as_deref().map(find).transpose()?;
    let last_seen = columns.last_seen.as_deref().map(find).transpose()?;
    let source = columns.source.as_deref().map(find).transpose()?;
    let filter = match &columns.filter {
        Some((c, v)) => Some((find(c)?, c.as_str(), v.trim())),
        None => None,
    };
    let confidence = defaults.confidence.unwrap_or(Confidence::Medium);
    let mut out = Imported::default();
    let mut kept = 0usize;
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let line = record.position().map_or(0, |p| p.line());
        let invalid = |m: String| ImportError::invalid(at_line(line), m);
        let field = |i: usize| record.get(i).unwrap_or_default().trim();
        if let Some((fi, name, value)) = filter
            && field(fi) != value
        {
            out.summary
                .skip(format!("rows whose `{name}` is not `{value}`"));
            continue;
        }
        kept += 1;
        let raw = field(indicator);
        let net = match parse_net(&refang(raw)) {
            Ok(net) => net,
            Err(m) => {
                let t = kind.map(field).unwrap_or_default();
                if !t.is_empty() && !IP_TYPES.iter().any(|x| x.eq_ignore_ascii_case(t)) {
                    out.summary.skip(format!("rows of type `{t}`"));
                    continue;
                }
                let hint = if kind.is_some() {
                    "fix it, or give the row a type that is not an IP type"
                } else {
                    "fix it, or name the type column with --type-column"
                };
                return Err(invalid(format!(
                    "column `{}`: {m}; {hint}",
                    columns.indicator
                )));
            }
        };
        let source = match source.map(field).filter(|s| !s.is_empty()) {
            Some(s) => s.to_owned(),
            None => defaults.source.clone().ok_or_else(|| {
                invalid(match &columns.source {
                    Some(c) => format!("column `{c}` is empty; fill it in or pass --source URL"),
                    None => "the rows name no source: pass --source URL or --source-column".into(),
                })
            })?,
        };
        let read_date = |col: Option<usize>, name: &Option<String>| {
            col.map(|i| {
                date(field(i)).map_err(|m| {
                    invalid(format!(
                        "column `{}`: {m}",
                        name.as_deref().unwrap_or_default()
                    ))
                })
            })
            .transpose()
            .map(Option::flatten)
        };
        let from = read_date(first_seen, &columns.first_seen)?;
        let last = read_date(last_seen, &columns.last_seen)?;
        if let (Some(f), Some(l)) = (from, last)
            && f > l
        {
            return Err(invalid(format!(
                "first seen {f} is after last seen {l}; fix the dates"
            )));
        }
        out.summary.imported += 1;
        out.indicators.push(Indicator {
            net,
            evidence: EvidenceKey {
                source,
                confidence,
                valid_from: from.map(Date),
                // Seen on its last-seen day: it counts through that day.
                expires: last.map(|l| Date(l.succ_opt().unwrap_or(l))),
            },
            label: None,
        });
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
