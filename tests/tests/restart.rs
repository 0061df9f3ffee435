//! Restarts that reconcile by diff, end to end in the netns lab (root).
//!
//! A killed agent leaves its XDP link, its TCX egress link and its maps pinned, with a state file
//! describing them. The next agent reuses those maps when the state agrees, applies its policy
//! as a diff (only the changed entries are written, counters continue) and takes the links over
//! atomically; when the state is missing, corrupt or stale it loads a fresh generation instead,
//! still without a gap. `embargo detach` removes everything. Each test floods a blocked and an
//! allowed address through the restart and counts what leaked or was lost.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use embargo::{
    config::{Action, Role},
    observe::status::Status,
};
use embargo_tests::{
    lab::{Agent, Lab, Probe, ProbeResult, counter},
    policy::{LabEntity, LabPolicy},
};

const ENTITY: &str = "lab-drop";
const STATE_FILE: &str = embargo::dataplane::state::FILE_NAME;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn entity(id: &str, prefixes: &[&str]) -> LabEntity {
    LabEntity::new(id, Action::Drop, prefixes)
        .name("Lab Drop")
        .designation("lab", "R-1")
        .source("restart test")
        .guard("restart test")
}

fn config(prefixes: &[&str]) -> String {
    LabPolicy::new()
        .entity(entity(ENTITY, prefixes))
        .to_string()
}

fn new_lab() -> Lab {
    Lab::new().unwrap_or_else(|e| panic!("{e}"))
}

fn blocked(r: &[ProbeResult]) -> bool {
    r.iter().all(ProbeResult::blocked)
}

fn delivered(r: &[ProbeResult]) -> bool {
    r.iter().all(ProbeResult::delivered)
}

fn dropped(status: &Status) -> u64 {
    counter(status, ENTITY, "outbound", "dropped").map_or(0, |c| c.0)
}

/// The pinned maps of the one generation under the lab's pin folder: (name, kernel map id).
fn pinned_maps(lab: &Lab) -> (PathBuf, Vec<(String, u32)>) {
    let gens: Vec<PathBuf> = std::fs::read_dir(lab.pin_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("maps-")
        })
        .collect();
    assert_eq!(gens.len(), 1, "one pinned generation: {gens:?}");
    let mut maps: Vec<(String, u32)> = std::fs::read_dir(&gens[0])
        .unwrap()
        .flatten()
        .map(|e| {
            let id = aya::maps::MapData::from_pin(e.path())
                .unwrap()
                .info()
                .unwrap()
                .id();
            (e.file_name().to_string_lossy().into_owned(), id)
        })
        .collect();
    maps.sort();
    assert!(maps.len() >= 9, "{maps:?}");
    (gens[0].clone(), maps)
}

/// The ids of the maps the XDP program attached to the gateway veth uses.
fn attached_map_ids(lab: &Lab) -> Vec<u32> {
    let out = lab
        .ip_in(lab.gw_ns(), &["-j", "link", "show", "dev", lab.gw_if()])
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let prog = v[0]["xdp"]["prog"]["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no XDP program in {out}")) as u32;
    let info = aya::programs::loaded_programs()
        .flatten()
        .find(|p| p.id() == prog)
        .unwrap();
    info.map_ids().unwrap().unwrap_or_default()
}

/// Sends to `bad` (blocked before and after) and `good` (allowed before and after) in a loop
/// while `during` runs; returns what `during` returned, datagrams to `bad` that arrived, datagrams
/// to `good` that were lost, and the rounds sent.
fn flood<T: Send>(
    lab: &Lab,
    bad: IpAddr,
    good: IpAddr,
    from_gw: bool,
    during: impl FnOnce() -> T + Send,
) -> (T, usize, usize, usize) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            let (mut leaked, mut lost, mut rounds) = (0, 0, 0);
            while !stop.load(Ordering::Relaxed) {
                let probes = [Probe::to(bad), Probe::to(good)];
                let r = if from_gw {
                    lab.probe_from_gw(&probes, 3).unwrap()
                } else {
                    lab.probe(&probes, 3).unwrap()
                };
                leaked += r[0].received;
                lost += r[1].sent - r[1].received;
                rounds += 1;
            }
            (leaked, lost, rounds)
        });
        std::thread::sleep(Duration::from_millis(500));
        // A failed assertion in `during` stops the sender too, so the test fails, not hangs.
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(during));
        if out.is_ok() {
            std::thread::sleep(Duration::from_millis(500));
        }
        stop.store(true, Ordering::Relaxed);
        let (leaked, lost, rounds) = sender.join().unwrap();
        match out {
            Ok(out) => (out, leaked, lost, rounds),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

fn assert_no_gap(leaked: usize, lost: usize, rounds: usize) {
    assert!(rounds >= 5, "too few rounds of traffic: {rounds}");
    assert_eq!(
        leaked, 0,
        "blocked datagrams got through during the restart"
    );
    assert_eq!(lost, 0, "allowed datagrams were lost during the restart");
}

/// Kills `agent` with SIGKILL, checks enforcement goes on without it, and starts the next one.
fn kill_and_restart<'a>(lab: &'a Lab, agent: Agent<'a>, config: &Path) -> Agent<'a> {
    let log = agent.kill9().unwrap();
    assert!(!log.contains("detached"), "{log}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(lab.xdp_attached().unwrap());
    lab.start_agent(config, Role::Inside).unwrap()
}

/// (a) The same policy after `kill -9`: the maps are reused (same kernel map ids, used by the
/// new program), the diff writes nothing, counters go on from where they were, and no blocked
/// datagram gets through.
#[test]
fn same_policy_restart_reuses_the_maps_and_counters() {
    let lab = new_lab();
    let (bad, good) = (ip("203.0.113.7"), ip("192.0.2.10"));
    for a in [bad, good] {
        lab.add_remote(a).unwrap();
    }
    let path = lab
        .write_file("restart.toml", &config(&["203.0.113.0/24"]))
        .unwrap();
    let agent = lab.start_agent(&path, Role::Inside).unwrap();
    let first = agent.status().unwrap().start.unwrap();
    assert_eq!(first.kind, "fresh", "{first:?}");
    assert!(blocked(&lab.probe(&[Probe::to(bad)], 20).unwrap()));
    let before = dropped(&agent.status().unwrap());
    assert!(before >= 20, "{before}");
    let (gen_dir, maps) = pinned_maps(&lab);
    assert!(lab.state_dir().join(STATE_FILE).exists());

    let (agent, leaked, lost, rounds) = flood(&lab, bad, good, false, || {
        kill_and_restart(&lab, agent, &path)
    });
    assert_no_gap(leaked, lost, rounds);
    let status = agent.status().unwrap();
    let start = status.start.clone().unwrap();
    assert_eq!(start.kind, "adopted", "{start:?}\n{}", agent.log());
    assert_eq!(
        (
            start.prefixes_changed,
            start.entries_written,
            start.policies_written
        ),
        (0, 0, 0),
        "{start:?}"
    );
    assert!(
        agent
            .status_text()
            .unwrap()
            .contains("start: adopted the pinned maps"),
        "{}",
        agent.status_text().unwrap()
    );
    // The very same maps, now used by the new agent's program.
    let (gen_after, maps_after) = pinned_maps(&lab);
    assert_eq!((gen_dir, &maps), (gen_after, &maps_after));
    let used = attached_map_ids(&lab);
    for (name, id) in &maps {
        if name.starts_with("EMB_V") || name == "EMB_COUNTERS" || name == "EMB_POLICY" {
            assert!(
                used.contains(id),
                "the attached program uses {used:?}, not pinned {name} {id}"
            );
        }
    }
    // Counters continue: everything dropped before the restart and during it.
    let after = dropped(&status);
    assert!(
        after > before,
        "counters went back: {before} before the restart, {after} after"
    );
    agent.stop().unwrap();
    assert!(!lab.state_dir().join(STATE_FILE).exists());
}

/// (b) The policy changed while the agent was down: the next agent writes only the difference
/// (one root entry for the added /24, one for the removed one), the added prefix is blocked and
/// the removed one delivered, and an address blocked before and after never leaks.
#[test]
fn policy_changed_while_down_is_applied_as_a_diff() {
    let lab = new_lab();
    let (bad, removed, added, good) = (
        ip("203.0.113.7"),
        ip("198.51.100.9"),
        ip("198.18.0.5"),
        ip("192.0.2.10"),
    );
    for a in [bad, removed, added, good] {
        lab.add_remote(a).unwrap();
    }
    let path = lab
        .write_file(
            "restart.toml",
            &config(&["203.0.113.0/24", "198.51.100.0/24"]),
        )
        .unwrap();
    let agent = lab.start_agent(&path, Role::Inside).unwrap();
    assert!(blocked(
        &lab.probe(&[Probe::to(bad), Probe::to(removed)], 3).unwrap()
    ));
    assert!(delivered(&lab.probe(&[Probe::to(added)], 3).unwrap()));
    let (_, maps) = pinned_maps(&lab);

    let (agent, leaked, lost, rounds) = flood(&lab, bad, good, false, || {
        let log = agent.kill9().unwrap();
        assert!(!log.contains("detached"), "{log}");
        std::fs::write(&path, config(&["203.0.113.0/24", "198.18.0.0/24"])).unwrap();
        lab.start_agent(&path, Role::Inside).unwrap()
    });
    assert_no_gap(leaked, lost, rounds);
    let start = agent.status().unwrap().start.unwrap();
    assert_eq!(start.kind, "adopted", "{start:?}\n{}", agent.log());
    assert_eq!(start.prefixes_changed, 2, "{start:?}");
    // The /24 added is a new two-node subtree under its /16 (5 non-zero words: the root's
    // vector, leaf bitmap and child base, the child's leaf bitmap and inline leaves), then its
    // direct entry; the one removed is its direct entry alone: 7 words, not the trie.
    assert_eq!(
        start.entries_written, 7,
        "a /24 added is one small subtree and a direct entry, one removed a direct entry: {start:?}"
    );
    assert_eq!(pinned_maps(&lab).1, maps, "the same maps");
    assert!(blocked(&lab.probe(&[Probe::to(added)], 3).unwrap()));
    assert!(delivered(&lab.probe(&[Probe::to(removed)], 3).unwrap()));
    assert!(blocked(&lab.probe(&[Probe::to(bad)], 3).unwrap()));
    agent.stop().unwrap();
}

/// A reload that needs a new data-plane generation (more entities than the maps hold) pins the
/// new generation's maps, names it in the state file and unpins the old one; after `kill -9` the
/// next agent adopts the new generation's maps with a diff that writes nothing.
#[test]
fn a_new_generation_during_the_run_is_pinned_and_adopted() {
    let lab = new_lab();
    let (bad, good) = (ip("203.0.113.7"), ip("192.0.2.10"));
    for a in [bad, good] {
        lab.add_remote(a).unwrap();
    }
    let path = lab
        .write_file("restart.toml", &config(&["203.0.113.0/24"]))
        .unwrap();
    let agent = lab.start_agent(&path, Role::Inside).unwrap();
    let (first_gen, _) = pinned_maps(&lab);
    // 80 entities: more than the 64 the first generation's maps hold.
    let mut policy = LabPolicy::new().entity(entity(ENTITY, &["203.0.113.0/24"]));
    for i in 0..80 {
        policy = policy.entity(entity(
            &format!("extra-{i}"),
            &[&format!("198.18.{i}.0/24")],
        ));
    }
    std::fs::write(&path, policy.to_string()).unwrap();
    // SAFETY: kill with the pid of the agent this test started.
    assert_eq!(unsafe { libc::kill(agent.pid() as i32, libc::SIGHUP) }, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while agent.status().unwrap().reloads.generations < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "no new generation: {}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The state writer unpins the old generation once the file names the new one: shortly after.
    while first_gen.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the old generation is still pinned: {}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (second_gen, maps) = pinned_maps(&lab);
    assert_ne!(first_gen, second_gen, "the new generation is pinned");
    assert!(blocked(&lab.probe(&[Probe::to(bad)], 3).unwrap()));

    let (agent, leaked, lost, rounds) = flood(&lab, bad, good, false, || {
        kill_and_restart(&lab, agent, &path)
    });
    assert_no_gap(leaked, lost, rounds);
    let start = agent.status().unwrap().start.unwrap();
    assert_eq!(start.kind, "adopted", "{start:?}\n{}", agent.log());
    assert_eq!((start.entries_written, start.policies_written), (0, 0));
    assert_eq!(pinned_maps(&lab), (second_gen, maps));
    assert_eq!(agent.status().unwrap().entities.len(), 81);
    agent.stop().unwrap();
}

/// (c) A corrupt state file, then a truncated one, then a missing one, then a stale one (naming
/// a generation no longer pinned), then pinned maps changed while no agent ran (the quick attestation of the trie's
/// content against the state file fails): each time the agent says why and loads a fresh generation that takes the pinned link
/// over without a gap, and the old generation's maps are unpinned.
#[test]
fn bad_or_missing_state_falls_back_to_a_fresh_generation() {
    let lab = new_lab();
    let (bad, good) = (ip("203.0.113.7"), ip("192.0.2.10"));
    for a in [bad, good] {
        lab.add_remote(a).unwrap();
    }
    let path = lab
        .write_file("restart.toml", &config(&["203.0.113.0/24"]))
        .unwrap();
    let state_file = lab.state_dir().join(STATE_FILE);
    let mut agent = lab.start_agent(&path, Role::Inside).unwrap();
    let stale = std::fs::read(&state_file).unwrap();
    for (case, tamper, why) in [
        (
            "corrupt",
            Box::new(|| std::fs::write(&state_file, "{\"format\": 1, \"layout\"").unwrap())
                as Box<dyn Fn() + Send + Sync>,
            "is not valid",
        ),
        (
            "truncated",
            Box::new(|| {
                let whole = std::fs::read(&state_file).unwrap();
                std::fs::write(&state_file, &whole[..whole.len() - 7]).unwrap()
            }),
            "its checksum does not match",
        ),
        (
            "missing",
            Box::new(|| std::fs::remove_file(&state_file).unwrap()),
            "no state file",
        ),
        (
            "stale",
            Box::new(|| std::fs::write(&state_file, &stale).unwrap()),
            "are not pinned",
        ),
        (
            "tampered",
            Box::new(|| tamper_v4_trie(&lab)),
            "is not what the state file describes",
        ),
    ] {
        let (gen_before, _) = pinned_maps(&lab);
        let (next, leaked, lost, rounds) = flood(&lab, bad, good, false, || {
            let log = agent.kill9().unwrap();
            assert!(!log.contains("detached"), "{log}");
            tamper();
            lab.start_agent(&path, Role::Inside).unwrap()
        });
        agent = next;
        assert_no_gap(leaked, lost, rounds);
        let start = agent.status().unwrap().start.unwrap();
        assert_eq!(start.kind, "fresh", "{case}: {start:?}");
        assert!(start.reason.contains(why), "{case}: {start:?}");
        let log = agent.log();
        assert!(
            log.contains("not reusing pinned maps; loading a fresh data-plane generation"),
            "{case}: {log}"
        );
        assert!(
            log.contains("adopted the pinned attachment"),
            "{case}: {log}"
        );
        let (gen_after, _) = pinned_maps(&lab);
        assert_ne!(gen_before, gen_after, "{case}: a new generation");
        assert!(
            !gen_before.exists(),
            "{case}: the old generation is unpinned"
        );
        assert!(state_file.exists(), "{case}: the new state is written");
        assert!(blocked(&lab.probe(&[Probe::to(bad)], 3).unwrap()));
    }
    agent.stop().unwrap();
}

/// (f) The agent is killed after a reload changed the maps in place but before the state file
/// caught up with it (the state writer works after the reload, off its critical path): simulated
/// by putting the file from before the reload back. The file describes an older content of the
/// same maps; the restarted agent sees the trie's fingerprint differ, says so and loads a fresh
/// generation, without a gap.
#[test]
fn a_state_file_behind_the_maps_falls_back_to_a_fresh_generation() {
    let lab = new_lab();
    let (bad, added, good) = (ip("203.0.113.7"), ip("198.51.100.9"), ip("192.0.2.10"));
    for a in [bad, added, good] {
        lab.add_remote(a).unwrap();
    }
    let path = lab
        .write_file("restart.toml", &config(&["203.0.113.0/24"]))
        .unwrap();
    let state_file = lab.state_dir().join(STATE_FILE);
    let agent = lab.start_agent(&path, Role::Inside).unwrap();
    let before = std::fs::read(&state_file).unwrap();
    std::fs::write(&path, config(&["203.0.113.0/24", "198.51.100.0/24"])).unwrap();
    // SAFETY: kill with the pid of the agent this test started.
    assert_eq!(unsafe { libc::kill(agent.pid() as i32, libc::SIGHUP) }, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::read(&state_file).unwrap() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the state file was not rewritten after the reload: {}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(agent.status().unwrap().reloads.last_kind, "in_place");
    assert!(blocked(&lab.probe(&[Probe::to(added)], 3).unwrap()));
    let (gen_before, _) = pinned_maps(&lab);
    let (agent, leaked, lost, rounds) = flood(&lab, bad, good, false, || {
        let log = agent.kill9().unwrap();
        assert!(!log.contains("detached"), "{log}");
        std::fs::write(&state_file, &before).unwrap();
        lab.start_agent(&path, Role::Inside).unwrap()
    });
    assert_no_gap(leaked, lost, rounds);
    let start = agent.status().unwrap().start.unwrap();
    assert_eq!(start.kind, "fresh", "{start:?}\n{}", agent.log());
    assert!(
        start
            .reason
            .contains("is not what the state file describes"),
        "{start:?}"
    );
    let (gen_after, _) = pinned_maps(&lab);
    assert_ne!(gen_before, gen_after, "a new generation");
    assert!(!gen_before.exists(), "the old generation is unpinned");
    assert!(blocked(
        &lab.probe(&[Probe::to(added), Probe::to(bad)], 3).unwrap()
    ));
    agent.stop().unwrap();
}

/// (g) Reloads during the run reach the state file (its writer applies each reload's prefix
/// edits to the sets it keeps): a prefix removed and one added in place, then `kill -9` and the
/// same policy again; the next agent adopts the maps with a diff that changes nothing, so the
/// file held exactly the prefixes the maps did.
#[test]
fn reloads_during_the_run_reach_the_state_file() {
    let lab = new_lab();
    let (bad, removed, added, good) = (
        ip("203.0.113.7"),
        ip("198.51.100.9"),
        ip("198.18.0.5"),
        ip("192.0.2.10"),
    );
    for a in [bad, removed, added, good] {
        lab.add_remote(a).unwrap();
    }
    let path = lab
        .write_file(
            "restart.toml",
            &config(&["203.0.113.0/24", "198.51.100.0/24"]),
        )
        .unwrap();
    let state_file = lab.state_dir().join(STATE_FILE);
    let agent = lab.start_agent(&path, Role::Inside).unwrap();
    let before = std::fs::read(&state_file).unwrap();
    std::fs::write(&path, config(&["203.0.113.0/24", "198.18.0.0/24"])).unwrap();
    // SAFETY: kill with the pid of the agent this test started.
    assert_eq!(unsafe { libc::kill(agent.pid() as i32, libc::SIGHUP) }, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::read(&state_file).unwrap() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the state file was not rewritten after the reload: {}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(agent.status().unwrap().reloads.last_kind, "in_place");
    let (agent, leaked, lost, rounds) = flood(&lab, bad, good, false, || {
        kill_and_restart(&lab, agent, &path)
    });
    assert_no_gap(leaked, lost, rounds);
    let start = agent.status().unwrap().start.unwrap();
    assert_eq!(start.kind, "adopted", "{start:?}\n{}", agent.log());
    assert_eq!(
        (
            start.prefixes_changed,
            start.entries_written,
            start.policies_written
        ),
        (0, 0, 0),
        "{start:?}"
    );
    assert!(blocked(
        &lab.probe(&[Probe::to(added), Probe::to(bad)], 3).unwrap()
    ));
    assert!(delivered(&lab.probe(&[Probe::to(removed)], 3).unwrap()));
    agent.stop().unwrap();
}

/// Sets the direct entry of 100.100.0.0/16 (in no policy here) in the pinned IPv4 trie, as
/// `bpftool map update` from another process would while no agent runs.
fn tamper_v4_trie(lab: &Lab) {
    let (gen_dir, _) = pinned_maps(lab);
    let data = aya::maps::MapData::from_pin(gen_dir.join(embargo_abi::maps::V4_TRIE)).unwrap();
    let mut trie: aya::maps::Array<_, embargo_abi::trie::Chunk> =
        aya::maps::Array::try_from(aya::maps::Map::Array(data)).unwrap();
    let root = 0x6464_6400u32 >> (32 - embargo_abi::trie::DIRECT_BITS);
    let (chunk, lane) = (root / 16, (root % 16) as usize);
    let mut value = trie.get(&chunk, 0).unwrap();
    assert_eq!(value[lane], 0);
    value[lane] = embargo_abi::trie::leaf(0);
    trie.set(chunk, value, 0).unwrap();
}

/// (d) Host egress: after `kill -9` the pinned TCX link keeps dropping what the gateway itself
/// sends to a blocked address, and the next agent takes it over (one program at egress).
#[test]
fn egress_enforcement_survives_a_kill_and_is_adopted() {
    let lab = new_lab();
    let (bad, good) = (ip("203.0.113.7"), ip("192.0.2.10"));
    for a in [bad, good] {
        lab.add_client_remote(a).unwrap();
    }
    lab.check_contained().unwrap();
    let path = lab
        .write_file("restart.toml", &config(&["203.0.113.0/24"]))
        .unwrap();
    assert!(delivered(&lab.probe_from_gw(&[Probe::to(bad)], 3).unwrap()));
    let agent = lab.start_agent_egress(&path).unwrap();
    assert!(lab.egress_is_embargo_alone().unwrap());
    assert!(blocked(&lab.probe_from_gw(&[Probe::to(bad)], 3).unwrap()));

    let (agent, leaked, lost, rounds) = flood(&lab, bad, good, true, || {
        let log = agent.kill9().unwrap();
        assert!(!log.contains("detached"), "{log}");
        std::thread::sleep(Duration::from_millis(500));
        // Nobody runs: the pinned TC link still drops the host's own packets.
        assert!(
            lab.egress_is_embargo_alone().unwrap(),
            "{:?}",
            lab.egress_programs()
        );
        assert!(blocked(&lab.probe_from_gw(&[Probe::to(bad)], 3).unwrap()));
        lab.start_agent_egress(&path).unwrap()
    });
    assert_no_gap(leaked, lost, rounds);
    let log = agent.log();
    assert!(
        log.contains("adopted the TC egress classifier without detaching"),
        "{log}"
    );
    let status = agent.status().unwrap();
    assert!(status.interfaces[0].egress, "{status:?}");
    assert_eq!(status.start.as_ref().unwrap().kind, "adopted", "{status:?}");
    assert!(
        lab.egress_is_embargo_alone().unwrap(),
        "{:?}",
        lab.egress_programs()
    );
    assert!(blocked(&lab.probe_from_gw(&[Probe::to(bad)], 3).unwrap()));
    // A clean stop detaches both (checked by `stop`) and removes the TC pin.
    agent.stop().unwrap();
    assert!(!lab.pin_dir().join(format!("tc-{}", lab.gw_if())).exists());

    // Restarted without egress: the classifier the killed agent left is removed, XDP adopted.
    let agent = lab.start_agent_egress(&path).unwrap();
    agent.kill9().unwrap();
    let agent = lab.start_agent(&path, Role::Outside).unwrap();
    assert_eq!(agent.status().unwrap().start.unwrap().kind, "adopted");
    assert!(lab.xdp_attached().unwrap());
    assert!(
        lab.egress_programs().unwrap().is_empty(),
        "{:?}",
        lab.egress_programs()
    );
    assert!(delivered(&lab.probe_from_gw(&[Probe::to(bad)], 3).unwrap()));
    agent.stop().unwrap();
}

/// (e) `embargo detach` after `--keep-attached`: no XDP or TC attachment, no pins, no state.
#[test]
fn detach_removes_links_maps_and_state() {
    let lab = new_lab();
    let bad = ip("203.0.113.7");
    lab.add_client_remote(bad).unwrap();
    lab.check_contained().unwrap();
    let path = lab
        .write_file("restart.toml", &config(&["203.0.113.0/24"]))
        .unwrap();
    let agent = lab.start_agent_egress(&path).unwrap();
    let socket = agent.socket().to_owned();
    // Leave everything in place as a clean stop with --keep-attached would.
    let log = agent.kill9().unwrap();
    assert!(!log.contains("detached"), "{log}");
    let pins: Vec<String> = std::fs::read_dir(lab.pin_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let gw = lab.gw_if();
    // A TCX egress link is pinned; a netlink filter (before 6.6) stays in the kernel unpinned,
    // named by the state file.
    let tcx = embargo::dataplane::TcApi::for_running_kernel() == embargo::dataplane::TcApi::Tcx;
    let mut wanted = vec![format!("link-{gw}")];
    if tcx {
        wanted.push(format!("tc-{gw}"));
    }
    for want in wanted {
        assert!(pins.contains(&want), "{want} in {pins:?}");
    }
    assert!(pins.iter().any(|p| p.starts_with("maps-")), "{pins:?}");
    assert!(lab.state_dir().join(STATE_FILE).exists());
    assert!(lab.xdp_attached().unwrap());
    assert!(!lab.egress_programs().unwrap().is_empty());

    let out = lab
        .embargo_in_gw(&[
            "detach",
            "--pin-dir",
            &lab.pin_dir().display().to_string(),
            "--state-dir",
            &lab.state_dir().display().to_string(),
            "--control-socket",
            &socket.display().to_string(),
        ])
        .unwrap()
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("detached {gw}\n")), "{stdout}");
    assert!(
        stdout.contains(&format!("detached {gw} (TC egress)")),
        "{stdout}"
    );
    assert!(stdout.contains("unpinned the maps"), "{stdout}");
    assert!(stdout.contains("removed the state file"), "{stdout}");
    assert!(!lab.xdp_attached().unwrap());
    assert!(
        lab.egress_programs().unwrap().is_empty(),
        "{:?}",
        lab.egress_programs()
    );
    assert!(!lab.pin_dir().exists(), "the pin folder is gone");
    assert!(!lab.state_dir().join(STATE_FILE).exists());
    assert!(delivered(&lab.probe_from_gw(&[Probe::to(bad)], 3).unwrap()));
}

/// Regression (issue 10): the pin folder was used whoever owned it, so a user who created it
/// first could later unpin the links and end enforcement. One owned by another user or writable
/// by group or others is refused before anything is attached, saying what to do; a missing one
/// is created 0700, its generation folders too.
#[test]
fn a_pin_folder_someone_else_controls_is_refused() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let lab = new_lab();
    let path = lab
        .write_file("embargo.toml", &config(&["192.0.2.0/24"]))
        .unwrap();
    let pin = lab.pin_dir();
    let _ = std::fs::remove_dir_all(&pin);
    std::fs::create_dir(&pin).unwrap();
    for (what, uid, mode, needle) in [
        ("world-writable", 0, 0o777, "chmod go-w"),
        ("group-writable", 0, 0o770, "chmod go-w"),
        ("owned by nobody", 65534, 0o700, "owned by uid 65534"),
    ] {
        std::os::unix::fs::chown(&pin, Some(uid), Some(uid)).unwrap();
        std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(mode)).unwrap();
        let e = match lab.start_agent(&path, Role::Inside) {
            Ok(agent) => {
                let log = agent.terminate().unwrap_or_default();
                panic!("{what}: the agent started with the pin folder {mode:o}: {log}");
            }
            Err(e) => e.to_string(),
        };
        assert!(e.contains(needle), "{what}: {e}");
        assert!(e.contains(&pin.display().to_string()), "{what}: {e}");
        assert!(!lab.xdp_attached().unwrap(), "{what}: nothing attached");
    }
    std::fs::remove_dir(&pin).unwrap();
    let agent = lab.start_agent(&path, Role::Inside).unwrap();
    let (generation, _) = pinned_maps(&lab);
    for dir in [&pin, &generation] {
        let m = std::fs::metadata(dir).unwrap();
        assert_eq!(
            (m.uid(), m.mode() & 0o7777),
            (0, 0o700),
            "{}",
            dir.display()
        );
    }
    agent.terminate().unwrap();
}
