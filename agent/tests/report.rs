//! `embargo report` as a person runs it, without root or an agent: exit statuses and messages
//! for a period it cannot read or that is empty (64), a broken audit chain (1, the line named,
//! nothing on standard output), and a report whose counters are unavailable and whose events
//! file has a line that is not an event (0, both said in the report, a warning on stderr).

mod support;

use std::{path::Path, process::Output};

use embargo::observe::audit::{AuditLog, Changes, PolicyApplied, Source, SourceKind};

const MAIN: &str = r#"enforce = ["UK"]

[[entities]]
id = "acme"
name = "Acme Ltd"
action = "drop"

[[entities.designations]]
authority = "UK"
regime = "Cyber"
reference = "CYB0099"
listed_on = 2025-12-09
source = "https://example.org/acme"

[[entities.networks]]
prefixes = ["203.0.113.0/24"]
guard_override = "documentation range in a test"
[entities.networks.evidence]
kind = "advisory"
source = "https://example.org/advisory"
retrieved = 2026-01-01
confidence = "high"
"#;

/// A configuration, an audit log of two records and an events file with two events and a
/// malformed line, in `dir`.
fn files(dir: &Path) {
    std::fs::write(dir.join("embargo.toml"), MAIN).unwrap();
    let mut log = AuditLog::open(&dir.join("audit.jsonl")).unwrap();
    for (i, day) in [(1u64, 1), (2, 10)] {
        log.append(PolicyApplied {
            time: chrono::DateTime::parse_from_rfc3339(&format!("2026-11-{day:02}T09:00:00Z"))
                .unwrap()
                .to_utc(),
            digest: format!("{i:064x}"),
            config: dir.join("embargo.toml").display().to_string().into(),
            sources: vec![Source {
                kind: SourceKind::Config,
                path: dir.join("embargo.toml").display().to_string(),
                sha256: "aa".repeat(32),
            }],
            asn_table: None,
            country_table: None,
            changes: Changes::default(),
            designations: Vec::new(),
        })
        .unwrap();
    }
    let event = |time: &str| {
        format!(
            r#"{{"time":"{time}","interface":"eth1","direction":"outbound","verdict":"dropped","family":"ipv4","source":"10.0.0.5","destination":"203.0.113.9","protocol":"udp","source_port":1,"destination_port":53,"length":106,"entity":"acme","designations":[],"policy_digest":"x"}}"#
        )
    };
    let lines = [
        event("2026-11-02T10:00:00Z"),
        "garbage".to_owned(),
        event("2026-11-12T10:00:00Z"),
    ];
    std::fs::write(dir.join("events.jsonl"), lines.join("\n") + "\n").unwrap();
}

fn report(dir: &Path, args: &[&str]) -> Output {
    support::command(&["report"])
        .args(args)
        .arg("--config")
        .arg(dir.join("embargo.toml"))
        .arg("--audit-log")
        .arg(dir.join("audit.jsonl"))
        .arg("--events-log")
        .arg(dir.join("events.jsonl"))
        .arg("--control-socket")
        .arg(dir.join("no-agent.sock"))
        .output()
        .unwrap()
}

#[test]
fn a_report_without_an_agent_says_so_and_lists_the_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    files(dir.path());
    let out = report(dir.path(), &["--from", "2026-11-01", "--to", "2026-11-30"]);
    let (stdout, stderr) = (support::stdout(&out), support::stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("Counters: **unavailable**: cannot reach the agent"),
        "{stdout}"
    );
    assert!(
        stdout.contains("**1 events lines are not events**"),
        "{stdout}"
    );
    assert!(stdout.contains("events.jsonl` line 2:"), "{stdout}");
    assert!(
        stdout.contains("| eth1 | outbound | dropped | 2 | 212 |"),
        "{stdout}"
    );
    assert!(
        stderr.contains("1 lines of the events files are not events"),
        "{stderr}"
    );
    // JSON: one policy in force at the start (none), both applied in the period.
    let out = report(
        dir.path(),
        &[
            "--from",
            "2026-11-05",
            "--to",
            "2026-11-30",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", support::stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&support::stdout(&out)).unwrap();
    let seqs: Vec<u64> = v["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2]);
    assert_eq!(v["policies"][0]["before_period"], true);
    assert_eq!(v["entities"][0]["traffic"][0]["events"], 1);
}

#[test]
fn bad_periods_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    files(dir.path());
    for (args, want) in [
        (
            &["--from", "last week"][..],
            "`last week` is neither a date",
        ),
        (
            &["--from", "2026-11-10", "--to", "2026-11-09"][..],
            "the period is empty",
        ),
    ] {
        let out = report(dir.path(), args);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(
            support::stderr(&out).contains(want),
            "{}",
            support::stderr(&out)
        );
        assert!(out.stdout.is_empty());
    }
    // A format it does not write: the argument parser's 2.
    let out = report(dir.path(), &["--from", "2026-11-01", "--format", "pdf"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_broken_chain_exits_1_and_prints_no_report() {
    let dir = tempfile::tempdir().unwrap();
    files(dir.path());
    let log = dir.path().join("audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(0);
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let out = report(dir.path(), &["--from", "2026-11-01"]);
    assert_eq!(out.status.code(), Some(1));
    let err = support::stderr(&out);
    assert!(
        err.contains("chain broken at line 1 (seq 2): sequence gap"),
        "{err}"
    );
    assert!(
        err.contains("No report is made from a broken chain"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "{}", support::stdout(&out));
}
