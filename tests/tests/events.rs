//! Drop and monitor events, end to end.
//!
//! * Fixture level, through `BPF_PROG_TEST_RUN` on the real `embargo_xdp` object: the ring
//!   buffer is read from user space after each run. A dropped and a monitored packet each send
//!   exactly one event with every field right (checked raw and as the JSON line the agent would
//!   write); misses and matches whose policy does not apply send none; the ports are read only
//!   when they are there (TCP/UDP, not a non-first fragment, within the frame, IPv4 options
//!   skipped by IHL, IPv6 only without extension headers); the per-CPU budget sends exactly
//!   its share of N back-to-back packets, counts the rest lost for that entity alone and sends
//!   again after the agent's refill (time alone does not refill it); a full
//!   ring buffer counts the rest lost; events off sends and counts nothing.
//! * In a netns lab with the real agent (`--events-log` in the lab folder): datagrams to a
//!   blocked address become JSON lines naming the entity, its designation, the interface,
//!   `dropped`, `udp` and the ports, with the digest `embargo status --json` shows; an in-place
//!   reload and a new data-plane generation show in the lines that follow; what the budget
//!   held back is in `embargo_events_lost_total`. Without `--events-log`, events are on by
//!   default and go to the configured `[events] path` (its folder created); `output = "none"`
//!   writes none.
//!
//! Needs root: `cargo build --bin embargo && cargo test -p embargo-tests --test events`.

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    path::Path,
    time::{Duration, Instant},
};

use aya::{
    maps::{MapData, RingBuf},
    programs::{TestRun as _, TestRunOptions},
};
use embargo::{
    config::{Action, DirectionSet, Role},
    dataplane::{Dataplane, system, trie::build},
    observe::events::{self, Clock, Context, Record, Version},
    policy::Policy,
};
use embargo_abi::{
    Direction, EVENT_PORTS, Event, EventLimits, FAMILY_IPV4, FAMILY_IPV6, IfaceRole, Link, Verdict,
};
use embargo_tests::{
    lab::{self, CLI_V4, CLI_V6, Lab},
    packet::{ETH_P_8021Q, Frame, L3},
    policy::{LabEntity, LabPolicy},
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

fn policy() -> String {
    let entity = |id: &str, name: &str, action: Action, prefixes: &[&str]| {
        LabEntity::new(id, action, prefixes)
            .name(name)
            .designation("events", &format!("EV-{id}"))
            .source("events")
            .guard("test")
    };
    LabPolicy::new()
        .entity(
            entity(
                "blocked",
                "Blocked Ltd",
                Action::Drop,
                &["203.0.113.0/24", "2001:db8:bad::/48"],
            )
            .designation("other", "EV-blocked-2"),
        )
        .entity(entity(
            "watched",
            "Watched Ltd",
            Action::Monitor,
            &["198.51.100.0/24"],
        ))
        .entity(
            entity(
                "neighbour",
                "Neighbour Ltd",
                Action::Drop,
                &["192.0.2.0/24"],
            )
            .direction(DirectionSet::Outbound),
        )
        .to_string()
}

const BLOCKED: u32 = 0;
const WATCHED: u32 = 1;
const NEIGHBOUR: u32 = 2;

// ---------------------------------------------------------------------------------------------
// Fixture level.

/// The loaded program, the loopback's ifindex, and the ring buffer taken out of it.
struct Fixture {
    dp: Dataplane,
    lo: u32,
    ring: RingBuf<MapData>,
    compiled: embargo::policy::compile::Compiled,
    policy: Policy,
}

fn fixture() -> Fixture {
    let compiled = embargo_tests::compile_text(&policy());
    let policy = Policy::from(&compiled);
    let ids: Vec<&str> = policy.entities.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["blocked", "watched", "neighbour"]);
    let v4 = build::build_v4(&policy.v4).unwrap();
    let v6 = build::build_v6(&policy.v6).unwrap();
    let mut dp = Dataplane::load_tables(&policy, &v4, &v6)
        .unwrap_or_else(|e| panic!("loading the XDP program failed (these tests need root): {e}"));
    // Events are off at load, every budget marked off: these tests turn them on.
    assert_eq!(dp.event_limits(), EventLimits::OFF);
    assert!(
        dp.event_budgets()
            .unwrap()
            .iter()
            .all(|b| *b == embargo_abi::EVENTS_OFF)
    );
    dp.set_event_limits(EventLimits::DEFAULT).unwrap();
    let lo = system::ifindex("lo").expect("the loopback interface");
    dp.set_role(lo, IfaceRole::Inside).unwrap();
    let ring = dp.take_events().expect("the ring buffer");
    assert!(dp.take_events().is_none(), "the ring is taken once");
    Fixture {
        dp,
        lo,
        ring,
        compiled,
        policy,
    }
}

impl Fixture {
    /// Runs the program `repeat` times on `frame` received on the loopback; the XDP action.
    fn run(&self, frame: &[u8], repeat: u32) -> u32 {
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex.
        let fields = [0, frame.len() as u32, 0, self.lo, 0, 0];
        let mut ctx = [0u8; 24];
        for (chunk, field) in ctx.chunks_exact_mut(4).zip(fields) {
            chunk.copy_from_slice(&field.to_le_bytes());
        }
        self.dp
            .program()
            .test_run(TestRunOptions {
                data_in: Some(frame),
                ctx_in: Some(&ctx),
                repeat,
                ..TestRunOptions::new()
            })
            .unwrap()
            .return_value
    }

    /// Every event waiting in the ring.
    fn events(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(item) = self.ring.next() {
            assert_eq!(item.len(), size_of::<Event>(), "record size");
            out.push(events::decode(&item).unwrap());
        }
        out
    }

    fn lost(&self) -> Vec<u64> {
        self.dp.events_lost().unwrap()
    }

    fn context(&self) -> Context {
        Context::new(Version::default(), &self.policy, &self.compiled, &[])
    }
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn frame(src: &str, dst: &str) -> Frame {
    Frame::ip(src.parse().unwrap(), dst.parse().unwrap())
}

/// `f`'s bytes with TCP/UDP ports written at the start of its payload (the L4 header).
fn with_ports(f: &Frame, sport: u16, dport: u16) -> Vec<u8> {
    let mut b = f.bytes();
    let l4 = b.len() - f.payload_len;
    b[l4..l4 + 2].copy_from_slice(&sport.to_be_bytes());
    b[l4 + 2..l4 + 4].copy_from_slice(&dport.to_be_bytes());
    b
}

fn set_protocol(f: &mut Frame, p: u8) {
    match &mut f.l3 {
        L3::V4 { protocol, .. } => *protocol = p,
        L3::V6 { next_header, .. } => *next_header = p,
        L3::Other { .. } => unreachable!(),
    }
}

fn v4_bytes(a: &str) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&a.parse::<std::net::Ipv4Addr>().unwrap().octets());
    b
}

#[test]
fn a_dropped_packet_sends_exactly_one_event_with_its_fields() {
    let mut fx = fixture();
    let f = frame("198.18.0.2", "203.0.113.7");
    let bytes = with_ports(&f, 40000, 53);
    let before = monotonic_ns();
    assert_eq!(fx.run(&bytes, 1), XDP_DROP);
    let after = monotonic_ns();
    let evs = fx.events();
    assert_eq!(evs.len(), 1, "{evs:?}");
    let ev = evs[0];
    assert!(
        (before..=after).contains(&ev.timestamp_ns),
        "{before} <= {} <= {after}",
        ev.timestamp_ns
    );
    assert_eq!(
        ev,
        Event {
            timestamp_ns: ev.timestamp_ns,
            ifindex: fx.lo,
            entity: BLOCKED,
            src: v4_bytes("198.18.0.2"),
            dst: v4_bytes("203.0.113.7"),
            packet_len: bytes.len() as u32,
            src_port: 40000,
            dst_port: 53,
            direction: Direction::Outbound as u8,
            verdict: Verdict::Dropped as u8,
            family: FAMILY_IPV4,
            protocol: 17,
            flags: EVENT_PORTS,
            _pad: [0; 3],
            group: BLOCKED,
            _pad2: [0; 4],
        }
    );
    assert_eq!(fx.lost(), [0, 0, 0]);

    // The line the agent writes for it.
    let r = events::record(&ev, &fx.context(), &Clock::now());
    let line = serde_json::to_string(&r).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["interface"], "lo", "{line}");
    assert_eq!(v["direction"], "outbound", "{line}");
    assert_eq!(v["verdict"], "dropped", "{line}");
    assert_eq!(v["family"], "ipv4", "{line}");
    assert_eq!(v["source"], "198.18.0.2", "{line}");
    assert_eq!(v["destination"], "203.0.113.7", "{line}");
    assert_eq!(v["protocol"], "udp", "{line}");
    assert_eq!(v["source_port"], 40000, "{line}");
    assert_eq!(v["destination_port"], 53, "{line}");
    assert_eq!(v["length"], bytes.len(), "{line}");
    assert_eq!(v["entity"], "blocked", "{line}");
    assert_eq!(
        v["designations"],
        serde_json::json!([
            { "authority": "TEST", "reference": "EV-blocked" },
            { "authority": "TEST", "reference": "EV-blocked-2" },
        ]),
        "{line}"
    );
    assert_eq!(v["policy_digest"], fx.compiled.digest(), "{line}");
    let time = chrono::DateTime::parse_from_rfc3339(v["time"].as_str().unwrap()).unwrap();
    let skew = (chrono::Utc::now() - time.to_utc()).num_seconds().abs();
    assert!(skew < 60, "{line}");
}

#[test]
fn a_monitored_packet_sends_one_event_and_passes() {
    let mut fx = fixture();
    // TCP from the outside (source matched): inbound.
    fx.dp.set_role(fx.lo, IfaceRole::Outside).unwrap();
    let mut f = frame("198.51.100.9", "198.18.0.2");
    set_protocol(&mut f, 6);
    f.payload_len = 20;
    let bytes = with_ports(&f, 443, 51000);
    assert_eq!(fx.run(&bytes, 1), XDP_PASS);
    let evs = fx.events();
    assert_eq!(evs.len(), 1, "{evs:?}");
    let ev = evs[0];
    assert_eq!(
        (ev.entity, ev.direction, ev.verdict),
        (WATCHED, Direction::Inbound as u8, Verdict::Monitored as u8)
    );
    assert_eq!(
        (ev.src, ev.dst),
        (v4_bytes("198.51.100.9"), v4_bytes("198.18.0.2"))
    );
    assert_eq!((ev.protocol, ev.flags), (6, EVENT_PORTS));
    assert_eq!((ev.src_port, ev.dst_port), (443, 51000));
    let r = events::record(&ev, &fx.context(), &Clock::now());
    assert_eq!(
        (
            r.verdict.as_str(),
            r.direction.as_str(),
            r.protocol.as_str()
        ),
        ("monitored", "inbound", "tcp")
    );
    assert_eq!(r.entity, "watched");
    assert_eq!(fx.lost(), [0, 0, 0]);
}

#[test]
fn misses_and_matches_that_do_not_apply_send_nothing() {
    let mut fx = fixture();
    // A miss in each family.
    assert_eq!(
        fx.run(&frame("198.18.0.2", "192.88.99.1").bytes(), 1),
        XDP_PASS
    );
    assert_eq!(
        fx.run(&frame("fd00::2", "2001:db8:1::1").bytes(), 1),
        XDP_PASS
    );
    // The source is listed, but inside interfaces match destinations.
    assert_eq!(
        fx.run(&frame("203.0.113.7", "198.18.0.2").bytes(), 1),
        XDP_PASS
    );
    // An outbound-only entity seen inbound.
    fx.dp.set_role(fx.lo, IfaceRole::Outside).unwrap();
    assert_eq!(
        fx.run(&frame("192.0.2.5", "198.18.0.2").bytes(), 1),
        XDP_PASS
    );
    // Not IP at all.
    let mut arp = frame("198.18.0.2", "203.0.113.7");
    arp.l3 = L3::Other {
        ethertype: 0x0806,
        body: vec![0; 28],
    };
    assert_eq!(fx.run(&arp.bytes(), 1), XDP_PASS);
    assert!(fx.events().is_empty());
    assert_eq!(fx.lost(), [0, 0, 0]);
    let stats = fx.dp.stats().unwrap();
    assert_eq!(
        stats
            .iter()
            .take(embargo_abi::Stat::TERMINAL as usize)
            .sum::<u64>(),
        5
    );
}

/// A frame, what it is, and the protocol and ports its event must carry.
type PortCase = (&'static str, Vec<u8>, u8, Option<(u16, u16)>);

#[test]
fn ports_are_read_only_where_they_are() {
    let mut fx = fixture();
    let dst4 = "203.0.113.7";
    let dst6 = "2001:db8:bad::7";
    let mut cases: Vec<PortCase> = Vec::new();
    cases.push((
        "udp",
        with_ports(&frame("198.18.0.2", dst4), 1, 2),
        17,
        Some((1, 2)),
    ));
    let mut f = frame("198.18.0.2", dst4);
    if let L3::V4 { ihl, .. } = &mut f.l3 {
        *ihl = 7;
    }
    cases.push((
        "ipv4 options skipped by IHL",
        with_ports(&f, 3, 4),
        17,
        Some((3, 4)),
    ));
    let mut f = frame("198.18.0.2", dst4);
    if let L3::V4 { frag, .. } = &mut f.l3 {
        *frag = 0x2000;
    }
    cases.push(("first fragment", with_ports(&f, 5, 6), 17, Some((5, 6))));
    let mut f = frame("198.18.0.2", dst4);
    if let L3::V4 { frag, .. } = &mut f.l3 {
        *frag = 0x0003;
    }
    cases.push(("non-first fragment", with_ports(&f, 7, 8), 17, None));
    let mut f = frame("198.18.0.2", dst4);
    set_protocol(&mut f, 1);
    cases.push(("icmp", with_ports(&f, 9, 10), 1, None));
    let mut f = frame("198.18.0.2", dst4);
    f.payload_len = 3;
    cases.push(("ports past the end", f.bytes(), 17, None));
    let f = frame("2001:db8::2", dst6);
    cases.push(("ipv6 udp", with_ports(&f, 11, 12), 17, Some((11, 12))));
    let mut f = frame("2001:db8::2", dst6);
    set_protocol(&mut f, 6);
    f.payload_len = 20;
    cases.push(("ipv6 tcp", with_ports(&f, 13, 14), 6, Some((13, 14))));
    let mut f = frame("2001:db8::2", dst6);
    set_protocol(&mut f, 0);
    cases.push((
        "ipv6 extension header: not walked",
        with_ports(&f, 15, 16),
        0,
        None,
    ));
    let f = frame("198.18.0.2", dst4).vlan(ETH_P_8021Q, 7);
    cases.push(("802.1Q", with_ports(&f, 17, 18), 17, Some((17, 18))));

    let mut failures = Vec::new();
    for (what, bytes, protocol, ports) in &cases {
        assert_eq!(fx.run(bytes, 1), XDP_DROP, "{what}");
        let evs = fx.events();
        if evs.len() != 1 {
            failures.push(format!("{what}: {} events", evs.len()));
            continue;
        }
        let ev = evs[0];
        let got_ports = (ev.flags & EVENT_PORTS != 0).then_some((ev.src_port, ev.dst_port));
        if ev.protocol != *protocol || got_ports != *ports {
            failures.push(format!(
                "{what}: protocol {} ports {got_ports:?}, expected {protocol} {ports:?}",
                ev.protocol
            ));
        }
        if ports.is_none() && (ev.src_port, ev.dst_port) != (0, 0) {
            failures.push(format!("{what}: ports not zero without the flag"));
        }
        let v6 = what.starts_with("ipv6");
        let (family, dst) = if v6 {
            (
                FAMILY_IPV6,
                dst6.parse::<std::net::Ipv6Addr>().unwrap().octets(),
            )
        } else {
            (FAMILY_IPV4, v4_bytes(dst4))
        };
        if (ev.family, ev.dst, ev.packet_len) != (family, dst, bytes.len() as u32) {
            failures.push(format!("{what}: {ev:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(fx.lost(), [0, 0, 0]);
}

/// (what, the interface's link, the frame, family, destination, protocol, ports).
type LinkCase = (&'static str, Link, Vec<u8>, u8, [u8; 16], u8, (u16, u16));

/// Events of packets that did not start with a plain Ethernet header: the IP header behind a
/// PPPoE session header (offset 22) and at offset 0 on a raw-IP interface (tun, WireGuard,
/// PPP), where the event reads the same fields from a different start; and an IPv4-mapped
/// destination, reported as the IPv6 packet it is against the entity of the IPv4 prefix.
#[test]
fn events_of_pppoe_raw_ip_and_ipv4_mapped_packets() {
    let mut fx = fixture();
    let dst4 = "203.0.113.7";
    let dst6 = "2001:db8:bad::7";
    let ip_ports = |f: &Frame, sport: u16, dport: u16| {
        let mut b = f.ip_bytes();
        let l4 = b.len() - f.payload_len;
        b[l4..l4 + 2].copy_from_slice(&sport.to_be_bytes());
        b[l4 + 2..l4 + 4].copy_from_slice(&dport.to_be_bytes());
        b
    };
    let v6 = |a: &str| a.parse::<std::net::Ipv6Addr>().unwrap().octets();
    let mut tcp6 = frame("2001:db8::2", dst6);
    set_protocol(&mut tcp6, 6);
    tcp6.payload_len = 20;
    let cases: Vec<LinkCase> = vec![
        (
            "pppoe ipv4 udp",
            Link::Ethernet,
            with_ports(&frame("198.18.0.2", dst4).pppoe(9), 1, 2),
            FAMILY_IPV4,
            v4_bytes(dst4),
            17,
            (1, 2),
        ),
        (
            "802.1Q pppoe ipv6 tcp",
            Link::Ethernet,
            with_ports(&tcp6.clone().vlan(ETH_P_8021Q, 5).pppoe(9), 3, 4),
            FAMILY_IPV6,
            v6(dst6),
            6,
            (3, 4),
        ),
        (
            "raw ipv4 udp",
            Link::RawIp,
            ip_ports(&frame("198.18.0.2", dst4), 5, 6),
            FAMILY_IPV4,
            v4_bytes(dst4),
            17,
            (5, 6),
        ),
        (
            "raw ipv6 tcp",
            Link::RawIp,
            ip_ports(&tcp6, 7, 8),
            FAMILY_IPV6,
            v6(dst6),
            6,
            (7, 8),
        ),
        (
            "ipv4-mapped destination",
            Link::Ethernet,
            with_ports(&frame("2001:db8::2", "::ffff:203.0.113.7"), 9, 10),
            FAMILY_IPV6,
            v6("::ffff:203.0.113.7"),
            17,
            (9, 10),
        ),
    ];
    let mut failures = Vec::new();
    for (what, link, bytes, family, dst, protocol, ports) in &cases {
        fx.dp.set_link(fx.lo, *link).unwrap();
        assert_eq!(fx.run(bytes, 1), XDP_DROP, "{what}");
        let evs = fx.events();
        let [ev] = evs[..] else {
            failures.push(format!("{what}: {} events", evs.len()));
            continue;
        };
        let got = (
            ev.entity,
            ev.family,
            ev.dst,
            ev.protocol,
            ev.flags,
            (ev.src_port, ev.dst_port),
            ev.packet_len,
        );
        let want = (
            BLOCKED,
            *family,
            *dst,
            *protocol,
            EVENT_PORTS,
            *ports,
            bytes.len() as u32,
        );
        if got != want {
            failures.push(format!("{what}: got {got:?}, expected {want:?}"));
        }
    }
    fx.dp.set_link(fx.lo, Link::Ethernet).unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(fx.lost(), [0, 0, 0]);
}

/// CPUs the per-CPU maps have a slot for.
fn cpus() -> u32 {
    aya::util::nr_cpus().expect("the possible CPUs") as u32
}

/// Keeps this thread (and so its `BPF_PROG_TEST_RUN`s) on the CPU it is on.
fn pin_to_one_cpu() {
    // SAFETY: plain syscalls on a zeroed `cpu_set_t` this function owns.
    unsafe {
        let cpu = libc::sched_getcpu();
        assert!(cpu >= 0, "sched_getcpu");
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set),
            0,
            "sched_setaffinity"
        );
    }
}

#[test]
fn the_budget_sends_its_share_counts_the_rest_lost_and_refills() {
    // The budget is per CPU: the test runs stay on this one.
    pin_to_one_cpu();
    let mut fx = fixture();
    // Five events per CPU, set full; no refill while this runs but the ones the test makes.
    let cpus = cpus();
    fx.dp
        .set_event_limits(EventLimits::per_second(5 * cpus, 5 * cpus))
        .unwrap();
    assert_eq!(fx.dp.event_budgets().unwrap(), [u64::from(5 * cpus); 3]);
    let blocked = with_ports(&frame("198.18.0.2", "203.0.113.7"), 1000, 53);
    let neighbour = with_ports(&frame("198.18.0.2", "192.0.2.9"), 1000, 53);
    let counters = |fx: &Fixture, e: u32| {
        fx.dp.counters().unwrap()[e as usize]
            .get(Direction::Outbound, Verdict::Dropped)
            .packets
    };

    // 40 back to back in one test run: the budget, then lost.
    assert_eq!(fx.run(&blocked, 40), XDP_DROP);
    let evs = fx.events();
    assert_eq!(evs.len(), 5, "{evs:?}");
    assert!(evs.iter().all(|e| e.entity == BLOCKED));
    assert_eq!(fx.lost(), [35, 0, 0]);
    // Every packet is still dropped and counted: events never change a verdict.
    assert_eq!(counters(&fx, BLOCKED), 40);
    assert_eq!(
        fx.dp.event_budgets().unwrap()[BLOCKED as usize],
        u64::from(5 * cpus - 5)
    );

    // Another entity has its own budget.
    assert_eq!(fx.run(&neighbour, 3), XDP_DROP);
    let evs = fx.events();
    assert_eq!(evs.len(), 3, "{evs:?}");
    assert!(evs.iter().all(|e| e.entity == NEIGHBOUR));
    assert_eq!(fx.lost(), [35, 0, 0]);

    // The first one's budget is still empty: time alone does not refill it.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(fx.run(&blocked, 1), XDP_DROP);
    assert!(fx.events().is_empty());
    assert_eq!(fx.lost(), [36, 0, 0]);

    // The agent's refill gives it its share again (no more: saved up to the cap), without a
    // reload: the same limits set again change nothing.
    fx.dp
        .set_event_limits(EventLimits::per_second(5 * cpus, 5 * cpus))
        .unwrap();
    assert_eq!(fx.run(&blocked, 1), XDP_DROP);
    assert!(fx.events().is_empty());
    fx.dp.refill_event_budgets().unwrap();
    fx.dp.refill_event_budgets().unwrap();
    assert_eq!(fx.dp.event_budgets().unwrap(), [u64::from(5 * cpus); 3]);
    assert_eq!(fx.run(&blocked, 8), XDP_DROP);
    assert_eq!(fx.events().len(), 5);
    assert_eq!(fx.lost(), [40, 0, 0]);
}

#[test]
fn a_full_ring_buffer_counts_the_rest_lost() {
    let mut fx = fixture();
    fx.dp
        .set_event_limits(EventLimits::per_second(1_000_000, 1_000_000))
        .unwrap();
    let capacity = embargo_abi::EVENTS_RING_BYTES as usize / (size_of::<Event>() + 8);
    let n = capacity as u32 + 500;
    assert_eq!(
        fx.run(&with_ports(&frame("198.18.0.2", "203.0.113.7"), 1, 2), n),
        XDP_DROP
    );
    let sent = fx.events().len();
    let lost = fx.lost()[BLOCKED as usize];
    assert_eq!(sent as u64 + lost, u64::from(n));
    assert!(
        sent <= capacity && sent + 1 >= capacity,
        "{sent} of {capacity}"
    );
    assert!(lost >= 500, "{lost}");
    // Drained, there is room again.
    assert_eq!(
        fx.run(&with_ports(&frame("198.18.0.2", "203.0.113.7"), 1, 2), 1),
        XDP_DROP
    );
    assert_eq!(fx.events().len(), 1);
}

#[test]
fn events_off_sends_and_counts_nothing() {
    let mut fx = fixture();
    fx.dp.set_event_limits(EventLimits::OFF).unwrap();
    // A refill leaves them off.
    fx.dp.refill_event_budgets().unwrap();
    assert_eq!(fx.dp.event_budgets().unwrap(), [embargo_abi::EVENTS_OFF; 3]);
    assert_eq!(
        fx.run(&frame("198.18.0.2", "203.0.113.7").bytes(), 10),
        XDP_DROP
    );
    assert_eq!(
        fx.run(&frame("198.18.0.2", "198.51.100.1").bytes(), 10),
        XDP_PASS
    );
    assert!(fx.events().is_empty());
    assert_eq!(fx.lost(), [0, 0, 0]);
    // Back on: the default.
    fx.dp.set_event_limits(EventLimits::DEFAULT).unwrap();
    assert_eq!(fx.dp.event_limits(), EventLimits::DEFAULT);
    assert_eq!(
        fx.run(&frame("198.18.0.2", "203.0.113.7").bytes(), 1),
        XDP_DROP
    );
    assert_eq!(fx.events().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// The agent in a netns lab.

fn lab_config(extra_v6: bool, extra_designation: bool, monitor_extra: bool) -> String {
    let mut blocked = vec!["203.0.113.0/24"];
    if extra_v6 {
        blocked.push("2001:db8:bad::/48");
    }
    let mut monitored = vec!["198.51.100.0/24"];
    if monitor_extra {
        monitored.push("100.64.0.0/24");
    }
    let mut events = LabEntity::new("lab-events", Action::Drop, &blocked)
        .name("Lab Events Entity")
        .designation("netns", "NETNS-events")
        .source("netns")
        .guard("test netns");
    if extra_designation {
        events = events.designation("netns", "NETNS-events-2");
    }
    let mut policy = LabPolicy::new()
        // Budgets are per CPU: a burst of 10 per CPU, refilled by 1 a second on each.
        .top(&format!(
            "\n[events]\nrate_per_entity = 1\nburst = {}\n",
            10 * cpus()
        ))
        .entity(events)
        .entity(
            LabEntity::new("lab-watch", Action::Monitor, &monitored)
                .name("Lab Watch Entity")
                .designation("netns", "NETNS-watch")
                .source("netns")
                .guard("test netns"),
        );
    if extra_v6 {
        // 80 more entities than the 64 the first generation's maps hold: a new generation.
        for i in 0..80 {
            policy = policy.entity(
                LabEntity::new(
                    &format!("lab-extra-{i}"),
                    Action::Drop,
                    &[&format!("198.18.{i}.0/24")],
                )
                .name("Lab Extra Entity")
                .designation("netns", &format!("NETNS-extra-{i}"))
                .source("netns")
                .guard("test netns"),
            );
        }
    }
    policy.to_string()
}

/// Sends `count` datagrams from the client's lab address, port `sport`, to `dst`:`dport`.
fn send(lab: &Lab, dst: IpAddr, sport: u16, dport: u16, count: usize) {
    let src: IpAddr = match dst {
        IpAddr::V4(_) => CLI_V4.into(),
        IpAddr::V6(_) => CLI_V6.into(),
    };
    lab::in_netns(lab.cli_ns(), || {
        let socket = UdpSocket::bind(SocketAddr::new(src, sport)).unwrap();
        for i in 0..count {
            socket
                .send_to(&[i as u8; 32], SocketAddr::new(dst, dport))
                .unwrap();
        }
    })
    .unwrap();
}

/// The event log's records, once it has at least `n` (or after 10 s, whatever it has).
fn wait_records(path: &Path, n: usize) -> Vec<Record> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let records: Vec<Record> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        if records.len() >= n || Instant::now() > deadline {
            return records;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `embargo_events_lost_total{entity=...}` from the lab agent's /metrics.
fn lost_metric(lab: &Lab, entity: &str) -> u64 {
    let (code, body) = lab
        .http_get("127.0.0.1:9610".parse().unwrap(), "/metrics")
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let prefix = format!("embargo_events_lost_total{{entity=\"{entity}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

fn check_udp(r: &Record, dst: IpAddr, sport: u16, dport: u16) {
    assert_eq!(r.verdict, "dropped", "{r:?}");
    assert_eq!(r.direction, "outbound", "{r:?}");
    assert_eq!(r.protocol, "udp", "{r:?}");
    assert_eq!(r.destination, dst, "{r:?}");
    assert_eq!(r.source_port, Some(sport), "{r:?}");
    assert_eq!(r.destination_port, Some(dport), "{r:?}");
    assert_eq!(r.entity, "lab-events", "{r:?}");
    let expected_len = match dst {
        IpAddr::V4(_) => 14 + 20 + 8 + 32,
        IpAddr::V6(_) => 14 + 40 + 8 + 32,
    };
    assert_eq!(r.length, expected_len, "{r:?}");
}

#[test]
fn the_agent_writes_drop_events_that_follow_reloads() {
    let lab = Lab::new().unwrap();
    lab.check_contained().unwrap();
    let a: IpAddr = "203.0.113.7".parse().unwrap();
    let c: IpAddr = "2001:db8:bad::7".parse().unwrap();
    lab.add_remote(a).unwrap();
    lab.add_remote(c).unwrap();
    let path = lab
        .write_file("events.toml", &lab_config(false, false, false))
        .unwrap();
    let agent = lab.start_agent(&path, Role::Inside).unwrap();
    let log = lab.events_log();

    // Three datagrams to a blocked address: three lines.
    send(&lab, a, 40001, 5353, 3);
    let records = wait_records(&log, 3);
    assert_eq!(records.len(), 3, "{records:?}\n{}", agent.log());
    let status = agent.status_json().unwrap();
    for r in &records {
        check_udp(r, a, 40001, 5353);
        assert_eq!(r.source, IpAddr::from(CLI_V4), "{r:?}");
        assert_eq!(r.interface, lab.gw_if(), "{r:?}");
        assert_eq!(r.family, "ipv4");
        assert_eq!(
            r.designations,
            [events::DesignationRef {
                authority: "TEST".into(),
                reference: "NETNS-events".into()
            }]
        );
        assert_eq!(r.policy_digest, status.digest, "{r:?}");
        let t = chrono::DateTime::parse_from_rfc3339(&r.time).unwrap();
        assert!(
            (chrono::Utc::now() - t.to_utc()).num_seconds().abs() < 60,
            "{r:?}"
        );
    }
    assert_eq!(
        lab::counter(&status, "lab-events", "outbound", "dropped").map(|c| c.0),
        Some(3)
    );

    let wait_for = |what: &str, ok: &dyn Fn(&embargo::observe::status::Status) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let s = agent.status().unwrap();
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:#?}\n{}",
                s.reloads,
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let hup = || {
        // SAFETY: signalling our own child process.
        assert_eq!(unsafe { libc::kill(agent.pid() as i32, libc::SIGHUP) }, 0);
    };

    // In place: a second designation (the table is the same) and a prefix for the other
    // entity (the digest changes). The next line shows both.
    std::fs::write(&path, lab_config(false, true, true)).unwrap();
    hup();
    let s = wait_for("the in-place reload", &|s| s.reloads.succeeded >= 2);
    assert_eq!(s.reloads.last_kind, "in_place", "{:#?}", s.reloads);
    assert_ne!(s.digest, status.digest);
    send(&lab, a, 40002, 5354, 1);
    let records = wait_records(&log, 4);
    assert_eq!(records.len(), 4, "{records:?}\n{}", agent.log());
    let r = &records[3];
    check_udp(r, a, 40002, 5354);
    assert_eq!(r.policy_digest, s.digest, "{r:?}");
    let refs: Vec<&str> = r
        .designations
        .iter()
        .map(|d| d.reference.as_str())
        .collect();
    assert_eq!(refs, ["NETNS-events", "NETNS-events-2"], "{r:?}");

    // The first IPv6 prefix and more entities than the maps hold need a new data-plane
    // generation, with a new ring buffer: the reader follows it.
    std::fs::write(&path, lab_config(true, true, true)).unwrap();
    hup();
    let s = wait_for("the new generation", &|s| s.reloads.succeeded >= 3);
    assert_eq!(s.reloads.last_kind, "new_generation", "{:#?}", s.reloads);
    send(&lab, c, 40003, 5355, 2);
    let records = wait_records(&log, 6);
    assert_eq!(records.len(), 6, "{records:?}\n{}", agent.log());
    for r in &records[4..] {
        check_udp(r, c, 40003, 5355);
        assert_eq!(r.family, "ipv6");
        assert_eq!(r.source, IpAddr::from(CLI_V6), "{r:?}");
        assert_eq!(r.policy_digest, s.digest, "{r:?}");
        assert_eq!(r.interface, lab.gw_if(), "{r:?}");
    }
    assert_eq!(lost_metric(&lab, "lab-events"), 0);

    // A burst over the budget (10 per CPU, refilled by 1/s; the new generation started it
    // full): the
    // rest is counted lost, exactly.
    let before = records.len();
    send(&lab, a, 40004, 5356, 40);
    let started = Instant::now();
    // The reader writes what was sent and reads the lost counters every second.
    std::thread::sleep(Duration::from_millis(2500));
    let records = wait_records(&log, before);
    let sent = records.len() - before;
    // On the CPU that takes the datagrams: the 10 less the 2 sent, 1 a second; more if the
    // datagrams land on more than one CPU.
    let cpus = cpus() as usize;
    let allowed = (10 + 1 + started.elapsed().as_secs() as usize) * cpus;
    assert!((8..=allowed).contains(&sent), "{sent} events of 40");
    let deadline = Instant::now() + Duration::from_secs(5);
    while lost_metric(&lab, "lab-events") < (40 - sent) as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(lost_metric(&lab, "lab-events"), (40 - sent) as u64);
    let s = agent.status_json().unwrap();
    assert_eq!(
        lab::counter(&s, "lab-events", "outbound", "dropped").map(|c| c.0),
        Some(3 + 1 + 2 + 40),
        "every packet dropped and counted"
    );
    agent.stop().unwrap();
}

/// Regression (issue 14): events are on by default. An agent started without `--events-log`
/// and with an `[events]` table that names only a path (no `output`) writes its drops there,
/// creating the missing folder 0750 at most; with the old default (`output = "none"`) nothing
/// was written.
#[test]
fn events_are_on_by_default_and_go_to_the_configured_path() {
    use std::os::unix::fs::PermissionsExt as _;
    let lab = Lab::new().unwrap();
    lab.check_contained().unwrap();
    let a: IpAddr = "203.0.113.8".parse().unwrap();
    lab.add_remote(a).unwrap();
    let folder = lab.dir().join("configured");
    let log = folder.join("events.jsonl");
    let text = LabPolicy::new()
        .top(&format!("\n[events]\npath = \"{}\"\n", log.display()))
        .entity(
            LabEntity::new("lab-events", Action::Drop, &["203.0.113.0/24"])
                .name("Lab Events Entity")
                .designation("netns", "NETNS-events")
                .source("netns")
                .guard("test netns"),
        )
        .to_string();
    assert!(!text.contains("output"), "{text}");
    let path = lab.write_file("default-events.toml", &text).unwrap();
    let agent = lab.start_agent_config_events(&path, Role::Inside).unwrap();
    let mode = std::fs::metadata(&folder).unwrap().permissions().mode();
    assert_eq!(mode & 0o027, 0, "{mode:o}");

    send(&lab, a, 40011, 5353, 2);
    let records = wait_records(&log, 2);
    assert_eq!(records.len(), 2, "{records:?}\n{}", agent.log());
    for r in &records {
        check_udp(r, a, 40011, 5353);
    }
    assert!(
        !lab.events_log().exists(),
        "the lab's --events-log path is not used"
    );
    agent.stop().unwrap();
}

/// `[events] output = "none"` still turns them off (issue 14): without `--events-log` nothing is
/// written, not even the configured path's folder, while the drops are counted as before.
#[test]
fn output_none_turns_events_off() {
    let lab = Lab::new().unwrap();
    lab.check_contained().unwrap();
    let a: IpAddr = "203.0.113.9".parse().unwrap();
    lab.add_remote(a).unwrap();
    let folder = lab.dir().join("off");
    let text = LabPolicy::new()
        .top(&format!(
            "\n[events]\noutput = \"none\"\npath = \"{}\"\n",
            folder.join("events.jsonl").display()
        ))
        .entity(
            LabEntity::new("lab-events", Action::Drop, &["203.0.113.0/24"])
                .name("Lab Events Entity")
                .designation("netns", "NETNS-events")
                .source("netns")
                .guard("test netns"),
        )
        .to_string();
    let path = lab.write_file("no-events.toml", &text).unwrap();
    let agent = lab.start_agent_config_events(&path, Role::Inside).unwrap();
    send(&lab, a, 40012, 5353, 2);
    // The reader would write within a second.
    std::thread::sleep(Duration::from_millis(1500));
    let status = agent.status_json().unwrap();
    assert_eq!(
        lab::counter(&status, "lab-events", "outbound", "dropped").map(|c| c.0),
        Some(2)
    );
    assert!(!folder.exists(), "no events folder with output = \"none\"");
    assert!(!lab.events_log().exists());
    assert_eq!(lost_metric(&lab, "lab-events"), 0, "none sent, none lost");
    agent.stop().unwrap();
}
