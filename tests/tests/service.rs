//! The agent under a service manager (root, netns lab): systemd's notification protocol as
//! the unit's `Type=notify` relies on it. The test plays systemd: a datagram socket named by
//! `NOTIFY_SOCKET`, and the messages the agent sends to it at start, reload and stop.

use std::{os::unix::net::UnixDatagram, path::Path, process::Command, time::Duration};

use embargo::config::Role;
use embargo_tests::lab::{Lab, Probe};

const BLOCKED: &str = "203.0.113.9";

const CONFIG: &str = r#"enforce = ["TEST"]
[[entities]]
id = "notify-drop"
name = "Notify Test Entity"
action = "drop"
designations = [{ authority = "TEST", regime = "notify", reference = "N-1", listed_on = 2025-01-01, source = "notify test" }]
networks = [{ prefixes = ["203.0.113.0/24"], guard_override = "test netns", evidence = { kind = "manual", source = "notify test", retrieved = 2026-01-01, confidence = "high" } }]
"#;

/// The next message on `sock` (one datagram: newline-separated `KEY=VALUE` lines).
fn next(sock: &UnixDatagram, what: &str, log: &dyn Fn() -> String) -> String {
    let mut buf = vec![0u8; 4096];
    match sock.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) => panic!("no {what} notification: {e}\nagent log:\n{}", log()),
    }
}

#[test]
fn the_agent_says_ready_reloading_and_stopping_to_the_service_manager() {
    let lab = Lab::new().unwrap_or_else(|e| panic!("{e}"));
    lab.check_contained().unwrap();
    lab.add_remote(BLOCKED.parse().unwrap()).unwrap();
    let config = lab.write_file("embargo.toml", CONFIG).unwrap();
    let path = lab.dir().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let notify_at = |p: &Path| {
        let p = p.to_owned();
        move |mut c: Command| {
            c.env("NOTIFY_SOCKET", &p);
            c
        }
    };
    let agent = lab
        .start_agent_wrapped(&config, Role::Inside, &[], &notify_at(&path))
        .unwrap_or_else(|e| panic!("{e}"));
    let log = || agent.log();

    // READY=1 is sent once enforcing: by the time it is read, listed traffic is dropped.
    let ready = next(&sock, "READY", &log);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(ready.lines().any(|l| l == "STATUS=enforcing"), "{ready:?}");
    let r = lab
        .probe(&[Probe::to(BLOCKED.parse().unwrap())], 2)
        .unwrap();
    assert!(r[0].blocked(), "{r:?}\n{}", log());

    // A reload is bracketed: RELOADING=1 with the monotonic clock, then READY=1.
    // SAFETY: kill with the pid of the agent this test started.
    unsafe { libc::kill(agent.pid() as libc::pid_t, libc::SIGHUP) };
    let reloading = next(&sock, "RELOADING", &log);
    assert!(
        reloading.lines().any(|l| l == "RELOADING=1"),
        "{reloading:?}"
    );
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    assert!(usec > 0);
    let ready = next(&sock, "READY after the reload", &log);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(
        ready
            .lines()
            .any(|l| l == "STATUS=enforcing (reloaded: SIGHUP)"),
        "{ready:?}"
    );

    // A reload the configuration refuses still ends in READY=1: the old policy enforces.
    std::fs::write(&config, "this is not toml = = =\n").unwrap();
    unsafe { libc::kill(agent.pid() as libc::pid_t, libc::SIGHUP) };
    let _ = next(&sock, "RELOADING", &log);
    let ready = next(&sock, "READY after a refused reload", &log);
    assert!(
        ready.lines().any(|l| l == "READY=1")
            && ready
                .lines()
                .any(|l| l.starts_with("STATUS=enforcing the previous policy")),
        "{ready:?}"
    );

    agent.stop().unwrap();
    // The watcher may have reloaded for the changed file as well: the last word is STOPPING.
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|m: &String| m.lines().any(|l| l == "STOPPING=1"))
    {
        assert!(seen.len() < 8, "no STOPPING=1 in {seen:?}");
        seen.push(next(&sock, "STOPPING", &String::new));
    }
}
