//! A corpus of broken configurations: each must be refused by `embargo check` with exit code
//! 64, a message naming the file, line and column, and what to do. Needs no root.

mod support;

use std::{
    fs,
    path::{Path, PathBuf},
};

const ENTITY_OK: &str = r#"id = "a"
name = "A Ltd"
action = "drop"

[[designations]]
authority = "UK"
regime = "Cyber"
reference = "CYB0000"
listed_on = 2025-12-09
source = "https://example.org/a"

[[networks]]
prefixes = ["192.0.2.0/24"]
[networks.evidence]
kind = "advisory"
source = "https://example.org/ioc"
retrieved = 2026-11-01
confidence = "medium"
"#;

const MAIN_OK: &str = "enforce = [\"UK\"]\ninclude = [\"entities\"]\n";

/// [`ENTITY_OK`] with a `guard_override` on its group, which lists a documentation range: the
/// guard refuses that without one (`the_corpus_is_refused_with_locations`, case
/// `special-range`), and the cases that must load use this.
fn entity_ok_overridden() -> String {
    ENTITY_OK.replace(
        "[networks.evidence]",
        "guard_override = \"documentation range in a test\"\n[networks.evidence]",
    )
}

/// A throwaway folder with a main file and an `entities/` folder.
struct Case {
    dir: PathBuf,
    /// Removes the folder on drop.
    _tmp: tempfile::TempDir,
}

impl Case {
    fn new(name: &str) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("embargo-broken-{name}-"))
            .tempdir()
            .unwrap();
        let dir = tmp.path().to_owned();
        fs::create_dir_all(dir.join("entities")).unwrap();
        Self { dir, _tmp: tmp }
    }

    fn file(&self, rel: &str, text: &str) -> &Self {
        let p = self.dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
        self
    }

    /// Runs `embargo check` and returns stderr, asserting exit code 64.
    fn refused(&self) -> String {
        let out = support::command(&["check", "--config"])
            .arg(self.dir.join("main.toml"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(64),
            "expected exit 64, stderr:\n{err}"
        );
        assert!(err.contains("nothing from it was applied"), "{err}");
        err
    }

    fn path(&self, rel: &str) -> String {
        self.dir.join(rel).display().to_string()
    }
}

fn assert_has(err: &str, needles: &[&str]) {
    for n in needles {
        assert!(err.contains(n), "missing `{n}` in:\n{err}");
    }
}

#[test]
fn the_corpus_is_refused_with_locations() {
    let c = Case::new("syntax");
    c.file("main.toml", "enforce = [\"UK\"\ninclude = []\n");
    assert_has(&c.refused(), &[&format!("{}:2:", c.path("main.toml"))]);

    let c = Case::new("unknown-field");
    c.file("main.toml", MAIN_OK)
        .file("entities/a.toml", &format!("{ENTITY_OK}colour = \"red\"\n"));
    assert_has(
        &c.refused(),
        &[&format!("{}:19:1", c.path("entities/a.toml")), "colour"],
    );

    // A special-purpose range (here documentation) without a guard_override: refused at the
    // prefix, saying what it is and what to do.
    for (prefix, kind) in [
        ("192.0.2.0/24", "documentation"),
        ("10.0.0.0/8", "private"),
        ("169.254.169.254", "link-local"),
        ("ff02::fb", "multicast"),
    ] {
        let c = Case::new("special-range");
        c.file("main.toml", MAIN_OK).file(
            "entities/a.toml",
            &ENTITY_OK.replace("192.0.2.0/24", prefix),
        );
        assert_has(
            &c.refused(),
            &[
                &format!("{}:13:13", c.path("entities/a.toml")),
                &format!("the {kind} range"),
                "guard_override",
            ],
        );
    }

    let c = Case::new("bad-cidr");
    c.file("main.toml", MAIN_OK).file(
        "entities/a.toml",
        &ENTITY_OK.replace("192.0.2.0/24", "192.0.2.300/24"),
    );
    assert_has(
        &c.refused(),
        &[
            &format!("{}:13:13", c.path("entities/a.toml")),
            "not a CIDR",
        ],
    );

    let c = Case::new("host-bits");
    c.file("main.toml", MAIN_OK).file(
        "entities/a.toml",
        &ENTITY_OK.replace("192.0.2.0/24", "192.0.2.1/24"),
    );
    assert_has(
        &c.refused(),
        &[
            &format!("{}:13:13", c.path("entities/a.toml")),
            "did you mean 192.0.2.0/24",
        ],
    );

    let c = Case::new("reversed-range");
    c.file(
        "main.toml",
        "enforce = [\"UK\"]\ninclude = [\"entities\"]\nasn_table = \"asn.csv\"\n",
    )
    .file(
        "asn.csv",
        "198.18.0.0,198.18.0.255,64512\n198.18.1.9,198.18.1.1,64512\n",
    )
    .file(
        "entities/a.toml",
        &ENTITY_OK
            .replace("prefixes = [\"192.0.2.0/24\"]", "asn = [64512]")
            .replace("kind = \"advisory\"", "kind = \"routing\""),
    );
    assert_has(
        &c.refused(),
        &[&format!("{}:2:1", c.path("asn.csv")), "before its start"],
    );

    let c = Case::new("duplicate-id");
    c.file("main.toml", MAIN_OK)
        .file("entities/a.toml", ENTITY_OK)
        .file("entities/b.toml", ENTITY_OK);
    assert_has(
        &c.refused(),
        &[
            &format!("{}:1:6", c.path("entities/b.toml")),
            &format!("already used at {}:1:6", c.path("entities/a.toml")),
        ],
    );

    let c = Case::new("missing-include");
    c.file(
        "main.toml",
        "enforce = [\"UK\"]\ninclude = [\"entities\", \"nowhere.toml\"]\n",
    );
    assert_has(
        &c.refused(),
        &[
            &format!("{}:2:24", c.path("main.toml")),
            "cannot be read",
            "remove the include",
        ],
    );

    let c = Case::new("unreadable-indicators");
    fs::create_dir_all(c.dir.join("entities/iocs.txt")).unwrap();
    c.file("main.toml", MAIN_OK).file(
        "entities/a.toml",
        &ENTITY_OK.replace("prefixes = [\"192.0.2.0/24\"]", "files = [\"iocs.txt\"]"),
    );
    assert_has(
        &c.refused(),
        &[
            &format!("{}:13:10", c.path("entities/a.toml")),
            "indicator file",
            "cannot be read",
        ],
    );

    let c = Case::new("bad-indicator-line");
    c.file("main.toml", MAIN_OK)
        .file("entities/iocs.txt", "# comment\n192.0.2.1\n10.0.0.1/8\n")
        .file(
            "entities/a.toml",
            &ENTITY_OK.replace("prefixes = [\"192.0.2.0/24\"]", "files = [\"iocs.txt\"]"),
        );
    assert_has(
        &c.refused(),
        &[&format!("{}:3:1", c.path("entities/iocs.txt")), "host bits"],
    );

    let c = Case::new("huge");
    c.file("main.toml", MAIN_OK);
    let big = fs::File::create(c.dir.join("entities/big.toml")).unwrap();
    big.set_len(65 * 1024 * 1024).unwrap();
    assert_has(
        &c.refused(),
        &[&c.path("entities/big.toml"), "over the 67108864-byte limit"],
    );

    let c = Case::new("missing-field");
    c.file("main.toml", MAIN_OK).file(
        "entities/a.toml",
        &ENTITY_OK.replace("reference = \"CYB0000\"\n", ""),
    );
    assert_has(
        &c.refused(),
        &[&format!("{}:5:1", c.path("entities/a.toml")), "reference"],
    );

    let c = Case::new("bad-date");
    c.file("main.toml", MAIN_OK).file(
        "entities/a.toml",
        &ENTITY_OK.replace("2025-12-09", "\"2025-13-09\""),
    );
    assert_has(
        &c.refused(),
        &[&format!("{}:9:13", c.path("entities/a.toml")), "not a date"],
    );

    let c = Case::new("bad-max-age");
    c.file("main.toml", MAIN_OK).file(
        "entities/a.toml",
        &format!("{ENTITY_OK}max_age = \"soon\"\n"),
    );
    assert_has(
        &c.refused(),
        &[
            &format!("{}:19:11", c.path("entities/a.toml")),
            "not a duration",
        ],
    );

    let c = Case::new("empty-enforce");
    c.file("main.toml", "enforce = []\ninclude = [\"entities\"]\n")
        .file("entities/a.toml", ENTITY_OK);
    assert_has(
        &c.refused(),
        &[&format!("{}:1:1", c.path("main.toml")), "enforce"],
    );

    let c = Case::new("delisted-before-listed");
    c.file("main.toml", MAIN_OK).file(
        "entities/a.toml",
        &ENTITY_OK.replace(
            "listed_on = 2025-12-09\n",
            "listed_on = 2025-12-09\ndelisted_on = 2025-01-01\n",
        ),
    );
    assert_has(
        &c.refused(),
        &[
            &format!("{}:1:6", c.path("entities/a.toml")),
            "before it was listed",
        ],
    );

    let c = Case::new("asn-without-table");
    c.file("main.toml", MAIN_OK).file(
        "entities/a.toml",
        &ENTITY_OK
            .replace("prefixes = [\"192.0.2.0/24\"]", "asn = [64512]")
            .replace("kind = \"advisory\"", "kind = \"routing\""),
    );
    assert_has(
        &c.refused(),
        &[&format!("{}:13:8", c.path("entities/a.toml")), "asn_table"],
    );

    let c = Case::new("default-route");
    c.file("main.toml", MAIN_OK).file(
        "entities/a.toml",
        &ENTITY_OK.replace("192.0.2.0/24", "0.0.0.0/0"),
    );
    assert_has(
        &c.refused(),
        &[
            &format!("{}:13:13", c.path("entities/a.toml")),
            "default route",
            "guard_override",
        ],
    );

    let c = Case::new("bad-evidence-kind");
    c.file("main.toml", MAIN_OK).file(
        "entities/a.toml",
        &ENTITY_OK.replace("kind = \"advisory\"", "kind = \"rumour\""),
    );
    assert_has(
        &c.refused(),
        &[&format!("{}:15:8", c.path("entities/a.toml")), "rumour"],
    );

    let c = Case::new("bad-allow");
    c.file(
        "main.toml",
        &format!("{MAIN_OK}[[allow]]\nprefix = \"10.0.0.1/8\"\nreason = \"x\"\n"),
    )
    .file("entities/a.toml", ENTITY_OK);
    assert_has(
        &c.refused(),
        &[&format!("{}:4:10", c.path("main.toml")), "host bits"],
    );

    let c = Case::new("bad-metrics-listen");
    c.file(
        "main.toml",
        &format!("{MAIN_OK}[metrics]\nlisten = \"9610\"\n"),
    )
    .file("entities/a.toml", ENTITY_OK);
    assert_has(
        &c.refused(),
        &[&format!("{}:4:10", c.path("main.toml")), "socket address"],
    );

    let c = Case::new("egress-on-inside");
    c.file(
        "main.toml",
        &format!(
            "{MAIN_OK}[[interfaces]]\nname = \"eth0\"\nrole = \"outside\"\negress = true\n\
             [[interfaces]]\nname = \"eth1\"\nrole = \"inside\"\negress = true\n"
        ),
    )
    .file("entities/a.toml", ENTITY_OK);
    assert_has(
        &c.refused(),
        &[
            &format!("{}:7:1", c.path("main.toml")),
            "`eth1`",
            "only for `outside` interfaces",
        ],
    );

    let c = Case::new("unknown-metrics-field");
    c.file("main.toml", &format!("{MAIN_OK}[metrics]\nport = 9610\n"))
        .file("entities/a.toml", ENTITY_OK);
    assert_has(
        &c.refused(),
        &[&format!("{}:4:1", c.path("main.toml")), "port"],
    );
}

#[test]
fn a_good_corpus_file_passes() {
    let c = Case::new("good");
    c.file("main.toml", MAIN_OK)
        .file("entities/a.toml", &entity_ok_overridden());
    let out = support::command(&["check", "--config"])
        .arg(c.dir.join("main.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 enforced"));
    let _: &Path = c.dir.as_path();
}

#[test]
fn remote_sources_are_refused_with_locations() {
    let main = |url: &str| {
        format!(
            "enforce = [\"UK\"]\ninclude = [\"entities\"]\ncache_dir = \"cache\"\n\
             [[sources]]\nname = \"feed\"\nurl = \"{url}\"\nformat = \"list\"\n"
        )
    };
    let uses_feed = ENTITY_OK.replace("prefixes = [\"192.0.2.0/24\"]", "sources = [\"feed\"]");

    let c = Case::new("plain-http-source");
    c.file("main.toml", &main("http://feeds.example.org/x"))
        .file("entities/a.toml", &uses_feed);
    assert_has(
        &c.refused(),
        &[
            &format!("{}:6:7", c.path("main.toml")),
            "plain HTTP",
            "https://",
        ],
    );

    let c = Case::new("unknown-source");
    c.file("main.toml", &main("https://feeds.example.org/x"))
        .file(
            "entities/a.toml",
            &uses_feed.replace("[\"feed\"]", "[\"feeed\"]"),
        );
    assert_has(
        &c.refused(),
        &[
            &format!("{}:13:12", c.path("entities/a.toml")),
            "unknown source `feeed` (declared: feed)",
        ],
    );

    let c = Case::new("source-never-fetched");
    c.file("main.toml", &main("https://feeds.example.org/x"))
        .file("entities/a.toml", &uses_feed);
    assert_has(
        &c.refused(),
        &[
            &format!("{}:5:8", c.path("main.toml")),
            "source `feed` has no usable content",
            "on_source_failure = \"skip\"",
        ],
    );

    let c = Case::new("bad-cached-line");
    let body = "192.0.2.0/24\n198.51.100.1/24\n";
    let meta = format!(
        "{{\"url\": \"https://feeds.example.org/x\", \"sha256\": \"{}\", \
         \"fetched_at\": \"2026-11-01T00:00:00Z\", \"checked_at\": \"2026-11-01T00:00:00Z\", \
         \"entries\": 2}}",
        embargo::files::digest::sha256_hex(body.as_bytes())
    );
    c.file("main.toml", &main("https://feeds.example.org/x"))
        .file("entities/a.toml", &uses_feed)
        .file("cache/feed.body", body)
        .file("cache/feed.meta.json", &meta);
    assert_has(
        &c.refused(),
        &[
            &format!("{}:2:1", c.path("cache/feed.body")),
            "host bits",
            "last-known-good copy",
        ],
    );
}

/// Makes a FIFO (named pipe) at `path`.
fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Runs `embargo check --config <config>` with a deadline: a read that blocks fails the test
/// instead of hanging it. Returns the exit code and stderr.
fn check_within(config: &Path, deadline: std::time::Duration) -> (Option<i32>, String) {
    let mut child = support::command(&["check", "--config"])
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "embargo check --config {} still running after {deadline:?}",
                config.display()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn an_entity_file_that_cannot_be_read_is_refused_at_its_path() {
    // Each entry looks like an entity file; none may be skipped without a word, or the entity it
    // held would silently stop being enforced.
    for (name, make) in [
        (
            "dangling-symlink",
            (|p: &Path| std::os::unix::fs::symlink("gone.toml", p).unwrap()) as fn(&Path),
        ),
        ("symlink-loop", |p: &Path| {
            std::os::unix::fs::symlink(p.file_name().unwrap(), p).unwrap()
        }),
        ("fifo", |p: &Path| mkfifo(p)),
    ] {
        let c = Case::new(name);
        c.file("main.toml", MAIN_OK)
            .file("entities/a.toml", ENTITY_OK);
        let bad = c.dir.join("entities/b.toml");
        make(&bad);
        let (code, err) =
            check_within(&c.dir.join("main.toml"), std::time::Duration::from_secs(20));
        assert_eq!(code, Some(64), "{name}: {err}");
        assert_has(
            &err,
            &[
                &format!("{}: cannot read", bad.display()),
                "nothing from it was applied",
            ],
        );
        // A reload compiles through the same function: it is refused there too (and the
        // agent then keeps the policy it runs, see run::reload).
        let e = embargo::compile_file_resolved(&c.dir.join("main.toml"), embargo::today())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("{}: cannot read", bad.display())),
            "{name}: {e}"
        );
    }
}

#[test]
fn a_config_that_is_not_a_regular_file_is_refused_at_once() {
    // A device never ends: reading it would take all memory.
    let (code, err) = check_within(Path::new("/dev/zero"), std::time::Duration::from_secs(20));
    assert_eq!(code, Some(64), "{err}");
    assert_has(
        &err,
        &[
            "/dev/zero: cannot read",
            "character device, not a regular file",
        ],
    );

    // A FIFO without a writer: opening it would wait forever.
    let c = Case::new("fifo-main");
    mkfifo(&c.dir.join("main.toml"));
    let (code, err) = check_within(&c.dir.join("main.toml"), std::time::Duration::from_secs(20));
    assert_eq!(code, Some(64), "{err}");
    assert_has(
        &err,
        &[
            &format!("{}: cannot read", c.path("main.toml")),
            "FIFO",
            "not a regular file",
        ],
    );

    // An indicator file that is a FIFO: refused at the line that names it.
    let c = Case::new("fifo-indicators");
    c.file("main.toml", MAIN_OK).file(
        "entities/a.toml",
        &ENTITY_OK.replace("prefixes = [\"192.0.2.0/24\"]", "files = [\"iocs.txt\"]"),
    );
    mkfifo(&c.dir.join("entities/iocs.txt"));
    let (code, err) = check_within(&c.dir.join("main.toml"), std::time::Duration::from_secs(20));
    assert_eq!(code, Some(64), "{err}");
    assert_has(
        &err,
        &[
            &format!("{}:13:10", c.path("entities/a.toml")),
            "iocs.txt cannot be read",
            "FIFO",
        ],
    );
}

#[test]
fn guard_limits_are_range_checked_at_their_line() {
    for (guard, column, needle) in [
        ("broadest_v4 = 0", 15, "from 1 to 32, not 0"),
        ("broadest_v4 = 99", 15, "from 1 to 32, not 99"),
        ("broadest_v6 = 0", 15, "from 1 to 128, not 0"),
        ("broadest_v6 = 129", 15, "from 1 to 128, not 129"),
    ] {
        let c = Case::new("guard-range");
        c.file("main.toml", &format!("{MAIN_OK}[guard]\n{guard}\n"))
            .file("entities/a.toml", ENTITY_OK);
        assert_has(
            &c.refused(),
            &[&format!("{}:4:{column}", c.path("main.toml")), needle],
        );
    }
}

#[test]
fn a_default_route_needs_the_override_whatever_the_guard() {
    // The broadest guard there is still refuses /0 without guard_override.
    let c = Case::new("guard-default-route");
    c.file("main.toml", &format!("{MAIN_OK}[guard]\nbroadest_v4 = 1\n"))
        .file(
            "entities/a.toml",
            &ENTITY_OK.replace("192.0.2.0/24", "0.0.0.0/0"),
        );
    assert_has(
        &c.refused(),
        &[
            &format!("{}:13:13", c.path("entities/a.toml")),
            "default route",
            "guard_override",
        ],
    );
}

#[test]
fn files_that_start_with_a_byte_order_mark_are_read() {
    let c = Case::new("bom");
    c.file("main.toml", &format!("\u{feff}{MAIN_OK}"))
        .file(
            "entities/a.toml",
            &format!(
                "\u{feff}{}",
                entity_ok_overridden()
                    .replace("prefixes = [\"192.0.2.0/24\"]", "files = [\"iocs.txt\"]")
            ),
        )
        .file("entities/iocs.txt", "\u{feff}198.51.100.7\n192.0.2.0/24\n");
    let out = support::command(&["why", "198.51.100.7", "--config"])
        .arg(c.dir.join("main.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("BLOCKED"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
