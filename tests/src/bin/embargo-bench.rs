//! `embargo-bench`: what Embargo's XDP data plane costs per packet, and how long a policy takes
//! to load. Needs root (it loads BPF programs); run the release build:
//!
//! ```text
//! cargo run --release -p embargo-tests --bin embargo-bench -- [--quick] [--markdown FILE]
//! ```
//!
//! # What is measured
//!
//! * **ns per packet** of three XDP programs, on the same packets, in the same process run:
//!   - `XDP_DROP`: `bench_drop` from the bench object, the floor every XDP program pays (and the
//!     floor of `BPF_PROG_TEST_RUN`'s own loop);
//!   - `embargo`: the production program `embargo_xdp`, loaded by [`Dataplane::load_tables`]
//!     exactly as the agent loads it, with role `inside` set for ifindex 1 (`lo`) so it takes
//!     the destination-match path;
//!   - `kernel LPM`: `bench_lpm`, the same parser followed by the kernel's LPM trie maps filled
//!     with the same prefixes (the structure most XDP blocklists use), as a reference.
//!
//!   Each is measured for several prefix sets (1k, 100k and 1M IPv4 with 200, 20k and 200k IPv6),
//!   per family, over distinct destination addresses that hit a loaded prefix and addresses
//!   that miss every prefix, reported separately. For the largest set, `embargo`'s time is
//!   also broken down by how many trie entries each lookup reads (where the time goes).
//! * **Policy load time**: from a [`Policy`] in memory to tries built, maps created and filled
//!   and the program verified, end to end through [`Dataplane::load`], and split into trie
//!   build (`table::build_v4` / `build_v6`) and kernel load ([`Dataplane::load_tables`]: map
//!   creation, the mmap copy, the verifier). Also the kernel LPM trie's load time (one
//!   `BPF_MAP_UPDATE_ELEM` per prefix), for reference.
//!
//! With `--reload-state` it measures something else: what a 1-prefix reload of the 1M+200k set
//! costs, the in-place apply and keeping the restart state file up to date (format 1 as it was,
//! reproduced, and format 2 as the agent does it now); see [`reload_state`].
//!
//! With `--events` it measures what drop and monitor events cost a dropped packet: the same
//! blocked addresses with events off and on, interleaved; see [`events_on_off`].
//!
//! # Method
//!
//! `BPF_PROG_TEST_RUN` runs one packet `repeat` times and reports the average time per run in
//! whole nanoseconds (the kernel divides and truncates). So every address gets its own test runs
//! with `repeat` = R: P runs per address and program (`--passes`), of which the fastest is kept
//! (an interrupt or a neighbour on the VM only ever adds time), and the statistics (median,
//! mean, p99) are over addresses. The three programs are interleaved address by address,
//! rotating which goes first, so drift and noise from a busy machine hit them alike and the
//! ratio `embargo / XDP_DROP` (of the means, same addresses, same run) holds even when absolute
//! times wander. The process is pinned to one CPU.
//!
//! The programs are attached (driver mode, through BPF links) to veth devices in a private
//! network namespace of the bench's own, which keeps them in the kernel's XDP dispatcher:
//! otherwise every test run with `repeat` > 1 adds the program to the dispatcher and takes it
//! out again, two RCU grace periods each, tens of milliseconds. The packets still come from
//! `BPF_PROG_TEST_RUN` only; the veths carry no traffic. In that namespace `lo` is ifindex 1.
//!
//! Every verdict is checked: a hit must return `XDP_DROP`, a miss `XDP_PASS` (both for
//! `embargo` and the LPM reference), and the production program's match/miss stats must
//! account for exactly the runs made; hits and misses are classified beforehand with the
//! user-space lookup on the very tables that were loaded. So the numbers are for the real
//! classification path, not a short cut.
//!
//! Since a test run repeats one packet, the trie entries it reads are in cache after the
//! first repetition: these are hot-cache costs per lookup. Traffic spread over many
//! destinations also pays cache misses on the trie levels (the LPM trie pays one per level it
//! walks, the stride trie one per level: 1 to 3 for IPv4).
//!
//! Prefix sets are generated deterministically (splitmix64, fixed seed; see [`gen_v4`] and
//! [`gen_v6`] and the generation summary the bench prints). Smaller sets are the first `n`
//! prefixes of the 1M/200k lists, so each set contains the previous one.

use std::{
    collections::HashSet,
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd as _, AsRawFd as _, RawFd},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use aya::{
    Ebpf, EbpfLoader,
    maps::lpm_trie::{Key, LpmTrie},
    programs::Xdp,
};
use clap::{ArgAction, Parser};
use embargo::{
    config::{Action, DirectionSet},
    dataplane::{
        BENCH_OBJECT, Dataplane, state,
        trie::{
            build::{self, Table},
            live::PrefixLog,
        },
    },
    policy::{EntityIndex, EntityInfo, Policy},
};
use embargo_abi::{Direction, IfaceRole, Stat, Verdict, programs};
use embargo_tests::{packet::Frame, rng::Rng};
use ipnetwork::{Ipv4Network, Ipv6Network};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
/// `lo`: always present, one RX queue; the kernel resolves `ingress_ifindex` to a device.
const LO_IFINDEX: u32 = 1;
const SEED: u64 = 0x0e3b_a560_5eed_2024;
/// Entities the generated prefixes are spread over (all `drop`, both directions).
const ENTITIES: u32 = 256;

// ---------------------------------------------------------------------------------------------
// Command line

struct Args {
    quick: bool,
    markdown: Option<String>,
    /// Where to write the JSON summary (`cargo xtask bench`: `target/bench-summary.json`).
    summary: Option<String>,
    /// Only the first this many prefix sets (1k+200, 100k+20k, 1M+200k).
    sets: Option<usize>,
    repeat: u32,
    addrs: usize,
    lpm: bool,
    /// Runs per address and program; the minimum is kept.
    passes: usize,
    /// Attach the programs natively to private veths so they stay in the XDP dispatcher.
    dispatcher: bool,
    /// Measure what a reload costs for the restart state file instead (see [`reload_state`]).
    reload_state: bool,
    /// Reloads timed in `--reload-state` mode.
    reloads: usize,
    /// Measure the drop path with events on and off instead (see [`events_on_off`]).
    events: bool,
}

/// The command line (`--help`); [`parse_args`] turns it into [`Args`].
#[derive(Parser)]
#[command(
    name = "embargo-bench",
    about = "What Embargo's XDP data plane costs per packet, and how long a policy takes to load \
             (needs root; run the release build)"
)]
struct Cli {
    /// Smoke run: 1k and 100k IPv4 sets only, R=200, P=2
    #[arg(long)]
    quick: bool,
    /// Also write a Markdown section (machine, method, results) to FILE
    #[arg(long, value_name = "FILE")]
    markdown: Option<String>,
    /// Only the first N prefix sets (1 = 1k+200, 2 = up to 100k+20k)
    #[arg(long, value_name = "N")]
    sets: Option<usize>,
    /// Also write the per-size summary as JSON to FILE (warm and cold ratios, map bytes, load
    /// and reload times)
    #[arg(long, value_name = "FILE")]
    summary: Option<String>,
    /// BPF_PROG_TEST_RUN repetitions per address (default 1000, quick 200)
    #[arg(long, value_name = "R", default_value_t = 0, hide_default_value = true)]
    repeat: u32,
    /// Runs per address and program, keeping the fastest (default 3, quick 2)
    #[arg(long, value_name = "P", default_value_t = 0, hide_default_value = true)]
    passes: usize,
    /// Distinct addresses per family and per hit/miss class
    #[arg(long, value_name = "N", default_value_t = 4096)]
    addrs: usize,
    /// Skip the kernel LPM trie reference (load and runs)
    #[arg(long = "no-lpm", action = ArgAction::SetFalse)]
    lpm: bool,
    /// Do not attach the programs to private veths first; every test run then waits for two
    /// RCU grace periods (kernel XDP dispatcher update): very slow
    #[arg(long = "no-dispatcher", action = ArgAction::SetFalse)]
    dispatcher: bool,
    /// Instead: what a 1-prefix reload costs at 1M+200k prefixes, with the restart state file
    /// (apply, state snapshot, encoding, write + fsync)
    #[arg(long)]
    reload_state: bool,
    /// Reloads timed with --reload-state (default 10, quick 4)
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    reloads: usize,
    /// Instead: the drop path with events off and on (the smallest set, blocked IPv4
    /// addresses, interleaved), medians of both
    #[arg(long)]
    events: bool,
}

fn parse_args() -> Result<Args> {
    let cli = Cli::parse();
    // 0 (the default) is the mode's own default.
    let or = |n, quick, full| match n {
        0 if cli.quick => quick,
        0 => full,
        n => n,
    };
    let args = Args {
        quick: cli.quick,
        markdown: cli.markdown,
        summary: cli.summary,
        sets: cli.sets,
        repeat: or(cli.repeat as usize, 200, 1000) as u32,
        addrs: cli.addrs,
        lpm: cli.lpm,
        passes: or(cli.passes, 2, 3),
        dispatcher: cli.dispatcher,
        reload_state: cli.reload_state,
        reloads: or(cli.reloads, 4, 10),
        events: cli.events,
    };
    ensure!(args.addrs >= 1, "--addrs must be at least 1");
    Ok(args)
}

// ---------------------------------------------------------------------------------------------
// Deterministic generation

/// IPv4 length mix, per mille: a blocklist (hosts, small subnets) merged with a routing table
/// (/24s and aggregates).
const V4_LENGTHS: &[(u8, u64)] = &[
    (32, 450),
    (24, 350),
    (16, 15),
    (17, 5),
    (18, 10),
    (19, 15),
    (20, 25),
    (21, 20),
    (22, 40),
    (23, 30),
    (25, 5),
    (26, 5),
    (27, 5),
    (28, 10),
    (29, 10),
    (30, 3),
    (31, 2),
];
/// Of IPv4 prefixes, per mille drawn inside a pool of "busy" /16s (hosting and ISP space);
/// the rest anywhere in the public space.
const V4_CLUSTERED: u64 = 700;
const V4_HOT_16S: usize = 6000;

/// IPv6 length mix, per mille, after the shape of a BGP table (/48 and /32 dominate).
const V6_LENGTHS: &[(u8, u64)] = &[
    (48, 500),
    (32, 200),
    (29, 30),
    (30, 5),
    (31, 5),
    (33, 10),
    (34, 10),
    (35, 10),
    (36, 30),
    (40, 50),
    (44, 50),
    (46, 20),
    (47, 10),
    (56, 40),
    (64, 25),
    (128, 5),
];
const V6_ALLOCATIONS: usize = 30_000;

/// Whether `a` is outside the special-purpose IPv4 ranges (RFC 6890 and multicast/reserved).
fn v4_public(a: u32) -> bool {
    const SPECIAL: &[(u32, u32)] = &[
        (0x0000_0000, 8),  // 0/8
        (0x0a00_0000, 8),  // 10/8
        (0x6440_0000, 10), // 100.64/10
        (0x7f00_0000, 8),  // 127/8
        (0xa9fe_0000, 16), // 169.254/16
        (0xac10_0000, 12), // 172.16/12
        (0xc000_0000, 24), // 192.0.0/24
        (0xc000_0200, 24), // 192.0.2/24
        (0xc0a8_0000, 16), // 192.168/16
        (0xc612_0000, 15), // 198.18/15
        (0xc633_6400, 24), // 198.51.100/24
        (0xcb00_7100, 24), // 203.0.113/24
        (0xe000_0000, 3),  // 224/3
    ];
    SPECIAL
        .iter()
        .all(|&(net, len)| (a ^ net) >> (32 - len) != 0)
}

fn mask4(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len) }
}

fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    }
}

fn random_public_v4(rng: &mut Rng) -> u32 {
    loop {
        let a = rng.next_u64() as u32;
        if v4_public(a) {
            return a;
        }
    }
}

/// `n` distinct IPv4 prefixes with entity indices; see [`V4_LENGTHS`] and [`V4_CLUSTERED`].
fn gen_v4(n: usize, rng: &mut Rng) -> Vec<(Ipv4Network, u32)> {
    let hot: Vec<u32> = (0..V4_HOT_16S)
        .map(|_| random_public_v4(rng) & mask4(16))
        .collect();
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        // Draw the length, then addresses until one is new: the length mix stays exact.
        let len = rng.weighted(V4_LENGTHS);
        let net = (0..100_000)
            .map(|_| {
                let addr = if rng.chance(V4_CLUSTERED) {
                    hot[rng.below(hot.len() as u64) as usize] | (rng.next_u64() as u32 & 0xffff)
                } else {
                    random_public_v4(rng)
                };
                addr & mask4(len)
            })
            .find(|&net| v4_public(net) && seen.insert((net, len)))
            .expect("the IPv4 space has room for these prefixes");
        let entity = rng.below(u64::from(ENTITIES)) as u32;
        out.push((
            Ipv4Network::new(Ipv4Addr::from(net), len).expect("length <= 32"),
            entity,
        ));
    }
    out
}

/// `n` distinct IPv6 prefixes with entity indices, under [`V6_ALLOCATIONS`] RIR-style
/// allocations (60% /32, 40% /29) in 2000::/3; see [`V6_LENGTHS`]. Prefixes up to /32 pick
/// their allocation uniformly; longer ones with a skew (index = n * u^2) so some allocations
/// announce many more-specifics, as in BGP.
fn gen_v6(n: usize, rng: &mut Rng) -> Vec<(Ipv6Network, u32)> {
    let mut allocs: Vec<(u128, u8)> = Vec::with_capacity(V6_ALLOCATIONS);
    let mut alloc_seen = HashSet::new();
    while allocs.len() < V6_ALLOCATIONS {
        let len = if rng.chance(600) { 32 } else { 29 };
        let base = ((rng.u128() >> 3) | (1u128 << 125)) & mask6(len);
        if alloc_seen.insert(base & mask6(29)) {
            allocs.push((base, len));
        }
    }
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let len = rng.weighted(V6_LENGTHS);
        let net = (0..100_000)
            .map(|_| {
                // An allocation announces itself (or its covering block) once: uniform pick.
                // More-specifics cluster: skewed pick.
                let i = if len <= 32 {
                    rng.below(allocs.len() as u64) as usize
                } else {
                    let u = rng.below(1 << 20) as f64 / f64::from(1 << 20);
                    ((u * u) * allocs.len() as f64) as usize
                };
                let (base, alen) = allocs[i];
                // Prefixes shorter than the allocation are its covering block.
                (base | (rng.u128() & !mask6(alen))) & mask6(len)
            })
            .find(|&net| seen.insert((net, len)))
            .expect("the allocations have room for these prefixes");
        let entity = rng.below(u64::from(ENTITIES)) as u32;
        out.push((
            Ipv6Network::new(Ipv6Addr::from(net), len).expect("length <= 128"),
            entity,
        ));
    }
    out
}

fn entities(v4: &[(Ipv4Network, u32)], v6: &[(Ipv6Network, u32)]) -> Vec<EntityInfo> {
    let mut e: Vec<EntityInfo> = (0..ENTITIES)
        .map(|i| EntityInfo {
            id: format!("entity-{i}"),
            name: format!("Entity {i}"),
            action: Action::Drop,
            direction: DirectionSet::Both,
            prefixes_v4: 0,
            prefixes_v6: 0,
            retired: false,
        })
        .collect();
    for (_, i) in v4 {
        e[*i as usize].prefixes_v4 += 1;
    }
    for (_, i) in v6 {
        e[*i as usize].prefixes_v6 += 1;
    }
    e
}

/// Share of each prefix length, for the printed generation summary.
fn length_mix(lengths: impl Iterator<Item = u8>, buckets: &[(&str, u8, u8)]) -> String {
    let mut counts = vec![0usize; buckets.len()];
    let mut total = 0usize;
    for l in lengths {
        total += 1;
        if let Some(i) = buckets
            .iter()
            .position(|(_, lo, hi)| (*lo..=*hi).contains(&l))
        {
            counts[i] += 1;
        }
    }
    buckets
        .iter()
        .zip(counts)
        .map(|((name, _, _), c)| format!("{name} {:.1}%", 100.0 * c as f64 / total as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Addresses to probe

/// Distinct destination addresses: `n` inside loaded prefixes, `n` in none.
struct Probes<A> {
    hits: Vec<A>,
    misses: Vec<A>,
}

/// Hits: a random address inside a random loaded prefix. Misses: half "near" (inside the /16
/// of a loaded prefix, so the walk goes as deep as the neighbourhood makes it), half anywhere
/// in the public space; each checked against the built table.
fn probes_v4(prefixes: &[(Ipv4Network, u32)], t: &Table, n: usize, rng: &mut Rng) -> Probes<u32> {
    let mut seen = HashSet::new();
    let mut hits = Vec::with_capacity(n);
    while hits.len() < n {
        let (net, _) = prefixes[rng.below(prefixes.len() as u64) as usize];
        let a = u32::from(net.network()) | (rng.next_u64() as u32 & !mask4(net.prefix()));
        if seen.insert(a) {
            assert!(build::lookup_v4(t, Ipv4Addr::from(a)).is_some(), "{a:#x}");
            hits.push(a);
        }
    }
    let mut misses = Vec::with_capacity(n);
    let mut tries = 0u64;
    while misses.len() < n {
        tries += 1;
        assert!(tries < 1000 * n as u64 + 100_000, "cannot find IPv4 misses");
        let a = if misses.len() % 2 == 0 {
            let (net, _) = prefixes[rng.below(prefixes.len() as u64) as usize];
            (u32::from(net.network()) & mask4(16)) | (rng.next_u64() as u32 & 0xffff)
        } else {
            random_public_v4(rng)
        };
        if build::lookup_v4(t, Ipv4Addr::from(a)).is_none() && seen.insert(a) {
            misses.push(a);
        }
    }
    Probes { hits, misses }
}

/// As [`probes_v4`]; "near" misses share the first 32 bits (the allocation) of a loaded prefix.
fn probes_v6(prefixes: &[(Ipv6Network, u32)], t: &Table, n: usize, rng: &mut Rng) -> Probes<u128> {
    let mut seen = HashSet::new();
    let mut hits = Vec::with_capacity(n);
    while hits.len() < n {
        let (net, _) = prefixes[rng.below(prefixes.len() as u64) as usize];
        let a = u128::from(net.network()) | (rng.u128() & !mask6(net.prefix()));
        if seen.insert(a) {
            assert!(build::lookup_v6(t, Ipv6Addr::from(a)).is_some(), "{a:#x}");
            hits.push(a);
        }
    }
    let mut misses = Vec::with_capacity(n);
    let mut tries = 0u64;
    while misses.len() < n {
        tries += 1;
        assert!(tries < 1000 * n as u64 + 100_000, "cannot find IPv6 misses");
        let a = if misses.len() % 2 == 0 {
            let (net, _) = prefixes[rng.below(prefixes.len() as u64) as usize];
            (u128::from(net.network()) & mask6(32)) | (rng.u128() & !mask6(32))
        } else {
            (rng.u128() >> 3) | (1u128 << 125)
        };
        if build::lookup_v6(t, Ipv6Addr::from(a)).is_none() && seen.insert(a) {
            misses.push(a);
        }
    }
    Probes { hits, misses }
}

/// How many trie chunks the lookup of `addr` reads (1 = the direct array only; then one per
/// node and one for the leaf).
fn trie_loads_v4(t: &Table, addr: u32) -> u32 {
    let n = std::cell::Cell::new(0);
    embargo_abi::trie::lookup_v4(addr, |c| {
        n.set(n.get() + 1);
        embargo_abi::trie::chunk_of(&t.entries, c)
    });
    n.get()
}

fn trie_loads_v6(t: &Table, addr: u128) -> u32 {
    let n = std::cell::Cell::new(0);
    embargo_abi::trie::lookup_v6((addr >> 64) as u64, addr as u64, |c| {
        n.set(n.get() + 1);
        embargo_abi::trie::chunk_of(&t.entries, c)
    });
    n.get()
}

// ---------------------------------------------------------------------------------------------
// BPF_PROG_TEST_RUN

/// Runs `prog` on `frame` `repeat` times; returns (XDP action, average ns per run).
fn test_run(prog: RawFd, frame: &[u8], repeat: u32) -> Result<(u32, u32)> {
    embargo_tests::prog_run::xdp_test_run(prog, frame, repeat, LO_IFINDEX)
        .context("BPF_PROG_TEST_RUN")
}

const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_XDP: u32 = 37;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// The `link_create` member of `union bpf_attr`, zero-padded.
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    _rest: [u64; 6],
}

/// Moves this (still single-threaded) process into a private network namespace with veth
/// devices `bench0`..`bench{n-1}`; they vanish with the process. `lo` there is ifindex 1 too.
fn private_netns(n: usize) -> Result<()> {
    // SAFETY: no preconditions; affects this thread, the only one, and the children it spawns.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error()).context("unshare(CLONE_NEWNET)");
    }
    let ip = |args: &[&str]| -> Result<()> {
        let st = std::process::Command::new("ip")
            .args(args)
            .status()
            .context("running `ip` (iproute2)")?;
        ensure!(st.success(), "`ip {}` failed", args.join(" "));
        Ok(())
    };
    ip(&["link", "set", "lo", "up"])?;
    for i in (0..n).step_by(2) {
        let (a, b) = (format!("bench{i}"), format!("bench{}", i + 1));
        ip(&["link", "add", &a, "type", "veth", "peer", "name", &b])?;
    }
    Ok(())
}

/// Attaches `prog` natively (driver mode) to `ifindex` through a BPF link; the program then
/// stays in the kernel's XDP dispatcher. Without that, every `BPF_PROG_TEST_RUN` with
/// `repeat` > 1 adds the program to the dispatcher and removes it again, two RCU grace
/// periods (tens of ms on this VM), which makes thousands of runs take an hour.
fn attach_native(prog: RawFd, ifindex: u32) -> Result<std::os::fd::OwnedFd> {
    let attr = LinkCreateAttr {
        prog_fd: prog as u32,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags: XDP_FLAGS_DRV_MODE,
        ..Default::default()
    };
    // SAFETY: a valid, zero-padded bpf_attr for BPF_LINK_CREATE; the kernel only reads it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_CREATE,
            &attr as *const LinkCreateAttr,
            size_of::<LinkCreateAttr>() as u32,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("BPF_LINK_CREATE (XDP, native)");
    }
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd as RawFd) })
}

fn pin_to_last_cpu() -> Option<usize> {
    let cpus = std::thread::available_parallelism().ok()?.get();
    let cpu = cpus - 1;
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read/write it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        (libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) == 0).then_some(cpu)
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics

#[derive(Clone, Copy, Default)]
struct Summary {
    median: f64,
    mean: f64,
    p99: f64,
}

/// Packets dropped and counted against any entity so far.
fn dropped(dp: &Dataplane) -> Result<u64> {
    Ok(dp
        .counters()?
        .iter()
        .flat_map(|c| Direction::ALL.map(|d| c.get(d, Verdict::Dropped).packets))
        .sum())
}

fn summarize(mut v: Vec<f64>) -> Summary {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    let p99 = v[((n as f64 * 0.99).ceil() as usize).clamp(1, n) - 1];
    Summary {
        median,
        mean: v.iter().sum::<f64>() / n as f64,
        p99,
    }
}

// ---------------------------------------------------------------------------------------------
// One prefix set

#[derive(Clone, Copy, PartialEq, Eq)]
enum Prog {
    Drop,
    Embargo,
    Lpm,
}

impl Prog {
    fn label(self) -> &'static str {
        match self {
            Prog::Drop => "XDP_DROP",
            Prog::Embargo => "embargo",
            Prog::Lpm => "kernel LPM",
        }
    }
}

struct Row {
    set: String,
    family: &'static str,
    class: &'static str,
    prog: Prog,
    s: Summary,
    /// Mean of this program / mean of XDP_DROP over the same addresses.
    ratio: f64,
}

/// One address's time with embargo and with XDP_DROP, by trie entries read.
struct Depth {
    set: String,
    family: &'static str,
    loads: u32,
    ours: f64,
    drop: f64,
}

struct Load {
    set: String,
    v4: usize,
    v6: usize,
    end_to_end: Duration,
    build_v4: Duration,
    build_v6: Duration,
    kernel: Duration,
    v4_nodes: u32,
    v6_nodes: u32,
    map_bytes: u64,
    /// Kernel accounting of the production maps (fdinfo `memlock`).
    memlock: u64,
    lpm: Option<LpmLoad>,
}

/// One prefix set's line of `bench-summary.json` (the format issue 13 gives).
struct SizeSummary {
    prefixes: String,
    /// embargo / XDP_DROP, means over the hit/miss x IPv4/IPv6 classes, one repeated packet.
    warm_ratio: f64,
    /// The same over distinct addresses: each run once (`repeat` = 1), interleaved.
    cold_ratio: f64,
    /// kernel LPM / XDP_DROP, distinct addresses; `None` with `--no-lpm`.
    lpm_cold_ratio: Option<f64>,
    map_bytes: u64,
    lpm_map_bytes: Option<u64>,
    load_s: f64,
    /// `Dataplane::apply` of a policy that adds one /24 (median over the reloads).
    reload_one_s: Option<f64>,
    /// `Dataplane::apply` of a policy that moves `reload_10k_prefixes` prefixes to another
    /// entity (10,000, or every prefix of a smaller set).
    reload_10k_s: Option<f64>,
    reload_10k_prefixes: usize,
}

impl SizeSummary {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "prefixes": self.prefixes,
            "warm_ratio": self.warm_ratio,
            "cold_ratio": self.cold_ratio,
            "lpm_cold_ratio": self.lpm_cold_ratio,
            "map_bytes": self.map_bytes,
            "lpm_map_bytes": self.lpm_map_bytes,
            "load_s": self.load_s,
            "reload_one_s": self.reload_one_s,
            "reload_10k_s": self.reload_10k_s,
            "reload_10k_prefixes": self.reload_10k_prefixes,
        })
    }
}

/// The cold method: every address of every class once per program (`repeat` = 1, one pass),
/// interleaved address by address, rotating which program goes first, so each lookup finds
/// the caches as the other programs' lookups left them. Verdicts are checked as in the warm
/// runs. Returns the mean ns per program (in `progs` order) over all classes together.
fn cold_means(progs: &[(Prog, RawFd)], classes: &[(Vec<Vec<u8>>, bool)]) -> Result<Vec<f64>> {
    let mut sums = vec![0f64; progs.len()];
    let mut n = 0usize;
    // Interleave the classes too, so no class runs in a cache the previous one warmed.
    let longest = classes.iter().map(|(f, _)| f.len()).max().unwrap_or(0);
    for i in 0..longest {
        for (frames, hit) in classes {
            let Some(f) = frames.get(i) else { continue };
            for k in 0..progs.len() {
                let j = (i + k) % progs.len();
                let (prog, fd) = progs[j];
                let (action, ns) = test_run(fd, f, 1)?;
                let want = if prog == Prog::Drop || *hit {
                    XDP_DROP
                } else {
                    XDP_PASS
                };
                ensure!(
                    action == want,
                    "{} returned {action} in the cold run (wanted {want})",
                    prog.label()
                );
                sums[j] += f64::from(ns);
            }
            n += 1;
        }
    }
    ensure!(n > 0, "no addresses for the cold run");
    Ok(sums.into_iter().map(|s| s / n as f64).collect())
}

/// Times in-place reloads on `dp` (loaded with `policy`): one added /24 (median of 5, each
/// undone untimed) and `min(10_000, prefixes)` prefixes moved to another entity (undone
/// untimed). `None` for a reload the maps have no room for (it needs a new generation).
fn time_reloads(dp: &mut Dataplane, policy: &Policy) -> Result<(Option<f64>, Option<f64>, usize)> {
    let mut times = Vec::new();
    let mut one = None;
    for k in 0..5u32 {
        let mut next = policy.clone();
        // 198.18.0.0/15 is excluded from the generator (RFC 2544): never loaded.
        let net = Ipv4Network::new(Ipv4Addr::from(0xc612_0000u32 | (k << 8)), 24)?;
        // Where the compiler would put it, so the policy stays in key order.
        let at = next
            .v4
            .partition_point(|(n, _)| (n.network(), n.prefix()) < (net.network(), net.prefix()));
        next.v4.insert(at, (net, 0));
        let t = Instant::now();
        match dp.apply(&next) {
            Ok(_) => times.push(t.elapsed().as_secs_f64()),
            Err(embargo::dataplane::DataplaneError::NeedsRebuild { reason }) => {
                eprintln!("1-prefix reload needs a new generation: {reason}");
                break;
            }
            Err(e) => return Err(e.into()),
        }
        dp.apply(policy).context("undoing the 1-prefix reload")?;
    }
    if !times.is_empty() {
        times.sort_by(f64::total_cmp);
        one = Some(times[times.len() / 2]);
    }
    let entities = policy.entities.len() as u32;
    let moved = 10_000.min(policy.v4.len() + policy.v6.len());
    let mut next = policy.clone();
    let mut left = moved;
    let (v4, v6) = (&mut next.v4, &mut next.v6);
    let entries = v4
        .iter_mut()
        .map(|(_, e)| e)
        .chain(v6.iter_mut().map(|(_, e)| e));
    for e in entries {
        if left == 0 {
            break;
        }
        *e = (*e + 1) % entities;
        left -= 1;
    }
    let t = Instant::now();
    let ten_k = match dp.apply(&next) {
        Ok(_) => Some(t.elapsed().as_secs_f64()),
        Err(embargo::dataplane::DataplaneError::NeedsRebuild { reason }) => {
            eprintln!("10k-prefix reload needs a new generation: {reason}");
            None
        }
        Err(e) => return Err(e.into()),
    };
    dp.apply(policy).context("undoing the 10k-prefix reload")?;
    Ok((one, ten_k, moved))
}

struct LpmLoad {
    create: Duration,
    insert: Duration,
    memlock: u64,
}

/// Kernel-accounted memory (fdinfo `memlock`) of this process's BPF maps: (LPM tries, others).
fn maps_memlock() -> (u64, u64) {
    const BPF_MAP_TYPE_LPM_TRIE: u64 = 11;
    let mut lpm = 0;
    let mut other = 0;
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return (0, 0);
    };
    for fd in dir.flatten() {
        let is_map = std::fs::read_link(fd.path())
            .is_ok_and(|t| t.to_string_lossy() == "anon_inode:bpf-map");
        if !is_map {
            continue;
        }
        let info =
            std::fs::read_to_string(std::path::Path::new("/proc/self/fdinfo").join(fd.file_name()))
                .unwrap_or_default();
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let bytes = field("memlock:").unwrap_or(0);
        if field("map_type:") == Some(BPF_MAP_TYPE_LPM_TRIE) {
            lpm += bytes;
        } else {
            other += bytes;
        }
    }
    (lpm, other)
}

/// Loads the bench object with its LPM maps sized for and filled with the prefixes.
fn load_lpm(
    v4: &[(Ipv4Network, u32)],
    v6: &[(Ipv6Network, u32)],
    fill: bool,
) -> Result<(Ebpf, Option<LpmLoad>)> {
    let t = Instant::now();
    let mut ebpf = EbpfLoader::new()
        .map_max_entries(programs::BENCH_LPM_V4, v4.len().max(1) as u32)
        .map_max_entries(programs::BENCH_LPM_V6, v6.len().max(1) as u32)
        .load(BENCH_OBJECT)
        .context("loading the bench object")?;
    for name in [programs::BENCH_DROP, programs::BENCH_LPM] {
        let p: &mut Xdp = ebpf
            .program_mut(name)
            .with_context(|| format!("no program {name}"))?
            .try_into()?;
        p.load().with_context(|| format!("loading {name}"))?;
    }
    let create = t.elapsed();
    if !fill {
        return Ok((ebpf, None));
    }
    let t = Instant::now();
    {
        let mut m: LpmTrie<_, [u8; 4], u32> = LpmTrie::try_from(
            ebpf.map_mut(programs::BENCH_LPM_V4)
                .context("no LPM4 map")?,
        )?;
        for (net, e) in v4 {
            m.insert(
                &Key::new(u32::from(net.prefix()), net.network().octets()),
                e,
                0,
            )?;
        }
    }
    {
        let mut m: LpmTrie<_, [u8; 16], u32> = LpmTrie::try_from(
            ebpf.map_mut(programs::BENCH_LPM_V6)
                .context("no LPM6 map")?,
        )?;
        for (net, e) in v6 {
            m.insert(
                &Key::new(u32::from(net.prefix()), net.network().octets()),
                e,
                0,
            )?;
        }
    }
    let insert = t.elapsed();
    Ok((
        ebpf,
        Some(LpmLoad {
            create,
            insert,
            memlock: 0,
        }),
    ))
}

fn prog_fd(ebpf: &Ebpf, name: &str) -> Result<RawFd> {
    Ok(ebpf
        .program(name)
        .with_context(|| format!("no program {name}"))?
        .fd()?
        .as_fd()
        .as_raw_fd())
}

#[allow(clippy::too_many_arguments)]
fn run_set(
    label: &str,
    v4: &[(Ipv4Network, u32)],
    v6: &[(Ipv6Network, u32)],
    args: &Args,
    rng: &mut Rng,
    rows: &mut Vec<Row>,
    loads: &mut Vec<Load>,
    depths: &mut Vec<Depth>,
    summaries: &mut Vec<SizeSummary>,
) -> Result<()> {
    // In key order, as the agent's compiler leaves them (the reload diff relies on it only for
    // speed: an unsorted policy is sorted first).
    let (mut v4s, mut v6s) = (v4.to_vec(), v6.to_vec());
    v4s.sort_by_key(|(n, _)| (n.network(), n.prefix()));
    v6s.sort_by_key(|(n, _)| (n.network(), n.prefix()));
    let policy = Policy::one_group_per_entity(entities(v4, v6), v4s, v6s);
    eprintln!(
        "[{label}] loading {} IPv4 + {} IPv6 prefixes",
        v4.len(),
        v6.len()
    );
    // End to end, as the agent does it; then again split, keeping the tables for the probes.
    let t = Instant::now();
    let dp = Dataplane::load(&policy).context("Dataplane::load")?;
    let end_to_end = t.elapsed();
    drop(dp);
    let t = Instant::now();
    let t4 = build::build_v4(&policy.v4)?;
    let build_v4 = t.elapsed();
    let t = Instant::now();
    let t6 = build::build_v6(&policy.v6)?;
    let build_v6 = t.elapsed();
    let t = Instant::now();
    let mut dp = Dataplane::load_tables(&policy, &t4, &t6).context("Dataplane::load_tables")?;
    let kernel = t.elapsed();
    dp.set_role(LO_IFINDEX, IfaceRole::Inside)?;
    let stats = dp.load_stats;

    eprintln!("[{label}] loading the LPM reference");
    let (bench, mut lpm) = load_lpm(v4, v6, args.lpm)?;
    let (lpm_memlock, memlock) = maps_memlock();
    if let Some(l) = &mut lpm {
        l.memlock = lpm_memlock;
    }
    loads.push(Load {
        set: label.to_owned(),
        v4: v4.len(),
        v6: v6.len(),
        end_to_end,
        build_v4,
        build_v6,
        kernel,
        v4_nodes: stats.v4_nodes,
        v6_nodes: stats.v6_nodes,
        map_bytes: stats.map_bytes,
        memlock,
        lpm,
    });

    let ours = dp.program().fd()?.as_fd().as_raw_fd();
    let mut progs = vec![
        (Prog::Drop, prog_fd(&bench, programs::BENCH_DROP)?),
        (Prog::Embargo, ours),
    ];
    if args.lpm {
        progs.push((Prog::Lpm, prog_fd(&bench, programs::BENCH_LPM)?));
    }

    // Keep every program resident in the XDP dispatcher while it is measured (see
    // `attach_native`); the links detach when dropped at the end of this set.
    let mut links = Vec::new();
    if args.dispatcher {
        for (i, (prog, fd)) in progs.iter().enumerate() {
            let name = format!("bench{i}");
            let ifindex = embargo::dataplane::system::ifindex(&name)
                .with_context(|| format!("no interface {name}"))?;
            links.push(
                attach_native(*fd, ifindex)
                    .with_context(|| format!("attaching {} to {name}", prog.label()))?,
            );
        }
    }

    let p4 = probes_v4(v4, &t4, args.addrs, rng);
    let p6 = probes_v6(v6, &t6, args.addrs, rng);
    let src4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let src6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    let frames = |addrs: &[u128], v6: bool| -> Vec<Vec<u8>> {
        addrs
            .iter()
            .map(|&a| {
                if v6 {
                    Frame::ip(src6, IpAddr::V6(Ipv6Addr::from(a))).bytes()
                } else {
                    Frame::ip(src4, IpAddr::V4(Ipv4Addr::from(a as u32))).bytes()
                }
            })
            .collect()
    };
    let widen = |v: &[u32]| v.iter().map(|&a| u128::from(a)).collect::<Vec<_>>();
    let classes = [
        ("IPv4", "hit", widen(&p4.hits), false, true, None),
        (
            "IPv4",
            "miss",
            widen(&p4.misses),
            false,
            false,
            Some(Stat::MissIpv4),
        ),
        ("IPv6", "hit", p6.hits, true, true, None),
        ("IPv6", "miss", p6.misses, true, false, Some(Stat::MissIpv6)),
    ];

    let rows_before = rows.len();
    let mut cold_classes = Vec::new();
    for (family, class, addrs, is_v6, hit, stat) in &classes {
        let frames = frames(addrs, *is_v6);
        cold_classes.push((frames.clone(), *hit));
        let loads: Vec<u32> = addrs
            .iter()
            .map(|&a| {
                if *is_v6 {
                    trie_loads_v6(&t6, a)
                } else {
                    trie_loads_v4(&t4, a as u32)
                }
            })
            .collect();
        eprintln!(
            "[{label}] {family} {class}: {} addresses x {} programs x R={}",
            frames.len(),
            progs.len(),
            args.repeat
        );
        let before = dp.stats()?;
        let dropped_before = dropped(&dp)?;
        let mut ours_runs = 0u64;
        // Warm-up, discarded: fault in code and the first trie lines.
        for f in frames.iter().take(64) {
            for (_, fd) in &progs {
                test_run(*fd, f, args.repeat)?;
            }
            ours_runs += u64::from(args.repeat);
        }
        let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(frames.len()); progs.len()];
        for (i, f) in frames.iter().enumerate() {
            // Each program `passes` times, interleaved, rotating who goes first; the minimum
            // per address drops the runs an interrupt or another task landed in.
            let mut best = vec![u32::MAX; progs.len()];
            for pass in 0..args.passes {
                for k in 0..progs.len() {
                    let j = (i + pass + k) % progs.len();
                    let (prog, fd) = progs[j];
                    let (action, ns) = test_run(fd, f, args.repeat)?;
                    let want = if prog == Prog::Drop || *hit {
                        XDP_DROP
                    } else {
                        XDP_PASS
                    };
                    if action != want {
                        let now = dp.stats()?;
                        let moved: Vec<String> = Stat::ALL
                            .iter()
                            .filter(|(s, _)| now[*s as usize] != before[*s as usize])
                            .map(|(s, name)| {
                                format!("{name} +{}", now[*s as usize] - before[*s as usize])
                            })
                            .collect();
                        bail!(
                            "{} returned {action} for {family} {class} #{i} (wanted {want}); embargo_xdp stats since this class began: {}",
                            prog.label(),
                            moved.join(", ")
                        );
                    }
                    best[j] = best[j].min(ns);
                }
                ours_runs += u64::from(args.repeat);
            }
            for (j, b) in best.into_iter().enumerate() {
                samples[j].push(f64::from(b));
            }
        }
        let after = dp.stats()?;
        let delta = |s: Stat| after[s as usize] - before[s as usize];
        // Hits end in an entity's dropped counter, misses in their miss stat; nothing else.
        let counted = dropped(&dp)? - dropped_before;
        let (expected_stat, expected_counted) = match stat {
            Some(s) => (delta(*s), 0),
            None => (0, ours_runs),
        };
        ensure!(
            counted == expected_counted && stat.is_none_or(|_| expected_stat == ours_runs),
            "embargo_xdp counted {counted} drops and {expected_stat} {stat:?} for {ours_runs} runs"
        );
        let terminal: u64 = (0..Stat::TERMINAL as usize)
            .map(|s| after[s] - before[s])
            .sum::<u64>()
            + counted;
        ensure!(
            terminal == ours_runs,
            "embargo_xdp counted {terminal} terminal outcomes for {ours_runs} runs"
        );
        for (i, &l) in loads.iter().enumerate() {
            depths.push(Depth {
                set: label.to_owned(),
                family,
                loads: l,
                ours: samples[1][i],
                drop: samples[0][i],
            });
        }
        let summaries: Vec<Summary> = samples.into_iter().map(summarize).collect();
        for (j, (prog, _)) in progs.iter().enumerate() {
            rows.push(Row {
                set: label.to_owned(),
                family,
                class,
                prog: *prog,
                s: summaries[j],
                ratio: summaries[j].mean / summaries[0].mean,
            });
        }
    }

    // Warm ratio: the mean over the four classes of each program, over XDP_DROP's.
    let warm = |p: Prog| {
        let v: Vec<f64> = rows[rows_before..]
            .iter()
            .filter(|r| r.prog == p)
            .map(|r| r.s.mean)
            .collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let warm_ratio = warm(Prog::Embargo) / warm(Prog::Drop);
    eprintln!("[{label}] cold: every address once per program (repeat 1), interleaved");
    let cold = cold_means(&progs, &cold_classes)?;
    let cold_ratio = cold[1] / cold[0];
    let lpm_cold_ratio = progs
        .iter()
        .position(|(p, _)| *p == Prog::Lpm)
        .map(|j| cold[j] / cold[0]);
    eprintln!(
        "[{label}] warm {warm_ratio:.2}, cold {cold_ratio:.2}, LPM cold {}",
        lpm_cold_ratio.map_or("-".into(), |r| format!("{r:.2}"))
    );
    drop(links);
    eprintln!("[{label}] timing in-place reloads");
    let (reload_one_s, reload_10k_s, reload_10k_prefixes) = time_reloads(&mut dp, &policy)?;
    let load = loads.last().expect("pushed above");
    summaries.push(SizeSummary {
        prefixes: label.to_owned(),
        warm_ratio,
        cold_ratio,
        lpm_cold_ratio,
        map_bytes: load.map_bytes,
        lpm_map_bytes: load.lpm.as_ref().map(|l| l.memlock),
        load_s: load.end_to_end.as_secs_f64(),
        reload_one_s,
        reload_10k_s,
        reload_10k_prefixes,
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Machine and output

struct Machine {
    cpu: String,
    cores: usize,
    kernel: String,
    memory: String,
    date: String,
    pinned: Option<usize>,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| format!("{:.1} GiB", kb as f64 / (1024.0 * 1024.0)))
        .unwrap_or_else(|| "unknown".into());
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: embargo::dataplane::system::kernel_release().unwrap_or_else(|| "unknown".into()),
        memory,
        date: utc_now(),
        pinned: None,
    }
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string()
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn count(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1000 && n % 1000 == 0 => format!("{}k", n / 1000),
        n => n.to_string(),
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    ensure!(
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() } == 0,
        "embargo-bench loads BPF programs: run it as root"
    );
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; times are for the release build (--release)");
    }
    if args.reload_state {
        return reload_state(&args);
    }
    if args.events {
        return events_on_off(&args);
    }
    let mut m = machine();
    if args.dispatcher {
        private_netns(4).context(
            "setting up a private netns with veth devices (or pass --no-dispatcher, much slower)",
        )?;
    }
    m.pinned = pin_to_last_cpu();

    let sets: &[(usize, usize)] = if args.quick {
        &[(1_000, 200), (100_000, 20_000)]
    } else {
        &[(1_000, 200), (100_000, 20_000), (1_000_000, 200_000)]
    };
    let sets = &sets[..args.sets.unwrap_or(sets.len()).clamp(1, sets.len())];
    let (max4, max6) = *sets.last().expect("non-empty");
    let mut rng = Rng(SEED);
    let t = Instant::now();
    let all4 = gen_v4(max4, &mut rng);
    let all6 = gen_v6(max6, &mut rng);
    let gen_time = t.elapsed();

    let mix4 = length_mix(
        all4.iter().map(|(n, _)| n.prefix()),
        &[
            ("/32", 32, 32),
            ("/24", 24, 24),
            ("/16-/23", 16, 23),
            ("/25-/31", 25, 31),
        ],
    );
    let mix6 = length_mix(
        all6.iter().map(|(n, _)| n.prefix()),
        &[
            ("/48", 48, 48),
            ("/32", 32, 32),
            ("/29-/31", 29, 31),
            ("/33-/47", 33, 47),
            ("/49-/64", 49, 64),
            ("/128", 128, 128),
        ],
    );
    let slash16s: HashSet<u32> = all4
        .iter()
        .map(|(n, _)| u32::from(n.network()) >> 16)
        .collect();
    let slash32s: HashSet<u128> = all6
        .iter()
        .map(|(n, _)| u128::from(n.network()) >> 96)
        .collect();
    let generation = format!(
        "Prefixes: deterministic (splitmix64, seed {SEED:#x}), generated in {:.2} s; each set is the first n of the largest.\n\
         - IPv4 ({} prefixes): {mix4}; {}% inside {V4_HOT_16S} random busy /16s, the rest uniform over the public space (RFC 6890 ranges and 224/3 excluded); {} distinct /16s.\n\
         - IPv6 ({} prefixes): {mix6}; under {V6_ALLOCATIONS} allocations (60% /32, 40% /29) in 2000::/3 (/29-/32 prefixes pick one uniformly, longer ones with a skew, index = n*u^2); {} distinct /32s.\n\
         - {ENTITIES} entities, all `drop`, both directions; prefixes assigned uniformly.\n\
         - Probes per family: {} hits (random address inside a random loaded prefix) and {} misses (half inside the /16 (IPv4) or /32 (IPv6) of a loaded prefix, half anywhere public), all distinct, classified with the user-space lookup on the loaded tables.",
        gen_time.as_secs_f64(),
        count(all4.len()),
        V4_CLUSTERED / 10,
        slash16s.len(),
        count(all6.len()),
        slash32s.len(),
        args.addrs,
        args.addrs,
    );
    println!("embargo-bench: XDP data plane, ns per packet (BPF_PROG_TEST_RUN)");
    println!(
        "Machine: {} ({} cores), kernel {}, {} RAM; {}{}",
        m.cpu,
        m.cores,
        m.kernel,
        m.memory,
        m.date,
        m.pinned
            .map(|c| format!("; pinned to CPU {c}"))
            .unwrap_or_default()
    );
    println!(
        "Method: BPF_PROG_TEST_RUN, repeat R = {}, kernel-reported ns per repetition; per address and program the fastest of P = {} runs; median/mean/p99 over addresses; programs interleaved per address.",
        args.repeat, args.passes
    );
    println!("{generation}");
    println!();

    let mut rows = Vec::new();
    let mut loads = Vec::new();
    let mut depths = Vec::new();
    let mut summaries = Vec::new();
    let total = Instant::now();
    for &(n4, n6) in sets {
        let label = format!("{}+{}", count(n4), count(n6));
        run_set(
            &label,
            &all4[..n4],
            &all6[..n6],
            &args,
            &mut rng,
            &mut rows,
            &mut loads,
            &mut depths,
            &mut summaries,
        )?;
    }
    let elapsed = total.elapsed();

    let table = results_table(&rows);
    let load_table = load_table(&loads);
    println!("{table}");
    println!("{load_table}");
    let depth_table = depth_table(&depths);
    println!("{depth_table}");
    let verdict = verdict(&rows, &loads);
    println!("{verdict}");
    println!("Total bench time: {:.1} s", elapsed.as_secs_f64());
    let summary = serde_json::json!({
        "machine": format!("{} ({} cores{}), Linux {}", m.cpu, m.cores,
            m.pinned.map(|c| format!(", bench pinned to CPU {c}")).unwrap_or_default(), m.kernel),
        "date": m.date,
        "sizes": summaries.iter().map(SizeSummary::json).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if let Some(path) = &args.summary {
        std::fs::write(path, serde_json::to_string_pretty(&summary)? + "\n")
            .with_context(|| format!("writing {path}"))?;
        eprintln!("wrote {path}");
    }

    if let Some(path) = &args.markdown {
        let md = markdown(
            &m,
            &args,
            &generation,
            &table,
            &depth_table,
            &load_table,
            &verdict,
        );
        std::fs::write(path, md).with_context(|| format!("writing {path}"))?;
        eprintln!("wrote {path}");
    }
    Ok(())
}

/// The per-packet results as a Markdown-compatible table (readable as plain text too).
fn results_table(rows: &[Row]) -> String {
    let mut s = String::new();
    s.push_str("| Prefixes (v4+v6) | Family | Class | Program | median ns | mean ns | p99 ns | mean / XDP_DROP |\n");
    s.push_str("|---|---|---|---|---:|---:|---:|---:|\n");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.0} | {:.1} | {:.0} | {} |",
            r.set,
            r.family,
            r.class,
            r.prog.label(),
            r.s.median,
            r.s.mean,
            r.s.p99,
            if r.prog == Prog::Drop {
                "1.00".to_owned()
            } else {
                format!("{:.2}", r.ratio)
            }
        );
    }
    s
}

/// Mean embargo and XDP_DROP ns per trie depth, for the largest set.
fn depth_table(depths: &[Depth]) -> String {
    let Some(last) = depths.last().map(|d| d.set.clone()) else {
        return String::new();
    };
    let mut keys: Vec<(&str, u32)> = depths
        .iter()
        .filter(|d| d.set == last)
        .map(|d| (d.family, d.loads))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut s = String::from(
        "| Prefixes (v4+v6) | Family | Trie entries read | Addresses | embargo mean ns | XDP_DROP mean ns | mean / XDP_DROP |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    for (family, loads) in keys {
        let (n, o, d) = depths
            .iter()
            .filter(|x| x.set == last && x.family == family && x.loads == loads)
            .fold((0usize, 0.0, 0.0), |(n, o, d), x| {
                (n + 1, o + x.ours, d + x.drop)
            });
        let _ = writeln!(
            s,
            "| {last} | {family} | {loads} | {n} | {:.1} | {:.1} | {:.2} |",
            o / n as f64,
            d / n as f64,
            o / d
        );
    }
    s
}

fn load_table(loads: &[Load]) -> String {
    let mut s = String::new();
    s.push_str("| Prefixes (v4+v6) | `Dataplane::load` | trie build v4 | trie build v6 | kernel load (`load_tables`) | v4 nodes | v6 nodes | map memory (`LoadStats`) | map memlock (kernel) | LPM create+verify | LPM inserts | LPM memlock |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for l in loads {
        let (c, i, m) = match &l.lpm {
            Some(x) => (secs(x.create), secs(x.insert), mib(x.memlock)),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let _ = writeln!(
            s,
            "| {} ({}+{}) | {} | {} | {} | {} | {} | {} | {} | {} | {c} | {i} | {m} |",
            l.set,
            l.v4,
            l.v6,
            secs(l.end_to_end),
            secs(l.build_v4),
            secs(l.build_v6),
            secs(l.kernel),
            l.v4_nodes,
            l.v6_nodes,
            mib(l.map_bytes),
            mib(l.memlock),
        );
    }
    s
}

/// The targets at the largest set: `embargo / XDP_DROP` <= 2.0 on the mix of hits and misses
/// (the four classes with equal weight, as BENCHMARKS.md states the target), and load < 2 s.
fn verdict(rows: &[Row], loads: &[Load]) -> String {
    let Some(last) = loads.last() else {
        return String::new();
    };
    let ours: Vec<&Row> = rows
        .iter()
        .filter(|r| r.set == last.set && r.prog == Prog::Embargo)
        .collect();
    let worst = ours.iter().map(|r| r.ratio).fold(0.0, f64::max);
    let mix = |prog: Prog| -> f64 {
        rows.iter()
            .filter(|r| r.set == last.set && r.prog == prog)
            .map(|r| r.s.mean)
            .sum()
    };
    let pooled = mix(Prog::Embargo) / mix(Prog::Drop);
    let lpm = mix(Prog::Lpm) / mix(Prog::Drop);
    let mut s = format!(
        "At {}: embargo / XDP_DROP = {:.2} on the mix (hits and misses of both families, equal weight); target <= 2.0: {}. By class: {}; {}.\n",
        last.set,
        pooled,
        if pooled <= 2.0 { "met" } else { "MISSED" },
        ours.iter()
            .map(|r| format!("{} {} {:.2}", r.family, r.class, r.ratio))
            .collect::<Vec<_>>()
            .join(", "),
        if worst <= 2.0 {
            "every class within 2.0".to_owned()
        } else {
            format!("worst class {worst:.2}, over 2.0")
        }
    );
    if lpm > 0.0 {
        let _ = writeln!(
            s,
            "Kernel LPM reference on the same mix: {lpm:.2} x XDP_DROP; embargo is {:.1}x faster.",
            lpm / pooled
        );
    }
    let _ = writeln!(
        s,
        "Policy load at {}: {:.3} s end to end; target < 2 s: {}.",
        last.set,
        last.end_to_end.as_secs_f64(),
        if last.end_to_end.as_secs_f64() < 2.0 {
            "met"
        } else {
            "MISSED"
        }
    );
    s
}

fn markdown(
    m: &Machine,
    args: &Args,
    generation: &str,
    table: &str,
    depth: &str,
    loads: &str,
    verdict: &str,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Data plane: ns per packet and policy load time\n");
    let _ = writeln!(
        s,
        "Measured {} on {} ({} cores{}), Linux {}, {} RAM, with `cargo run --release -p embargo-tests --bin embargo-bench --{}`.\n",
        m.date,
        m.cpu,
        m.cores,
        m.pinned
            .map(|c| format!(", bench pinned to CPU {c}"))
            .unwrap_or_default(),
        m.kernel,
        m.memory,
        if args.quick { " --quick" } else { "" },
    );
    let _ = writeln!(s, "### Method\n");
    let _ = writeln!(
        s,
        "- `BPF_PROG_TEST_RUN` on each program, per destination address, with `repeat` = {}; the kernel reports the average ns per repetition (truncated to whole ns). Each program runs {} times per address and the fastest is kept (interference only adds time). Median, mean and p99 are over addresses.",
        args.repeat, args.passes
    );
    let _ = writeln!(
        s,
        "- The programs are attached (driver mode) to idle veths in the bench's private network namespace so they stay in the kernel's XDP dispatcher; otherwise each test run with `repeat` > 1 would add and remove the program there, two RCU grace periods (tens of ms) per run."
    );
    let _ = writeln!(
        s,
        "- Programs: `XDP_DROP` (`bench_drop`, nothing else: the floor of XDP and of the test-run loop), `embargo` (the production `embargo_xdp`, loaded by `Dataplane::load_tables`, role `inside` on ifindex 1 so the destination is matched) and `kernel LPM` (`bench_lpm`: the same parser, then the kernel `BPF_MAP_TYPE_LPM_TRIE` with the same prefixes). They run interleaved address by address in one process, so `mean / XDP_DROP` compares like with like even on a noisy VM."
    );
    let _ = writeln!(
        s,
        "- Packets: Ethernet + IPv4 (42 bytes) or IPv6 (62 bytes) UDP-like frames; `ctx_in` is a `struct xdp_md` with `ingress_ifindex` = 1 (`lo`)."
    );
    let _ = writeln!(
        s,
        "- Every verdict is asserted: hits return `XDP_DROP`, misses `XDP_PASS`, and the production program's stats account for exactly the runs made."
    );
    let _ = writeln!(
        s,
        "- A test run repeats one packet, so the lookups run in a hot cache; real traffic over many destinations adds cache misses per trie level (1 to 5 chunk reads for IPv4 in the compact trie: the direct word, up to 3 nodes and a leaf; up to 32 node visits in the LPM trie)."
    );
    for line in generation.lines() {
        let _ = writeln!(
            s,
            "{}",
            if line.starts_with("- ") {
                format!("  {line}")
            } else {
                format!("- {line}")
            }
        );
    }
    let _ = writeln!(s, "\n### ns per packet\n\n{table}");
    let _ = writeln!(
        s,
        "### Where the time goes: trie depth\n\nThe same runs (hits and misses together), grouped by how many trie entries the lookup reads (1 = the root only; IPv4 /24 and shorter resolve in the root, /32 in 3; IPv6 /32 in 2, /48 in 4, /128 in 14).\n\n{depth}"
    );
    let _ = writeln!(
        s,
        "### Policy load\n\n`Dataplane::load` is end to end (trie build, map creation, mmap fill, verifier); the split columns are a second load of the same policy. Map memory is what `LoadStats` reports for the program's maps; memlock is the kernel's own accounting (fdinfo) of the program's maps and of the two LPM maps.\n\n{loads}"
    );
    let _ = writeln!(s, "{}", verdict.replace('\n', "\n\n").trim_end());
    s
}

// ---------------------------------------------------------------------------------------------
// --reload-state: what a reload costs for the restart state file

/// Per reload, each phase's time.
struct Phases(Vec<(&'static str, Duration)>);

/// Each state file format's size in bytes.
type FileSizes = Vec<(&'static str, usize)>;

/// `--reload-state`: loads the 1M+200k set (or 100k+20k with `--quick`) with the maps pinned
/// as the agent pins them, then times `--reloads` reloads that each add or remove one /24
/// (198.18.0.0/24, outside the generated public space): the in-place apply and each step of
/// keeping the state file up to date. Every phase is timed on its own, wall clock, and the
/// median and maximum over reloads are reported.
/// `--events`: what events cost a dropped packet. The smallest set (1k+200) is loaded once;
/// `--addrs` blocked IPv4 addresses (at most 1,024) are each run `repeat` times with events off
/// and then on (default limits, the ring never read: past the first events of each CPU's budget
/// every drop takes the steady-state path of an exhausted budget, a lost count), interleaved
/// address by address, `passes` times keeping each one's fastest. Prints both medians (ns per
/// run) and their difference.
fn events_on_off(args: &Args) -> Result<()> {
    if args.dispatcher {
        private_netns(1).context(
            "setting up a private netns with veth devices (or pass --no-dispatcher, much slower)",
        )?;
    }
    // The machine before pinning, so its core count is the machine's.
    let m = machine();
    let cpu = pin_to_last_cpu();
    let mut rng = Rng(SEED);
    let v4 = gen_v4(1_000, &mut rng);
    let v6 = gen_v6(200, &mut rng);
    let policy = Policy::one_group_per_entity(entities(&v4, &v6), v4.clone(), v6);
    let t4 = build::build_v4(&policy.v4)?;
    let t6 = build::build_v6(&policy.v6)?;
    let mut dp = Dataplane::load_tables(&policy, &t4, &t6).context("Dataplane::load_tables")?;
    dp.set_role(LO_IFINDEX, IfaceRole::Inside)?;
    let _ring = dp.take_events();
    let fd = dp.program().fd()?.as_fd().as_raw_fd();
    let _link = if args.dispatcher {
        let ifindex =
            embargo::dataplane::system::ifindex("bench0").context("no interface bench0")?;
        Some(attach_native(fd, ifindex).context("attaching embargo to bench0")?)
    } else {
        None
    };
    let p4 = probes_v4(&v4, &t4, args.addrs.min(1024), &mut rng);
    let src = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let frames: Vec<Vec<u8>> = p4
        .hits
        .iter()
        .map(|&a| Frame::ip(src, IpAddr::V4(Ipv4Addr::from(a))).bytes())
        .collect();
    let (mut off, mut on) = (vec![f64::MAX; frames.len()], vec![f64::MAX; frames.len()]);
    for _ in 0..args.passes {
        for (i, f) in frames.iter().enumerate() {
            for (limits, best) in [
                (embargo_abi::EventLimits::OFF, &mut off),
                (embargo_abi::EventLimits::DEFAULT, &mut on),
            ] {
                dp.set_event_limits(limits)?;
                let (action, ns) = test_run(fd, f, args.repeat)?;
                ensure!(action == XDP_DROP, "address {i} was not dropped ({action})");
                best[i] = best[i].min(f64::from(ns));
            }
        }
    }
    let (off, on) = (summarize(off), summarize(on));
    println!(
        "events off vs on, 1k+200 prefixes, {} blocked IPv4 addresses, R={}, P={}, CPU {}: \
         median off {:.1} ns, on {:.1} ns, difference {:+.1} ns (means {:.1} / {:.1})",
        frames.len(),
        args.repeat,
        args.passes,
        cpu.map_or("unpinned".into(), |c| c.to_string()),
        off.median,
        on.median,
        on.median - off.median,
        off.mean,
        on.mean
    );
    if let Some(path) = &args.markdown {
        let md = format!(
            "### Drop and monitor events on vs off\n\n\
             Measured {} on {} ({} cores), Linux {}, {} RAM, with `cargo run --release -p embargo-tests --bin embargo-bench -- --events{}`: \
             the 1k+200 set loaded once, {} blocked IPv4 addresses each run {} times through `BPF_PROG_TEST_RUN` with events off \
             (`output = \"none\"`) and on (the default budget, the ring never read: past the first events every drop takes the \
             exhausted-budget path and counts one lost), interleaved address by address, {} passes keeping each address's fastest, \
             CPU {}. Target (issue 14): on within 2 ns of off.\n\n\
             | events | median ns | mean ns |\n| --- | ---: | ---: |\n\
             | off | {:.1} | {:.1} |\n| on | {:.1} | {:.1} |\n| on - off | {:+.1} | {:+.1} |\n",
            m.date,
            m.cpu,
            m.cores,
            m.kernel,
            m.memory,
            if args.quick { " --quick" } else { "" },
            frames.len(),
            args.repeat,
            args.passes,
            cpu.map_or("unpinned".into(), |c| c.to_string()),
            off.median,
            off.mean,
            on.median,
            on.mean,
            on.median - off.median,
            on.mean - off.mean,
        );
        std::fs::write(path, md).with_context(|| format!("writing {path}"))?;
        eprintln!("wrote {path}");
    }
    Ok(())
}

fn reload_state(args: &Args) -> Result<()> {
    let m = machine();
    let (n4, n6) = if args.quick {
        (100_000, 20_000)
    } else {
        (1_000_000, 200_000)
    };
    let mut rng = Rng(SEED);
    let v4 = gen_v4(n4, &mut rng);
    let v6 = gen_v6(n6, &mut rng);
    let base = Policy::one_group_per_entity(entities(&v4, &v6), v4, v6);
    let mut with_extra = base.clone();
    with_extra
        .v4
        .push((Ipv4Network::new(Ipv4Addr::new(198, 18, 0, 0), 24)?, 0));
    with_extra.entities[0].prefixes_v4 += 1;
    let ids = EntityIndex::from_state(
        base.entities.iter().map(|e| e.id.clone()).collect(),
        base.groups
            .iter()
            .map(|g| (g.entity, g.key.clone()))
            .collect(),
    );
    let label = format!("{}+{}", count(n4), count(n6));
    eprintln!("[reload-state] loading {label} prefixes");
    let mut dp = Dataplane::load(&base).context("Dataplane::load")?;
    let pin = std::path::PathBuf::from(format!(
        "/sys/fs/bpf/embargo-bench-state-{}",
        std::process::id()
    ));
    let dir = std::path::PathBuf::from(format!(
        "/var/tmp/embargo-bench-state-{}",
        std::process::id()
    ));
    dp.set_pin_dir(&pin)?;
    dp.pin_maps(&pin)?;
    let result = reload_state_runs(args, &mut dp, &base, &with_extra, &ids, &dir);
    let _ = dp.unpin_maps();
    let _ = std::fs::remove_dir_all(&pin);
    let _ = std::fs::remove_dir_all(&dir);
    let (runs, sizes) = result?;
    let md = reload_state_markdown(&m, args, &label, &runs, &sizes);
    println!("{md}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, md).with_context(|| format!("writing {path}"))?;
        eprintln!("wrote {path}");
    }
    Ok(())
}

/// Writes `body` to `dir/name` as the agent writes its state file: a temporary file, fsync,
/// rename, fsync of the folder.
fn write_synced(dir: &std::path::Path, name: &str, body: &[u8]) -> Result<()> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(body)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn reload_state_runs(
    args: &Args,
    dp: &mut Dataplane,
    base: &Policy,
    with_extra: &Policy,
    ids: &EntityIndex,
    dir: &std::path::Path,
) -> Result<(Vec<Phases>, FileSizes)> {
    let mut runs = Vec::new();
    let mut sizes = Vec::new();
    // What the state writer's thread keeps: the state with its whole prefix sets.
    let first = dp
        .state_update(ids, "digest", Default::default())?
        .context("the maps are pinned")?;
    let mut mirror = first.head;
    first.v4.apply_to(&mut mirror.v4.prefixes);
    first.v6.apply_to(&mut mirror.v6.prefixes);
    for i in 0..args.reloads {
        let next = if i % 2 == 0 { with_extra } else { base };
        let mut p = Vec::new();
        let t = Instant::now();
        let stats = dp.apply(next).context("Dataplane::apply")?;
        p.push(("`Dataplane::apply` (1 prefix, in place)", t.elapsed()));
        ensure!(stats.prefixes_changed == 1, "{stats:?}");

        // Format 1, reproduced: the full snapshot with every prefix as a hex string, JSON,
        // written and fsynced, all under the lock.
        let t = Instant::now();
        let full = dp
            .state(ids, "digest", Default::default())?
            .context("the maps are pinned")?;
        let hex: [Vec<(String, u8, u32)>; 2] = [&full.v4.prefixes, &full.v6.prefixes].map(|s| {
            s.iter()
                .map(|((a, l), e)| (format!("{a:x}"), *l, *e))
                .collect()
        });
        p.push(("format 1: `Dataplane::state` + hex prefixes", t.elapsed()));
        let t = Instant::now();
        let mut body = serde_json::to_vec(&full)?;
        body.extend(serde_json::to_vec(&hex)?);
        p.push(("format 1: serialize (JSON)", t.elapsed()));
        let t = Instant::now();
        write_synced(dir, "format1.json", &body)?;
        p.push(("format 1: write + fsync + rename", t.elapsed()));
        let f1: Duration = p[1..4].iter().map(|(_, d)| *d).sum();
        p.push(("**format 1: under the lock**", f1));
        if i == 0 {
            sizes.push(("format 1 (JSON, hex prefixes)", body.len()));
        }
        drop((full, hex, body));

        // Format 2: the reload takes an update under the lock; the writer thread does the rest
        // (the same library calls, timed one by one here).
        let t = Instant::now();
        let update = dp
            .state_update(ids, "digest", Default::default())?
            .context("the maps are pinned")?;
        p.push((
            "**format 2: `Dataplane::state_update`, under the lock**",
            t.elapsed(),
        ));
        ensure!(
            matches!(&update.v4, PrefixLog::Edits(e) if e.len() == 1),
            "one IPv4 edit: {:?}",
            update.v4
        );
        let t = Instant::now();
        let (p4, p6) = (
            std::mem::take(&mut mirror.v4.prefixes),
            std::mem::take(&mut mirror.v6.prefixes),
        );
        mirror = update.head;
        mirror.v4.prefixes = p4;
        mirror.v6.prefixes = p6;
        update.v4.apply_to(&mut mirror.v4.prefixes);
        update.v6.apply_to(&mut mirror.v6.prefixes);
        p.push(("format 2, writer thread: apply the edits", t.elapsed()));
        let t = Instant::now();
        let body = state::encode(&mirror);
        p.push(("format 2, writer thread: encode", t.elapsed()));
        let t = Instant::now();
        state::write_bytes(dir, &body)?;
        p.push((
            "format 2, writer thread: write + fsync + rename",
            t.elapsed(),
        ));
        if i == 0 {
            sizes.push(("format 2 (binary records)", body.len()));
        }
        eprintln!(
            "[reload-state] reload {i}: {:?}",
            p.iter().map(|(_, d)| d).collect::<Vec<_>>()
        );
        runs.push(Phases(p));
    }
    // What the writer wrote is what the maps hold.
    let back = state::read(dir)?.context("the state file")?;
    let now = dp
        .state(ids, "digest", Default::default())?
        .context("the maps are pinned")?;
    ensure!(
        back == now,
        "the state file differs from the data plane's state"
    );
    Ok((runs, sizes))
}

fn reload_state_markdown(
    m: &Machine,
    args: &Args,
    label: &str,
    runs: &[Phases],
    sizes: &[(&str, usize)],
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### Reload cost with the restart state file: format 1 and format 2\n"
    );
    let _ = writeln!(
        s,
        "Measured {} on {} ({} cores), Linux {}, {} RAM, with `cargo run --release -p embargo-tests --bin embargo-bench -- --reload-state{}`: {label} prefixes (the generator above) loaded with `Dataplane::load`, maps pinned in bpffs, then {} reloads that each add or remove one /24; the state folder is on the root file system (`/var/tmp`). Each reload is followed by both ways of keeping the state file: format 1 (before this change, reproduced in the bench: the full snapshot with hex prefixes, JSON, write and fsync, all under the agent's lock) and format 2 (`Dataplane::state_update` under the lock; the writer thread's steps timed one by one with the same library calls). Wall clock per phase, median and maximum over the reloads. File sizes: {}.\n",
        m.date,
        m.cpu,
        m.cores,
        m.kernel,
        m.memory,
        if args.quick { " --quick" } else { "" },
        runs.len(),
        sizes
            .iter()
            .map(|(what, n)| format!("{what} {:.1} MB", *n as f64 / 1e6))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(s, "| phase | median ms | max ms |\n| --- | ---: | ---: |");
    if let Some(first) = runs.first() {
        for (k, (name, _)) in first.0.iter().enumerate() {
            let mut v: Vec<f64> = runs.iter().map(|r| r.0[k].1.as_secs_f64() * 1e3).collect();
            v.sort_by(f64::total_cmp);
            let _ = writeln!(
                s,
                "| {name} | {:.1} | {:.1} |",
                v[v.len() / 2],
                v[v.len() - 1]
            );
        }
    }
    s
}
