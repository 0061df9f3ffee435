//! The `embargo` binary's behaviour on bad input and missing prerequisites: what a person sees
//! before anything touches the kernel. Needs no root (one check drops root if it has it).

mod support;

use std::process::{Command, Output};

use support::{command, embargo, stderr};

/// `text` as file `name` in a fresh folder (removed when the returned guard drops).
fn temp_config(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn bad_config_exits_64_naming_file_line_and_column() {
    let (_dir, path) = temp_config(
        "bad.toml",
        "enforce = [\"UK\"]\n[[allow]]\nprefix = \"192.0.2.300\"\nreason = \"x\"\n",
    );
    let out = embargo(&["run", "--config", path.to_str().unwrap(), "-i", "lo:inside"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:3:10", path.display())), "{err}");
    assert!(err.contains("nothing from it was applied"), "{err}");
}

#[test]
fn check_passes_on_the_default() {
    let out = embargo(&["check", "--config", "config/default.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("config/default.toml: OK"), "{text}");
    assert!(text.contains("2 enforced"), "{text}");
    assert!(text.contains("CYB0114"), "{text}");
}

/// Ageing evidence: `check` names the entity with no current prefixes (not "enforced") and the
/// group expiring within `--expiring` (14 days by default), `--json` carries both as findings,
/// and `--strict` exits 4 for either, 0 when neither is there.
#[test]
fn check_warns_of_ageing_evidence_and_strict_fails_on_it() {
    let dir = std::env::temp_dir().join(format!("embargo-cli-ageing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let today = chrono::Utc::now().date_naive();
    let soon = today + chrono::Days::new(5);
    let later = today + chrono::Days::new(40);
    let entity = |id: &str, prefix: &str, evidence: &str| {
        format!(
            "[[entities]]\nid = \"{id}\"\nname = \"{id}\"\naction = \"drop\"\n\
             designations = [{{ authority = \"UK\", regime = \"r\", reference = \"{id}\", listed_on = 2025-01-01, source = \"s\" }}]\n\
             [[entities.networks]]\nprefixes = [\"{prefix}\"]\nguard_override = \"documentation range in a test\"\n\
             evidence = {{ kind = \"advisory\", source = \"adv-{id}\", retrieved = 2025-01-01, confidence = \"high\"{evidence} }}\n"
        )
    };
    let path = dir.join("main.toml");
    let write = |text: String| std::fs::write(&path, text).unwrap();
    write(format!(
        "enforce = [\"UK\"]\n{}{}{}",
        entity("soon", "192.0.2.0/24", &format!(", expires = {soon}")),
        entity("gone", "198.51.100.0/24", ", expires = 2025-06-01"),
        entity("later", "203.0.113.0/24", &format!(", expires = {later}")),
    ));
    let p = path.to_str().unwrap();
    let out = embargo(&["check", "--config", p]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(
            "entities: 2 enforced, 1 designated but not enforced (no current prefixes), 0 left out"
        ),
        "{text}"
    );
    assert!(text.contains("NO CURRENT PREFIXES"), "{text}");
    assert!(
        text.contains("entity `gone`: designated and in force, but no current prefixes"),
        "{text}"
    );
    assert!(
        text.contains("warning: evidence expiring soon (1):"),
        "{text}"
    );
    assert!(
        text.contains(&format!("entity `soon` group 1 (advisory evidence from adv-soon): stops counting {soon}T00:00:00Z")),
        "{text}"
    );
    assert!(!text.contains("entity `later` group 1 (advisory"), "{text}");
    // A longer horizon reaches the later group too.
    let out = embargo(&["check", "--config", p, "--expiring", "60d", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["expiring_horizon_seconds"], 60 * 86_400);
    let kinds: Vec<(String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "no_current_prefixes" || f["kind"] == "expiring_evidence")
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["entity"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let pairs: Vec<(&str, &str)> = kinds
        .iter()
        .map(|(k, e)| (k.as_str(), e.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("no_current_prefixes", "gone"),
            ("expiring_evidence", "soon"),
            ("expiring_evidence", "later")
        ]
    );
    assert_eq!(
        v["report"]["expiring_evidence"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        v["report"]["no_current_prefixes"].as_array().unwrap().len(),
        1
    );
    // --strict: exit 4 while either is there, saying why; 0 once neither is.
    let out = embargo(&["check", "--config", p, "--strict"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--strict: 1 entities without current prefixes, 1 groups whose evidence stops counting within 14days"),
        "{}",
        stderr(&out)
    );
    write(format!(
        "enforce = [\"UK\"]\n{}",
        entity("later", "203.0.113.0/24", &format!(", expires = {later}"))
    ));
    let out = embargo(&["check", "--config", p, "--strict"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = embargo(&["check", "--config", p, "--strict", "--expiring", "41d"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let out = embargo(&["check", "--config", p, "--expiring", "soon"]);
    assert!(stderr(&out).contains("not a duration"), "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `check --json` keeps its fields and carries the report as data too: one finding per line
/// of the report, with its kind, entity, network group and message.
#[test]
fn check_json_carries_the_findings_next_to_the_report() {
    let out = embargo(&["check", "--config", "config/examples/full.toml", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "today",
        "enforce",
        "digest",
        "entities",
        "prefixes_v4",
        "prefixes_v6",
        "allow",
        "report",
    ] {
        assert!(v.get(field).is_some(), "{field}: {v}");
    }
    let findings = v["findings"].as_array().expect("a list of findings");
    assert!(!findings.is_empty(), "{v}");
    for (kind, field) in [
        ("nested", "nested"),
        ("guard_overridden", "guard_overridden"),
    ] {
        let messages: Vec<&serde_json::Value> = findings
            .iter()
            .filter(|f| f["kind"] == kind)
            .map(|f| &f["message"])
            .collect();
        let legacy: Vec<&serde_json::Value> =
            v["report"][field].as_array().unwrap().iter().collect();
        assert!(!legacy.is_empty(), "{kind}: {v}");
        assert_eq!(messages, legacy, "{kind}");
    }
    for f in findings {
        assert!(f["entity"].is_string(), "{f}");
        assert!(
            f["group"].is_null() || f["group"].as_u64().is_some_and(|g| g >= 1),
            "{f}"
        );
    }
    assert!(
        findings
            .iter()
            .any(|f| f["kind"] == "nested" && f["group"].as_u64().is_some()),
        "{v}"
    );
}

#[test]
fn why_names_the_entity_and_its_references_for_each_seed_entity() {
    // One indicator of each entity, from ../shared/data/seed-indicators.
    for (addr, id, reference) in [
        ("114.255.70.20", "integrity-tech", "jy2769"),
        ("74.120.172.10", "i-soon", "CYB0114"),
    ] {
        let out = embargo(&["why", addr, "--config", "config/default.toml", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["verdict"], "listed", "{v}");
        assert_eq!(v["action"], "drop", "{v}");
        assert_eq!(v["entity"]["id"], id, "{v}");
        assert!(
            v["designations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["reference"].as_str().unwrap().contains(reference)),
            "{v}"
        );
        assert_eq!(v["designations"][0]["authority"], "UK", "{v}");
        assert_eq!(v["evidence"]["kind"], "advisory", "{v}");
        let human = embargo(&["why", addr, "--config", "config/default.toml"]);
        let text = String::from_utf8_lossy(&human.stdout);
        assert!(
            text.contains("BLOCKED") && text.contains(reference),
            "{text}"
        );
    }
    let out = embargo(&[
        "why",
        "192.0.2.10",
        "--config",
        "config/default.toml",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "not_listed", "{v}");
}

#[test]
fn plan_without_agent_compares_against_nothing() {
    let out = embargo(&[
        "plan",
        "--config",
        "config/default.toml",
        "--control-socket",
        "/nonexistent/e.sock",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("comparing against an empty policy"),
        "{}",
        stderr(&out)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["added"].as_array().unwrap().len(), 132, "{v}");
    assert_eq!(v["entities_added"].as_array().unwrap().len(), 2, "{v}");
}

#[test]
fn syntax_error_exits_64() {
    let (_dir, path) = temp_config(
        "syntax.toml",
        "enforce = [\"UK\"]\n[[entities]\nid = \"a\"\n",
    );
    let out = embargo(&["run", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{}:2:", path.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_config_file_is_a_config_error() {
    let out = embargo(&["run", "--config", "/nonexistent/embargo.toml"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr(&out).contains("/nonexistent/embargo.toml: cannot read"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unknown_interface_is_named_before_anything_loads() {
    let out = embargo(&[
        "run",
        "--config",
        "config/default.toml",
        "-i",
        "nosuch0:inside",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("no interface named `nosuch0`"), "{err}");
    assert!(err.contains("ip link"), "{err}");
}

#[test]
fn interface_flag_needs_a_role() {
    let out = embargo(&["run", "--config", "config/default.toml", "-i", "lo"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("lo:inside"), "{}", stderr(&out));
}

#[test]
fn no_interfaces_is_explained() {
    let out = embargo(&["run", "--config", "config/default.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--interface NAME:ROLE"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn status_without_agent_says_what_to_check() {
    let out = embargo(&["status", "--control-socket", "/nonexistent/embargo.sock"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is `embargo run` running"),
        "{}",
        stderr(&out)
    );
}

/// Runs `embargo run --config <"enforce = [UK]"> -i lo:inside --control-socket <tmp> ARGS`
/// without privileges: as root, it drops to `nobody` with no capabilities through setpriv
/// (util-linux); as a normal user it runs as is. So nothing can be loaded or attached whatever
/// happens. The binary and config are copied to a world-readable folder first, since the
/// checkout may sit in a private one.
fn run_unprivileged(name: &str, args: &[&str]) -> Output {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::Builder::new()
        .prefix(&format!("embargo-{name}-"))
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.join("embargo");
    // Copied by `cp`, not in this process: a test thread that forks while this process holds
    // the copy open for writing would leave the fd open in its child, and exec'ing the copy
    // would fail with ETXTBSY (seen as a flaky exit status here).
    let copied = Command::new("cp")
        .arg(env!("CARGO_BIN_EXE_embargo"))
        .arg(&bin)
        .status()
        .unwrap();
    assert!(copied.success());
    let config = dir.join("default.toml");
    // Self-contained (the default's entity files are elsewhere).
    std::fs::write(&config, "enforce = [\"UK\"]\n").unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    let out = cmd
        .arg("run")
        .arg("--config")
        .arg(&config)
        .args(["-i", "lo:inside", "--control-socket"])
        .arg(dir.join("control.sock"))
        .args(args)
        .output()
        .expect("run embargo without privileges");
    drop(tmp);
    out
}

/// Without CAP_BPF the agent says which capabilities it needs.
#[test]
fn missing_privileges_name_the_capabilities() {
    // Port 0: a free one, so an agent elsewhere on 9610 cannot change the outcome.
    let out = run_unprivileged("priv", &["--metrics-listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("CAP_BPF"), "{}", stderr(&out));
}

/// A metrics address that cannot be bound stops the agent before it loads anything, saying
/// which address and how to choose another.
#[test]
fn a_taken_metrics_address_is_a_startup_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run_unprivileged("metrics-bind", &["--metrics-listen", &addr]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot listen for metrics on {addr}")),
        "{err}"
    );
    assert!(err.contains("--metrics-listen"), "{err}");
    // Refused before loading: the privilege error never came.
    assert!(!err.contains("CAP_BPF"), "{err}");
}

#[test]
fn metrics_listen_flag_must_be_an_address() {
    let out = embargo(&[
        "run",
        "--config",
        "config/default.toml",
        "-i",
        "lo:inside",
        "--metrics-listen",
        "localhost",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--metrics-listen"),
        "{}",
        stderr(&out)
    );
}

/// Runs `embargo args` with standard output a pipe whose reader is gone before anything is
/// written (`embargo ... | head -c0`); the exit status and stderr.
fn with_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    use std::process::Stdio;
    let mut child = command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run embargo");
    // The read end closes before the child has compiled anything, so its first write fails.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (out.status.code(), stderr(&out))
}

/// A closed pipe (`| head -1`) ends the printing quietly: no panic (exit 101), and the command
/// keeps its documented exit code.
#[test]
fn a_closed_stdout_is_a_quiet_exit_with_the_documented_code() {
    for args in [
        &["check", "--config", "config/default.toml", "--json"][..],
        &["check", "--config", "config/default.toml"],
        &["why", "74.120.172.10", "--config", "config/default.toml"],
        &[
            "why",
            "74.120.172.10",
            "--config",
            "config/default.toml",
            "--json",
        ],
        &[
            "plan",
            "--config",
            "config/default.toml",
            "--control-socket",
            "/nonexistent/x.sock",
        ],
    ] {
        let (code, err) = with_closed_stdout(args);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(code, Some(0), "{args:?}: {err}");
    }
}

/// `embargo status --verify | head -1` against an agent that found drift: exit 3 as
/// documented, not a panic. The agent is a stand-in answering on a socket of the test's own.
#[test]
fn status_verify_into_a_closed_pipe_keeps_exit_3() {
    use std::io::{Read as _, Write as _};
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let status = embargo::observe::status::Status {
        version: String::new(),
        pid: 1,
        config: "t.toml".into(),
        interfaces: Vec::new(),
        entities: Vec::new(),
        outcomes: Vec::new(),
        packets_seen: 0,
        prefixes_v4: 0,
        prefixes_v6: 0,
        map_bytes: 0,
        digest: "0".repeat(64),
        reloads: Default::default(),
        drift_entries: 2,
        sources: Vec::new(),
        delisted_by_list: Vec::new(),
        start: None,
        next_change: None,
    };
    let drift = embargo::dataplane::Drift {
        v4_entries: 1,
        v6_entries: 0,
        policies: 1,
        roles: 0,
        groups: 0,
    };
    let agent = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1];
            while s.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
                req.push(b[0]);
            }
            let answer = match req.as_slice() {
                b"verify" => serde_json::to_string(&drift).unwrap(),
                b"status" => serde_json::to_string(&status).unwrap(),
                other => panic!("unexpected request {other:?}"),
            };
            s.write_all(answer.as_bytes()).unwrap();
        }
    });
    let (code, err) = with_closed_stdout(&[
        "status",
        "--verify",
        "--control-socket",
        socket.to_str().unwrap(),
    ]);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(code, Some(3), "{err}");
    // Both requests were served (a CLI that died after the first leaves the stand-in waiting:
    // it is not joined then, so a failure cannot hang the test).
    assert!(
        agent.is_finished() || {
            std::thread::sleep(std::time::Duration::from_millis(500));
            agent.is_finished()
        }
    );
    agent.join().unwrap();
}

/// A configuration whose source is never reachable and skipped: `check` logs warnings.
const SKIPPED_SOURCE: &str = r#"enforce = ["UK"]
on_source_failure = "skip"
cache_dir = "/nonexistent/embargo-cache"
[[sources]]
name = "never"
url = "https://192.0.2.1/feed"
format = "list"
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
prefixes = ["192.0.2.0/24"]
sources = ["never"]
guard_override = "documentation range in a test"
[entities.networks.evidence]
kind = "advisory"
source = "the feed"
retrieved = 2026-01-01
confidence = "medium"
"#;

/// A command that logs (a skipped source) with both standard output and standard error a
/// closed pipe (`embargo check 2>&1 | head -c0`): the log lines are dropped, no panic.
#[test]
fn logging_into_a_closed_stderr_is_not_a_panic() {
    use std::process::Stdio;
    let (_dir, path) = temp_config("skipped-source.toml", SKIPPED_SOURCE);
    let mut child = command(&["check", "--config", path.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// `--version` names the build: version, git commit (or `unknown`) and build date.
#[test]
fn version_names_the_commit_and_build_date() {
    let out = embargo(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let text = text.trim();
    let rest = text
        .strip_prefix(concat!("embargo ", env!("CARGO_PKG_VERSION"), " (commit "))
        .unwrap_or_else(|| panic!("{text}"));
    let (commit, date) = rest
        .strip_suffix(')')
        .and_then(|r| r.split_once(", built "))
        .unwrap_or_else(|| panic!("{text}"));
    let hex = commit.strip_suffix("-dirty").unwrap_or(commit);
    assert!(hex == "unknown" || hex.len() == 12, "{text}");
    assert!(
        chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok(),
        "{text}"
    );
}

/// Runs `embargo` with `env` set (and EMBARGO_* / RUST_LOG of the test's own environment
/// removed).
fn embargo_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command(args);
    for var in [
        "RUST_LOG",
        "EMBARGO_CONFIG",
        "EMBARGO_CONTROL_SOCKET",
        "EMBARGO_LOG_FORMAT",
        "EMBARGO_LOG_LEVEL",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied()).output().expect("run embargo")
}

/// Regression (issue 16): log lines into a pipe, a file or the journal carried ANSI colour
/// escapes. They are plain unless stderr is a terminal; `--log-format json` (or
/// EMBARGO_LOG_FORMAT) writes one JSON object per line.
#[test]
fn logs_are_plain_text_off_a_terminal_or_json_lines() {
    let (_dir, path) = temp_config("log-format.toml", SKIPPED_SOURCE);
    let config = path.to_str().unwrap();
    let out = embargo_env(&["check", "--config", config], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("WARN"), "{err}");
    assert!(!err.contains('\x1b'), "escape codes in piped logs: {err:?}");

    for (args, env) in [
        (
            vec!["--log-format", "json", "check", "--config", config],
            vec![],
        ),
        (
            vec!["check", "--config", config],
            vec![("EMBARGO_LOG_FORMAT", "json")],
        ),
    ] {
        let out = embargo_env(&args, &env);
        assert!(out.status.success(), "{}", stderr(&out));
        let err = stderr(&out);
        let lines: Vec<serde_json::Value> = err
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert!(!lines.is_empty(), "no JSON log lines: {err}");
        assert!(
            lines.iter().any(|l| l["level"] == "WARN"
                && l["fields"]["message"].is_string()
                && l["target"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("embargo"))),
            "{err}"
        );
        // Every log line is JSON (the command's own last words are plain text).
        assert!(!err.contains(" WARN "), "{err}");
    }
}

/// `--log-level` filters like RUST_LOG and wins over it; a bad filter is refused (64).
#[test]
fn log_level_filters_and_a_bad_filter_is_refused() {
    let (_dir, path) = temp_config("log-level.toml", SKIPPED_SOURCE);
    let config = path.to_str().unwrap();
    let out = embargo_env(
        &["--log-level", "error", "check", "--config", config],
        &[("RUST_LOG", "debug")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("WARN"), "{}", stderr(&out));
    let out = embargo_env(
        &["check", "--config", config],
        &[("EMBARGO_LOG_LEVEL", "error")],
    );
    assert!(!stderr(&out).contains("WARN"), "{}", stderr(&out));
    let out = embargo_env(
        &["--log-level", "loud===", "check", "--config", config],
        &[],
    );
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--log-level `loud===`"),
        "{}",
        stderr(&out)
    );
}

/// `embargo completion SHELL` prints the shell's script; `embargo man` the embargo(8) page,
/// every visible subcommand a section of it.
#[test]
fn completions_and_the_manual_page() {
    for (shell, marker) in [
        ("bash", "_embargo()"),
        ("zsh", "#compdef embargo"),
        ("fish", "complete -c embargo"),
    ] {
        let out = embargo_env(&["completion", shell], &[]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(marker), "{shell}: {text}");
        assert!(
            text.contains("log-format") && text.contains("export"),
            "{shell}"
        );
    }
    let out = embargo_env(&["man"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.starts_with(".ie") || page.starts_with(".TH"), "{page}");
    assert!(page.contains(".TH embargo 8"), "{page}");
    for sub in [
        "RUN",
        "CHECK",
        "WHY",
        "EXPORT",
        "IMPORT",
        "STATUS",
        "COMPLETION",
    ] {
        assert!(page.contains(&format!(".SH \"EMBARGO {sub}\"")), "{sub}");
    }
    // No references to per-subcommand pages that are not shipped.
    assert!(!page.contains("embargo\\-why(8)"), "{page}");
}

/// EMBARGO_CONFIG and EMBARGO_CONTROL_SOCKET stand for --config and --control-socket, and
/// `run` takes the same default configuration path as every other command.
#[test]
fn the_config_and_control_socket_come_from_the_environment() {
    let out = embargo_env(&["check"], &[("EMBARGO_CONFIG", "config/default.toml")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("config/default.toml: OK"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (_bad_dir, bad) = temp_config("env-bad.toml", "enforce = [\"UK\"\n");
    let out = embargo_env(
        &["run", "-i", "lo:inside"],
        &[("EMBARGO_CONFIG", bad.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(bad.to_str().unwrap()),
        "{}",
        stderr(&out)
    );
    // Without either, `run` reads the default path (shown by its help; running it here
    // could find a real configuration).
    let out = embargo_env(&["run", "--help"], &[]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("[default: /etc/embargo/embargo.toml]") && help.contains("EMBARGO_CONFIG"),
        "{help}"
    );
    let out = embargo_env(
        &["status"],
        &[("EMBARGO_CONTROL_SOCKET", "/nonexistent/embargo-env.sock")],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/nonexistent/embargo-env.sock"),
        "{}",
        stderr(&out)
    );
}

/// A stand-in agent on a control socket in `dir`: answers `n` status requests, the i-th with
/// entity `acme` at 100 + 50 i packets (outbound, dropped), 1500 bytes each.
fn fake_agent(dir: &std::path::Path, n: u64) -> (std::path::PathBuf, std::thread::JoinHandle<()>) {
    use std::io::{BufRead as _, Write as _};
    let path = dir.join("control.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let agent = std::thread::spawn(move || {
        for i in 0..n {
            let (mut s, _) = listener.accept().unwrap();
            let mut line = String::new();
            std::io::BufReader::new(&s).read_line(&mut line).unwrap();
            assert!(line.contains("status"), "{line}");
            let packets = 100 + 50 * i;
            let answer = format!(
                r#"{{"pid":4242,"config":"c.toml","interfaces":[],"entities":[{{"id":"acme","name":"Acme","action":"drop","direction":"both","prefixes_v4":1,"prefixes_v6":0,"counters":[{{"direction":"outbound","verdict":"dropped","packets":{packets},"bytes":{}}}]}}],"outcomes":[],"packets_seen":0,"prefixes_v4":1,"prefixes_v6":0,"map_bytes":0,"digest":"0123456789abcdef0123","reloads":{{"succeeded":1,"failed":0,"last_success_unix":0,"last_kind":"initial","last_error":null,"generations":0}},"drift_entries":0}}"#,
                packets * 1500
            );
            s.write_all(answer.as_bytes()).unwrap();
        }
    });
    (path, agent)
}

/// `status --watch` samples the agent every --interval and shows per-entity rates: JSON lines
/// with --json, plain frames (no escape codes) when standard output is not a terminal.
#[test]
fn status_watch_shows_per_entity_rates() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, agent) = fake_agent(dir.path(), 3);
    let socket = socket.to_str().unwrap();
    let out = embargo(&[
        "status",
        "--watch",
        "--json",
        "--interval",
        "200ms",
        "--count",
        "3",
        "--control-socket",
        socket,
    ]);
    agent.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let samples: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(samples.len(), 3, "{samples:?}");
    let acme = |s: &serde_json::Value| s["rates"][0].clone();
    assert_eq!(acme(&samples[0])["packets"], 100);
    assert_eq!(acme(&samples[0])["packets_per_s"], 0.0);
    for (i, s) in samples.iter().enumerate().skip(1) {
        let r = acme(s);
        assert_eq!(r["entity"], "acme");
        assert_eq!(r["packets"], 100 + 50 * i as u64);
        // 50 packets over an interval of at least 200 ms: above 0, at most 250 per second.
        let pps = r["packets_per_s"].as_f64().unwrap();
        assert!(pps > 0.0 && pps <= 250.0, "{pps}");
        let bps = r["bytes_per_s"].as_f64().unwrap();
        assert!(
            (bps - pps * 1500.0).abs() < 1e-6 * bps.max(1.0),
            "{bps} vs {pps}"
        );
        assert!(s["interval_s"].as_f64().unwrap() >= 0.2, "{s}");
    }

    let dir = tempfile::tempdir().unwrap();
    let (socket, agent) = fake_agent(dir.path(), 2);
    let out = embargo(&[
        "status",
        "--watch",
        "--interval",
        "100ms",
        "--count",
        "2",
        "--control-socket",
        socket.to_str().unwrap(),
    ]);
    agent.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("PACKETS/S").count(), 2, "{text}");
    assert!(
        text.contains("embargo agent pid 4242 · policy 0123456789abcdef"),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "{text:?}");
    // The agent gone: exit 1 with the reason.
    let out = embargo(&[
        "status",
        "--watch",
        "--count",
        "2",
        "--control-socket",
        dir.path().join("gone.sock").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("gone.sock"), "{}", stderr(&out));
}

/// Runs `embargo ARGS` with `input` on standard input.
fn embargo_stdin(args: &[&str], input: &str) -> Output {
    use std::{io::Write as _, process::Stdio};
    let mut child = command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// `why` takes several addresses and CIDRs, or `-` for standard input, and answers each from
/// one compile; with --json, one object per line.
#[test]
fn why_answers_many_questions_and_cidrs_from_one_compile() {
    let cfg = ["--config", "config/default.toml"];
    // Two addresses and a CIDR: three answers, in order.
    let mut args = vec!["why", "114.255.70.20", "192.0.2.1", "114.255.70.0/24"];
    args.extend(cfg);
    let out = embargo(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.find("114.255.70.20: BLOCKED").expect(&text);
    let second = text.find("192.0.2.1: not listed").expect(&text);
    let third = text.find("114.255.70.0/24: ").expect(&text);
    assert!(first < second && second < third, "{text}");
    assert!(
        text[third..].contains("BLOCKED") && text[third..].contains("overlap"),
        "{text}"
    );

    // From standard input, with a comment and a blank line: JSON lines, one per address.
    let n = 20_000u32;
    let mut input = String::from("# addresses to check\n\n");
    for i in 0..n {
        input.push_str(&format!("114.255.{}.{}\n", (i >> 8) & 0xff, i & 0xff));
    }
    input.push_str("2001:db8::1\n10.0.0.0/8\n");
    let mut args = vec!["why", "-", "--json"];
    args.extend(cfg);
    let started = std::time::Instant::now();
    let out = embargo_stdin(&args, &input);
    let took = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), n as usize + 2);
    assert_eq!(lines[0]["address"], "114.255.0.0");
    assert_eq!(lines[n as usize]["address"], "2001:db8::1");
    assert_eq!(lines[n as usize + 1]["query"], "10.0.0.0/8");
    // Every address answers as a single `why` does.
    let single = |a: &str| {
        let mut args = vec!["why", a, "--json"];
        args.extend(cfg);
        let out = embargo(&args);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_eq!(lines[70 * 256 + 20], single("114.255.70.20"));
    assert_eq!(lines[5], single("114.255.0.5"));
    // One compile, not one per address: 20k answers in seconds even unoptimized.
    assert!(took < std::time::Duration::from_secs(60), "{took:?}");

    // A line that is neither is refused with its line, before any answer.
    let mut args = vec!["why", "-"];
    args.extend(cfg);
    let out = embargo_stdin(&args, "114.255.70.20\n# c\nnot-an-address\n");
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("standard input, line 3: `not-an-address` is not an IP address or CIDR"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
}

/// The one JSON line a command under `--json` writes on standard error when it fails.
fn json_error(out: &Output) -> serde_json::Value {
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line on stderr: {err}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).expect("stderr is JSON");
    assert_eq!(
        v["exit_code"].as_i64(),
        out.status.code().map(i64::from),
        "{v}"
    );
    v
}

/// Under `--json`, a refused configuration and an agent that is not there are one JSON object
/// on standard error with the message of the text line and the exit status (64, 1).
#[test]
fn errors_under_json_are_one_json_object_with_the_exit_code() {
    let (_dir, path) = temp_config(
        "bad.toml",
        "enforce = [\"UK\"]\n[[allow]]\nprefix = \"192.0.2.300\"\nreason = \"x\"\n",
    );
    let text = embargo(&["check", "--config", path.to_str().unwrap()]);
    let out = embargo(&["check", "--json", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let v = json_error(&out);
    let message = v["error"].as_str().unwrap();
    assert!(message.contains(&format!("{}:3:10", path.display())), "{v}");
    // The message is the text line's, without its `error: `.
    assert!(
        stderr(&text).lines().next().unwrap() == format!("error: {message}"),
        "{}",
        stderr(&text)
    );
    assert_eq!(v["errors"].as_array().unwrap().len(), 1, "{v}");
    assert!(
        v["notes"][0]
            .as_str()
            .unwrap()
            .contains("nothing from it was applied"),
        "{v}"
    );

    for args in [
        &["status", "--json"][..],
        &["status", "--json", "--verify"],
        &["status", "--json", "--watch", "--count", "1"],
        &["events", "--follow", "--json"],
    ] {
        let mut args = args.to_vec();
        args.extend(["--control-socket", "/nonexistent/embargo.sock"]);
        let out = embargo(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let v = json_error(&out);
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("is `embargo run` running"),
            "{v}"
        );
    }
    // `why`: a query that is not an address, refused before anything is compiled.
    let out = embargo(&["why", "--json", "nope", "--config", "config/default.toml"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    let v = json_error(&out);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("give addresses, CIDRs or -"),
        "{v}"
    );
    // Without --json the text line is as it was.
    let out = embargo(&["status", "--control-socket", "/nonexistent/embargo.sock"]);
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
}

/// `fetch --json`: one document on stdout naming each source's outcome; a source that cannot
/// be reached is `failed` with its error (exit 1, and the JSON error object on stderr).
#[test]
fn fetch_json_reports_each_source() {
    let dir = tempfile::tempdir().unwrap();
    let config = SKIPPED_SOURCE
        .replace("/nonexistent/embargo-cache", dir.path().to_str().unwrap())
        .replace(
            "url = \"https://192.0.2.1/feed\"",
            "url = \"https://user:secret@127.0.0.1:1/feed\"\ntimeout = \"5s\"",
        );
    let path = dir.path().join("main.toml");
    std::fs::write(&path, config).unwrap();
    let out = embargo(&["fetch", "--json", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(v["failed"], 1, "{v}");
    let s = &v["sources"][0];
    assert_eq!(s["name"], "never", "{v}");
    assert_eq!(s["outcome"], "failed", "{v}");
    assert_eq!(s["url"], "https://user:***@127.0.0.1:1/feed", "{v}");
    assert!(s["entries"].is_null() && s["sha256"].is_null(), "{v}");
    assert!(!s["error"].as_str().unwrap().is_empty(), "{v}");
    assert!(!out.stdout.windows(6).any(|w| w == b"secret"), "{v}");
    let e = json_error(&out);
    assert!(
        e["error"].as_str().unwrap().contains("source `never`"),
        "{e}"
    );
    assert!(!e.to_string().contains("secret"), "{e}");
}

/// `detach --json` on a pin folder with nothing in it: what was removed (nothing), no errors.
#[test]
fn detach_json_says_what_was_removed() {
    let dir = tempfile::tempdir().unwrap();
    let pins = dir.path().join("pins");
    std::fs::create_dir(&pins).unwrap();
    let state = dir.path().join("state");
    let out = embargo(&[
        "detach",
        "--json",
        "--pin-dir",
        pins.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--control-socket",
        dir.path().join("none.sock").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(v["pin_dir"], pins.to_str().unwrap(), "{v}");
    for key in ["filters", "links", "maps", "errors"] {
        assert_eq!(v[key], serde_json::json!([]), "{key}: {v}");
    }
    assert!(v["state_file"].is_null(), "{v}");

    // Without --json, the text as it was (the empty pin folder was removed above).
    std::fs::create_dir(&pins).unwrap();
    let text = embargo(&[
        "detach",
        "--pin-dir",
        pins.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--control-socket",
        dir.path().join("none.sock").to_str().unwrap(),
    ]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("nothing pinned in"),
        "{}",
        stderr(&text)
    );
}
