//! Unit tests of `embargo report` on synthetic audit logs, events files and status answers.

use std::path::PathBuf;

use chrono::TimeZone as _;

use super::*;
use crate::observe::{
    audit::{AuditLog, Changes, DesignationChange, Source, SourceKind},
    status::{CounterRow as StatusCounter, EntityStatus, ReloadStatus},
};

const MAIN: &str = "enforce = [\"UK\"]\ninclude = [\"entities\"]\n";

const ENTITY_A: &str = r#"id = "a"
name = "Alpha Ltd"
action = "drop"

[[designations]]
authority = "UK"
regime = "Cyber"
reference = "CYB0001"
listed_on = 2025-01-01
delisted_on = 2026-11-15
source = "https://example.org/uk/a"

[[designations]]
authority = "US"
regime = "CYBER2"
reference = "12345"
listed_on = 2025-02-01
source = "https://example.org/us/a"

[[networks]]
prefixes = ["192.0.2.0/24"]
guard_override = "documentation range in a test"
[networks.evidence]
kind = "advisory"
source = "https://example.org/advisory-1"
retrieved = 2026-10-01
confidence = "high"
expires = 2026-11-20

[[networks]]
prefixes = ["198.51.100.0/24", "198.51.101.0/24"]
guard_override = "documentation range in a test"
[networks.evidence]
kind = "registry"
source = "https://example.org/whois"
retrieved = 2026-06-01
confidence = "medium"
max_age = "30days"
"#;

const ENTITY_B: &str = r#"id = "b"
name = "Beta | Co"
action = "monitor"
direction = "outbound"

[[designations]]
authority = "UK"
regime = "Cyber"
reference = "CYB0002"
listed_on = 2026-12-01
source = "https://example.org/uk/b"

[[networks]]
prefixes = ["203.0.113.0/24"]
guard_override = "documentation range in a test"
[networks.evidence]
kind = "manual"
source = "ops ticket 7"
retrieved = 2026-09-01
confidence = "low"
"#;

struct Lab {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    config: PathBuf,
    audit: PathBuf,
    events: PathBuf,
}

fn at(d: u32, m: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, m, d, h, 0, 0).unwrap()
}

fn entry(time: DateTime<Utc>, n: u64, config_sha: &str) -> audit::PolicyApplied {
    audit::PolicyApplied {
        time,
        digest: format!("digest-{n}"),
        config: "/etc/embargo/embargo.toml".into(),
        sources: vec![Source {
            kind: SourceKind::Config,
            path: "/etc/embargo/embargo.toml".into(),
            sha256: config_sha.to_owned(),
        }],
        asn_table: None,
        country_table: None,
        changes: Changes {
            prefixes_added: n,
            ..Changes::default()
        },
        designations: Vec::new(),
    }
}

fn event(time: &str, iface: &str, dir: &str, verdict: &str, entity: &str, len: u32) -> String {
    format!(
        r#"{{"time":"{time}","interface":"{iface}","direction":"{dir}","verdict":"{verdict}","family":"ipv4","source":"10.0.0.1","destination":"192.0.2.1","protocol":"udp","source_port":1,"destination_port":2,"length":{len},"entity":"{entity}","designations":[],"policy_digest":"digest-2"}}"#
    )
}

/// A configuration of two entities, an audit log of four policies (one before the period
/// 2026-11-01..2026-11-30, two in it, one after) and an events file with one rotated copy.
fn lab() -> Lab {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let config = dir.join("embargo.toml");
    std::fs::write(&config, MAIN).unwrap();
    std::fs::create_dir(dir.join("entities")).unwrap();
    std::fs::write(dir.join("entities/a.toml"), ENTITY_A).unwrap();
    std::fs::write(dir.join("entities/b.toml"), ENTITY_B).unwrap();
    let sha = crate::files::digest::sha256_hex(MAIN.as_bytes());
    let audit = dir.join("audit/audit.jsonl");
    let mut log = AuditLog::open(&audit).unwrap();
    log.append(entry(at(15, 10, 9), 1, &sha)).unwrap();
    log.append(entry(at(5, 11, 9), 2, &sha)).unwrap();
    let mut third = entry(at(25, 11, 9), 3, &sha);
    third.designations = vec![DesignationChange {
        change: ChangeKind::Delisted,
        entity: "b".into(),
        list: "uk".into(),
        reference: "CYB0002".into(),
        since: Some("2026-11-24".into()),
        detail: None,
    }];
    log.append(third).unwrap();
    log.append(entry(at(5, 12, 9), 4, &sha)).unwrap();
    drop(log);
    let events = dir.join("events/events.jsonl");
    std::fs::create_dir(dir.join("events")).unwrap();
    // The rotated (older) file: one event before the period, two in it.
    let old = [
        event(
            "2026-10-31T23:59:59.999999Z",
            "veth-in",
            "outbound",
            "dropped",
            "a",
            1000,
        ),
        event(
            "2026-11-02T10:00:00.000001Z",
            "veth-in",
            "outbound",
            "dropped",
            "a",
            100,
        ),
        event(
            "2026-11-03T10:00:00Z",
            "veth-out",
            "inbound",
            "dropped",
            "a",
            60,
        ),
    ];
    std::fs::write(RotatingFile::rotated(&events, 1), old.join("\n") + "\n").unwrap();
    // The current file: in the period, a malformed line, a line with members this version does
    // not know (a group), and one after the period.
    let mut with_group = event(
        "2026-11-10T12:00:00Z",
        "veth-in",
        "outbound",
        "dropped",
        "a",
        40,
    );
    with_group = with_group.replacen(
        '{',
        r#"{"group":{"index":2,"source":"https://example.org/whois"},"new_member":[1,2],"#,
        1,
    );
    let cur = [
        event(
            "2026-11-04T08:00:00Z",
            "veth-in",
            "outbound",
            "monitored",
            "b",
            70,
        ),
        "{\"time\": \"2026-11-05T00:00:00Z\", not json".to_owned(),
        with_group,
        event("not a time", "veth-in", "outbound", "dropped", "a", 1),
        event(
            "2026-11-30T00:00:00Z",
            "veth-in",
            "outbound",
            "dropped",
            "a",
            5000,
        ),
        event(
            "2026-11-06T00:00:00Z",
            "veth-in",
            "outbound",
            "dropped",
            "gone",
            80,
        ),
    ];
    std::fs::write(&events, cur.join("\n") + "\n").unwrap();
    Lab {
        _tmp: tmp,
        dir,
        config,
        audit,
        events,
    }
}

fn november() -> Period {
    Period::parse("2026-11-01", Some("2026-11-29"), Utc::now()).unwrap()
}

fn status() -> Status {
    let counter = |direction: &str, verdict: &str, packets, bytes| StatusCounter {
        direction: direction.into(),
        verdict: verdict.into(),
        packets,
        bytes,
    };
    Status {
        pid: 1,
        version: String::new(),
        config: "/etc/embargo/embargo.toml".into(),
        interfaces: Vec::new(),
        entities: vec![EntityStatus {
            id: "a".into(),
            name: "Alpha Ltd".into(),
            action: "drop".into(),
            direction: "both".into(),
            prefixes_v4: 3,
            prefixes_v6: 0,
            counters: vec![
                counter("outbound", "dropped", 7, 700),
                counter("inbound", "dropped", 1, 60),
            ],
            designations: Vec::new(),
            groups: Vec::new(),
        }],
        outcomes: Vec::new(),
        packets_seen: 8,
        prefixes_v4: 3,
        prefixes_v6: 0,
        map_bytes: 0,
        digest: "digest-4".into(),
        reloads: ReloadStatus::default(),
        drift_entries: 0,
        sources: Vec::new(),
        delisted_by_list: Vec::new(),
        start: None,
        next_change: None,
    }
}

fn inputs(lab: &Lab, period: Period, counters: Result<Status, String>) -> Inputs {
    let config = config::load(&lab.config).unwrap();
    gather(period, config, &lab.audit, &lab.events, || counters).unwrap()
}

fn entity<'a>(r: &'a Report, id: &str) -> &'a EntityReport {
    r.entities
        .iter()
        .find(|e| e.id == id)
        .unwrap_or_else(|| panic!("no entity {id}"))
}

#[test]
fn periods_take_dates_and_instants() {
    let now = at(1, 12, 0);
    let p = Period::parse("2026-11-01", Some("2026-11-29"), now).unwrap();
    assert_eq!((p.from, p.to), (at(1, 11, 0), at(30, 11, 0)));
    let p = Period::parse("2026-11-01T10:30:00+01:00", None, now).unwrap();
    assert_eq!(p.from, Utc.with_ymd_and_hms(2026, 11, 1, 9, 30, 0).unwrap());
    assert_eq!(p.to, now);
    assert!(p.contains(p.from) && !p.contains(p.to));
    for (from, to) in [("2026-11-02", Some("2026-11-01")), ("2026-12-01", None)] {
        let e = Period::parse(from, to, now).unwrap_err().to_string();
        assert!(e.contains("the period is empty"), "{e}");
    }
    let e = Period::parse("yesterday", None, now)
        .unwrap_err()
        .to_string();
    assert!(e.contains("`yesterday` is neither a date"), "{e}");
}

#[test]
fn the_report_covers_the_period_only() {
    let lab = lab();
    let r = build(&inputs(&lab, november(), Ok(status())));
    assert_eq!((r.schema, r.version), ("embargo-report", 1));
    // The policy in force at the start, then the two applied in the period; not the later one.
    let seqs: Vec<(u64, bool)> = r
        .policies
        .iter()
        .map(|p| (p.seq, p.before_period))
        .collect();
    assert_eq!(seqs, [(1, true), (2, false), (3, false)]);
    assert_eq!(r.policies[0].trigger.as_deref(), Some("start"));
    assert_eq!(r.policies[1].trigger, None);
    // The head is the log's last record, whatever the period.
    let last: audit::Record = serde_json::from_str(
        std::fs::read_to_string(&lab.audit)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(r.audit.head_hash.as_deref(), Some(last.hash.as_str()));
    assert_eq!((r.audit.records, r.audit.head_seq), (4, Some(4)));
    assert_eq!(r.config.matches_audit, Some(true));

    let a = entity(&r, "a");
    let rows: Vec<(&str, &str, &str, u64, u64)> = a
        .traffic
        .iter()
        .map(|t| {
            (
                t.interface.as_str(),
                t.direction.as_str(),
                t.verdict.as_str(),
                t.events,
                t.bytes,
            )
        })
        .collect();
    // 2026-10-31 and 2026-11-30 are outside; the malformed lines are not counted.
    assert_eq!(
        rows,
        [
            ("veth-in", "outbound", "dropped", 2, 140),
            ("veth-out", "inbound", "dropped", 1, 60)
        ]
    );
    assert_eq!(a.first_drop.as_deref(), Some("2026-11-02T10:00:00.000001Z"));
    assert_eq!(a.last_drop.as_deref(), Some("2026-11-10T12:00:00Z"));
    assert_eq!(
        a.by_evidence,
        [GroupTraffic {
            evidence: "https://example.org/whois".into(),
            verdict: "dropped".into(),
            events: 1,
            bytes: 40
        }]
    );
    // Designations: the UK one was delisted in the period (in force in part of it); the US
    // one's authority is not enforced.
    let d: Vec<(&str, bool, bool)> = a
        .designations
        .iter()
        .map(|d| (d.reference.as_str(), d.enforced_authority, d.in_force))
        .collect();
    assert_eq!(d, [("CYB0001", true, true), ("12345", false, false)]);
    let g: Vec<(usize, Option<&str>, bool)> = a
        .evidence_groups
        .iter()
        .map(|g| (g.index, g.ends.as_deref(), g.counted_in_period))
        .collect();
    // Group 2: retrieved 2026-06-01 + 30 days, over before the period.
    assert_eq!(
        g,
        [
            (1, Some("2026-11-20"), true),
            (2, Some("2026-07-01"), false)
        ]
    );
    assert_eq!(a.evidence_groups[1].prefixes, 2);
    let changes: Vec<(&str, &str, &str)> = a
        .changes
        .iter()
        .map(|c| (c.at.as_str(), c.change.as_str(), c.from.as_str()))
        .collect();
    assert_eq!(
        changes,
        [
            ("2026-11-15", "delisted", "configuration"),
            ("2026-11-20", "expired", "configuration")
        ]
    );
    assert_eq!(a.counters.len(), 2);
    assert_eq!(a.counters[0].packets, 7);

    // b: listed after the period, delisted by its list (audit seq 3) inside it.
    let b = entity(&r, "b");
    assert!(!b.designations[0].in_force);
    assert_eq!(
        b.designations[0].delisted_on.unwrap().to_string(),
        "2026-11-24"
    );
    assert_eq!(b.changes[0].from, "audit seq 3");
    assert_eq!(b.traffic[0].verdict, "monitored");
    assert_eq!(b.first_drop, None);
    // An entity only the events name.
    let gone = entity(&r, "gone");
    assert!(!gone.in_config && gone.traffic[0].events == 1);

    // Malformed lines: counted and named by file and line.
    assert_eq!(r.events.malformed, 2);
    let m: Vec<(String, u64)> = r
        .events
        .malformed_lines
        .iter()
        .map(|m| {
            (
                m.file.file_name().unwrap().to_string_lossy().into_owned(),
                m.line,
            )
        })
        .collect();
    assert_eq!(
        m,
        [
            ("events.jsonl".to_owned(), 2),
            ("events.jsonl".to_owned(), 4)
        ]
    );
    assert!(r.events.malformed_lines[1].reason.contains("not a time"));
    // Oldest file first.
    assert!(r.events.files[0].path.ends_with("events.jsonl.1"));
    assert_eq!(r.events.in_period, 2 + 3);
    assert_eq!(r.counters.digest_matches_audit, Some(true));
}

#[test]
fn a_narrower_period_leaves_out_what_is_outside_it() {
    let lab = lab();
    let p = Period::parse(
        "2026-11-03T00:00:00Z",
        Some("2026-11-04T00:00:00Z"),
        Utc::now(),
    )
    .unwrap();
    let r = build(&inputs(&lab, p, Ok(status())));
    // The policy in force is seq 1 (seq 2 came on the 5th); none applied in it.
    let seqs: Vec<u64> = r.policies.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, [1]);
    let a = entity(&r, "a");
    assert_eq!(a.traffic.len(), 1);
    assert_eq!(a.traffic[0].interface, "veth-out");
    assert!(a.changes.is_empty());
    assert!(entity(&r, "b").traffic.is_empty());
    // Before any record: no policy in force, no comparison with the configuration.
    let p = Period::parse("2026-01-01", Some("2026-01-02"), Utc::now()).unwrap();
    let r = build(&inputs(&lab, p, Ok(status())));
    assert!(r.policies.is_empty());
    assert_eq!(r.config.matches_audit, None);
}

#[test]
fn a_broken_chain_refuses_the_report_with_its_line() {
    let lab = lab();
    let text = std::fs::read_to_string(&lab.audit).unwrap();
    std::fs::write(&lab.audit, text.replacen("digest-2", "digest-X", 1)).unwrap();
    let config = config::load(&lab.config).unwrap();
    let e = gather(november(), config, &lab.audit, &lab.events, || {
        Err("not asked".into())
    })
    .err()
    .expect("a broken chain is refused");
    let msg = e.to_string();
    assert!(
        matches!(e, ReportError::BrokenChain { records: 1, .. }),
        "{msg}"
    );
    assert!(msg.contains("line 2 (seq 2): hash mismatch"), "{msg}");
    assert!(msg.contains("embargo audit verify --audit-log"), "{msg}");
    // A missing log is an error too, not an empty report.
    std::fs::remove_file(&lab.audit).unwrap();
    let config = config::load(&lab.config).unwrap();
    assert!(
        gather(november(), config, &lab.audit, &lab.events, || Err(
            String::new()
        ))
        .is_err()
    );
}

#[test]
fn unreachable_counters_are_said_not_invented() {
    let lab = lab();
    let r = build(&inputs(
        &lab,
        november(),
        Err("cannot reach the agent".into()),
    ));
    assert!(!r.counters.available);
    assert_eq!(r.counters.reason.as_deref(), Some("cannot reach the agent"));
    assert!(entity(&r, "a").counters.is_empty());
    let md = render_markdown(&r);
    assert!(
        md.contains("Counters: **unavailable**: cannot reach the agent"),
        "{md}"
    );
    let csv = render_csv(&r);
    assert!(csv.contains("a,*,outbound,dropped,2,140,2026-11-02T10:00:00.000001Z,2026-11-10T12:00:00Z,,,UK CYB0001\n"), "{csv}");
}

#[test]
fn missing_events_are_said() {
    let lab = lab();
    std::fs::remove_file(&lab.events).unwrap();
    std::fs::remove_file(RotatingFile::rotated(&lab.events, 1)).unwrap();
    let r = build(&inputs(&lab, november(), Ok(status())));
    assert!(
        r.events
            .missing
            .as_deref()
            .unwrap()
            .contains("does not exist")
    );
    assert!(render_markdown(&r).contains("Events: none read"));
    // Counters still come through.
    assert_eq!(entity(&r, "a").counters[0].packets, 7);
}

#[test]
fn the_three_formats_carry_the_same_record() {
    let lab = lab();
    let r = build(&inputs(&lab, november(), Ok(status())));
    let json: serde_json::Value = serde_json::from_str(&render_json(&r)).unwrap();
    assert_eq!(json["schema"], "embargo-report");
    assert_eq!(json["version"], 1);
    assert_eq!(
        json["audit"]["head_hash"],
        r.audit.head_hash.clone().unwrap()
    );
    assert_eq!(json["period"]["from"], "2026-11-01T00:00:00Z");
    assert_eq!(json["period"]["to"], "2026-11-30T00:00:00Z");
    assert_eq!(json["events"]["malformed"], 2);
    let a = &json["entities"][0];
    assert_eq!(a["id"], "a");
    assert_eq!(a["designations"][0]["regime"], "Cyber");
    assert_eq!(
        a["evidence_groups"][0]["source"],
        "https://example.org/advisory-1"
    );
    assert_eq!(a["traffic"][0]["bytes"], 140);

    let csv = render_csv(&r);
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(
        rows.headers().unwrap().iter().collect::<Vec<_>>(),
        CSV_HEADER
    );
    let rows: Vec<Vec<String>> = rows
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    let find = |e: &str, i: &str, d: &str| {
        rows.iter()
            .find(|r| r[0] == e && r[1] == i && r[2] == d)
            .unwrap_or_else(|| panic!("no row {e} {i} {d} in {csv}"))
    };
    assert_eq!(find("a", "veth-in", "outbound")[4..6], ["2", "140"]);
    assert_eq!(find("a", "*", "outbound")[8..10], ["7", "700"]);
    assert_eq!(
        find("a", "*", "inbound")[4..10],
        [
            "1",
            "60",
            "2026-11-03T10:00:00Z",
            "2026-11-03T10:00:00Z",
            "1",
            "60"
        ]
    );
    // A name with `|` keeps its CSV cell whole, and its Markdown cell escaped.
    assert_eq!(find("b", "veth-in", "outbound")[3], "monitored");

    let md = render_markdown(&r);
    for want in [
        "# Embargo compliance report",
        &format!("hash `{}`", r.audit.head_hash.clone().unwrap()),
        "### `b`: Beta \\| Co",
        "| UK CYB0001 | Cyber | 2025-01-01 | 2026-11-15 | yes | https://example.org/uk/a |",
        "| US 12345 | CYBER2 | 2025-02-01 | — | no (authority not enforced) |",
        "| veth-in | outbound | dropped | 2 | 140 |",
        "**2 events lines are not events**",
        "line 2: ",
        "2026-11-20 expired: group 1: https://example.org/advisory-1 (configuration)",
        "2026-11-24 delisted: list `uk` CYB0002 (audit seq 3)",
        "- outbound dropped: 7 packets, 700 bytes",
        "First drop seen 2026-11-02T10:00:00.000001Z, last 2026-11-10T12:00:00Z.",
    ] {
        assert!(md.contains(want), "{want:?} not in\n{md}");
    }
}

#[test]
fn lines_are_read_with_a_bound_in_one_pass() {
    let data = b"short\n0123456789abc\nok\nlast-without-newline";
    let mut seen = Vec::new();
    let total = read_lines(BufReader::with_capacity(4, &data[..]), 8, |n, l| {
        seen.push((n, l.map(|l| String::from_utf8_lossy(l).into_owned())));
    })
    .unwrap();
    assert_eq!(total, data.len() as u64);
    assert_eq!(seen[0], (1, Ok("short".into())));
    assert_eq!(seen[1], (2, Err("longer than 8 bytes".into())));
    assert_eq!(seen[2], (3, Ok("ok".into())));
    assert_eq!(seen[3].0, 4);
    assert!(seen[3].1.as_ref().unwrap_err().contains("no newline"));
    assert_eq!(seen.len(), 4);
}

#[test]
fn an_events_symlink_is_not_followed() {
    let lab = lab();
    let target = lab.dir.join("elsewhere.jsonl");
    std::fs::rename(&lab.events, &target).unwrap();
    std::os::unix::fs::symlink(&target, &lab.events).unwrap();
    let e = read_events(&lab.events, &november())
        .unwrap_err()
        .to_string();
    assert!(e.contains("events.jsonl: opening"), "{e}");
}
