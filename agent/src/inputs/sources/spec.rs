//! `[[sources]]` entries checked into [`SourceSpec`]s: everything a fetch and a cache read need,
//! with defaults applied. Every refusal names the place in the main file and what to write.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use rustls::pki_types::{CertificateDer, pem::PemObject as _};

use crate::config::{
    Config, ConfigError, Location, OnBadLine, OnSourceFailure, SourceDef, SourceFormat,
    validate::{self, CsvLayout},
};

/// Where last-known-good copies live unless the main file sets `cache_dir`.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/embargo/sources";
/// Default `interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);
/// Default `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `max_bytes`: 16 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Largest `max_bytes` accepted: what a cached copy may weigh when it is read back.
pub const MAX_MAX_BYTES: u64 = crate::config::MAX_FILE_BYTES;
/// Shortest `interval` accepted.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// How a body lists prefixes, with the format's setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// One CIDR or address per line, `#` comments.
    List,
    /// CSV (header row or not, any one-byte delimiter); the prefixes are in the layout's
    /// column, rows of other types skipped when it has a type column.
    Csv { layout: CsvLayout },
    /// A JSON array of strings (`field` unset) or of objects whose `field` holds the prefix.
    Json { field: Option<String> },
    /// A sanctions list, read by a `[[lists]]` entry: validated with the list parser.
    Sanctions(crate::inputs::lists::ListFormat),
    /// A TAXII 2.1 collection ([`super::taxii`]): the source's `url` is its objects endpoint,
    /// made from the API root and the collection id.
    Taxii { collection: String },
}

/// A checked source.
#[derive(Clone, Debug)]
pub struct SourceSpec {
    pub name: String,
    /// What is fetched: the configured URL, or for `taxii` the collection's objects endpoint.
    pub url: url::Url,
    pub format: Format,
    pub interval: Duration,
    pub timeout: Duration,
    pub max_bytes: u64,
    /// Pinned SHA-256 of the body, lowercase hex.
    pub sha256: Option<String>,
    /// Key the body's `<url>.minisig` must verify with.
    pub minisign_key: Option<minisign_verify::PublicKey>,
    /// Extra trusted CA certificates (from `ca_file`), on top of the public roots.
    pub ca_certs: Vec<CertificateDer<'static>>,
    pub ca_file: Option<PathBuf>,
    pub on_failure: OnSourceFailure,
    /// What a bad line does to a body (`list` and `csv`; refuse for the others).
    pub on_bad_line: OnBadLine,
    /// The folder holding the last-known-good copy.
    pub cache_dir: PathBuf,
    /// Where the source is declared (its `name`).
    pub at: Location,
    /// The broad-prefix guard its prefixes pass before a body is stored or a copy is used.
    pub guard: super::guard::SourceGuard,
    /// `taxii`: the credentials read from `bearer_token_file` or `basic_auth_file` (its
    /// `Debug` hides them).
    pub auth: Option<super::taxii::Auth>,
}

impl SourceSpec {
    /// The URL as shown in logs, errors, status and reports: its password hidden
    /// ([`redact_url`]).
    pub fn shown_url(&self) -> String {
        redact_url(self.url.as_str())
    }

    /// `<url>.minisig`: the signature served next to the body.
    pub fn signature_url(&self) -> url::Url {
        let mut u = self.url.clone();
        let path = format!("{}.minisig", u.path());
        u.set_path(&path);
        u
    }
}

/// `text` with the credentials of every URL in it hidden: `https://user:secret@host/` becomes
/// `https://user:***@host/`, and a lone `https://token@host/` becomes `https://***@host/`. The
/// one way a source URL (or a message quoting one) is displayed: a feed's credentials never
/// reach a log line, an error, `embargo status` or `embargo check --json`. One pass.
pub fn redact_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| {
                matches!(
                    c,
                    '/' | '?' | '#' | '`' | '"' | '\'' | '<' | '>' | '(' | ')'
                ) || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    None => out.push_str("***"),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The cache folder the main file names, or the default; relative paths are relative to it.
pub fn cache_dir(config: &Config) -> PathBuf {
    match &config.main.cache_dir {
        Some(d) => config.relative(0, d.get_ref()),
        None => PathBuf::from(DEFAULT_CACHE_DIR),
    }
}

/// Checks every `[[sources]]` entry of `config`, in order.
pub fn specs(config: &Config) -> Result<Vec<SourceSpec>, ConfigError> {
    let dir = cache_dir(config);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(config.main.sources.len());
    for def in &config.main.sources {
        let name = def.name.get_ref().as_str();
        let main = config.main_file();
        if let Some(first) = seen.insert(name, def.name.span().start) {
            return Err(main.invalid(
                def.name.span().start,
                format!(
                    "source name `{name}` is already used at {}; names must be unique",
                    main.at(first)
                ),
            ));
        }
        out.push(spec(config, def, dir.clone())?);
    }
    Ok(out)
}

fn spec(config: &Config, def: &SourceDef, cache_dir: PathBuf) -> Result<SourceSpec, ConfigError> {
    let main = config.main_file();
    let name = def.name.get_ref().clone();
    validate::check_slug("source name", &name)
        .map_err(|m| main.invalid(def.name.span().start, m))?;
    let url_text = &redact_url(def.url.get_ref().trim());
    let at_url = |m: String| main.invalid(def.url.span().start, format!("source `{name}`: {m}"));
    let url = url::Url::parse(def.url.get_ref().trim())
        .map_err(|e| at_url(format!("url `{url_text}` is not a URL ({e})")))?;
    match url.scheme() {
        "https" => {}
        "http" => {
            return Err(at_url(format!(
                "url `{url_text}` is plain HTTP; sources are fetched over HTTPS only, with the \
                 certificate verified: write https://"
            )));
        }
        other => {
            return Err(at_url(format!(
                "url `{url_text}` uses `{other}:`; sources are fetched over https:// only"
            )));
        }
    }
    if url.host().is_none() {
        return Err(at_url(format!("url `{url_text}` has no host")));
    }
    let fmt = *def.format.get_ref();
    let fmt_name = match fmt {
        SourceFormat::List => "list",
        SourceFormat::Csv => "csv",
        SourceFormat::Json => "json",
        SourceFormat::Taxii => "taxii",
        other => other
            .list_format()
            .map_or("", crate::inputs::lists::ListFormat::name),
    };
    // Options of one format only, refused on the others at their place.
    let only = |at: Option<usize>, option: &str, formats: &[SourceFormat], wanted: &str| match at {
        Some(at) if !formats.contains(&fmt) => Err(main.invalid(
            at,
            format!("source `{name}`: `{option}` is for {wanted}, not \"{fmt_name}\""),
        )),
        _ => Ok(()),
    };
    let csv_only = [SourceFormat::Csv];
    let csv = "format = \"csv\"";
    only(
        def.column.as_ref().map(|c| c.span().start),
        "column",
        &csv_only,
        csv,
    )?;
    only(
        def.field.as_ref().map(|c| c.span().start),
        "field",
        &[SourceFormat::Json],
        "format = \"json\"",
    )?;
    only(
        def.delimiter.as_ref().map(|c| c.span().start),
        "delimiter",
        &csv_only,
        csv,
    )?;
    only(
        def.header.as_ref().map(|c| c.span().start),
        "header",
        &csv_only,
        csv,
    )?;
    only(
        def.type_column.as_ref().map(|c| c.span().start),
        "type_column",
        &csv_only,
        csv,
    )?;
    only(
        def.types.as_ref().map(|c| c.span().start),
        "types",
        &csv_only,
        csv,
    )?;
    only(
        def.on_bad_line.as_ref().map(|c| c.span().start),
        "on_bad_line",
        &[SourceFormat::List, SourceFormat::Csv],
        "format = \"list\" or \"csv\"",
    )?;
    let taxii_only = [SourceFormat::Taxii];
    let taxii = "format = \"taxii\"";
    only(
        def.collection.as_ref().map(|c| c.span().start),
        "collection",
        &taxii_only,
        taxii,
    )?;
    only(
        def.bearer_token_file.as_ref().map(|c| c.span().start),
        "bearer_token_file",
        &taxii_only,
        taxii,
    )?;
    only(
        def.basic_auth_file.as_ref().map(|c| c.span().start),
        "basic_auth_file",
        &taxii_only,
        taxii,
    )?;
    let mut url = url;
    let mut auth = None;
    if fmt == SourceFormat::Taxii {
        if let Some(k) = &def.minisign_key {
            return Err(main.invalid(
                k.span().start,
                format!(
                    "source `{name}`: `minisign_key` is not for format = \"taxii\": a TAXII \
                     server serves no signature; pin the collection with sha256, or remove it"
                ),
            ));
        }
        if url.path().contains("/collections/") {
            return Err(at_url(format!(
                "url `{url_text}` names a collection; for format = \"taxii\" write the API \
                 root (e.g. https://host/api1/) in `url` and the collection's id in `collection`"
            )));
        }
        let Some(c) = &def.collection else {
            return Err(main.invalid(
                def.format.span().start,
                format!(
                    "source `{name}`: format = \"taxii\" needs collection = \"<id>\", the \
                     collection's id on the API root (GET <api root>collections/ lists them)"
                ),
            ));
        };
        super::taxii::check_collection(c.get_ref())
            .map_err(|m| main.invalid(c.span().start, format!("source `{name}`: {m}")))?;
        url = super::taxii::objects_url(&url, c.get_ref());
        auth = match (&def.bearer_token_file, &def.basic_auth_file) {
            (Some(_), Some(b)) => {
                return Err(main.invalid(
                    b.span().start,
                    format!(
                        "source `{name}`: bearer_token_file and basic_auth_file are both set; \
                         keep the one the server expects"
                    ),
                ));
            }
            (Some(f), None) | (None, Some(f)) => {
                let kind = if def.bearer_token_file.is_some() {
                    super::taxii::AuthKind::Bearer
                } else {
                    super::taxii::AuthKind::Basic
                };
                let path = config.relative(0, f.get_ref());
                Some(super::taxii::read_auth(&path, kind).map_err(|m| {
                    main.invalid(
                        f.span().start,
                        format!("source `{name}`: {} {m}", kind.option()),
                    )
                })?)
            }
            (None, None) => None,
        };
    }
    let format = match fmt {
        SourceFormat::List => Format::List,
        SourceFormat::Taxii => Format::Taxii {
            collection: def
                .collection
                .as_ref()
                .map(|c| c.get_ref().clone())
                .unwrap_or_default(),
        },
        SourceFormat::Csv => Format::Csv {
            layout: csv_layout(config, def, &name)?,
        },
        SourceFormat::Json => Format::Json {
            field: def.field.as_ref().map(|f| f.get_ref().clone()),
        },
        other => Format::Sanctions(other.list_format().expect("the other formats are lists")),
    };
    let duration = |v: &Option<toml::Spanned<String>>, what: &str, default: Duration| {
        let Some(v) = v else { return Ok(default) };
        let d = humantime::parse_duration(v.get_ref().trim()).map_err(|e| {
            main.invalid(
                v.span().start,
                format!(
                    "source `{name}`: {what} `{}` is not a duration ({e}); write e.g. \"1h\" or \"30s\"",
                    v.get_ref()
                ),
            )
        })?;
        if d.is_zero() {
            return Err(main.invalid(
                v.span().start,
                format!("source `{name}`: {what} must be more than zero"),
            ));
        }
        Ok(d)
    };
    let interval = duration(&def.interval, "interval", DEFAULT_INTERVAL)?;
    if interval < MIN_INTERVAL {
        let off = def.interval.as_ref().map_or(0, |i| i.span().start);
        return Err(main.invalid(
            off,
            format!("source `{name}`: interval must be at least 1s"),
        ));
    }
    let timeout = duration(&def.timeout, "timeout", DEFAULT_TIMEOUT)?;
    let max_bytes = match &def.max_bytes {
        None => DEFAULT_MAX_BYTES,
        Some(m) if *m.get_ref() == 0 || *m.get_ref() > MAX_MAX_BYTES => {
            return Err(main.invalid(
                m.span().start,
                format!(
                    "source `{name}`: max_bytes must be between 1 and {MAX_MAX_BYTES} (64 MiB)"
                ),
            ));
        }
        Some(m) => *m.get_ref(),
    };
    let sha256 = match &def.sha256 {
        None => None,
        Some(h) => {
            let hex = h.get_ref().trim().to_ascii_lowercase();
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(main.invalid(
                    h.span().start,
                    format!("source `{name}`: sha256 must be 64 hex digits (the body's SHA-256)"),
                ));
            }
            Some(hex)
        }
    };
    let minisign_key = match &def.minisign_key {
        None => None,
        Some(k) => {
            let text = k.get_ref().trim();
            // The key line alone, or a whole minisign.pub (comment line, key line).
            let key = text.lines().last().unwrap_or_default().trim();
            Some(minisign_verify::PublicKey::from_base64(key).map_err(|e| {
                main.invalid(
                    k.span().start,
                    format!(
                        "source `{name}`: minisign_key is not a minisign public key ({e}); \
                         write the base64 line of the .pub file, e.g. \"RWQ...\""
                    ),
                )
            })?)
        }
    };
    let (ca_file, ca_certs) = match &def.ca_file {
        None => (None, Vec::new()),
        Some(f) => {
            let path = config.relative(0, f.get_ref());
            let certs = read_ca_file(&path).map_err(|m| {
                main.invalid(f.span().start, format!("source `{name}`: ca_file {m}"))
            })?;
            (Some(path), certs)
        }
    };
    Ok(SourceSpec {
        guard: super::guard::SourceGuard::of(config, &name),
        at: main.at(def.name.span().start),
        name,
        url,
        format,
        interval,
        timeout,
        max_bytes,
        sha256,
        minisign_key,
        ca_certs,
        ca_file,
        on_failure: def
            .on_source_failure
            .unwrap_or(config.main.on_source_failure),
        on_bad_line: def
            .on_bad_line
            .as_ref()
            .map_or(OnBadLine::Refuse, |o| *o.get_ref()),
        cache_dir,
        auth,
    })
}

/// The layout of a `format = "csv"` source; each option checked by [`validate`] and refused at
/// its place.
fn csv_layout(config: &Config, def: &SourceDef, name: &str) -> Result<CsvLayout, ConfigError> {
    let main = config.main_file();
    let at = |off: usize| move |m: String| main.invalid(off, format!("source `{name}`: {m}"));
    let delimiter = match &def.delimiter {
        None => b',',
        Some(d) => {
            validate::csv_delimiter(d.get_ref()).map_err(|e| at(d.span().start)(e.to_string()))?
        }
    };
    let header = def.header.as_ref().is_none_or(|h| *h.get_ref());
    let column = match &def.column {
        Some(c) => validate::csv_column(c.get_ref(), header, "column")
            .map_err(|e| at(c.span().start)(e.to_string()))?,
        None => {
            return Err(at(def.format.span().start)(
                "format = \"csv\" needs column = \"<header>\" (or column = <number>, 1 for the \
                 first), the column holding the prefixes"
                    .into(),
            ));
        }
    };
    let type_column = def
        .type_column
        .as_ref()
        .map(|c| {
            validate::csv_column(c.get_ref(), header, "type_column")
                .map_err(|e| at(c.span().start)(e.to_string()))
        })
        .transpose()?;
    let types = match (&def.types, &type_column) {
        (Some(t), None) => {
            return Err(at(t.span().start)(
                "`types` needs `type_column`, the column the types are in".into(),
            ));
        }
        (Some(t), Some(_)) => {
            validate::csv_types(t.get_ref()).map_err(|e| at(t.span().start)(e.to_string()))?
        }
        (None, Some(_)) => crate::inputs::import::csv::IP_TYPES
            .iter()
            .map(|t| (*t).to_owned())
            .collect(),
        (None, None) => Vec::new(),
    };
    Ok(CsvLayout {
        delimiter,
        header,
        column,
        type_column,
        types,
    })
}

/// Reads the CA certificates of a PEM file; each must be one rustls accepts as a root.
fn read_ca_file(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let text = crate::config::read_text(path)
        .map_err(|e| format!("{} cannot be read ({e})", path.display()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not PEM certificates ({e})", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    let mut store = rustls::RootCertStore::empty();
    for c in &certs {
        store.add(c.clone()).map_err(|e| {
            format!(
                "{}: a certificate cannot be used as a trust anchor ({e})",
                path.display()
            )
        })?;
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config;

    fn load(sources: &str) -> Result<Vec<SourceSpec>, ConfigError> {
        let text = format!("enforce = [\"UK\"]\ncache_dir = \"cache\"\n{sources}");
        let c = config::parse(Path::new("/etc/embargo/main.toml"), text)?;
        specs(&c)
    }

    fn err(sources: &str) -> String {
        load(sources).unwrap_err().to_string()
    }

    #[test]
    fn defaults_apply_and_cache_dir_is_relative_to_the_main_file() {
        let s = load(
            "[[sources]]\nname = \"a\"\nurl = \"https://example.org/a.txt\"\nformat = \"list\"\n",
        )
        .unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].interval, DEFAULT_INTERVAL);
        assert_eq!(s[0].timeout, DEFAULT_TIMEOUT);
        assert_eq!(s[0].max_bytes, DEFAULT_MAX_BYTES);
        assert_eq!(s[0].on_failure, OnSourceFailure::Refuse);
        assert_eq!(s[0].cache_dir, Path::new("/etc/embargo/cache"));
        assert_eq!(
            s[0].signature_url().as_str(),
            "https://example.org/a.txt.minisig"
        );
    }

    #[test]
    fn credentials_in_urls_are_hidden() {
        for (text, shown) in [
            ("https://example.org/a", "https://example.org/a"),
            (
                "https://user:s3cret@example.org/a?x=1",
                "https://user:***@example.org/a?x=1",
            ),
            ("https://tok3n@example.org", "https://***@example.org"),
            (
                "fetching (https://u:p%40ss@h:8443/x) then http://a:b@c",
                "fetching (https://u:***@h:8443/x) then http://a:***@c",
            ),
            ("no url: here @ all", "no url: here @ all"),
            ("x://", "x://"),
        ] {
            assert_eq!(redact_url(text), shown, "{text}");
        }
        let e = err(
            "[[sources]]\nname = \"a\"\nurl = \"http://me:s3cret@example.org/a.txt\"\nformat = \"list\"\n",
        );
        assert!(!e.contains("s3cret"), "{e}");
        assert!(e.contains("http://me:***@example.org/a.txt"), "{e}");
        let s = load(
            "[[sources]]\nname = \"a\"\nurl = \"https://me:s3cret@example.org/a.txt\"\nformat = \"list\"\n",
        )
        .unwrap();
        assert_eq!(s[0].shown_url(), "https://me:***@example.org/a.txt");
    }

    #[test]
    fn plain_http_is_refused_with_the_place() {
        let e = err(
            "[[sources]]\nname = \"a\"\nurl = \"http://example.org/a.txt\"\nformat = \"list\"\n",
        );
        assert!(e.starts_with("/etc/embargo/main.toml:5:7:"), "{e}");
        assert!(e.contains("plain HTTP"), "{e}");
        assert!(e.contains("https://"), "{e}");
        let e = err("[[sources]]\nname = \"a\"\nurl = \"file:///etc/passwd\"\nformat = \"list\"\n");
        assert!(e.contains("https:// only"), "{e}");
    }

    #[test]
    fn bad_entries_are_refused() {
        let base = "[[sources]]\nname = \"a\"\nurl = \"https://example.org/a\"\n";
        for (extra, needle) in [
            ("format = \"csv\"\n", "needs column"),
            (
                "format = \"list\"\ncolumn = \"ip\"\n",
                "`column` is for format = \"csv\"",
            ),
            (
                "format = \"csv\"\ncolumn = \"ip\"\nfield = \"x\"\n",
                "`field` is for format = \"json\"",
            ),
            ("format = \"list\"\ninterval = \"soon\"\n", "not a duration"),
            ("format = \"list\"\ninterval = \"10ms\"\n", "at least 1s"),
            ("format = \"list\"\ntimeout = \"0s\"\n", "more than zero"),
            (
                "format = \"list\"\nmax_bytes = 0\n",
                "max_bytes must be between",
            ),
            ("format = \"list\"\nsha256 = \"abc\"\n", "64 hex digits"),
            (
                "format = \"list\"\nminisign_key = \"not-a-key\"\n",
                "not a minisign public key",
            ),
            (
                "format = \"list\"\nca_file = \"/nonexistent/ca.pem\"\n",
                "cannot be read",
            ),
            ("format = \"xml\"\n", "unknown variant"),
            (
                "format = \"list\"\non_source_failure = \"ignore\"\n",
                "unknown variant",
            ),
        ] {
            let e = match load(&format!("{base}{extra}")) {
                Ok(_) => panic!("{extra}: accepted"),
                Err(e) => e.to_string(),
            };
            assert!(e.contains(needle), "{extra}: {e}");
            assert!(e.starts_with("/etc/embargo/main.toml:"), "{e}");
        }
        let e =
            err("[[sources]]\nname = \"Bad Name\"\nurl = \"https://e.org/\"\nformat = \"list\"\n");
        assert!(e.contains("must be a slug"), "{e}");
        let one = "[[sources]]\nname = \"a\"\nurl = \"https://e.org/\"\nformat = \"list\"\n";
        let e = err(&format!("{one}{one}"));
        assert!(
            e.contains("already used at /etc/embargo/main.toml:4:"),
            "{e}"
        );
    }

    #[test]
    fn list_formats_are_source_formats() {
        let s = load(
            "[[sources]]\nname = \"uk\"\nurl = \"https://e.org/uk.csv\"\nformat = \"uk-csv\"\n",
        )
        .unwrap();
        assert_eq!(
            s[0].format,
            Format::Sanctions(crate::inputs::lists::ListFormat::UkCsv)
        );
        let e = err(
            "[[sources]]\nname = \"uk\"\nurl = \"https://e.org/uk.csv\"\nformat = \"uk-csv\"\ncolumn = \"ip\"\n",
        );
        assert!(
            e.contains("`column` is for format = \"csv\", not \"uk-csv\""),
            "{e}"
        );
    }

    #[test]
    fn per_source_failure_policy_overrides_the_main_one() {
        let text = "enforce = [\"UK\"]\non_source_failure = \"skip\"\n\
            [[sources]]\nname = \"a\"\nurl = \"https://e.org/a\"\nformat = \"list\"\n\
            [[sources]]\nname = \"b\"\nurl = \"https://e.org/b\"\nformat = \"json\"\non_source_failure = \"refuse\"\n";
        let c = config::parse(Path::new("m.toml"), text.to_owned()).unwrap();
        let s = specs(&c).unwrap();
        assert_eq!(s[0].on_failure, OnSourceFailure::Skip);
        assert_eq!(s[1].on_failure, OnSourceFailure::Refuse);
        assert_eq!(s[1].format, Format::Json { field: None });
        assert_eq!(s[0].cache_dir, Path::new(DEFAULT_CACHE_DIR));
    }

    #[test]
    fn csv_layout_options_are_checked_at_their_place() {
        let base = "[[sources]]\nname = \"a\"\nurl = \"https://example.org/a\"\n";
        let s = load(&format!(
            "{base}format = \"csv\"\ndelimiter = \"\\t\"\nheader = false\ncolumn = 2\n\
             type_column = \"4\"\ntypes = [\"IP-DST\", \"ip:port\"]\non_bad_line = \"skip\"\n"
        ))
        .unwrap();
        let Format::Csv { layout } = &s[0].format else {
            panic!("{:?}", s[0].format)
        };
        assert_eq!(layout.delimiter, b'\t');
        assert!(!layout.header);
        assert_eq!(layout.column, validate::Column::Number(2));
        assert_eq!(layout.type_column, Some(validate::Column::Number(4)));
        assert_eq!(layout.types, ["ip-dst", "ip:port"]);
        assert_eq!(s[0].on_bad_line, OnBadLine::Skip);
        // `tab` works too; a type column alone accepts the IP types; refuse is the default.
        let s = load(&format!(
            "{base}format = \"csv\"\ndelimiter = \"tab\"\ncolumn = \"value\"\ntype_column = \"type\"\n"
        ))
        .unwrap();
        let Format::Csv { layout } = &s[0].format else {
            panic!()
        };
        assert_eq!(layout.delimiter, b'\t');
        assert!(
            layout.accepts("IPv4-Addr")
                && layout.accepts("ip-dst|port")
                && !layout.accepts("domain")
        );
        assert_eq!(s[0].on_bad_line, OnBadLine::Refuse);
        let s = load(&format!(
            "{base}format = \"list\"\non_bad_line = \"skip\"\n"
        ))
        .unwrap();
        assert_eq!(s[0].on_bad_line, OnBadLine::Skip);

        for (extra, line, needle) in [
            (
                "format = \"csv\"\ncolumn = \"ip\"\ndelimiter = \";;\"\n",
                8,
                "must be one character",
            ),
            (
                "format = \"csv\"\ncolumn = \"ip\"\ndelimiter = \"\\\"\"\n",
                8,
                "cannot separate fields",
            ),
            (
                "format = \"csv\"\nheader = false\ncolumn = \"ip\"\n",
                8,
                "columns are numbers",
            ),
            ("format = \"csv\"\ncolumn = 0\n", 7, "numbered from 1"),
            (
                "format = \"csv\"\ncolumn = \"ip\"\ntypes = [\"ipv4\"]\n",
                8,
                "`types` needs `type_column`",
            ),
            (
                "format = \"csv\"\ncolumn = \"ip\"\ntype_column = \"t\"\ntypes = []\n",
                9,
                "types is empty",
            ),
            (
                "format = \"list\"\ndelimiter = \"tab\"\n",
                7,
                "`delimiter` is for format = \"csv\"",
            ),
            (
                "format = \"list\"\nheader = false\n",
                7,
                "`header` is for format = \"csv\"",
            ),
            (
                "format = \"json\"\non_bad_line = \"skip\"\n",
                7,
                "`on_bad_line` is for format = \"list\" or \"csv\"",
            ),
            (
                "format = \"list\"\non_bad_line = \"ignore\"\n",
                7,
                "unknown variant",
            ),
        ] {
            let e = match load(&format!("{base}{extra}")) {
                Ok(_) => panic!("{extra}: accepted"),
                Err(e) => e.to_string(),
            };
            assert!(e.contains(needle), "{extra}: {e}");
            assert!(
                e.starts_with(&format!("/etc/embargo/main.toml:{line}:")),
                "{extra}: {e}"
            );
        }
    }
}
