//! Host egress through the library in a netns lab: the TC egress classifier attached with each
//! kernel interface (TCX links; netlink `cls_bpf` filters on a `clsact` qdisc, as kernels before
//! 6.6 need), moved to a new data-plane generation while the host sends, and detached.
//!
//! What must hold: the gateway's own packets to a blocked destination never reach the client,
//! also while the generation switches (no gap), and each is counted by exactly one generation
//! (no overlap); the new generation's policy applies after the switch; detaching leaves no TC
//! program, and removes the `clsact` qdisc only if the dataplane added it. A netlink filter
//! outlives the agent that left it and is adopted in place by the next data plane (TCX links are
//! pinned instead: `restart.rs` covers them through the agent).
//!
//! Needs root. Dataplane calls that name interfaces or talk netlink run on threads inside the
//! lab's gateway namespace (both resolve in the calling thread's namespace).

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{
        Barrier,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use embargo::{
    config::{Action, Interface, Role, XdpMode},
    dataplane::{Dataplane, TcApi},
    policy::Policy,
};
use embargo_abi::{Direction::Outbound, Verdict::Dropped};
use embargo_tests::{
    compile_text,
    lab::{self, Lab, Probe, ProbeResult},
    policy::{LabEntity, LabPolicy},
};

/// Blocked by both generations.
const STEADY: &str = "203.0.113.7";
/// Blocked by the first generation only.
const ONLY_A: &str = "198.51.100.9";
/// Blocked by the second generation only.
const ONLY_B: &str = "2001:db8:bad::7";
/// Datagrams per probe.
const COUNT: usize = 3;
/// Where the flood listens on the client.
const FLOOD_PORT: u16 = 40_123;

fn policy(prefixes: &[&str]) -> Policy {
    let text = LabPolicy::new()
        .entity(
            LabEntity::new("lab-drop", Action::Drop, prefixes)
                .name("Lab Drop")
                .designation("egress", "E-1")
                .source("egress test")
                .guard("test"),
        )
        .to_string();
    Policy::from(&compile_text(&text))
}

fn load(policy: &Policy, api: TcApi) -> Dataplane {
    let mut dp = Dataplane::load(policy)
        .unwrap_or_else(|e| panic!("loading the programs failed (these tests need root): {e}"));
    dp.set_tc_api(api);
    dp
}

fn addr(a: &str) -> IpAddr {
    a.parse().unwrap()
}

/// `lab-drop`'s outbound drops counted by `dp`.
fn dropped(dp: &Dataplane) -> u64 {
    dp.counters().unwrap()[0].get(Outbound, Dropped).packets
}

/// Sends COUNT datagrams from the gateway to each of `dsts`.
fn from_gw(lab: &Lab, dsts: &[&str]) -> Vec<ProbeResult> {
    let probes: Vec<Probe> = dsts.iter().map(|d| Probe::to(addr(d))).collect();
    lab.probe_from_gw(&probes, COUNT).unwrap()
}

fn assert_blocked(results: &[ProbeResult]) {
    for r in results {
        assert!(r.blocked(), "expected dropped, got {r:?}");
    }
}

fn assert_delivered(results: &[ProbeResult]) {
    for r in results {
        assert!(r.delivered(), "expected delivered, got {r:?}");
    }
}

/// Sends datagrams from the gateway to `dst` back to back, with a listener on the client,
/// while `during` runs (from 100 ms after the first send to 100 ms before the last). Returns
/// the datagrams sent and received.
fn flood_during(lab: &Lab, dst: IpAddr, during: impl FnOnce()) -> (u64, u64) {
    let stop = AtomicBool::new(false);
    let bound = Barrier::new(2);
    thread::scope(|s| {
        let receiver = s.spawn(|| {
            lab::in_netns(lab.cli_ns(), || {
                let socket = UdpSocket::bind(SocketAddr::new(dst, FLOOD_PORT)).unwrap();
                socket
                    .set_read_timeout(Some(Duration::from_millis(20)))
                    .unwrap();
                bound.wait();
                let mut buf = [0u8; 64];
                let mut received = 0;
                while !stop.load(Ordering::Relaxed) {
                    if socket.recv(&mut buf).is_ok() {
                        received += 1;
                    }
                }
                // Anything still in flight.
                thread::sleep(lab::SETTLE);
                socket.set_nonblocking(true).unwrap();
                while socket.recv(&mut buf).is_ok() {
                    received += 1;
                }
                received
            })
            .unwrap()
        });
        let sender = s.spawn(|| {
            lab::in_netns(lab.gw_ns(), || {
                let unspecified = SocketAddr::new("0.0.0.0".parse().unwrap(), 0);
                let socket = UdpSocket::bind(unspecified).unwrap();
                bound.wait();
                let mut sent = 0;
                while !stop.load(Ordering::Relaxed) {
                    if socket
                        .send_to(b"embargo egress flood", SocketAddr::new(dst, FLOOD_PORT))
                        .is_ok()
                    {
                        sent += 1;
                    }
                }
                sent
            })
            .unwrap()
        });
        thread::sleep(Duration::from_millis(100));
        during();
        thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        (sender.join().unwrap(), receiver.join().unwrap())
    })
}

/// Attach, switch generations under load, detach, with `api`; `foreign_clsact`: someone else
/// added a `clsact` qdisc to the interface before.
fn lifecycle(api: TcApi, foreign_clsact: bool) {
    let lab = Lab::new().unwrap();
    for a in [STEADY, ONLY_A, ONLY_B] {
        lab.add_client_remote(addr(a)).unwrap();
    }
    lab.check_contained().unwrap();
    if foreign_clsact {
        lab::run(std::process::Command::new("tc").args([
            "-n",
            lab.gw_ns(),
            "qdisc",
            "add",
            "dev",
            lab.gw_if(),
            "clsact",
        ]))
        .unwrap();
    }
    let clsact_before = lab.has_clsact().unwrap();
    assert_eq!(clsact_before, foreign_clsact);
    let iface = Interface {
        name: lab.gw_if().to_owned(),
        role: Role::Outside,
        mode: XdpMode::Generic,
        egress: true,
    };

    let mut a = load(&policy(&["203.0.113.0/24", "198.51.100.0/24"]), api);
    let attached = lab::in_netns(lab.gw_ns(), || a.attach(&iface).cloned())
        .unwrap()
        .unwrap();
    assert!(attached.egress);
    assert!(
        lab.egress_is_embargo_alone().unwrap(),
        "{:?}",
        lab.egress_programs()
    );
    // Netlink needs the qdisc (added here unless there was one); TCX needs none.
    assert_eq!(
        lab.has_clsact().unwrap(),
        foreign_clsact || api == TcApi::Netlink
    );
    assert_blocked(&from_gw(&lab, &[STEADY, ONLY_A]));
    assert_delivered(&from_gw(&lab, &[ONLY_B]));

    // A new generation takes the interface over while the host sends to an address both
    // block: nothing gets through, and every datagram is counted by exactly one of them.
    let mut b = load(&policy(&["203.0.113.0/24", "2001:db8:bad::/48"]), api);
    let a_before = dropped(&a);
    let (sent, received) = flood_during(&lab, addr(STEADY), || {
        lab::in_netns(lab.gw_ns(), || b.take_over(&mut a))
            .unwrap()
            .unwrap();
    });
    let (by_a, by_b) = (dropped(&a) - a_before, dropped(&b));
    eprintln!(
        "{api}: {sent} sent across the switch, {by_a} counted by the old generation, {by_b} by the new"
    );
    assert!(sent > 0);
    assert_eq!(received, 0, "{received} of {sent} got through the switch");
    assert!(
        by_a > 0 && by_b > 0,
        "old {by_a}, new {by_b}: the switch was not under load"
    );
    assert_eq!(by_a + by_b, sent, "old counted {by_a}, new {by_b}");
    assert!(a.attachments().is_empty());
    assert_eq!(b.attachments(), std::slice::from_ref(&attached));
    assert!(
        lab.egress_is_embargo_alone().unwrap(),
        "{:?}",
        lab.egress_programs()
    );
    assert_eq!(
        lab.has_clsact().unwrap(),
        foreign_clsact || api == TcApi::Netlink
    );
    // The new policy applies; the old generation going away changes nothing.
    drop(a);
    assert_delivered(&from_gw(&lab, &[ONLY_A]));
    assert_blocked(&from_gw(&lab, &[STEADY, ONLY_B]));
    assert!(lab.xdp_attached().unwrap());

    for (name, result) in lab::in_netns(lab.gw_ns(), || b.detach_all()).unwrap() {
        result.unwrap_or_else(|e| panic!("detaching from {name}: {e}"));
    }
    assert!(lab.egress_programs().unwrap().is_empty());
    assert!(!lab.xdp_attached().unwrap());
    assert_eq!(
        lab.has_clsact().unwrap(),
        foreign_clsact,
        "the clsact qdisc is removed only by whoever added it"
    );
    assert_delivered(&from_gw(&lab, &[STEADY, ONLY_B]));
    lab.check_contained().unwrap();
}

/// TCX links (Linux 6.6+, what the agent uses there).
#[test]
fn tcx_attach_switch_and_detach() {
    assert_eq!(
        TcApi::for_running_kernel(),
        TcApi::Tcx,
        "this kernel has no TCX (Linux 6.6+); the netlink tests cover what the agent uses"
    );
    lifecycle(TcApi::Tcx, false);
}

/// A `clsact` qdisc someone else added is shared, not touched, with TCX too.
#[test]
fn tcx_leaves_a_foreign_clsact_alone() {
    assert_eq!(TcApi::for_running_kernel(), TcApi::Tcx, "needs Linux 6.6+");
    lifecycle(TcApi::Tcx, true);
}

/// Netlink (what kernels before 6.6 get): the dataplane adds the `clsact` qdisc and removes it.
#[test]
fn netlink_attach_switch_and_detach_with_its_own_clsact() {
    lifecycle(TcApi::Netlink, false);
}

/// Netlink with a `clsact` qdisc someone else added: used, and left in place.
#[test]
fn netlink_keeps_a_clsact_it_did_not_add() {
    lifecycle(TcApi::Netlink, true);
}

/// Netlink across an agent restart: a `cls_bpf` filter has no pin, but leaving it attached (as
/// `--keep-attached` does, and as `kill -9` leaves it) keeps it in the kernel, still dropping;
/// the state file names its priority and handle, so the next data plane, reusing the pinned
/// maps, takes the same filter over in place (one filter, not two, with no gap while the host
/// sends); detaching then removes it and the `clsact` qdisc the first one added.
#[test]
fn netlink_filter_outlives_the_agent_and_is_adopted() {
    let lab = Lab::new().unwrap();
    lab.add_client_remote(addr(STEADY)).unwrap();
    lab.check_contained().unwrap();
    let pin = lab.pin_dir();
    let iface = Interface {
        name: lab.gw_if().to_owned(),
        role: Role::Outside,
        mode: XdpMode::Generic,
        egress: true,
    };
    let mut a = load(&policy(&["203.0.113.0/24"]), TcApi::Netlink);
    a.set_pin_dir(&pin).unwrap();
    a.pin_maps(&pin).unwrap();
    lab::in_netns(lab.gw_ns(), || a.attach(&iface).cloned())
        .unwrap()
        .unwrap();
    let state = a
        .state(
            &embargo::policy::EntityIndex::from_state(
                vec!["lab-drop".to_owned()],
                vec![(0, "name:all".to_owned())],
            ),
            "digest",
            Default::default(),
        )
        .unwrap()
        .expect("the maps are pinned");
    assert_eq!(state.netlink_filters.len(), 1, "{state:?}");
    assert!(state.netlink_filters[0].added_clsact);
    assert_blocked(&from_gw(&lab, &[STEADY]));
    // In the gateway's namespace, where a detach would reach the filter.
    let kept = lab::in_netns(lab.gw_ns(), move || {
        let kept = a.leave_attached();
        drop(a);
        kept
    })
    .unwrap();
    assert_eq!(kept, [lab.gw_if().to_owned()]);
    // Nobody holds the filter: it is still there, still dropping.
    assert!(
        lab.egress_is_embargo_alone().unwrap(),
        "{:?}",
        lab.egress_programs()
    );
    assert_blocked(&from_gw(&lab, &[STEADY]));

    let mut b = Dataplane::reuse(&pin, &state).unwrap_or_else(|why| panic!("{why}"));
    b.set_tc_api(TcApi::Netlink);
    let before = dropped(&b);
    assert!(before > 0, "the reused counters hold the first drops");
    let (sent, received) = flood_during(&lab, addr(STEADY), || {
        let adopted = lab::in_netns(lab.gw_ns(), || b.adopt(&iface).map(|a| a.cloned()))
            .unwrap()
            .unwrap();
        assert!(adopted.is_some_and(|a| a.egress));
    });
    assert!(sent > 0);
    assert_eq!(received, 0, "{received} of {sent} got through the adoption");
    assert!(
        lab.egress_is_embargo_alone().unwrap(),
        "one filter after the adoption: {:?}",
        lab.egress_programs()
    );
    assert_eq!(dropped(&b), before + sent, "counted in the same maps");
    for (name, result) in lab::in_netns(lab.gw_ns(), || b.detach_all()).unwrap() {
        result.unwrap_or_else(|e| panic!("detaching from {name}: {e}"));
    }
    assert!(lab.egress_programs().unwrap().is_empty());
    assert!(
        !lab.has_clsact().unwrap(),
        "the qdisc the first agent added"
    );
    assert!(!lab.xdp_attached().unwrap());
    b.unpin_maps().unwrap();
    assert_delivered(&from_gw(&lab, &[STEADY]));
}
