//! Reads what a configuration points at (sanctions lists, indicator files, the IP-to-ASN
//! table, the last-known-good copies of remote sources) and turns every network group into
//! candidate prefixes, each remembering where it was written. The compiler then works on
//! memory only.

use std::{collections::HashMap, net::IpAddr, path::PathBuf, sync::Arc};

use chrono::{DateTime, Utc};
use ipnetwork::IpNetwork;
use serde::Serialize;
use toml::Spanned;

use crate::{
    cidr,
    config::{self, Config, ConfigError, Location, OnSourceFailure},
    sources::{self, SourceSpec},
};

/// How a candidate prefix was listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// In the entity's `prefixes`.
    Listed,
    /// In an indicator file (its path).
    File(Arc<str>),
    /// Announced by this ASN, per the ASN table (its path and SHA-256).
    Asn { asn: u32, table: Arc<str> },
    /// In a remote source (the candidate's file is its last-known-good copy).
    Source { name: Arc<str> },
}

/// What became of a declared source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceStatus {
    /// Its last-known-good copy was read.
    Used,
    /// It had no usable content and `on_source_failure = "skip"`: it contributes nothing.
    Skipped,
    /// No network group names it.
    Unreferenced,
}

/// A declared source, for `embargo check` and logs.
#[derive(Clone, Debug, Serialize)]
pub struct SourceReport {
    pub name: String,
    pub url: String,
    pub status: SourceStatus,
    /// The last-known-good copy.
    pub cache: PathBuf,
    pub entries: usize,
    /// When the copy was downloaded, and last confirmed by the server.
    pub fetched_at: Option<DateTime<Utc>>,
    pub checked_at: Option<DateTime<Utc>>,
    /// Why it was skipped.
    pub problem: Option<String>,
}

/// A prefix from a network group, with where it was written.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub net: IpNetwork,
    pub via: Via,
    /// Index into [`Resolved::paths`], 1-based line and column.
    pub file: u32,
    pub line: u32,
    pub column: u32,
}

/// Every group's candidates: `groups[entity][group]`, in configuration order.
#[derive(Debug, Default)]
pub struct Resolved {
    /// The configuration's files first (same indices as [`Config::files`]), then indicator files.
    pub paths: Vec<PathBuf>,
    pub groups: Vec<Vec<Vec<Candidate>>>,
    /// The ASN table as `path sha256:<hex>`, if one was read.
    pub asn_table: Option<String>,
    /// Every declared source, in configuration order.
    pub sources: Vec<SourceReport>,
    /// Every declared sanctions list, read and parsed, in configuration order.
    pub lists: Vec<ResolvedList>,
}

/// A `[[lists]]` file, read and parsed whole.
#[derive(Clone, Debug)]
pub struct ResolvedList {
    pub name: String,
    pub path: PathBuf,
    pub document: crate::lists::ListDocument,
    /// The date a designation missing from the list counts as delisted from: the list's
    /// publication date, else the file's modification date (UTC).
    pub as_of: chrono::NaiveDate,
    /// Whether `as_of` is the publication date (else the file's date).
    pub published: bool,
}

impl Resolved {
    pub fn location(&self, c: &Candidate) -> Location {
        Location {
            file: self.paths[c.file as usize].clone(),
            line: c.line as usize,
            column: c.column as usize,
        }
    }
}

/// An IP-to-ASN range table: `ip_range_start,ip_range_end,as_number[,as_organization]`
/// (the layout of the `@ip-location-db/*-asn` CSVs), one range per line.
#[derive(Debug, Default)]
pub struct AsnTable {
    /// (asn, start, end), in file order.
    pub ranges: Vec<(u32, IpAddr, IpAddr)>,
    pub version: String,
}

impl AsnTable {
    /// Parses the table's text; `path` names it in errors.
    pub fn parse(path: &std::path::Path, text: &str) -> Result<Self, ConfigError> {
        let mut ranges = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let mut cols = t.split(',');
            let (Some(a), Some(b), Some(asn)) = (cols.next(), cols.next(), cols.next()) else {
                return Err(invalid(
                    path,
                    line_no,
                    "expected ip_range_start,ip_range_end,as_number",
                ));
            };
            // A header row, if present.
            if line_no == 1 && a.trim() == "ip_range_start" {
                continue;
            }
            let start: IpAddr = a
                .trim()
                .parse()
                .map_err(|_| invalid(path, line_no, &format!("`{a}` is not an IP address")))?;
            let end: IpAddr = b
                .trim()
                .parse()
                .map_err(|_| invalid(path, line_no, &format!("`{b}` is not an IP address")))?;
            let asn: u32 = asn
                .trim()
                .trim_start_matches("AS")
                .parse()
                .map_err(|_| invalid(path, line_no, &format!("`{asn}` is not an AS number")))?;
            if start.is_ipv4() != end.is_ipv4() || cidr::range_to_cidrs(start, end).is_none() {
                return Err(invalid(
                    path,
                    line_no,
                    "the range's end is before its start or of another family",
                ));
            }
            ranges.push((asn, start, end));
        }
        Ok(Self {
            ranges,
            version: format!("{} sha256:{}", path.display(), sha256_hex(text.as_bytes())),
        })
    }

    /// The minimal CIDRs announced by `asn`.
    pub fn prefixes(&self, asn: u32) -> Vec<IpNetwork> {
        self.ranges
            .iter()
            .filter(|(a, _, _)| *a == asn)
            .flat_map(|(_, s, e)| cidr::range_to_cidrs(*s, *e).unwrap_or_default())
            .collect()
    }
}

fn invalid(path: &std::path::Path, line: usize, message: &str) -> ConfigError {
    ConfigError::Invalid {
        at: Location {
            file: path.to_owned(),
            line,
            column: 1,
        },
        message: message.to_owned(),
    }
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest as _, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads an indicator file: one CIDR or address per line, `#` starts a comment.
pub fn parse_indicator_file(
    path: &std::path::Path,
    text: &str,
) -> Result<Vec<(IpNetwork, u32)>, ConfigError> {
    sources::parse::list(text).map_err(|e| invalid(path, e.line, &e.message))
}

/// A source's entries, read once however many groups name it.
struct SourceEntries {
    /// Index of its copy in [`Resolved::paths`].
    file: u32,
    name: Arc<str>,
    entries: Vec<(IpNetwork, u32)>,
}

/// Reads `spec`'s last-known-good copy. `Ok(None)`: it has no usable content and is skipped.
fn read_source(spec: &SourceSpec, r: &mut Resolved) -> Result<Option<SourceEntries>, ConfigError> {
    let name = &spec.name;
    let (refusal, problem) = match sources::cache::load(spec) {
        Ok(c) => match sources::parse::parse(&spec.format, &c.body) {
            Ok(entries) => {
                let file = r.paths.len() as u32;
                r.paths.push(c.paths.body.clone());
                r.sources.push(SourceReport {
                    name: name.clone(),
                    url: spec.url.to_string(),
                    status: SourceStatus::Used,
                    cache: c.paths.body,
                    entries: entries.len(),
                    fetched_at: Some(c.meta.fetched_at),
                    checked_at: Some(c.meta.checked_at),
                    problem: None,
                });
                return Ok(Some(SourceEntries {
                    file,
                    name: Arc::from(name.as_str()),
                    entries,
                }));
            }
            Err(e) => {
                let at = Location {
                    file: c.paths.body.clone(),
                    line: e.line,
                    column: 1,
                };
                let message = format!(
                    "source `{name}`: {} in its last-known-good copy; the copy is not used",
                    e.message
                );
                let problem = format!("{at}: {message}");
                (ConfigError::Invalid { at, message }, problem)
            }
        },
        Err(e) => {
            let message = format!("source `{name}` has no usable content: {e}");
            (
                ConfigError::Invalid {
                    at: spec.at.clone(),
                    message: format!(
                        "{message}; `embargo fetch` or `embargo run` fetches it, or set \
                         on_source_failure = \"skip\" to go on without it"
                    ),
                },
                message,
            )
        }
    };
    match spec.on_failure {
        OnSourceFailure::Refuse => Err(refusal),
        OnSourceFailure::Skip => {
            tracing::warn!(source = %name, "source skipped (on_source_failure = \"skip\"): {problem}");
            r.sources.push(SourceReport {
                name: name.clone(),
                url: spec.url.to_string(),
                status: SourceStatus::Skipped,
                cache: sources::cache::Paths::of(spec).body,
                entries: 0,
                fetched_at: None,
                checked_at: None,
                problem: Some(problem),
            });
            Ok(None)
        }
    }
}

/// Reads and parses every `[[lists]]` file. Anything wrong with one refuses the whole
/// configuration: a list that cannot be read is never taken as an empty one.
fn read_lists(config: &Config, r: &mut Resolved) -> Result<(), ConfigError> {
    let main = config.main_file();
    for def in &config.main.lists {
        let name = def.name.get_ref();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(main.invalid(
                def.name.span().start,
                format!(
                    "list name `{name}` must be a slug: lowercase letters, digits, `-` and `_`"
                ),
            ));
        }
        if r.lists.iter().any(|l| l.name == *name) {
            return Err(main.invalid(
                def.name.span().start,
                format!("list name `{name}` is declared twice; names must be unique"),
            ));
        }
        let format = *def.format.get_ref();
        if let Some(alt) = &def.alt_path
            && format != crate::lists::ListFormat::OfacCsv
        {
            return Err(main.invalid(
                alt.span().start,
                format!("alt_path is for format \"ofac-csv\" only (OFAC's alt.csv); remove it from list `{name}`"),
            ));
        }
        let read = |p: &Spanned<String>| -> Result<(PathBuf, String), ConfigError> {
            let path = config.relative(0, p.get_ref());
            let text = config::read_text(&path).map_err(|e| match e {
                ConfigError::Read { source, .. } => main.invalid(
                    p.span().start,
                    format!(
                        "list `{name}`: {} cannot be read ({source}); fix the path or download the list",
                        path.display()
                    ),
                ),
                other => other,
            })?;
            Ok((path, text))
        };
        let (path, text) = read(&def.path)?;
        let alt = def.alt_path.as_ref().map(read).transpose()?;
        let input = crate::lists::ListInput {
            path: &path,
            text: &text,
            alt: alt.as_ref().map(|(p, t)| (p.as_path(), t.as_str())),
        };
        let document = crate::lists::parse(format, &input).map_err(|e| ConfigError::Invalid {
            at: Location {
                file: e.path.clone(),
                line: e.line,
                column: 1,
            },
            message: format!(
                "list `{name}` ({format}): {}; the list is refused and nothing from this configuration is applied",
                e.message
            ),
        })?;
        let (as_of, published) = match document.published {
            Some(d) => (d, true),
            None => {
                let modified = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .map(|t| DateTime::<Utc>::from(t).date_naive())
                    .unwrap_or_else(|_| Utc::now().date_naive());
                (modified, false)
            }
        };
        r.paths.push(path.clone());
        if let Some((alt_path, _)) = &alt {
            r.paths.push(alt_path.clone());
        }
        r.lists.push(ResolvedList {
            name: name.clone(),
            path,
            document,
            as_of,
            published,
        });
    }
    Ok(())
}

/// Resolves every network group of `config`.
pub fn resolve(config: &Config) -> Result<Resolved, ConfigError> {
    let mut r = Resolved {
        paths: config.files.iter().map(|f| f.path.clone()).collect(),
        ..Default::default()
    };
    read_lists(config, &mut r)?;
    let needs_asn = config
        .entities
        .iter()
        .any(|e| e.def.networks.iter().any(|g| !g.asn.is_empty()));
    let asn_table = match (&config.main.asn_table, needs_asn) {
        (Some(p), true) => {
            let path = config.relative(0, p.get_ref());
            let text = config::read_text(&path).map_err(|e| match e {
                ConfigError::Read { source, .. } => config.main_file().invalid(
                    p.span().start,
                    format!("asn_table {} cannot be read ({source})", path.display()),
                ),
                other => other,
            })?;
            let t = AsnTable::parse(&path, &text)?;
            r.asn_table = Some(t.version.clone());
            Some(t)
        }
        (None, true) => {
            let e = config
                .entities
                .iter()
                .find(|e| e.def.networks.iter().any(|g| !g.asn.is_empty()))
                .expect("needs_asn");
            let g = e
                .def
                .networks
                .iter()
                .find(|g| !g.asn.is_empty())
                .expect("needs_asn");
            return Err(config.files[e.file].invalid(
                g.asn[0].span().start,
                "`asn` needs an IP-to-ASN table: set asn_table = \"<file>\" in the main configuration",
            ));
        }
        _ => None,
    };
    let table_name: Arc<str> = Arc::from(r.asn_table.clone().unwrap_or_default());
    let specs = sources::spec::specs(config)?;
    let mut read: HashMap<&str, Option<SourceEntries>> = HashMap::new();
    for src in &config.entities {
        let file = &config.files[src.file];
        let mut groups = Vec::with_capacity(src.def.networks.len());
        for g in &src.def.networks {
            let mut cands = Vec::new();
            for p in &g.prefixes {
                let net = config::parse_prefix(p.get_ref())
                    .map_err(|m| file.invalid(p.span().start, m))?;
                let at = file.at(p.span().start);
                cands.push(Candidate {
                    net,
                    via: Via::Listed,
                    file: src.file as u32,
                    line: at.line as u32,
                    column: at.column as u32,
                });
            }
            for f in &g.files {
                let path = config.relative(src.file, f.get_ref());
                let text = config::read_text(&path).map_err(|e| match e {
                    ConfigError::Read { source, .. } => file.invalid(
                        f.span().start,
                        format!(
                            "indicator file {} cannot be read ({source}); fix the path",
                            path.display()
                        ),
                    ),
                    other => other,
                })?;
                let idx = r.paths.len() as u32;
                r.paths.push(path.clone());
                let name: Arc<str> = Arc::from(path.display().to_string());
                for (net, line) in parse_indicator_file(&path, &text)? {
                    cands.push(Candidate {
                        net,
                        via: Via::File(name.clone()),
                        file: idx,
                        line,
                        column: 1,
                    });
                }
            }
            for a in &g.asn {
                let table = asn_table.as_ref().expect("checked above");
                let prefixes = table.prefixes(*a.get_ref());
                if prefixes.is_empty() {
                    tracing::warn!(asn = *a.get_ref(), table = %table.version, "ASN has no ranges in the table");
                }
                let at = file.at(a.span().start);
                for net in prefixes {
                    cands.push(Candidate {
                        net,
                        via: Via::Asn {
                            asn: *a.get_ref(),
                            table: table_name.clone(),
                        },
                        file: src.file as u32,
                        line: at.line as u32,
                        column: at.column as u32,
                    });
                }
            }
            for name in &g.sources {
                let Some(spec) = specs.iter().find(|s| s.name == *name.get_ref()) else {
                    return Err(
                        file.invalid(name.span().start, unknown_source(name.get_ref(), &specs))
                    );
                };
                if !read.contains_key(spec.name.as_str()) {
                    let entries = read_source(spec, &mut r)?;
                    read.insert(spec.name.as_str(), entries);
                }
                let Some(src) = &read[spec.name.as_str()] else {
                    continue;
                };
                for (net, line) in &src.entries {
                    cands.push(Candidate {
                        net: *net,
                        via: Via::Source {
                            name: src.name.clone(),
                        },
                        file: src.file,
                        line: *line,
                        column: 1,
                    });
                }
            }
            groups.push(cands);
        }
        r.groups.push(groups);
    }
    // The report lists every declared source in configuration order.
    let mut reports = std::mem::take(&mut r.sources);
    for spec in &specs {
        match reports.iter().position(|x| x.name == spec.name) {
            Some(i) => r.sources.push(reports.swap_remove(i)),
            None => r.sources.push(SourceReport {
                name: spec.name.clone(),
                url: spec.url.to_string(),
                status: SourceStatus::Unreferenced,
                cache: sources::cache::Paths::of(spec).body,
                entries: 0,
                fetched_at: None,
                checked_at: None,
                problem: None,
            }),
        }
    }
    Ok(r)
}

fn unknown_source(name: &str, specs: &[SourceSpec]) -> String {
    if specs.is_empty() {
        format!(
            "unknown source `{name}`: declare it in the main file with [[sources]] name = \"{name}\""
        )
    } else {
        format!(
            "unknown source `{name}` (declared: {}); declare it in the main file with [[sources]]",
            specs
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_example_sources_are_read_from_their_shipped_copies() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples");
        let c = config::load(&root.join("full.toml")).unwrap();
        let r = resolve(&c).unwrap();
        let status: Vec<(&str, SourceStatus, usize)> = r
            .sources
            .iter()
            .map(|s| (s.name.as_str(), s.status, s.entries))
            .collect();
        assert_eq!(
            status,
            vec![
                ("advisory-feed", SourceStatus::Used, 3),
                ("partner-list", SourceStatus::Used, 2),
                ("vendor-iocs", SourceStatus::Skipped, 0),
            ]
        );
        let from_sources: Vec<&Candidate> = r
            .groups
            .iter()
            .flatten()
            .flatten()
            .filter(|c| matches!(c.via, Via::Source { .. }))
            .collect();
        assert_eq!(from_sources.len(), 5);
        let at = r.location(from_sources[0]);
        assert_eq!(at.file, root.join("cache/advisory-feed.body"));
        assert_eq!(at.line, 2, "the first line is a comment");
    }
}
