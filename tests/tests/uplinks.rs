//! End to end on uplinks that are not plain Ethernet: the real `embargo` binary in a netns lab
//! whose gateway has a layer-3 tun device ([`Lab::add_tun`]), the kind of interface WireGuard,
//! PPP and IP tunnels are too (no link-layer header, `ARPHRD_NONE`).
//!
//! The test writes bare IPv4 and IPv6 UDP datagrams into the tun (the gateway receives them on
//! it, through the XDP program in generic mode, `outside`: sources matched) and counts which
//! reach a socket of the gateway; and, with egress enforced on the tun, reads back what the
//! gateway's own sockets sent out of it (the TC egress classifier, destinations matched). It
//! checks the agent's per-entity counters and outcomes for exactly those packets: nothing but
//! the test's datagrams is received on the tun.
//!
//! Needs root and a built `embargo` binary (`cargo build --bin embargo`, or `EMBARGO_BIN`).
//! Nothing leaves the machine: the datagrams are delivered to the gateway's own sockets, and
//! the routes through the tun end at the test's file descriptor.

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use embargo_tests::{
    lab::{Agent, GW_V4, GW_V6, Lab, Tun, counter, outcome},
    packet::udp_datagram,
    policy::LabPolicy,
};

/// The uplinks test policy: documentation and test-net prefixes only.
fn config_text() -> String {
    LabPolicy::drop_and_monitor(
        &["203.0.113.0/24", "2001:db8:bad::/48"],
        &["198.51.100.0/24"],
        |id, e| {
            e.designation("uplinks", &format!("UPLINKS-{id}"))
                .source("uplinks")
                .guard("test uplinks")
        },
    )
    .to_string()
}

const PORT: u16 = 47_001;
const MAGIC: &[u8] = b"embargo-uplinks:";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A datagram from `src` to `dst`:PORT whose payload names its source and number.
fn datagram(src: IpAddr, dst: IpAddr, n: usize) -> Vec<u8> {
    let mut payload = MAGIC.to_vec();
    payload.extend_from_slice(format!("{src}#{n}").as_bytes());
    udp_datagram(src, dst, 40_000, PORT, &payload)
}

/// The source named in a received payload, if it is one of ours.
fn source_of(payload: &[u8]) -> Option<IpAddr> {
    let rest = payload.strip_prefix(MAGIC)?;
    let text = std::str::from_utf8(rest).ok()?;
    text.split('#').next()?.parse().ok()
}

/// Counts, per source, the datagrams `socks` receive until `window` passes without one.
fn receive(socks: &[&std::net::UdpSocket], window: Duration) -> Vec<IpAddr> {
    let mut got = Vec::new();
    let mut last = Instant::now();
    let mut buf = [0u8; 2048];
    while last.elapsed() < window {
        let mut any = false;
        for s in socks {
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            if let Ok((n, _)) = s.recv_from(&mut buf)
                && let Some(src) = source_of(&buf[..n])
            {
                got.push(src);
                any = true;
            }
        }
        if any {
            last = Instant::now();
        }
    }
    got
}

fn count(list: &[IpAddr], addr: IpAddr) -> usize {
    list.iter().filter(|a| **a == addr).count()
}

fn start<'a>(lab: &'a Lab, tun: &Tun, spec: &str) -> Agent<'a> {
    let config = lab.write_file("uplinks.toml", &config_text()).unwrap();
    lab.start_agent_on(&config, &format!("{}:{spec}", tun.name), "tun", &[])
        .unwrap()
}

/// Role outside on a tun, `auto` mode: attached in generic mode (a layer-3 device), listed
/// sources dropped and counted per entity, monitored ones passed and counted, unlisted ones
/// passed and counted as misses, IPv4 and IPv6.
#[test]
fn tun_outside_drops_and_counts_listed_sources() {
    let lab = Lab::new().unwrap();
    lab.check_contained().unwrap();
    let tun = lab.add_tun().unwrap();
    let agent = start(&lab, &tun, "outside");
    let status = agent.status().unwrap();
    let iface = status
        .interfaces
        .iter()
        .find(|i| i.name == tun.name)
        .unwrap_or_else(|| panic!("{} not attached: {:?}", tun.name, status.interfaces));
    assert_eq!(iface.mode, "generic", "a layer-3 device gets generic XDP");
    let before_non_ip = outcome(&status, "non_ip");

    let sock4 = lab.udp_in_gw(SocketAddr::new(GW_V4.into(), PORT)).unwrap();
    let sock6 = lab.udp_in_gw(SocketAddr::new(GW_V6.into(), PORT)).unwrap();
    let blocked4 = ip("203.0.113.7");
    let blocked6 = ip("2001:db8:bad::7");
    let monitored = ip("198.51.100.9");
    let unlisted4 = ip("192.0.2.10");
    let unlisted6 = ip("2001:db8:1::10");
    let plan = [
        (blocked4, 10),
        (blocked6, 4),
        (monitored, 4),
        (unlisted4, 6),
        (unlisted6, 3),
    ];
    let mut bytes = std::collections::BTreeMap::new();
    for (src, n) in plan {
        let dst: IpAddr = if src.is_ipv4() {
            GW_V4.into()
        } else {
            GW_V6.into()
        };
        for i in 0..n {
            let d = datagram(src, dst, i);
            *bytes.entry(src).or_insert(0u64) += d.len() as u64;
            tun.write(&d).unwrap();
        }
    }
    let got = receive(&[&sock4, &sock6], Duration::from_millis(500));
    assert_eq!(
        count(&got, blocked4),
        0,
        "listed IPv4 source delivered: {got:?}"
    );
    assert_eq!(
        count(&got, blocked6),
        0,
        "listed IPv6 source delivered: {got:?}"
    );
    assert_eq!(count(&got, monitored), 4, "{got:?}");
    assert_eq!(count(&got, unlisted4), 6, "{got:?}");
    assert_eq!(count(&got, unlisted6), 3, "{got:?}");

    let status = agent.status().unwrap();
    assert_eq!(
        counter(&status, "lab-drop", "inbound", "dropped"),
        Some((14, bytes[&blocked4] + bytes[&blocked6])),
        "drops counted against the entity, with the IP packets' lengths"
    );
    assert_eq!(
        counter(&status, "lab-monitor", "inbound", "monitored"),
        Some((4, bytes[&monitored]))
    );
    assert_eq!(outcome(&status, "miss_ipv4"), 6);
    assert_eq!(outcome(&status, "miss_ipv6"), 3);
    assert_eq!(
        outcome(&status, "non_ip"),
        before_non_ip,
        "every datagram was parsed as IP"
    );
    agent.stop().unwrap();
}

/// Egress enforced on a tun: what the gateway itself sends out of it to a listed destination
/// is dropped and counted (the TC egress classifier parses from the IP header too); the rest
/// comes out of the tun.
#[test]
fn tun_egress_drops_what_the_host_sends_to_listed_destinations() {
    let lab = Lab::new().unwrap();
    lab.check_contained().unwrap();
    let tun = lab.add_tun().unwrap();
    let blocked = ip("203.0.113.7");
    let unlisted = ip("192.0.2.10");
    for dst in [blocked, unlisted] {
        lab.ip_in(
            lab.gw_ns(),
            &["route", "add", &format!("{dst}/32"), "dev", &tun.name],
        )
        .unwrap();
    }
    let agent = start(&lab, &tun, "outside:egress");
    let sender = lab.udp_in_gw(SocketAddr::new(GW_V4.into(), 0)).unwrap();
    for dst in [blocked, unlisted] {
        for i in 0..5 {
            sender
                .send_to(format!("embargo-uplinks:{dst}#{i}").as_bytes(), (dst, PORT))
                .unwrap();
        }
    }
    let out = tun.read_for(Duration::from_millis(500)).unwrap();
    // IPv4 UDP to PORT: destination at bytes 16..20.
    let to = |dst: IpAddr| {
        out.iter()
            .filter(|p| p.len() >= 28 && p[0] >> 4 == 4 && p[9] == 17)
            .filter(|p| u16::from_be_bytes([p[22], p[23]]) == PORT)
            .filter(|p| IpAddr::from([p[16], p[17], p[18], p[19]]) == dst)
            .count()
    };
    assert_eq!(to(blocked), 0, "sent to a listed destination");
    assert_eq!(to(unlisted), 5);
    let status = agent.status().unwrap();
    let (packets, _) = counter(&status, "lab-drop", "outbound", "dropped").unwrap();
    assert_eq!(packets, 5);
    agent.stop().unwrap();
}

/// A bridge as the uplink, with a veth port whose other end is in the client namespace: native
/// XDP is refused on bridges, so `auto` falls back to generic, which sees what the bridge
/// delivers to the host; listed sources are dropped and counted there. Also checks what the
/// agent reads to choose a mode: the drivers ethtool reports (`bridge`, `veth`, `tun`; a bond
/// says `bonding` and gets generic, see `Dataplane::attach`).
#[test]
fn bridge_uplink_falls_back_to_generic_and_enforces() {
    let lab = Lab::new().unwrap();
    lab.check_contained().unwrap();
    let p = lab.gw_if().trim_end_matches("g0").to_owned();
    let (bridge, port, peer) = (format!("{p}r0"), format!("{p}b0"), format!("{p}b1"));
    let (gw, cli) = (lab.gw_ns().to_owned(), lab.cli_ns().to_owned());
    lab.ip_in(
        &cli,
        &[
            "link", "add", &peer, "type", "veth", "peer", "name", &port, "netns", &gw,
        ],
    )
    .unwrap();
    lab.ip_in(&gw, &["link", "add", &bridge, "type", "bridge"])
        .unwrap();
    lab.ip_in(&gw, &["link", "set", &port, "master", &bridge])
        .unwrap();
    for (ns, dev) in [(&gw, &port), (&gw, &bridge), (&cli, &peer)] {
        lab.ip_in(ns, &["link", "set", dev, "up"]).unwrap();
    }
    lab.ip_in(&gw, &["addr", "add", "198.19.0.1/24", "dev", &bridge])
        .unwrap();
    for a in ["198.19.0.2/24", "203.0.113.7/32", "192.0.2.10/32"] {
        lab.ip_in(&cli, &["addr", "add", a, "dev", &peer]).unwrap();
    }
    let tun = lab.add_tun().unwrap();
    let drivers = embargo_tests::lab::in_netns(&gw, || {
        [&bridge, &port, &tun.name].map(|d| embargo::dataplane::system::driver(d).unwrap())
    })
    .unwrap();
    assert_eq!(drivers, ["bridge", "veth", "tun"]);

    let config = lab.write_file("uplinks.toml", &config_text()).unwrap();
    let agent = lab
        .start_agent_on(&config, &format!("{bridge}:outside"), "bridge", &[])
        .unwrap();
    let status = agent.status().unwrap();
    assert_eq!(status.interfaces[0].name, bridge);
    assert_eq!(status.interfaces[0].mode, "generic");
    let sock = lab.udp_in_gw("198.19.0.1:47001".parse().unwrap()).unwrap();
    embargo_tests::lab::in_netns(&cli, || {
        for src in ["203.0.113.7", "192.0.2.10"] {
            let s = std::net::UdpSocket::bind((ip(src), 0)).unwrap();
            for i in 0..5 {
                let mut payload = MAGIC.to_vec();
                payload.extend_from_slice(format!("{src}#{i}").as_bytes());
                s.send_to(&payload, ("198.19.0.1", PORT)).unwrap();
            }
        }
    })
    .unwrap();
    let got = receive(&[&sock], Duration::from_millis(500));
    assert_eq!(count(&got, ip("203.0.113.7")), 0, "{got:?}");
    assert_eq!(count(&got, ip("192.0.2.10")), 5, "{got:?}");
    let status = agent.status().unwrap();
    let (packets, _) = counter(&status, "lab-drop", "inbound", "dropped").unwrap();
    assert_eq!(packets, 5);
    agent.stop().unwrap();
}

/// PPPoE session frames (crafted, as a DSL access concentrator would send them) arriving on
/// the gateway's veth, `outside`: IPv4 and IPv6 from listed sources are dropped before any
/// packet socket sees them and counted per entity; unlisted ones and LCP pass (a packet socket
/// on the gateway receives them) and are counted as misses and non-IP.
#[test]
fn pppoe_session_frames_on_an_ethernet_uplink() {
    use embargo_tests::packet::{ETH_P_PPP_SES, Frame, L3, PPP_LCP};
    let lab = Lab::new().unwrap();
    lab.check_contained().unwrap();
    let config = lab.write_file("uplinks.toml", &config_text()).unwrap();
    let agent = lab
        .start_agent(&config, embargo::config::Role::Outside)
        .unwrap();
    let before = agent.status().unwrap();
    let capture = lab.capture_in_gw(ETH_P_PPP_SES).unwrap();
    let frame = |src: &str, dst: &str, n: u8| {
        let mut f = Frame::ip(ip(src), ip(dst)).pppoe(0x77);
        f.payload_len = 8 + usize::from(n); // a distinct length per frame
        f.bytes()
    };
    let lcp = Frame {
        vlans: Vec::new(),
        pppoe: Some(0x77),
        l3: L3::Other {
            ethertype: PPP_LCP,
            body: vec![9, 1, 0, 8, 0xde, 0xad, 0xbe, 0xef],
        },
        payload_len: 0,
    }
    .bytes();
    let mut frames = Vec::new();
    for n in 0..4 {
        frames.push(frame("203.0.113.7", "192.0.2.1", n));
        frames.push(frame("2001:db8:bad::7", "2001:db8:1::1", n));
        frames.push(frame("192.0.2.10", "192.0.2.1", n));
    }
    frames.push(lcp.clone());
    lab.send_frames_from_cli(&frames).unwrap();
    let seen = embargo_tests::lab::frames_within(&capture, Duration::from_millis(500)).unwrap();
    // The IP source inside the PPPoE session: IPv4 at 22 + 12, IPv6 at 22 + 8.
    let from = |prefix: &[u8]| {
        seen.iter()
            .filter(|f| f.len() > 40 && f[12..14] == [0x88, 0x64])
            .filter(|f| match f[20..22] {
                [0x00, 0x21] => f[34..].starts_with(prefix),
                [0x00, 0x57] => f[30..].starts_with(prefix),
                _ => false,
            })
            .count()
    };
    assert_eq!(from(&[203, 0, 113, 7]), 0, "listed IPv4 source passed");
    assert_eq!(
        from(&[0x20, 0x01, 0x0d, 0xb8, 0x0b, 0xad]),
        0,
        "listed IPv6 source passed"
    );
    assert_eq!(from(&[192, 0, 2, 10]), 4);
    assert!(seen.iter().any(|f| f[20..22] == [0xc0, 0x21]), "LCP passed");
    let after = agent.status().unwrap();
    let dropped = |s: &embargo::observe::status::Status| {
        counter(s, "lab-drop", "inbound", "dropped").map_or(0, |c| c.0)
    };
    assert_eq!(dropped(&after) - dropped(&before), 8);
    assert_eq!(
        outcome(&after, "miss_ipv4") - outcome(&before, "miss_ipv4"),
        4
    );
    assert!(outcome(&after, "non_ip") > outcome(&before, "non_ip"));
    agent.stop().unwrap();
}
