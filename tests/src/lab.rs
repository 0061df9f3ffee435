//! A throwaway network-namespace lab for running the real `embargo` binary against real packets.
//!
//! ```text
//!   <prefix>-cli namespace                      <prefix>-gw namespace
//!   ┌──────────────────────────┐  veth pair  ┌───────────────────────────────────────┐
//!   │ <prefix>c0 198.18.0.2/30 ├─────────────┤ <prefix>g0 198.18.0.1/30  ← embargo  │
//!   │            fd00:e3b::2   │             │            fd00:e3b::1     attaches   │
//!   │ routes: each remote via  │             │ lo: every "remote" address under test │
//!   │   198.18.0.1/fd00:e3b::1 │             │     (blocked and allowed), /32 /128   │
//!   │ lo: "client remotes", for│             │ routes: each client remote via        │
//!   │   what the gateway sends │             │   198.18.0.2/fd00:e3b::2              │
//!   └──────────────────────────┘             └───────────────────────────────────────┘
//! ```
//!
//! Traffic normally goes client → gateway ([`Lab::probe`]), through the XDP program on the
//! gateway's veth. For host egress it goes the other way ([`Lab::probe_from_gw`]): sockets of
//! the gateway itself send to client remotes ([`Lab::add_client_remote`]), through the TC egress
//! classifier on the same veth, and the client delivers them to its `lo`.
//!
//! Blocked addresses are real public ones, so the lab is built so that nothing can leave the
//! machine: both ends of the veth are created directly inside the lab's namespaces (nothing lab
//! related exists in the root namespace, so nothing there routes to it); forwarding is off in
//! both namespaces (globally and per interface); both have blackhole default routes for IPv4 and
//! IPv6. A datagram the XDP program passes is delivered to a socket listening on the gateway's
//! `lo` (or, sent by the gateway, on the client's) and never routed anywhere.
//! [`Lab::check_contained`] verifies all of that.
//!
//! Neighbour entries are static on both sides, so no ARP or neighbour discovery crosses the
//! veth: what the XDP program sees is the test's datagrams plus a little IPv6 multicast noise
//! (MLD). Names carry the pid and a per-process counter, so parallel runs do not clash; `Drop`
//! deletes the namespaces (the veth goes with them), also when a test panics. Labs left by a
//! killed process are swept by the next [`Lab::new`].
//!
//! Besides the agent ([`Lab::start_agent`]), other servers can run in the gateway namespace in
//! the background ([`Lab::spawn_in_gw`], stopped on drop) and be queried on its loopback
//! ([`Lab::http_get`]).
//!
//! Uplinks that are not plain Ethernet: [`Lab::add_tun`] gives the gateway a layer-3 tun
//! device whose other end is a file descriptor of the test ([`Tun`]): what the test writes is
//! received by the gateway on the tun (its XDP program runs on it), and what the gateway sends
//! out of the tun is read back by the test. It adds a third interface to the gateway, so
//! [`Lab::check_contained`] is for before it; the tun's routes lead only to the test's fd.

use std::{
    collections::BTreeSet,
    fmt,
    fs::File,
    io::ErrorKind,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use embargo::{config::Role, observe::status::Status};

/// The gateway's lab address (198.18.0.0/15 is benchmarking space, RFC 2544).
pub const GW_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The client's lab address.
pub const CLI_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The gateway's lab IPv6 address (fd00:e3b::/64, unique-local).
pub const GW_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xe3b, 0, 0, 0, 0, 0, 1);
/// The client's lab IPv6 address.
pub const CLI_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xe3b, 0, 0, 0, 0, 0, 2);
/// Fixed, locally administered MACs (each lab is its own L2 segment).
const GW_MAC: &str = "02:e3:b0:00:00:01";
const CLI_MAC: &str = "02:e3:b0:00:00:02";

/// UDP payload bytes of every probe datagram.
pub const PAYLOAD_LEN: usize = 64;
/// How long the receiver waits after the last datagram was sent before counting.
pub const SETTLE: Duration = Duration::from_millis(300);
const MAGIC: &[u8; 16] = b"embargo-lab-prb:";
const NETNS_DIR: &str = "/run/netns";
const NAME_PREFIX: &str = "emb";

/// What went wrong while building, using or tearing down a lab; the message says it all.
pub struct LabError(String);

impl LabError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Debug prints the message as is, so `.unwrap()` in a test shows a command's stderr readably.
impl fmt::Debug for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LabError {}

pub type Result<T, E = LabError> = std::result::Result<T, E>;

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// Two namespaces joined by a veth pair; see the module documentation.
pub struct Lab {
    prefix: String,
    cli: String,
    gw: String,
    cli_if: String,
    gw_if: String,
    dir: PathBuf,
    remotes: Mutex<BTreeSet<IpAddr>>,
    sources: Mutex<BTreeSet<IpAddr>>,
    client_remotes: Mutex<BTreeSet<IpAddr>>,
}

impl Lab {
    /// Builds a lab: namespaces, veth, addresses, static neighbours, and the containment
    /// ([`Lab::seal`]), then checks it ([`Lab::check_contained`]). Needs root.
    pub fn new() -> Result<Self> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(LabError::new(
                "the netns lab needs root (network namespaces, veth, XDP); run as root",
            ));
        }
        sweep_stale();
        let pid = std::process::id();
        let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        // Interface names are at most 15 bytes: "emb" + pid (<= 7 digits) + "n" + n + "c0".
        let prefix = format!("{NAME_PREFIX}{pid}n{n}");
        let dir = std::env::temp_dir().join(format!("embargo-lab-{pid}-{n}"));
        let lab = Lab {
            cli: format!("{prefix}-cli"),
            gw: format!("{prefix}-gw"),
            cli_if: format!("{prefix}c0"),
            gw_if: format!("{prefix}g0"),
            prefix,
            dir,
            remotes: Mutex::new(BTreeSet::new()),
            sources: Mutex::new(BTreeSet::new()),
            client_remotes: Mutex::new(BTreeSet::new()),
        };
        if lab.gw_if.len() > 15 {
            return Err(LabError::new(format!(
                "interface name {} is too long",
                lab.gw_if
            )));
        }
        // From here on `lab` exists, so a failure drops it and removes whatever was created.
        lab.build()?;
        Ok(lab)
    }

    fn build(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| LabError::new(format!("creating {}: {e}", self.dir.display())))?;
        run(Command::new("ip").args(["netns", "add", &self.cli]))?;
        run(Command::new("ip").args(["netns", "add", &self.gw]))?;
        // Defaults first, so the veth is born with them (no DAD, no RA, no forwarding).
        for ns in [&self.cli, &self.gw] {
            set_sysctls(
                ns,
                &[
                    ("net/ipv4/ip_forward", "0"),
                    ("net/ipv4/conf/all/forwarding", "0"),
                    ("net/ipv4/conf/default/forwarding", "0"),
                    ("net/ipv6/conf/all/forwarding", "0"),
                    ("net/ipv6/conf/default/forwarding", "0"),
                    // The outside role sends from addresses the gateway has no route back to.
                    ("net/ipv4/conf/all/rp_filter", "0"),
                    ("net/ipv4/conf/default/rp_filter", "0"),
                    ("net/ipv6/conf/all/accept_dad", "0"),
                    ("net/ipv6/conf/default/accept_dad", "0"),
                    ("net/ipv6/conf/default/dad_transmits", "0"),
                    ("net/ipv6/conf/all/accept_ra", "0"),
                    ("net/ipv6/conf/default/accept_ra", "0"),
                    ("net/ipv6/conf/default/router_solicitations", "0"),
                ],
            )?;
        }
        // Both ends are created inside the lab: the veth never exists in the root namespace.
        self.ip(
            &self.cli,
            &format!(
                "link add {} address {CLI_MAC} type veth peer name {} address {GW_MAC} netns {}",
                self.cli_if, self.gw_if, self.gw
            ),
        )?;
        for (ns, dev, v4, v6) in [
            (&self.cli, &self.cli_if, CLI_V4, CLI_V6),
            (&self.gw, &self.gw_if, GW_V4, GW_V6),
        ] {
            self.ip_in(ns, &["addr", "add", &format!("{v4}/30"), "dev", dev])?;
            self.ip_in(
                ns,
                &["addr", "add", &format!("{v6}/64"), "dev", dev, "nodad"],
            )?;
            self.ip_in(ns, &["link", "set", "lo", "up"])?;
            self.ip_in(ns, &["link", "set", dev, "up"])?;
        }
        for (ns, dev, v4, v6, mac) in [
            (&self.cli, &self.cli_if, GW_V4, GW_V6, GW_MAC),
            (&self.gw, &self.gw_if, CLI_V4, CLI_V6, CLI_MAC),
        ] {
            for addr in [v4.to_string(), v6.to_string()] {
                self.ip(
                    ns,
                    &format!("neigh replace {addr} lladdr {mac} dev {dev} nud permanent"),
                )?;
            }
        }
        self.seal()?;
        self.check_contained()
    }

    /// Makes sure nothing can leave the lab: forwarding off in both namespaces (globally and on
    /// every lab interface) and blackhole default routes for IPv4 and IPv6 in both. Idempotent.
    pub fn seal(&self) -> Result<()> {
        for (ns, dev) in [(&self.cli, &self.cli_if), (&self.gw, &self.gw_if)] {
            let mut keys = forwarding_keys(dev);
            keys.push(format!("net/ipv4/conf/{dev}/rp_filter"));
            let settings: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "0")).collect();
            set_sysctls(ns, &settings)?;
            self.ip_in(ns, &["-4", "route", "replace", "blackhole", "default"])?;
            self.ip_in(ns, &["-6", "route", "replace", "blackhole", "default"])?;
        }
        Ok(())
    }

    /// Checks the containment [`Lab::seal`] sets up, plus: each lab namespace holds only `lo`
    /// and its veth end, and no lab interface exists in the root namespace. Every violation is
    /// listed in the error.
    pub fn check_contained(&self) -> Result<()> {
        let mut problems = Vec::new();
        // Host routes may go via the other end of the veth only: the client's remotes via the
        // gateway, the gateway's client remotes via the client.
        for (ns, dev, peer) in [
            (
                &self.cli,
                &self.cli_if,
                [GW_V4.to_string(), GW_V6.to_string()],
            ),
            (
                &self.gw,
                &self.gw_if,
                [CLI_V4.to_string(), CLI_V6.to_string()],
            ),
        ] {
            let keys = forwarding_keys(dev);
            let values = read_sysctls(ns, &keys)?;
            for (key, value) in keys.iter().zip(values) {
                if value != "0" {
                    problems.push(format!("{ns}: {key} is {value}, not 0"));
                }
            }
            // The main table: the default route is a blackhole, and every other route stays on
            // the lab veth (on-link, or host routes via the other end).
            for family in ["-4", "-6"] {
                let out = self.ip_in(ns, &["-j", family, "route", "show", "table", "main"])?;
                let routes: serde_json::Value = serde_json::from_str(&out)
                    .map_err(|e| LabError::new(format!("`ip -j route show` output: {e}: {out}")))?;
                let mut blackhole_default = false;
                for r in routes.as_array().into_iter().flatten() {
                    let field = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or("");
                    let gateway_ok = match field("gateway") {
                        "" => true,
                        gw => peer.iter().any(|p| p == gw),
                    };
                    if field("dst") == "default" {
                        if field("type") == "blackhole" {
                            blackhole_default = true;
                        } else {
                            problems.push(format!("{ns}: {family} default route {r}"));
                        }
                    } else if field("type") == "blackhole" {
                        // A blackhole for a narrower destination keeps traffic in as well.
                    } else if field("dev") == "lo" && field("gateway").is_empty() {
                        // An IPv6 address on `lo` (a remote) gets a main-table route to `lo`:
                        // delivered in the namespace, it goes nowhere.
                    } else if field("dev") != dev.as_str() || !gateway_ok {
                        problems.push(format!("{ns}: {family} route leaves the lab veth: {r}"));
                    }
                }
                if !blackhole_default {
                    problems.push(format!("{ns}: no {family} blackhole default route"));
                }
            }
            let mut links = link_names(&self.ip_in(ns, &["-j", "link", "show"])?)?;
            links.sort();
            let mut expected = vec!["lo".to_owned(), dev.clone()];
            expected.sort();
            if links != expected {
                problems.push(format!(
                    "{ns}: interfaces are {links:?}, expected {expected:?}"
                ));
            }
        }
        let root = link_names(&run(Command::new("ip").args(["-j", "link", "show"]))?)?;
        for name in root {
            if name.starts_with(&self.prefix) {
                problems.push(format!("lab interface {name} exists in the root namespace"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LabError::new(format!(
                "the lab is not contained:\n  {}",
                problems.join("\n  ")
            )))
        }
    }

    /// The client namespace's name.
    pub fn cli_ns(&self) -> &str {
        &self.cli
    }

    /// The gateway namespace's name.
    pub fn gw_ns(&self) -> &str {
        &self.gw
    }

    /// The client's veth end.
    pub fn cli_if(&self) -> &str {
        &self.cli_if
    }

    /// The gateway's veth end, where embargo attaches.
    pub fn gw_if(&self) -> &str {
        &self.gw_if
    }

    /// The lab's scratch directory (configs, control socket, agent logs); removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The gateway's lab address of `addr`'s family.
    pub fn gw_addr_like(addr: IpAddr) -> IpAddr {
        match addr {
            IpAddr::V4(_) => GW_V4.into(),
            IpAddr::V6(_) => GW_V6.into(),
        }
    }

    /// Makes `addr` a "remote": a local address on the gateway's `lo`, reached from the client
    /// through the veth. Idempotent.
    pub fn add_remote(&self, addr: IpAddr) -> Result<()> {
        if !self.remotes.lock().expect("not poisoned").insert(addr) {
            return Ok(());
        }
        let (host, via) = match addr {
            IpAddr::V4(_) => (format!("{addr}/32"), GW_V4.to_string()),
            IpAddr::V6(_) => (format!("{addr}/128"), GW_V6.to_string()),
        };
        self.ip_in(&self.gw, &["addr", "add", &host, "dev", "lo", "nodad"])?;
        self.ip_in(
            &self.cli,
            &["route", "add", &host, "via", &via, "dev", &self.cli_if],
        )?;
        Ok(())
    }

    /// Adds `addr` to the client's veth so the client can send from it (the `outside` role
    /// matches sources). Idempotent.
    pub fn add_client_source(&self, addr: IpAddr) -> Result<()> {
        if !self.sources.lock().expect("not poisoned").insert(addr) {
            return Ok(());
        }
        let host = match addr {
            IpAddr::V4(_) => format!("{addr}/32"),
            IpAddr::V6(_) => format!("{addr}/128"),
        };
        self.ip_in(
            &self.cli,
            &["addr", "add", &host, "dev", &self.cli_if, "nodad"],
        )?;
        Ok(())
    }

    /// Makes `addr` a "client remote", for traffic the gateway itself sends: a local address on
    /// the client's `lo`, reached from the gateway through the veth (a host route via the
    /// client's lab address). Forwarding stays off: the client delivers it locally. Idempotent.
    pub fn add_client_remote(&self, addr: IpAddr) -> Result<()> {
        if !self
            .client_remotes
            .lock()
            .expect("not poisoned")
            .insert(addr)
        {
            return Ok(());
        }
        let (host, via) = match addr {
            IpAddr::V4(_) => (format!("{addr}/32"), CLI_V4.to_string()),
            IpAddr::V6(_) => (format!("{addr}/128"), CLI_V6.to_string()),
        };
        self.ip_in(&self.cli, &["addr", "add", &host, "dev", "lo", "nodad"])?;
        self.ip_in(
            &self.gw,
            &["route", "add", &host, "via", &via, "dev", &self.gw_if],
        )?;
        Ok(())
    }

    /// Sends `count` UDP datagrams per probe from the client and counts, per probe, how many
    /// reached a socket listening on the probe's destination in the gateway. Destinations must
    /// be remotes ([`Lab::add_remote`]) or the gateway's lab addresses; sources must be the
    /// client's lab address (`None`) or added with [`Lab::add_client_source`].
    pub fn probe(&self, probes: &[Probe], count: usize) -> Result<Vec<ProbeResult>> {
        self.probe_between(&self.cli, &self.gw, probes, count)
    }

    /// The other way round: sends from sockets of the gateway itself (the host's own traffic,
    /// which leaves through its veth) and counts what reached a socket listening on the
    /// probe's destination in the client. Destinations must be client remotes
    /// ([`Lab::add_client_remote`]); sources must be `None` (the kernel picks the gateway's
    /// lab address).
    pub fn probe_from_gw(&self, probes: &[Probe], count: usize) -> Result<Vec<ProbeResult>> {
        self.probe_between(&self.gw, &self.cli, probes, count)
    }

    /// Sends from namespace `from`, receives in namespace `to`; see [`Lab::probe`].
    fn probe_between(
        &self,
        from: &str,
        to: &str,
        probes: &[Probe],
        count: usize,
    ) -> Result<Vec<ProbeResult>> {
        let (ports_tx, ports_rx) = std::sync::mpsc::channel::<Result<Vec<u16>>>();
        let (sent_tx, sent_rx) = std::sync::mpsc::channel::<()>();
        // Named for the usual direction: `gw` receives, `cli` sends.
        let gw = to.to_owned();
        let cli = from.to_owned();
        let received = thread::scope(|s| -> Result<Vec<usize>> {
            let receiver = s.spawn(move || -> Result<Vec<usize>> {
                let sockets = match in_this_thread_netns(&gw).and_then(|()| {
                    probes
                        .iter()
                        .map(|p| {
                            UdpSocket::bind(SocketAddr::new(p.dst, 0)).map_err(|e| {
                                LabError::new(format!("{gw}: binding UDP to {}: {e}", p.dst))
                            })
                        })
                        .collect::<Result<Vec<_>>>()
                }) {
                    Ok(s) => s,
                    Err(e) => {
                        let message = e.to_string();
                        let _ = ports_tx.send(Err(e));
                        return Err(LabError::new(message));
                    }
                };
                let ports = sockets
                    .iter()
                    .map(|s| s.local_addr().map(|a| a.port()))
                    .collect::<std::io::Result<Vec<_>>>()
                    .map_err(|e| LabError::new(format!("reading a bound port: {e}")))?;
                let _ = ports_tx.send(Ok(ports));
                // Sent or the sender gave up (the channel closed): count what arrived either way.
                let _ = sent_rx.recv();
                thread::sleep(SETTLE);
                sockets.iter().map(drain).collect()
            });
            let ports = match ports_rx.recv() {
                Ok(Ok(ports)) => ports,
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return receiver
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p));
                }
            };
            let sender = s.spawn(move || -> Result<()> {
                in_this_thread_netns(&cli)?;
                for (i, (p, port)) in probes.iter().zip(&ports).enumerate() {
                    let src = p.src.unwrap_or_else(|| unspecified_like(p.dst));
                    let socket = UdpSocket::bind(SocketAddr::new(src, 0))
                        .map_err(|e| LabError::new(format!("{cli}: binding UDP to {src}: {e}")))?;
                    for seq in 0..count {
                        let payload = payload(i, seq);
                        socket
                            .send_to(&payload, SocketAddr::new(p.dst, *port))
                            .map_err(|e| {
                                LabError::new(format!(
                                    "{cli}: sending from {src} to {}: {e}",
                                    p.dst
                                ))
                            })?;
                    }
                }
                Ok(())
            });
            let sent = sender
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            drop(sent_tx);
            let received = receiver
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            sent?;
            received
        })?;
        Ok(probes
            .iter()
            .zip(received)
            .map(|(p, received)| ProbeResult {
                probe: *p,
                sent: count,
                received,
            })
            .collect())
    }

    /// `ip -n <ns>` with `line` split on whitespace, returning stdout.
    fn ip(&self, ns: &str, line: &str) -> Result<String> {
        self.ip_in(ns, &line.split_whitespace().collect::<Vec<_>>())
    }

    /// `ip -n <ns> ARGS`, returning stdout.
    pub fn ip_in(&self, ns: &str, args: &[&str]) -> Result<String> {
        run(Command::new("ip").arg("-n").arg(ns).args(args))
    }

    /// Whether an XDP program is attached to the gateway's veth (per `ip -j link show`).
    pub fn xdp_attached(&self) -> Result<bool> {
        let out = self.ip_in(&self.gw, &["-j", "link", "show", "dev", &self.gw_if])?;
        let v: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| LabError::new(format!("`ip -j link show` output: {e}: {out}")))?;
        Ok(v.get(0).and_then(|l| l.get("xdp")).is_some())
    }

    /// Names of the TC programs at the gateway veth's egress: TCX links (queried through the
    /// kernel, where it has TCX: before 6.6 the query fails) and `cls_bpf` filters on a `clsact`
    /// qdisc (per `tc -j filter show`).
    pub fn egress_programs(&self) -> Result<Vec<String>> {
        let gw_if = self.gw_if.clone();
        let has_tcx =
            embargo::dataplane::TcApi::for_running_kernel() == embargo::dataplane::TcApi::Tcx;
        let mut names = if !has_tcx {
            Vec::new()
        } else {
            in_netns(&self.gw, move || {
                aya::programs::SchedClassifier::query_tcx(
                    &gw_if,
                    aya::programs::TcAttachType::Egress,
                )
                .map_err(|e| LabError::new(format!("querying TCX programs on {gw_if}: {e}")))
                .map(|(_, programs)| {
                    programs
                        .iter()
                        .map(|p| p.name_as_str().unwrap_or("?").to_owned())
                        .collect::<Vec<_>>()
                })
            })??
        };
        if self.has_clsact()? {
            let out = run(Command::new("tc").args([
                "-n",
                &self.gw,
                "-j",
                "filter",
                "show",
                "dev",
                &self.gw_if,
                "egress",
            ]))?;
            let v: serde_json::Value = serde_json::from_str(&out)
                .map_err(|e| LabError::new(format!("`tc -j filter show` output: {e}: {out}")))?;
            names.extend(
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f.get("options")?.get("bpf_name")?.as_str())
                    .map(str::to_owned),
            );
        }
        Ok(names)
    }

    /// Whether the gateway veth's egress holds exactly one TC program, and it is Embargo's
    /// (the kernel keeps 15 bytes of a program's name: `embargo_tc_egre`; a netlink filter keeps
    /// the whole name).
    pub fn egress_is_embargo_alone(&self) -> Result<bool> {
        let egress = embargo_abi::programs::EGRESS;
        Ok(match self.egress_programs()?.as_slice() {
            [name] => egress.starts_with(name.as_str()) && name.len() >= egress.len().min(15),
            _ => false,
        })
    }

    /// Whether the gateway's veth has a `clsact` qdisc.
    pub fn has_clsact(&self) -> Result<bool> {
        let out = run(Command::new("tc").args([
            "-n",
            &self.gw,
            "-j",
            "qdisc",
            "show",
            "dev",
            &self.gw_if,
        ]))?;
        let v: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| LabError::new(format!("`tc -j qdisc show` output: {e}: {out}")))?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .any(|q| q.get("kind").and_then(|k| k.as_str()) == Some("clsact")))
    }

    /// Writes `text` to `name` in the lab directory and returns its path.
    pub fn write_file(&self, name: &str, text: &str) -> Result<PathBuf> {
        let path = self.dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| LabError::new(format!("writing {}: {e}", path.display())))?;
        Ok(path)
    }

    /// A command running the embargo binary inside the gateway namespace with `args`.
    ///
    /// It enters only the network namespace (`nsenter --net`), not a new mount namespace as
    /// `ip netns exec` does, so the agent sees the host's bpffs and its pins outlive it, as on a
    /// real gateway.
    pub fn embargo_in_gw(&self, args: &[&str]) -> Result<Command> {
        let bin = embargo_bin()?;
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={NETNS_DIR}/{}", self.gw))
            .arg("--")
            .arg(bin)
            .args(args);
        Ok(cmd)
    }

    /// The control socket path of this lab's agent.
    pub fn control_socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    /// The audit log of this lab's agent (never the system's `/var/lib/embargo`).
    pub fn audit_log(&self) -> PathBuf {
        self.dir.join("audit.jsonl")
    }

    /// The drop and monitor event log of this lab's agent (never the system's
    /// `/var/lib/embargo`).
    pub fn events_log(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }

    /// The bpffs folder this lab's agent pins its links in (never the system's).
    pub fn pin_dir(&self) -> PathBuf {
        let name = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Path::new("/sys/fs/bpf").join(name)
    }

    /// The folder of this lab's agent's state file (never the system's `/var/lib/embargo`).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Starts `embargo run --config CONFIG --interface <gw veth>:ROLE --control-socket ...
    /// --audit-log ... --events-log ...` inside the gateway namespace and waits until its status
    /// answers.
    pub fn start_agent(&self, config: &Path, role: Role) -> Result<Agent<'_>> {
        self.start_agent_with(config, role, &[])
    }

    /// As [`Lab::start_agent`], with `extra` arguments after the others (`--metrics-listen`).
    pub fn start_agent_with(&self, config: &Path, role: Role, extra: &[&str]) -> Result<Agent<'_>> {
        self.start_agent_on(
            config,
            &format!("{}:{role}", self.gw_if),
            &role.to_string(),
            extra,
        )
    }

    /// As [`Lab::start_agent`] with `--interface <gw veth>:outside:egress`: host egress on,
    /// so what the gateway itself sends out of its veth is matched by destination too.
    pub fn start_agent_egress(&self, config: &Path) -> Result<Agent<'_>> {
        self.start_agent_on(
            config,
            &format!("{}:outside:egress", self.gw_if),
            "outside-egress",
            &[],
        )
    }

    /// As [`Lab::start_agent_with`], with the command passed through `wrap` first (which must
    /// exec it, so the child's pid stays the agent's): e.g. `unshare -m` for a mount namespace
    /// of its own.
    pub fn start_agent_wrapped(
        &self,
        config: &Path,
        role: Role,
        extra: &[&str],
        wrap: &dyn Fn(Command) -> Command,
    ) -> Result<Agent<'_>> {
        self.start_agent_as(
            config,
            &format!("{}:{role}", self.gw_if),
            &role.to_string(),
            extra,
            wrap,
            true,
        )
    }

    /// Starts the agent with `--interface IFACE` (any interface of the gateway, e.g. a tun of
    /// [`Lab::add_tun`], with `:role[:mode][:egress]`), logging to `agent-<label>.log`.
    pub fn start_agent_on(
        &self,
        config: &Path,
        iface: &str,
        label: &str,
        extra: &[&str],
    ) -> Result<Agent<'_>> {
        self.start_agent_as(config, iface, label, extra, &|c| c, true)
    }

    /// As [`Lab::start_agent`] without `--events-log`: events go where the configuration's
    /// `[events]` says, which must then be a path in the lab folder or `output = "none"` (never
    /// the system's `/var/lib/embargo`).
    pub fn start_agent_config_events(&self, config: &Path, role: Role) -> Result<Agent<'_>> {
        self.start_agent_as(
            config,
            &format!("{}:{role}", self.gw_if),
            &role.to_string(),
            &[],
            &|c| c,
            false,
        )
    }

    /// [`Lab::start_agent_on`] with the command passed through `wrap`; `--events-log` (the lab's)
    /// unless `events_flag` is false.
    fn start_agent_as(
        &self,
        config: &Path,
        iface: &str,
        label: &str,
        extra: &[&str],
        wrap: &dyn Fn(Command) -> Command,
        events_flag: bool,
    ) -> Result<Agent<'_>> {
        let socket = self.control_socket();
        let log = self.dir.join(format!("agent-{label}.log"));
        let iface = iface.to_owned();
        let mut args = vec![
            "run".to_owned(),
            "--config".to_owned(),
            config.display().to_string(),
            "--interface".to_owned(),
            iface,
            "--control-socket".to_owned(),
            socket.display().to_string(),
            "--audit-log".to_owned(),
            self.audit_log().display().to_string(),
            "--pin-dir".to_owned(),
            self.pin_dir().display().to_string(),
            "--state-dir".to_owned(),
            self.state_dir().display().to_string(),
        ];
        if events_flag {
            args.extend([
                "--events-log".to_owned(),
                self.events_log().display().to_string(),
            ]);
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = spawn_logged(wrap(self.embargo_in_gw(&args)?), &log)?;
        let mut agent = Agent {
            lab: self,
            child: Some(child),
            socket,
            log,
        };
        agent.wait_ready(Duration::from_secs(20))?;
        Ok(agent)
    }

    /// Starts `program ARGS` inside the gateway namespace in the background, its stdout and
    /// stderr in `<lab dir>/<name>.log`. It gets SIGTERM when dropped (and when this process
    /// dies), see [`Background`].
    pub fn spawn_in_gw(&self, name: &str, program: &str, args: &[&str]) -> Result<Background> {
        let log = self.dir.join(format!("{name}.log"));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.gw, program]).args(args);
        let child = spawn_logged(cmd, &log)?;
        Ok(Background {
            name: name.to_owned(),
            child: Some(child),
            log,
        })
    }

    /// `GET path` over HTTP/1.0 to `addr` from inside the gateway namespace (its loopback is
    /// its own): the status code and the body.
    pub fn http_get(&self, addr: SocketAddr, path: &str) -> Result<(u16, String)> {
        in_netns(&self.gw, || http_get(addr, path))?
    }
}

/// Starts `cmd` with stdin closed and stdout and stderr in `log`. If this process dies without
/// running `Drop` (SIGKILL, abort), the child gets SIGTERM instead of running on in a namespace
/// nobody can name any more. The signal follows the spawning thread, so keep the handle on the
/// thread that started it.
fn spawn_logged(mut cmd: Command, log: &Path) -> Result<Child> {
    let out =
        File::create(log).map_err(|e| LabError::new(format!("creating {}: {e}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(|e| LabError::new(format!("{}: {e}", log.display())))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: prctl, getppid and kill are async-signal-safe; nothing is allocated here.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::kill(libc::getpid(), libc::SIGTERM);
            }
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| LabError::new(format!("starting {}: {e}", command_line(&cmd))))
}

/// A process started by [`Lab::spawn_in_gw`]: SIGTERM on drop, SIGKILL if it has not exited
/// 10 s later.
pub struct Background {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Background {
    /// What it wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An error if it has exited, with its log.
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => Ok(()),
            Some(Ok(Some(status))) => Err(LabError::new(format!(
                "{} exited ({status}); its log:\n{}",
                self.name,
                self.log()
            ))),
            Some(Err(e)) => Err(LabError::new(format!("waiting for {}: {e}", self.name))),
            None => Err(LabError::new(format!("{} was stopped", self.name))),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `ip netns exec` execs the program, so the child's pid is the program's.
            // SAFETY: kill with a pid we spawned and have not reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let start = Instant::now();
            while matches!(child.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(10)
            {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `GET path` over HTTP/1.0 (no chunked encoding; the server closes when done) to `addr` in
/// the calling thread's network namespace: the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let fail = |e: std::io::Error| LabError::new(format!("GET http://{addr}{path}: {e}"));
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(fail)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(fail)?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .map_err(fail)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(fail)?;
    let raw = String::from_utf8_lossy(&raw);
    let Some((head, body)) = raw.split_once("\r\n\r\n") else {
        return Err(LabError::new(format!(
            "GET http://{addr}{path}: no header end in {raw:?}"
        )));
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            LabError::new(format!(
                "GET http://{addr}{path}: bad status line in {head:?}"
            ))
        })?;
    Ok((status, body.to_owned()))
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.cli, &self.gw] {
            if Path::new(NETNS_DIR).join(ns).exists()
                && let Err(e) = run(Command::new("ip").args(["netns", "del", ns]))
            {
                eprintln!("lab teardown: {e}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(self.pin_dir());
    }
}

/// `TUNSETIFF` (`linux/if_tun.h`) and its flags: a layer-3 tun without packet information.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

impl Lab {
    /// Gives the gateway a layer-3 tun device, `<prefix>t0` (`ip tuntap add ... mode tun`), up,
    /// with no address, and opens its queue: see [`Tun`]. The device goes with the namespace.
    pub fn add_tun(&self) -> Result<Tun> {
        let name = format!("{}t0", self.prefix);
        self.ip_in(&self.gw, &["tuntap", "add", "dev", &name, "mode", "tun"])?;
        let file = in_netns(&self.gw, || open_tun(&name))??;
        self.ip_in(&self.gw, &["link", "set", &name, "up"])?;
        set_sysctls(
            &self.gw,
            &[(&format!("net/ipv4/conf/{name}/rp_filter"), "0")],
        )?;
        Ok(Tun { name, file })
    }

    /// Binds a UDP socket in the gateway namespace (to receive what reaches the gateway).
    pub fn udp_in_gw(&self, addr: SocketAddr) -> Result<UdpSocket> {
        in_netns(&self.gw, || UdpSocket::bind(addr))?
            .map_err(|e| LabError::new(format!("binding {addr} in {}: {e}", self.gw)))
    }
}

impl Lab {
    /// Sends raw Ethernet `frames` out of the client's veth end (an `AF_PACKET` socket in the
    /// client namespace), their destination MAC set to the gateway's: crafted frames the
    /// gateway receives as if from the wire (PPPoE sessions, say).
    pub fn send_frames_from_cli(&self, frames: &[Vec<u8>]) -> Result<()> {
        let sock = in_netns(&self.cli, || packet_socket(&self.cli_if, 0))??;
        let gw_mac = mac_bytes(GW_MAC);
        for f in frames {
            let mut f = f.clone();
            f[..6].copy_from_slice(&gw_mac);
            // SAFETY: a bound packet socket and a buffer of the given length.
            let n = unsafe { libc::send(sock.as_raw_fd(), f.as_ptr().cast(), f.len(), 0) };
            if n < 0 {
                return Err(LabError::new(format!(
                    "sending a frame out of {}: {}",
                    self.cli_if,
                    std::io::Error::last_os_error()
                )));
            }
        }
        Ok(())
    }

    /// A packet socket on the gateway's veth end receiving frames of `ethertype`: what the
    /// XDP program passed (it runs before any packet socket sees a frame). Read it with
    /// [`frames_within`].
    pub fn capture_in_gw(&self, ethertype: u16) -> Result<std::os::fd::OwnedFd> {
        in_netns(&self.gw, || packet_socket(&self.gw_if, ethertype))?
    }
}

/// The bytes of a MAC address written `02:e3:...`.
fn mac_bytes(mac: &str) -> [u8; 6] {
    let mut b = [0u8; 6];
    for (d, part) in b.iter_mut().zip(mac.split(':')) {
        *d = u8::from_str_radix(part, 16).expect("a valid MAC constant");
    }
    b
}

/// An `AF_PACKET` raw socket bound to `dev` of this thread's namespace, for `ethertype`
/// (0: bound for sending only, receives nothing).
fn packet_socket(dev: &str, ethertype: u16) -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd as _;
    let ifindex = embargo::dataplane::system::ifindex(dev)
        .ok_or_else(|| LabError::new(format!("no interface {dev}")))?;
    let proto = ethertype.to_be();
    // SAFETY: plain socket(2); checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(proto),
        )
    };
    if fd < 0 {
        return Err(LabError::new(format!(
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: a descriptor just returned by socket(2), owned by nothing else.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: `sockaddr_ll` is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = proto;
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: a valid socket and address of the given size.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        return Err(LabError::new(format!(
            "binding a packet socket to {dev}: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(sock)
}

/// Every frame `sock` (from [`Lab::capture_in_gw`]) receives within `window`.
pub fn frames_within(sock: &std::os::fd::OwnedFd, window: Duration) -> Result<Vec<Vec<u8>>> {
    let deadline = Instant::now() + window;
    let mut frames = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(frames);
        }
        let mut pfd = libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) } <= 0 {
            continue;
        }
        let mut buf = vec![0u8; 2048];
        // SAFETY: a valid socket and a buffer of the given length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n > 0 {
            buf.truncate(n as usize);
            frames.push(buf);
        }
    }
}

/// Opens the queue of tun device `name` of this thread's network namespace.
fn open_tun(name: &str) -> Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| LabError::new(format!("opening /dev/net/tun: {e}")))?;
    // SAFETY: `ifreq` is plain data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes().take(15)) {
        *dst = src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = IFF_TUN | IFF_NO_PI;
    // SAFETY: a /dev/net/tun descriptor and an `ifreq` naming the device, as TUNSETIFF takes.
    if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut ifr) } != 0 {
        return Err(LabError::new(format!(
            "TUNSETIFF {name}: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(file)
}

/// A tun device of the gateway and the test's end of it: each [`Tun::write`] is one packet
/// the gateway receives on the device; [`Tun::read_for`] collects what the gateway sent out of
/// it. Packets are bare IP (no link-layer header, no packet information).
pub struct Tun {
    pub name: String,
    file: File,
}

impl Tun {
    /// Hands the gateway one packet, received on the tun.
    pub fn write(&self, packet: &[u8]) -> Result<()> {
        use std::io::Write as _;
        (&self.file)
            .write_all(packet)
            .map_err(|e| LabError::new(format!("writing to {}: {e}", self.name)))
    }

    /// Every packet the gateway sends out of the tun within `window`.
    pub fn read_for(&self, window: Duration) -> Result<Vec<Vec<u8>>> {
        let deadline = Instant::now() + window;
        let mut packets = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(packets);
            }
            let mut pfd = libc::pollfd {
                fd: self.file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) };
            if n < 0 {
                return Err(LabError::new(format!(
                    "poll on {}: {}",
                    self.name,
                    std::io::Error::last_os_error()
                )));
            }
            if n == 0 {
                continue;
            }
            let mut buf = vec![0u8; 65_536];
            use std::io::Read as _;
            let len = (&self.file)
                .read(&mut buf)
                .map_err(|e| LabError::new(format!("reading from {}: {e}", self.name)))?;
            buf.truncate(len);
            packets.push(buf);
        }
    }
}

/// One datagram flow: from the client (`src`, or its lab address) to `dst` in the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub src: Option<IpAddr>,
    pub dst: IpAddr,
}

impl Probe {
    /// From the client's lab address to `dst`.
    pub fn to(dst: IpAddr) -> Self {
        Self { src: None, dst }
    }

    /// From `src` to the gateway's lab address of the same family.
    pub fn from(src: IpAddr) -> Self {
        Self {
            src: Some(src),
            dst: Lab::gw_addr_like(src),
        }
    }

    /// Bytes of one probe frame as XDP sees it: Ethernet + IP + UDP + payload.
    pub fn frame_len(&self) -> u64 {
        let ip = match self.dst {
            IpAddr::V4(_) => 20,
            IpAddr::V6(_) => 40,
        };
        (14 + ip + 8 + PAYLOAD_LEN) as u64
    }
}

/// What a probe did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeResult {
    pub probe: Probe,
    pub sent: usize,
    pub received: usize,
}

impl ProbeResult {
    /// Every datagram arrived.
    pub fn delivered(&self) -> bool {
        self.received == self.sent
    }

    /// No datagram arrived.
    pub fn blocked(&self) -> bool {
        self.received == 0
    }
}

/// The agent started by [`Lab::start_agent`]; killed on drop if not stopped.
pub struct Agent<'lab> {
    lab: &'lab Lab,
    child: Option<Child>,
    socket: PathBuf,
    log: PathBuf,
}

impl Agent<'_> {
    /// The agent's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// What the agent wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(LabError::new(format!(
                    "embargo run exited ({status}) before answering status; its log:\n{}",
                    self.log()
                )));
            }
            match embargo::observe::status::query(&self.socket) {
                Ok(_) => return Ok(()),
                Err(e) if start.elapsed() > timeout => {
                    return Err(LabError::new(format!(
                        "embargo run did not answer status within {timeout:?} ({e}); its log:\n{}",
                        self.log()
                    )));
                }
                Err(_) => thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// The agent's status, through its control socket.
    pub fn status(&self) -> Result<Status> {
        embargo::observe::status::query(&self.socket).map_err(|e| LabError::new(e.to_string()))
    }

    /// `embargo status --control-socket ...` as a person would run it: its stdout.
    pub fn status_text(&self) -> Result<String> {
        run(Command::new(embargo_bin()?)
            .arg("status")
            .arg("--control-socket")
            .arg(&self.socket))
    }

    /// `embargo status --json --control-socket ...`, parsed.
    pub fn status_json(&self) -> Result<Status> {
        let out = run(Command::new(embargo_bin()?)
            .args(["status", "--json", "--control-socket"])
            .arg(&self.socket))?;
        serde_json::from_str(&out)
            .map_err(|e| LabError::new(format!("`embargo status --json`: {e}: {out}")))
    }

    /// `kill -9`: the agent gets no chance to clean up. Returns its log.
    pub fn kill9(mut self) -> Result<String> {
        let Some(mut child) = self.child.take() else {
            return Err(LabError::new("the agent is not running"));
        };
        // SAFETY: kill with a pid we spawned and have not reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        wait_timeout(&mut child, Duration::from_secs(15))?;
        Ok(self.log())
    }

    /// SIGTERM and wait, checking only that it exited 0 (for `--keep-attached`). Returns its log.
    pub fn terminate(mut self) -> Result<String> {
        let Some(mut child) = self.child.take() else {
            return Err(LabError::new("the agent is not running"));
        };
        // SAFETY: kill with a pid we spawned and have not reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let status = wait_timeout(&mut child, Duration::from_secs(15))?;
        let log = self.log();
        if !status.success() {
            return Err(LabError::new(format!(
                "embargo run exited with {status}; its log:\n{log}"
            )));
        }
        Ok(log)
    }

    /// Stops the agent with SIGTERM and checks it exited 0, removed its control socket and
    /// left no XDP or TC egress program on the gateway's veth. Returns its log.
    pub fn stop(mut self) -> Result<String> {
        let Some(mut child) = self.child.take() else {
            return Err(LabError::new("the agent is not running"));
        };
        // `ip netns exec` execs the binary, so the child's pid is embargo's.
        // SAFETY: kill with a pid we spawned and have not reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let status = wait_timeout(&mut child, Duration::from_secs(15))?;
        let log = self.log();
        if !status.success() {
            return Err(LabError::new(format!(
                "embargo run exited with {status} after SIGTERM, not 0; its log:\n{log}"
            )));
        }
        if self.lab.xdp_attached()? {
            return Err(LabError::new(format!(
                "XDP is still attached to {} after embargo exited; its log:\n{log}",
                self.lab.gw_if
            )));
        }
        let tc = self.lab.egress_programs()?;
        if !tc.is_empty() {
            return Err(LabError::new(format!(
                "TC egress programs {tc:?} are still attached to {} after embargo exited; its \
                 log:\n{log}",
                self.lab.gw_if
            )));
        }
        if self.socket.exists() {
            return Err(LabError::new(format!(
                "embargo left its control socket {} behind",
                self.socket.display()
            )));
        }
        Ok(log)
    }
}

impl Drop for Agent<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Result<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LabError::new(format!(
                    "embargo run did not exit within {timeout:?} of SIGTERM; killed it"
                )));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(LabError::new(format!("waiting for embargo run: {e}"))),
        }
    }
}

/// The packets and bytes of `entity`'s counter row `direction` x `verdict` in `status`
/// (`None` if the entity or row is missing).
pub fn counter(
    status: &Status,
    entity: &str,
    direction: &str,
    verdict: &str,
) -> Option<(u64, u64)> {
    status
        .entities
        .iter()
        .find(|e| e.id == entity)?
        .counters
        .iter()
        .find(|c| c.direction == direction && c.verdict == verdict)
        .map(|c| (c.packets, c.bytes))
}

/// The value of outcome `label` in `status` (0 if absent).
pub fn outcome(status: &Status, label: &str) -> u64 {
    status
        .outcomes
        .iter()
        .find(|(l, _)| l == label)
        .map_or(0, |(_, n)| *n)
}

/// The `embargo` binary: `$EMBARGO_BIN`, else `embargo` in the cargo profile directory this
/// executable was built into (`target/<profile>/`, found by walking up from it).
pub fn embargo_bin() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("EMBARGO_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(LabError::new(format!(
                "EMBARGO_BIN={} is not a file",
                bin.display()
            )))
        };
    }
    let exe = std::env::current_exe()
        .map_err(|e| LabError::new(format!("finding the current executable: {e}")))?;
    // target/<profile>/deps/<test> or target/<profile>/<bin>.
    for dir in exe.ancestors().skip(1).take(3) {
        let bin = dir.join("embargo");
        if bin.is_file() {
            return Ok(bin);
        }
    }
    Err(LabError::new(format!(
        "no embargo binary next to {}: build it first (`cargo build --bin embargo`, same profile) \
         or set EMBARGO_BIN",
        exe.display()
    )))
}

/// Runs `cmd`; its stdout on success, else an error with the command line and its stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let line = command_line(cmd);
    let out: Output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::new(format!("running `{line}`: {e}")))?;
    if !out.status.success() {
        return Err(LabError::new(format!(
            "`{line}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `f` on a thread that has joined network namespace `ns` (setns is per thread).
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T> {
    thread::scope(|s| {
        s.spawn(|| {
            in_this_thread_netns(ns)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Moves the calling thread into network namespace `ns`. Only for threads spawned for it.
fn in_this_thread_netns(ns: &str) -> Result<()> {
    let path = Path::new(NETNS_DIR).join(ns);
    let file =
        File::open(&path).map_err(|e| LabError::new(format!("opening {}: {e}", path.display())))?;
    // SAFETY: a valid namespace fd; setns only changes this thread's network namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(LabError::new(format!(
            "setns into {ns}: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// The forwarding switches of a lab namespace whose veth end is `dev`.
fn forwarding_keys(dev: &str) -> Vec<String> {
    let mut keys = vec![
        "net/ipv4/ip_forward".to_owned(),
        "net/ipv4/conf/all/forwarding".to_owned(),
        "net/ipv4/conf/default/forwarding".to_owned(),
        "net/ipv6/conf/all/forwarding".to_owned(),
        "net/ipv6/conf/default/forwarding".to_owned(),
    ];
    for ifname in ["lo", dev] {
        keys.push(format!("net/ipv4/conf/{ifname}/forwarding"));
        keys.push(format!("net/ipv6/conf/{ifname}/forwarding"));
    }
    keys
}

fn set_sysctls(ns: &str, settings: &[(&str, &str)]) -> Result<()> {
    in_netns(ns, || {
        for (key, value) in settings {
            // /proc/sys/net shows the namespace of the thread that opens it.
            let path = Path::new("/proc/sys").join(key);
            std::fs::write(&path, value).map_err(|e| {
                LabError::new(format!("{ns}: setting {} = {value}: {e}", path.display()))
            })?;
        }
        Ok(())
    })?
}

fn read_sysctls(ns: &str, keys: &[String]) -> Result<Vec<String>> {
    in_netns(ns, || {
        keys.iter()
            .map(|key| {
                let path = Path::new("/proc/sys").join(key);
                std::fs::read_to_string(&path)
                    .map(|v| v.trim().to_owned())
                    .map_err(|e| LabError::new(format!("{ns}: reading {}: {e}", path.display())))
            })
            .collect()
    })?
}

/// The fallback devices the kernel creates in every new network namespace once the tunnel
/// modules are loaded (ip_gre, ipip, sit, ip6_tunnel, ip6_gre, ip_vti): down and without
/// addresses, they carry nothing.
const FALLBACK_TUNNELS: &[&str] = &[
    "gre0", "gretap0", "erspan0", "tunl0", "sit0", "ip6tnl0", "ip6gre0", "ip6_vti0", "ip_vti0",
];

/// The interface names in `ip -j link show` output, without the kernel's fallback tunnel
/// devices while they are down ([`FALLBACK_TUNNELS`]); one that is up stays in the list.
fn link_names(json: &str) -> Result<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| LabError::new(format!("`ip -j link show` output: {e}: {json}")))?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter(|l| {
            let name = l.get("ifname").and_then(|n| n.as_str()).unwrap_or("");
            let up = l
                .get("flags")
                .and_then(|f| f.as_array())
                .is_some_and(|f| f.iter().any(|x| x.as_str() == Some("UP")));
            up || !FALLBACK_TUNNELS.contains(&name)
        })
        .filter_map(|l| l.get("ifname")?.as_str().map(str::to_owned))
        .collect())
}

fn unspecified_like(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    }
}

fn payload(probe: usize, seq: usize) -> [u8; PAYLOAD_LEN] {
    let mut p = [0u8; PAYLOAD_LEN];
    p[..MAGIC.len()].copy_from_slice(MAGIC);
    p[16..24].copy_from_slice(&(probe as u64).to_be_bytes());
    p[24..32].copy_from_slice(&(seq as u64).to_be_bytes());
    p
}

/// Counts the probe datagrams waiting on `socket` without blocking.
fn drain(socket: &UdpSocket) -> Result<usize> {
    socket
        .set_nonblocking(true)
        .map_err(|e| LabError::new(format!("set_nonblocking: {e}")))?;
    let mut buf = [0u8; 2048];
    let mut n = 0;
    loop {
        match socket.recv(&mut buf) {
            Ok(len) if len == PAYLOAD_LEN && buf.starts_with(MAGIC) => n += 1,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(n),
            Err(e) => return Err(LabError::new(format!("recv: {e}"))),
        }
    }
}

/// Deletes namespaces and scratch directories left by labs whose process is gone (a killed
/// test run cannot run `Drop`).
fn sweep_stale() {
    let dead = |pid: &str| -> bool {
        !pid.is_empty()
            && pid.bytes().all(|b| b.is_ascii_digit())
            && !Path::new("/proc").join(pid).exists()
    };
    if let Ok(entries) = std::fs::read_dir(NETNS_DIR) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // emb<pid>n<n>-cli / -gw
            let Some(rest) = name.strip_prefix(NAME_PREFIX) else {
                continue;
            };
            let Some((id, role)) = rest.split_once('-') else {
                continue;
            };
            let Some((pid, n)) = id.split_once('n') else {
                continue;
            };
            if (role == "cli" || role == "gw") && n.bytes().all(|b| b.is_ascii_digit()) && dead(pid)
            {
                let _ = run(Command::new("ip").args(["netns", "del", &name]));
            }
        }
    }
    // Lab folders, and the pin folders (links, maps) of labs whose test was killed.
    for dir in [std::env::temp_dir(), PathBuf::from("/sys/fs/bpf")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("embargo-lab-") else {
                continue;
            };
            if let Some((pid, _)) = rest.split_once('-')
                && dead(pid)
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_tunnels_are_left_out_only_while_down() {
        let json = r#"[{"ifname":"lo","flags":["LOOPBACK","UP"]},
            {"ifname":"gre0","flags":["NOARP"]},
            {"ifname":"tunl0","flags":["NOARP","UP"]},
            {"ifname":"emb1n0g0","flags":["BROADCAST","UP"]}]"#;
        assert_eq!(
            link_names(json).unwrap(),
            ["lo", "tunl0", "emb1n0g0"].map(str::to_owned)
        );
    }
}
