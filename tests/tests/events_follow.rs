//! `embargo events --follow`, end to end, in a netns lab with the real agent: a follower started
//! before the traffic gets each dropped packet's event as the events log's JSON record (entity,
//! address, ports, the digest `embargo status` shows) or as a text line; `--entity` keeps one
//! entity's events; an entity the policy does not have is refused with the agent's answer
//! (exit 1); a follower that goes away leaves the agent serving the others.
//!
//! Needs root: `cargo build --bin embargo && cargo test -p embargo-tests --test events_follow`.

use std::{
    io::{BufRead as _, BufReader},
    net::{IpAddr, SocketAddr, UdpSocket},
    process::{Child, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use embargo::{
    config::{Action, Role},
    observe::events::Record,
};
use embargo_tests::{
    lab::{self, CLI_V4, Lab},
    policy::{LabEntity, LabPolicy},
};

fn config() -> String {
    let entity = |id: &str, action, prefixes: &[&str]| {
        LabEntity::new(id, action, prefixes)
            .name(&format!("{id} Ltd"))
            .designation("netns", &format!("NETNS-{id}"))
            .source("netns")
            .guard("test netns")
    };
    LabPolicy::new()
        .top("\n[events]\nrate_per_entity = 100\nburst = 100\n")
        .entity(entity("follow-drop", Action::Drop, &["203.0.113.0/24"]))
        .entity(entity(
            "follow-watch",
            Action::Monitor,
            &["198.51.100.0/24"],
        ))
        .to_string()
}

/// Sends one datagram from the client's lab address to `dst`:5353.
fn send(lab: &Lab, dst: IpAddr, sport: u16) {
    lab::in_netns(lab.cli_ns(), || {
        let socket = UdpSocket::bind(SocketAddr::new(CLI_V4.into(), sport)).unwrap();
        socket
            .send_to(&[7u8; 32], SocketAddr::new(dst, 5353))
            .unwrap();
    })
    .unwrap();
}

/// A running `embargo events --follow ...`: its stdout lines arrive on a channel; killed on
/// drop.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follower {
    fn start(lab: &Lab, extra: &[&str]) -> Self {
        let socket = lab.control_socket().display().to_string();
        let mut args = vec!["events", "--follow", "--control-socket", socket.as_str()];
        args.extend_from_slice(extra);
        let mut child = lab
            .embargo_in_gw(&args)
            .unwrap()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Lines received so far (without waiting).
    fn drain(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends to `dst` every 200 ms until `follower` prints a line that `done` accepts (10 s at
/// most); every line it printed meanwhile.
fn until_seen(
    lab: &Lab,
    follower: &Follower,
    dst: IpAddr,
    done: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut sport = 41000;
    while Instant::now() < deadline {
        send(lab, dst, sport);
        sport += 1;
        std::thread::sleep(Duration::from_millis(200));
        seen.extend(follower.drain());
        if seen.iter().any(|l| done(l)) {
            return seen;
        }
    }
    panic!("no matching line within 10 s; got {seen:?}");
}

fn record(line: &str) -> Record {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

#[test]
fn events_follow_streams_drops_as_they_happen_and_filters_by_entity() {
    let lab = Lab::new().unwrap();
    lab.check_contained().unwrap();
    let blocked: IpAddr = "203.0.113.7".parse().unwrap();
    let watched: IpAddr = "198.51.100.7".parse().unwrap();
    lab.add_remote(blocked).unwrap();
    lab.add_remote(watched).unwrap();
    let path = lab.write_file("follow.toml", &config()).unwrap();
    let agent = lab.start_agent(&path, Role::Inside).unwrap();
    let digest = agent.status_json().unwrap().digest;

    let all = Follower::start(&lab, &["--json"]);
    let only_watch = Follower::start(&lab, &["--json", "--entity", "follow-watch"]);
    let text = Follower::start(&lab, &[]);

    // Traffic to the blocked address: the JSON follower gets its record.
    let lines = until_seen(&lab, &all, blocked, &|l| l.contains("\"follow-drop\""));
    let r = record(
        lines
            .iter()
            .find(|l| l.contains("\"follow-drop\""))
            .unwrap(),
    );
    assert_eq!(r.entity, "follow-drop", "{r:?}");
    assert_eq!(r.destination, blocked, "{r:?}");
    assert_eq!(r.source, IpAddr::from(CLI_V4), "{r:?}");
    assert_eq!(r.verdict, "dropped", "{r:?}");
    assert_eq!(r.direction, "outbound", "{r:?}");
    assert_eq!(r.protocol, "udp", "{r:?}");
    assert_eq!(r.destination_port, Some(5353), "{r:?}");
    assert_eq!(r.interface, lab.gw_if(), "{r:?}");
    assert_eq!(r.policy_digest, digest, "{r:?}");
    assert_eq!(r.designations.len(), 1, "{r:?}");
    assert_eq!(r.designations[0].reference, "NETNS-follow-drop", "{r:?}");

    // The text follower got the same drop as a line.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut text_lines = Vec::new();
    while !text_lines
        .iter()
        .any(|l: &String| l.contains("entity follow-drop"))
    {
        assert!(Instant::now() < deadline, "text lines: {text_lines:?}");
        std::thread::sleep(Duration::from_millis(100));
        text_lines.extend(text.drain());
    }
    let line = text_lines
        .iter()
        .find(|l| l.contains("entity follow-drop"))
        .unwrap();
    assert!(
        line.contains(" dropped outbound ") && line.contains(" -> 203.0.113.7:5353 "),
        "{line}"
    );

    // Traffic to the monitored address: the filtered follower gets it, and it never got the
    // blocked entity's events.
    let watch_lines = until_seen(&lab, &only_watch, watched, &|l| {
        l.contains("\"follow-watch\"")
    });
    for l in &watch_lines {
        let r = record(l);
        assert_eq!(r.entity, "follow-watch", "{l}");
        assert_eq!(r.verdict, "monitored", "{l}");
        assert_eq!(r.destination, watched, "{l}");
    }

    // An entity the policy does not have: refused, with the agent's answer.
    let out = lab
        .embargo_in_gw(&[
            "events",
            "--follow",
            "--entity",
            "nobody",
            "--control-socket",
            &lab.control_socket().display().to_string(),
        ])
        .unwrap()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no entity `nobody`"), "{stderr}");

    // Two followers leave; the one left still gets events.
    drop(text);
    drop(only_watch);
    let _ = all.drain();
    until_seen(&lab, &all, blocked, &|l| l.contains("\"follow-drop\""));
    agent.stop().unwrap();
}
