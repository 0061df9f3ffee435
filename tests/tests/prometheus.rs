//! The metrics endpoint end to end: the real `embargo` binary in a netns lab with
//! `--metrics-listen` on the gateway namespace's loopback, real datagrams through the veth, and
//! a real Prometheus server scraping it from inside the same namespace. What Prometheus stored
//! must equal what the test sent.
//!
//! Needs root, a built `embargo` binary (`cargo build --bin embargo`, or `EMBARGO_BIN`) and
//! Debian's `prometheus` package (`prometheus` and `promtool`; `cargo xtask setup` installs it).
//! Everything listens on the lab gateway's own loopback; nothing leaves the lab.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use embargo::config::Role;
use embargo_tests::{
    lab::{Background, Lab, Probe, ProbeResult, counter, outcome},
    policy::LabPolicy,
};
use serde_json::Value;

/// Datagrams per probe.
const COUNT: usize = 4;
/// The agent's metrics address inside the gateway namespace (its own loopback).
const METRICS: &str = "127.0.0.1:9610";
/// Prometheus' address inside the gateway namespace.
const PROMETHEUS: &str = "127.0.0.1:9090";
const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";
const PROMTOOL_BIN: &str = "/usr/bin/promtool";

/// The prometheus test policy: documentation and test-net prefixes only.
fn config_text() -> String {
    LabPolicy::drop_and_monitor(
        &["203.0.113.0/24", "2001:db8:bad::/48"],
        &["198.51.100.0/24"],
        |id, e| {
            e.designation("netns", &format!("PROM-{id}"))
                .source("netns")
                .guard("test netns")
        },
    )
    .to_string()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn addrs(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A Prometheus server in the lab's gateway namespace, scraping the agent every second.
/// Killed, and its data directory removed, on drop.
struct Prometheus<'lab> {
    lab: &'lab Lab,
    process: Option<Background>,
    dir: PathBuf,
}

impl<'lab> Prometheus<'lab> {
    fn start(lab: &'lab Lab) -> Self {
        let dir = lab.dir().join("prometheus");
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: embargo\n    static_configs:\n      - targets: ['{METRICS}']\n"
            ),
        )
        .unwrap();
        assert!(
            std::path::Path::new(PROMETHEUS_BIN).is_file(),
            "{PROMETHEUS_BIN} is missing: install Debian's `prometheus` package (`cargo xtask setup`)"
        );
        let process = lab
            .spawn_in_gw(
                "prometheus",
                PROMETHEUS_BIN,
                &[
                    &format!("--config.file={}", config.display()),
                    &format!("--storage.tsdb.path={}", dir.join("data").display()),
                    &format!("--web.listen-address={PROMETHEUS}"),
                ],
            )
            .unwrap();
        let mut p = Self {
            lab,
            process: Some(process),
            dir,
        };
        p.wait_ready(Duration::from_secs(60));
        p
    }

    fn process(&mut self) -> &mut Background {
        self.process.as_mut().expect("running")
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let start = Instant::now();
        loop {
            self.process().check_running().unwrap();
            if let Ok((200, _)) = self.lab.http_get(addr(PROMETHEUS), "/-/ready") {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "Prometheus not ready within {timeout:?}; its log:\n{}",
                self.process().log()
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// The instant vector of `query`: each series' labels and value.
    fn query(&mut self, query: &str) -> Vec<(serde_json::Map<String, Value>, f64)> {
        let (status, body) = self
            .lab
            .http_get(
                addr(PROMETHEUS),
                &format!("/api/v1/query?query={}", percent_encode(query)),
            )
            .unwrap();
        assert_eq!(status, 200, "{query}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{query}: {body}");
        assert_eq!(v["data"]["resultType"], "vector", "{query}: {body}");
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let labels = r["metric"].as_object().unwrap().clone();
                let value = r["value"][1].as_str().unwrap().parse().unwrap();
                (labels, value)
            })
            .collect()
    }

    /// The value of `query`, which must select exactly one series.
    fn one(&mut self, query: &str) -> (serde_json::Map<String, Value>, f64) {
        let mut r = self.query(query);
        assert_eq!(r.len(), 1, "{query}: expected one series, got {r:?}");
        r.remove(0)
    }

    /// Waits until Prometheus holds a scrape of the agent taken after `after` (Unix seconds).
    fn wait_scraped_after(&mut self, after: f64, timeout: Duration) {
        let start = Instant::now();
        loop {
            self.process().check_running().unwrap();
            let latest = self
                .query("timestamp(embargo_ready)")
                .first()
                .map(|(_, t)| *t);
            if latest.is_some_and(|t| t > after) {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "no scrape after {after} within {timeout:?} (latest {latest:?}); up: {:?}; Prometheus log:\n{}",
                self.query("up"),
                self.process().log()
            );
            thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus<'_> {
    fn drop(&mut self) {
        // Stop it first (Background's drop: SIGTERM, then SIGKILL), then remove its data.
        drop(self.process.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn sent(results: &[ProbeResult]) -> u64 {
    results.iter().map(|r| r.sent as u64).sum()
}

fn bytes_of(results: &[ProbeResult]) -> u64 {
    results
        .iter()
        .map(|r| r.probe.frame_len() * r.sent as u64)
        .sum()
}

fn label<'a>(labels: &'a serde_json::Map<String, Value>, name: &str) -> &'a str {
    labels.get(name).and_then(Value::as_str).unwrap_or("")
}

#[test]
fn prometheus_scrapes_what_was_sent() {
    let lab = Lab::new().unwrap();
    lab.check_contained().unwrap();
    let config = lab.write_file("test.toml", &config_text()).unwrap();
    let (_, compiled) = embargo::compile_file(&config, embargo::today()).unwrap();
    let drop_addrs = addrs(&["203.0.113.7", "203.0.113.99", "2001:db8:bad::7"]);
    let monitor_addrs = addrs(&["198.51.100.9", "198.51.100.10"]);
    let allowed_addrs = addrs(&["192.0.2.10", "203.0.114.1"]);
    for a in drop_addrs
        .iter()
        .chain(&monitor_addrs)
        .chain(&allowed_addrs)
    {
        lab.add_remote(*a).unwrap();
    }
    let to = |list: &[IpAddr]| list.iter().copied().map(Probe::to).collect::<Vec<_>>();

    let agent = lab
        .start_agent_with(&config, Role::Inside, &["--metrics-listen", METRICS])
        .unwrap();
    assert_eq!(
        lab.http_get(addr(METRICS), "/healthz").unwrap(),
        (200, "ok\n".into())
    );
    assert_eq!(
        lab.http_get(addr(METRICS), "/readyz").unwrap(),
        (200, "ready\n".into())
    );
    assert!(agent.log().contains(METRICS), "{}", agent.log());

    let mut prometheus = Prometheus::start(&lab);
    let dropped = lab.probe(&to(&drop_addrs), COUNT).unwrap();
    let monitored = lab.probe(&to(&monitor_addrs), COUNT).unwrap();
    let allowed = lab.probe(&to(&allowed_addrs), COUNT).unwrap();
    assert!(dropped.iter().all(ProbeResult::blocked), "{dropped:?}");
    assert!(
        monitored.iter().all(ProbeResult::delivered),
        "{monitored:?}"
    );
    assert!(allowed.iter().all(ProbeResult::delivered), "{allowed:?}");
    // `probe` returns after the last datagram has been received or dropped and counted.
    let sent_at = unix_now();
    prometheus.wait_scraped_after(sent_at, Duration::from_secs(60));

    assert_eq!(prometheus.one("up{job=\"embargo\"}").1, 1.0);

    // The counters, from Prometheus' storage: exactly what was sent, on the lab interface,
    // in the outbound direction (an inside interface matches destinations).
    for (entity, verdict, results) in [
        ("lab-drop", "dropped", &dropped),
        ("lab-monitor", "monitored", &monitored),
    ] {
        for (metric, expected) in [
            ("embargo_packets_total", sent(results)),
            ("embargo_bytes_total", bytes_of(results)),
        ] {
            let q = format!("{metric}{{entity=\"{entity}\",verdict=\"{verdict}\"}}");
            let (labels, value) = prometheus.one(&q);
            assert_eq!(value, expected as f64, "{q}: {labels:?}");
            assert_eq!(label(&labels, "interface"), lab.gw_if(), "{q}: {labels:?}");
            assert_eq!(label(&labels, "direction"), "outbound", "{q}: {labels:?}");
        }
    }
    // A series that cannot grow (a monitor entity's drops) is not exposed.
    assert!(
        prometheus
            .query("embargo_packets_total{entity=\"lab-monitor\",verdict=\"dropped\"}")
            .is_empty()
    );
    // The agent's own status agrees.
    let status = agent.status().unwrap();
    assert_eq!(
        counter(&status, "lab-drop", "outbound", "dropped"),
        Some((sent(&dropped), bytes_of(&dropped)))
    );
    assert_eq!(
        counter(&status, "lab-monitor", "outbound", "monitored"),
        Some((sent(&monitored), bytes_of(&monitored)))
    );

    assert_eq!(prometheus.one("embargo_ready").1, 1.0);
    let (labels, value) = prometheus.one("embargo_policy_info");
    assert_eq!(value, 1.0);
    assert_eq!(label(&labels, "digest"), compiled.digest(), "{labels:?}");
    let (labels, value) = prometheus.one("embargo_xdp_attach_info");
    assert_eq!(value, 1.0);
    assert_eq!(label(&labels, "interface"), lab.gw_if(), "{labels:?}");
    assert!(
        ["native", "generic"].contains(&label(&labels, "mode")),
        "{labels:?}"
    );
    for (entity, family, n) in [
        ("lab-drop", "ipv4", 1.0),
        ("lab-drop", "ipv6", 1.0),
        ("lab-monitor", "ipv4", 1.0),
        ("lab-monitor", "ipv6", 0.0),
    ] {
        let q = format!("embargo_prefixes{{entity=\"{entity}\",family=\"{family}\"}}");
        assert_eq!(prometheus.one(&q).1, n, "{q}");
    }
    assert_eq!(
        prometheus
            .one("embargo_reloads_total{result=\"success\"}")
            .1,
        1.0
    );
    assert_eq!(
        prometheus
            .one("embargo_reloads_total{result=\"failure\"}")
            .1,
        0.0
    );
    assert!(prometheus.one("embargo_last_reload_timestamp_seconds").1 <= sent_at);
    assert_eq!(prometheus.one("embargo_map_entries{map=\"policy\"}").1, 2.0);
    // Misses also count IPv6 multicast noise, so at least the allowed IPv4 datagrams.
    let miss_v4 = prometheus
        .one("embargo_parse_outcome_packets_total{outcome=\"miss_ipv4\"}")
        .1;
    assert!(miss_v4 >= sent(&allowed) as f64, "miss_ipv4 = {miss_v4}");
    assert!(miss_v4 <= outcome(&agent.status().unwrap(), "miss_ipv4") as f64);

    // promtool's linter accepts the exposition as served.
    let (status, body) = lab.http_get(addr(METRICS), "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("# TYPE embargo_packets_total counter"),
        "{body}"
    );
    let lint = promtool_check_metrics(&body);
    assert!(lint.0, "promtool check metrics failed:\n{}\n{body}", lint.1);

    drop(prometheus);
    agent.stop().unwrap();
}

/// `promtool check metrics < body`: whether it passed, and what it printed.
fn promtool_check_metrics(body: &str) -> (bool, String) {
    use std::io::Write as _;
    assert!(
        std::path::Path::new(PROMTOOL_BIN).is_file(),
        "{PROMTOOL_BIN} is missing: install Debian's `prometheus` package (`cargo xtask setup`)"
    );
    let mut child = Command::new(PROMTOOL_BIN)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
