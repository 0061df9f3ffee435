//! The capabilities `embargo run` needs, measured (deploy/CAPABILITIES.md has the whole table).
//!
//! The agent runs in a netns lab as `nobody` with only the capabilities under test, passed as
//! ambient capabilities through `setpriv` the way systemd's `AmbientCapabilities=` and a
//! Kubernetes `capabilities.add` pass them. With CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON it starts,
//! answers status, drops what it should (host egress included), writes its audit record and its
//! drop events; without any one of them it exits 1 with the privileges message and attaches
//! nothing. Needs root (netns, setpriv).

use std::{
    os::unix::fs::{PermissionsExt as _, chown},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use embargo::config::{Action, DirectionSet};
use embargo_tests::{
    lab::{self, Lab, Probe},
    policy::{LabEntity, LabPolicy},
};

/// What deploy/systemd/embargo.service and deploy/kubernetes/daemonset.yaml grant.
const MINIMAL: [&str; 3] = ["bpf", "net_admin", "perfmon"];
/// `nobody`/`nogroup`: an unprivileged user every machine has.
const NOBODY: u32 = 65534;
/// CAP_NET_ADMIN, CAP_PERFMON, CAP_BPF bits of a `CapEff:` set.
const MINIMAL_BITS: u64 = (1 << 12) | (1 << 38) | (1 << 39);
const BLOCKED: &str = "203.0.113.7";
const ALLOWED: &str = "192.0.2.10";
const PRIVILEGES: &str = "embargo needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (or root)";

fn config_text() -> String {
    LabPolicy::new()
        .entity(
            LabEntity::new("cap-drop", Action::Drop, &["203.0.113.0/24"])
                .name("Capability Test Entity")
                .direction(DirectionSet::Both)
                .designation("caps", "CAPS-1")
                .source("caps")
                .guard("test netns"),
        )
        .to_string()
}

/// A lab, the binary and config where `nobody` can read them, and a folder `nobody` owns for
/// the control socket, the audit log and the event log (as systemd's
/// RuntimeDirectory/StateDirectory would).
struct Setup {
    lab: Lab,
    bin: PathBuf,
    config: PathBuf,
    owned: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let lab = Lab::new().unwrap();
        lab.check_contained().unwrap();
        let dir = lab.dir().to_owned();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Copied: the checkout may sit in a folder `nobody` cannot enter.
        let bin = dir.join("embargo");
        std::fs::copy(lab::embargo_bin().unwrap(), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = lab.write_file("embargo.toml", &config_text()).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        let owned = dir.join("owned");
        std::fs::create_dir(&owned).unwrap();
        chown(&owned, Some(NOBODY), Some(NOBODY)).unwrap();
        std::fs::set_permissions(&owned, std::fs::Permissions::from_mode(0o700)).unwrap();
        for a in [BLOCKED, ALLOWED] {
            lab.add_remote(a.parse().unwrap()).unwrap();
        }
        Self {
            lab,
            bin,
            config,
            owned,
        }
    }

    fn socket(&self) -> PathBuf {
        self.owned.join("control.sock")
    }

    fn audit_log(&self) -> PathBuf {
        self.owned.join("audit.jsonl")
    }

    fn events_log(&self) -> PathBuf {
        self.owned.join("events.jsonl")
    }

    fn log_file(&self, caps: &[&str]) -> PathBuf {
        self.lab.dir().join(format!("agent-{}.log", caps.join("+")))
    }

    /// `embargo run` in the gateway namespace as `nobody` with exactly `caps` (ambient,
    /// inheritable, bounding), output to [`Setup::log_file`].
    fn start(&self, caps: &[&str]) -> Running {
        self.start_on(caps, &format!("{}:inside", self.lab.gw_if()))
    }

    /// As [`Setup::start`], with `--interface IFACE`.
    fn start_on(&self, caps: &[&str], iface: &str) -> Running {
        let set: String = caps.iter().map(|c| format!(",+{c}")).collect();
        let log = self.log_file(caps);
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.lab.gw_ns(), "setpriv"])
            .arg(format!("--reuid={NOBODY}"))
            .arg(format!("--regid={NOBODY}"))
            .arg("--clear-groups")
            .arg(format!("--inh-caps=-all{set}"))
            .arg(format!("--ambient-caps=-all{set}"))
            .arg(format!("--bounding-set=-all{set}"))
            .arg(&self.bin)
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .arg("--interface")
            .arg(iface)
            .arg("--control-socket")
            .arg(self.socket())
            .arg("--audit-log")
            .arg(self.audit_log())
            .arg("--events-log")
            .arg(self.events_log())
            // bpffs is root's: this run measures the capabilities, not pinning.
            .arg("--no-pin")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // `ip netns exec` and setpriv both exec, so the child's pid is the agent's.
        Running {
            child: Some(cmd.spawn().unwrap()),
            log,
        }
    }
}

/// An agent process; SIGKILLed on drop unless it already exited.
struct Running {
    child: Option<Child>,
    log: PathBuf,
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the control socket answers; panics with the log if the agent exits first.
    fn wait_ready(&mut self, socket: &Path) {
        let start = Instant::now();
        while embargo::observe::status::query(socket).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!(
                    "the agent exited ({status}) before answering; log:\n{}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no status within 30 s; log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to 30 s for the agent to exit by itself.
    fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the agent is still running after 30 s; log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn terminate(&mut self) -> ExitStatus {
        // SAFETY: kill with the pid of a child we spawned and have not reaped.
        unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGTERM) };
        self.wait_exit()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A field of `/proc/<pid>/status`, e.g. `Uid` or `CapEff`.
fn proc_status(pid: u32, field: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_owned()
}

#[test]
fn the_minimal_set_runs_the_agent_as_an_unprivileged_user() {
    let s = Setup::new();
    let mut agent = s.start(&MINIMAL);
    agent.wait_ready(&s.socket());

    // Really unprivileged: nobody, holding exactly the three capabilities.
    let pid = agent.pid();
    assert!(
        proc_status(pid, "Uid")
            .split_whitespace()
            .all(|u| u == "65534"),
        "{}",
        proc_status(pid, "Uid")
    );
    assert_eq!(
        u64::from_str_radix(&proc_status(pid, "CapEff"), 16).unwrap(),
        MINIMAL_BITS
    );

    let status = embargo::observe::status::query(&s.socket()).unwrap();
    assert_eq!(status.pid, pid);
    assert_eq!(status.interfaces.len(), 1, "{status:?}");
    assert_eq!(status.interfaces[0].name, s.lab.gw_if());
    assert_eq!(status.interfaces[0].role, "inside");
    assert!(s.lab.xdp_attached().unwrap());

    // The data plane works: blocked dropped and counted, the neighbour address delivered.
    let results = s
        .lab
        .probe(
            &[
                Probe::to(BLOCKED.parse().unwrap()),
                Probe::to(ALLOWED.parse().unwrap()),
            ],
            5,
        )
        .unwrap();
    assert!(results[0].blocked(), "{results:?}");
    assert!(results[1].delivered(), "{results:?}");
    let status = embargo::observe::status::query(&s.socket()).unwrap();
    assert_eq!(
        lab::counter(&status, "cap-drop", "outbound", "dropped").map(|(p, _)| p),
        Some(5),
        "{status:?}"
    );

    // The applied policy is in the audit log, which `nobody` created in its own folder.
    let report = embargo::observe::audit::verify(&s.audit_log()).unwrap();
    assert!(report.intact() && report.records == 1, "{report:?}");
    let record: embargo::observe::audit::Record = serde_json::from_str(
        std::fs::read_to_string(s.audit_log())
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        record.digest,
        embargo_tests::compile_text(&config_text()).digest(),
        "{record:?}"
    );
    assert_eq!(record.changes.prefixes_added, 1);

    // The five drops became events (the ring buffer is read with these capabilities too).
    let deadline = Instant::now() + Duration::from_secs(10);
    let events = loop {
        let text = std::fs::read_to_string(s.events_log()).unwrap_or_default();
        let lines: Vec<embargo::observe::events::Record> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= 5 || Instant::now() > deadline {
            break lines;
        }
        thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(events.len(), 5, "{events:?}\nlog:\n{}", agent.log());
    for e in &events {
        assert_eq!(
            (e.entity.as_str(), e.verdict.as_str(), e.destination),
            ("cap-drop", "dropped", BLOCKED.parse().unwrap()),
            "{e:?}"
        );
    }

    let exit = agent.terminate();
    assert!(exit.success(), "{exit}; log:\n{}", agent.log());
    assert!(!s.lab.xdp_attached().unwrap());
    assert!(!s.socket().exists(), "control socket left behind");
}

/// Host egress needs nothing more: the TC classifier is loaded and attached (a TCX link, or a
/// qdisc and filter on older kernels: CAP_NET_ADMIN either way) with the same three.
#[test]
fn the_minimal_set_enforces_host_egress() {
    let s = Setup::new();
    // In the blocked /24, on the client's side: what the gateway itself sends there.
    let sent_to: std::net::IpAddr = "203.0.113.99".parse().unwrap();
    s.lab.add_client_remote(sent_to).unwrap();
    let mut agent = s.start_on(&MINIMAL, &format!("{}:outside:egress", s.lab.gw_if()));
    agent.wait_ready(&s.socket());
    assert_eq!(
        u64::from_str_radix(&proc_status(agent.pid(), "CapEff"), 16).unwrap(),
        MINIMAL_BITS
    );
    let status = embargo::observe::status::query(&s.socket()).unwrap();
    assert!(status.interfaces[0].egress, "{status:?}");
    assert!(s.lab.egress_is_embargo_alone().unwrap());
    let results = s.lab.probe_from_gw(&[Probe::to(sent_to)], 5).unwrap();
    assert!(results[0].blocked(), "{results:?}");
    let status = embargo::observe::status::query(&s.socket()).unwrap();
    assert_eq!(
        lab::counter(&status, "cap-drop", "outbound", "dropped").map(|(p, _)| p),
        Some(5),
        "{status:?}"
    );
    let exit = agent.terminate();
    assert!(exit.success(), "{exit}; log:\n{}", agent.log());
    assert!(s.lab.egress_programs().unwrap().is_empty());
    assert!(!s.lab.xdp_attached().unwrap());
}

/// Each capability of the minimal set, dropped, stops the agent at a different step; every
/// time with the privileges message and nothing attached or recorded.
#[test]
fn without_any_one_of_them_the_agent_names_the_privileges_it_needs() {
    let s = Setup::new();
    for (missing, step) in [
        ("bpf", "permission denied while creating BPF maps"),
        (
            "net_admin",
            "permission denied while loading the XDP program:",
        ),
        (
            "perfmon",
            "permission denied while loading the XDP program (the verifier refused it without CAP_PERFMON)",
        ),
    ] {
        let caps: Vec<&str> = MINIMAL.into_iter().filter(|c| *c != missing).collect();
        let mut agent = s.start(&caps);
        let exit = agent.wait_exit();
        let log = agent.log();
        assert_eq!(
            exit.code(),
            Some(1),
            "without {missing}: {exit}; log:\n{log}"
        );
        assert!(
            log.contains(step),
            "without {missing}: expected `{step}` in:\n{log}"
        );
        assert!(log.contains(PRIVILEGES), "without {missing}:\n{log}");
        assert!(!s.lab.xdp_attached().unwrap(), "without {missing}");
        assert!(
            !s.audit_log().exists(),
            "without {missing}: an audit log was written"
        );
    }
    // And with none at all.
    let mut agent = s.start(&[]);
    assert_eq!(agent.wait_exit().code(), Some(1), "{}", agent.log());
    assert!(agent.log().contains(PRIVILEGES), "{}", agent.log());
}
