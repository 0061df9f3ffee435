//! `embargo report` on a netns lab run: the real agent with events on drops datagrams, is
//! reloaded once (SIGHUP), drops more, and stops; the report over the run must say exactly
//! what `embargo status` counted and the events file holds: the drops and bytes per interface
//! and direction, first and last drop, both policies with the digests status showed, and the
//! audit chain's head hash. While the agent runs the report carries its counters; once it has
//! stopped it says they are unavailable. A tampered audit log refuses the report (exit 1).
//!
//! Needs root: `cargo build --bin embargo && cargo test -p embargo-tests --test report`.

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use embargo::config::{Action, Role};
use embargo_tests::{
    lab::{self, CLI_V4, Lab},
    policy::{LabEntity, LabPolicy},
};

fn config(reloaded: bool) -> String {
    let mut prefixes = vec!["203.0.113.0/24"];
    if reloaded {
        // A table change too, so the reload's policy has a digest of its own.
        prefixes.push("198.51.100.0/24");
    }
    let mut e = LabEntity::new("lab-report", Action::Drop, &prefixes)
        .name("Lab Report Entity")
        .designation("netns", "NETNS-report")
        .source("https://example.org/report-advisory")
        .guard("test netns");
    if reloaded {
        e = e.designation("netns", "NETNS-report-2");
    }
    // A budget no test burst reaches: every drop has its event.
    LabPolicy::new()
        .top("\n[events]\nrate_per_entity = 1000\nburst = 1000\n")
        .entity(e)
        .to_string()
}

fn send(lab: &Lab, dst: IpAddr, sport: u16, count: usize) {
    lab::in_netns(lab.cli_ns(), || {
        let socket = UdpSocket::bind(SocketAddr::new(CLI_V4.into(), sport)).unwrap();
        for i in 0..count {
            socket
                .send_to(&[i as u8; 32], SocketAddr::new(dst, 5353))
                .unwrap();
        }
    })
    .unwrap();
}

/// The events file's lines once it has at least `n` (or after 10 s, whatever it has).
fn wait_lines(path: &Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `embargo report ARGS` (outside the lab's namespaces: its files and socket are paths):
/// exit code, stdout, stderr.
fn report(lab: &Lab, config: &Path, from: &str, format: &str) -> (i32, String, String) {
    let out = Command::new(lab::embargo_bin().unwrap())
        .arg("report")
        .args(["--from", from, "--format", format])
        .arg("--config")
        .arg(config)
        .arg("--audit-log")
        .arg(lab.audit_log())
        .arg("--events-log")
        .arg(lab.events_log())
        .arg("--control-socket")
        .arg(lab.control_socket())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_report(lab: &Lab, config: &Path, from: &str) -> serde_json::Value {
    let (code, out, err) = report(lab, config, from, "json");
    assert_eq!(code, 0, "{err}\n{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn the_report_of_a_lab_run_matches_status_and_the_events() {
    let lab = Lab::new().unwrap();
    lab.check_contained().unwrap();
    let blocked: IpAddr = "203.0.113.7".parse().unwrap();
    lab.add_remote(blocked).unwrap();
    let from = chrono::Utc::now() - chrono::Duration::seconds(5);
    let from = from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let path = lab.write_file("report.toml", &config(false)).unwrap();
    let agent = lab.start_agent(&path, Role::Inside).unwrap();
    let events_log = lab.events_log();

    send(&lab, blocked, 41001, 5);
    assert_eq!(wait_lines(&events_log, 5).len(), 5, "{}", agent.log());
    let first = agent.status_json().unwrap();

    // One reload, in place (a designation and a prefix more).
    std::fs::write(&path, config(true)).unwrap();
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(agent.pid() as i32, libc::SIGHUP) }, 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    while agent.status().unwrap().reloads.succeeded < 2 {
        assert!(Instant::now() < deadline, "no reload: {}", agent.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    send(&lab, blocked, 41002, 3);
    let lines = wait_lines(&events_log, 8);
    assert_eq!(lines.len(), 8, "{}", agent.log());
    let status = agent.status_json().unwrap();
    let (packets, bytes) = lab::counter(&status, "lab-report", "outbound", "dropped").unwrap();
    assert_eq!(packets, 8, "{status:#?}");
    let event_bytes: u64 = lines.iter().map(|l| l["length"].as_u64().unwrap()).sum();
    assert_eq!(event_bytes, bytes, "every drop has its event");

    // While the agent runs: its counters are in the report.
    let r = json_report(&lab, &path, &from);
    assert_eq!(r["schema"], "embargo-report");
    assert_eq!(r["counters"]["available"], true, "{r:#}");
    assert_eq!(r["counters"]["digest"], status.digest.as_str());
    let e = r["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "lab-report")
        .unwrap_or_else(|| panic!("{r:#}"));
    let counters = e["counters"].as_array().unwrap();
    let c = counters
        .iter()
        .find(|c| c["direction"] == "outbound" && c["verdict"] == "dropped")
        .unwrap_or_else(|| panic!("{e:#}"));
    assert_eq!(
        (c["packets"].as_u64(), c["bytes"].as_u64()),
        (Some(8), Some(bytes))
    );

    let log = agent.stop().unwrap();

    // After the agent stopped: the same record from the events, counters unavailable.
    let r = json_report(&lab, &path, &from);
    assert_eq!(r["counters"]["available"], false, "{r:#}");
    assert!(
        r["counters"]["reason"]
            .as_str()
            .unwrap()
            .contains("cannot reach the agent"),
        "{r:#}"
    );
    assert_eq!(r["events"]["malformed"], 0, "{r:#}");
    assert_eq!(r["events"]["in_period"], 8, "{r:#}");
    let e = r["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "lab-report")
        .unwrap()
        .clone();
    let traffic = e["traffic"].as_array().unwrap();
    assert_eq!(traffic.len(), 1, "{e:#}");
    let t = &traffic[0];
    assert_eq!(t["interface"], lab.gw_if(), "{e:#}");
    assert_eq!(
        (t["direction"].as_str(), t["verdict"].as_str()),
        (Some("outbound"), Some("dropped"))
    );
    assert_eq!(
        t["events"].as_u64(),
        Some(packets),
        "the counters status showed"
    );
    assert_eq!(
        t["bytes"].as_u64(),
        Some(bytes),
        "the counters status showed"
    );
    let times: Vec<&str> = lines.iter().map(|l| l["time"].as_str().unwrap()).collect();
    assert_eq!(e["first_drop"].as_str(), times.iter().min().copied());
    assert_eq!(e["last_drop"].as_str(), times.iter().max().copied());
    let refs: Vec<&str> = e["designations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["reference"].as_str().unwrap())
        .collect();
    assert_eq!(refs, ["NETNS-report", "NETNS-report-2"]);
    assert_eq!(
        e["evidence_groups"][0]["source"],
        "https://example.org/report-advisory"
    );

    // Both policies, with the digests status showed, and the chain's head.
    let digests: Vec<&str> = r["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["digest"].as_str().unwrap())
        .collect();
    assert_ne!(first.digest, status.digest);
    assert_eq!(
        digests,
        [first.digest.as_str(), status.digest.as_str()],
        "{log}"
    );
    let audit = std::fs::read_to_string(lab.audit_log()).unwrap();
    let head: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(r["audit"]["head_hash"], head["hash"]);
    assert_eq!(r["audit"]["records"], 2);

    // Markdown and CSV say the same.
    let (code, md, err) = report(&lab, &path, &from, "md");
    assert_eq!(code, 0, "{err}");
    assert!(md.contains(head["hash"].as_str().unwrap()), "{md}");
    assert!(md.contains("Counters: **unavailable**"), "{md}");
    let row = format!(
        "| {} | outbound | dropped | {packets} | {bytes} |",
        lab.gw_if()
    );
    assert!(md.contains(&row), "{row} not in\n{md}");
    let (code, csv, err) = report(&lab, &path, &from, "csv");
    assert_eq!(code, 0, "{err}");
    let row = format!(
        "lab-report,{},outbound,dropped,{packets},{bytes},",
        lab.gw_if()
    );
    assert!(
        csv.lines().any(|l| l.starts_with(&row)),
        "{row} not in\n{csv}"
    );

    // A period after the run: no drops.
    let later = (chrono::Utc::now() + chrono::Duration::seconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (code, out, err) = report(&lab, &path, &later, "json");
    // `--to` defaults to now, before `--from`: an empty period is refused.
    assert_eq!(code, 64, "{out}");
    assert!(err.contains("the period is empty"), "{err}");

    // A tampered audit log: no report, the line named.
    let tampered = audit.replacen(&status.digest, &"0".repeat(64), 1);
    assert_ne!(tampered, audit);
    std::fs::write(lab.audit_log(), tampered).unwrap();
    let (code, out, err) = report(&lab, &path, &from, "md");
    assert_eq!(code, 1, "{out}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("chain broken at line 2 (seq 2)"), "{err}");
}
