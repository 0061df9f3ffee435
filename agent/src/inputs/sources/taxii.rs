//! TAXII 2.1 collections as a source (`format = "taxii"`): the API root in `url`, the
//! collection's id in `collection`, optional credentials from a file.
//!
//! One fetch reads every page of `<api root>/collections/<id>/objects/` (media type
//! [`MEDIA_TYPE`]): the first page without a filter, each next one with the server's `next`
//! when it gives one, else `added_after` = the previous page's `X-TAXII-Date-Added-Last`, while
//! the envelope says `more`. What must stay true:
//!
//! * the pages are one fetch: the source's one `timeout` and one `max_bytes` cover all of them
//!   together, the TLS verification (public roots plus `ca_file`), the `sha256` pin and the
//!   last-known-good copy are the other sources'; a page that fails (status, content type that
//!   is not TAXII 2.1, not an envelope, an object without an id, a paging that makes no
//!   progress, over the cap) fails the whole fetch, and the previous copy stays;
//! * the copy is the collection as one STIX 2.1 bundle ([`Collection::body`]), one compacted
//!   object per line in the server's order, the latest `modified` of each id only: the same
//!   objects give the same bytes (a pin can hold), and `embargo why` points at an object's line;
//! * the copy is read by the STIX importer ([`crate::inputs::import::stix`]), with its pattern
//!   rules: there is no second pattern parser. One bad indicator refuses the whole collection
//!   (the error names the object and its page); indicators the importer skips (other pattern
//!   types, patterns without an address to match alone, revoked, confidence 0) and indicators
//!   outside their validity today are counted by reason as rows of other types;
//! * credentials are read from their file when the configuration is loaded and travel only in
//!   the `Authorization` header (marked sensitive, dropped on a redirect to another host): they
//!   are never in a URL, a log line, an error, the copy's metadata or `embargo status`, and
//!   [`Auth`]'s `Debug` hides them.

use std::{collections::HashMap, fmt, path::Path};

use chrono::{DateTime, NaiveDate, Utc};
use hyper::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    fetch::{FetchError, read_capped, transport},
    parse::{LineError, Parsed, SkipReason},
    spec::SourceSpec,
};
use crate::{
    config::{Confidence, Date, EvidenceKind},
    inputs::import::{Defaults, ImportError, stix},
};

/// The media type a TAXII 2.1 client asks for and a TAXII 2.1 server answers with.
pub const MEDIA_TYPE: &str = "application/taxii+json;version=2.1";

/// Most pages one fetch reads: a server that pages forever is refused, not followed.
pub const MAX_PAGES: usize = 10_000;

/// Largest credentials file read.
const MAX_AUTH_BYTES: u64 = 64 * 1024;

/// Credentials sent to a TAXII server. Its `Debug` shows the kind only.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <token>` (`bearer_token_file`).
    Bearer(String),
    /// HTTP basic authentication (`basic_auth_file`: `user:password`).
    Basic { user: String, password: String },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Auth::Bearer(***)"),
            Auth::Basic { user, .. } => write!(f, "Auth::Basic({user}:***)"),
        }
    }
}

/// Which credentials file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthKind {
    Bearer,
    Basic,
}

impl AuthKind {
    /// The option that names the file.
    pub fn option(self) -> &'static str {
        match self {
            AuthKind::Bearer => "bearer_token_file",
            AuthKind::Basic => "basic_auth_file",
        }
    }
}

/// Reads a credentials file: a regular file not readable or writable by others, one line (a
/// token, or `user:password`), surrounding whitespace ignored. The message never quotes the
/// file's content.
pub fn read_auth(path: &Path, kind: AuthKind) -> Result<Auth, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{shown} cannot be read ({e})"))?;
    if meta.permissions().mode() & 0o007 != 0 {
        return Err(format!(
            "{shown} is readable or writable by others; it holds a secret: chmod o-rwx {shown} \
             (e.g. chmod 600, or 640 with the agent's group)"
        ));
    }
    let bytes = crate::files::read::read_bytes(path, MAX_AUTH_BYTES)
        .map_err(|e| format!("{shown} cannot be read ({e})"))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{shown} is not UTF-8 text"))?;
    let secret = text.trim();
    let what = match kind {
        AuthKind::Bearer => "the token alone",
        AuthKind::Basic => "user:password",
    };
    if secret.is_empty() {
        return Err(format!("{shown} is empty; write {what} in it"));
    }
    if secret.contains(|c: char| c.is_control()) {
        return Err(format!(
            "{shown} holds more than one line or a control character; write {what} on one line"
        ));
    }
    match kind {
        AuthKind::Bearer => Ok(Auth::Bearer(secret.to_owned())),
        AuthKind::Basic => match secret.split_once(':') {
            Some((user, password)) if !user.is_empty() => Ok(Auth::Basic {
                user: user.to_owned(),
                password: password.to_owned(),
            }),
            _ => Err(format!(
                "{shown} must hold user:password (a user, a colon, the password)"
            )),
        },
    }
}

/// Checks a collection id: one URL path segment (letters, digits, `-`, `_`, `.`, `~`), as
/// TAXII servers' ids are (UUIDs, mostly).
pub fn check_collection(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 256
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "collection `{id}` is not a collection id (letters, digits, `-`, `_`, `.`, `~`; \
             GET <api root>collections/ lists them)"
        ))
    }
}

/// `<api_root>/collections/<collection>/objects/`: the API root is a folder, with or without its
/// final `/`.
pub fn objects_url(api_root: &url::Url, collection: &str) -> url::Url {
    let mut root = api_root.clone();
    if !root.path().ends_with('/') {
        let path = format!("{}/", root.path());
        root.set_path(&path);
    }
    root.set_query(None);
    root.set_fragment(None);
    root.join(&format!("collections/{collection}/objects/"))
        .expect("a path segment joins")
}

/// A collection read whole: the copy's body and, per object (line 2 onwards), its id and page.
#[derive(Debug)]
pub struct Collection {
    pub body: String,
    /// Object `i` is on line `i + 2` of `body`: its id and the 1-based page it came on.
    pub objects: Vec<(String, usize)>,
}

impl Collection {
    /// The object on `line` of the body, as "page P, object ID", if there is one there.
    fn at_line(&self, line: usize) -> Option<String> {
        let (id, page) = self.objects.get(line.checked_sub(2)?)?;
        Some(format!("page {page}, object {id}"))
    }

    /// A refused body, said in the collection's terms: the page and the object rather than a
    /// line of a body that is not kept.
    pub fn explain(&self, e: FetchError) -> FetchError {
        let (LineError { line, message }, broad) = match e {
            FetchError::BadLine(l) => (l, false),
            FetchError::Guard(l) => (l, true),
            other => return other,
        };
        let at = self
            .at_line(line)
            .unwrap_or_else(|| format!("the collection (line {line} of the bundle)"));
        let todo = if broad {
            ""
        } else {
            "; the publisher must fix the object (its other indicators are not used either)"
        };
        FetchError::Taxii {
            message: format!(
                "{at}: {message}; the whole collection is refused and the last-known-good copy \
                 stays{todo}"
            ),
        }
    }
}

/// The envelope a TAXII 2.1 objects endpoint answers with.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    more: bool,
    #[serde(default)]
    next: Option<String>,
    #[serde(default, borrow)]
    objects: Vec<&'a RawValue>,
}

/// What the collection needs of an object to keep the latest version of each.
#[derive(Deserialize)]
struct Head {
    id: String,
    #[serde(default)]
    modified: Option<String>,
}

/// Whether `content_type` is TAXII 2.1's: `application/taxii+json`, with `version=2.1` if it
/// names a version.
fn is_taxii_21(content_type: &str) -> bool {
    let mut parts = content_type.split(';').map(str::trim);
    let essence = parts.next().unwrap_or_default();
    if !essence.eq_ignore_ascii_case("application/taxii+json") {
        return false;
    }
    parts.all(|p| match p.split_once('=') {
        Some((k, v)) if k.trim().eq_ignore_ascii_case("version") => {
            v.trim().trim_matches('"') == "2.1"
        }
        _ => true,
    })
}

/// `raw` (valid JSON) without the whitespace between tokens: one line.
fn compact(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in raw.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

fn taxii_err(message: String) -> FetchError {
    FetchError::Taxii { message }
}

/// What to do about an error status of the objects endpoint.
fn status_error(status: StatusCode, spec: &SourceSpec, page: usize) -> FetchError {
    let hint = match status {
        StatusCode::UNAUTHORIZED => {
            if spec.auth.is_some() {
                "the server refused the credentials: check the file bearer_token_file or \
                 basic_auth_file names"
            } else {
                "the collection needs credentials: set bearer_token_file or basic_auth_file"
            }
        }
        StatusCode::FORBIDDEN => {
            "the credentials may not read this collection: ask its publisher for read access"
        }
        StatusCode::NOT_FOUND => {
            "no such collection under this API root: check `url` (the API root, e.g. \
             https://host/api1/) and `collection` (GET <api root>collections/ lists them)"
        }
        StatusCode::NOT_ACCEPTABLE | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "the server does not speak TAXII 2.1 here: check that `url` is a TAXII 2.1 API root"
        }
        _ => "the previous copy stays; the next attempt comes sooner",
    };
    taxii_err(format!("page {page}: the server answered {status}; {hint}"))
}

/// Reads every page of `spec`'s collection with `client` (see the module docs).
pub async fn fetch_collection(
    client: &super::http::Client,
    spec: &SourceSpec,
) -> Result<Collection, FetchError> {
    let mut objects: Vec<String> = Vec::new();
    let mut pages: Vec<(String, usize)> = Vec::new();
    let mut modified: Vec<Option<DateTime<Utc>>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut read: u64 = 0;
    let mut next: Option<String> = None;
    let mut added_after: Option<String> = None;
    for page in 1..=MAX_PAGES {
        let mut url = spec.url.clone();
        if let Some(n) = &next {
            url.query_pairs_mut().append_pair("next", n);
        } else if let Some(a) = &added_after {
            url.query_pairs_mut().append_pair("added_after", a);
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, header::HeaderValue::from_static(MEDIA_TYPE));
        match &spec.auth {
            Some(Auth::Bearer(token)) => {
                let bearer = super::http::sensitive(&format!("Bearer {token}"));
                headers.insert(header::AUTHORIZATION, bearer);
            }
            Some(Auth::Basic { user, password }) => {
                headers.insert(
                    header::AUTHORIZATION,
                    super::http::basic_auth(user, password),
                );
            }
            None => {}
        }
        let resp = client.get(&url, headers).await.map_err(transport)?;
        if !resp.status.is_success() {
            return Err(status_error(resp.status, spec, page));
        }
        let content_type = resp
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if !is_taxii_21(&content_type) {
            return Err(taxii_err(format!(
                "page {page}: the server answered Content-Type `{content_type}`, not \
                 {MEDIA_TYPE}; check that `url` is a TAXII 2.1 API root and `collection` one \
                 of its collections"
            )));
        }
        let date_added_last = resp
            .headers
            .get("x-taxii-date-added-last")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let remaining = spec.max_bytes.saturating_sub(read);
        let body = read_capped(resp, remaining).await.map_err(|e| match e {
            FetchError::TooLarge { .. } => FetchError::TooLarge {
                max: spec.max_bytes,
                declared: None,
            },
            other => other,
        })?;
        read += body.len() as u64;
        let text = std::str::from_utf8(&body)
            .map_err(|_| taxii_err(format!("page {page} is not UTF-8 text")))?;
        let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|e| {
            taxii_err(format!(
                "page {page} is not a TAXII 2.1 envelope ({e}); the server is not serving \
                 the collection's objects"
            ))
        })?;
        for raw in &envelope.objects {
            let head: Head = serde_json::from_str(raw.get()).map_err(|e| {
                taxii_err(format!(
                    "page {page}: an object is not a STIX object with an `id` ({e}); the whole \
                     collection is refused and the last-known-good copy stays"
                ))
            })?;
            let when = head
                .modified
                .as_deref()
                .and_then(|m| DateTime::parse_from_rfc3339(m).ok())
                .map(|t| t.with_timezone(&Utc));
            let line = compact(raw.get());
            match index.get(&head.id) {
                // Another version of an object already read: the latest one stays, in place.
                Some(&i) => {
                    if when > modified[i] {
                        objects[i] = line;
                        modified[i] = when;
                        pages[i].1 = page;
                    }
                }
                None => {
                    index.insert(head.id.clone(), objects.len());
                    objects.push(line);
                    modified.push(when);
                    pages.push((head.id, page));
                }
            }
        }
        if !envelope.more {
            let mut body = format!(
                "{{\"type\":\"bundle\",\"id\":\"bundle--{}\",\"objects\":[\n",
                uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, spec.shown_url().as_bytes())
            );
            for (i, o) in objects.iter().enumerate() {
                body.push_str(o);
                if i + 1 < objects.len() {
                    body.push(',');
                }
                body.push('\n');
            }
            body.push_str("]}\n");
            return Ok(Collection {
                body,
                objects: pages,
            });
        }
        match (envelope.next, date_added_last) {
            (Some(n), _) if !n.is_empty() => {
                if next.as_deref() == Some(n.as_str()) {
                    return Err(taxii_err(format!(
                        "page {page}: the server gave the same `next` twice; it pages in a loop"
                    )));
                }
                next = Some(n);
            }
            (_, Some(last)) => {
                if added_after.as_deref() == Some(last.as_str()) || envelope.objects.is_empty() {
                    return Err(taxii_err(format!(
                        "page {page}: the server says `more` but its X-TAXII-Date-Added-Last \
                         ({last}) does not move on; it pages in a loop"
                    )));
                }
                next = None;
                added_after = Some(last);
            }
            _ => {
                return Err(taxii_err(format!(
                    "page {page}: the server says `more` but gives neither `next` nor \
                     X-TAXII-Date-Added-Last: the rest of the collection cannot be asked for"
                )));
            }
        }
    }
    Err(taxii_err(format!(
        "more than {MAX_PAGES} pages; the collection is refused"
    )))
}

/// Reads a collection's copy (a bundle as [`fetch_collection`] writes it) with the STIX
/// importer: the addresses of every indicator valid on `today`, each with its object's line.
/// One bad indicator refuses the whole copy, at its line; what the importer skips, and
/// indicators outside their validity, are counted by reason.
pub fn parse(text: &str, today: NaiveDate) -> Result<Parsed, LineError> {
    let lines = object_lines(text);
    // Network groups carry their own evidence: these only keep the importer from asking.
    let defaults = Defaults {
        kind: EvidenceKind::Advisory,
        source: Some("the TAXII collection".into()),
        retrieved: Date(today),
        confidence: Some(Confidence::Low),
    };
    let imported = stix::parse(Path::new("the collection"), text, &defaults)
        .map_err(|e| import_error(e, &lines))?;
    let mut out = Parsed::default();
    let skip = |out: &mut Parsed, reason: &str, n: usize| {
        *out.skipped
            .by_reason
            .entry(SkipReason::OtherType)
            .or_default() += n;
        *out.skipped.by_type.entry(reason.to_owned()).or_default() += n;
    };
    for (reason, n) in &imported.summary.skipped {
        skip(&mut out, reason, *n);
    }
    let mut last: Option<&str> = None;
    for ind in &imported.indicators {
        let label = ind.label.as_deref().unwrap_or_default();
        let id = label.split(' ').next().unwrap_or_default();
        let first_of_object = last != Some(id);
        last = Some(id);
        let ev = &ind.evidence;
        if ev.expires.is_some_and(|e| e.0 <= today) {
            if first_of_object {
                skip(&mut out, "indicators past their valid_until", 1);
            }
            continue;
        }
        if ev.valid_from.is_some_and(|f| f.0 > today) {
            if first_of_object {
                skip(&mut out, "indicators not valid yet (valid_from)", 1);
            }
            continue;
        }
        let line = lines.get(id).copied().unwrap_or(1);
        out.entries.push((ind.net, line));
    }
    Ok(out)
}

/// Object id -> line, for a bundle written one object per line.
fn object_lines(text: &str) -> HashMap<&str, u32> {
    #[derive(Deserialize)]
    struct Id<'a> {
        #[serde(borrow)]
        id: &'a str,
    }
    text.lines()
        .enumerate()
        .skip(1)
        .filter_map(|(i, l)| {
            let l = l.strip_suffix(',').unwrap_or(l);
            serde_json::from_str::<Id<'_>>(l)
                .ok()
                .map(|o| (o.id, i as u32 + 1))
        })
        .collect()
}

/// The importer's refusal at its line: the object's for an indicator, the JSON's otherwise.
fn import_error(e: ImportError, lines: &HashMap<&str, u32>) -> LineError {
    let ImportError::Invalid { at, message } = e else {
        return LineError {
            line: 1,
            message: e.to_string(),
        };
    };
    let at = at.strip_prefix("the collection").unwrap_or(&at);
    if let Some(rest) = at.strip_prefix(": indicator ") {
        let line = lines.get(rest).copied().unwrap_or(1) as usize;
        return LineError {
            line,
            message: format!("indicator {rest}: {message}"),
        };
    }
    let line = at
        .strip_prefix(':')
        .and_then(|lc| lc.split(':').next())
        .and_then(|l| l.parse().ok())
        .unwrap_or(1);
    LineError { line, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: &str = "2026-06-01";

    fn today() -> NaiveDate {
        DAY.parse().unwrap()
    }

    fn indicator(id: &str, pattern: &str, extra: &str) -> String {
        format!(
            "{{\"type\":\"indicator\",\"spec_version\":\"2.1\",\"id\":\"indicator--{id}\",\
             \"created\":\"2026-01-01T00:00:00Z\",\"modified\":\"2026-01-01T00:00:00Z\",\
             \"pattern\":\"{pattern}\",\"pattern_type\":\"stix\",\
             \"valid_from\":\"2026-01-01T00:00:00Z\"{extra}}}"
        )
    }

    fn bundle(objects: &[String]) -> String {
        format!(
            "{{\"type\":\"bundle\",\"id\":\"bundle--1\",\"objects\":[\n{}\n]}}\n",
            objects.join(",\n")
        )
    }

    #[test]
    fn indicators_are_read_with_the_importers_rules_at_their_lines() {
        let text = bundle(&[
            "{\"type\":\"identity\",\"spec_version\":\"2.1\",\"id\":\"identity--1\",\"name\":\"x\"}"
                .into(),
            indicator("a", "[ipv4-addr:value = '198.51.100.0/24']", ""),
            indicator("b", "[domain-name:value = 'example.org']", ""),
            indicator(
                "c",
                "[ipv4-addr:value = '203.0.113.9'] OR [ipv6-addr:value = '2001:db8::/32']",
                "",
            ),
            indicator("d", "[ipv4-addr:value = '192.0.2.1']", ",\"revoked\":true"),
            indicator(
                "e",
                "[ipv4-addr:value = '192.0.2.2']",
                ",\"valid_until\":\"2026-05-01T00:00:00Z\"",
            ),
            indicator("f", "[ipv4-addr:value = '192.0.2.3']", "")
                .replace("2026-01-01T00:00:00Z\"}", "2026-07-01T00:00:00Z\"}"),
        ]);
        let p = parse(&text, today()).unwrap();
        let got: Vec<(String, u32)> = p.entries.iter().map(|(n, l)| (n.to_string(), *l)).collect();
        assert_eq!(
            got,
            [
                ("198.51.100.0/24".to_owned(), 3),
                ("203.0.113.9/32".to_owned(), 5),
                ("2001:db8::/32".to_owned(), 5)
            ]
        );
        assert_eq!(p.skipped.by_reason[&SkipReason::OtherType], 4, "{p:?}");
        assert_eq!(p.skipped.by_type["revoked indicators"], 1);
        assert_eq!(p.skipped.by_type["indicators past their valid_until"], 1);
        assert_eq!(
            p.skipped.by_type["indicators not valid yet (valid_from)"],
            1
        );
        assert_eq!(p.skipped.bad_lines(), 0);
    }

    #[test]
    fn a_bad_indicator_refuses_the_copy_at_its_line() {
        let text = bundle(&[
            indicator("a", "[ipv4-addr:value = '198.51.100.0/24']", ""),
            indicator("b", "[ipv4-addr:value = '198.51.100.300']", ""),
        ]);
        let e = parse(&text, today()).unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(
            e.message.starts_with("indicator indicator--b: pattern"),
            "{e}"
        );
        let e = parse("{\"type\":\"bundle\",\n\"id\":", today()).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("not valid JSON"), "{e}");
    }

    #[test]
    fn media_types_and_urls() {
        for ok in [
            "application/taxii+json;version=2.1",
            "application/taxii+json; version=\"2.1\"",
            "Application/TAXII+json",
        ] {
            assert!(is_taxii_21(ok), "{ok}");
        }
        for bad in [
            "application/taxii+json;version=2.0",
            "application/json",
            "text/html; charset=utf-8",
            "",
        ] {
            assert!(!is_taxii_21(bad), "{bad}");
        }
        let root: url::Url = "https://t.example/api1?x=1".parse().unwrap();
        assert_eq!(
            objects_url(&root, "91a7b528-80eb-42ed-a74d-c6fbd5a26116").as_str(),
            "https://t.example/api1/collections/91a7b528-80eb-42ed-a74d-c6fbd5a26116/objects/"
        );
        let root: url::Url = "https://t.example/taxii2/api/".parse().unwrap();
        assert_eq!(
            objects_url(&root, "c1").as_str(),
            "https://t.example/taxii2/api/collections/c1/objects/"
        );
        assert!(check_collection("91a7b528-80eb-42ed-a74d-c6fbd5a26116").is_ok());
        for bad in ["", "..", "a/b", "a?b", "a b", "%2e"] {
            assert!(check_collection(bad).is_err(), "{bad}");
        }
        assert_eq!(
            compact("{ \"a\" : [1, 2],\n \"b\": \"x y\\\" }\" }"),
            "{\"a\":[1,2],\"b\":\"x y\\\" }\"}"
        );
    }

    #[test]
    fn credentials_files_are_private_and_never_shown() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "s3cret-token\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_auth(&p, AuthKind::Bearer).unwrap_err();
        assert!(e.contains("chmod o-rwx"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let a = read_auth(&p, AuthKind::Bearer).unwrap();
        assert_eq!(a, Auth::Bearer("s3cret-token".into()));
        assert_eq!(format!("{a:?}"), "Auth::Bearer(***)");
        let e = read_auth(&p, AuthKind::Basic).unwrap_err();
        assert!(e.contains("user:password") && !e.contains("s3cret"), "{e}");
        std::fs::write(&p, "reader:pa:ss\n").unwrap();
        let a = read_auth(&p, AuthKind::Basic).unwrap();
        assert_eq!(
            a,
            Auth::Basic {
                user: "reader".into(),
                password: "pa:ss".into()
            }
        );
        assert_eq!(format!("{a:?}"), "Auth::Basic(reader:***)");
        std::fs::write(&p, "two\nlines\n").unwrap();
        assert!(
            read_auth(&p, AuthKind::Bearer)
                .unwrap_err()
                .contains("one line")
        );
        std::fs::write(&p, "  \n").unwrap();
        assert!(
            read_auth(&p, AuthKind::Bearer)
                .unwrap_err()
                .contains("empty")
        );
    }
}
