//! Remote sources against a local HTTPS server (127.0.0.1 only) with a test CA made per run:
//! every format, conditional requests, every way a fetch can fail (and that the last-known-good
//! copy survives each), signatures, certificates, `on_source_failure`, and the manager's
//! refresh and change notification. Needs no root.

mod support;

use std::{
    fs,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use embargo::{
    config::{self, Config, validate::validate},
    inputs::sources::{
        FetchError, Fetcher, Outcome, SourceManager, cache, spec, verify::VerifyError,
    },
    policy::{
        compile::{self, FindingKind},
        resolve::{self, SourceStatus, Via},
    },
};
use support::{Framing, Pki, Reply, Server};

const ENTITY: &str = r#"
[[entities]]
id = "feed-entity"
name = "Feed Entity Ltd"
action = "drop"
[[entities.designations]]
authority = "UK"
regime = "r"
reference = "X-1"
listed_on = 2025-01-01
source = "https://example.org/x"
[[entities.networks]]
sources = ["feed"]
guard_override = "documentation ranges in a test feed"
[entities.networks.evidence]
kind = "advisory"
source = "the feed"
retrieved = 2026-01-01
confidence = "medium"
"#;

const LIST: &str = "# test feed\n192.0.2.0/24\n198.51.100.7\n2001:db8::/32\n";

/// [`ENTITY`]'s `guard_override`: its feed, [`LIST`], lists documentation ranges.
const GUARD_LINE: &str = "guard_override = \"documentation ranges in a test feed\"\n";

/// A feed of public addresses (published indicators the embedded default lists), for the
/// guard's tests, whose group has no `guard_override` ([`Lab::config_strict`]).
const PUBLIC_LIST: &str = "# public feed\n74.120.172.10\n114.255.70.20\n";

/// A throwaway folder with the test CA, a main file and its cache.
struct Lab {
    dir: PathBuf,
    pki: Pki,
    /// Removes the folder on drop.
    _tmp: tempfile::TempDir,
}

/// A `[[sources]]` entry trusting the lab's CA.
fn source(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[sources]]\nname = \"{name}\"\nurl = \"{url}\"\nca_file = \"ca.pem\"\ntimeout = \"5s\"\n{extra}\n"
    )
}

fn list_source(url: &str) -> String {
    source("feed", url, "format = \"list\"")
}

impl Lab {
    fn new(name: &str) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("embargo-sources-{name}-"))
            .tempdir()
            .unwrap();
        let dir = tmp.path().to_owned();
        let pki = Pki::new();
        fs::write(dir.join("ca.pem"), &pki.ca_pem).unwrap();
        Self {
            dir,
            pki,
            _tmp: tmp,
        }
    }

    /// Writes and loads a main file: `main_extra` and `sources` before the entity that uses
    /// source `feed`.
    fn config(&self, main_extra: &str, sources: &str) -> Config {
        self.config_with(main_extra, sources, ENTITY)
    }

    /// As [`Lab::config`], the entity's group without a `guard_override`.
    fn config_strict(&self, main_extra: &str, sources: &str) -> Config {
        self.config_with(main_extra, sources, &ENTITY.replace(GUARD_LINE, ""))
    }

    fn config_with(&self, main_extra: &str, sources: &str, entity: &str) -> Config {
        let text =
            format!("enforce = [\"UK\"]\ncache_dir = \"cache\"\n{main_extra}\n{sources}\n{entity}");
        let path = self.dir.join("main.toml");
        fs::write(&path, text).unwrap();
        config::load(&path).unwrap()
    }

    fn fetcher(&self, config: &Config, name: &str) -> Fetcher {
        let spec = spec::specs(config)
            .unwrap()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap();
        Fetcher::new(Arc::new(spec)).unwrap()
    }

    fn cached(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.dir.join("cache").join(format!("{name}.body"))).ok()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

async fn serve(
    lab: &Lab,
    handler: impl Fn(&support::Request) -> Reply + Send + Sync + 'static,
) -> Server {
    Server::start(Arc::clone(&lab.pki.server), handler).await
}

/// Fetches once, expecting success.
async fn ok(f: &Fetcher) -> Outcome {
    f.fetch().await.unwrap_or_else(|e| panic!("{e}"))
}

/// Fetches once, expecting failure; the error's message.
async fn fails(f: &Fetcher) -> embargo::inputs::sources::SourceError {
    match f.fetch().await {
        Ok(o) => panic!("fetch succeeded: {o:?}"),
        Err(e) => e,
    }
}

fn entries(outcome: &Outcome) -> usize {
    match outcome {
        Outcome::Updated { entries, .. } | Outcome::NotModified { entries, .. } => *entries,
    }
}

#[tokio::test]
async fn each_format_is_fetched_parsed_cached_and_compiled() {
    let lab = Lab::new("formats");
    let server = serve(&lab, |r| match r.path.as_str() {
        "/list.txt" => Reply::ok(LIST),
        "/feed.csv" => Reply::ok("id,network,note\n1,192.0.2.0/24,x\n2,2001:db8:1::/48,\"y, z\"\n"),
        "/strings.json" => Reply::ok("[\"192.0.2.0/24\",\n \"198.51.100.1\"]"),
        "/objects.json" => {
            Reply::ok("[{\"ip\": \"192.0.2.0/24\", \"n\": 1},\n {\"ip\": \"203.0.113.0/24\"}]")
        }
        _ => Reply::status(404),
    })
    .await;
    for (path, format, want) in [
        ("/list.txt", "format = \"list\"", 3),
        ("/feed.csv", "format = \"csv\"\ncolumn = \"network\"", 2),
        ("/strings.json", "format = \"json\"", 2),
        ("/objects.json", "format = \"json\"\nfield = \"ip\"", 2),
    ] {
        let config = lab.config("", &source("feed", &server.url(path), format));
        let f = lab.fetcher(&config, "feed");
        let out = ok(&f).await;
        assert!(out.changed(), "{path}: {out:?}");
        assert_eq!(entries(&out), want, "{path}");

        // The copy and its metadata are on disk, and the policy reads them.
        let copy = cache::load(&f.spec).unwrap();
        assert_eq!(copy.meta.url, server.url(path));
        assert_eq!(copy.meta.entries, want);
        assert_eq!(
            copy.meta.sha256,
            embargo::files::digest::sha256_hex(copy.body.as_bytes())
        );
        let resolved = resolve::resolve(&config).unwrap();
        let cands = &resolved.groups[0][0];
        assert_eq!(cands.len(), want, "{path}");
        assert!(
            cands.iter().all(|c| c.via
                == Via::Source {
                    name: "feed".into()
                }),
            "{path}"
        );
        // Errors and `why` point at the cached copy's line.
        let at = resolved.location(&cands[0]);
        assert_eq!(at.file, lab.path("cache/feed.body"));
        assert!(at.line >= 1);
        assert_eq!(resolved.sources[0].status, SourceStatus::Used);
        let compiled =
            compile::compile(&validate(&config).unwrap(), &resolved, embargo::today()).unwrap();
        let rule = compiled.lookup("192.0.2.77".parse().unwrap()).unwrap();
        assert_eq!(compiled.entities[rule.entity as usize].id, "feed-entity");
        assert_eq!(compiled.report.sources[0].entries, want);
    }
    // The same bytes again are a success without a change.
    let config = lab.config("", &list_source(&server.url("/list.txt")));
    let f = lab.fetcher(&config, "feed");
    assert!(ok(&f).await.changed(), "the copy was another format's");
    assert!(!ok(&f).await.changed());
}

#[tokio::test]
async fn an_etag_brings_a_304_that_keeps_the_copy() {
    let lab = Lab::new("etag");
    let server = serve(&lab, |r| {
        if r.headers.get("if-none-match").map(String::as_str) == Some("\"v1\"") {
            Reply::status(304).header("ETag", "\"v1\"")
        } else {
            Reply::ok(LIST).header("ETag", "\"v1\"")
        }
    })
    .await;
    let config = lab.config("", &list_source(&server.url("/feed.txt")));
    let f = lab.fetcher(&config, "feed");
    assert!(ok(&f).await.changed());
    let first = cache::load(&f.spec).unwrap().meta;
    assert_eq!(first.etag.as_deref(), Some("\"v1\""));
    let out = ok(&f).await;
    assert_eq!(
        out,
        Outcome::NotModified {
            entries: 3,
            sha256: first.sha256.clone(),
            skipped: Default::default(),
        }
    );
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert!(!reqs[0].headers.contains_key("if-none-match"));
    assert_eq!(reqs[1].headers["if-none-match"], "\"v1\"");
    let second = cache::load(&f.spec).unwrap();
    assert_eq!(second.body, LIST);
    assert_eq!(second.meta.fetched_at, first.fetched_at);
    assert!(
        second.meta.checked_at > first.checked_at,
        "a 304 is a success"
    );
}

#[tokio::test]
async fn last_modified_brings_a_304_through_if_modified_since() {
    let lab = Lab::new("lastmod");
    const LM: &str = "Wed, 21 Oct 2026 07:28:00 GMT";
    let server = serve(&lab, |r| {
        if r.headers.get("if-modified-since").map(String::as_str) == Some(LM) {
            Reply::status(304)
        } else {
            Reply::ok(LIST).header("Last-Modified", LM)
        }
    })
    .await;
    let config = lab.config("", &list_source(&server.url("/feed.txt")));
    let f = lab.fetcher(&config, "feed");
    assert!(ok(&f).await.changed());
    assert!(matches!(
        ok(&f).await,
        Outcome::NotModified { entries: 3, .. }
    ));
    assert_eq!(server.requests()[1].headers["if-modified-since"], LM);
    assert!(!server.requests()[1].headers.contains_key("if-none-match"));
    // A 304 with nothing cached is not content.
    fs::remove_dir_all(lab.path("cache")).unwrap();
    let server = serve(&lab, |_| Reply::status(304)).await;
    let config = lab.config("", &list_source(&server.url("/feed.txt")));
    let e = fails(&lab.fetcher(&config, "feed")).await;
    assert!(matches!(e.error, FetchError::NotModifiedWithoutCopy), "{e}");
}

/// Serves LIST first, then what `later` says; returns the server and the request counter.
async fn first_good_then(
    lab: &Lab,
    later: impl Fn(&support::Request) -> Reply + Send + Sync + 'static,
) -> Server {
    first_then(lab, LIST, later).await
}

/// Serves `good` first, then what `later` says.
async fn first_then(
    lab: &Lab,
    good: &'static str,
    later: impl Fn(&support::Request) -> Reply + Send + Sync + 'static,
) -> Server {
    let n = AtomicUsize::new(0);
    serve(lab, move |r| {
        if n.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::ok(good)
        } else {
            later(r)
        }
    })
    .await
}

#[tokio::test]
async fn a_slow_server_times_out_and_the_copy_stays() {
    let lab = Lab::new("timeout");
    let server = first_good_then(&lab, |_| {
        Reply::ok("10.0.0.0/8\n").delay(Duration::from_secs(10))
    })
    .await;
    let config = lab.config(
        "",
        &source("feed", &server.url("/f"), "format = \"list\"")
            .replace("timeout = \"5s\"", "timeout = \"700ms\""),
    );
    let f = lab.fetcher(&config, "feed");
    ok(&f).await;
    let started = Instant::now();
    let e = fails(&f).await;
    assert!(matches!(e.error, FetchError::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("700ms"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(lab.cached("feed").as_deref(), Some(LIST));
}

#[tokio::test]
async fn bodies_over_max_bytes_are_refused_however_they_are_framed() {
    let lab = Lab::new("oversize");
    let big = "192.0.2.0/24\n".repeat(200); // 2600 bytes
    for (framing, declared) in [
        (Framing::Length, Some(2600)),
        (Framing::Close, None),
        (Framing::Endless, None),
        (Framing::ChunkedEndless, None),
    ] {
        let _ = fs::remove_dir_all(lab.path("cache"));
        let big = big.clone();
        let server = first_good_then(&lab, move |_| Reply::ok(big.clone()).framing(framing)).await;
        let config = lab.config(
            "",
            &source(
                "feed",
                &server.url("/f"),
                "format = \"list\"\nmax_bytes = 1000",
            ),
        );
        let f = lab.fetcher(&config, "feed");
        ok(&f).await;
        let started = Instant::now();
        let e = fails(&f).await;
        match &e.error {
            FetchError::TooLarge {
                max: 1000,
                declared: d,
            } => assert_eq!(*d, declared, "{framing:?}"),
            other => panic!("{framing:?}: {other}"),
        }
        assert!(e.to_string().contains("max_bytes = 1000"), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{framing:?}: read on"
        );
        // The client hung up: an endless body stops flowing.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sent = server.body_bytes_sent();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            server.body_bytes_sent(),
            sent,
            "{framing:?}: the client still reads"
        );
        assert_eq!(lab.cached("feed").as_deref(), Some(LIST), "{framing:?}");
    }
}

#[tokio::test]
async fn a_truncated_body_is_refused() {
    let lab = Lab::new("truncated");
    let server = first_good_then(&lab, |_| {
        Reply::ok("192.0.2.0/24\n10.0.0.0/8\n").framing(Framing::Claim(500))
    })
    .await;
    let config = lab.config("", &list_source(&server.url("/f")));
    let f = lab.fetcher(&config, "feed");
    ok(&f).await;
    let e = fails(&f).await;
    assert!(matches!(e.error, FetchError::Transport { .. }), "{e}");
    assert_eq!(lab.cached("feed").as_deref(), Some(LIST));
}

#[tokio::test]
async fn a_bad_status_is_a_failure() {
    let lab = Lab::new("status");
    let server = first_good_then(&lab, |_| Reply::status(503)).await;
    let config = lab.config("", &list_source(&server.url("/f")));
    let f = lab.fetcher(&config, "feed");
    ok(&f).await;
    let e = fails(&f).await;
    assert!(e.to_string().contains("503"), "{e}");
    assert_eq!(lab.cached("feed").as_deref(), Some(LIST));
}

#[tokio::test]
async fn a_bad_line_refuses_the_whole_body_and_keeps_the_copy() {
    let lab = Lab::new("badline");
    let server = first_good_then(&lab, |_| {
        Reply::ok("10.1.0.0/16\n10.2.0.0/16\n10.3.0.300/16\n10.4.0.0/16\n")
    })
    .await;
    let config = lab.config("", &list_source(&server.url("/f")));
    let f = lab.fetcher(&config, "feed");
    ok(&f).await;
    let e = fails(&f).await;
    let FetchError::BadLine(line) = &e.error else {
        panic!("{e}")
    };
    assert_eq!(line.line, 3);
    let msg = e.to_string();
    assert!(msg.starts_with("source `feed` ("), "{msg}");
    assert!(msg.contains("line 3: `10.3.0.300/16`"), "{msg}");
    assert!(msg.contains("the whole body is refused"), "{msg}");
    assert_eq!(lab.cached("feed").as_deref(), Some(LIST));
    // The policy still compiles from the last-known-good copy, none of the new lines in it.
    let r = resolve::resolve(&config).unwrap();
    assert_eq!(r.groups[0][0].len(), 3);
    assert!(
        r.groups[0][0]
            .iter()
            .all(|c| !c.net.to_string().starts_with("10."))
    );
    // An empty body is refused too.
    let server = first_good_then(&lab, |_| Reply::ok("# nothing today\n")).await;
    let config = lab.config("", &list_source(&server.url("/f")));
    let f = lab.fetcher(&config, "feed");
    ok(&f).await;
    assert!(matches!(fails(&f).await.error, FetchError::Empty));
}

#[tokio::test]
async fn a_pinned_digest_refuses_any_other_body() {
    let lab = Lab::new("pin");
    let pinned = embargo::files::digest::sha256_hex(LIST.as_bytes());
    let n = AtomicUsize::new(0);
    let server = serve(&lab, move |_| {
        if n.fetch_add(1, Ordering::SeqCst) == 1 {
            Reply::ok("192.0.2.0/24\n")
        } else {
            Reply::ok(LIST)
        }
    })
    .await;
    let config = lab.config(
        "",
        &source(
            "feed",
            &server.url("/f"),
            &format!("format = \"list\"\nsha256 = \"{}\"", pinned.to_uppercase()),
        ),
    );
    let f = lab.fetcher(&config, "feed");
    ok(&f).await;
    let e = fails(&f).await;
    match &e.error {
        FetchError::Verify(VerifyError::Pinned { pinned: p, .. }) => assert_eq!(*p, pinned),
        other => panic!("{other}"),
    }
    assert_eq!(lab.cached("feed").as_deref(), Some(LIST));
    assert!(!ok(&f).await.changed(), "the pinned body again");
}

/// A minisign key pair made for the test: (public key base64, a signer).
fn minisign_pair() -> (String, impl Fn(&[u8]) -> String) {
    let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let pk_b64 = kp.pk.to_base64();
    let (pk, sk) = (kp.pk, kp.sk);
    let sign = move |body: &[u8]| {
        minisign::sign(Some(&pk), &sk, std::io::Cursor::new(body), None, None)
            .unwrap()
            .into_string()
    };
    (pk_b64, sign)
}

#[tokio::test]
async fn minisign_signatures_are_required_and_checked() {
    let lab = Lab::new("minisign");
    let (key, sign) = minisign_pair();
    let (_, sign_other) = minisign_pair();
    let good_sig = sign(LIST.as_bytes());
    let tampered = "192.0.2.0/24\n10.0.0.0/8\n";
    let other_sig = sign_other(LIST.as_bytes());
    // What the server serves: (body, signature or None for a 404), by request round.
    let rounds: Vec<(&'static str, Option<String>)> = vec![
        (LIST, Some(good_sig.clone())),
        (tampered, Some(good_sig.clone())),
        (LIST, Some(other_sig)),
        (LIST, Some("untrusted comment: x\nnot base64\n".into())),
        (LIST, None),
    ];
    let round = Arc::new(AtomicUsize::new(0));
    let r2 = Arc::clone(&round);
    let server = serve(&lab, move |req| {
        let (body, sig) = &rounds[r2.load(Ordering::SeqCst)];
        if req.path.ends_with(".minisig") {
            match sig {
                Some(s) => Reply::ok(s.clone()),
                None => Reply::status(404),
            }
        } else {
            Reply::ok(*body)
        }
    })
    .await;
    let config = lab.config(
        "",
        &source(
            "feed",
            &server.url("/feed.txt"),
            &format!("format = \"list\"\nminisign_key = \"{key}\""),
        ),
    );
    let f = lab.fetcher(&config, "feed");
    assert!(ok(&f).await.changed());
    assert_eq!(
        fs::read_to_string(lab.path("cache/feed.minisig")).unwrap(),
        good_sig,
        "the signature is kept with the copy"
    );
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.path == "/feed.txt.minisig")
    );
    for (i, needle) in [
        (1, "signature verification failed"),
        (2, "different key"),
        (3, "not a minisign signature"),
        (4, "404"),
    ] {
        round.store(i, Ordering::SeqCst);
        let e = fails(&f).await;
        assert!(e.to_string().contains(needle), "round {i}: {e}");
        assert_eq!(lab.cached("feed").as_deref(), Some(LIST), "round {i}");
    }
    // The copy is checked again when the policy reads it: a tampered copy is not used.
    let copy = cache::load(&f.spec).unwrap();
    fs::write(lab.path("cache/feed.body"), tampered).unwrap();
    let mut meta = copy.meta.clone();
    meta.sha256 = embargo::files::digest::sha256_hex(tampered.as_bytes());
    cache::store_meta(&f.spec, &meta).unwrap();
    let e = resolve::resolve(&config).unwrap_err().to_string();
    assert!(e.contains("has no usable content"), "{e}");
    assert!(e.contains("signature"), "{e}");
}

#[tokio::test]
async fn a_server_that_went_away_keeps_the_copy_or_applies_on_source_failure() {
    let lab = Lab::new("away");
    let server = serve(&lab, |_| Reply::ok(LIST)).await;
    let url = server.url("/f");
    let config = lab.config("", &list_source(&url));
    let f = lab.fetcher(&config, "feed");
    ok(&f).await;
    drop(server);
    // Nothing listens there any more (the port is released with the listener).
    tokio::time::sleep(Duration::from_millis(50)).await;
    let e = fails(&f).await;
    assert!(matches!(e.error, FetchError::Transport { .. }), "{e}");
    assert!(e.to_string().to_lowercase().contains("connect"), "{e}");
    let r = resolve::resolve(&config).unwrap();
    assert_eq!(r.groups[0][0].len(), 3, "the last-known-good copy is used");

    // Never fetched: refused by default, with the place and what to do.
    let port = support::closed_port().await;
    let url = format!("https://127.0.0.1:{port}/f");
    fs::remove_dir_all(lab.path("cache")).unwrap();
    let config = lab.config("", &list_source(&url));
    assert!(
        fails(&lab.fetcher(&config, "feed"))
            .await
            .to_string()
            .contains("onnect")
    );
    let e = resolve::resolve(&config).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}:5:8:", lab.path("main.toml").display())),
        "{e}"
    );
    assert!(e.contains("source `feed` has no usable content"), "{e}");
    assert!(e.contains("never fetched successfully"), "{e}");
    assert!(e.contains("on_source_failure = \"skip\""), "{e}");

    // `skip`, in the main file or on the source: the group is empty and the report says why.
    for (main, extra) in [
        ("on_source_failure = \"skip\"", ""),
        ("", "on_source_failure = \"skip\""),
    ] {
        let config = lab.config(
            main,
            &source("feed", &url, &format!("format = \"list\"\n{extra}")),
        );
        let r = resolve::resolve(&config).unwrap();
        assert!(r.groups[0][0].is_empty());
        assert_eq!(r.sources[0].status, SourceStatus::Skipped);
        assert!(
            r.sources[0]
                .problem
                .as_ref()
                .unwrap()
                .contains("never fetched")
        );
        let c = compile::compile(&validate(&config).unwrap(), &r, embargo::today()).unwrap();
        assert_eq!(c.report.sources[0].status, SourceStatus::Skipped);
    }
    // A source's own `refuse` wins over the main file's `skip`.
    let config = lab.config(
        "on_source_failure = \"skip\"",
        &source(
            "feed",
            &url,
            "format = \"list\"\non_source_failure = \"refuse\"",
        ),
    );
    assert!(resolve::resolve(&config).is_err());
}

#[tokio::test]
async fn certificates_from_another_ca_are_refused() {
    let lab = Lab::new("untrusted");
    let other = Pki::new();
    let server = Server::start(Arc::clone(&other.server), |_| Reply::ok(LIST)).await;
    // ca_file names the lab's CA; the server's certificate comes from another one.
    let config = lab.config("", &list_source(&server.url("/f")));
    let e = fails(&lab.fetcher(&config, "feed")).await;
    assert!(matches!(e.error, FetchError::Transport { .. }), "{e}");
    assert!(e.to_string().contains("certificate"), "{e}");
    assert!(lab.cached("feed").is_none());
    // Without ca_file only the public roots are trusted: refused as well.
    let config = lab.config(
        "",
        &list_source(&server.url("/f")).replace("ca_file = \"ca.pem\"\n", ""),
    );
    let e = fails(&lab.fetcher(&config, "feed")).await;
    assert!(e.to_string().contains("certificate"), "{e}");
    assert!(
        server.requests().is_empty(),
        "no request went over an unverified connection"
    );
}

#[tokio::test]
async fn a_redirect_to_plain_http_is_refused() {
    let lab = Lab::new("redirect");
    let server = serve(&lab, |r| match r.path.as_str() {
        "/moved" => Reply::status(302).header("Location", "/f"),
        "/plain" => Reply::status(302).header("Location", "http://127.0.0.1:9/f"),
        _ => Reply::ok(LIST),
    })
    .await;
    let config = lab.config("", &list_source(&server.url("/moved")));
    assert_eq!(entries(&ok(&lab.fetcher(&config, "feed")).await), 3);
    let config = lab.config("", &list_source(&server.url("/plain")));
    let e = fails(&lab.fetcher(&config, "feed")).await;
    assert!(e.to_string().contains("https"), "{e}");
}

#[tokio::test]
async fn a_bad_line_in_the_cached_copy_names_the_cache_file_and_line() {
    let lab = Lab::new("badcache");
    let server = serve(&lab, |_| Reply::ok(LIST)).await;
    let config = lab.config("", &list_source(&server.url("/f")));
    let f = lab.fetcher(&config, "feed");
    ok(&f).await;
    // A copy that matches its metadata but no longer parses (edited by hand).
    let mut meta = cache::load(&f.spec).unwrap().meta;
    let bad = "192.0.2.0/24\n\nnot-an-address\n";
    fs::write(lab.path("cache/feed.body"), bad).unwrap();
    meta.sha256 = embargo::files::digest::sha256_hex(bad.as_bytes());
    cache::store_meta(&f.spec, &meta).unwrap();
    let e = resolve::resolve(&config).unwrap_err().to_string();
    let want = format!(
        "{}:3:1: source `feed`: `not-an-address`",
        lab.path("cache/feed.body").display()
    );
    assert!(e.starts_with(&want), "{e}");
    // With `skip`, the same words end up in the report.
    let config = lab.config(
        "on_source_failure = \"skip\"",
        &list_source(&server.url("/f")),
    );
    let r = resolve::resolve(&config).unwrap();
    assert!(r.sources[0].problem.as_ref().unwrap().starts_with(&want));
}

#[tokio::test]
async fn the_manager_fetches_at_start_refreshes_and_says_what_changed() {
    let lab = Lab::new("manager");
    let version = Arc::new(AtomicUsize::new(1));
    let v = Arc::clone(&version);
    let server = serve(&lab, move |r| {
        match (r.path.as_str(), v.load(Ordering::SeqCst)) {
            ("/feed.txt", 1) => Reply::ok(LIST).header("ETag", "\"1\""),
            ("/feed.txt", _)
                if r.headers.get("if-none-match").map(String::as_str) == Some("\"2\"") =>
            {
                Reply::status(304)
            }
            ("/feed.txt", _) => Reply::ok("203.0.113.0/24\n").header("ETag", "\"2\""),
            _ => Reply::status(500),
        }
    })
    .await;
    let port = support::closed_port().await;
    let sources = format!(
        "{}{}",
        source(
            "feed",
            &server.url("/feed.txt"),
            "format = \"list\"\ninterval = \"1s\""
        ),
        source(
            "down",
            &format!("https://127.0.0.1:{port}/x"),
            "format = \"list\"\ninterval = \"1s\"\non_source_failure = \"skip\""
        ),
    );
    let config = lab.config("", &sources);
    let (manager, mut changed) = SourceManager::start(&config).await.unwrap();
    // The initial fetch is done when start returns: the first compile can use it.
    let states = manager.states();
    assert_eq!(states.len(), 2);
    assert_eq!((states[0].name.as_str(), states[0].entries), ("feed", 3));
    assert!(states[0].last_success.is_some());
    assert!(states[0].last_success_timestamp_seconds() > 0.0);
    assert_eq!(states[1].fetch_errors_total, 1);
    assert_eq!(states[1].last_success_timestamp_seconds(), 0.0);
    assert!(!states[1].has_content());
    let r = resolve::resolve(&config).unwrap();
    assert_eq!(r.groups[0][0].len(), 3);
    assert_eq!(r.sources[1].status, SourceStatus::Unreferenced);
    assert!(!changed.has_changed().unwrap());

    version.store(2, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(10), changed.changed())
        .await
        .expect("a change within 10s")
        .unwrap();
    let c = changed.borrow_and_update().clone();
    assert_eq!(c.generation, 1);
    assert_eq!(c.source.as_deref(), Some("feed"));
    let r = resolve::resolve(&config).unwrap();
    assert_eq!(r.groups[0][0].len(), 1);
    assert_eq!(r.groups[0][0][0].net.to_string(), "203.0.113.0/24");
    // 304s afterwards are successes without a change.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!changed.has_changed().unwrap());
    let states = manager.states();
    assert_eq!(states[0].entries, 1);
    assert_eq!(states[0].consecutive_failures, 0);
    assert!(states[1].fetch_errors_total >= 2, "{:?}", states[1]);
    assert!(states[0].staleness(chrono::Utc::now()).unwrap() < Duration::from_secs(3));
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.headers.get("if-none-match").map(String::as_str) == Some("\"2\""))
    );
    // Dropping the manager stops the refreshes.
    drop(manager);
    let before = server.requests().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.requests().len(), before);
}

#[tokio::test]
async fn check_reads_only_the_cache_and_never_fetches() {
    let lab = Lab::new("check");
    let server = serve(&lab, |_| Reply::ok(LIST)).await;
    let config = lab.config("", &list_source(&server.url("/f")));
    // No copy yet: `check` refuses (exit 64) without asking the server.
    let out = support::command(&["check", "--config"])
        .arg(lab.path("main.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("has no usable content"), "{err}");
    assert!(server.requests().is_empty());
    ok(&lab.fetcher(&config, "feed")).await;
    let out = support::command(&["check", "--config"])
        .arg(lab.path("main.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("feed"), "{text}");
    assert!(text.contains("3 prefixes"), "{text}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn the_fetch_command_fills_the_cache_and_names_failures() {
    let lab = Lab::new("fetchcmd");
    let server = serve(&lab, |_| Reply::ok(LIST)).await;
    let port = support::closed_port().await;
    let sources = format!(
        "{}{}",
        list_source(&server.url("/f")),
        source(
            "down",
            &format!("https://127.0.0.1:{port}/x"),
            "format = \"list\"\non_source_failure = \"skip\""
        )
    );
    lab.config("", &sources);
    // The server runs on this test's runtime: wait for the command off it.
    let main = lab.path("main.toml");
    let out = tokio::task::spawn_blocking(move || {
        support::command(&["fetch", "--config"])
            .arg(main)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("feed: updated (3 prefixes)"), "{stdout}");
    assert!(stderr.contains("source `down`"), "{stderr}");
    assert_eq!(lab.cached("feed").as_deref(), Some(LIST));
    assert!(lab.cached("down").is_none());
}

// ---------------------------------------------------------------------------------------------
// Sanctions lists read from a source: `[[lists]] source = "..."`.

fn list_fixture(name: &str) -> String {
    fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/lists")
            .join(name),
    )
    .unwrap()
}

/// An entity designated as CYB0114 that follows list `uk`.
const LISTED_ENTITY: &str = r#"
[[entities]]
id = "i-soon"
name = "Sichuan Anxun Information Technology Co., Ltd."
aliases = ["i-Soon"]
action = "drop"
[[entities.designations]]
authority = "UK"
regime = "The Cyber (Sanctions) (EU Exit) Regulations 2020"
reference = "CYB0114"
listed_on = 2025-12-09
source = "https://www.gov.uk/"
list = "uk"
[[entities.networks]]
prefixes = ["74.120.172.10"]
[entities.networks.evidence]
kind = "manual"
source = "test"
retrieved = 2026-01-01
confidence = "low"
"#;

impl Lab {
    /// Writes `main.toml` with `sources_and_lists` before the entity that follows list `uk`;
    /// its path and text.
    fn list_main(&self, sources_and_lists: &str) -> (PathBuf, String) {
        let text = format!(
            "enforce = [\"UK\"]\ncache_dir = \"cache\"\n{sources_and_lists}\n{LISTED_ENTITY}"
        );
        let path = self.dir.join("main.toml");
        fs::write(&path, &text).unwrap();
        (path, text)
    }
}

fn uk_source(url: &str, extra: &str) -> String {
    format!(
        "{}[[lists]]\nname = \"uk\"\nsource = \"uk-list\"\n",
        source("uk-list", url, &format!("format = \"uk-csv\"\n{extra}"))
    )
}

fn compile_on(config: &Config, day: &str) -> compile::Compiled {
    let r = resolve::resolve(config).unwrap();
    compile::compile(
        &validate(config).unwrap(),
        &r,
        day.parse::<chrono::NaiveDate>().unwrap(),
    )
    .unwrap()
}

/// 1-based line of the first line of `text` containing `needle`.
fn line_with(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[tokio::test]
async fn a_list_source_is_fetched_cached_followed_and_refreshed() {
    let lab = Lab::new("listsrc");
    let listed = list_fixture("UK_Sanctions_List.csv");
    let delisted = list_fixture("UK_Sanctions_List.delisted.csv");
    // Cut in the middle of the third row: a download that stopped early.
    let cut = listed.match_indices('\n').nth(3).unwrap().0 + 40;
    let truncated = listed[..cut].to_owned();
    let version = Arc::new(AtomicUsize::new(1));
    let v = Arc::clone(&version);
    let bodies = [listed.clone(), truncated, delisted.clone()];
    let server = serve(&lab, move |r| {
        match (r.path.as_str(), v.load(Ordering::SeqCst)) {
            ("/UK_Sanctions_List.csv", 1) => Reply::ok(bodies[0].clone()),
            ("/UK_Sanctions_List.csv", 2) => {
                Reply::ok("<html><body>Service temporarily unavailable</body></html>\n")
            }
            ("/UK_Sanctions_List.csv", 3) => Reply::ok(bodies[1].clone()),
            ("/UK_Sanctions_List.csv", _) => Reply::ok(bodies[2].clone()),
            _ => Reply::status(404),
        }
    })
    .await;
    let (main, _) = lab.list_main(&uk_source(
        &server.url("/UK_Sanctions_List.csv"),
        "interval = \"1s\"",
    ));
    let config = config::load(&main).unwrap();
    let cache = lab.path("cache/uk-list.body");

    // Fetched and cached at start; the list is read from the copy and CYB0114 is enforced.
    let (manager, mut changed) = SourceManager::start(&config).await.unwrap();
    assert_eq!(manager.states()[0].entries, 4, "{:?}", manager.states());
    assert_eq!(lab.cached("uk-list").as_deref(), Some(listed.as_str()));
    let r = resolve::resolve(&config).unwrap();
    assert_eq!(r.lists.len(), 1);
    assert_eq!(r.lists[0].path, cache);
    assert_eq!(r.sources[0].status, SourceStatus::Used);
    let audit = embargo::observe::audit::sources(&r);
    let entry = audit
        .iter()
        .find(|s| s.path == cache.display().to_string())
        .expect("the cached copy is an audit source");
    assert_eq!(entry.kind, embargo::observe::audit::SourceKind::List);
    assert_eq!(
        entry.sha256,
        embargo::files::digest::sha256_hex(listed.as_bytes())
    );
    let before = compile_on(&config, "2026-07-01");
    assert_eq!(before.rules.len(), 1, "CYB0114 is on the list: enforced");
    assert!(before.listed[0].on_list);
    // `embargo check` reads the same copy (and never fetches).
    let requests = server.requests().len();
    let out = support::command(&["check", "--config"])
        .arg(&main)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "4 designations (uk-csv, published 2025-12-09) from {}",
            cache.display()
        )),
        "{text}"
    );

    // Garbage, then a truncated list: each refused, the last-known-good copy stays in force.
    for (v, what) in [(2, "garbage"), (3, "truncated")] {
        version.store(v, Ordering::SeqCst);
        let errors = manager.states()[0].fetch_errors_total;
        let deadline = Instant::now() + Duration::from_secs(10);
        while manager.states()[0].fetch_errors_total == errors {
            assert!(
                Instant::now() < deadline,
                "{what}: no refused fetch within 10s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let state = manager.states().remove(0);
        assert!(
            state
                .last_error
                .as_deref()
                .unwrap_or_default()
                .contains("not a valid uk-csv list"),
            "{what}: {state:?}"
        );
        assert!(!changed.has_changed().unwrap(), "{what}: no reload");
        assert_eq!(
            lab.cached("uk-list").as_deref(),
            Some(listed.as_str()),
            "{what}"
        );
        let c = compile_on(&config, "2026-07-01");
        assert_eq!(c.rules.len(), 1, "{what}: still enforced");
        assert!(
            c.report.messages(FindingKind::DelistedByList).is_empty(),
            "{what}"
        );
    }
    assert!(server.requests().len() > requests);

    // The delisted list: a change, a reload, and the designation is delisted.
    version.store(4, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(10), changed.changed())
        .await
        .expect("a change within 10s")
        .unwrap();
    assert_eq!(
        changed.borrow_and_update().source.as_deref(),
        Some("uk-list")
    );
    assert_eq!(lab.cached("uk-list").as_deref(), Some(delisted.as_str()));
    let after = compile_on(&config, "2026-07-01");
    assert!(after.rules.is_empty(), "not on the new list: not enforced");
    assert_eq!(after.listed[0].delisted_on, "2026-06-20".parse().ok());
    assert!(
        after.report.messages(FindingKind::DelistedByList)[0]
            .contains(&cache.display().to_string()),
        "{:?}",
        after.report.messages(FindingKind::DelistedByList)
    );
    drop(manager);
}

#[tokio::test]
async fn a_list_source_without_a_copy_refuses_or_is_skipped_without_delisting() {
    let lab = Lab::new("listskip");
    let port = support::closed_port().await;
    let url = format!("https://127.0.0.1:{port}/UK_Sanctions_List.csv");
    let (main, _) = lab.list_main(&uk_source(&url, ""));
    let config = config::load(&main).unwrap();
    let e = resolve::resolve(&config).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:4:", main.display())), "{e}");
    assert!(
        e.contains("list `uk` (uk-csv) from source `uk-list` has no usable copy"),
        "{e}"
    );
    let (main, _) = lab.list_main(&uk_source(&url, "on_source_failure = \"skip\""));
    let config = config::load(&main).unwrap();
    let r = resolve::resolve(&config).unwrap();
    assert_eq!(r.skipped_lists, ["uk"]);
    assert_eq!(r.sources[0].status, SourceStatus::Skipped);
    let c = compile::compile(
        &validate(&config).unwrap(),
        &r,
        "2026-07-01".parse::<chrono::NaiveDate>().unwrap(),
    )
    .unwrap();
    assert_eq!(
        c.rules.len(),
        1,
        "kept as the entity file says, not delisted"
    );
    assert!(c.report.messages(FindingKind::DelistedByList).is_empty());
    assert!(
        c.report.messages(FindingKind::ListMismatch).is_empty(),
        "{:?}",
        c.report.messages(FindingKind::ListMismatch)
    );
    assert!(
        c.report.messages(FindingKind::UnfollowedDesignation).len() == 1
            && c.report.messages(FindingKind::UnfollowedDesignation)[0]
                .contains("list `uk` was skipped")
            && c.report.messages(FindingKind::UnfollowedDesignation)[0].contains("NOT delisted"),
        "{:?}",
        c.report.messages(FindingKind::UnfollowedDesignation)
    );
}

#[test]
fn list_entries_name_a_known_source_and_only_one_of_path_and_source() {
    let lab = Lab::new("listerrs");
    let src = source(
        "uk-list",
        "https://127.0.0.1:1/uk.csv",
        "format = \"uk-csv\"",
    );
    let feed = source("feed", "https://127.0.0.1:1/f", "format = \"list\"");
    let cases = [
        (
            format!("{src}{feed}[[lists]]\nname = \"uk\"\nsource = \"nope\"\n"),
            "source = \"nope\"",
            "unknown source `nope` (declared: uk-list, feed)",
        ),
        (
            format!(
                "{src}[[lists]]\nname = \"uk\"\nformat = \"uk-csv\"\npath = \"uk.csv\"\nsource = \"uk-list\"\n"
            ),
            "source = \"uk-list\"",
            "has both `path` and `source`",
        ),
        (
            format!("{feed}[[lists]]\nname = \"uk\"\nsource = \"feed\"\n"),
            "source = \"feed\"",
            "source `feed` has a prefix format",
        ),
        (
            format!("{src}[[lists]]\nname = \"uk\"\nformat = \"uk-xml\"\nsource = \"uk-list\"\n"),
            "format = \"uk-xml\"",
            "its format is the source's",
        ),
        (
            format!("{src}[[lists]]\nname = \"uk\"\n"),
            "name = \"uk\"",
            "needs `path",
        ),
    ];
    for (lists, at, needle) in cases {
        let (main, text) = lab.list_main(&lists);
        let e = resolve::resolve(&config::load(&main).unwrap())
            .unwrap_err()
            .to_string();
        let line = line_with(&text, at);
        assert!(
            e.starts_with(&format!("{}:{line}:", main.display())),
            "{at}: {e}"
        );
        assert!(e.contains(needle), "{at}: {e}");
    }
    // A list source named in a network group is refused at the group.
    let text = format!(
        "enforce = [\"UK\"]\ncache_dir = \"cache\"\n{}\n{ENTITY}",
        source("feed", "https://127.0.0.1:1/uk.csv", "format = \"uk-csv\"")
    );
    fs::write(lab.path("main.toml"), &text).unwrap();
    let e = resolve::resolve(&config::load(&lab.path("main.toml")).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("is a uk-csv sanctions list, not a feed of prefixes"),
        "{e}"
    );
    assert!(
        e.contains(&format!(":{}:", line_with(&text, "sources = [\"feed\"]"))),
        "{e}"
    );
}

/// Stores `body` as the source's copy, as an older agent (without the fetch-time guard) did.
fn plant_copy(f: &Fetcher, body: &str, etag: Option<&str>) {
    let now = chrono::Utc::now();
    let (url, url_sha256) = cache::Meta::url_of(&f.spec);
    let meta = cache::Meta {
        url,
        url_sha256,
        etag: etag.map(str::to_owned),
        last_modified: None,
        sha256: embargo::files::digest::sha256_hex(body.as_bytes()),
        fetched_at: now,
        checked_at: now,
        entries: body.lines().count(),
        skipped: Default::default(),
    };
    cache::store(&f.spec, body.as_bytes(), None, &meta).unwrap();
}

/// A body that parses but holds a default route, a prefix broader than the guard or one in a
/// special-purpose range is refused whole before it replaces the copy: the agent keeps
/// compiling the last-known-good one, and a restart does not find a copy that refuses the
/// policy (exit 64 in a loop).
#[tokio::test]
async fn a_body_that_fails_the_guard_never_replaces_the_copy() {
    let lab = Lab::new("guard");
    for (bad, line, needle) in [
        (
            "74.120.172.10\n0.0.0.0/0\n",
            2,
            "`0.0.0.0/0` is a default route",
        ),
        (
            "74.120.172.10\n\n2a00:1450::/32\n::/0\n",
            4,
            "`::/0` is a default route",
        ),
        (
            "# broad\n10.0.0.0/7\n",
            2,
            "`10.0.0.0/7` is broader than the guard's /8",
        ),
        (
            "74.120.172.10\n169.254.169.254\n",
            2,
            "169.254.169.254/32 overlaps the link-local range 169.254.0.0/16",
        ),
        (
            "74.120.172.10\n# metadata\n10.1.0.0/16\n",
            3,
            "10.1.0.0/16 overlaps the private range 10.0.0.0/8",
        ),
    ] {
        let server = first_then(&lab, PUBLIC_LIST, move |_| Reply::ok(bad)).await;
        let config = lab.config_strict("", &list_source(&server.url("/f")));
        let f = lab.fetcher(&config, "feed");
        ok(&f).await;
        let e = fails(&f).await;
        let FetchError::Guard(l) = &e.error else {
            panic!("{bad:?}: {e}")
        };
        assert_eq!(l.line, line, "{e}");
        let msg = e.to_string();
        assert!(msg.contains(needle), "{msg}");
        assert!(msg.contains("the whole body is refused"), "{msg}");
        assert_eq!(lab.cached("feed").as_deref(), Some(PUBLIC_LIST), "{bad:?}");
        let r = resolve::resolve(&config).unwrap();
        compile::compile(&validate(&config).unwrap(), &r, embargo::today()).unwrap();
    }
    // With the group's guard_override, the special-purpose ranges pass (a default route not).
    let server = first_then(&lab, PUBLIC_LIST, |_| {
        Reply::ok("74.120.172.10\n10.1.0.0/16\n")
    })
    .await;
    let config = lab.config("", &list_source(&server.url("/f")));
    let f = lab.fetcher(&config, "feed");
    ok(&f).await;
    ok(&f).await;
    assert_eq!(
        lab.cached("feed").as_deref(),
        Some("74.120.172.10\n10.1.0.0/16\n")
    );
    // The guard's own limit applies: /12 is fine by default, refused under broadest_v4 = 16.
    let server = first_then(&lab, PUBLIC_LIST, |_| Reply::ok("44.0.0.0/12\n")).await;
    let config = lab.config_strict("", &list_source(&server.url("/f")));
    let f = lab.fetcher(&config, "feed");
    ok(&f).await;
    ok(&f).await;
    let config = lab.config_strict("[guard]\nbroadest_v4 = 16", &list_source(&server.url("/f")));
    let e = fails(&lab.fetcher(&config, "feed")).await;
    assert!(
        e.to_string().contains("broader than the guard's /16"),
        "{e}"
    );
    // The manager counts the refusal as a failed fetch and keeps the content.
    let server = serve(&lab, |_| Reply::ok("0.0.0.0/0\n")).await;
    let config = lab.config("", &list_source(&server.url("/f")));
    let (manager, _) = SourceManager::start(&config).await.unwrap();
    let s = &manager.states()[0];
    assert_eq!(s.fetch_errors_total, 1, "{s:?}");
    assert!(
        s.last_error.as_ref().unwrap().contains("default route"),
        "{s:?}"
    );
}

/// A copy stored before the guard ran on fetched bodies (an older agent) is not used: a start
/// follows `on_source_failure` (refuse: exit 64 naming the copy's line; skip: the policy
/// compiles without it), and the next fetch sends no validators, so a 304 cannot keep it.
#[tokio::test]
async fn a_cached_copy_that_fails_the_guard_follows_on_source_failure() {
    let lab = Lab::new("guardcache");
    let server = serve(&lab, |r| {
        if r.headers.contains_key("if-none-match") {
            Reply::status(304)
        } else {
            Reply::ok(LIST).header("ETag", "\"good\"")
        }
    })
    .await;
    let config = lab.config("", &list_source(&server.url("/f")));
    let f = lab.fetcher(&config, "feed");
    plant_copy(&f, "192.0.2.0/24\n0.0.0.0/0\n", Some("\"bad\""));
    let main = lab.path("main.toml");
    let e = match embargo::compile_file(&main, embargo::today()) {
        Ok(_) => panic!("a copy with a default route was used"),
        Err(e) => e.to_string(),
    };
    let want = format!(
        "{}:2:1: source `feed`: `0.0.0.0/0`",
        lab.path("cache/feed.body").display()
    );
    assert!(e.starts_with(&want), "{e}");
    assert!(e.contains("the copy is not used"), "{e}");
    let out = support::command(&["check", "--config"])
        .arg(&main)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    // skip: the policy compiles without the source, and the report says why.
    let config = lab.config(
        "on_source_failure = \"skip\"",
        &list_source(&server.url("/f")),
    );
    let (_, compiled) = embargo::compile_file(&main, embargo::today()).unwrap();
    assert_eq!(compiled.report.sources[0].status, SourceStatus::Skipped);
    assert!(
        compiled.report.sources[0]
            .problem
            .as_ref()
            .unwrap()
            .contains("default route")
    );
    // The fetch asks for the whole body (no If-None-Match for the bad copy) and replaces it.
    let f = lab.fetcher(&config, "feed");
    assert!(matches!(
        ok(&f).await,
        Outcome::Updated { changed: true, .. }
    ));
    assert!(!server.requests()[0].headers.contains_key("if-none-match"));
    assert_eq!(lab.cached("feed").as_deref(), Some(LIST));
    let r = resolve::resolve(&config).unwrap();
    assert_eq!(r.groups[0][0].len(), 3);
    // A group whose guard_override names a default route accepts the copy.
    plant_copy(&f, "192.0.2.0/24\n0.0.0.0/0\n", None);
    let text = fs::read_to_string(&main).unwrap().replace(
        GUARD_LINE,
        "guard_override = \"the feed may list a default route\"\n",
    );
    fs::write(&main, text).unwrap();
    let (_, compiled) = embargo::compile_file(&main, embargo::today()).unwrap();
    assert_eq!(compiled.report.sources[0].status, SourceStatus::Used);
}

/// A source URL's `user:password@` never reaches an error, a log line, the status or the
/// report: shown as `user:***@`.
#[tokio::test]
async fn a_password_in_a_source_url_is_never_shown() {
    let lab = Lab::new("secret");
    let server = serve(&lab, |_| Reply::status(503)).await;
    let with_secret = |url: String| url.replace("https://", "https://feeduser:s3cret-pw@");
    let url = with_secret(server.url("/f"));
    let config = lab.config("", &list_source(&url));
    let f = lab.fetcher(&config, "feed");
    let e = fails(&f).await.to_string();
    assert!(!e.contains("s3cret"), "{e}");
    assert!(e.contains("feeduser:***@127.0.0.1"), "{e}");
    // Transport errors quote the URL too (reqwest's "for url (...)").
    let port = support::closed_port().await;
    let down = with_secret(format!("https://127.0.0.1:{port}/f"));
    let config = lab.config("", &list_source(&down));
    let e = fails(&lab.fetcher(&config, "feed")).await.to_string();
    assert!(!e.contains("s3cret"), "{e}");
    let (manager, _) = SourceManager::start(&config).await.unwrap();
    let state = format!("{:?}", manager.states());
    assert!(!state.contains("s3cret"), "{state}");
    let e = resolve::resolve(&config).unwrap_err().to_string();
    assert!(!e.contains("s3cret"), "{e}");
    let config = lab.config("on_source_failure = \"skip\"", &list_source(&down));
    let r = resolve::resolve(&config).unwrap();
    let report = format!("{:?}", r.sources);
    assert!(!report.contains("s3cret"), "{report}");
    assert!(report.contains("feeduser:***@"), "{report}");
    // `embargo fetch` prints the error.
    let out = support::command(&["fetch", "--config"])
        .arg(lab.path("main.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("s3cret"), "{err}");
    assert!(err.contains("feeduser:***@"), "{err}");
}

/// Regression: the copy's metadata file kept the source URL whole, `user:password@` included.
/// It now holds the URL as shown (`user:***@`) and a SHA-256 of the whole URL, by which the
/// copy is still matched to the configured URL; another password is another URL.
#[tokio::test]
async fn a_password_in_a_source_url_is_not_written_to_the_copy() {
    let lab = Lab::new("secret-meta");
    let server = serve(&lab, |_| Reply::ok(LIST)).await;
    let url = server
        .url("/f")
        .replace("https://", "https://feeduser:s3cret-pw@");
    let config = lab.config("", &list_source(&url));
    let f = lab.fetcher(&config, "feed");
    ok(&f).await;
    let meta = fs::read_to_string(cache::Paths::of(&f.spec).meta).unwrap();
    assert!(!meta.contains("s3cret"), "{meta}");
    assert!(meta.contains("feeduser:***@"), "{meta}");
    let copy = cache::load(&f.spec).unwrap();
    assert!(copy.meta.is_from(&f.spec));
    let resolved = resolve::resolve(&config).unwrap();
    assert_eq!(resolved.groups[0][0].len(), 3);
    // The same source with another password does not take this copy.
    let other = lab.config("", &list_source(&url.replace("s3cret-pw", "other-pw")));
    let g = lab.fetcher(&other, "feed");
    assert!(matches!(
        cache::load(&g.spec),
        Err(cache::CacheError::OtherUrl { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Feeds as publishers ship them: delimiters, no header, type columns, bad lines skipped.

fn feed_fixture(name: &str) -> String {
    fs::read_to_string(format!(
        "{}/tests/fixtures/feeds/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The rows of the MISP-layout TSV, read independently of the parser: (type, value).
fn misp_rows() -> Vec<(String, String)> {
    feed_fixture("misp-attributes.tsv")
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[3].to_owned(), f[4].to_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_tsv_ioc_table_is_read_by_type_and_other_types_are_counted() {
    let lab = Lab::new("tsv");
    let body = feed_fixture("misp-attributes.tsv");
    let server = serve(&lab, move |_| Reply::ok(body.clone())).await;
    let config = lab.config(
        "",
        &source(
            "feed",
            &server.url("/misp.tsv"),
            "format = \"csv\"\ndelimiter = \"\\t\"\ncolumn = \"value\"\n\
             type_column = \"type\"\ntypes = [\"ip-dst\", \"ip-dst|port\"]",
        ),
    );
    let f = lab.fetcher(&config, "feed");
    let out = ok(&f).await;
    let rows = misp_rows();
    let ips: Vec<&(String, String)> = rows
        .iter()
        .filter(|(t, _)| t.starts_with("ip-dst"))
        .collect();
    assert_eq!(entries(&out), ips.len());
    let Outcome::Updated { skipped, .. } = &out else {
        panic!("{out:?}")
    };
    // Domain and hostname rows: not bad lines, counted by type (in the default refuse mode).
    let count = |t: &str| rows.iter().filter(|(x, _)| x == t).count();
    assert!(count("domain") > 0 && count("hostname") > 0);
    assert_eq!(skipped.by_type.get("domain"), Some(&count("domain")));
    assert_eq!(skipped.by_type.get("hostname"), Some(&count("hostname")));
    assert_eq!(skipped.bad_lines(), 0);
    assert!(skipped.lines.is_empty());
    // The policy holds every address, those written `value|port` too.
    let resolved = resolve::resolve(&config).unwrap();
    let compiled =
        compile::compile(&validate(&config).unwrap(), &resolved, embargo::today()).unwrap();
    let with_port = ips.iter().find(|(t, _)| t == "ip-dst|port").unwrap();
    for (_, v) in [ips[0], with_port] {
        let addr = v.split('|').next().unwrap();
        let rule = compiled.lookup(addr.parse().unwrap()).unwrap();
        assert_eq!(
            compiled.entities[rule.entity as usize].id, "feed-entity",
            "{v}"
        );
    }
    // Without the type column, the first domain row refuses the whole body.
    let config = lab.config(
        "",
        &source(
            "feed",
            &server.url("/misp.tsv"),
            "format = \"csv\"\ndelimiter = \"tab\"\ncolumn = \"value\"",
        ),
    );
    let e = fails(&lab.fetcher(&config, "feed")).await;
    assert!(matches!(e.error, FetchError::BadLine(_)), "{e}");
}

#[tokio::test]
async fn a_headerless_csv_is_read_by_column_number() {
    let lab = Lab::new("noheader");
    let body = feed_fixture("feodo-layout.csv");
    let rows = body.lines().filter(|l| !l.starts_with('#')).count();
    let server = serve(&lab, move |_| Reply::ok(body.clone())).await;
    let config = lab.config(
        "",
        &source(
            "feed",
            &server.url("/ipblocklist.csv"),
            "format = \"csv\"\nheader = false\ncolumn = 2",
        ),
    );
    let out = ok(&lab.fetcher(&config, "feed")).await;
    assert_eq!(entries(&out), rows);
    let resolved = resolve::resolve(&config).unwrap();
    assert_eq!(resolved.groups[0][0].len(), rows);
    // A column name without a header is refused at its line.
    let text = format!(
        "enforce = [\"UK\"]\ncache_dir = \"cache\"\n{}",
        source(
            "feed",
            &server.url("/ipblocklist.csv"),
            "format = \"csv\"\nheader = false\ncolumn = \"dst_ip\"",
        )
    );
    let path = lab.path("main.toml");
    fs::write(&path, text).unwrap();
    let e = spec::specs(&config::load(&path).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with(&format!("{}:10:", path.display())), "{e}");
    assert!(e.contains("columns are numbers"), "{e}");
}

#[tokio::test]
async fn bad_lines_refuse_by_default_and_are_skipped_counted_and_reported_with_skip() {
    let lab = Lab::new("skiplines");
    let body = feed_fixture("list-with-bad-lines.txt");
    let served = body.clone();
    let server = serve(&lab, move |_| Reply::ok(served.clone())).await;
    // Default: refused at the first bad line (line 6), nothing cached.
    let config = lab.config("", &list_source(&server.url("/edl.txt")));
    let e = fails(&lab.fetcher(&config, "feed")).await;
    let FetchError::BadLine(line) = &e.error else {
        panic!("{e}")
    };
    assert_eq!(line.line, 6, "{e}");
    assert!(lab.cached("feed").is_none());

    // skip: the good lines are used; every bad line is counted and listed with its line.
    let sources = source(
        "feed",
        &server.url("/edl.txt"),
        "format = \"list\"\non_bad_line = \"skip\"",
    );
    let config = lab.config("", &sources);
    let out = ok(&lab.fetcher(&config, "feed")).await;
    assert_eq!(entries(&out), 4);
    let Outcome::Updated { skipped, .. } = &out else {
        panic!("{out:?}")
    };
    let listed: Vec<(usize, &str)> = skipped
        .lines
        .iter()
        .map(|l| (l.line, l.reason.label()))
        .collect();
    assert_eq!(listed, [(6, "invalid_value"), (8, "invalid_value")]);
    assert!(skipped.lines[0].message.contains("198.51.100.300"));
    assert!(skipped.lines[1].message.contains("host bits"));
    assert_eq!(skipped.bad_lines(), 2);
    // The copy is cached with what it left out, and the policy compiles from it.
    assert_eq!(lab.cached("feed").as_deref(), Some(body.as_str()));
    assert_eq!(
        cache::load(&lab.fetcher(&config, "feed").spec)
            .unwrap()
            .meta
            .skipped,
        *skipped
    );
    assert_eq!(resolve::resolve(&config).unwrap().groups[0][0].len(), 4);

    // Status: the source state carries them (a field added to the JSON, the others as they
    // were), as the agent keeps it from the start.
    let (manager, _) = SourceManager::start(&config).await.unwrap();
    let state = &manager.states()[0];
    assert_eq!(state.skipped, *skipped);
    let json = serde_json::to_value(state).unwrap();
    assert_eq!(json["entries"], 4);
    assert_eq!(json["skipped"]["by_reason"]["invalid_value"], 2);
    assert_eq!(json["skipped"]["lines"][1]["line"], 8);
    assert_eq!(json["skipped"]["lines"][1]["reason"], "invalid_value");
    drop(manager);

    // `embargo fetch` reports each skipped line with the URL and line.
    let main = lab.path("main.toml");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_embargo"))
            .args(["fetch", "--config"])
            .arg(main)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("feed: unchanged (4 prefixes)"), "{stdout}");
    assert!(stderr.contains("skipped 2 bad lines"), "{stderr}");
    let url = server.url("/edl.txt");
    assert!(
        stderr.contains(&format!("{url} line 6: `198.51.100.300`")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{url} line 8: ")), "{stderr}");

    // `embargo fetch --json`: the same, as one document on stdout, stderr empty.
    let main = lab.path("main.toml");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_embargo"))
            .args(["fetch", "--json", "--config"])
            .arg(main)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["failed"], 0, "{v}");
    let s = &v["sources"][0];
    assert_eq!(s["name"], "feed", "{v}");
    assert_eq!(s["url"], url.as_str(), "{v}");
    assert!(
        ["updated", "not_modified"].contains(&s["outcome"].as_str().unwrap()),
        "{v}"
    );
    assert_eq!(s["changed"], false, "{v}");
    assert_eq!(s["entries"], 4, "{v}");
    assert_eq!(s["sha256"].as_str().unwrap().len(), 64, "{v}");
    assert!(s["error"].is_null(), "{v}");
    assert_eq!(s["bad_lines"], 2, "{v}");
    assert_eq!(s["skipped"]["lines"][0]["line"], 6, "{v}");
    assert_eq!(s["skipped"]["lines"][1]["reason"], "invalid_value", "{v}");
}
