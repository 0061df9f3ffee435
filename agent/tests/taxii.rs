//! TAXII 2.1 collections as a source (`format = "taxii"`) against a TAXII server written for
//! the test: the shared HTTPS server of `support` (rustls, a test CA made per run, 127.0.0.1
//! only) answering a discovery, an API root and `/api1/collections/<id>/objects/` with pages of
//! two objects that honour `added_after` (or hand out `next` tokens). Covers paging both ways,
//! the copy and the compile, a bad object on a later page (the whole fetch refused, the copy
//! kept), a content type that is not TAXII, the size cap over all pages, a timeout on a later
//! page, credentials (sent, never shown or stored) and the configuration's refusals. Needs no
//! root.

mod support;

use std::{
    fs,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use embargo::{
    config::{self, Config, validate::validate},
    inputs::sources::{FetchError, Fetcher, Outcome, spec, taxii},
    policy::{
        compile,
        resolve::{self, SourceStatus, Via},
    },
};
use support::{Pki, Reply, Request, Server};

const COLLECTION: &str = "91a7b528-80eb-42ed-a74d-c6fbd5a26116";

const ENTITY: &str = r#"
[[entities]]
id = "taxii-entity"
name = "TAXII Entity Ltd"
action = "drop"
[[entities.designations]]
authority = "UK"
regime = "r"
reference = "X-1"
listed_on = 2025-01-01
source = "https://example.org/x"
[[entities.networks]]
sources = ["intel"]
guard_override = "documentation ranges in a test collection"
[entities.networks.evidence]
kind = "advisory"
source = "the collection"
retrieved = 2026-01-01
confidence = "medium"
"#;

/// A STIX 2.1 indicator.
fn indicator(id: &str, pattern: &str) -> String {
    format!(
        r#"{{
  "type": "indicator", "spec_version": "2.1", "id": "indicator--{id}",
  "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
  "name": "C2 {id}", "pattern": "{pattern}", "pattern_type": "stix",
  "valid_from": "2026-01-01T00:00:00Z"
}}"#
    )
}

/// The collection: (date added, object), in the order added. Six objects: three pages of two.
fn objects() -> Vec<(String, String)> {
    let objs = [
        r#"{"type": "identity", "spec_version": "2.1", "id": "identity--0a", "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z", "name": "Test CERT", "identity_class": "organization"}"#.to_owned(),
        indicator("00000000-0000-4000-8000-000000000001", "[ipv4-addr:value = '192.0.2.0/24']"),
        indicator("00000000-0000-4000-8000-000000000002", "[domain-name:value = 'c2.example.org']"),
        indicator(
            "00000000-0000-4000-8000-000000000003",
            "[ipv4-addr:value = '198.51.100.7'] OR [ipv6-addr:value = '2001:db8:7::/48']",
        ),
        r#"{"type": "malware", "spec_version": "2.1", "id": "malware--0b", "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z", "name": "ShadowPad", "is_family": true}"#.to_owned(),
        indicator("00000000-0000-4000-8000-000000000004", "[ipv4-addr:value = '203.0.113.0/25']"),
    ];
    objs.into_iter()
        .enumerate()
        .map(|(i, o)| (format!("2026-02-0{}T10:00:00.000000Z", i + 1), o))
        .collect()
}

/// The prefixes the collection's indicators match alone.
const PREFIXES: usize = 4;

/// How the test server pages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Paging {
    /// `more` and `X-TAXII-Date-Added-Last`; the client asks with `added_after`.
    AddedAfter,
    /// `more` and `next` tokens.
    Next,
    /// `more` and nothing to go on with.
    Stuck,
}

/// What the test server serves; the test changes it between fetches.
#[derive(Clone)]
struct Collection {
    objects: Vec<(String, String)>,
    paging: Paging,
    content_type: String,
    /// `Authorization` the server requires, if any.
    authorization: Option<String>,
    /// Delay before pages after the first.
    later_delay: Duration,
    /// Where `/moved/...` redirects to (else to `/api1/...` on this server).
    redirect_to: Option<String>,
}

impl Collection {
    fn new() -> Self {
        Self {
            objects: objects(),
            paging: Paging::AddedAfter,
            content_type: taxii::MEDIA_TYPE.to_owned(),
            authorization: None,
            later_delay: Duration::ZERO,
            redirect_to: None,
        }
    }
}

const PAGE: usize = 2;

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn query(path: &str) -> Vec<(String, String)> {
    path.split_once('?')
        .map(|(_, q)| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (percent_decode(k), percent_decode(v)))
                .collect()
        })
        .unwrap_or_default()
}

/// The TAXII server's answer to `r`.
fn answer(c: &Collection, r: &Request) -> Reply {
    let taxii = |body: String| Reply::ok(body).header("Content-Type", &c.content_type);
    let path = r.path.split('?').next().unwrap_or_default();
    if let Some(rest) = r.path.strip_prefix("/moved/") {
        let to = c
            .redirect_to
            .clone()
            .unwrap_or_else(|| format!("/api1/{rest}"));
        return Reply::status(302).header("Location", &to);
    }
    if let Some(want) = &c.authorization
        && r.headers.get("authorization") != Some(want)
    {
        return Reply::status(401);
    }
    if !r
        .headers
        .get("accept")
        .is_some_and(|a| a.contains("application/taxii+json"))
    {
        return Reply::status(406);
    }
    match path {
        "/taxii2/" => taxii(
            r#"{"title": "Test TAXII", "api_roots": ["/api1/"], "default": "/api1/"}"#.into(),
        ),
        "/api1/" => taxii(
            r#"{"title": "API root", "versions": ["application/taxii+json;version=2.1"], "max_content_length": 10485760}"#
                .into(),
        ),
        p if p == format!("/api1/collections/{COLLECTION}/objects/") => {
            let q = query(&r.path);
            let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let start = match (get("next"), get("added_after")) {
                (Some(n), _) => n.parse::<usize>().unwrap(),
                (None, Some(after)) => c
                    .objects
                    .iter()
                    .position(|(added, _)| *added > after)
                    .unwrap_or(c.objects.len()),
                (None, None) => 0,
            };
            let page = &c.objects[start..(start + PAGE).min(c.objects.len())];
            let more = start + PAGE < c.objects.len();
            let mut body = format!(
                "{{\n  \"more\": {more},\n  \"objects\": [\n{}\n  ]",
                page.iter()
                    .map(|(_, o)| o.as_str())
                    .collect::<Vec<_>>()
                    .join(",\n")
            );
            if more && c.paging == Paging::Next {
                body.push_str(&format!(",\n  \"next\": \"{}\"", start + PAGE));
            }
            body.push_str("\n}\n");
            let mut reply = taxii(body);
            if let (Some(first), Some(last)) = (page.first(), page.last())
                && c.paging == Paging::AddedAfter
            {
                reply = reply
                    .header("X-TAXII-Date-Added-First", &first.0)
                    .header("X-TAXII-Date-Added-Last", &last.0);
            }
            if start > 0 {
                reply = reply.delay(c.later_delay);
            }
            reply
        }
        _ => Reply::status(404),
    }
}

/// A throwaway folder with the test CA, a main file, its cache and a TAXII server.
struct Lab {
    dir: PathBuf,
    pki: Pki,
    served: Arc<Mutex<Collection>>,
    server: Server,
    _tmp: tempfile::TempDir,
}

impl Lab {
    async fn new(name: &str) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("embargo-taxii-{name}-"))
            .tempdir()
            .unwrap();
        let dir = tmp.path().to_owned();
        let pki = Pki::new();
        fs::write(dir.join("ca.pem"), &pki.ca_pem).unwrap();
        let served = Arc::new(Mutex::new(Collection::new()));
        let s = Arc::clone(&served);
        let server = Server::start(Arc::clone(&pki.server), move |r| {
            answer(&s.lock().unwrap(), r)
        })
        .await;
        Self {
            dir,
            pki,
            served,
            server,
            _tmp: tmp,
        }
    }

    fn serve(&self, change: impl FnOnce(&mut Collection)) {
        change(&mut self.served.lock().unwrap());
    }

    /// The `[[sources]]` entry of the collection, with `extra` lines.
    fn source(&self, extra: &str) -> String {
        format!(
            "[[sources]]\nname = \"intel\"\nurl = \"{}\"\nformat = \"taxii\"\n\
             collection = \"{COLLECTION}\"\nca_file = \"ca.pem\"\ntimeout = \"5s\"\n{extra}\n",
            self.server.url("/api1/")
        )
    }

    fn write(&self, sources: &str) -> PathBuf {
        let text = format!("enforce = [\"UK\"]\ncache_dir = \"cache\"\n{sources}\n{ENTITY}");
        let path = self.dir.join("main.toml");
        fs::write(&path, text).unwrap();
        path
    }

    fn config(&self, extra: &str) -> Config {
        config::load(&self.write(&self.source(extra))).unwrap()
    }

    fn fetcher(&self, config: &Config) -> Fetcher {
        let spec = spec::specs(config).unwrap().remove(0);
        Fetcher::new(Arc::new(spec)).unwrap()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn cached(&self) -> Option<String> {
        fs::read_to_string(self.path("cache/intel.body")).ok()
    }

    /// The objects requests' queries, in order.
    fn queries(&self) -> Vec<Vec<(String, String)>> {
        self.server
            .requests()
            .iter()
            .filter(|r| r.path.contains("/objects/"))
            .map(|r| query(&r.path))
            .collect()
    }
}

async fn ok(f: &Fetcher) -> Outcome {
    f.fetch().await.unwrap_or_else(|e| panic!("{e}"))
}

async fn fails(f: &Fetcher) -> embargo::inputs::sources::SourceError {
    match f.fetch().await {
        Ok(o) => panic!("fetch succeeded: {o:?}"),
        Err(e) => e,
    }
}

fn entries(o: &Outcome) -> usize {
    match o {
        Outcome::Updated { entries, .. } | Outcome::NotModified { entries, .. } => *entries,
    }
}

#[tokio::test]
async fn a_collection_is_read_over_added_after_pages_cached_and_compiled() {
    let lab = Lab::new("pages").await;
    let config = lab.config("");
    let f = lab.fetcher(&config);
    assert_eq!(
        f.spec.url.as_str(),
        lab.server
            .url(&format!("/api1/collections/{COLLECTION}/objects/"))
    );
    let out = ok(&f).await;
    assert!(out.changed(), "{out:?}");
    assert_eq!(entries(&out), PREFIXES, "{out:?}");
    let Outcome::Updated { skipped, .. } = &out else {
        panic!("{out:?}")
    };
    // The domain-name indicator is counted, not an error.
    assert_eq!(skipped.by_type.values().sum::<usize>(), 1, "{skipped:?}");

    // Three pages: the first unfiltered, each next one after the previous page's last object.
    let objs = objects();
    let q = lab.queries();
    assert_eq!(
        q,
        vec![
            vec![],
            vec![("added_after".to_owned(), objs[1].0.clone())],
            vec![("added_after".to_owned(), objs[3].0.clone())],
        ]
    );
    let reqs = lab.server.requests();
    assert!(
        reqs.iter()
            .all(|r| r.headers["accept"] == "application/taxii+json;version=2.1"),
        "{reqs:?}"
    );

    // The copy is one STIX bundle, one object per line, each object once.
    let body = lab.cached().unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), objs.len() + 2, "{body}");
    assert!(lines[0].starts_with("{\"type\":\"bundle\""), "{body}");
    let line_of = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap() + 1;
    let meta = fs::read_to_string(lab.path("cache/intel.meta.json")).unwrap();
    assert!(meta.contains("/collections/"), "{meta}");

    // The policy reads it: every prefix, each at its object's line of the copy.
    let resolved = resolve::resolve(&config).unwrap();
    let cands = &resolved.groups[0][0];
    assert_eq!(cands.len(), PREFIXES);
    assert!(cands.iter().all(|c| c.via
        == Via::Source {
            name: "intel".into()
        }));
    let c = cands
        .iter()
        .find(|c| c.net.to_string() == "2001:db8:7::/48")
        .unwrap();
    let at = resolved.location(c);
    assert_eq!(at.file, lab.path("cache/intel.body"));
    assert_eq!(at.line, line_of("000000000003"));
    assert_eq!(resolved.sources[0].status, SourceStatus::Used);
    let compiled =
        compile::compile(&validate(&config).unwrap(), &resolved, embargo::today()).unwrap();
    for addr in ["192.0.2.77", "198.51.100.7", "203.0.113.5", "2001:db8:7::1"] {
        let rule = compiled
            .lookup(addr.parse().unwrap())
            .unwrap_or_else(|| panic!("{addr}"));
        assert_eq!(compiled.entities[rule.entity as usize].id, "taxii-entity");
    }
    assert!(compiled.lookup("203.0.113.200".parse().unwrap()).is_none());

    // The same collection again: a success without a change.
    assert!(!ok(&f).await.changed());
    // A new object: a change, and the copy has it.
    lab.serve(|c| {
        c.objects.push((
            "2026-02-09T10:00:00.000000Z".into(),
            indicator(
                "00000000-0000-4000-8000-000000000005",
                "[ipv4-addr:value = '198.51.100.64/26']",
            ),
        ))
    });
    let out = ok(&f).await;
    assert!(out.changed());
    assert_eq!(entries(&out), PREFIXES + 1);
}

#[tokio::test]
async fn next_tokens_are_followed_and_a_server_that_gives_neither_is_refused() {
    let lab = Lab::new("next").await;
    lab.serve(|c| c.paging = Paging::Next);
    let config = lab.config("");
    let f = lab.fetcher(&config);
    assert_eq!(entries(&ok(&f).await), PREFIXES);
    assert_eq!(
        lab.queries(),
        vec![
            vec![],
            vec![("next".to_owned(), "2".to_owned())],
            vec![("next".to_owned(), "4".to_owned())],
        ]
    );
    let good = lab.cached().unwrap();
    lab.serve(|c| c.paging = Paging::Stuck);
    let e = fails(&f).await;
    assert!(matches!(e.error, FetchError::Taxii { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.starts_with("source `intel` ("), "{msg}");
    assert!(
        msg.contains(
            "page 1: the server says `more` but gives neither `next` nor X-TAXII-Date-Added-Last"
        ),
        "{msg}"
    );
    assert_eq!(lab.cached().as_deref(), Some(good.as_str()));
}

/// One bad indicator on page 2 refuses the whole fetch: nothing of pages 1 and 3 is taken
/// either, the last-known-good copy stays, and the policy still compiles from it.
#[tokio::test]
async fn a_bad_object_on_a_later_page_refuses_the_whole_fetch_and_keeps_the_copy() {
    let lab = Lab::new("bad").await;
    let config = lab.config("");
    let f = lab.fetcher(&config);
    ok(&f).await;
    let good = lab.cached().unwrap();
    let bad_id = "00000000-0000-4000-8000-0000000000bd";
    lab.serve(|c| {
        c.objects[0].1 = indicator(
            "00000000-0000-4000-8000-0000000000a1",
            "[ipv4-addr:value = '100.64.99.0/24']",
        );
        c.objects[2].1 = indicator(bad_id, "[ipv4-addr:value = '198.51.100.300']");
    });
    let e = fails(&f).await;
    let msg = e.to_string();
    assert!(matches!(e.error, FetchError::Taxii { .. }), "{msg}");
    assert!(
        msg.contains(&format!(
            "page 2, object indicator--{bad_id}: indicator indicator--{bad_id}: pattern"
        )),
        "{msg}"
    );
    assert!(msg.contains("198.51.100.300"), "{msg}");
    assert!(msg.contains("the whole collection is refused"), "{msg}");
    assert!(msg.contains("the publisher must fix the object"), "{msg}");
    assert_eq!(lab.cached().as_deref(), Some(good.as_str()));
    let resolved = resolve::resolve(&config).unwrap();
    let nets: Vec<String> = resolved.groups[0][0]
        .iter()
        .map(|c| c.net.to_string())
        .collect();
    assert_eq!(nets.len(), PREFIXES);
    assert!(!nets.iter().any(|n| n.starts_with("100.64.")), "{nets:?}");

    // An object without an id is refused the same way.
    lab.serve(|c| {
        c.objects = objects();
        c.objects[4].1 = r#"{"type": "malware", "name": "no id"}"#.into();
    });
    let msg = fails(&f).await.to_string();
    assert!(
        msg.contains("page 3: an object is not a STIX object with an `id`"),
        "{msg}"
    );
    assert_eq!(lab.cached().as_deref(), Some(good.as_str()));

    // A broad prefix fails the guard, named by page and object too.
    lab.serve(|c| {
        c.objects = objects();
        c.objects[5].1 = indicator(
            "00000000-0000-4000-8000-0000000000b0",
            "[ipv4-addr:value = '0.0.0.0/0']",
        );
    });
    let msg = fails(&f).await.to_string();
    assert!(
        msg.contains("page 3, object indicator--00000000-0000-4000-8000-0000000000b0: `0.0.0.0/0` is a default route"),
        "{msg}"
    );
    assert_eq!(lab.cached().as_deref(), Some(good.as_str()));
}

#[tokio::test]
async fn a_content_type_that_is_not_taxii_21_is_refused() {
    let lab = Lab::new("ctype").await;
    let config = lab.config("");
    let f = lab.fetcher(&config);
    ok(&f).await;
    let good = lab.cached().unwrap();
    for ct in [
        "text/html; charset=utf-8",
        "application/json",
        "application/taxii+json;version=2.0",
    ] {
        lab.serve(|c| c.content_type = ct.to_owned());
        let msg = fails(&f).await.to_string();
        assert!(
            msg.contains(&format!("page 1: the server answered Content-Type `{ct}`")),
            "{msg}"
        );
        assert!(
            msg.contains("check that `url` is a TAXII 2.1 API root"),
            "{msg}"
        );
        assert_eq!(lab.cached().as_deref(), Some(good.as_str()), "{ct}");
    }
    // A wrong collection: a 404 that says what to check.
    let other = lab.write(&lab.source("").replace(COLLECTION, "no-such-collection"));
    let config = config::load(&other).unwrap();
    let msg = fails(&lab.fetcher(&config)).await.to_string();
    assert!(msg.contains("the server answered 404"), "{msg}");
    assert!(msg.contains("check `url` (the API root"), "{msg}");
}

/// `max_bytes` covers the pages together: each page fits, the collection does not.
#[tokio::test]
async fn the_size_cap_covers_every_page_together() {
    let lab = Lab::new("cap").await;
    let config = lab.config("");
    let f = lab.fetcher(&config);
    ok(&f).await;
    let good = lab.cached().unwrap();
    let largest = 1500; // a page of two objects here is under 1,500 bytes; three are over
    let config = lab.config(&format!("max_bytes = {largest}"));
    let f = lab.fetcher(&config);
    let e = fails(&f).await;
    assert!(
        matches!(
            e.error,
            FetchError::TooLarge {
                max: 1500,
                declared: None
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("max_bytes = 1500"), "{e}");
    assert!(lab.queries().len() > 3, "it read more than one page first");
    assert_eq!(lab.cached().as_deref(), Some(good.as_str()));
}

/// The source's `timeout` is for the whole fetch, every page.
#[tokio::test]
async fn a_slow_later_page_times_out_the_fetch() {
    let lab = Lab::new("slow").await;
    let config = lab.config("");
    let f = lab.fetcher(&config);
    ok(&f).await;
    let good = lab.cached().unwrap();
    lab.serve(|c| c.later_delay = Duration::from_millis(600));
    let main = lab.write(
        &lab.source("")
            .replace("timeout = \"5s\"", "timeout = \"1s\""),
    );
    let config = config::load(&main).unwrap();
    let f = lab.fetcher(&config);
    let e = fails(&f).await;
    assert!(matches!(e.error, FetchError::Timeout { .. }), "{e}");
    assert_eq!(lab.cached().as_deref(), Some(good.as_str()));
}

/// A bearer token and basic credentials, each from a file: sent, never in an error, the copy's
/// metadata, a Debug of the spec, or `embargo status`'s source state.
#[tokio::test]
async fn credentials_come_from_a_private_file_and_are_never_shown_or_stored() {
    use std::os::unix::fs::PermissionsExt as _;
    let lab = Lab::new("auth").await;
    let token = "tok-s3cret-8c1f";
    lab.serve(|c| c.authorization = Some(format!("Bearer {token}")));
    let write_secret = |name: &str, text: &str| {
        let p = lab.path(name);
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    };

    // Without credentials: a 401 that says what to set.
    let config = lab.config("");
    let msg = fails(&lab.fetcher(&config)).await.to_string();
    assert!(msg.contains("the server answered 401"), "{msg}");
    assert!(
        msg.contains("set bearer_token_file or basic_auth_file"),
        "{msg}"
    );

    write_secret("intel.token", &format!("{token}\n"));
    let config = lab.config("bearer_token_file = \"intel.token\"");
    let f = lab.fetcher(&config);
    assert_eq!(entries(&ok(&f).await), PREFIXES);
    let last = lab.server.requests().pop().unwrap();
    assert_eq!(last.headers["authorization"], format!("Bearer {token}"));
    let meta = fs::read_to_string(lab.path("cache/intel.meta.json")).unwrap();
    assert!(!meta.contains(token), "{meta}");
    let body = lab.cached().unwrap();
    assert!(!body.contains(token));
    let shown = format!("{:?}", f.spec);
    assert!(!shown.contains(token), "{shown}");
    let (manager, _) = embargo::inputs::sources::SourceManager::start(&config)
        .await
        .unwrap();
    let state = format!("{:?}", manager.states());
    assert!(!state.contains(token), "{state}");
    drop(manager);

    // A wrong token: the server refuses, the message names the option, not the token.
    write_secret("intel.token", "tok-wrong-value\n");
    let config = lab.config("bearer_token_file = \"intel.token\"");
    let msg = fails(&lab.fetcher(&config)).await.to_string();
    assert!(msg.contains("the server refused the credentials"), "{msg}");
    assert!(!msg.contains("tok-wrong-value"), "{msg}");

    // Basic authentication.
    lab.serve(|c| c.authorization = Some("Basic cmVhZGVyOnBhOnNz".into())); // reader:pa:ss
    write_secret("intel.basic", "reader:pa:ss\n");
    let config = lab.config("basic_auth_file = \"intel.basic\"");
    let f = lab.fetcher(&config);
    assert_eq!(entries(&ok(&f).await), PREFIXES);
    assert!(!format!("{:?}", f.spec).contains("pa:ss"));

    // A file others can read is refused when the configuration is loaded, at its line.
    fs::set_permissions(lab.path("intel.basic"), fs::Permissions::from_mode(0o644)).unwrap();
    let path = lab.write(&lab.source("basic_auth_file = \"intel.basic\""));
    let config = config::load(&path).unwrap();
    let e = spec::specs(&config).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:", path.display())), "{e}");
    assert!(e.contains("source `intel`: basic_auth_file"), "{e}");
    assert!(e.contains("chmod o-rwx"), "{e}");
    assert!(!e.contains("pa:ss"), "{e}");
}

#[test]
fn taxii_entries_are_checked_at_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let base = "[[sources]]\nname = \"intel\"\nurl = \"https://taxii.example/api1/\"\n";
    let load = |text: &str| {
        let path = dir.path().join("main.toml");
        fs::write(&path, format!("enforce = [\"UK\"]\n{text}")).unwrap();
        let c = config::load(&path).unwrap();
        spec::specs(&c).map_err(|e| e.to_string())
    };
    let s = load(&format!("{base}format = \"taxii\"\ncollection = \"c-1\"\n")).unwrap();
    assert_eq!(
        s[0].url.as_str(),
        "https://taxii.example/api1/collections/c-1/objects/"
    );
    for (extra, needle) in [
        ("format = \"taxii\"\n", "needs collection = \"<id>\""),
        (
            "format = \"taxii\"\ncollection = \"a/b\"\n",
            "is not a collection id",
        ),
        (
            "format = \"taxii\"\ncollection = \"c\"\nminisign_key = \"RW...\"\n",
            "`minisign_key` is not for format = \"taxii\"",
        ),
        (
            "format = \"list\"\ncollection = \"c\"\n",
            "`collection` is for format = \"taxii\", not \"list\"",
        ),
        (
            "format = \"csv\"\ncolumn = \"ip\"\nbearer_token_file = \"t\"\n",
            "`bearer_token_file` is for format = \"taxii\"",
        ),
        (
            "format = \"taxii\"\ncollection = \"c\"\nbearer_token_file = \"t\"\nbasic_auth_file = \"b\"\n",
            "both set",
        ),
        (
            "format = \"taxii\"\ncollection = \"c\"\nbearer_token_file = \"missing.token\"\n",
            "bearer_token_file",
        ),
    ] {
        let e = load(&format!("{base}{extra}")).expect_err(extra);
        assert!(e.contains(needle), "{extra}: {e}");
        assert!(e.contains("main.toml:"), "{extra}: {e}");
        assert!(e.contains("source `intel`"), "{extra}: {e}");
    }
    let e = load(
        "[[sources]]\nname = \"intel\"\nurl = \"https://taxii.example/api1/collections/c/objects/\"\nformat = \"taxii\"\ncollection = \"c\"\n",
    )
    .unwrap_err();
    assert!(e.contains("write the API root"), "{e}");
}

/// `embargo fetch` and `embargo check` on a TAXII source: the fetch names the collection's
/// prefixes; check reads only the copy.
#[tokio::test]
async fn the_fetch_and_check_commands_read_a_collection() {
    let lab = Lab::new("cli").await;
    let main = lab.write(&lab.source(""));
    let m = main.clone();
    let out = tokio::task::spawn_blocking(move || {
        support::command(&["fetch", "--config"])
            .arg(m)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (support::stdout(&out), support::stderr(&out));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("intel: updated ({PREFIXES} prefixes)")),
        "{stdout}"
    );
    assert!(
        stderr.contains(
            "intel: skipped 1: indicators without an address to match alone (domain-name:value)"
        ),
        "{stderr}"
    );
    let before = lab.server.requests().len();
    let m = main.clone();
    let out = tokio::task::spawn_blocking(move || {
        support::command(&["check", "--config"])
            .arg(m)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert!(
        support::stdout(&out).contains("intel"),
        "{}",
        support::stdout(&out)
    );
    assert_eq!(lab.server.requests().len(), before, "check fetched");
}

/// Credentials follow a redirect on the same server, never one to another origin.
#[tokio::test]
async fn credentials_are_not_sent_on_to_another_origin() {
    use std::os::unix::fs::PermissionsExt as _;
    let lab = Lab::new("redirect").await;
    let token = "tok-s3cret-redirect";
    lab.serve(|c| c.authorization = Some(format!("Bearer {token}")));
    let p = lab.path("intel.token");
    fs::write(&p, token).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    let moved = |extra: &str| {
        lab.source(extra)
            .replace(&lab.server.url("/api1/"), &lab.server.url("/moved/"))
    };
    let config = config::load(&lab.write(&moved("bearer_token_file = \"intel.token\""))).unwrap();
    let f = lab.fetcher(&config);
    assert_eq!(entries(&ok(&f).await), PREFIXES);

    let other = Server::start(Arc::clone(&lab.pki.server), |_| Reply::status(401)).await;
    let elsewhere = other.url(&format!("/api1/collections/{COLLECTION}/objects/"));
    lab.serve(|c| c.redirect_to = Some(elsewhere));
    let msg = fails(&f).await.to_string();
    assert!(msg.contains("401"), "{msg}");
    let reqs = other.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert!(!reqs[0].headers.contains_key("authorization"), "{reqs:?}");
}
