//! Live operation on the real kernel: policies change while packets flow.
//!
//! `hitless_under_random_reloads`: one thread runs packets through the loaded program
//! (BPF_PROG_TEST_RUN, back to back) while the main thread applies 100+ random policy changes
//! in place; no packet to an address blocked before and after a change may pass, and none to
//! an address allowed before and after may be dropped. The netns tests in `netns.rs` cover the
//! agent's reload triggers end to end.

use std::{
    net::IpAddr,
    os::fd::{AsFd as _, AsRawFd as _},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use embargo::{config::Action, dataplane::Dataplane, policy::EntityIndex};
use embargo_abi::IfaceRole;
use embargo_tests::{
    compile_text,
    packet::Frame,
    policy::{LabEntity, LabPolicy},
    rng::Rng,
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

fn entity(id: &str, action: Action, prefixes: &[String]) -> LabEntity {
    LabEntity::new(id, action, prefixes)
        .designation("live", id)
        .source("live test")
        .guard("test")
}

/// One random policy. Stable blocked addresses (198.18.0.0/24 and 2001:db8:5::/48 hosts) are
/// always inside some drop prefix, held by one of two drop entities and sometimes also by a more
/// specific or broader drop prefix; stable allowed addresses (192.0.2.0/25, 2001:db8:a::/48)
/// are never inside a drop prefix but churn happens right next to them and monitor prefixes
/// may cover them. Everything else churns.
fn random_policy(rng: &mut Rng) -> String {
    let mut a = Vec::new();
    let mut b = Vec::new();
    let mut m = Vec::new();
    let mut churn = Vec::new();
    // The stable blocked ranges, each held by A or B, at a random granularity.
    for (base, lens) in [("198.18.0.", [24u8, 25, 26]), ("198.18.0.", [24, 24, 24])] {
        let len = lens[rng.below(3) as usize];
        let pieces = 1u32 << (len - 24);
        for i in 0..pieces {
            let p = format!("{base}{}/{len}", i * (256 / pieces));
            if rng.below(2) == 0 {
                a.push(p)
            } else {
                b.push(p)
            }
        }
    }
    for len in [48u8, 56, 64] {
        if rng.below(2) == 0 {
            let p = format!("2001:db8:5::/{len}");
            if rng.below(2) == 0 {
                a.push(p)
            } else {
                b.push(p)
            }
        }
    }
    // Always at least the /48.
    a.push("2001:db8:5::/48".into());
    // Sometimes a broader drop prefix over the stable blocked range too.
    if rng.below(3) == 0 {
        b.push("198.18.0.0/22".into());
    }
    // Hosts inside the stable range, flipping between entities.
    for _ in 0..rng.below(6) {
        let p = format!("198.18.0.{}/32", rng.below(256));
        if rng.below(2) == 0 {
            a.push(p)
        } else {
            b.push(p)
        }
    }
    // Next to the stable allowed addresses: the other half of 192.0.2.0/24, and its hosts.
    if rng.below(2) == 0 {
        churn.push("192.0.2.128/25".into());
    }
    for _ in 0..rng.below(5) {
        churn.push(format!("192.0.2.{}/32", 128 + rng.below(128)));
    }
    churn.push(format!("2001:db8:b:{:x}::/64", rng.below(16)));
    // Monitor prefixes may cover allowed addresses: monitored packets pass.
    if rng.below(2) == 0 {
        m.push("192.0.2.0/26".into());
    }
    if rng.below(2) == 0 {
        m.push("2001:db8:a::/48".into());
    }
    // Unrelated churn, many prefixes, so regions are rewritten all over.
    for _ in 0..(20 + rng.below(40)) {
        let len = [16u8, 20, 24, 28, 32][rng.below(5) as usize];
        let addr = 0x0a00_0000u32 | (rng.below(1 << 24) as u32);
        let n = ipnetwork::Ipv4Network::new(addr.into(), len).unwrap();
        churn.push(format!("{}/{len}", n.network()));
    }
    for _ in 0..rng.below(10) {
        churn.push(format!(
            "2001:db8:{:x}:{:x}::/64",
            0x100 + rng.below(64),
            rng.below(65536)
        ));
    }
    churn.sort();
    churn.dedup();
    let churn_action = if rng.below(2) == 0 {
        Action::Drop
    } else {
        Action::Monitor
    };
    let mut policy = LabPolicy::new()
        .entity(entity("hold-a", Action::Drop, &a))
        .entity(entity("hold-b", Action::Drop, &b))
        .entity(entity("watch", Action::Monitor, &m));
    if rng.below(4) != 0 {
        policy = policy.entity(entity("churn", churn_action, &churn));
    }
    // An entity that comes and goes.
    if rng.below(2) == 0 {
        policy = policy.entity(entity(
            &format!("transient-{}", rng.below(3)),
            Action::Drop,
            &[format!("10.{}.0.0/16", 200 + rng.below(50))],
        ));
    }
    policy.to_string()
}

/// One run of the program on `frame`, received on lo; the XDP action.
fn test_run(prog: i32, frame: &[u8]) -> u32 {
    embargo_tests::prog_run::xdp_test_run(prog, frame, 1, 1)
        .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN: {e}"))
        .0
}

#[test]
fn hitless_under_random_reloads() {
    let mut rng = Rng(0x005e_ed0f_11fe);
    let mut index = EntityIndex::default();
    let first = compile_text(&random_policy(&mut rng));
    let mut dp = Dataplane::load(&index.policy(&first)).expect("load (needs root)");
    dp.set_role(1, IfaceRole::Inside).unwrap();
    let prog = dp.program().fd().unwrap().try_clone().unwrap();

    let src: IpAddr = "100.64.0.1".parse().unwrap();
    let src6: IpAddr = "2001:db8:ffff::1".parse().unwrap();
    let mut probes: Vec<(Vec<u8>, u32, String)> = Vec::new();
    for i in 0..24u32 {
        let blocked: IpAddr = format!("198.18.0.{}", i * 11).parse().unwrap();
        probes.push((
            Frame::ip(src, blocked).bytes(),
            XDP_DROP,
            blocked.to_string(),
        ));
        let allowed: IpAddr = format!("192.0.2.{}", i * 5).parse().unwrap();
        probes.push((
            Frame::ip(src, allowed).bytes(),
            XDP_PASS,
            allowed.to_string(),
        ));
    }
    for i in 0..8u32 {
        let blocked: IpAddr = format!("2001:db8:5::{:x}", i * 0x1111).parse().unwrap();
        probes.push((
            Frame::ip(src6, blocked).bytes(),
            XDP_DROP,
            blocked.to_string(),
        ));
        let allowed: IpAddr = format!("2001:db8:a::{:x}", i * 0x1111).parse().unwrap();
        probes.push((
            Frame::ip(src6, allowed).bytes(),
            XDP_PASS,
            allowed.to_string(),
        ));
    }
    // Every probe behaves as stated before anything changes.
    for (f, want, name) in &probes {
        assert_eq!(
            test_run(prog.as_fd().as_raw_fd(), f),
            *want,
            "{name} before any reload"
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    let runner = {
        let (stop, sent, wrong) = (stop.clone(), sent.clone(), wrong.clone());
        let fd = prog.as_fd().as_raw_fd();
        let probes = probes.clone();
        std::thread::spawn(move || {
            let mut first_wrong = None;
            while !stop.load(Ordering::Relaxed) {
                for (f, want, name) in &probes {
                    let got = test_run(fd, f);
                    sent.fetch_add(1, Ordering::Relaxed);
                    if got != *want {
                        wrong.fetch_add(1, Ordering::Relaxed);
                        first_wrong.get_or_insert_with(|| format!("{name}: {got}, wanted {want}"));
                    }
                }
            }
            first_wrong
        })
    };

    let mut changed = 0u64;
    let mut written = 0u64;
    let reloads = 120;
    for _ in 0..reloads {
        let compiled = compile_text(&random_policy(&mut rng));
        let stats = dp.apply(&index.policy(&compiled)).expect("fits in place");
        changed += stats.prefixes_changed;
        written += stats.entries_written;
    }
    stop.store(true, Ordering::Relaxed);
    let first_wrong = runner.join().unwrap();
    let (sent, wrong) = (sent.load(Ordering::Relaxed), wrong.load(Ordering::Relaxed));
    eprintln!(
        "{reloads} reloads, {changed} prefix changes, {written} entries written, {sent} packets, {wrong} misclassified"
    );
    assert!(
        changed > 1000,
        "the reloads changed too little to prove anything: {changed}"
    );
    assert!(
        sent > 10 * probes.len() as u64,
        "too few packets ran during the reloads: {sent}"
    );
    assert_eq!(
        wrong, 0,
        "misclassified during reloads; first: {first_wrong:?}"
    );
    // And the end state is right.
    for (f, want, name) in &probes {
        assert_eq!(
            test_run(prog.as_fd().as_raw_fd(), f),
            *want,
            "{name} after the reloads"
        );
    }
}
