//! The checks a parsed configuration must pass before it is compiled, in one place: what a slug
//! is (list, source and entity names, `--entity` of the import commands), the `enforce` list,
//! entity ids (slugs, unique across every file), designation dates, evidence windows and
//! `allow` prefixes, and the CSV layout options of feeds and `embargo import csv`
//! ([`CsvLayout`]: `delimiter`, `header`, columns by name or number, `type_column`/`types`).
//!
//! Invariants:
//! * [`validate`] is pure (no I/O, no clock) and refuses at the first problem, in file order,
//!   with the file, line and column it was written at and what to do;
//! * a [`Validated`] exists only for a configuration that passed every check, and carries what
//!   the checks computed (the enforced authorities, each evidence's last day, the parsed
//!   `allow` prefixes), so the compiler takes these from it instead of parsing again;
//! * each check and its message is written here once; callers that name things elsewhere
//!   (lists, sources, imports) use [`is_slug`] and word the refusal for where the name was.

use std::{
    collections::{BTreeMap, HashMap},
    ops::Deref,
};

use ipnetwork::IpNetwork;

use super::{Config, ConfigError, Evidence, ValueError, When};

/// Whether `s` is a slug: not empty, only lowercase ASCII letters, digits, `-` and `_`.
pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Refuses `name` unless it is a slug ([`is_slug`]): the message names it as `what` ("entity id",
/// "list name", "source name"); the caller places it at the name.
pub fn check_slug(what: &'static str, name: &str) -> Result<(), ValueError> {
    if is_slug(name) {
        Ok(())
    } else {
        Err(ValueError::NotSlug {
            what,
            name: name.to_owned(),
        })
    }
}

/// Why a CSV layout option (of a source or of `embargo import csv`) or a column in a file's
/// header was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The delimiter is not one byte (shown escaped).
    #[error(
        "delimiter `{0}` must be one character (one byte): write e.g. \",\", \";\", \"|\", \
         or \"\\t\" or \"tab\" for a tab"
    )]
    DelimiterLength(String),
    /// The delimiter quotes, comments or ends lines (shown escaped).
    #[error("delimiter `{0}` cannot separate fields: it quotes, comments or ends lines")]
    DelimiterReserved(String),
    /// A column number below 1.
    #[error("{what} = {n}: columns are numbered from 1")]
    ColumnNumber { what: String, n: i64 },
    /// An empty column name.
    #[error("{what} is empty: name the column")]
    ColumnEmpty { what: String },
    /// A column name where there is no header row to find it in.
    #[error(
        "{what} `{name}`: with no header row (header = false, --no-header) columns are numbers, \
         1 for the first"
    )]
    ColumnNotNumber { what: String, name: String },
    /// A column number past the header's last column.
    #[error("there is no column {n}: the header has {len} columns")]
    NoSuchColumn { n: usize, len: usize },
    /// A column name the header does not have.
    #[error("the header has no column `{name}` (columns: {columns})")]
    NoSuchHeader { name: String, columns: String },
    /// A column named in a file without a header row.
    #[error("column `{0}`: without a header row, columns are numbers")]
    NamedWithoutHeader(String),
    /// `types = []`.
    #[error("types is empty: list the accepted types, e.g. [\"ip-dst\", \"ipv4\"]")]
    TypesEmpty,
    /// An empty string in `types`.
    #[error("types holds an empty type")]
    TypeEmpty,
}

/// A CSV column: a header name or a 1-based number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Column {
    /// A header name; with a header row, a name no header has that is a positive integer is
    /// read as a number.
    Name(String),
    /// 1-based.
    Number(usize),
}

impl Column {
    /// Its 0-based index in rows under `headers` (`None`: no header row).
    pub fn index(&self, headers: Option<&csv::StringRecord>) -> Result<usize, LayoutError> {
        let number = |n: usize| {
            if let Some(h) = headers
                && n > h.len()
            {
                return Err(LayoutError::NoSuchColumn { n, len: h.len() });
            }
            Ok(n - 1)
        };
        match (self, headers) {
            (Column::Number(n), _) => number(*n),
            (Column::Name(name), Some(h)) => match h.iter().position(|x| x.trim() == name) {
                Some(i) => Ok(i),
                None => match positive(name) {
                    Some(n) => number(n),
                    None => Err(LayoutError::NoSuchHeader {
                        name: name.clone(),
                        columns: h.iter().collect::<Vec<_>>().join(", "),
                    }),
                },
            },
            (Column::Name(name), None) => positive(name)
                .map(|n| n - 1)
                .ok_or_else(|| LayoutError::NamedWithoutHeader(name.clone())),
        }
    }
}

impl std::fmt::Display for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Column::Name(n) => write!(f, "`{n}`"),
            Column::Number(n) => write!(f, "{n}"),
        }
    }
}

fn positive(text: &str) -> Option<usize> {
    text.trim().parse::<usize>().ok().filter(|n| *n > 0)
}

/// How a CSV feed or file is laid out: checked options of a `format = "csv"` source and of
/// `embargo import csv`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvLayout {
    /// One byte.
    pub delimiter: u8,
    /// Whether the first row is a header.
    pub header: bool,
    /// Where the indicator (address or CIDR) is.
    pub column: Column,
    /// Where the indicator type is.
    pub type_column: Option<Column>,
    /// With `type_column`: the accepted types, lowercase. Rows of another (non-empty) type are
    /// skipped and counted by type.
    pub types: Vec<String>,
}

impl CsvLayout {
    /// Comma-separated with a header row, the indicator in `column`, no type column.
    pub fn named(column: &str) -> Self {
        Self {
            delimiter: b',',
            header: true,
            column: Column::Name(column.to_owned()),
            type_column: None,
            types: Vec::new(),
        }
    }

    /// Whether rows of type `t` (trimmed) are read: an empty type is.
    pub fn accepts(&self, t: &str) -> bool {
        t.is_empty() || self.types.iter().any(|x| x.eq_ignore_ascii_case(t))
    }
}

/// A `delimiter`: one ASCII byte other than a quote, `#` or a line end; `"\t"` (a real tab) or
/// `"tab"` for a tab.
pub fn csv_delimiter(text: &str) -> Result<u8, LayoutError> {
    let b = match text {
        "tab" | "\\t" | "\t" => b'\t',
        t if t.len() == 1 && t.is_ascii() => t.as_bytes()[0],
        t => {
            return Err(LayoutError::DelimiterLength(t.escape_default().to_string()));
        }
    };
    if matches!(b, b'"' | b'#' | b'\n' | b'\r') {
        return Err(LayoutError::DelimiterReserved(
            (b as char).escape_default().to_string(),
        ));
    }
    Ok(b)
}

/// A column option (`what`: "column", "type_column"...): a header name, or a 1-based number
/// (the only kind without a header row).
pub fn csv_column(c: &super::ColumnRef, header: bool, what: &str) -> Result<Column, LayoutError> {
    match c {
        super::ColumnRef::Number(n) if *n >= 1 => Ok(Column::Number(*n as usize)),
        super::ColumnRef::Number(n) => Err(LayoutError::ColumnNumber {
            what: what.to_owned(),
            n: *n,
        }),
        super::ColumnRef::Name(name) => {
            let name = name.trim();
            if name.is_empty() {
                return Err(LayoutError::ColumnEmpty {
                    what: what.to_owned(),
                });
            }
            if header {
                Ok(Column::Name(name.to_owned()))
            } else {
                positive(name)
                    .map(Column::Number)
                    .ok_or_else(|| LayoutError::ColumnNotNumber {
                        what: what.to_owned(),
                        name: name.to_owned(),
                    })
            }
        }
    }
}

/// `types`: the accepted indicator types, each non-empty; lowercase.
pub fn csv_types(types: &[String]) -> Result<Vec<String>, LayoutError> {
    if types.is_empty() {
        return Err(LayoutError::TypesEmpty);
    }
    types
        .iter()
        .map(|t| {
            let t = t.trim();
            if t.is_empty() {
                Err(LayoutError::TypeEmpty)
            } else {
                Ok(t.to_ascii_lowercase())
            }
        })
        .collect()
}

/// When evidence stops counting (`expires`, or `retrieved` + `max_age` (a day), whichever is
/// first), if ever; the error names the bad `max_age`.
pub fn evidence_expiry(e: &Evidence) -> Result<Option<When>, ValueError> {
    let mut until = e.expires;
    if let Some(age) = &e.max_age {
        let days = super::parse_max_age(age.get_ref())?;
        let by_age = When::Day(e.retrieved.0 + chrono::Days::new(days as u64));
        until = Some(until.map_or(by_age, |u| u.min(by_age)));
    }
    Ok(until)
}

/// A configuration that passed [`validate`], with what the checks computed.
#[derive(Debug)]
pub struct Validated<'a> {
    config: &'a Config,
    enforce: BTreeMap<String, String>,
    /// By entity, then network group: when its evidence stops counting.
    expiry: Vec<Vec<Option<When>>>,
    allow: Vec<(IpNetwork, String)>,
}

impl Validated<'_> {
    /// The enforced authorities: normalized key ([`super::authority_key`]) to the name as
    /// written; never empty.
    pub fn enforce(&self) -> &BTreeMap<String, String> {
        &self.enforce
    }

    /// When the evidence of entity `entity`'s network group `group` stops counting, if ever.
    pub fn expiry(&self, entity: usize, group: usize) -> Option<When> {
        self.expiry[entity][group]
    }

    /// The `allow` rules, parsed, in file order.
    pub fn allow(&self) -> &[(IpNetwork, String)] {
        &self.allow
    }
}

impl Deref for Validated<'_> {
    type Target = Config;

    fn deref(&self) -> &Config {
        self.config
    }
}

/// Checks everything about `config` that needs no other input; see the module docs.
pub fn validate(config: &Config) -> Result<Validated<'_>, ConfigError> {
    let main = config.main_file();
    let enforce = super::enforced(&config.main);
    if enforce.is_empty() {
        return Err(main.invalid(
            0,
            "`enforce` is empty: name the authorities whose designations this gateway enforces, e.g. enforce = [\"UK\"]",
        ));
    }
    let mut ids: HashMap<&str, (usize, usize)> = HashMap::new();
    let mut expiry = Vec::with_capacity(config.entities.len());
    for src in &config.entities {
        let file = &config.files[src.file];
        let def = &src.def;
        let id = def.id.get_ref().as_str();
        let at = def.id.span().start;
        check_slug("entity id", id).map_err(|m| file.invalid(at, m))?;
        if let Some((f, off)) = ids.insert(id, (src.file, at)) {
            let first = config.files[f].at(off);
            return Err(file.invalid(
                at,
                format!("entity id `{id}` is already used at {first}; ids must be unique"),
            ));
        }
        for d in &def.designations {
            if let Some(delisted) = d.delisted_on
                && delisted < d.listed_on
            {
                return Err(file.invalid(
                    at,
                    format!(
                        "entity `{id}`: designation {} is delisted ({delisted}) before it was listed ({}); fix the dates",
                        d.reference, d.listed_on
                    ),
                ));
            }
        }
        // Every group's evidence, whether or not the entity is enforced: bad input is refused
        // even where it would not matter today.
        let mut until_by_group = Vec::with_capacity(def.networks.len());
        let mut group_names: HashMap<&str, usize> = HashMap::new();
        for g in &def.networks {
            if let Some(name) = &g.name {
                let (n, off) = (name.get_ref().as_str(), name.span().start);
                check_slug("network group name", n).map_err(|m| file.invalid(off, m))?;
                if let Some(first) = group_names.insert(n, off) {
                    return Err(file.invalid(
                        off,
                        format!(
                            "entity `{id}`: network group name `{n}` is already used at {}; names must be unique within an entity",
                            file.at(first)
                        ),
                    ));
                }
            }
            let until = evidence_expiry(&g.evidence).map_err(|m| {
                let off = g.evidence.max_age.as_ref().map_or(at, |a| a.span().start);
                file.invalid(off, m)
            })?;
            if let (Some(from), Some(until)) = (g.evidence.valid_from, until)
                && from >= until
            {
                return Err(file.invalid(
                    at,
                    format!(
                        "entity `{id}`: a network group's evidence ({}) counts from {from} but stops counting on {until}, so it never counts; fix valid_from, expires or max_age",
                        g.evidence.source
                    ),
                ));
            }
            until_by_group.push(until);
        }
        expiry.push(until_by_group);
    }
    let mut allow = Vec::with_capacity(config.main.allow.len());
    for a in &config.main.allow {
        let net = super::parse_prefix(a.prefix.get_ref())
            .map_err(|m| main.invalid(a.prefix.span().start, m))?;
        allow.push((net, a.reason.clone()));
    }
    Ok(Validated {
        config,
        enforce,
        expiry,
        allow,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn slugs() {
        for ok in ["a", "uk-2025_x", "0"] {
            assert!(is_slug(ok), "{ok}");
        }
        for bad in ["", "A", "a b", "é", "a.b", "a/b"] {
            assert!(!is_slug(bad), "{bad}");
        }
    }

    fn entity(id: &str, designation_extra: &str, evidence_extra: &str) -> String {
        format!(
            "[[entities]]\nid = \"{id}\"\nname = \"n\"\naction = \"drop\"\n\
             [[entities.designations]]\nauthority = \"UK\"\nregime = \"r\"\nreference = \"R1\"\n\
             listed_on = 2025-01-01\nsource = \"s\"\n{designation_extra}\n\
             [[entities.networks]]\nprefixes = [\"192.0.2.0/24\"]\n\
             [entities.networks.evidence]\nkind = \"advisory\"\nsource = \"e\"\n\
             retrieved = 2026-01-01\nconfidence = \"low\"\n{evidence_extra}\n"
        )
    }

    fn check(text: &str) -> Result<(), String> {
        let c = super::super::parse(Path::new("v.toml"), text.to_owned()).unwrap();
        validate(&c).map(|_| ()).map_err(|e| e.to_string())
    }

    #[test]
    fn group_names_are_slugs_unique_within_an_entity() {
        let group = |name: &str| {
            format!(
                "[[entities.networks]]\nname = \"{name}\"\nprefixes = [\"198.51.100.0/24\"]\n\
                 [entities.networks.evidence]\nkind = \"advisory\"\nsource = \"f\"\n\
                 retrieved = 2026-01-01\nconfidence = \"low\"\n"
            )
        };
        let ok = format!(
            "enforce = [\"UK\"]\n{}{}",
            entity("a", "", ""),
            group("cisa-aa24")
        );
        check(&ok).unwrap();
        let e = check(&format!(
            "enforce = [\"UK\"]\n{}{}",
            entity("a", "", ""),
            group("CISA AA24")
        ))
        .unwrap_err();
        assert!(
            e.contains("v.toml:22:8:") && e.contains("must be a slug"),
            "{e}"
        );
        let e = check(&format!(
            "enforce = [\"UK\"]\n{}{}{}",
            entity("a", "", ""),
            group("x"),
            group("x")
        ))
        .unwrap_err();
        assert!(
            e.contains("v.toml:30:8:") && e.contains("`x` is already used at v.toml:22:8"),
            "{e}"
        );
        // Different entities may use the same name.
        check(&format!(
            "enforce = [\"UK\"]\n{}{}{}{}",
            entity("a", "", ""),
            group("x"),
            entity("b", "", ""),
            group("x")
        ))
        .unwrap();
    }

    #[test]
    fn each_check_refuses_at_its_place() {
        let ok = format!("enforce = [\"UK\"]\n{}", entity("a", "", ""));
        check(&ok).unwrap();
        for (text, needle) in [
            (
                format!("enforce = []\n{}", entity("a", "", "")),
                "v.toml:1:1: `enforce` is empty",
            ),
            (
                format!("enforce = [\"UK\"]\n{}", entity("A", "", "")),
                "v.toml:3:6: entity id `A` must be a slug",
            ),
            (
                format!(
                    "enforce = [\"UK\"]\n{}{}",
                    entity("a", "", ""),
                    entity("a", "", "")
                ),
                "ids must be unique",
            ),
            (
                format!(
                    "enforce = [\"UK\"]\n{}",
                    entity("a", "delisted_on = 2024-01-01", "")
                ),
                "designation R1 is delisted (2024-01-01) before it was listed (2025-01-01)",
            ),
            (
                format!(
                    "enforce = [\"UK\"]\n{}",
                    entity("a", "", "max_age = \"1h\"")
                ),
                "max_age `1h` is under a day",
            ),
            (
                format!(
                    "enforce = [\"UK\"]\n{}",
                    entity("a", "", "valid_from = 2026-02-01\nexpires = 2026-02-01")
                ),
                "so it never counts",
            ),
            (
                format!(
                    "enforce = [\"UK\"]\n[[allow]]\nprefix = \"10.0.0.1/8\"\nreason = \"r\"\n{}",
                    entity("a", "", "")
                ),
                "v.toml:3:10: `10.0.0.1/8` has host bits set",
            ),
        ] {
            let err = check(&text).unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn what_the_checks_computed_is_kept() {
        let text = format!(
            "enforce = [\"uk\"]\n[[allow]]\nprefix = \"10.0.0.0/8\"\nreason = \"r\"\n{}",
            entity("a", "", "max_age = \"30days\"\nexpires = 2026-06-01")
        );
        let c = super::super::parse(Path::new("v.toml"), text).unwrap();
        let v = validate(&c).unwrap();
        assert_eq!(v.enforce().get("UK").map(String::as_str), Some("uk"));
        assert_eq!(
            v.expiry(0, 0),
            chrono::NaiveDate::from_ymd_opt(2026, 1, 31).map(When::Day)
        );
        assert_eq!(v.allow()[0].0, "10.0.0.0/8".parse::<IpNetwork>().unwrap());
        assert_eq!(v.entities.len(), 1, "derefs to the configuration");
    }
}
