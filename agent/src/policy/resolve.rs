//! Reads what a configuration points at (sanctions lists, indicator files, the IP-to-ASN and
//! IP-to-country range tables ([`crate::inputs::ranges`]), the last-known-good copies of remote
//! sources) and turns every network group into candidate prefixes, each remembering where it
//! was written. The compiler then works on memory only.

use std::{collections::HashMap, path::PathBuf, sync::Arc};

use chrono::{DateTime, Utc};
use ipnetwork::IpNetwork;
use serde::Serialize;
use toml::Spanned;

use crate::{
    config::{self, Config, ConfigError, EvidenceKind, Location, NetworkGroup, OnSourceFailure},
    files::digest::sha256_hex,
    inputs::{
        ranges::{self, RangeTable},
        sources::{self, SourceSpec},
    },
};

/// How a candidate prefix was listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// In the entity's `prefixes`.
    Listed,
    /// In an indicator file (its path).
    File(Arc<str>),
    /// Announced by this ASN, per the ASN table (the version of the file the range came from:
    /// npm `name@version`, file name and SHA-256; see [`crate::inputs::ranges`]).
    Asn { asn: u32, table: Arc<str> },
    /// In this country (ISO 3166-1 alpha-2), per the country table (its file's version).
    Country { code: Arc<str>, table: Arc<str> },
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
    /// For a list source: the `[[lists]]` entry that reads it (its entries are designations).
    pub list: Option<String>,
}

/// What a file read by [`resolve`] was to the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// The main configuration file.
    Config,
    /// An included entity file.
    Entities,
    /// A sanctions list file (a `[[lists]]` path, its OFAC `alt_path`, or the last-known-good
    /// copy of the source a list reads).
    List,
    /// An indicator file a network group names.
    Indicators,
    /// The last-known-good copy of a prefix source a network group names.
    Source,
}

/// One file [`resolve`] read: the record of what the policy was built from. The audit log and
/// the file watcher use it rather than reading the files again, so they name exactly the bytes
/// that were enforced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InputRead {
    pub path: PathBuf,
    pub kind: InputKind,
    /// Lowercase hex SHA-256 of the bytes parsed (a configuration file's: of its text, without
    /// a byte-order mark; any other file's: of the bytes read, as stored).
    pub sha256: String,
}

/// A prefix from a network group, with where it was written.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub net: IpNetwork,
    pub via: Via,
    /// Index into [`Resolved::inputs`], 1-based line and column.
    pub file: u32,
    pub line: u32,
    pub column: u32,
}

/// Every group's candidates: `groups[entity][group]`, in configuration order.
#[derive(Debug, Default)]
pub struct Resolved {
    /// Every file read, in reading order: the configuration's files first (same indices as
    /// [`Config::files`]), then list files, indicator files and source copies. A file read
    /// twice is here twice.
    pub inputs: Vec<InputRead>,
    pub groups: Vec<Vec<Vec<Candidate>>>,
    /// The ASN table's version (each file's, joined with `; `), if one was read.
    pub asn_table: Option<String>,
    /// The country table's version (each file's, joined with `; `), if one was read.
    pub country_table: Option<String>,
    /// Every declared source, in configuration order.
    pub sources: Vec<SourceReport>,
    /// Every declared sanctions list, read and parsed, in configuration order.
    pub lists: Vec<ResolvedList>,
    /// Lists read from a source that had no usable copy, skipped under
    /// `on_source_failure = "skip"`: designations that follow one keep what their entity file
    /// says (they are neither updated nor delisted).
    pub skipped_lists: Vec<String>,
}

/// A `[[lists]]` file, read and parsed whole.
#[derive(Clone, Debug)]
pub struct ResolvedList {
    pub name: String,
    pub path: PathBuf,
    pub document: crate::inputs::lists::ListDocument,
    /// The date a designation missing from the list counts as delisted from: the list's
    /// publication date, else the file's modification date (UTC).
    pub as_of: chrono::NaiveDate,
    /// Whether `as_of` is the publication date (else the file's date).
    pub published: bool,
    /// Each reference, ASCII-lowercased, to its first designation: looking up every
    /// designation of a configuration stays linear however long the list.
    by_reference: HashMap<String, usize>,
}

impl ResolvedList {
    /// A parsed list and its reference index.
    pub fn new(
        name: String,
        path: PathBuf,
        document: crate::inputs::lists::ListDocument,
        as_of: chrono::NaiveDate,
        published: bool,
    ) -> Self {
        let mut by_reference = HashMap::with_capacity(document.designations.len());
        for (i, d) in document.designations.iter().enumerate() {
            by_reference
                .entry(d.reference.to_ascii_lowercase())
                .or_insert(i);
        }
        Self {
            name,
            path,
            document,
            as_of,
            published,
            by_reference,
        }
    }

    /// As [`crate::inputs::lists::ListDocument::find`], through the index.
    pub fn find(&self, reference: &str) -> Option<&crate::inputs::lists::ListedDesignation> {
        self.by_reference
            .get(&reference.trim().to_ascii_lowercase())
            .map(|&i| &self.document.designations[i])
    }
}

impl Resolved {
    pub fn location(&self, c: &Candidate) -> Location {
        Location {
            file: self.inputs[c.file as usize].path.clone(),
            line: c.line as usize,
            column: c.column as usize,
        }
    }
}

/// Reads an indicator file: one CIDR or address per line, `#` starts a comment.
pub fn parse_indicator_file(
    path: &std::path::Path,
    text: &str,
) -> Result<Vec<(IpNetwork, u32)>, ConfigError> {
    sources::parse::list(text).map_err(|e| ConfigError::at_line(path, e.line, e.message))
}

/// A source's entries, read once however many groups name it.
struct SourceEntries {
    /// Index of its copy in [`Resolved::inputs`].
    file: u32,
    name: Arc<str>,
    entries: Vec<(IpNetwork, u32)>,
}

/// Reads `spec`'s last-known-good copy. `Ok(None)`: it has no usable content and is skipped.
fn read_source(spec: &SourceSpec, r: &mut Resolved) -> Result<Option<SourceEntries>, ConfigError> {
    let name = &spec.name;
    let (refusal, problem) = match sources::cache::load(spec) {
        // A copy that fails the guard (stored before the guard ran on fetched bodies) is not
        // usable: `on_source_failure` decides, as for a copy that does not parse.
        Ok(c) => match sources::parse::parse_source(spec, &c.body)
            .map(|parsed| parsed.entries)
            .and_then(|entries| spec.guard.check(&entries).map(|()| entries))
        {
            Ok(entries) => {
                let file = r.inputs.len() as u32;
                r.inputs.push(InputRead {
                    path: c.paths.body.clone(),
                    kind: InputKind::Source,
                    sha256: c.meta.sha256.clone(),
                });
                r.sources.push(SourceReport {
                    name: name.clone(),
                    url: spec.shown_url(),
                    status: SourceStatus::Used,
                    cache: c.paths.body,
                    entries: entries.len(),
                    fetched_at: Some(c.meta.fetched_at),
                    checked_at: Some(c.meta.checked_at),
                    problem: None,
                    list: None,
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
                url: spec.shown_url(),
                status: SourceStatus::Skipped,
                cache: sources::cache::Paths::of(spec).body,
                entries: 0,
                fetched_at: None,
                checked_at: None,
                problem: Some(problem),
                list: None,
            });
            Ok(None)
        }
    }
}

/// Reads the last-known-good copy of list source `spec` for list `name`: its path, text and
/// metadata. The copy is parsed by the caller. `Ok(None)`: no usable copy and
/// `on_source_failure = "skip"`: the list is skipped.
fn read_list_source(
    name: &str,
    spec: &SourceSpec,
    format: crate::inputs::lists::ListFormat,
    r: &mut Resolved,
) -> Result<Option<(PathBuf, String, sources::cache::Meta)>, ConfigError> {
    match sources::cache::load(spec) {
        Ok(c) => {
            r.sources.push(SourceReport {
                name: spec.name.clone(),
                url: spec.shown_url(),
                status: SourceStatus::Used,
                cache: c.paths.body.clone(),
                entries: c.meta.entries,
                fetched_at: Some(c.meta.fetched_at),
                checked_at: Some(c.meta.checked_at),
                problem: None,
                list: Some(name.to_owned()),
            });
            Ok(Some((c.paths.body, c.body, c.meta)))
        }
        Err(e) => {
            let problem = format!(
                "list `{name}` ({format}) from source `{}` has no usable copy: {e}",
                spec.name
            );
            match spec.on_failure {
                OnSourceFailure::Refuse => Err(ConfigError::Invalid {
                    at: spec.at.clone(),
                    message: format!(
                        "{problem}; `embargo fetch` or `embargo run` fetches it, or set \
                         on_source_failure = \"skip\" to go on without it (designations that \
                         follow the list then keep their entity files' metadata and are not \
                         delisted)"
                    ),
                }),
                OnSourceFailure::Skip => {
                    tracing::warn!(
                        source = %spec.name,
                        list = name,
                        "list skipped (on_source_failure = \"skip\"): {problem}; designations \
                         that follow it keep their entity files' metadata and are NOT delisted"
                    );
                    r.sources.push(SourceReport {
                        name: spec.name.clone(),
                        url: spec.shown_url(),
                        status: SourceStatus::Skipped,
                        cache: sources::cache::Paths::of(spec).body,
                        entries: 0,
                        fetched_at: None,
                        checked_at: None,
                        problem: Some(problem),
                        list: Some(name.to_owned()),
                    });
                    Ok(None)
                }
            }
        }
    }
}

/// Reads and parses every `[[lists]]` file (or list source's copy). Anything wrong with one refuses the whole
/// configuration: a list that cannot be read is never taken as an empty one.
fn read_lists(config: &Config, specs: &[SourceSpec], r: &mut Resolved) -> Result<(), ConfigError> {
    let main = config.main_file();
    for def in &config.main.lists {
        let name = def.name.get_ref();
        config::validate::check_slug("list name", name)
            .map_err(|m| main.invalid(def.name.span().start, m))?;
        if r.lists.iter().any(|l| l.name == *name) {
            return Err(main.invalid(
                def.name.span().start,
                format!("list name `{name}` is declared twice; names must be unique"),
            ));
        }
        let read = |p: &Spanned<String>| -> Result<(PathBuf, String, String), ConfigError> {
            let path = config.relative(0, p.get_ref());
            let (text, sha256) = config::read_text_hashed(&path).map_err(|e| match e {
                ConfigError::Read { source, .. } => main.invalid(
                    p.span().start,
                    format!(
                        "list `{name}`: {} cannot be read ({source}); fix the path or download the list",
                        path.display()
                    ),
                ),
                other => other,
            })?;
            Ok((path, text, sha256))
        };
        let (path, text, sha256, format, alt, fetched) = match (&def.path, &def.source) {
            (Some(_), Some(src)) => {
                return Err(main.invalid(
                    src.span().start,
                    format!(
                        "list `{name}` has both `path` and `source`: keep one (`path` for a \
                         local file, `source` for a [[sources]] feed)"
                    ),
                ));
            }
            (None, None) => {
                return Err(main.invalid(
                    def.name.span().start,
                    format!(
                        "list `{name}` needs `path = \"<file>\"` (with format) or \
                         `source = \"<[[sources]] name>\"`"
                    ),
                ));
            }
            (Some(p), None) => {
                let Some(format) = &def.format else {
                    return Err(main.invalid(
                        def.name.span().start,
                        format!(
                            "list `{name}` needs format = \"uk-csv\", \"uk-xml\", \"ofac-csv\", \
                             \"ofac-xml\", \"eu-xml\" or \"opensanctions\""
                        ),
                    ));
                };
                let format = *format.get_ref();
                if let Some(alt) = &def.alt_path
                    && format != crate::inputs::lists::ListFormat::OfacCsv
                {
                    return Err(main.invalid(
                        alt.span().start,
                        format!("alt_path is for format \"ofac-csv\" only (OFAC's alt.csv); remove it from list `{name}`"),
                    ));
                }
                let (path, text, sha256) = read(p)?;
                let alt = def.alt_path.as_ref().map(read).transpose()?;
                (path, text, sha256, format, alt, None)
            }
            (None, Some(src)) => {
                let at = src.span().start;
                if let Some(f) = &def.format {
                    return Err(main.invalid(
                        f.span().start,
                        format!(
                            "list `{name}` reads source `{}`: its format is the source's \
                             `format`; remove `format` here",
                            src.get_ref()
                        ),
                    ));
                }
                if let Some(alt) = &def.alt_path {
                    return Err(main.invalid(
                        alt.span().start,
                        format!(
                            "alt_path is for a local ofac-csv list (`path`); list `{name}` reads \
                             a source, whose alt.csv is not fetched: remove alt_path"
                        ),
                    ));
                }
                let Some(spec) = specs.iter().find(|s| s.name == *src.get_ref()) else {
                    return Err(main.invalid(at, unknown_source(src.get_ref(), specs)));
                };
                let sources::Format::Sanctions(format) = spec.format else {
                    return Err(main.invalid(
                        at,
                        format!(
                            "list `{name}`: source `{}` has a prefix format; a list's source needs \
                             a list format (format = \"uk-csv\", \"uk-xml\", \"ofac-csv\", \
                             \"ofac-xml\", \"eu-xml\" or \"opensanctions\" in its [[sources]] entry)",
                            spec.name
                        ),
                    ));
                };
                match read_list_source(name, spec, format, r)? {
                    Some((path, text, meta)) => {
                        let sha256 = meta.sha256.clone();
                        (path, text, sha256, format, None, Some(meta))
                    }
                    None => {
                        r.skipped_lists.push(name.clone());
                        continue;
                    }
                }
            }
        };
        let input = crate::inputs::lists::ListInput {
            path: &path,
            text: &text,
            alt: alt.as_ref().map(|(p, t, _)| (p.as_path(), t.as_str())),
        };
        let document = crate::inputs::lists::parse(format, &input).map_err(|e| ConfigError::Invalid {
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
            None if fetched.is_some() => (
                fetched.as_ref().expect("checked").fetched_at.date_naive(),
                false,
            ),
            None => {
                let modified = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .map(|t| DateTime::<Utc>::from(t).date_naive())
                    .unwrap_or_else(|_| Utc::now().date_naive());
                (modified, false)
            }
        };
        r.inputs.push(InputRead {
            path: path.clone(),
            kind: InputKind::List,
            sha256,
        });
        if let Some((alt_path, _, alt_sha256)) = alt {
            r.inputs.push(InputRead {
                path: alt_path,
                kind: InputKind::List,
                sha256: alt_sha256,
            });
        }
        r.lists.push(ResolvedList::new(
            name.clone(),
            path,
            document,
            as_of,
            published,
        ));
    }
    Ok(())
}

/// Resolves every network group of `config`.
pub fn resolve(config: &Config) -> Result<Resolved, ConfigError> {
    let mut r = Resolved {
        inputs: config
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| InputRead {
                path: f.path.clone(),
                kind: if i == 0 {
                    InputKind::Config
                } else {
                    InputKind::Entities
                },
                sha256: sha256_hex(f.text.as_bytes()),
            })
            .collect(),
        ..Default::default()
    };
    let specs = sources::spec::specs(config)?;
    read_lists(config, &specs, &mut r)?;
    check_evidence_kinds(config)?;
    let asn_table = read_table(
        config,
        "asn",
        &config.main.asn_table,
        ranges::asn_key,
        |g| g.asn.first().map(|a| a.span().start),
    )?;
    r.asn_table = asn_table.as_ref().map(RangeTable::version);
    let country_table = read_table(
        config,
        "country",
        &config.main.country_table,
        ranges::country_key,
        |g| g.countries.first().map(|c| c.span().start),
    )?;
    r.country_table = country_table.as_ref().map(RangeTable::version);
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
                let (text, sha256) = config::read_text_hashed(&path).map_err(|e| match e {
                    ConfigError::Read { source, .. } => file.invalid(
                        f.span().start,
                        format!(
                            "indicator file {} cannot be read ({source}); fix the path",
                            path.display()
                        ),
                    ),
                    other => other,
                })?;
                let idx = r.inputs.len() as u32;
                r.inputs.push(InputRead {
                    path: path.clone(),
                    kind: InputKind::Indicators,
                    sha256,
                });
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
                let table = asn_table.as_ref().expect("read_table checked it");
                let at = file.at(a.span().start);
                let before = cands.len();
                for (net, version) in table.prefixes(a.get_ref()) {
                    cands.push(Candidate {
                        net,
                        via: Via::Asn {
                            asn: *a.get_ref(),
                            table: version.clone(),
                        },
                        file: src.file as u32,
                        line: at.line as u32,
                        column: at.column as u32,
                    });
                }
                if cands.len() == before {
                    tracing::warn!(asn = *a.get_ref(), table = %table.version(), "ASN has no ranges in the table");
                }
            }
            for c in &g.countries {
                let code = ranges::country_code(c.get_ref())
                    .map_err(|m| file.invalid(c.span().start, m))?;
                let table = country_table.as_ref().expect("read_table checked it");
                let at = file.at(c.span().start);
                let code_name: Arc<str> = Arc::from(c.get_ref().as_str());
                let before = cands.len();
                for (net, version) in table.prefixes(&code) {
                    cands.push(Candidate {
                        net,
                        via: Via::Country {
                            code: code_name.clone(),
                            table: version.clone(),
                        },
                        file: src.file as u32,
                        line: at.line as u32,
                        column: at.column as u32,
                    });
                }
                if cands.len() == before {
                    tracing::warn!(country = %c.get_ref(), table = %table.version(), "country has no ranges in the table");
                }
            }
            for name in &g.sources {
                let Some(spec) = specs.iter().find(|s| s.name == *name.get_ref()) else {
                    return Err(
                        file.invalid(name.span().start, unknown_source(name.get_ref(), &specs))
                    );
                };
                if let sources::Format::Sanctions(f) = spec.format {
                    return Err(file.invalid(
                        name.span().start,
                        format!(
                            "source `{}` is a {f} sanctions list, not a feed of prefixes; a \
                             [[lists]] entry reads it (source = \"{}\")",
                            spec.name, spec.name
                        ),
                    ));
                }
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
                url: spec.shown_url(),
                status: SourceStatus::Unreferenced,
                cache: sources::cache::Paths::of(spec).body,
                entries: 0,
                fetched_at: None,
                checked_at: None,
                problem: None,
                list: None,
            }),
        }
    }
    Ok(r)
}

/// Evidence kinds that must match what a group lists: `asn` comes from routing data
/// (`routing`), `countries` is a jurisdiction (`jurisdiction`, for no other group).
fn check_evidence_kinds(config: &Config) -> Result<(), ConfigError> {
    for src in &config.entities {
        let file = &config.files[src.file];
        for g in &src.def.networks {
            let kind = *g.evidence.kind.get_ref();
            let kind_at = g.evidence.kind.span().start;
            if let (Some(c), Some(a)) = (g.countries.first(), g.asn.first()) {
                return Err(file.invalid(
                    c.span().start.max(a.span().start),
                    "a network group cannot list both `asn` (routing evidence) and `countries` \
                     (jurisdiction evidence): put them in two [[networks]] groups",
                ));
            }
            if let Some(a) = g.asn.first()
                && kind != EvidenceKind::Routing
            {
                return Err(file.invalid(
                    a.span().start,
                    format!(
                        "`asn` resolves through routing data, but this group's evidence kind is \
                         \"{}\"; write kind = \"routing\" in its evidence (or move the ASNs to \
                         their own [[networks]] group)",
                        kind.name()
                    ),
                ));
            }
            if let Some(c) = g.countries.first()
                && kind != EvidenceKind::Jurisdiction
            {
                return Err(file.invalid(
                    c.span().start,
                    format!(
                        "`countries` lists whole jurisdictions, but this group's evidence kind is \
                         \"{}\"; write kind = \"jurisdiction\" in its evidence",
                        kind.name()
                    ),
                ));
            }
            if kind == EvidenceKind::Jurisdiction && g.countries.is_empty() {
                return Err(file.invalid(
                    kind_at,
                    "evidence kind \"jurisdiction\" is only for groups with `countries = [...]`; \
                     list the country codes, or use another kind for these prefixes",
                ));
            }
        }
    }
    Ok(())
}

/// Reads the `what` range table (`asn_table`, `country_table`) if any group uses it (`first`
/// gives the offset of a group's first use); an error if one does and none is configured.
fn read_table<K: Eq + std::hash::Hash>(
    config: &Config,
    what: &str,
    setting: &Option<Spanned<config::TablePaths>>,
    key: impl Fn(&str) -> Result<K, ranges::KeyError> + Copy,
    first: impl Fn(&NetworkGroup) -> Option<usize>,
) -> Result<Option<RangeTable<K>>, ConfigError> {
    let field = format!("{what}_table");
    let use_at = config.entities.iter().find_map(|e| {
        e.def
            .networks
            .iter()
            .find_map(&first)
            .map(|off| (e.file, off))
    });
    let Some((file, off)) = use_at else {
        return Ok(None);
    };
    let Some(p) = setting else {
        let (list, example) = match what {
            "asn" => ("asn", "[\"asn-ipv4.csv\", \"asn-ipv6.csv\"]"),
            _ => (
                "countries",
                "[\"geo-whois-asn-country-ipv4.csv\", \"geo-whois-asn-country-ipv6.csv\"]",
            ),
        };
        return Err(config.files[file].invalid(
            off,
            format!(
                "`{list}` needs an IP-to-{what} range table: set {field} = {example} in the main \
                 configuration"
            ),
        ));
    };
    let paths: Vec<PathBuf> = p
        .get_ref()
        .list()
        .iter()
        .map(|f| config.relative(0, f))
        .collect();
    if paths.is_empty() {
        return Err(config.main_file().invalid(
            p.span().start,
            format!("{field} is an empty list: name its files"),
        ));
    }
    RangeTable::read(&paths, key)
        .map(Some)
        .map_err(|e| match e {
            ConfigError::Read { path, source } => config.main_file().invalid(
                p.span().start,
                format!(
                    "{field} file {} cannot be read ({source}); fix the path",
                    path.display()
                ),
            ),
            other => other,
        })
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

    /// A main file in a fresh folder with `files` next to it. The folder is removed when
    /// the returned guard drops (also when the test panics).
    fn setup(name: &str, main: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("embargo-resolve-{name}-"))
            .tempdir()
            .unwrap();
        let dir = tmp.path().to_owned();
        for (f, text) in files {
            std::fs::write(dir.join(f), text).unwrap();
        }
        std::fs::write(dir.join("main.toml"), main).unwrap();
        (tmp, dir)
    }

    fn entity(group: &str) -> String {
        format!(
            "[[entities]]\nid = \"e\"\nname = \"E\"\naction = \"drop\"\n\
             designations = [{{ authority = \"T\", regime = \"r\", reference = \"x\", listed_on = 2025-01-01, source = \"s\" }}]\n\
             [[entities.networks]]\n{group}"
        )
    }

    const V4: &str = "175.45.176.0,175.45.179.255,KP\n175.45.180.0,175.45.183.255,AU\n\
                      10.0.0.0,10.0.0.127,KP\n10.0.0.128,10.0.0.255,KP\n";
    const V6: &str = "2001:4b28:6d00::,2001:4b28:6dff:ffff:ffff:ffff:ffff:ffff,KP\n";
    const PKG: &str =
        r#"{"name": "@ip-location-db/geo-whois-asn-country", "version": "2.3.2026061719"}"#;

    fn resolve_in(dir: &Path) -> Result<Resolved, ConfigError> {
        resolve(&config::load(&dir.join("main.toml"))?)
    }

    #[test]
    fn countries_resolve_through_every_file_of_the_table() {
        let main = format!(
            "enforce = [\"T\"]\ncountry_table = [\"v4.csv\", \"v6.csv\"]\n{}",
            entity(
                "countries = [\"KP\"]\nguard_override = \"program\"\n\
                 evidence = { kind = \"jurisdiction\", source = \"s\", retrieved = 2026-01-01, confidence = \"high\" }\n"
            )
        );
        let (_tmp, dir) = setup(
            "countries",
            &main,
            &[("v4.csv", V4), ("v6.csv", V6), ("package.json", PKG)],
        );
        let r = resolve_in(&dir).unwrap();
        let got: Vec<(String, String)> = r.groups[0][0]
            .iter()
            .map(|c| {
                let Via::Country { code, table } = &c.via else {
                    panic!("{:?}", c.via)
                };
                assert_eq!(code.as_ref(), "KP");
                (c.net.to_string(), table.to_string())
            })
            .collect();
        let v = |f: &str, text: &str| {
            format!(
                "@ip-location-db/geo-whois-asn-country@2.3.2026061719 {f} sha256:{}",
                sha256_hex(text.as_bytes())
            )
        };
        // The two adjacent /25 rows of KP are one /24.
        assert_eq!(
            got,
            vec![
                ("10.0.0.0/24".to_owned(), v("v4.csv", V4)),
                ("175.45.176.0/22".to_owned(), v("v4.csv", V4)),
                ("2001:4b28:6d00::/40".to_owned(), v("v6.csv", V6)),
            ]
        );
        assert_eq!(
            r.country_table,
            Some(format!("{}; {}", v("v4.csv", V4), v("v6.csv", V6)))
        );
        // `why` names the country and the table's version.
        let c = crate::policy::compile::compile(
            &config::validate::validate(&config::load(&dir.join("main.toml")).unwrap()).unwrap(),
            &r,
            chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
        )
        .unwrap();
        let why = crate::policy::explain::render(&crate::policy::explain::explain(
            &c,
            "175.45.177.1".parse().unwrap(),
        ));
        assert!(
            why.contains(&format!("country KP per {}", v("v4.csv", V4))),
            "{why}"
        );
        assert!(why.contains("evidence:    jurisdiction"), "{why}");
    }

    #[test]
    fn evidence_kinds_must_match_what_the_group_lists() {
        let cases = [
            (
                "countries = [\"KP\"]\nevidence = { kind = \"registry\", source = \"s\", retrieved = 2026-01-01, confidence = \"high\" }\n",
                (10, 14),
                "write kind = \"jurisdiction\"",
            ),
            (
                "asn = [64512]\nevidence = { kind = \"manual\", source = \"s\", retrieved = 2026-01-01, confidence = \"high\" }\n",
                (10, 8),
                "write kind = \"routing\"",
            ),
            (
                "prefixes = [\"192.0.2.0/24\"]\nevidence = { kind = \"jurisdiction\", source = \"s\", retrieved = 2026-01-01, confidence = \"high\" }\n",
                (11, 21),
                "only for groups with `countries",
            ),
            (
                "countries = [\"KP\", \"kp\"]\nevidence = { kind = \"jurisdiction\", source = \"s\", retrieved = 2026-01-01, confidence = \"high\" }\n",
                (10, 20),
                "uppercase: \"KP\"",
            ),
            (
                "countries = [\"XX\"]\nevidence = { kind = \"jurisdiction\", source = \"s\", retrieved = 2026-01-01, confidence = \"high\" }\n",
                (10, 14),
                "not an ISO 3166-1 alpha-2",
            ),
        ];
        for (i, (group, (line, column), needle)) in cases.into_iter().enumerate() {
            let main = format!(
                "enforce = [\"T\"]\ncountry_table = \"v4.csv\"\nasn_table = \"v4.csv\"\n{}",
                entity(group)
            );
            let (_tmp, dir) = setup(&format!("kinds{i}"), &main, &[("v4.csv", "")]);
            let err = resolve_in(&dir).unwrap_err();
            let ConfigError::Invalid { at, message } = &err else {
                panic!("{err:?}")
            };
            assert_eq!(
                (
                    at.file.file_name().unwrap().to_str().unwrap(),
                    at.line,
                    at.column
                ),
                ("main.toml", line, column),
                "{err}"
            );
            assert!(message.contains(needle), "{err}");
        }
    }

    #[test]
    fn a_missing_country_table_and_a_too_broad_country_say_what_to_do() {
        let group = "countries = [\"KP\"]\nevidence = { kind = \"jurisdiction\", source = \"s\", retrieved = 2026-01-01, confidence = \"high\" }\n";
        let (_tmp, dir) = setup(
            "nocountry",
            &format!("enforce = [\"T\"]\n{}", entity(group)),
            &[],
        );
        let err = resolve_in(&dir).unwrap_err().to_string();
        assert!(
            err.contains("main.toml:8:14") && err.contains("set country_table = ["),
            "{err}"
        );
        // A country whose ranges merge into a /7: the guard refuses it without an override.
        let main = format!(
            "enforce = [\"T\"]\ncountry_table = \"v4.csv\"\n{}",
            entity(group)
        );
        let (_tmp, dir) = setup(
            "broad",
            &main,
            &[("v4.csv", "10.0.0.0,11.255.255.255,KP\n")],
        );
        let c = config::load(&dir.join("main.toml")).unwrap();
        let r = resolve(&c).unwrap();
        let err = crate::policy::compile::compile(
            &config::validate::validate(&c).unwrap(),
            &r,
            chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("main.toml:9:14: 10.0.0.0/7 (country KP per "),
            "{err}"
        );
        assert!(
            err.contains("broader than the guard's /8") && err.contains("guard_override"),
            "{err}"
        );
    }

    #[test]
    fn asn_tables_take_a_list_and_merge_ranges() {
        let main = format!(
            "enforce = [\"T\"]\nasn_table = [\"a4.csv\", \"a6.csv\"]\n{}",
            entity(
                "asn = [13335]\nevidence = { kind = \"routing\", source = \"s\", retrieved = 2026-01-01, confidence = \"high\" }\n"
            )
        );
        let a4 = "1.0.0.0,1.0.0.127,13335,\"Cloudflare, Inc.\"\n1.0.0.128,1.0.0.255,13335,\"Cloudflare, Inc.\"\n";
        let a6 = "2606:4700::,2606:4700:ffff:ffff:ffff:ffff:ffff:ffff,13335,\"Cloudflare, Inc.\"\n";
        let (_tmp, dir) = setup("asn", &main, &[("a4.csv", a4), ("a6.csv", a6)]);
        let r = resolve_in(&dir).unwrap();
        let nets: Vec<String> = r.groups[0][0].iter().map(|c| c.net.to_string()).collect();
        assert_eq!(nets, ["1.0.0.0/24", "2606:4700::/32"]);
        let table = r.asn_table.unwrap();
        assert!(
            table.contains("a4.csv sha256:")
                && table.contains("; ")
                && table.contains("a6.csv sha256:"),
            "{table}"
        );
    }
}
