//! The shared writer: groups imported indicators by evidence and renders them as `[[networks]]`
//! TOML groups for an entity file, to standard output, a new file, or appended to an existing
//! entity file (which must parse before and after, and is replaced atomically).

use std::{
    collections::HashMap,
    fmt::Write as _,
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use ipnetwork::IpNetwork;

use super::{Defaults, EvidenceKey, ImportError, Indicator};
use crate::{
    config::{self, EntityDef},
    files::write,
};

/// Longest `note` written in a group: the labels (STIX ids and names) past it are counted.
pub const NOTE_MAX_CHARS: usize = 400;

/// Indicators that share one piece of evidence: one `[[networks]]` group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub evidence: EvidenceKey,
    /// In input order, each once.
    pub prefixes: Vec<IpNetwork>,
    /// What the input calls the indicators, each once, in input order.
    pub labels: Vec<String>,
}

/// Groups indicators by their evidence, groups in the order their first indicator was read.
pub fn group(indicators: &[Indicator]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<&EvidenceKey, usize> = HashMap::new();
    // What each group already holds, so a group of many indicators is built in linear time.
    let mut seen: std::collections::HashSet<(usize, &IpNetwork)> = Default::default();
    let mut labelled: std::collections::HashSet<(usize, &str)> = Default::default();
    for i in indicators {
        let gi = *index.entry(&i.evidence).or_insert_with(|| {
            groups.push(Group {
                evidence: i.evidence.clone(),
                prefixes: Vec::new(),
                labels: Vec::new(),
            });
            groups.len() - 1
        });
        let g = &mut groups[gi];
        if seen.insert((gi, &i.net)) {
            g.prefixes.push(i.net);
        }
        if let Some(l) = &i.label
            && labelled.insert((gi, l.as_str()))
        {
            g.labels.push(l.clone());
        }
    }
    groups
}

/// Where the imported groups come from, for the comment and notes.
#[derive(Clone, Debug)]
pub struct Origin<'a> {
    /// `stix`, `ioc` or `csv`.
    pub format: &'a str,
    pub input: &'a Path,
    pub entity: &'a str,
    /// `--guard-override REASON`: written on every group, whose special-purpose prefixes were
    /// then kept ([`super::leave_out_special`]).
    pub guard_override: Option<&'a str>,
}

/// A prefix as entity files write it: a single address without its `/32` or `/128`.
fn prefix_text(n: &IpNetwork) -> String {
    let full = if n.is_ipv4() { 32 } else { 128 };
    if n.prefix() == full {
        n.ip().to_string()
    } else {
        n.to_string()
    }
}

/// A TOML basic string, escaped.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A lowercase enum name as serde writes it (`advisory`, `high`).
fn name_of<T: serde::Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// The group's note: where it came from and the labels, at most [`NOTE_MAX_CHARS`].
pub fn note(origin: &Origin<'_>, g: &Group) -> String {
    let file = origin.input.file_name().map_or_else(
        || origin.input.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    let n = g.prefixes.len();
    let mut text = format!(
        "{n} prefix{} imported by `embargo import {}` from {file}",
        if n == 1 { "" } else { "es" },
        origin.format
    );
    if g.labels.is_empty() {
        return text;
    }
    text.push_str(": ");
    for (i, l) in g.labels.iter().enumerate() {
        let sep = if i == 0 { "" } else { "; " };
        let after = g.labels.len() - i - 1;
        let reserve = if after > 0 {
            format!("; and {after} more").len()
        } else {
            0
        };
        if text.len() + sep.len() + l.len() + reserve > NOTE_MAX_CHARS {
            // The previous label left room for exactly this.
            let _ = write!(text, "{sep}and {} more", g.labels.len() - i);
            break;
        }
        text.push_str(sep);
        text.push_str(l);
    }
    text
}

/// Renders `groups` as `[[networks]]` tables with a leading comment.
pub fn render(groups: &[Group], defaults: &Defaults, origin: &Origin<'_>) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Imported for entity `{}` by `embargo import {}` from {} on {}: {} groups.",
        origin.entity,
        origin.format,
        origin.input.display(),
        defaults.retrieved,
        groups.len()
    );
    for g in groups {
        let e = &g.evidence;
        o.push_str("\n[[networks]]\nprefixes = [\n");
        for p in &g.prefixes {
            let _ = writeln!(o, "  {},", toml_string(&prefix_text(p)));
        }
        o.push_str("]\n");
        if let Some(reason) = origin.guard_override {
            let _ = writeln!(o, "guard_override = {}", toml_string(reason));
        }
        o.push_str("[networks.evidence]\n");
        let _ = writeln!(o, "kind = {}", toml_string(&name_of(defaults.kind)));
        let _ = writeln!(o, "source = {}", toml_string(&e.source));
        let _ = writeln!(o, "retrieved = {}", defaults.retrieved);
        let _ = writeln!(o, "confidence = {}", toml_string(&name_of(e.confidence)));
        if let Some(d) = e.valid_from {
            let _ = writeln!(o, "valid_from = {d}");
        }
        if let Some(d) = e.expires {
            let _ = writeln!(o, "expires = {d}");
        }
        if let Some(a) = &e.max_age {
            let _ = writeln!(o, "max_age = {}", toml_string(a));
        }
        let _ = writeln!(o, "note = {}", toml_string(&note(origin, g)));
    }
    o
}

/// Where the rendered groups go.
#[derive(Clone, Debug)]
pub enum Destination {
    Stdout,
    /// A new file: refused if it exists.
    New(PathBuf),
    /// An existing entity file of the same entity: the groups are appended.
    Append(PathBuf),
}

/// Parses an entity file's text, naming the place of any error.
fn parse_entity(path: &Path, text: &str) -> Result<EntityDef, ImportError> {
    toml::from_str::<EntityDef>(text).map_err(|e| {
        let (line, col) = config::line_col(text, e.span().map_or(0, |s| s.start));
        ImportError::Output {
            path: path.to_owned(),
            message: format!(
                "line {line} column {col}: {}; --append needs an entity file that parses",
                e.message().trim()
            ),
        }
    })
}

/// Writes `text` (from [`render`]) to `dest`.
pub fn deliver(dest: &Destination, text: &str, entity: &str) -> Result<(), ImportError> {
    let fail = |path: &Path, message: String| ImportError::Output {
        path: path.to_owned(),
        message,
    };
    match dest {
        Destination::Stdout => {
            // A reader that went away (`| head`) is not a failure ([`crate::cli::output`]).
            crate::cli::output::stdout_bytes(text.as_bytes())
                .map_err(|e| fail(Path::new("<stdout>"), e.to_string()))
        }
        Destination::New(path) => {
            // Whole or not at all, never over an existing name (a symlink included).
            write::write_new(path, text.as_bytes(), write::Mode::Create(0o666)).map_err(|e| match e
            {
                write::SafeFsError::Exists { .. } => fail(
                    path,
                    "already exists; refusing to overwrite it: choose another path, or \
                         add the groups to an entity file with --append"
                        .to_owned(),
                ),
                e => fail(path, format!("cannot write: {e}")),
            })
        }
        Destination::Append(path) => {
            let old = config::read_text(path)?;
            let def = parse_entity(path, &old)?;
            if def.id.get_ref() != entity {
                return Err(fail(
                    path,
                    format!(
                        "is the entity file of `{}`, not `{entity}`; append to `{entity}`'s file \
                         or fix --entity",
                        def.id.get_ref()
                    ),
                ));
            }
            let mut new = old.clone();
            if !new.is_empty() && !new.ends_with('\n') {
                new.push('\n');
            }
            new.push('\n');
            new.push_str(text);
            let def = parse_entity(path, &new)?;
            debug_assert_eq!(def.id.get_ref(), entity);
            // Replace atomically (an exclusive temporary next to it, then rename), keeping the
            // file's mode.
            let mode = fs::metadata(path)
                .map_err(|e| fail(path, e.to_string()))?
                .permissions()
                .mode()
                & 0o7777;
            write::write_atomic(path, new.as_bytes(), write::Mode::Exact(mode))
                .map_err(|e| fail(path, format!("cannot write: {e}; the file is unchanged")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Confidence, Date, EvidenceKind, NetworkGroup};

    fn day(s: &str) -> Date {
        Date(chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap())
    }

    fn key(source: &str, from: Option<&str>, until: Option<&str>) -> EvidenceKey {
        EvidenceKey {
            source: source.into(),
            confidence: Confidence::Medium,
            valid_from: from.map(day),
            expires: until.map(day),
            last_seen: None,
            max_age: None,
        }
    }

    fn ind(net: &str, k: &EvidenceKey, label: Option<&str>) -> Indicator {
        Indicator {
            net: net.parse().unwrap(),
            evidence: k.clone(),
            label: label.map(String::from),
        }
    }

    fn defaults() -> Defaults {
        Defaults {
            kind: EvidenceKind::Advisory,
            source: None,
            retrieved: day("2026-11-27"),
            confidence: None,
        }
    }

    #[test]
    fn indicators_with_the_same_evidence_share_a_group() {
        let a = key("https://a.example/", Some("2026-01-01"), None);
        let a_later = key("https://a.example/", Some("2026-02-01"), None);
        let b = key("https://b.example/", Some("2026-01-01"), None);
        let mut high = a.clone();
        high.confidence = Confidence::High;
        let groups = group(&[
            ind("192.0.2.1/32", &a, Some("x")),
            ind("192.0.2.2/32", &b, None),
            ind("192.0.2.3/32", &a, Some("y")),
            ind("192.0.2.1/32", &a, Some("x")),
            ind("192.0.2.4/32", &a_later, None),
            ind("192.0.2.5/32", &high, None),
        ]);
        let shape: Vec<(String, Vec<String>)> = groups
            .iter()
            .map(|g| {
                (
                    g.evidence.source.clone(),
                    g.prefixes.iter().map(prefix_text).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                (
                    "https://a.example/".into(),
                    vec!["192.0.2.1".into(), "192.0.2.3".into()]
                ),
                ("https://b.example/".into(), vec!["192.0.2.2".into()]),
                ("https://a.example/".into(), vec!["192.0.2.4".into()]),
                ("https://a.example/".into(), vec!["192.0.2.5".into()]),
            ]
        );
        assert_eq!(groups[0].labels, ["x", "y"]);
    }

    #[test]
    fn rendered_groups_parse_as_network_groups() {
        let k = key(
            "https://a.example/\"quoted\"",
            Some("2026-01-01"),
            Some("2027-01-01"),
        );
        let groups = group(&[
            ind("192.0.2.7/32", &k, Some("indicator--1 (C2 \"alpha\")")),
            ind("2001:db8::/32", &k, None),
        ]);
        let origin = Origin {
            format: "stix",
            input: Path::new("/tmp/bundle.json"),
            entity: "example",
            guard_override: None,
        };
        let text = render(&groups, &defaults(), &origin);
        #[derive(serde::Deserialize)]
        struct File {
            networks: Vec<NetworkGroup>,
        }
        let f: File = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(f.networks.len(), 1);
        let g = &f.networks[0];
        let prefixes: Vec<&str> = g.prefixes.iter().map(|p| p.get_ref().as_str()).collect();
        assert_eq!(prefixes, ["192.0.2.7", "2001:db8::/32"]);
        assert_eq!(g.evidence.source, k.source);
        assert_eq!(g.evidence.valid_from, Some(day("2026-01-01").into()));
        assert_eq!(g.evidence.expires, Some(day("2027-01-01").into()));
        assert_eq!(*g.evidence.kind.get_ref(), EvidenceKind::Advisory);
        assert!(g.evidence.note.as_deref().unwrap().contains("C2 \"alpha\""));
    }

    /// Regression (issue 10): `--append` wrote its temporary under a fixed name with
    /// `fs::write` and `set_permissions`, so a symlink planted there made an import overwrite
    /// and re-permission the file it pointed to.
    #[test]
    fn append_never_writes_through_a_planted_symlink() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::Builder::new()
            .prefix("embargo-writer-link-")
            .tempdir()
            .unwrap();
        let dir = tmp.path();
        let victim = dir.join("victim");
        fs::write(&victim, "precious\n").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
        let entity = dir.join("e.toml");
        fs::write(&entity, "id = \"e\"\nname = \"E\"\naction = \"drop\"\n").unwrap();
        fs::set_permissions(&entity, fs::Permissions::from_mode(0o644)).unwrap();
        // The name the old code used, and a few others a writer might pick.
        for planted in [".e.toml.embargo-import.tmp", "e.toml.tmp", ".e.toml.tmp"] {
            std::os::unix::fs::symlink(&victim, dir.join(planted)).unwrap();
        }
        let k = key("https://a.example/", None, None);
        let origin = Origin {
            format: "ioc",
            input: Path::new("in.txt"),
            entity: "e",
            guard_override: None,
        };
        let text = render(
            &group(&[ind("192.0.2.9/32", &k, None)]),
            &defaults(),
            &origin,
        );
        deliver(&Destination::Append(entity.clone()), &text, "e").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(
            fs::metadata(&victim).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        let meta = fs::symlink_metadata(&entity).unwrap();
        assert!(meta.is_file(), "the entity file is a file, not a link");
        assert_eq!(meta.permissions().mode() & 0o7777, 0o644, "mode kept");
        assert!(fs::read_to_string(&entity).unwrap().contains("192.0.2.9"));
    }

    #[test]
    fn notes_are_bounded_and_count_what_they_leave_out() {
        let k = key("s", None, None);
        let labels: Vec<String> = (0..100).map(|i| format!("indicator--{i:036}")).collect();
        let inds: Vec<Indicator> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| ind(&format!("192.0.2.{i}/32"), &k, Some(l)))
            .collect();
        let g = &group(&inds)[0];
        let origin = Origin {
            format: "stix",
            input: Path::new("b.json"),
            entity: "e",
            guard_override: None,
        };
        let n = note(&origin, g);
        assert!(n.len() <= NOTE_MAX_CHARS, "{} chars: {n}", n.len());
        assert!(n.contains(&labels[0]), "{n}");
        let shown = labels.iter().filter(|l| n.contains(l.as_str())).count();
        assert!(n.ends_with(&format!("and {} more", 100 - shown)), "{n}");
    }
}
