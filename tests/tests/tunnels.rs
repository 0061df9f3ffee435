//! Uplinks that need kernel modules, enforced end to end (root): the layer-3 tunnels GRE, IPIP
//! and WireGuard, a real PPP link (`ppp0`), and the Ethernet VLAN sub-interface and bond.
//!
//! Two namespaces, a peer and a gateway, joined by a veth underlay; a tunnel of the kind under
//! test runs over it. The agent attaches to the gateway's tunnel device with role `outside`
//! (match SOURCE). The peer sends UDP datagrams through the tunnel from a listed source
//! (203.0.113.9, in the entity's prefix) and from an unlisted one (192.0.2.10): the listed ones
//! must be dropped and counted against the entity as `inbound`/`dropped`, the unlisted ones
//! delivered. Tunnel frames have no Ethernet header: before the agent parsed layer-3 devices
//! from the IP header they all passed as `non_ip`. The VLAN sub-interface (`u1.100`-style, named
//! `t0` here) and the bond (`t0` with the veth as its slave) are Ethernet devices that refuse
//! native XDP: the agent attaches in generic mode. The PPP link is two `pppd`s, one per
//! namespace, talking async HDLC over a pty (the gateway's `pppd` runs the peer's with its `pty`
//! option): LCP and IPCP negotiate for real and each namespace gets a `ppp0` (`ARPHRD_PPP`).
//!
//! The host kernel these tests are written on has none of these (no GRE, IPIP, WireGuard, PPP,
//! 802.1Q or bonding), so they are `#[ignore]`d in a plain run and run by `cargo xtask matrix` inside
//! Debian's kernels, which ship them as modules (`--ignored`). Containment: both namespaces have forwarding off and
//! blackhole default routes; every address is on their own interfaces.

use std::{
    fs::File,
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use embargo::config::Action;
use embargo_tests::{
    lab::{self, counter, in_netns},
    policy::{LabEntity, LabPolicy},
};

const ENTITY: &str = "tunnel-drop";
const LISTED: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);
const UNLISTED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const GW_INNER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const GW_UNDER: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const PEER_UNDER: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
/// The peer's end of the PPP link (IPCP: the gateway's end is [`GW_INNER`]).
const PEER_PPP: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 2);
const PORT: u16 = 40_123;
const WG_PORT: u16 = 51_820;
const COUNT: u64 = 5;

fn config_text() -> String {
    LabPolicy::new()
        .entity(
            LabEntity::new("tunnel-drop", Action::Drop, &["203.0.113.0/24"])
                .name("Tunnel Test Entity")
                .designation("tunnels", "T-1")
                .source("tunnel test")
                .guard("test netns"),
        )
        .to_string()
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Gre,
    Ipip,
    Wireguard,
    Ppp,
    Vlan,
    Bond,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Gre => "g",
            Kind::Ipip => "i",
            Kind::Wireguard => "w",
            Kind::Ppp => "p",
            Kind::Vlan => "v",
            Kind::Bond => "b",
        }
    }

    /// The peer's device that carries the inner addresses.
    fn peer_dev(self) -> &'static str {
        match self {
            // The bond is the gateway's alone; the peer sends from its plain veth end.
            Kind::Bond => "u0",
            Kind::Ppp => "ppp0",
            _ => "t0",
        }
    }

    /// The gateway's device the agent attaches to.
    fn gw_dev(self) -> &'static str {
        match self {
            Kind::Ppp => "ppp0",
            _ => "t0",
        }
    }
}

fn sh(args: &[&str]) -> String {
    lab::run(Command::new(args[0]).args(&args[1..])).unwrap_or_else(|e| panic!("{e}"))
}

fn ip(ns: &str, args: &str) {
    let mut all = vec!["ip", "-n", ns];
    all.extend(args.split_whitespace());
    sh(&all);
}

/// Two namespaces, an underlay veth and a tunnel; removed on drop, with the agent.
struct TunnelLab {
    peer: String,
    gw: String,
    /// The gateway's device the agent attaches to.
    gw_dev: &'static str,
    dir: PathBuf,
    /// Removes `dir` when the lab drops, after the agent is gone.
    _tmp: tempfile::TempDir,
    agent: Option<Child>,
    /// The gateway's `pppd` (it runs the peer's, which ends with the pty).
    pppd: Option<Child>,
}

impl Drop for TunnelLab {
    fn drop(&mut self) {
        if let Some(mut a) = self.agent.take() {
            // SAFETY: kill with the pid of a child we have not reaped.
            unsafe { libc::kill(a.id() as libc::pid_t, libc::SIGTERM) };
            let start = Instant::now();
            while matches!(a.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(10) {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = a.kill();
            let _ = a.wait();
        }
        if let Some(mut p) = self.pppd.take() {
            // SAFETY: kill with the pid of a child we have not reaped.
            unsafe { libc::kill(p.id() as libc::pid_t, libc::SIGTERM) };
            let start = Instant::now();
            while matches!(p.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(10) {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = p.kill();
            let _ = p.wait();
        }
        for ns in [&self.peer, &self.gw] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

impl TunnelLab {
    fn new(kind: Kind) -> Self {
        let pid = std::process::id();
        let tmp = tempfile::Builder::new()
            .prefix(&format!("embargo-tunnel-{}-", kind.tag()))
            .tempdir()
            .unwrap();
        let mut t = TunnelLab {
            gw_dev: kind.gw_dev(),
            peer: format!("embt{pid}{}p", kind.tag()),
            gw: format!("embt{pid}{}g", kind.tag()),
            dir: tmp.path().to_owned(),
            _tmp: tmp,
            agent: None,
            pppd: None,
        };
        for ns in [&t.peer, &t.gw] {
            sh(&["ip", "netns", "add", ns]);
            for key in [
                "net.ipv4.ip_forward=0",
                "net.ipv4.conf.all.forwarding=0",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
                "net.ipv6.conf.all.forwarding=0",
            ] {
                sh(&["ip", "netns", "exec", ns, "sysctl", "-qw", key]);
            }
            ip(ns, "link set lo up");
            ip(ns, "-4 route add blackhole default");
        }
        ip(
            &t.peer,
            &format!("link add u0 type veth peer name u1 netns {}", t.gw),
        );
        ip(&t.peer, &format!("addr add {PEER_UNDER}/30 dev u0"));
        ip(&t.gw, &format!("addr add {GW_UNDER}/30 dev u1"));
        ip(&t.peer, "link set u0 up");
        ip(&t.gw, "link set u1 up");
        match kind {
            Kind::Gre | Kind::Ipip => {
                let ty = if matches!(kind, Kind::Gre) {
                    "gre"
                } else {
                    "ipip"
                };
                ip(
                    &t.peer,
                    &format!("link add t0 type {ty} local {PEER_UNDER} remote {GW_UNDER} ttl 64"),
                );
                ip(
                    &t.gw,
                    &format!("link add t0 type {ty} local {GW_UNDER} remote {PEER_UNDER} ttl 64"),
                );
            }
            Kind::Wireguard => t.wireguard(),
            Kind::Ppp => t.ppp(),
            Kind::Vlan => {
                ip(&t.peer, "link add link u0 name t0 type vlan id 100");
                ip(&t.gw, "link add link u1 name t0 type vlan id 100");
            }
            Kind::Bond => {
                ip(&t.gw, "link add t0 type bond mode active-backup");
                ip(&t.gw, "link set u1 down");
                ip(&t.gw, "link set u1 master t0");
                ip(&t.gw, "link set u1 up");
            }
        }
        let dev = kind.peer_dev();
        let gw_dev = kind.gw_dev();
        ip(&t.peer, &format!("addr add {LISTED}/32 dev {dev}"));
        ip(&t.peer, &format!("addr add {UNLISTED}/32 dev {dev}"));
        // IPCP gave the PPP ends their addresses and host routes.
        if !matches!(kind, Kind::Ppp) {
            ip(&t.gw, &format!("addr add {GW_INNER}/32 dev {gw_dev}"));
            ip(&t.peer, &format!("link set {dev} up"));
            ip(&t.gw, &format!("link set {gw_dev} up"));
            ip(&t.peer, &format!("route add {GW_INNER}/32 dev {dev}"));
        }
        ip(&t.gw, &format!("route add {LISTED}/32 dev {gw_dev}"));
        ip(&t.gw, &format!("route add {UNLISTED}/32 dev {gw_dev}"));
        t
    }

    /// A WireGuard pair over the underlay; keys made with `wg`.
    fn wireguard(&self) {
        let key = |name: &str| {
            let private = sh(&["wg", "genkey"]);
            let path = self.dir.join(name);
            std::fs::write(&path, format!("{}\n", private.trim())).unwrap();
            let mut child = Command::new("wg")
                .arg("pubkey")
                .stdin(File::open(&path).unwrap())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut public = String::new();
            std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut public).unwrap();
            assert!(child.wait().unwrap().success());
            (path, public.trim().to_owned())
        };
        let (peer_key, peer_pub) = key("peer.key");
        let (gw_key, gw_pub) = key("gw.key");
        for (ns, own, other_pub, allowed, endpoint) in [
            (
                &self.peer,
                &peer_key,
                &gw_pub,
                format!("{GW_INNER}/32"),
                GW_UNDER,
            ),
            (
                &self.gw,
                &gw_key,
                &peer_pub,
                format!("{LISTED}/32,{UNLISTED}/32"),
                PEER_UNDER,
            ),
        ] {
            ip(ns, "link add t0 type wireguard");
            sh(&[
                "ip",
                "netns",
                "exec",
                ns,
                "wg",
                "set",
                "t0",
                "listen-port",
                &WG_PORT.to_string(),
                "private-key",
                &own.display().to_string(),
                "peer",
                other_pub,
                "allowed-ips",
                &allowed,
                "endpoint",
                &format!("{endpoint}:{WG_PORT}"),
            ]);
        }
    }

    /// A PPP link: the gateway's `pppd` runs the peer's (in the peer's namespace) over a pty
    /// (`pty`/`notty`); waits until IPCP has put the addresses on both `ppp0`s.
    fn ppp(&mut self) {
        // No compression, no VJ header compression, no echo: the datagrams cross as they are.
        // The pty command runs under /bin/sh, which in the matrix's VMs is busybox: its own `ip`
        // applet shadows iproute2's (no `ip netns exec`), so nsenter.
        let common = "nodetach noauth local unit 0 nodefaultroute nodeflate nobsdcomp noccp novj \
                      lcp-echo-interval 0 maxfail 1";
        let peer_cmd = format!(
            "nsenter --net=/run/netns/{} pppd {common} notty {PEER_PPP}:{GW_INNER}",
            self.peer
        );
        let log = File::create(self.dir.join("pppd.log")).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.gw))
            .arg("--")
            .arg("pppd")
            .args(common.split_whitespace())
            .arg(format!("{GW_INNER}:{PEER_PPP}"))
            .arg("pty")
            .arg(peer_cmd)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting pppd (package ppp): {e}"));
        self.pppd = Some(child);
        let has = |ns: &str, addr: Ipv4Addr| {
            Command::new("ip")
                .args(["-n", ns, "-4", "addr", "show", "dev", "ppp0"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("inet {addr} ")))
                .unwrap_or(false)
        };
        let start = Instant::now();
        while !(has(&self.gw, GW_INNER) && has(&self.peer, PEER_PPP)) {
            let log = || std::fs::read_to_string(self.dir.join("pppd.log")).unwrap_or_default();
            if let Some(s) = self.pppd.as_mut().unwrap().try_wait().unwrap() {
                panic!("pppd exited ({s}) before IPCP was up:\n{}", log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "PPP link not up within 60 s:\n{}",
                log()
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    /// `embargo run` on the gateway's tunnel, role outside, without pins; waits until it answers.
    fn start_agent(&mut self) {
        let config = self.dir.join("embargo.toml");
        std::fs::write(&config, config_text()).unwrap();
        let log = File::create(self.dir.join("agent.log")).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.gw))
            .arg("--")
            .arg(lab::embargo_bin().unwrap())
            .arg("run")
            .arg("--config")
            .arg(&config)
            .arg("--interface")
            .arg(format!("{}:outside", self.gw_dev))
            .arg("--no-pin")
            .arg("--control-socket")
            .arg(self.socket())
            .arg("--audit-log")
            .arg(self.dir.join("audit.jsonl"))
            .arg("--events-log")
            .arg(self.dir.join("events.jsonl"))
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agent = Some(child);
        let start = Instant::now();
        while embargo::observe::status::query(&self.socket()).is_err() {
            if let Some(s) = self.agent.as_mut().unwrap().try_wait().unwrap() {
                panic!("embargo run exited ({s}):\n{}", self.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no status within 30 s:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// Sends COUNT datagrams from `src` (the peer) to the gateway's inner address through the
    /// tunnel: how many arrived.
    fn send(&self, src: Ipv4Addr) -> u64 {
        let rx = in_netns(&self.gw, || UdpSocket::bind((GW_INNER, PORT)))
            .unwrap()
            .unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let tx = in_netns(&self.peer, || UdpSocket::bind((src, 0)))
            .unwrap()
            .unwrap();
        let to = SocketAddr::from((GW_INNER, PORT));
        for _ in 0..COUNT {
            tx.send_to(b"embargo-tunnel-probe", to).unwrap();
        }
        let mut got = 0;
        let mut buf = [0u8; 64];
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && got < COUNT {
            if let Ok((n, from)) = rx.recv_from(&mut buf)
                && &buf[..n] == b"embargo-tunnel-probe"
                && from.ip() == src
            {
                got += 1;
            }
        }
        got
    }
}

fn enforced_on(kind: Kind) {
    let mut t = TunnelLab::new(kind);
    // The tunnel carries traffic before the agent starts.
    assert_eq!(
        t.send(LISTED),
        COUNT,
        "{kind:?}: the tunnel works without the agent"
    );
    t.start_agent();
    assert_eq!(
        t.send(LISTED),
        0,
        "{kind:?}: listed source dropped\n{}",
        t.log()
    );
    assert_eq!(
        t.send(UNLISTED),
        COUNT,
        "{kind:?}: unlisted source delivered\n{}",
        t.log()
    );
    let status = embargo::observe::status::query(&t.socket()).unwrap();
    assert_eq!(
        counter(&status, ENTITY, "inbound", "dropped").map(|c| c.0),
        Some(COUNT),
        "{kind:?}: every listed datagram counted against the entity: {:?}",
        status.entities
    );
    let iface = status
        .interfaces
        .iter()
        .find(|i| i.name == t.gw_dev)
        .unwrap_or_else(|| panic!("{} attached", t.gw_dev));
    assert_eq!(iface.mode, "generic", "{kind:?}: {iface:?}");
}

#[test]
#[ignore = "needs the gre module (not in the host kernel): run by `cargo xtask matrix`"]
fn gre_uplink_is_enforced() {
    enforced_on(Kind::Gre);
}

#[test]
#[ignore = "needs the ipip module (not in the host kernel): run by `cargo xtask matrix`"]
fn ipip_uplink_is_enforced() {
    enforced_on(Kind::Ipip);
}

#[test]
#[ignore = "needs the wireguard module and `wg` (not in the host kernel): run by `cargo xtask matrix`"]
fn wireguard_uplink_is_enforced() {
    enforced_on(Kind::Wireguard);
}

#[test]
#[ignore = "needs the ppp_generic and ppp_async modules and `pppd` (not in the host kernel): run by `cargo xtask matrix`"]
fn ppp_uplink_is_enforced() {
    enforced_on(Kind::Ppp);
}

#[test]
#[ignore = "needs the 8021q module (not in the host kernel): run by `cargo xtask matrix`"]
fn vlan_subinterface_uplink_is_enforced() {
    enforced_on(Kind::Vlan);
}

#[test]
#[ignore = "needs the bonding module (not in the host kernel): run by `cargo xtask matrix`"]
fn bond_uplink_is_enforced() {
    enforced_on(Kind::Bond);
}
