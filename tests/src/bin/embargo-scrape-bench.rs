//! `embargo-scrape-bench`: what one Prometheus scrape of the agent costs with many entities.
//! Needs root (it loads and attaches the XDP program); run the release build:
//!
//! ```text
//! cargo run --release -p embargo-tests --bin embargo-scrape-bench -- [--quick] [--markdown FILE]
//! ```
//!
//! The bench moves itself into a private network namespace with one veth pair, loads a policy
//! of `--entities` entities (default 1,000; alternately `drop` and `monitor`, both directions,
//! 4 IPv4 /24s and 1 IPv6 /48 each) with [`Dataplane::load`], attaches it to both ends (one
//! `inside`, one `outside`) and serves `/metrics` exactly as `embargo run` does: one
//! [`Registry`], [`Metrics::register`], a source closure over `Arc<Mutex<..>>` that calls
//! [`Snapshot::read`], and [`embargo::observe::http`] on the namespace's loopback. Then, sequentially:
//!
//! * `GET /metrics` over HTTP/1.0 on loopback, end to end (connect, request, whole response);
//! * [`metrics::render`] alone (gather and encode, the map reads included);
//! * [`Snapshot::read`] with the kernel counters alone (the BPF map reads).
//!
//! Each is run `--scrapes` times after a few warm-up runs; the median, p90 and extremes are
//! reported with the response size and series count. The counters are zero (no traffic), which
//! costs the same map reads as any other values and gives the smallest exposition: one series
//! per entity and interface per counter family (see "Labels stay bounded" in
//! `embargo::observe::metrics`). It is a measurement, not a test: nothing here asserts a time.

use std::{
    fmt::Write as _,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use clap::Parser;
use embargo::{
    config::{Action, DirectionSet, Interface, Role, XdpMode},
    dataplane::Dataplane,
    observe::{
        http,
        metrics::{self, Metrics, Snapshot},
    },
    policy::{EntityInfo, Policy},
};
use embargo_tests::lab;
use ipnetwork::{Ipv4Network, Ipv6Network};
use prometheus::Registry;

/// The veth pair the program is attached to, inside the bench's private namespace.
const IFACES: [(&str, Role); 2] = [("embsc0", Role::Inside), ("embsc1", Role::Outside)];
const WARMUP: usize = 5;

struct Args {
    quick: bool,
    markdown: Option<String>,
    entities: u32,
    scrapes: usize,
}

/// The command line (`--help`); [`parse_args`] turns it into [`Args`].
#[derive(Parser)]
#[command(
    name = "embargo-scrape-bench",
    about = "What one Prometheus scrape of the agent costs with many entities \
             (needs root; run the release build)"
)]
struct Cli {
    /// Smoke run: 30 scrapes
    #[arg(long)]
    quick: bool,
    /// Also write a Markdown section (machine, method, results) to FILE
    #[arg(long, value_name = "FILE")]
    markdown: Option<String>,
    /// Entities in the policy
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    entities: u32,
    /// Measured runs of each kind (default 200, quick 30)
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    scrapes: usize,
}

fn parse_args() -> Result<Args> {
    let cli = Cli::parse();
    let args = Args {
        quick: cli.quick,
        markdown: cli.markdown,
        entities: cli.entities,
        // 0 (the default) is the mode's own default.
        scrapes: match cli.scrapes {
            0 if cli.quick => 30,
            0 => 200,
            n => n,
        },
    };
    ensure!(args.entities > 0, "--entities must be at least 1");
    Ok(args)
}

/// `n` entities, alternately drop and monitor; entity `i` holds 10.x.y.0/24 for 4 consecutive
/// /24s and 2001:db8:i::/48.
fn policy(n: u32) -> Policy {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    let entities = (0..n)
        .map(|i| {
            for k in 0..4u32 {
                let net = 0x0a00_0000 | ((i * 4 + k) << 8);
                v4.push((Ipv4Network::new(Ipv4Addr::from(net), 24).expect("valid"), i));
            }
            let net = Ipv6Addr::new(0x2001, 0x0db8, i as u16, 0, 0, 0, 0, 0);
            v6.push((Ipv6Network::new(net, 48).expect("valid"), i));
            EntityInfo {
                id: format!("bench-entity-{i:04}"),
                name: format!("Bench Entity {i}"),
                action: if i % 2 == 0 {
                    Action::Drop
                } else {
                    Action::Monitor
                },
                direction: DirectionSet::Both,
                prefixes_v4: 4,
                prefixes_v6: 1,
                retired: false,
            }
        })
        .collect();
    Policy::one_group_per_entity(entities, v4, v6)
}

/// Moves this (still single-threaded) process into a private network namespace with `lo` up
/// and the veth pair of [`IFACES`]; they vanish with the process.
fn private_netns() -> Result<()> {
    // SAFETY: no preconditions; affects this thread, the only one, and the threads it spawns.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error()).context("unshare(CLONE_NEWNET)");
    }
    let ip = |args: &[&str]| -> Result<()> {
        lab::run(std::process::Command::new("ip").args(args))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    };
    ip(&["link", "set", "lo", "up"])?;
    let [(a, _), (b, _)] = IFACES;
    ip(&["link", "add", a, "type", "veth", "peer", "name", b])?;
    ip(&["link", "set", a, "up"])?;
    ip(&["link", "set", b, "up"])?;
    Ok(())
}

/// Median, p90, min and max of `samples`.
struct Summary {
    median: Duration,
    p90: Duration,
    min: Duration,
    max: Duration,
}

fn summarize(mut samples: Vec<Duration>) -> Summary {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Summary {
        median: at(0.5),
        p90: at(0.9),
        min: samples[0],
        max: samples[samples.len() - 1],
    }
}

/// Runs `f` WARMUP times, then `n` times timed.
fn time(n: usize, mut f: impl FnMut() -> Result<()>) -> Result<Summary> {
    for _ in 0..WARMUP {
        f()?;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        f()?;
        samples.push(start.elapsed());
    }
    Ok(summarize(samples))
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    ensure!(
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() } == 0,
        "embargo-scrape-bench loads and attaches BPF programs: run it as root"
    );
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; times are for the release build (--release)");
    }
    // Before any thread exists: every thread started later (the runtime's) inherits it.
    private_netns().context("setting up a private netns with a veth pair")?;

    let policy = policy(args.entities);
    let started = Instant::now();
    let mut dataplane = Dataplane::load(&policy).context("loading the policy")?;
    let load = started.elapsed();
    let interfaces: Vec<Interface> = IFACES
        .iter()
        .map(|(name, role)| Interface {
            name: (*name).to_owned(),
            role: *role,
            mode: XdpMode::Auto,
            egress: false,
        })
        .collect();
    for i in &interfaces {
        dataplane
            .attach(i)
            .with_context(|| format!("attaching to {}", i.name))?;
    }
    let modes: Vec<String> = dataplane
        .attachments()
        .iter()
        .map(|a| format!("{} {} ({})", a.name, a.role, a.mode))
        .collect();
    eprintln!(
        "{} entities, {} IPv4 + {} IPv6 prefixes loaded in {load:.2?}; attached to {}",
        policy.entities.len(),
        policy.v4.len(),
        policy.v6.len(),
        modes.join(", ")
    );

    // As `embargo run` wires it.
    let shared = Arc::new(Mutex::new((dataplane, policy)));
    let registry = Registry::new();
    let metrics = Metrics::register(&registry)?;
    let state = Arc::clone(&shared);
    let configured = interfaces.clone();
    metrics.set_source(move |kernel| {
        let s = state.lock().expect("not poisoned");
        Ok(Snapshot::read(&s.0, &s.1, &configured, kernel)?)
    });
    metrics.reload_succeeded(metrics::unix_now(), "bench");
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let addr: SocketAddr = runtime.block_on(async {
        let server = http::bind("127.0.0.1:0".parse().expect("an address")).await?;
        let addr = server.local_addr();
        server.spawn(registry.clone(), metrics.clone());
        Ok::<_, anyhow::Error>(addr)
    })?;
    ensure!(
        metrics.readiness().is_ok(),
        "not ready: {:?}",
        metrics.readiness()
    );

    let (status, body) = lab::http_get(addr, "/metrics").map_err(|e| anyhow::anyhow!("{e}"))?;
    ensure!(status == 200, "GET /metrics answered {status}: {body}");
    let series = body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    let counter_series = body
        .lines()
        .filter(|l| l.starts_with("embargo_packets_total{"))
        .count();
    let expected = args.entities as usize * IFACES.len();
    ensure!(
        counter_series == expected,
        "expected {expected} embargo_packets_total series (entities x interfaces), got {counter_series}"
    );

    let http = time(args.scrapes, || {
        let (status, body) = lab::http_get(addr, "/metrics").map_err(|e| anyhow::anyhow!("{e}"))?;
        ensure!(
            status == 200 && body.len() > 1000,
            "GET /metrics answered {status}"
        );
        Ok(())
    })?;
    let render = time(args.scrapes, || {
        metrics::render(&registry)?;
        Ok(())
    })?;
    let reads = time(args.scrapes, || {
        let s = shared.lock().expect("not poisoned");
        Snapshot::read(&s.0, &s.1, &interfaces, true)?;
        Ok(())
    })?;
    drop(runtime);

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| what | median ms | p90 ms | min ms | max ms |\n| --- | ---: | ---: | ---: | ---: |"
    );
    for (what, s) in [
        ("`GET /metrics` over loopback HTTP, end to end", &http),
        (
            "render: gather + text encoding (map reads included)",
            &render,
        ),
        ("map reads alone (`Snapshot::read` with counters)", &reads),
    ] {
        let _ = writeln!(
            table,
            "| {what} | {} | {} | {} | {} |",
            ms(s.median),
            ms(s.p90),
            ms(s.min),
            ms(s.max)
        );
    }
    let lookups = args.entities as usize * IFACES.len() * 4 + embargo_abi::Stat::COUNT as usize;
    let summary = format!(
        "{} entities on {} interfaces: response {} bytes ({:.0} KiB), {series} series ({counter_series} per counter family); {lookups} per-CPU map lookups per scrape; {} scrapes of each kind after {WARMUP} warm-up runs.",
        args.entities,
        IFACES.len(),
        body.len(),
        body.len() as f64 / 1024.0,
        args.scrapes,
    );
    println!("{summary}\n\n{table}");
    if let Some(path) = &args.markdown {
        let md = markdown(&args, &summary, &table, &modes);
        std::fs::write(path, md).with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}

fn markdown(args: &Args, summary: &str, table: &str, modes: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Metrics: the cost of a scrape\n");
    let _ = writeln!(
        s,
        "Measured on {} ({} cores), Linux {}, with `cargo run --release -p embargo-tests --bin embargo-scrape-bench --{}`.\n",
        cpu_model(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        embargo::dataplane::system::kernel_release().unwrap_or_else(|| "unknown".into()),
        if args.quick { " --quick" } else { "" },
    );
    let _ = writeln!(
        s,
        "- A policy of {} entities (alternately drop and monitor, 4 IPv4 /24s and 1 IPv6 /48 each) loaded with `Dataplane::load` and attached to both ends of a veth pair in the bench's private network namespace: {}.",
        args.entities,
        modes.join(", ")
    );
    let _ = writeln!(
        s,
        "- `/metrics` is served as `embargo run` serves it: one `Registry`, `Metrics::register`, a source closure over `Arc<Mutex<..>>` calling `Snapshot::read`, and `embargo::observe::http` on the namespace's loopback. Scrapes are sequential; the counters are zero (same map reads as any value, and the smallest exposition: one series per entity and interface per counter family)."
    );
    let _ = writeln!(s, "- {summary}\n");
    let _ = writeln!(s, "{}", table.trim_end());
    s
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".into(), |(_, v)| v.trim().to_owned())
}
