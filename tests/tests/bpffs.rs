//! An agent on a machine with no bpffs mounted (root, netns lab).
//!
//! Every agent here runs in a mount namespace of its own (`unshare -m`, private propagation)
//! where `/sys/fs/bpf` is unmounted first, as on a fresh machine or under `ip netns exec`; the
//! test's own namespace is never changed. With CAP_SYS_ADMIN the agent mounts bpffs at
//! `/sys/fs/bpf`, pins there, enforces, and says in its log and in `embargo status` that the
//! pins last only as long as that private namespace. Without CAP_SYS_ADMIN it refuses to start
//! with a message that says what to add, and `--no-pin` still runs.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use embargo::{
    config::{Action, Role},
    dataplane::bpffs::{Mount, Namespace},
};
use embargo_tests::{
    lab::{self, Lab, Probe, counter},
    policy::{LabEntity, LabPolicy},
};

const ENTITY: &str = "bpffs-drop";
const BLOCKED: &str = "203.0.113.9";
const ALLOWED: &str = "192.0.2.10";

fn config_text() -> String {
    LabPolicy::new()
        .entity(
            LabEntity::new(ENTITY, Action::Drop, &["203.0.113.0/24"])
                .name("Bpffs Test Entity")
                .designation("bpffs", "B-1")
                .source("bpffs test")
                .guard("test netns"),
        )
        .to_string()
}

/// `cmd` run in a new mount namespace (private propagation) where `/sys/fs/bpf` is unmounted
/// first; every step execs, so the child's pid stays the agent's.
fn without_bpffs(cmd: Command) -> Command {
    let mut c = Command::new("unshare");
    c.args(["-m", "--propagation", "private", "--", "sh", "-c"])
        .arg(
            "while umount -l /sys/fs/bpf 2>/dev/null; do :; done; \
             if grep -q ' /sys/fs/bpf bpf ' /proc/self/mounts; then echo 'bpffs still mounted'; exit 99; fi; \
             exec \"$@\"",
        )
        .arg("sh")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    c
}

fn lab() -> Lab {
    let lab = Lab::new().unwrap_or_else(|e| panic!("{e}"));
    lab.check_contained().unwrap();
    for a in [BLOCKED, ALLOWED] {
        lab.add_remote(a.parse().unwrap()).unwrap();
    }
    lab
}

#[test]
fn without_bpffs_the_agent_mounts_it_pins_and_enforces() {
    let lab = lab();
    let config = lab.write_file("embargo.toml", &config_text()).unwrap();
    let agent = lab
        .start_agent_wrapped(&config, Role::Inside, &[], &without_bpffs)
        .unwrap_or_else(|e| panic!("{e}"));
    let r = lab
        .probe(
            &[
                Probe::to(BLOCKED.parse().unwrap()),
                Probe::to(ALLOWED.parse().unwrap()),
            ],
            3,
        )
        .unwrap();
    assert!(r[0].blocked(), "{r:?}\n{}", agent.log());
    assert!(r[1].delivered(), "{r:?}\n{}", agent.log());
    let status = agent.status_json().unwrap();
    assert_eq!(
        counter(&status, ENTITY, "outbound", "dropped").map(|c| c.0),
        Some(3)
    );
    let pins = status
        .start
        .as_ref()
        .and_then(|s| s.pins.clone())
        .expect("status names the pins");
    assert_eq!(pins.mount, Mount::Mounted, "{pins:?}");
    // Private; or Unknown where /proc/1/ns/mnt cannot be read (some sandboxes): then the agent
    // says it may be private.
    assert_ne!(pins.namespace, Namespace::Initial, "{pins:?}");
    assert_eq!(pins.pin_dir, lab.pin_dir());
    let text = agent.status_text().unwrap();
    assert!(
        text.contains("the agent mounted bpffs at /sys/fs/bpf in ")
            && text.contains("private mount namespace"),
        "{text}"
    );
    let log = agent.log();
    assert_eq!(
        log.matches("mounted bpffs in a private mount namespace")
            .count(),
        1,
        "said once at start:\n{log}"
    );
    // The mount was the agent's namespace's alone: the test's has no pins of this lab.
    assert!(!lab.pin_dir().join(format!("link-{}", lab.gw_if())).exists());
    agent.stop().unwrap();
}

/// How a run of [`run_without_sys_admin`] ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// It exited by itself with this code.
    Exited(Option<i32>),
    /// It logged that it runs (attached, signal handlers in place); then SIGTERM stopped it
    /// with this code.
    AttachedThenStopped(Option<i32>),
}

/// `embargo run` in the lab's gateway namespace, without bpffs, as root with exactly the
/// capabilities the unit grants (no CAP_SYS_ADMIN): how it ended (within 20 s) and its output.
fn run_without_sys_admin(lab: &Lab, config: &Path, extra: &[&str]) -> (Ended, String) {
    let set = ",+bpf,+net_admin,+perfmon";
    let socket = lab.dir().join(format!("control-{}.sock", extra.len()));
    let args = [
        "run",
        "--config",
        &config.display().to_string(),
        "--interface",
        &format!("{}:inside", lab.gw_if()),
        "--control-socket",
        &socket.display().to_string(),
        "--audit-log",
        &lab.audit_log().display().to_string(),
        "--events-log",
        &lab.events_log().display().to_string(),
        "--state-dir",
        &lab.state_dir().display().to_string(),
        "--pin-dir",
        &lab.pin_dir().display().to_string(),
    ]
    .map(|a| a.to_owned());
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(extra);
    // Unmounted and the network namespace entered with full privileges, then the agent
    // dropped to the unit's capabilities.
    let mut limited = Command::new("nsenter");
    limited
        .arg(format!("--net=/run/netns/{}", lab.gw_ns()))
        .arg("--")
        .arg("setpriv")
        .arg(format!("--inh-caps=-all{set}"))
        .arg(format!("--ambient-caps=-all{set}"))
        .arg(format!("--bounding-set=-all{set}"))
        .arg(lab::embargo_bin().unwrap())
        .args(&args);
    let log = lab.dir().join(format!("no-sys-admin-{}.log", extra.len()));
    let out = std::fs::File::create(&log).unwrap();
    // Every step execs: the child's pid is the agent's.
    let mut child = without_bpffs(limited)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let start = Instant::now();
    let ended = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Ended::Exited(s.code());
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let running = text.contains("running; SIGHUP");
        if running || start.elapsed() > Duration::from_secs(20) {
            // SAFETY: kill with the pid of a child we have not reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let code = child.wait().unwrap().code();
            if !running {
                break Ended::Exited(None);
            }
            break Ended::AttachedThenStopped(code);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (ended, std::fs::read_to_string(&log).unwrap())
}

#[test]
fn without_cap_sys_admin_it_says_what_to_add_and_no_pin_still_runs() {
    let lab = lab();
    let config = lab.write_file("embargo.toml", &config_text()).unwrap();
    let (ended, out) = run_without_sys_admin(&lab, &config, &[]);
    assert_eq!(ended, Ended::Exited(Some(1)), "refused at start:\n{out}");
    for needle in [
        "bpffs is not mounted at /sys/fs/bpf and the agent cannot mount it",
        "CAP_SYS_ADMIN",
        "mount -t bpf bpf /sys/fs/bpf",
        "--no-pin",
    ] {
        assert!(out.contains(needle), "`{needle}` in:\n{out}");
    }
    assert!(!lab.xdp_attached().unwrap(), "nothing attached");
    // --no-pin: no bpffs needed; it attaches, and exits 0 on SIGTERM.
    let (ended, out) = run_without_sys_admin(&lab, &config, &["--no-pin"]);
    assert_eq!(ended, Ended::AttachedThenStopped(Some(0)), "{out}");
}
