//! `embargo audit verify` on logs written by the library: exit codes and messages on a good log,
//! a tampered one, a truncated one and a missing one; and the documented canonical form,
//! recomputed by Python as the module documentation says a reader can. Needs no root.

mod support;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use embargo::observe::audit::{AuditLog, Changes, PolicyApplied, Source, SourceKind};

/// A log of `n` records; the sources hold a non-ASCII path and a control character to exercise
/// the canonical form's escaping.
fn log_of(dir: &tempfile::TempDir, n: u64) -> PathBuf {
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap();
    for i in 1..=n {
        log.append(PolicyApplied {
            time: chrono::Utc::now(),
            digest: format!("{i:064x}"),
            config: "/etc/embargo/embargo.toml".into(),
            sources: vec![
                Source {
                    kind: SourceKind::Config,
                    path: "/etc/embargo/embargo.toml".into(),
                    sha256: "aa".repeat(32),
                },
                Source {
                    kind: SourceKind::Indicators,
                    path: format!("/etc/embargo/indicateurs-été\t{i}.txt"),
                    sha256: "bb".repeat(32),
                },
            ],
            asn_table: None,
            country_table: None,
            changes: Changes {
                prefixes_added: i,
                ..Changes::default()
            },
            designations: Vec::new(),
        })
        .unwrap();
    }
    path
}

fn verify(log: &Path) -> Output {
    support::command(&["audit", "verify", "--log"])
        .arg(log)
        .output()
        .expect("run embargo")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn an_intact_log_verifies_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(&dir, 4);
    let out = verify(&log);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("{}: 4 records, chain intact\n", log.display())
    );
    // `--audit-log`, the flag `embargo run` names the same file with, works too.
    let out = support::command(&["audit", "verify", "--audit-log"])
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn a_tampered_log_exits_1_naming_the_first_broken_link() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(&dir, 4);
    let good = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<&str> = good.lines().collect();
    // Record 2 claims one prefix fewer was added; record 4 loses a line too (only the first
    // break is named).
    let edited = lines[1].replace("\"prefixes_added\":2", "\"prefixes_added\":1");
    assert_ne!(edited, lines[1]);
    lines[1] = &edited;
    lines.remove(3);
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let out = verify(&log);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}: chain broken at line 2 (seq 2): hash mismatch",
            log.display()
        )),
        "{err}"
    );
    assert!(err.contains("1 records before it are intact"), "{err}");
    assert!(!err.contains("line 3"), "{err}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));

    // Truncated by a crash mid-write.
    std::fs::write(&log, &good.as_bytes()[..good.len() - 30]).unwrap();
    let out = verify(&log);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("line 4: truncated last line"), "{err}");
    assert!(err.contains("3 records before it are intact"), "{err}");
}

#[test]
fn a_missing_log_exits_1_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = verify(&dir.path().join("none.jsonl"));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("none.jsonl: reading:"), "{err}");
}

#[test]
fn verify_and_run_default_to_the_state_directory() {
    for args in [&["audit", "verify", "--help"][..], &["run", "--help"]] {
        let out = support::command(args).output().unwrap();
        let help = text(&out.stdout);
        assert!(help.contains("/var/lib/embargo/audit.jsonl"), "{help}");
    }
}

/// The module documentation's Python check, run as written there: every record's hash is the
/// SHA-256 of `json.dumps(record without hash, sort_keys=True, separators=(",", ":"),
/// ensure_ascii=False)`, and the line itself is that form with the hash in.
#[test]
fn python_recomputes_every_hash_from_the_documented_form() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(&dir, 3);
    let script = r#"
import hashlib, json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    assert json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n" == line, line
    h = r.pop("hash")
    c = json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    print(r["seq"], h == hashlib.sha256(c.encode()).hexdigest())
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&log)
        .output()
        .expect("python3 is on every machine this project builds on");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1 True\n2 True\n3 True\n");
}

/// `audit verify --json`: `{path, records, intact, first_broken}` on stdout for an intact and a
/// tampered log; the tampered one exits 1 with the JSON error object on stderr.
#[test]
fn verify_json_names_the_first_broken_link() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_of(&dir, 3);
    let run = || {
        support::command(&["audit", "verify", "--json", "--audit-log"])
            .arg(&log)
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["path"], log.to_str().unwrap(), "{v}");
    assert_eq!(v["records"], 3, "{v}");
    assert_eq!(v["intact"], true, "{v}");
    assert!(v["first_broken"].is_null(), "{v}");
    assert_eq!(v["last_hash"].as_str().unwrap().len(), 64, "{v}");

    let good = std::fs::read_to_string(&log).unwrap();
    let edited = good.replacen("\"prefixes_added\":2", "\"prefixes_added\":1", 1);
    assert_ne!(edited, good);
    std::fs::write(&log, edited).unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["records"], 1, "{v}");
    assert_eq!(v["intact"], false, "{v}");
    assert_eq!(v["first_broken"]["line"], 2, "{v}");
    assert_eq!(v["first_broken"]["seq"], 2, "{v}");
    assert_eq!(v["first_broken"]["problem"]["kind"], "hash_mismatch", "{v}");
    assert!(
        v["first_broken"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("hash mismatch"),
        "{v}"
    );
    let err = text(&out.stderr);
    let e: serde_json::Value = serde_json::from_str(err.trim_end()).expect("one JSON line");
    assert_eq!(e["exit_code"], 1, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("chain broken at line 2 (seq 2): hash mismatch"),
        "{e}"
    );
    assert!(
        e["notes"][0].as_str().unwrap().contains("1 records before"),
        "{e}"
    );

    // A missing log: no document, the error object only.
    let out = support::command(&["audit", "verify", "--json", "--audit-log"])
        .arg(dir.path().join("none.jsonl"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let e: serde_json::Value = serde_json::from_str(text(&out.stderr).trim_end()).unwrap();
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("none.jsonl: reading:"),
        "{e}"
    );
}
