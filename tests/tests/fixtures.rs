//! Fixture table for the production XDP program, run through `BPF_PROG_TEST_RUN`.
//!
//! Loads the real `embargo_xdp` object with a policy written as a configuration file (parsed and
//! compiled exactly as the agent does) and runs one frame per row, received on the loopback
//! ifindex (passed to the kernel in `ctx_in`, a `struct xdp_md`) with the role the row names.
//! For every row it checks the XDP verdict, and that every global stat and every entity counter
//! moved by exactly what the row says and nothing else; exactly one terminal outcome (a terminal
//! stat, or the entity counter of a match whose action applied) must move.
//!
//! Rows cover: IPv4 and IPv6; `inside` (destination matched) and `outside` (source matched)
//! roles, and the other address of a packet not being matched; drop and monitor entities;
//! direction-limited entities hit in the direction they do not cover; the most specific prefix
//! winning (nested /8 /16 /32 and /32 /48 /128 listed most specific first, neighbours at every
//! trie level, a non-stride /29 and shorter-than-root /10 and /12); 802.1Q, 802.1ad, QinQ and
//! three or four tags; truncation at and one byte before every header boundary the packet
//! builder reports; non-IP frames; malformed IPv4 and IPv6; IPv6 extension headers; IPv4 options
//! and fragments; interfaces without a role; misses in both families; full-size frames.
//! Uplinks that are not plain Ethernet: bare IPv4 and IPv6 packets on an interface whose
//! role-map entry says raw IP (tun, WireGuard, PPP, IP tunnels), and an Ethernet frame or a bad
//! version nibble there; PPPoE session frames (IPv4, IPv6, behind VLAN tags, LCP and IPCP,
//! discovery, bad headers, truncated); IPv4-mapped and IPv4-compatible IPv6 addresses matched
//! against the IPv4 prefixes (and `::`, `::1`, lookalikes not), falling back to the IPv6 ones.
//!
//! What the kernel does not allow: `BPF_PROG_TEST_RUN` refuses XDP input shorter than an
//! Ethernet header (14 bytes) with `EINVAL` before the program runs, so runts are tested as far
//! as the kernel allows: `kernel_refuses_runts_below_ethernet` asserts the `EINVAL` for every
//! length below 14 (and that nothing was counted), and the table starts at 14 bytes. The
//! program's `truncated_ethernet` path cannot be reached from a test run.
//!
//! The TC egress classifier (same object, same maps) has its own table, run the same way with
//! an skb test run: the frame starts at the Ethernet header and `ctx_in` is a `struct
//! __sk_buff` naming the device the packet leaves (`ifindex`, the loopback or a veth of the
//! test's own) and, for forwarded packets, the interface it arrived on (`ingress_ifindex`).
//! Rows cover blocked, monitored, unlisted and other-direction destinations in both families,
//! a blocked *source* not being matched, tags, fragments, truncation, non-IP, the egress flag
//! off (also without a role and on an `inside` interface), and packets forwarded from inside,
//! outside and role-less interfaces; bare IP packets on a raw-IP interface (the test run's
//! data starts where the program's does: the kernel's `eth_type_trans` pull is pushed back, so
//! a raw-IP row is the IP header from byte 0), PPPoE and IPv4-mapped destinations. What the
//! test run cannot build: a socket buffer whose
//! headers are not all in its linear part (the kernel's skb test runs are always linear), so
//! the classifier's `bpf_skb_pull_data` path is not reached here.
//!
//! Needs root (CAP_BPF, CAP_NET_ADMIN): `cargo test -p embargo-tests --test fixtures`.

use std::collections::HashSet;

use aya::programs::{ProgramError, TestRun, TestRunOptions};
use embargo::{
    config::{self, Action, DirectionSet, Interface, XdpMode},
    dataplane::{Dataplane, DataplaneError, EntityCounters, system},
    policy::Policy,
};
use embargo_abi::{
    Counter,
    Direction::{self, Inbound, Outbound},
    IFACE_EGRESS, IfaceConfig, IfaceRole, Link, MAX_IFINDEX,
    Stat::{
        self, EgressForwarded, EgressOff, Ipv4Fragment, MalformedIpv4, MalformedIpv6, MissIpv4,
        MissIpv6, NoRole, NonIp, OtherDirection, QinQ, TruncatedIpv4, TruncatedIpv6, TruncatedVlan,
        Vlan, VlanTooDeep,
    },
    Verdict::{self, Dropped, Monitored},
    maps,
};
use embargo_tests::{
    packet::{
        ETH_P_8021AD, ETH_P_8021Q, ETH_P_ARP, ETH_P_IPV4, ETH_P_IPV6, Frame, L3, PPP_LCP,
        boundaries,
    },
    policy::{LabEntity, LabPolicy},
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
/// The kernel's minimum XDP test-run input (`ETH_HLEN`).
const ETH_HLEN: usize = 14;

const INSIDE: IfaceRole = IfaceRole::Inside;
const OUTSIDE: IfaceRole = IfaceRole::Outside;
const NO_ROLE: IfaceRole = IfaceRole::None;

/// The fixture policy. Entities are listed most specific first on purpose: the data plane must
/// not depend on the order of the file.
fn policy() -> String {
    let entity = |id: &str, name: &str, action: Action, prefixes: &[&str]| {
        LabEntity::new(id, action, prefixes)
            .name(name)
            .designation("fixture", &format!("FIXTURE-{id}"))
            .source("fixture")
            .guard("test fixture")
    };
    LabPolicy::new()
        .entity(entity(
            "host",
            "Host Ltd",
            Action::Drop,
            &["10.1.2.3/32", "2001:db8:1::42/128"],
        ))
        .entity(entity(
            "wide",
            "Wide Holdings",
            Action::Drop,
            &["10.0.0.0/8", "2001:db8::/32"],
        ))
        .entity(entity(
            "mid",
            "Mid Networks",
            Action::Monitor,
            &["10.1.0.0/16", "2001:db8:1::/48", "::ffff:198.18.0.0/112"],
        ))
        .entity(
            entity(
                "outbound-only",
                "Outbound Only",
                Action::Drop,
                &["198.51.100.0/24", "3fff:bad::/32"],
            )
            .direction(DirectionSet::Outbound),
        )
        .entity(
            entity(
                "inbound-only",
                "Inbound Only",
                Action::Monitor,
                &["203.0.113.0/24", "3fff:100::/32"],
            )
            .direction(DirectionSet::Inbound),
        )
        .entity(entity(
            "odd",
            "Odd Lengths",
            Action::Drop,
            &["192.0.2.8/29", "3fff:ab8::/29", "0.0.0.0/30"],
        ))
        .entity(entity(
            "short",
            "Short Prefixes",
            Action::Monitor,
            &["100.64.0.0/10", "2a00::/12"],
        ))
        .to_string()
}

// Entity indices: the order of the entities in `policy()` (checked at load).
const HOST: u32 = 0;
const WIDE: u32 = 1;
const MID: u32 = 2;
const OUT_ONLY: u32 = 3;
const IN_ONLY: u32 = 4;
const ODD: u32 = 5;
const SHORT: u32 = 6;
const ENTITY_IDS: [&str; 7] = [
    "host",
    "wide",
    "mid",
    "outbound-only",
    "inbound-only",
    "odd",
    "short",
];

const HOST4: &str = "10.1.2.3";
const HOST6: &str = "2001:db8:1::42";
/// Addresses in no prefix.
const MISS4: &str = "192.0.2.200";
const MISS4B: &str = "198.18.0.1";
const MISS6: &str = "fd00::200";
const MISS6B: &str = "2001:db9::1";

// ---------------------------------------------------------------------------------------------
// The table.

/// One fixture: a frame, the role of the interface it arrives on, and everything it must do.
struct Row {
    name: String,
    frame: Vec<u8>,
    role: IfaceRole,
    /// `XDP_DROP` or `XDP_PASS`.
    action: u32,
    /// Expected change of each stat; every stat not listed must not change.
    stats: Vec<(Stat, u64)>,
    /// Expected change of entity counters: (entity, direction, verdict, packets, bytes); every
    /// counter not listed must not change.
    counters: Vec<(u32, Direction, Verdict, u64, u64)>,
    /// What the interface's role-map entry says its packets start with.
    link: Link,
}

fn row(
    name: impl Into<String>,
    frame: Vec<u8>,
    role: IfaceRole,
    action: u32,
    stats: &[Stat],
) -> Row {
    Row {
        name: name.into(),
        frame,
        role,
        action,
        stats: stats.iter().map(|s| (*s, 1)).collect(),
        counters: Vec::new(),
        link: Link::Ethernet,
    }
}

impl Row {
    /// Expects the packet counted once, with its full length, against `entity`.
    fn counted(mut self, entity: u32, direction: Direction, verdict: Verdict) -> Self {
        let bytes = self.frame.len() as u64;
        self.counters.push((entity, direction, verdict, 1, bytes));
        self
    }

    /// Received on (or sent out of) a layer-3 interface: the frame is the bare IP packet.
    fn raw_ip(mut self) -> Self {
        self.link = Link::RawIp;
        self
    }
}

fn v4(src: &str, dst: &str) -> Frame {
    Frame::ip(src.parse().unwrap(), dst.parse().unwrap())
}

fn v6(src: &str, dst: &str) -> Frame {
    Frame::ip(src.parse().unwrap(), dst.parse().unwrap())
}

/// An IPv4 frame with a given header length (words) and flags/fragment-offset field.
fn v4_hdr(src: &str, dst: &str, ihl_words: u8, frag_field: u16) -> Frame {
    let mut f = v4(src, dst);
    match &mut f.l3 {
        L3::V4 { ihl, frag, .. } => {
            *ihl = ihl_words;
            *frag = frag_field;
        }
        _ => unreachable!(),
    }
    f
}

/// An IPv6 frame whose fixed header says `next_header` and whose payload is `body`.
fn v6_ext(src: &str, dst: &str, next: u8, body: &[u8]) -> Vec<u8> {
    let mut f = v6(src, dst);
    match &mut f.l3 {
        L3::V6 { next_header, .. } => *next_header = next,
        _ => unreachable!(),
    }
    f.payload_len = body.len();
    let mut b = f.bytes();
    let start = b.len() - body.len();
    b[start..].copy_from_slice(body);
    b
}

fn other(ethertype: u16, body: &[u8]) -> Frame {
    Frame {
        vlans: Vec::new(),
        pppoe: None,
        l3: L3::Other {
            ethertype,
            body: body.to_vec(),
        },
        payload_len: 0,
    }
}

/// An ARP request who-has 10.1.2.3 (a blocked address, which must not matter).
fn arp() -> Frame {
    let mut body = vec![0, 1, 0x08, 0x00, 6, 4, 0, 1];
    body.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 192, 0, 2, 200]);
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 1, 2, 3]);
    other(ETH_P_ARP, &body)
}

/// A PPPoE session frame carrying PPP protocol `protocol` with `body` (LCP, IPCP, ...).
fn ppp(protocol: u16, body: &[u8]) -> Frame {
    other(protocol, body).pppoe(0x2a)
}

/// An LCP Echo-Request (code 9, id 1, length 8, magic number).
fn lcp_echo() -> Frame {
    ppp(PPP_LCP, &[9, 1, 0, 8, 0xde, 0xad, 0xbe, 0xef])
}

/// A PPPoE session frame for `ip` with byte `at` (from the PPPoE header's start) set to `value`.
fn pppoe_patched(ip: Frame, at: usize, value: u8) -> Vec<u8> {
    let mut b = ip.pppoe(0x2a).bytes();
    b[ETH_HLEN + at] = value;
    b
}

/// `bytes` with the (untagged) EtherType replaced.
fn retype(mut bytes: Vec<u8>, ethertype: u16) -> Vec<u8> {
    bytes[12..14].copy_from_slice(&ethertype.to_be_bytes());
    bytes
}

/// A frame padded with payload to exactly `total` bytes.
fn sized(mut f: Frame, total: usize) -> Vec<u8> {
    f.payload_len = 0;
    let header = f.bytes().len();
    f.payload_len = total - header;
    let b = f.bytes();
    assert_eq!(b.len(), total);
    b
}

#[rustfmt::skip]
fn rows() -> Vec<Row> {
    let mut r = Vec::new();

    // --- IPv4: roles, directions, nesting -----------------------------------------------------
    r.push(row("v4 inside: dst in 10/8 -> wide drops", v4(MISS4, "10.9.9.9").bytes(), INSIDE, XDP_DROP, &[]).counted(WIDE, Outbound, Dropped));
    r.push(row("v4 inside: dst in 10.1/16 -> mid monitors", v4(MISS4, "10.1.9.9").bytes(), INSIDE, XDP_PASS, &[]).counted(MID, Outbound, Monitored));
    r.push(row("v4 inside: dst 10.1.2.3/32 -> host drops", v4(MISS4, HOST4).bytes(), INSIDE, XDP_DROP, &[]).counted(HOST, Outbound, Dropped));
    r.push(row("v4 inside: 10.1.2.2, last-level sibling of the /32 -> mid", v4(MISS4, "10.1.2.2").bytes(), INSIDE, XDP_PASS, &[]).counted(MID, Outbound, Monitored));
    r.push(row("v4 inside: 10.1.2.19, first-level sibling of the /32 -> mid", v4(MISS4, "10.1.2.19").bytes(), INSIDE, XDP_PASS, &[]).counted(MID, Outbound, Monitored));
    r.push(row("v4 inside: 10.1.3.3, root sibling of the /32 -> mid", v4(MISS4, "10.1.3.3").bytes(), INSIDE, XDP_PASS, &[]).counted(MID, Outbound, Monitored));
    r.push(row("v4 inside: 10.255.255.255, last of 10/8 -> wide", v4(MISS4, "10.255.255.255").bytes(), INSIDE, XDP_DROP, &[]).counted(WIDE, Outbound, Dropped));
    r.push(row("v4 inside: 11.0.0.0, just past 10/8 -> miss", v4(MISS4, "11.0.0.0").bytes(), INSIDE, XDP_PASS, &[MissIpv4]));
    r.push(row("v4 inside: 9.255.255.255, just before 10/8 -> miss", v4(MISS4, "9.255.255.255").bytes(), INSIDE, XDP_PASS, &[MissIpv4]));
    r.push(row("v4 outside: src 10.1.2.3 -> host drops inbound", v4(HOST4, MISS4).bytes(), OUTSIDE, XDP_DROP, &[]).counted(HOST, Inbound, Dropped));
    r.push(row("v4 outside: src in 10.1/16 -> mid monitors inbound", v4("10.1.9.9", MISS4).bytes(), OUTSIDE, XDP_PASS, &[]).counted(MID, Inbound, Monitored));
    r.push(row("v4 outside: src in 10/8 -> wide drops inbound", v4("10.9.9.9", MISS4).bytes(), OUTSIDE, XDP_DROP, &[]).counted(WIDE, Inbound, Dropped));
    r.push(row("v4 inside: blocked 10.1.2.3 as source is not matched -> miss", v4(HOST4, MISS4).bytes(), INSIDE, XDP_PASS, &[MissIpv4]));
    r.push(row("v4 outside: blocked 10.1.2.3 as destination is not matched -> miss", v4(MISS4, HOST4).bytes(), OUTSIDE, XDP_PASS, &[MissIpv4]));
    r.push(row("v4 inside: both addresses unlisted -> miss", v4(MISS4, MISS4B).bytes(), INSIDE, XDP_PASS, &[MissIpv4]));
    r.push(row("v4 outside: both addresses unlisted -> miss", v4(MISS4B, MISS4).bytes(), OUTSIDE, XDP_PASS, &[MissIpv4]));
    r.push(row("v4 inside: both listed, the destination (host) decides", v4("10.1.9.9", HOST4).bytes(), INSIDE, XDP_DROP, &[]).counted(HOST, Outbound, Dropped));
    r.push(row("v4 outside: both listed, the source (mid) decides", v4("10.1.9.9", HOST4).bytes(), OUTSIDE, XDP_PASS, &[]).counted(MID, Inbound, Monitored));
    r.push(row("v4 /29: first address 192.0.2.8 -> odd", v4(MISS4, "192.0.2.8").bytes(), INSIDE, XDP_DROP, &[]).counted(ODD, Outbound, Dropped));
    r.push(row("v4 /29: last address 192.0.2.15 -> odd", v4("192.0.2.15", MISS4).bytes(), OUTSIDE, XDP_DROP, &[]).counted(ODD, Inbound, Dropped));
    r.push(row("v4 /29: 192.0.2.7 just below -> miss", v4(MISS4, "192.0.2.7").bytes(), INSIDE, XDP_PASS, &[MissIpv4]));
    r.push(row("v4 /29: 192.0.2.16 just above -> miss", v4(MISS4, "192.0.2.16").bytes(), INSIDE, XDP_PASS, &[MissIpv4]));
    r.push(row("v4 /10 (shorter than the root): first address -> short", v4(MISS4, "100.64.0.0").bytes(), INSIDE, XDP_PASS, &[]).counted(SHORT, Outbound, Monitored));
    r.push(row("v4 /10: last address as source -> short inbound", v4("100.127.255.255", MISS4).bytes(), OUTSIDE, XDP_PASS, &[]).counted(SHORT, Inbound, Monitored));
    r.push(row("v4 /10: 100.63.255.255 just below -> miss", v4(MISS4, "100.63.255.255").bytes(), INSIDE, XDP_PASS, &[MissIpv4]));
    r.push(row("v4 /10: 100.128.0.0 just above -> miss", v4(MISS4, "100.128.0.0").bytes(), INSIDE, XDP_PASS, &[MissIpv4]));
    r.push(row("v4 outbound-only entity, outbound -> drops", v4(MISS4, "198.51.100.9").bytes(), INSIDE, XDP_DROP, &[]).counted(OUT_ONLY, Outbound, Dropped));
    r.push(row("v4 outbound-only entity received inbound -> other direction, pass", v4("198.51.100.9", MISS4).bytes(), OUTSIDE, XDP_PASS, &[OtherDirection]));
    r.push(row("v4 inbound-only entity, inbound -> monitors", v4("203.0.113.5", MISS4).bytes(), OUTSIDE, XDP_PASS, &[]).counted(IN_ONLY, Inbound, Monitored));
    r.push(row("v4 inbound-only entity sent outbound -> other direction, pass", v4(MISS4, "203.0.113.5").bytes(), INSIDE, XDP_PASS, &[OtherDirection]));

    // --- IPv6: roles, directions, nesting -----------------------------------------------------
    r.push(row("v6 inside: dst in 2001:db8::/32 -> wide drops", v6(MISS6, "2001:db8:9::1").bytes(), INSIDE, XDP_DROP, &[]).counted(WIDE, Outbound, Dropped));
    r.push(row("v6 inside: dst in 2001:db8:1::/48 -> mid monitors", v6(MISS6, "2001:db8:1::1").bytes(), INSIDE, XDP_PASS, &[]).counted(MID, Outbound, Monitored));
    r.push(row("v6 inside: dst 2001:db8:1::42/128 -> host drops", v6(MISS6, HOST6).bytes(), INSIDE, XDP_DROP, &[]).counted(HOST, Outbound, Dropped));
    r.push(row("v6 inside: ::43, last-level sibling of the /128 -> mid", v6(MISS6, "2001:db8:1::43").bytes(), INSIDE, XDP_PASS, &[]).counted(MID, Outbound, Monitored));
    r.push(row("v6 inside: 2001:db8:1:0:8000::42, mid-level sibling of the /128 -> mid", v6(MISS6, "2001:db8:1:0:8000::42").bytes(), INSIDE, XDP_PASS, &[]).counted(MID, Outbound, Monitored));
    r.push(row("v6 inside: last address of 2001:db8::/32 -> wide", v6(MISS6, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff").bytes(), INSIDE, XDP_DROP, &[]).counted(WIDE, Outbound, Dropped));
    r.push(row("v6 inside: 2001:db9::, just past the /32 -> miss", v6(MISS6, "2001:db9::").bytes(), INSIDE, XDP_PASS, &[MissIpv6]));
    r.push(row("v6 inside: 2001:db7:ffff::, just before the /32 -> miss", v6(MISS6, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff").bytes(), INSIDE, XDP_PASS, &[MissIpv6]));
    r.push(row("v6 outside: src 2001:db8:1::42 -> host drops inbound", v6(HOST6, MISS6).bytes(), OUTSIDE, XDP_DROP, &[]).counted(HOST, Inbound, Dropped));
    r.push(row("v6 outside: src in the /48 -> mid monitors inbound", v6("2001:db8:1::7", MISS6).bytes(), OUTSIDE, XDP_PASS, &[]).counted(MID, Inbound, Monitored));
    r.push(row("v6 inside: blocked ::42 as source is not matched -> miss", v6(HOST6, MISS6).bytes(), INSIDE, XDP_PASS, &[MissIpv6]));
    r.push(row("v6 outside: blocked ::42 as destination is not matched -> miss", v6(MISS6, HOST6).bytes(), OUTSIDE, XDP_PASS, &[MissIpv6]));
    r.push(row("v6 inside: both addresses unlisted -> miss", v6(MISS6, MISS6B).bytes(), INSIDE, XDP_PASS, &[MissIpv6]));
    r.push(row("v6 outside: both addresses unlisted -> miss", v6(MISS6B, MISS6).bytes(), OUTSIDE, XDP_PASS, &[MissIpv6]));
    r.push(row("v6 /29: 3fff:ab8::1 -> odd", v6(MISS6, "3fff:ab8::1").bytes(), INSIDE, XDP_DROP, &[]).counted(ODD, Outbound, Dropped));
    r.push(row("v6 /29: 3fff:abf:ffff::1 as source -> odd inbound", v6("3fff:abf:ffff::1", MISS6).bytes(), OUTSIDE, XDP_DROP, &[]).counted(ODD, Inbound, Dropped));
    r.push(row("v6 /29: 3fff:ab7:ffff::1 just below -> miss", v6(MISS6, "3fff:ab7:ffff::1").bytes(), INSIDE, XDP_PASS, &[MissIpv6]));
    r.push(row("v6 /29: 3fff:ac0:: just above -> miss", v6(MISS6, "3fff:ac0::").bytes(), INSIDE, XDP_PASS, &[MissIpv6]));
    r.push(row("v6 /12 (shorter than the root): 2a00::1 -> short", v6(MISS6, "2a00::1").bytes(), INSIDE, XDP_PASS, &[]).counted(SHORT, Outbound, Monitored));
    r.push(row("v6 /12: last root slot as source -> short inbound", v6("2a0f:ffff:ffff:ffff::1", MISS6).bytes(), OUTSIDE, XDP_PASS, &[]).counted(SHORT, Inbound, Monitored));
    r.push(row("v6 /12: 29ff:ffff:: just below -> miss", v6(MISS6, "29ff:ffff::").bytes(), INSIDE, XDP_PASS, &[MissIpv6]));
    r.push(row("v6 /12: 2a10:: just above -> miss", v6(MISS6, "2a10::").bytes(), INSIDE, XDP_PASS, &[MissIpv6]));
    r.push(row("v6 outbound-only entity, outbound -> drops", v6(MISS6, "3fff:bad::1").bytes(), INSIDE, XDP_DROP, &[]).counted(OUT_ONLY, Outbound, Dropped));
    r.push(row("v6 outbound-only entity received inbound -> other direction, pass", v6("3fff:bad::1", MISS6).bytes(), OUTSIDE, XDP_PASS, &[OtherDirection]));
    r.push(row("v6 inbound-only entity, inbound -> monitors", v6("3fff:100::1", MISS6).bytes(), OUTSIDE, XDP_PASS, &[]).counted(IN_ONLY, Inbound, Monitored));
    r.push(row("v6 inbound-only entity sent outbound -> other direction, pass", v6(MISS6, "3fff:100::1").bytes(), INSIDE, XDP_PASS, &[OtherDirection]));

    // --- VLAN ---------------------------------------------------------------------------------
    r.push(row("802.1Q v4 to host -> drops, one tag", v4(MISS4, HOST4).vlan(ETH_P_8021Q, 10).bytes(), INSIDE, XDP_DROP, &[Vlan]).counted(HOST, Outbound, Dropped));
    r.push(row("802.1ad v4 from mid -> monitors, one tag", v4("10.1.9.9", MISS4).vlan(ETH_P_8021AD, 10).bytes(), OUTSIDE, XDP_PASS, &[Vlan]).counted(MID, Inbound, Monitored));
    r.push(row("802.1Q priority tag (VID 0) v4 to wide -> drops, one tag", v4(MISS4, "10.9.9.9").vlan(ETH_P_8021Q, 0).bytes(), INSIDE, XDP_DROP, &[Vlan]).counted(WIDE, Outbound, Dropped));
    r.push(row("802.1Q v6 from host -> drops, one tag", v6(HOST6, MISS6).vlan(ETH_P_8021Q, 4094).bytes(), OUTSIDE, XDP_DROP, &[Vlan]).counted(HOST, Inbound, Dropped));
    r.push(row("802.1ad v6 miss -> one tag", v6(MISS6, MISS6B).vlan(ETH_P_8021AD, 7).bytes(), INSIDE, XDP_PASS, &[MissIpv6, Vlan]));
    r.push(row("QinQ 802.1ad+802.1Q v4 to wide -> drops, two tags", v4(MISS4, "10.9.9.9").vlan(ETH_P_8021AD, 100).vlan(ETH_P_8021Q, 200).bytes(), INSIDE, XDP_DROP, &[QinQ]).counted(WIDE, Outbound, Dropped));
    r.push(row("QinQ 802.1Q+802.1Q v6 to mid -> monitors, two tags", v6(MISS6, "2001:db8:1::1").vlan(ETH_P_8021Q, 100).vlan(ETH_P_8021Q, 200).bytes(), INSIDE, XDP_PASS, &[QinQ]).counted(MID, Outbound, Monitored));
    r.push(row("QinQ 802.1ad+802.1ad v4 miss -> two tags", v4(MISS4B, MISS4).vlan(ETH_P_8021AD, 1).vlan(ETH_P_8021AD, 2).bytes(), OUTSIDE, XDP_PASS, &[MissIpv4, QinQ]));
    r.push(row("QinQ v6 from host -> drops, two tags", v6(HOST6, MISS6).vlan(ETH_P_8021AD, 100).vlan(ETH_P_8021Q, 200).bytes(), OUTSIDE, XDP_DROP, &[QinQ]).counted(HOST, Inbound, Dropped));
    r.push(row("three tags v4 to host -> vlan too deep, pass", v4(MISS4, HOST4).vlan(ETH_P_8021AD, 1).vlan(ETH_P_8021Q, 2).vlan(ETH_P_8021Q, 3).bytes(), INSIDE, XDP_PASS, &[VlanTooDeep]));
    r.push(row("three tags v6 from host -> vlan too deep, pass", v6(HOST6, MISS6).vlan(ETH_P_8021Q, 1).vlan(ETH_P_8021Q, 2).vlan(ETH_P_8021AD, 3).bytes(), OUTSIDE, XDP_PASS, &[VlanTooDeep]));
    r.push(row("four tags v4 -> vlan too deep, pass", v4(MISS4, HOST4).vlan(ETH_P_8021AD, 1).vlan(ETH_P_8021AD, 2).vlan(ETH_P_8021Q, 3).vlan(ETH_P_8021Q, 4).bytes(), INSIDE, XDP_PASS, &[VlanTooDeep]));
    // Tags are counted only for frames that parse to an IP header (informational stats are
    // earned on the way to a classification).
    r.push(row("802.1Q-tagged ARP -> non-IP only", arp().vlan(ETH_P_8021Q, 10).bytes(), INSIDE, XDP_PASS, &[NonIp]));
    r.push(row("802.1Q-tagged IPv4 with IHL 4 -> malformed only", v4_hdr(MISS4, HOST4, 4, 0).vlan(ETH_P_8021Q, 10).bytes(), INSIDE, XDP_PASS, &[MalformedIpv4]));
    r.push(row("0x9100 (pre-standard QinQ) tag is not a VLAN -> non-IP", v4(MISS4, HOST4).vlan(0x9100, 10).bytes(), INSIDE, XDP_PASS, &[NonIp]));

    // --- IPv4 fragments and options -----------------------------------------------------------
    r.push(row("v4 first fragment (MF) to host -> drops, fragment", v4_hdr(MISS4, HOST4, 5, 0x2000).bytes(), INSIDE, XDP_DROP, &[Ipv4Fragment]).counted(HOST, Outbound, Dropped));
    r.push(row("v4 middle fragment (MF, offset 185) to host -> drops, fragment", v4_hdr(MISS4, HOST4, 5, 0x2000 | 185).bytes(), INSIDE, XDP_DROP, &[Ipv4Fragment]).counted(HOST, Outbound, Dropped));
    r.push(row("v4 last fragment (offset 370) from host -> drops, fragment", v4_hdr(HOST4, MISS4, 5, 370).bytes(), OUTSIDE, XDP_DROP, &[Ipv4Fragment]).counted(HOST, Inbound, Dropped));
    r.push(row("v4 last fragment, largest offset, to mid -> monitors, fragment", v4_hdr(MISS4, "10.1.9.9", 5, 0x1fff).bytes(), INSIDE, XDP_PASS, &[Ipv4Fragment]).counted(MID, Outbound, Monitored));
    r.push(row("v4 fragment miss -> miss, fragment", v4_hdr(MISS4, MISS4B, 5, 0x2000 | 1).bytes(), INSIDE, XDP_PASS, &[MissIpv4, Ipv4Fragment]));
    r.push(row("v4 DF only is not a fragment -> drops", v4_hdr(MISS4, HOST4, 5, 0x4000).bytes(), INSIDE, XDP_DROP, &[]).counted(HOST, Outbound, Dropped));
    r.push(row("v4 fragment in QinQ to mid -> monitors, two tags, fragment", v4_hdr(MISS4, "10.1.9.9", 5, 0x2000).vlan(ETH_P_8021AD, 1).vlan(ETH_P_8021Q, 2).bytes(), INSIDE, XDP_PASS, &[QinQ, Ipv4Fragment]).counted(MID, Outbound, Monitored));
    r.push(row("v4 fragment to outbound-only entity received inbound -> other direction", v4_hdr("198.51.100.9", MISS4, 5, 185).vlan(ETH_P_8021Q, 5).bytes(), OUTSIDE, XDP_PASS, &[Vlan, Ipv4Fragment, OtherDirection]));
    r.push(row("v4 options IHL 6 to host -> drops", v4_hdr(MISS4, HOST4, 6, 0).bytes(), INSIDE, XDP_DROP, &[]).counted(HOST, Outbound, Dropped));
    r.push(row("v4 options IHL 15 from host -> drops", v4_hdr(HOST4, MISS4, 15, 0).bytes(), OUTSIDE, XDP_DROP, &[]).counted(HOST, Inbound, Dropped));
    r.push(row("v4 options IHL 15 miss -> miss", v4_hdr(MISS4, MISS4B, 15, 0).bytes(), INSIDE, XDP_PASS, &[MissIpv4]));
    // Only the fixed 20 bytes are needed to classify: options cut off still match.
    r.push(row("v4 IHL 15 with its options cut off, to host -> drops", v4_hdr(MISS4, HOST4, 15, 0).bytes()[..ETH_HLEN + 20].to_vec(), INSIDE, XDP_DROP, &[]).counted(HOST, Outbound, Dropped));

    // --- Malformed IP -------------------------------------------------------------------------
    r.push(row("v4 IHL 4 to host -> malformed, pass", v4_hdr(MISS4, HOST4, 4, 0).bytes(), INSIDE, XDP_PASS, &[MalformedIpv4]));
    r.push(row("v4 IHL 0 from host -> malformed, pass", v4_hdr(HOST4, MISS4, 0, 0).bytes(), OUTSIDE, XDP_PASS, &[MalformedIpv4]));
    r.push(row("IPv6 header under the IPv4 EtherType -> malformed v4", retype(v6(MISS6, HOST6).bytes(), ETH_P_IPV4), INSIDE, XDP_PASS, &[MalformedIpv4]));
    r.push(row("version 0 under the IPv4 EtherType -> malformed v4", { let mut b = v4(MISS4, HOST4).bytes(); b[14] = 0x05; b }, INSIDE, XDP_PASS, &[MalformedIpv4]));
    r.push(row("IPv4 header under the IPv6 EtherType -> malformed v6", { let mut f = v4(MISS4, HOST4); f.payload_len = 40; retype(f.bytes(), ETH_P_IPV6) }, INSIDE, XDP_PASS, &[MalformedIpv6]));
    r.push(row("version 0 under the IPv6 EtherType -> malformed v6", { let mut b = v6(HOST6, MISS6).bytes(); b[14] &= 0x0f; b }, OUTSIDE, XDP_PASS, &[MalformedIpv6]));

    // --- IPv6 extension headers: classified by the fixed header's addresses --------------------
    let udp = [0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00];
    let hop_by_hop = [17, 0, 1, 4, 0, 0, 0, 0]; // next UDP, PadN
    let frag_first = [17, 0, 0x00, 0x01, 0, 0, 0, 1]; // next UDP, offset 0, M
    let frag_later = [17, 0, 0x05, 0xa8, 0, 0, 0, 1]; // next UDP, offset 181, no M
    let cat = |parts: &[&[u8]]| parts.concat();
    r.push(row("v6 hop-by-hop header to host -> drops", v6_ext(MISS6, HOST6, 0, &cat(&[&hop_by_hop, &udp])), INSIDE, XDP_DROP, &[]).counted(HOST, Outbound, Dropped));
    r.push(row("v6 first fragment (header 44) to host -> drops", v6_ext(MISS6, HOST6, 44, &cat(&[&frag_first, &udp])), INSIDE, XDP_DROP, &[]).counted(HOST, Outbound, Dropped));
    r.push(row("v6 later fragment (header 44, offset) from host -> drops", v6_ext(HOST6, MISS6, 44, &cat(&[&frag_later, &udp])), OUTSIDE, XDP_DROP, &[]).counted(HOST, Inbound, Dropped));
    r.push(row("v6 hop-by-hop then fragment to mid -> monitors", v6_ext(MISS6, "2001:db8:1::9", 0, &cat(&[&[44, 0, 1, 4, 0, 0, 0, 0], &frag_first, &udp])), INSIDE, XDP_PASS, &[]).counted(MID, Outbound, Monitored));
    r.push(row("v6 fragment header, miss -> miss", v6_ext(MISS6, MISS6B, 44, &cat(&[&frag_first, &udp])), INSIDE, XDP_PASS, &[MissIpv6]));
    r.push(row("v6 no next header (59) from wide -> drops", v6_ext("2001:db8:77::1", MISS6, 59, &[]), OUTSIDE, XDP_DROP, &[]).counted(WIDE, Inbound, Dropped));

    // --- Non-IP -------------------------------------------------------------------------------
    r.push(row("ARP who-has a blocked address -> non-IP, pass", arp().bytes(), INSIDE, XDP_PASS, &[NonIp]));
    r.push(row("LLDP -> non-IP, pass", other(0x88cc, &[0x02, 0x07, 0x04, 0x02, 0, 0, 0, 0, 0x01]).bytes(), OUTSIDE, XDP_PASS, &[NonIp]));
    r.push(row("802.3 length field with LLC -> non-IP, pass", other(0x0026, &[0x42, 0x42, 0x03, 0, 0, 0, 0, 0]).bytes(), INSIDE, XDP_PASS, &[NonIp]));
    r.push(row("14-byte Ethernet header alone, EtherType 0 -> non-IP, pass", vec![0; ETH_HLEN], INSIDE, XDP_PASS, &[NonIp]));

    // --- Interfaces without a role --------------------------------------------------------------
    r.push(row("no role: v4 to host -> no role, pass", v4(MISS4, HOST4).bytes(), NO_ROLE, XDP_PASS, &[NoRole]));
    r.push(row("no role: v6 from host -> no role, pass", v6(HOST6, MISS6).bytes(), NO_ROLE, XDP_PASS, &[NoRole]));
    r.push(row("no role: QinQ v4 fragment -> no role only", v4_hdr(MISS4, HOST4, 5, 0x2000).vlan(ETH_P_8021AD, 1).vlan(ETH_P_8021Q, 2).bytes(), NO_ROLE, XDP_PASS, &[NoRole]));
    r.push(row("no role: truncated VLAN -> no role only", v4(MISS4, HOST4).vlan(ETH_P_8021Q, 1).bytes()[..ETH_HLEN].to_vec(), NO_ROLE, XDP_PASS, &[NoRole]));
    r.push(row("no role: ARP -> no role only", arp().bytes(), NO_ROLE, XDP_PASS, &[NoRole]));

    // --- Full-size frames: counters carry the whole length ---------------------------------------
    r.push(row("1514-byte v4 to host -> drops, 1514 bytes counted", sized(v4(MISS4, HOST4), 1514), INSIDE, XDP_DROP, &[]).counted(HOST, Outbound, Dropped));
    r.push(row("1518-byte tagged v6 from mid -> monitors, 1518 bytes counted", sized(v6("2001:db8:1::7", MISS6).vlan(ETH_P_8021Q, 9), 1518), OUTSIDE, XDP_PASS, &[Vlan]).counted(MID, Inbound, Monitored));

    // --- Layer-3 interfaces (tun, WireGuard, PPP, IP tunnels): the packet is the IP header ------
    r.push(row("raw IP v4 inside: dst host -> drops", v4(MISS4, HOST4).ip_bytes(), INSIDE, XDP_DROP, &[]).raw_ip().counted(HOST, Outbound, Dropped));
    r.push(row("raw IP v4 inside: dst in 10.1/16 -> mid monitors", v4(MISS4, "10.1.9.9").ip_bytes(), INSIDE, XDP_PASS, &[]).raw_ip().counted(MID, Outbound, Monitored));
    r.push(row("raw IP v4 outside: src host -> drops inbound", v4(HOST4, MISS4).ip_bytes(), OUTSIDE, XDP_DROP, &[]).raw_ip().counted(HOST, Inbound, Dropped));
    r.push(row("raw IP v4 outside: src in 10/8 -> wide drops inbound", v4("10.9.9.9", MISS4).ip_bytes(), OUTSIDE, XDP_DROP, &[]).raw_ip().counted(WIDE, Inbound, Dropped));
    r.push(row("raw IP v4 inside: unlisted -> miss", v4(MISS4, MISS4B).ip_bytes(), INSIDE, XDP_PASS, &[MissIpv4]).raw_ip());
    r.push(row("raw IP v4 outside: blocked destination not matched -> miss", v4(MISS4, HOST4).ip_bytes(), OUTSIDE, XDP_PASS, &[MissIpv4]).raw_ip());
    r.push(row("raw IP v6 inside: dst host -> drops", v6(MISS6, HOST6).ip_bytes(), INSIDE, XDP_DROP, &[]).raw_ip().counted(HOST, Outbound, Dropped));
    r.push(row("raw IP v6 outside: src in the /48 -> mid monitors inbound", v6("2001:db8:1::7", MISS6).ip_bytes(), OUTSIDE, XDP_PASS, &[]).raw_ip().counted(MID, Inbound, Monitored));
    r.push(row("raw IP v6 outside: unlisted -> miss", v6(MISS6B, MISS6).ip_bytes(), OUTSIDE, XDP_PASS, &[MissIpv6]).raw_ip());
    r.push(row("raw IP v4 fragment to host -> drops, fragment", v4_hdr(MISS4, HOST4, 5, 0x2000).ip_bytes(), INSIDE, XDP_DROP, &[Ipv4Fragment]).raw_ip().counted(HOST, Outbound, Dropped));
    r.push(row("raw IP v4 IHL 4 -> malformed", v4_hdr(MISS4, HOST4, 4, 0).ip_bytes(), INSIDE, XDP_PASS, &[MalformedIpv4]).raw_ip());
    r.push(row("raw IP v4 cut one byte into its destination -> truncated", v4(MISS4, HOST4).ip_bytes()[..19].to_vec(), INSIDE, XDP_PASS, &[TruncatedIpv4]).raw_ip());
    r.push(row("raw IP v6 cut one byte into its destination -> truncated", v6(MISS6, HOST6).ip_bytes()[..39].to_vec(), INSIDE, XDP_PASS, &[TruncatedIpv6]).raw_ip());
    r.push(row("raw IP version 5 -> non-IP", { let mut b = v4(MISS4, HOST4).ip_bytes(); b[0] = 0x55; b }, INSIDE, XDP_PASS, &[NonIp]).raw_ip());
    r.push(row("raw IP version 0 -> non-IP", { let mut b = v6(HOST6, MISS6).ip_bytes(); b[0] = 0x00; b }, OUTSIDE, XDP_PASS, &[NonIp]).raw_ip());
    // The link type decides where parsing starts: an Ethernet frame where raw IP is expected,
    // and a bare IP packet where Ethernet is, are not IP (MAC 02:..., source 192.0.x.x).
    r.push(row("Ethernet frame on a raw-IP interface -> non-IP", v4(MISS4, HOST4).bytes(), INSIDE, XDP_PASS, &[NonIp]).raw_ip());
    r.push(row("bare IPv4 packet on an Ethernet interface -> non-IP", v4(MISS4, HOST4).ip_bytes(), INSIDE, XDP_PASS, &[NonIp]));
    r.push(row("raw IP, no role: v4 to host -> no role", v4(MISS4, HOST4).ip_bytes(), NO_ROLE, XDP_PASS, &[NoRole]));
    r.push(row("1500-byte raw IP v4 to host -> drops, 1500 bytes counted", sized(v4(MISS4, HOST4), 1514)[ETH_HLEN..].to_vec(), INSIDE, XDP_DROP, &[]).raw_ip().counted(HOST, Outbound, Dropped));

    // --- PPPoE sessions on Ethernet (DSL uplinks) ----------------------------------------------
    r.push(row("PPPoE v4 inside: dst host -> drops", v4(MISS4, HOST4).pppoe(1).bytes(), INSIDE, XDP_DROP, &[]).counted(HOST, Outbound, Dropped));
    r.push(row("PPPoE v4 outside: src in 10.1/16 -> mid monitors inbound", v4("10.1.9.9", MISS4).pppoe(0xffff).bytes(), OUTSIDE, XDP_PASS, &[]).counted(MID, Inbound, Monitored));
    r.push(row("PPPoE v4 outside: src host -> drops inbound", v4(HOST4, MISS4).pppoe(7).bytes(), OUTSIDE, XDP_DROP, &[]).counted(HOST, Inbound, Dropped));
    r.push(row("PPPoE v4 unlisted -> miss", v4(MISS4, MISS4B).pppoe(7).bytes(), INSIDE, XDP_PASS, &[MissIpv4]));
    r.push(row("PPPoE v6 inside: dst host -> drops", v6(MISS6, HOST6).pppoe(7).bytes(), INSIDE, XDP_DROP, &[]).counted(HOST, Outbound, Dropped));
    r.push(row("PPPoE v6 outside: src in 2001:db8::/32 -> wide drops inbound", v6("2001:db8:77::1", MISS6).pppoe(7).bytes(), OUTSIDE, XDP_DROP, &[]).counted(WIDE, Inbound, Dropped));
    r.push(row("PPPoE v6 unlisted -> miss", v6(MISS6, MISS6B).pppoe(7).bytes(), INSIDE, XDP_PASS, &[MissIpv6]));
    r.push(row("PPPoE v4 fragment to mid -> monitors, fragment", v4_hdr(MISS4, "10.1.9.9", 5, 0x2000).pppoe(7).bytes(), INSIDE, XDP_PASS, &[Ipv4Fragment]).counted(MID, Outbound, Monitored));
    r.push(row("802.1Q PPPoE v4 to host -> drops, one tag", v4(MISS4, HOST4).vlan(ETH_P_8021Q, 7).pppoe(7).bytes(), INSIDE, XDP_DROP, &[Vlan]).counted(HOST, Outbound, Dropped));
    r.push(row("802.1Q PPPoE v6 from host -> drops, one tag", v6(HOST6, MISS6).vlan(ETH_P_8021Q, 7).pppoe(7).bytes(), OUTSIDE, XDP_DROP, &[Vlan]).counted(HOST, Inbound, Dropped));
    r.push(row("QinQ PPPoE v4 miss -> two tags", v4(MISS4B, MISS4).vlan(ETH_P_8021AD, 1).vlan(ETH_P_8021Q, 2).pppoe(7).bytes(), OUTSIDE, XDP_PASS, &[MissIpv4, QinQ]));
    r.push(row("QinQ PPPoE v6 to mid -> monitors, two tags", v6(MISS6, "2001:db8:1::1").vlan(ETH_P_8021AD, 1).vlan(ETH_P_8021Q, 2).pppoe(7).bytes(), INSIDE, XDP_PASS, &[QinQ]).counted(MID, Outbound, Monitored));
    r.push(row("PPPoE IPv4 header under PPP protocol IPv6 -> malformed v6", { let mut f = v4(MISS4, HOST4); f.payload_len = 40; let mut b = f.pppoe(7).bytes(); b[ETH_HLEN + 7] = 0x57; b }, INSIDE, XDP_PASS, &[MalformedIpv6]));
    r.push(row("PPPoE LCP echo -> non-IP, pass", lcp_echo().bytes(), OUTSIDE, XDP_PASS, &[NonIp]));
    r.push(row("802.1Q PPPoE LCP echo -> non-IP only", lcp_echo().vlan(ETH_P_8021Q, 7).bytes(), INSIDE, XDP_PASS, &[NonIp]));
    r.push(row("PPPoE IPCP (0x8021) -> non-IP", ppp(0x8021, &[1, 1, 0, 10, 3, 6, 10, 1, 2, 3]).bytes(), INSIDE, XDP_PASS, &[NonIp]));
    r.push(row("PPPoE discovery (0x8863) PADI -> non-IP", other(0x8863, &[0x11, 0x09, 0, 0, 0, 4, 0x01, 0x01, 0, 0]).bytes(), INSIDE, XDP_PASS, &[NonIp]));
    r.push(row("PPPoE session header version 2 -> non-IP", pppoe_patched(v4(MISS4, HOST4), 0, 0x21), INSIDE, XDP_PASS, &[NonIp]));
    r.push(row("PPPoE session header with a discovery code (PADT) -> non-IP", pppoe_patched(v4(MISS4, HOST4), 1, 0xa7), INSIDE, XDP_PASS, &[NonIp]));
    r.push(row("PPPoE with a compressed 1-byte PPP protocol -> non-IP", { let mut b = v4(MISS4, HOST4).pppoe(7).bytes(); b.remove(ETH_HLEN + 6); b }, INSIDE, XDP_PASS, &[NonIp]));
    r.push(row("no role: PPPoE v4 to host -> no role", v4(MISS4, HOST4).pppoe(7).bytes(), NO_ROLE, XDP_PASS, &[NoRole]));

    // --- IPv6 addresses carrying IPv4 ones: matched against the IPv4 prefixes -----------------
    r.push(row("v6 inside: dst ::ffff:10.1.2.3 (IPv4-mapped host) -> host drops", v6(MISS6, "::ffff:10.1.2.3").bytes(), INSIDE, XDP_DROP, &[]).counted(HOST, Outbound, Dropped));
    r.push(row("v6 outside: src ::ffff:10.1.9.9 (IPv4-mapped, in 10.1/16) -> mid monitors inbound", v6("::ffff:10.1.9.9", MISS6).bytes(), OUTSIDE, XDP_PASS, &[]).counted(MID, Inbound, Monitored));
    r.push(row("v6 inside: dst ::10.1.2.3 (IPv4-compatible host) -> host drops", v6(MISS6, "::10.1.2.3").bytes(), INSIDE, XDP_DROP, &[]).counted(HOST, Outbound, Dropped));
    r.push(row("v6 outside: src ::10.9.9.9 (IPv4-compatible, in 10/8) -> wide drops inbound", v6("::10.9.9.9", MISS6).bytes(), OUTSIDE, XDP_DROP, &[]).counted(WIDE, Inbound, Dropped));
    r.push(row("v6 inside: dst ::ffff:203.0.113.5 (mapped, inbound-only entity) -> other direction", v6(MISS6, "::ffff:203.0.113.5").bytes(), INSIDE, XDP_PASS, &[OtherDirection]));
    r.push(row("v6 inside: dst ::ffff:192.0.2.200 (mapped, unlisted) -> miss v6", v6(MISS6, "::ffff:192.0.2.200").bytes(), INSIDE, XDP_PASS, &[MissIpv6]));
    r.push(row("v6 inside: ::ffff:198.18.0.1, unlisted as IPv4, listed in IPv6 form -> mid monitors", v6(MISS6, "::ffff:198.18.0.1").bytes(), INSIDE, XDP_PASS, &[]).counted(MID, Outbound, Monitored));
    r.push(row("v6 inside: ::0.0.0.2 (IPv4-compatible, in 0.0.0.0/30) -> odd drops", v6(MISS6, "::0.0.0.2").bytes(), INSIDE, XDP_DROP, &[]).counted(ODD, Outbound, Dropped));
    r.push(row("v6 inside: ::1 is loopback, not 0.0.0.1 -> miss", v6(MISS6, "::1").bytes(), INSIDE, XDP_PASS, &[MissIpv6]));
    r.push(row("v6 outside: :: is unspecified, not 0.0.0.0 -> miss", v6("::", MISS6).bytes(), OUTSIDE, XDP_PASS, &[MissIpv6]));
    r.push(row("v6 inside: ::fffe:10.1.2.3 carries no IPv4 address -> miss", v6(MISS6, "::fffe:10.1.2.3").bytes(), INSIDE, XDP_PASS, &[MissIpv6]));
    r.push(row("v6 inside: ::ffff:0:10.1.2.3 (SIIT, not mapped) -> miss", v6(MISS6, "::ffff:0:a01:203").bytes(), INSIDE, XDP_PASS, &[MissIpv6]));
    r.push(row("v6 inside: 64:ff9b::10.1.2.3 (NAT64) is not matched as IPv4 -> miss", v6(MISS6, "64:ff9b::a01:203").bytes(), INSIDE, XDP_PASS, &[MissIpv6]));
    r.push(row("802.1Q PPPoE v6 to ::ffff:10.1.2.3 -> host drops, one tag", v6(MISS6, "::ffff:10.1.2.3").vlan(ETH_P_8021Q, 7).pppoe(7).bytes(), INSIDE, XDP_DROP, &[Vlan]).counted(HOST, Outbound, Dropped));
    r.push(row("raw IP v6 from ::ffff:10.1.2.3 -> host drops inbound", v6("::ffff:10.1.2.3", MISS6).ip_bytes(), OUTSIDE, XDP_DROP, &[]).raw_ip().counted(HOST, Inbound, Dropped));

    r.extend(truncations());
    r
}

/// One frame (received `inside`, addressed to `host`) cut at every header boundary and one
/// byte before it.
struct Truncation {
    name: &'static str,
    frame: Frame,
    /// What `packet::boundaries` must report for `frame`.
    boundaries: &'static [usize],
    /// `(length, stats, dropped)`: `dropped` means the cut keeps the whole fixed IP header, so
    /// the frame is classified, dropped and counted (with the cut length) against `host`.
    cuts: &'static [(usize, &'static [Stat], bool)],
}

fn truncation_frames() -> Vec<Truncation> {
    vec![
        Truncation {
            name: "v4",
            frame: v4(MISS4, HOST4),
            boundaries: &[12, 14, 34],
            cuts: &[
                (14, &[TruncatedIpv4], false),
                (15, &[TruncatedIpv4], false),
                (33, &[TruncatedIpv4], false),
                (34, &[], true),
            ],
        },
        Truncation {
            name: "v6",
            frame: v6(MISS6, HOST6),
            boundaries: &[12, 14, 54],
            cuts: &[
                (14, &[TruncatedIpv6], false),
                (15, &[TruncatedIpv6], false),
                (53, &[TruncatedIpv6], false),
                (54, &[], true),
            ],
        },
        Truncation {
            name: "802.1Q v4",
            frame: v4(MISS4, HOST4).vlan(ETH_P_8021Q, 10),
            boundaries: &[12, 16, 18, 38],
            cuts: &[
                (14, &[TruncatedVlan], false),
                (15, &[TruncatedVlan], false),
                (16, &[TruncatedVlan], false),
                (17, &[TruncatedVlan], false),
                (18, &[TruncatedIpv4], false),
                (37, &[TruncatedIpv4], false),
                (38, &[Vlan], true),
            ],
        },
        Truncation {
            name: "802.1ad v6",
            frame: v6(MISS6, HOST6).vlan(ETH_P_8021AD, 20),
            boundaries: &[12, 16, 18, 58],
            cuts: &[
                (14, &[TruncatedVlan], false),
                (15, &[TruncatedVlan], false),
                (16, &[TruncatedVlan], false),
                (17, &[TruncatedVlan], false),
                (18, &[TruncatedIpv6], false),
                (57, &[TruncatedIpv6], false),
                (58, &[Vlan], true),
            ],
        },
        Truncation {
            name: "QinQ v4",
            frame: v4(MISS4, HOST4)
                .vlan(ETH_P_8021AD, 100)
                .vlan(ETH_P_8021Q, 200),
            boundaries: &[12, 16, 20, 22, 42],
            cuts: &[
                (14, &[TruncatedVlan], false),
                (15, &[TruncatedVlan], false),
                (16, &[TruncatedVlan], false),
                (17, &[TruncatedVlan], false),
                (18, &[TruncatedVlan], false),
                (19, &[TruncatedVlan], false),
                (20, &[TruncatedVlan], false),
                (21, &[TruncatedVlan], false),
                (22, &[TruncatedIpv4], false),
                (41, &[TruncatedIpv4], false),
                (42, &[QinQ], true),
            ],
        },
        Truncation {
            name: "QinQ v6",
            frame: v6(MISS6, HOST6)
                .vlan(ETH_P_8021Q, 100)
                .vlan(ETH_P_8021Q, 200),
            boundaries: &[12, 16, 20, 22, 62],
            cuts: &[
                (14, &[TruncatedVlan], false),
                (15, &[TruncatedVlan], false),
                (16, &[TruncatedVlan], false),
                (17, &[TruncatedVlan], false),
                (18, &[TruncatedVlan], false),
                (19, &[TruncatedVlan], false),
                (20, &[TruncatedVlan], false),
                (21, &[TruncatedVlan], false),
                (22, &[TruncatedIpv6], false),
                (61, &[TruncatedIpv6], false),
                (62, &[QinQ], true),
            ],
        },
        Truncation {
            name: "three-tag v4",
            frame: v4(MISS4, HOST4)
                .vlan(ETH_P_8021AD, 1)
                .vlan(ETH_P_8021Q, 2)
                .vlan(ETH_P_8021Q, 3),
            boundaries: &[12, 16, 20, 24, 26, 46],
            cuts: &[
                (14, &[TruncatedVlan], false),
                (15, &[TruncatedVlan], false),
                (16, &[TruncatedVlan], false),
                (19, &[TruncatedVlan], false),
                (20, &[TruncatedVlan], false),
                (21, &[TruncatedVlan], false),
                // The third TPID is all it takes to refuse the frame.
                (22, &[VlanTooDeep], false),
                (23, &[VlanTooDeep], false),
                (24, &[VlanTooDeep], false),
                (25, &[VlanTooDeep], false),
                (26, &[VlanTooDeep], false),
                (45, &[VlanTooDeep], false),
                (46, &[VlanTooDeep], false),
            ],
        },
        Truncation {
            name: "PPPoE v4",
            frame: v4(MISS4, HOST4).pppoe(7),
            boundaries: &[12, 14, 22, 42],
            cuts: &[
                // A PPPoE header cut short is not IP.
                (14, &[NonIp], false),
                (15, &[NonIp], false),
                (21, &[NonIp], false),
                (22, &[TruncatedIpv4], false),
                (41, &[TruncatedIpv4], false),
                (42, &[], true),
            ],
        },
        Truncation {
            name: "802.1Q PPPoE v6",
            frame: v6(MISS6, HOST6).vlan(ETH_P_8021Q, 7).pppoe(7),
            boundaries: &[12, 16, 18, 26, 66],
            cuts: &[
                (14, &[TruncatedVlan], false),
                (15, &[TruncatedVlan], false),
                (16, &[TruncatedVlan], false),
                (17, &[TruncatedVlan], false),
                (18, &[NonIp], false),
                (25, &[NonIp], false),
                (26, &[TruncatedIpv6], false),
                (65, &[TruncatedIpv6], false),
                (66, &[Vlan], true),
            ],
        },
        Truncation {
            name: "ARP",
            frame: arp(),
            boundaries: &[12, 14],
            cuts: &[(14, &[NonIp], false), (15, &[NonIp], false)],
        },
    ]
}

fn truncations() -> Vec<Row> {
    let mut rows = Vec::new();
    for t in truncation_frames() {
        assert_eq!(
            boundaries(&t.frame),
            t.boundaries,
            "boundaries of {}",
            t.name
        );
        // Every boundary and the byte before it is either in the table or a runt the kernel
        // refuses (checked by `kernel_refuses_runts_below_ethernet`).
        for b in t.boundaries {
            for cut in [b - 1, *b] {
                assert!(
                    cut < ETH_HLEN || t.cuts.iter().any(|c| c.0 == cut),
                    "truncated {}: no row cuts at {cut}",
                    t.name
                );
            }
        }
        let full = t.frame.bytes();
        for (cut, stats, dropped) in t.cuts {
            assert!(
                *cut <= full.len(),
                "truncated {}: cut {cut} past the frame",
                t.name
            );
            let name = format!("truncated {} at {cut} of {} bytes", t.name, full.len());
            let frame = full[..*cut].to_vec();
            rows.push(if *dropped {
                row(name, frame, INSIDE, XDP_DROP, stats).counted(HOST, Outbound, Dropped)
            } else {
                row(name, frame, INSIDE, XDP_PASS, stats)
            });
        }
    }
    rows
}

// ---------------------------------------------------------------------------------------------
// Running.

fn fixture_policy() -> Policy {
    let compiled = embargo_tests::compile_text(&policy());
    assert_eq!(compiled.report.same_prefix_total, 0);
    let policy = Policy::from(&compiled);
    let ids: Vec<&str> = policy.entities.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ENTITY_IDS);
    policy
}

fn load(policy: &Policy) -> Dataplane {
    Dataplane::load(policy)
        .unwrap_or_else(|e| panic!("loading the XDP program failed (these tests need root): {e}"))
}

fn loopback() -> u32 {
    let lo = system::ifindex("lo").expect("the loopback interface");
    assert!(lo < MAX_IFINDEX);
    lo
}

/// The kernel's `struct xdp_md` for a test run: data, data_end, data_meta, ingress_ifindex,
/// rx_queue_index, egress_ifindex. The kernel requires data_meta = 0, data_end = the input
/// length and egress_ifindex = 0; the ingress interface must exist with queue 0 registered.
fn xdp_md(len: usize, ingress_ifindex: u32) -> [u8; 24] {
    let fields = [0, len as u32, 0, ingress_ifindex, 0, 0];
    let mut ctx = [0u8; 24];
    for (chunk, field) in ctx.chunks_exact_mut(4).zip(fields) {
        chunk.copy_from_slice(&field.to_le_bytes());
    }
    ctx
}

/// Runs the production program once on `frame` received on `ifindex`; the XDP action.
fn run(dp: &Dataplane, frame: &[u8], ifindex: u32) -> Result<u32, ProgramError> {
    let ctx = xdp_md(frame.len(), ifindex);
    let result = dp.program().test_run(TestRunOptions {
        data_in: Some(frame),
        ctx_in: Some(&ctx),
        repeat: 1,
        ..TestRunOptions::new()
    })?;
    Ok(result.return_value)
}

fn errno(e: &ProgramError) -> Option<i32> {
    match e {
        ProgramError::SyscallError(s) => s.io_error.raw_os_error(),
        _ => None,
    }
}

fn action_name(action: u32) -> &'static str {
    match action {
        0 => "XDP_ABORTED",
        XDP_DROP => "XDP_DROP",
        XDP_PASS => "XDP_PASS",
        3 => "XDP_TX",
        4 => "XDP_REDIRECT",
        _ => "unknown",
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Snapshot {
    stats: Vec<u64>,
    counters: Vec<EntityCounters>,
}

fn snapshot(dp: &Dataplane) -> Snapshot {
    let s = Snapshot {
        stats: dp.stats().unwrap(),
        counters: dp.counters().unwrap(),
    };
    assert_eq!(s.stats.len(), Stat::COUNT as usize);
    assert_eq!(s.counters.len(), ENTITY_IDS.len());
    s
}

/// Checks a row is well formed before it runs: one terminal outcome (a terminal stat or an
/// entity counter), nothing listed twice, an XDP verdict that drops only what it attributes.
fn validate(row: &Row) {
    validate_outcomes(row);
    assert!(
        matches!(row.action, XDP_DROP | XDP_PASS),
        "row `{}`",
        row.name
    );
    // A drop is always attributed to an entity.
    assert_eq!(
        row.action == XDP_DROP,
        row.counters.iter().any(|c| c.2 == Dropped),
        "row `{}`: drops and dropped counters go together",
        row.name
    );
}

/// The program-independent half of [`validate`]: one terminal outcome, nothing listed twice.
fn validate_outcomes(row: &Row) {
    let terminal = row
        .stats
        .iter()
        .filter(|(s, _)| (*s as u32) < Stat::TERMINAL)
        .map(|(_, n)| n)
        .sum::<u64>()
        + row.counters.iter().map(|c| c.3).sum::<u64>();
    assert_eq!(
        terminal, 1,
        "row `{}` must expect one terminal outcome",
        row.name
    );
    let stats: HashSet<u32> = row.stats.iter().map(|(s, _)| *s as u32).collect();
    assert_eq!(
        stats.len(),
        row.stats.len(),
        "row `{}` lists a stat twice",
        row.name
    );
    for (entity, ..) in &row.counters {
        assert!((*entity as usize) < ENTITY_IDS.len(), "row `{}`", row.name);
    }
}

/// Runs one row; every way it differs from what the row says.
fn check(dp: &mut Dataplane, lo: u32, row: &Row) -> Vec<String> {
    dp.set_role(lo, row.role).unwrap();
    if row.role != NO_ROLE {
        dp.set_link(lo, row.link).unwrap();
    }
    let before = snapshot(dp);
    let result = run(dp, &row.frame, lo);
    let after = snapshot(dp);
    let mut errors = Vec::new();
    match result {
        Ok(action) if action == row.action => {}
        Ok(action) => errors.push(format!(
            "action {} ({action}), expected {}",
            action_name(action),
            action_name(row.action)
        )),
        Err(e) => errors.push(format!("BPF_PROG_TEST_RUN failed: {e} ({e:?})")),
    }
    errors.extend(compare(row, &before, &after));
    errors
}

/// Every way the stats and entity counters moved from `before` to `after` other than `row`
/// says, and whether exactly one terminal outcome moved.
fn compare(row: &Row, before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut errors = Vec::new();
    let delta: Vec<u64> = after
        .stats
        .iter()
        .zip(&before.stats)
        .map(|(a, b)| a.wrapping_sub(*b))
        .collect();
    for (stat, label) in Stat::ALL {
        let want: u64 = row
            .stats
            .iter()
            .filter(|(s, _)| *s == stat)
            .map(|(_, n)| n)
            .sum();
        let got = delta[stat as usize];
        if got != want {
            errors.push(format!("stat {label}: moved by {got}, expected {want}"));
        }
    }
    let counted: u64 = (0..ENTITY_IDS.len())
        .flat_map(|e| Direction::ALL.map(move |d| (e, d)))
        .flat_map(|(e, d)| Verdict::ALL.map(move |v| (e, d, v)))
        .map(|(e, d, v)| {
            after.counters[e]
                .get(d, v)
                .packets
                .wrapping_sub(before.counters[e].get(d, v).packets)
        })
        .sum();
    let terminal: u64 = delta[..Stat::TERMINAL as usize].iter().sum::<u64>() + counted;
    if terminal != 1 {
        errors.push(format!(
            "terminal outcomes (stats and entity counters) moved by {terminal} in total, expected exactly 1"
        ));
    }

    for (entity, id) in ENTITY_IDS.iter().enumerate() {
        for direction in Direction::ALL {
            for verdict in Verdict::ALL {
                let a = after.counters[entity].get(direction, verdict);
                let b = before.counters[entity].get(direction, verdict);
                let got = (
                    a.packets.wrapping_sub(b.packets),
                    a.bytes.wrapping_sub(b.bytes),
                );
                let want = row
                    .counters
                    .iter()
                    .filter(|c| c.0 as usize == entity && c.1 == direction && c.2 == verdict)
                    .fold((0, 0), |acc, c| (acc.0 + c.3, acc.1 + c.4));
                if got != want {
                    errors.push(format!(
                        "counter {id}/{direction:?}/{verdict:?}: moved by {} packets {} bytes, expected {} packets {} bytes",
                        got.0, got.1, want.0, want.1
                    ));
                }
            }
        }
    }
    errors
}

// ---------------------------------------------------------------------------------------------
// Tests.

/// Every row of the table, through the real program, with exact counter deltas.
#[test]
fn fixture_table() {
    let mut dp = load(&fixture_policy());
    let lo = loopback();
    let rows = rows();
    assert!(rows.len() >= 40, "only {} rows", rows.len());
    let mut names = HashSet::new();
    for row in &rows {
        assert!(
            names.insert(row.name.as_str()),
            "duplicate row name `{}`",
            row.name
        );
        validate(row);
    }
    let mut failures = Vec::new();
    for row in &rows {
        let errors = check(&mut dp, lo, row);
        if !errors.is_empty() {
            failures.push(format!(
                "row `{}` ({} bytes, role {:?}):\n    {}",
                row.name,
                row.frame.len(),
                row.role,
                errors.join("\n    ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixture rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    eprintln!("{} fixture rows passed", rows.len());
}

/// `BPF_PROG_TEST_RUN` refuses XDP input shorter than `ETH_HLEN` with `EINVAL`, so runts
/// cannot reach the program: check the refusal for every such length (and that nothing was
/// counted), and that 14 bytes, the shortest input the kernel runs, does reach it.
#[test]
fn kernel_refuses_runts_below_ethernet() {
    let mut dp = load(&fixture_policy());
    let lo = loopback();
    dp.set_role(lo, INSIDE).unwrap();
    let frames = [
        v4(MISS4, HOST4).bytes(),
        v6(MISS6, HOST6).vlan(ETH_P_8021Q, 1).bytes(),
        arp().bytes(),
    ];
    for frame in &frames {
        for len in 0..ETH_HLEN {
            let before = snapshot(&dp);
            let result = run(&dp, &frame[..len], lo);
            let after = snapshot(&dp);
            match result {
                Err(e) => assert_eq!(
                    errno(&e),
                    Some(libc::EINVAL),
                    "{len}-byte runt: expected EINVAL, got {e:?}"
                ),
                Ok(action) => panic!(
                    "{len}-byte runt: the kernel ran the program ({}); the table should test it",
                    action_name(action)
                ),
            }
            assert_eq!(
                before, after,
                "{len}-byte runt: refused, yet counters moved"
            );
        }
    }
    // The same context with 14 bytes runs: the refusal above is about the length.
    let before = snapshot(&dp);
    assert_eq!(run(&dp, &frames[0][..ETH_HLEN], lo).unwrap(), XDP_PASS);
    let after = snapshot(&dp);
    let moved: Vec<usize> = (0..Stat::COUNT as usize)
        .filter(|i| after.stats[*i] != before.stats[*i])
        .collect();
    assert_eq!(moved, [TruncatedIpv4 as usize]);
}

/// The ingress interface given in `ctx_in` is the one whose role applies: an ifindex that does
/// not exist is refused (`ENODEV`), and with another interface present, its role and not the
/// loopback's decides.
#[test]
fn ctx_ingress_ifindex_selects_the_role() {
    let mut dp = load(&fixture_policy());
    let lo = loopback();
    let frame = v4(MISS4, HOST4).bytes();

    let interfaces: Vec<(String, u32)> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| system::ifindex(&n).map(|i| (n, i)))
        .collect();
    let unused = (1..MAX_IFINDEX)
        .rev()
        .find(|i| interfaces.iter().all(|(_, used)| used != i))
        .unwrap();
    let err = run(&dp, &frame, unused).unwrap_err();
    assert_eq!(errno(&err), Some(libc::ENODEV), "ifindex {unused}: {err:?}");

    // A second interface of our own, so the test never depends on what the machine has.
    let dummy = Dummy::new();
    let (name, other) = (dummy.name.clone(), system::ifindex(&dummy.name).unwrap());
    assert!(other < MAX_IFINDEX);
    dp.set_role(lo, NO_ROLE).unwrap();
    dp.set_role(other, INSIDE).unwrap();
    let before = snapshot(&dp);
    assert_eq!(
        run(&dp, &frame, other).unwrap(),
        XDP_DROP,
        "received on {name}"
    );
    assert_eq!(run(&dp, &frame, lo).unwrap(), XDP_PASS, "received on lo");
    let after = snapshot(&dp);
    let dropped = |s: &Snapshot| s.counters[HOST as usize].get(Outbound, Dropped).packets;
    assert_eq!(dropped(&after) - dropped(&before), 1);
    assert_eq!(
        after.stats[NoRole as usize] - before.stats[NoRole as usize],
        1
    );
    // The drop is counted against the interface it was received on, and only there.
    let by_slot = dp.counters_by_slot().unwrap();
    assert_eq!(by_slot.len(), 1, "only {name} has a slot");
    let (ifindex, per_entity) = &by_slot[0];
    assert_eq!(*ifindex, other);
    assert_eq!(per_entity[HOST as usize].get(Outbound, Dropped).packets, 1);
}

/// Two evidence groups of one entity covering different prefixes (issue 14): the trie leaf
/// names the group, the group table its entity, so each packet is counted against the group
/// whose prefix matched, and the entity's counters are the sum of its groups'. A third group
/// nested in the first (more specific) takes what it covers. Another entity comes first so
/// that group and entity indices differ.
#[test]
fn two_evidence_groups_of_one_entity_count_apart() {
    let designations = "designations = [{ authority = \"FIXTURE\", regime = \"r\", reference = \"G-1\", listed_on = 2025-01-01, source = \"fixture\" }]\n";
    let group = |name: Option<&str>, source: &str, prefixes: &str| {
        format!(
            "[[entities.networks]]\n{}prefixes = [{prefixes}]\nguard_override = \"test fixture\"\n\
             evidence = {{ kind = \"advisory\", source = \"{source}\", retrieved = 2026-01-01, confidence = \"high\" }}\n",
            name.map_or_else(String::new, |n| format!("name = \"{n}\"\n"))
        )
    };
    let text = format!(
        "enforce = [\"FIXTURE\"]\n\
         [[entities]]\nid = \"first\"\nname = \"First\"\naction = \"monitor\"\n{designations}{}\
         [[entities]]\nid = \"two\"\nname = \"Two Groups\"\naction = \"drop\"\n{designations}{}{}{}",
        group(None, "https://first.example", "\"100.64.0.0/10\""),
        group(
            Some("cisa-aa24"),
            "https://cisa.example/aa24",
            "\"10.1.0.0/16\", \"2001:db8:1::/48\""
        ),
        group(None, "https://rdap.example/two", "\"10.2.0.0/16\""),
        group(Some("host"), "https://fbi.example/flash", "\"10.1.2.3/32\""),
    );
    let policy = Policy::from(&embargo_tests::compile_text(&text));
    let labels: Vec<(u32, &str, &str)> = policy
        .groups
        .iter()
        .map(|g| (g.entity, g.label.as_str(), g.source.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            (0, "https://first.example", "https://first.example"),
            (1, "cisa-aa24", "https://cisa.example/aa24"),
            (1, "https://rdap.example/two", "https://rdap.example/two"),
            (1, "host", "https://fbi.example/flash"),
        ]
    );
    let mut dp = load(&policy);
    let lo = loopback();
    dp.set_role(lo, INSIDE).unwrap();
    // (destination, times): group 1 three times (IPv4 twice, IPv6 once), group 2 twice,
    // group 3 (the /32 inside group 1's /16) once.
    for (dst, times, ipv6) in [
        ("10.1.9.9", 2, false),
        ("2001:db8:1::7", 1, true),
        ("10.2.0.1", 2, false),
        ("10.1.2.3", 1, false),
    ] {
        let frame = if ipv6 {
            v6("2001:db8:ffff::1", dst).bytes()
        } else {
            v4(MISS4, dst).bytes()
        };
        for _ in 0..times {
            assert_eq!(run(&dp, &frame, lo).unwrap(), XDP_DROP, "to {dst}");
        }
    }
    let groups = dp.group_counters().unwrap();
    let dropped: Vec<u64> = groups
        .iter()
        .map(|c| c.get(Outbound, Dropped).packets)
        .collect();
    assert_eq!(dropped, [0, 3, 2, 1]);
    let entities = dp.counters().unwrap();
    assert_eq!(entities[1].get(Outbound, Dropped).packets, 6, "the sum");
    assert_eq!(entities[0], EntityCounters::default());
    let bytes: u64 = groups.iter().map(|c| c.get(Outbound, Dropped).bytes).sum();
    assert_eq!(entities[1].get(Outbound, Dropped).bytes, bytes);
    // Per interface too.
    let by_slot = dp.group_counters_by_slot().unwrap();
    assert_eq!(by_slot.len(), 1);
    assert_eq!(by_slot[0].1[2].get(Outbound, Dropped).packets, 2);
}

/// A policy whose group indices were not kept stable (built positionally, not through
/// `EntityIndex`) would move a group index to another entity: applying it in place could count
/// a packet against, or give it the action of, the wrong entity while the tries are rewritten,
/// so it is refused whole (a new generation), and nothing is written.
#[test]
fn a_group_index_never_moves_to_another_entity_in_place() {
    // Entity `a` with `groups` network groups of one /24 each, then entity `b` with one.
    let text = |groups: usize| {
        let designations = "designations = [{ authority = \"FIXTURE\", regime = \"r\", reference = \"G-1\", listed_on = 2025-01-01, source = \"fixture\" }]\n";
        let group = |name: &str, prefix: &str| {
            format!(
                "[[entities.networks]]\nname = \"{name}\"\nprefixes = [\"{prefix}\"]\nguard_override = \"test fixture\"\n\
                 evidence = {{ kind = \"advisory\", source = \"fixture\", retrieved = 2026-01-01, confidence = \"high\" }}\n"
            )
        };
        let mut t = format!(
            "enforce = [\"FIXTURE\"]\n[[entities]]\nid = \"a\"\nname = \"A\"\naction = \"drop\"\n{designations}"
        );
        for g in 0..groups {
            t.push_str(&group(&format!("a{g}"), &format!("10.1.{g}.0/24")));
        }
        t.push_str(&format!(
            "[[entities]]\nid = \"b\"\nname = \"B\"\naction = \"monitor\"\n{designations}{}",
            group("b0", "10.2.0.0/24")
        ));
        embargo_tests::compile_text(&t)
    };
    let mut dp = load(&Policy::from(&text(2)));
    // `a` loses its second group: positionally, `b`'s group becomes index 1, which was `a`'s.
    let renumbered = Policy::from(&text(1));
    assert_eq!(renumbered.groups[1].entity, 1);
    let before = dp.group_counters().unwrap();
    match dp.apply(&renumbered) {
        Err(DataplaneError::NeedsRebuild { reason }) => assert!(
            reason.contains("evidence group 1 would move from entity 0 to entity 1"),
            "{reason}"
        ),
        other => panic!("expected NeedsRebuild, got {other:?}"),
    }
    assert_eq!(dp.attest(false).unwrap().total(), 0, "nothing was written");
    assert_eq!(dp.group_counters().unwrap(), before);
    // Through the index, `b`'s group keeps index 2 and the change applies in place.
    let mut index = embargo::policy::EntityIndex::default();
    let mut dp = load(&index.policy(&text(2)));
    let next = index.policy(&text(1));
    assert_eq!(next.v4.last().unwrap().1, 2, "b's group keeps index 2");
    assert!(next.groups[1].retired);
    dp.apply(&next).expect("applies in place");
}

/// A veth pair of our own (this kernel has no dummy driver), deleted on drop (also on panic).
struct Dummy {
    name: String,
}

impl Dummy {
    fn new() -> Self {
        let name = format!("embfx{}", std::process::id() % 100_000);
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &name])
            .output();
        let out = std::process::Command::new("ip")
            .args([
                "link",
                "add",
                &name,
                "type",
                "veth",
                "peer",
                "name",
                &format!("{name}p"),
            ])
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "ip link add {name} type veth: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { name }
    }
}

impl Drop for Dummy {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.name])
            .output();
    }
}

/// Every map name the ABI crate declares exists in the loaded production object.
#[test]
fn every_abi_map_exists_in_the_object() {
    let dp = load(&Policy::default());
    let names = dp.map_names();
    for map in maps::ALL {
        assert!(
            names.iter().any(|n| n == map),
            "map {map} is not in the object; it has {names:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Host egress: the TC classifier, same object, same maps.

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;

/// Where an egress fixture's packet comes from.
#[derive(Clone, Copy, Debug)]
enum Origin {
    /// A socket of the host itself: no ingress interface.
    Host,
    /// Forwarded: received first on an interface with this role.
    Forwarded(IfaceRole),
}

/// Stand-in ingress interfaces for forwarded packets: the program only looks their ifindex up
/// in the role map, so they need no device.
const FWD_INSIDE: u32 = MAX_IFINDEX - 2;
const FWD_OUTSIDE: u32 = MAX_IFINDEX - 3;
const FWD_NO_ROLE: u32 = MAX_IFINDEX - 4;

/// One egress fixture: a frame sent out of the loopback device, whose role-map entry has
/// `row.role` and, with `egress`, the egress flag; `row.action` is the TC verdict.
struct EgressRow {
    row: Row,
    egress: bool,
    origin: Origin,
}

fn egress_row(
    name: &str,
    frame: Vec<u8>,
    egress: bool,
    origin: Origin,
    action: u32,
    stats: &[Stat],
) -> EgressRow {
    EgressRow {
        row: row(format!("egress: {name}"), frame, OUTSIDE, action, stats),
        egress,
        origin,
    }
}

impl EgressRow {
    fn counted(mut self, entity: u32, verdict: Verdict) -> Self {
        self.row = self.row.counted(entity, Outbound, verdict);
        self
    }

    fn on_role(mut self, role: IfaceRole) -> Self {
        self.row.role = role;
        self
    }

    fn raw_ip(mut self) -> Self {
        self.row = self.row.raw_ip();
        self
    }
}

#[rustfmt::skip]
fn egress_rows() -> Vec<EgressRow> {
    use Origin::{Forwarded, Host};
    vec![
        // The destination is matched, direction outbound, whatever the role says about received
        // packets (the interface is `outside`, where XDP matches sources).
        egress_row("v4 to host (drop) -> shot", v4(MISS4, HOST4).bytes(), true, Host, TC_ACT_SHOT, &[]).counted(HOST, Dropped),
        egress_row("v6 to host (drop) -> shot", v6(MISS6, HOST6).bytes(), true, Host, TC_ACT_SHOT, &[]).counted(HOST, Dropped),
        egress_row("v4 to wide (drop), less specific -> shot", v4(MISS4, "10.9.9.9").bytes(), true, Host, TC_ACT_SHOT, &[]).counted(WIDE, Dropped),
        egress_row("v4 to mid (monitor) -> passes, counted", v4(MISS4, "10.1.9.9").bytes(), true, Host, TC_ACT_OK, &[]).counted(MID, Monitored),
        egress_row("v6 to mid (monitor) -> passes, counted", v6(MISS6, "2001:db8:1::9").bytes(), true, Host, TC_ACT_OK, &[]).counted(MID, Monitored),
        egress_row("v4 to an unlisted address -> miss", v4(MISS4, MISS4B).bytes(), true, Host, TC_ACT_OK, &[MissIpv4]),
        egress_row("v6 to an unlisted address -> miss", v6(MISS6, MISS6B).bytes(), true, Host, TC_ACT_OK, &[MissIpv6]),
        egress_row("v4 from host (blocked source), unlisted destination -> miss", v4(HOST4, MISS4).bytes(), true, Host, TC_ACT_OK, &[MissIpv4]),
        egress_row("v6 from host (blocked source), unlisted destination -> miss", v6(HOST6, MISS6).bytes(), true, Host, TC_ACT_OK, &[MissIpv6]),
        egress_row("v4 to outbound-only entity -> shot", v4(MISS4, "198.51.100.9").bytes(), true, Host, TC_ACT_SHOT, &[]).counted(OUT_ONLY, Dropped),
        egress_row("v4 to inbound-only entity -> other direction, passes", v4(MISS4, "203.0.113.5").bytes(), true, Host, TC_ACT_OK, &[OtherDirection]),
        egress_row("v6 to inbound-only entity -> other direction, passes", v6(MISS6, "3fff:100::1").bytes(), true, Host, TC_ACT_OK, &[OtherDirection]),
        egress_row("802.1Q v4 to host -> shot, one tag", v4(MISS4, HOST4).vlan(ETH_P_8021Q, 10).bytes(), true, Host, TC_ACT_SHOT, &[Vlan]).counted(HOST, Dropped),
        egress_row("QinQ v6 to mid -> passes, two tags", v6(MISS6, "2001:db8:1::1").vlan(ETH_P_8021AD, 1).vlan(ETH_P_8021Q, 2).bytes(), true, Host, TC_ACT_OK, &[QinQ]).counted(MID, Monitored),
        egress_row("v4 fragment to host -> shot, fragment", v4_hdr(MISS4, HOST4, 5, 0x2000).bytes(), true, Host, TC_ACT_SHOT, &[Ipv4Fragment]).counted(HOST, Dropped),
        egress_row("1514-byte v4 to host -> shot, 1514 bytes counted", sized(v4(MISS4, HOST4), 1514), true, Host, TC_ACT_SHOT, &[]).counted(HOST, Dropped),
        egress_row("ARP who-has a blocked address -> non-IP", arp().bytes(), true, Host, TC_ACT_OK, &[NonIp]),
        // Layer-3 interfaces: the socket buffer starts at the IP header.
        egress_row("raw IP v4 to host -> shot", v4(MISS4, HOST4).ip_bytes(), true, Host, TC_ACT_SHOT, &[]).raw_ip().counted(HOST, Dropped),
        egress_row("raw IP v6 to mid -> passes, counted", v6(MISS6, "2001:db8:1::9").ip_bytes(), true, Host, TC_ACT_OK, &[]).raw_ip().counted(MID, Monitored),
        egress_row("raw IP v4 to an unlisted address -> miss", v4(MISS4, MISS4B).ip_bytes(), true, Host, TC_ACT_OK, &[MissIpv4]).raw_ip(),
        egress_row("raw IP v6 to an unlisted address -> miss", v6(MISS6, MISS6B).ip_bytes(), true, Host, TC_ACT_OK, &[MissIpv6]).raw_ip(),
        egress_row("raw IP version 5 -> non-IP", { let mut b = v4(MISS4, HOST4).ip_bytes(); b[0] = 0x55; b }, true, Host, TC_ACT_OK, &[NonIp]).raw_ip(),
        egress_row("raw IP, egress off: v4 to host -> egress off", v4(MISS4, HOST4).ip_bytes(), false, Host, TC_ACT_OK, &[EgressOff]).raw_ip(),
        // PPPoE sessions and IPv4-mapped destinations.
        egress_row("PPPoE v4 to host -> shot", v4(MISS4, HOST4).pppoe(7).bytes(), true, Host, TC_ACT_SHOT, &[]).counted(HOST, Dropped),
        egress_row("802.1Q PPPoE v6 to host -> shot, one tag", v6(MISS6, HOST6).vlan(ETH_P_8021Q, 7).pppoe(7).bytes(), true, Host, TC_ACT_SHOT, &[Vlan]).counted(HOST, Dropped),
        egress_row("PPPoE v4 unlisted -> miss", v4(MISS4, MISS4B).pppoe(7).bytes(), true, Host, TC_ACT_OK, &[MissIpv4]),
        egress_row("PPPoE LCP echo -> non-IP", lcp_echo().bytes(), true, Host, TC_ACT_OK, &[NonIp]),
        egress_row("v6 to ::ffff:10.1.2.3 (IPv4-mapped host) -> shot", v6(MISS6, "::ffff:10.1.2.3").bytes(), true, Host, TC_ACT_SHOT, &[]).counted(HOST, Dropped),
        egress_row("v6 to ::10.1.9.9 (IPv4-compatible, mid) -> passes, counted", v6(MISS6, "::10.1.9.9").bytes(), true, Host, TC_ACT_OK, &[]).counted(MID, Monitored),
        egress_row("raw IP v6 to ::ffff:10.9.9.9 (IPv4-mapped, wide) -> shot", v6(MISS6, "::ffff:10.9.9.9").ip_bytes(), true, Host, TC_ACT_SHOT, &[]).raw_ip().counted(WIDE, Dropped),
        // Tagged, as the kernel refuses untagged IP shorter than its header in skb test runs (see
        // `kernel_refuses_skb_runs_shorter_than_the_ip_header`).
        egress_row("802.1Q v4 cut one byte into its addresses -> truncated", v4(MISS4, HOST4).vlan(ETH_P_8021Q, 1).bytes()[..ETH_HLEN + 4 + 19].to_vec(), true, Host, TC_ACT_OK, &[TruncatedIpv4]),
        egress_row("802.1Q v6 cut before its destination ends -> truncated", v6(MISS6, HOST6).vlan(ETH_P_8021Q, 1).bytes()[..ETH_HLEN + 4 + 39].to_vec(), true, Host, TC_ACT_OK, &[TruncatedIpv6]),
        egress_row("802.1Q tag cut short -> truncated VLAN", v4(MISS4, HOST4).vlan(ETH_P_8021Q, 1).bytes()[..ETH_HLEN + 3].to_vec(), true, Host, TC_ACT_OK, &[TruncatedVlan]),
        egress_row("three tags -> vlan too deep", v4(MISS4, HOST4).vlan(ETH_P_8021Q, 1).vlan(ETH_P_8021Q, 2).vlan(ETH_P_8021Q, 3).bytes(), true, Host, TC_ACT_OK, &[VlanTooDeep]),
        // Where egress is not enabled the classifier passes everything, uncounted against entities.
        egress_row("off: v4 to host -> egress off, passes", v4(MISS4, HOST4).bytes(), false, Host, TC_ACT_OK, &[EgressOff]),
        egress_row("off: v6 to host -> egress off, passes", v6(MISS6, HOST6).bytes(), false, Host, TC_ACT_OK, &[EgressOff]),
        egress_row("off, no role: v4 to host -> egress off, passes", v4(MISS4, HOST4).bytes(), false, Host, TC_ACT_OK, &[EgressOff]).on_role(NO_ROLE),
        egress_row("off, inside: v4 to host -> egress off, passes", v4(MISS4, HOST4).bytes(), false, Host, TC_ACT_OK, &[EgressOff]).on_role(INSIDE),
        // Forwarded packets: one from an inside interface was matched there by XDP.
        egress_row("forwarded from inside: v4 to host -> passes, XDP matched it", v4(MISS4, HOST4).bytes(), true, Forwarded(INSIDE), TC_ACT_OK, &[EgressForwarded]),
        egress_row("forwarded from inside: v6 to mid -> passes uncounted", v6(MISS6, "2001:db8:1::9").bytes(), true, Forwarded(INSIDE), TC_ACT_OK, &[EgressForwarded]),
        egress_row("forwarded from outside: v4 to host -> shot", v4(MISS4, HOST4).bytes(), true, Forwarded(OUTSIDE), TC_ACT_SHOT, &[]).counted(HOST, Dropped),
        egress_row("forwarded from an interface without a role: v6 to host -> shot", v6(MISS6, HOST6).bytes(), true, Forwarded(NO_ROLE), TC_ACT_SHOT, &[]).counted(HOST, Dropped),
    ]
}

/// The kernel's `struct __sk_buff` (192 bytes) for an skb test run, with `ingress_ifindex`
/// (offset 36: where a forwarded packet arrived, 0 for the host's own) and `ifindex` (offset
/// 40: the device the packet is on, its egress interface; the kernel looks it up, so it must
/// exist) set. The kernel refuses non-zero fields it does not take.
fn sk_buff(ingress_ifindex: u32, ifindex: u32) -> [u8; 192] {
    let mut ctx = [0u8; 192];
    ctx[36..40].copy_from_slice(&ingress_ifindex.to_le_bytes());
    ctx[40..44].copy_from_slice(&ifindex.to_le_bytes());
    ctx
}

/// Runs the TC egress classifier once on `frame` leaving `ifindex`; the TC verdict.
fn run_egress(
    dp: &Dataplane,
    frame: &[u8],
    ingress_ifindex: u32,
    ifindex: u32,
) -> Result<u32, ProgramError> {
    let ctx = sk_buff(ingress_ifindex, ifindex);
    let result = dp.egress_program().test_run(TestRunOptions {
        data_in: Some(frame),
        ctx_in: Some(&ctx),
        repeat: 1,
        ..TestRunOptions::new()
    })?;
    Ok(result.return_value)
}

fn tc_action_name(action: u32) -> &'static str {
    match action {
        TC_ACT_OK => "TC_ACT_OK",
        TC_ACT_SHOT => "TC_ACT_SHOT",
        _ => "unknown",
    }
}

/// A dataplane with the fixture policy and the stand-in ingress interfaces' roles.
fn load_for_egress() -> Dataplane {
    let mut dp = load(&fixture_policy());
    dp.set_role(FWD_INSIDE, INSIDE).unwrap();
    dp.set_role(FWD_OUTSIDE, OUTSIDE).unwrap();
    dp
}

/// Runs one egress row; every way it differs from what the row says.
fn check_egress(dp: &mut Dataplane, lo: u32, er: &EgressRow) -> Vec<String> {
    let row = &er.row;
    dp.set_role(lo, row.role).unwrap();
    if row.role != NO_ROLE {
        dp.set_egress(lo, er.egress).unwrap();
        dp.set_link(lo, row.link).unwrap();
    }
    let ingress = match er.origin {
        Origin::Host => 0,
        Origin::Forwarded(IfaceRole::Inside) => FWD_INSIDE,
        Origin::Forwarded(IfaceRole::Outside) => FWD_OUTSIDE,
        Origin::Forwarded(IfaceRole::None) => FWD_NO_ROLE,
    };
    let before = snapshot(dp);
    let result = run_egress(dp, &row.frame, ingress, lo);
    let after = snapshot(dp);
    let mut errors = Vec::new();
    match result {
        Ok(action) if action == row.action => {}
        Ok(action) => errors.push(format!(
            "action {} ({action}), expected {}",
            tc_action_name(action),
            tc_action_name(row.action)
        )),
        Err(e) => errors.push(format!("BPF_PROG_TEST_RUN failed: {e} ({e:?})")),
    }
    errors.extend(compare(row, &before, &after));
    errors
}

/// Every egress row through the real TC classifier, with exact counter deltas: the same maps
/// and the same accounting as the XDP table.
#[test]
fn egress_fixture_table() {
    let mut dp = load_for_egress();
    let lo = loopback();
    let rows = egress_rows();
    let mut names = HashSet::new();
    for er in &rows {
        let row = &er.row;
        assert!(
            names.insert(row.name.as_str()),
            "duplicate row `{}`",
            row.name
        );
        validate_outcomes(row);
        assert!(
            matches!(row.action, TC_ACT_OK | TC_ACT_SHOT),
            "row `{}`",
            row.name
        );
        assert_eq!(
            row.action == TC_ACT_SHOT,
            row.counters.iter().any(|c| c.2 == Dropped),
            "row `{}`: drops and dropped counters go together",
            row.name
        );
        assert!(
            er.egress || row.counters.is_empty(),
            "row `{}`: nothing counts against an entity without egress",
            row.name
        );
    }
    let mut failures = Vec::new();
    for er in &rows {
        let errors = check_egress(&mut dp, lo, er);
        if !errors.is_empty() {
            failures.push(format!(
                "row `{}` ({} bytes, role {:?}, egress {}, {:?}):\n    {}",
                er.row.name,
                er.row.frame.len(),
                er.row.role,
                er.egress,
                er.origin,
                errors.join("\n    ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} egress rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    eprintln!("{} egress rows passed", rows.len());
}

/// The device in `ctx_in` is the egress interface whose flag and counter slot apply: with the
/// flag on another interface and not on the loopback, a blocked packet leaving that interface
/// is shot and counted in its slot; the same packet leaving the loopback passes.
#[test]
fn egress_counts_in_the_egress_interfaces_slot() {
    let mut dp = load(&fixture_policy());
    let lo = loopback();
    let dummy = Dummy::new();
    let other = system::ifindex(&dummy.name).unwrap();
    assert!(other < MAX_IFINDEX);
    let frame = v4(MISS4, HOST4).bytes();
    dp.set_role(lo, OUTSIDE).unwrap();
    dp.set_role(other, OUTSIDE).unwrap();
    dp.set_egress(other, true).unwrap();
    let before = snapshot(&dp);
    assert_eq!(run_egress(&dp, &frame, 0, other).unwrap(), TC_ACT_SHOT);
    assert_eq!(run_egress(&dp, &frame, 0, lo).unwrap(), TC_ACT_OK);
    let after = snapshot(&dp);
    assert_eq!(
        after.stats[EgressOff as usize] - before.stats[EgressOff as usize],
        1,
        "the loopback has no egress flag"
    );
    let by_slot = dp.counters_by_slot().unwrap();
    let dropped = |ifindex: u32| {
        let (_, per_entity) = by_slot.iter().find(|(i, _)| *i == ifindex).unwrap();
        per_entity[HOST as usize].get(Outbound, Dropped)
    };
    assert_eq!(
        dropped(other),
        Counter {
            packets: 1,
            bytes: frame.len() as u64
        }
    );
    assert_eq!(dropped(lo), Counter::default());
    // Nothing inbound: egress counts outbound only.
    for (_, per_entity) in &by_slot {
        for c in per_entity {
            assert_eq!(c.get(Inbound, Dropped), Counter::default());
            assert_eq!(c.get(Inbound, Monitored), Counter::default());
        }
    }
}

/// An skb test run of untagged IPv4 or IPv6 shorter than the fixed IP header is refused with
/// `EINVAL` before the program runs (the kernel reads the addresses for its test socket), so
/// the egress table tests truncation inside a VLAN tag: check the refusal at every such length
/// (and that nothing was counted), and that the full header does run.
#[test]
fn kernel_refuses_skb_runs_shorter_than_the_ip_header() {
    let mut dp = load(&fixture_policy());
    let lo = loopback();
    dp.set_role(lo, OUTSIDE).unwrap();
    dp.set_egress(lo, true).unwrap();
    for (frame, header) in [
        (v4(MISS4, HOST4).bytes(), 20),
        (v6(MISS6, HOST6).bytes(), 40),
    ] {
        for len in ETH_HLEN..ETH_HLEN + header {
            let before = snapshot(&dp);
            match run_egress(&dp, &frame[..len], 0, lo) {
                Err(e) => assert_eq!(errno(&e), Some(libc::EINVAL), "{len} bytes: {e:?}"),
                Ok(action) => panic!(
                    "{len} bytes: the kernel ran the program ({}); the table should test it",
                    tc_action_name(action)
                ),
            }
            assert_eq!(
                before,
                snapshot(&dp),
                "{len} bytes: refused, yet counters moved"
            );
        }
        assert_eq!(
            run_egress(&dp, &frame[..ETH_HLEN + header], 0, lo).unwrap(),
            TC_ACT_SHOT
        );
    }
}

/// The flag belongs to the interface's role-map entry: it needs a role, survives a change of
/// role and is cleared with the role.
#[test]
fn the_egress_flag_lives_and_dies_with_the_role() {
    let mut dp = load(&fixture_policy());
    let lo = loopback();
    let frame = v4(MISS4, HOST4).bytes();
    dp.set_role(lo, NO_ROLE).unwrap();
    assert!(matches!(
        dp.set_egress(lo, true),
        Err(DataplaneError::EgressWithoutRole { ifindex }) if ifindex == lo
    ));
    dp.set_role(lo, OUTSIDE).unwrap();
    dp.set_egress(lo, true).unwrap();
    assert_eq!(run_egress(&dp, &frame, 0, lo).unwrap(), TC_ACT_SHOT);
    // A role change keeps the flag (the XDP side now matches destinations; egress still does).
    dp.set_role(lo, INSIDE).unwrap();
    assert_eq!(run_egress(&dp, &frame, 0, lo).unwrap(), TC_ACT_SHOT);
    // Losing the role clears it: a new role starts without egress.
    dp.set_role(lo, NO_ROLE).unwrap();
    dp.set_role(lo, OUTSIDE).unwrap();
    let before = snapshot(&dp);
    assert_eq!(run_egress(&dp, &frame, 0, lo).unwrap(), TC_ACT_OK);
    let after = snapshot(&dp);
    assert_eq!(
        after.stats[EgressOff as usize] - before.stats[EgressOff as usize],
        1
    );
}

/// Attached with egress (to a veth of the test's own, through whatever TC API this kernel
/// uses), the interface's entry carries the flag; cleared behind the dataplane's back (another
/// process writing the map), attestation counts it as role drift and writes it back.
#[test]
fn attestation_repairs_a_cleared_egress_flag() {
    let mut dp = load(&fixture_policy());
    let dummy = Dummy::new();
    let ifindex = system::ifindex(&dummy.name).unwrap();
    let att = dp
        .attach(&Interface {
            name: dummy.name.clone(),
            role: config::Role::Outside,
            mode: XdpMode::Generic,
            egress: true,
        })
        .unwrap()
        .clone();
    assert!(att.egress);
    let frame = v4(MISS4, HOST4).bytes();
    assert_eq!(run_egress(&dp, &frame, 0, ifindex).unwrap(), TC_ACT_SHOT);
    assert_eq!(dp.attest(false).unwrap().total(), 0);
    let mut roles = role_map_of(&dp);
    let mut entry = roles.get(&ifindex, 0).unwrap();
    assert_eq!(entry.flags, IFACE_EGRESS);
    entry.flags = 0;
    roles.set(ifindex, entry, 0).unwrap();
    assert_eq!(run_egress(&dp, &frame, 0, ifindex).unwrap(), TC_ACT_OK);
    let drift = dp.attest(true).unwrap();
    assert_eq!((drift.roles, drift.total()), (1, 1), "{drift:?}");
    assert_eq!(roles.get(&ifindex, 0).unwrap().flags, IFACE_EGRESS);
    assert_eq!(run_egress(&dp, &frame, 0, ifindex).unwrap(), TC_ACT_SHOT);
    assert_eq!(dp.attest(false).unwrap().total(), 0);
    for (name, result) in dp.detach_all() {
        result.unwrap_or_else(|e| panic!("detaching from {name}: {e}"));
    }
}

/// A role entry for an interface the dataplane never configured (another process writing the
/// map: a spare ifindex made `inside` so its traffic is matched, or a stray entry) is role drift:
/// attestation reports it and the repair clears it.
#[test]
fn attestation_reports_and_clears_a_role_for_an_unconfigured_interface() {
    let mut dp = load(&fixture_policy());
    let lo = loopback();
    dp.set_role(lo, OUTSIDE).unwrap();
    assert_eq!(dp.attest(false).unwrap().total(), 0);
    let mut roles = role_map_of(&dp);
    let planted = 4242;
    let entry = IfaceConfig {
        role: INSIDE as u8,
        slot: 3,
        flags: 0,
        link: 0,
    };
    roles.set(planted, entry, 0).unwrap();
    let drift = dp.attest(false).unwrap();
    assert_eq!((drift.roles, drift.total()), (1, 1), "{drift:?}");
    assert_eq!(roles.get(&planted, 0).unwrap(), entry, "not repaired yet");
    let drift = dp.attest(true).unwrap();
    assert_eq!(drift.roles, 1, "{drift:?}");
    assert_eq!(roles.get(&planted, 0).unwrap(), IfaceConfig::default());
    assert_eq!(dp.attest(false).unwrap().total(), 0);
    // The configured interface's entry was left alone.
    assert_eq!(roles.get(&lo, 0).unwrap().role, OUTSIDE as u8);
}

/// `inside` interfaces cannot enforce egress: refused before anything is attached.
#[test]
fn egress_on_an_inside_interface_is_refused() {
    let mut dp = load(&fixture_policy());
    let dummy = Dummy::new();
    let err = dp
        .attach(&Interface {
            name: dummy.name.clone(),
            role: config::Role::Inside,
            mode: XdpMode::Generic,
            egress: true,
        })
        .unwrap_err();
    assert!(
        matches!(err, DataplaneError::EgressNotOutside { .. }),
        "{err:?}"
    );
    assert!(dp.attachments().is_empty());
    assert!(dp.slots().is_empty());
}

/// The role map of `dp`'s program, opened by id as another process would.
fn role_map_of(dp: &Dataplane) -> aya::maps::Array<aya::maps::MapData, IfaceConfig> {
    let ids = dp.program().info().unwrap().map_ids().unwrap().unwrap();
    let data = ids
        .into_iter()
        .map(|id| aya::maps::MapData::from_id(id).unwrap())
        .find(|m| {
            m.info()
                .is_ok_and(|i| i.name_as_str() == Some(maps::IFACE_ROLES))
        })
        .expect("the program uses the role map");
    aya::maps::Array::try_from(aya::maps::Map::Array(data)).unwrap()
}

/// The TC program is in the same object and uses the very same maps as the XDP program.
#[test]
fn both_programs_share_every_map() {
    let dp = load(&Policy::default());
    let mut xdp = dp.program().info().unwrap().map_ids().unwrap().unwrap();
    let mut tc = dp
        .egress_program()
        .info()
        .unwrap()
        .map_ids()
        .unwrap()
        .unwrap();
    xdp.sort_unstable();
    tc.sort_unstable();
    assert_eq!(xdp, tc);
    // Every named map, and nothing else (no read-only data: the program has no globals).
    assert_eq!(xdp.len(), maps::ALL.len());
}
