//! `embargo-country-bench`: what the whole country table costs as one policy. Needs root (it
//! loads the program) and the pinned tables (`cargo xtask tables`); run the release build:
//!
//! ```text
//! cargo run --release -p embargo-tests --bin embargo-country-bench -- [--tables DIR] [--markdown FILE]
//! ```
//!
//! The policy: one `drop` entity per ISO 3166-1 code in the pinned
//! `@ip-location-db/geo-whois-asn-country` tables, each with one `countries = [code]` group,
//! over both files (every IPv4 and IPv6 range). Measured, in one fresh process that does
//! nothing else:
//! * ranges read per family, and the prefixes the policy compiles to;
//! * time to read the tables and resolve the groups ([`embargo::policy::resolve::resolve`]), to compile
//!   ([`embargo::policy::compile::compile`]), and to load (what [`Dataplane::load`] does, in its two
//!   steps timed apart: the trie build, then [`Dataplane::load_tables`]: map creation, filling,
//!   the verifier, the reload bookkeeping) — the agent's start-up path for this policy;
//! * kernel map memory: the sum of `memlock` over the process's BPF map file descriptors in
//!   `/proc/self/fdinfo` (what the kernel charges for the maps), and, for comparison, the sum
//!   of `max_entries` x `value_size` (x CPUs for per-CPU maps) from the same file;
//! * agent memory: peak resident set (`VmHWM` in `/proc/self/status`) after compiling and
//!   loading, and the resident set (`VmRSS`) then, with the compiled policy and the data plane
//!   still held, as the agent holds them.

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use embargo::{config::Action, dataplane::Dataplane, policy::Policy};
use embargo_tests::policy::{LabEntity, LabPolicy};

const PACKAGE: &str = "geo-whois-asn-country-2.3.2026061719";
const FILES: [&str; 2] = [
    "geo-whois-asn-country-ipv4.csv",
    "geo-whois-asn-country-ipv6.csv",
];

/// A `/proc/self/status` field in KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// (memlock, sum of max_entries x value_size) over this process's BPF maps, bytes.
fn maps_memory() -> (u64, u64) {
    const PERCPU: [u64; 3] = [5, 6, 10]; // PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH
    let cpus = embargo::dataplane::system::possible_cpus() as u64;
    let (mut memlock, mut declared) = (0, 0);
    for fd in std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
    {
        let is_map = std::fs::read_link(fd.path())
            .is_ok_and(|t| t.to_string_lossy() == "anon_inode:bpf-map");
        if !is_map {
            continue;
        }
        let info = std::fs::read_to_string(Path::new("/proc/self/fdinfo").join(fd.file_name()))
            .unwrap_or_default();
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        memlock += field("memlock:");
        let per = if PERCPU.contains(&field("map_type:")) {
            cpus
        } else {
            1
        };
        declared += field("max_entries:") * field("value_size:") * per;
    }
    (memlock, declared)
}

fn policy_text(dir: &Path, codes: &BTreeSet<String>) -> String {
    let mut policy = LabPolicy::new().authority("BENCH").top(&format!(
        "country_table = [{:?}, {:?}]",
        dir.join(FILES[0]).display().to_string(),
        dir.join(FILES[1]).display().to_string()
    ));
    for code in codes {
        policy = policy.entity(
            LabEntity::countries(
                &format!("country-{}", code.to_ascii_lowercase()),
                Action::Drop,
                &[code],
            )
            .name(&format!("Jurisdiction {code}"))
            .designation("bench", &format!("BENCH-{code}"))
            .source("bench")
            .guard("bench: a whole jurisdiction")
            .evidence("jurisdiction", PACKAGE, "2026-11-27", "medium"),
        );
    }
    policy.to_string()
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

/// The command line (`--help`).
#[derive(Parser)]
#[command(
    name = "embargo-country-bench",
    about = "What the whole country table costs as one policy \
             (needs root and `cargo xtask tables`; run the release build)"
)]
struct Cli {
    /// The pinned tables' folder [default: target/tables of the workspace]
    #[arg(long, value_name = "DIR")]
    tables: Option<PathBuf>,
    /// Also write the Markdown section to FILE
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
}

fn main() -> Result<()> {
    let Cli { tables, markdown } = Cli::parse();
    let tables =
        tables.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tables"));
    let dir = tables.join(PACKAGE);
    for f in FILES {
        if !dir.join(f).is_file() {
            bail!(
                "{} is missing: run `cargo xtask tables` first",
                dir.join(f).display()
            );
        }
    }
    // The codes, read from the files: every ISO 3166-1 code that has a range.
    let mut codes = BTreeSet::new();
    let mut rows = [0usize; 2];
    for (i, f) in FILES.iter().enumerate() {
        let text = std::fs::read_to_string(dir.join(f))?;
        for line in text.lines().filter(|l| !l.is_empty()) {
            rows[i] += 1;
            let code = line.rsplit(',').next().unwrap_or_default();
            if embargo::inputs::ranges::country_code(code).is_ok() {
                codes.insert(code.to_owned());
            }
        }
    }
    let rss_before = status_kib("VmRSS:");

    let text = policy_text(&dir, &codes);
    let t = Instant::now();
    let config = embargo::config::parse(Path::new("country-bench.toml"), text)?;
    let resolved = embargo::policy::resolve::resolve(&config)?;
    let resolve_time = t.elapsed();
    let t = Instant::now();
    let compiled = embargo::policy::compile::compile(
        &embargo::config::validate::validate(&config)?,
        &resolved,
        embargo::today(),
    )?;
    let compile_time = t.elapsed();
    // The agent keeps the compiled policy, not what was resolved.
    drop(resolved);
    let policy = Policy::from(&compiled);
    // `Dataplane::load` in its two steps, timed apart.
    let t = Instant::now();
    let v4 = embargo::dataplane::trie::build::build_v4(&policy.v4)?;
    let v6 = embargo::dataplane::trie::build::build_v6(&policy.v6)?;
    let build_time = t.elapsed();
    let t = Instant::now();
    let dp =
        Dataplane::load_tables(&policy, &v4, &v6).context("loading the policy (needs root)")?;
    let kernel_time = t.elapsed();
    drop((v4, v6));
    let load_time = build_time + kernel_time;
    let (memlock, declared) = maps_memory();
    let (hwm, rss) = (status_kib("VmHWM:"), status_kib("VmRSS:"));
    let stats = dp.load_stats;

    let machine = {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
        let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
        format!(
            "{date} on {cpu} ({} cores), Linux {}",
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            embargo::dataplane::system::kernel_release().unwrap_or_default()
        )
    };
    let mut md = String::new();
    writeln!(
        md,
        "## Country table as one policy: compile, load, memory\n"
    )?;
    writeln!(
        md,
        "Measured {machine}, with `cargo run --release -p embargo-tests --bin embargo-country-bench` \
         (one process that reads, compiles and loads the policy and does nothing else).\n"
    )?;
    writeln!(
        md,
        "- Policy: `@ip-location-db/geo-whois-asn-country` {} (`cargo xtask tables`), every IPv4 \
         and IPv6 range; one `drop` entity per ISO 3166-1 code present ({} entities, one \
         `countries` group each). Codes outside ISO 3166-1 in the table (`AN`, `XK`) are not listed.",
        PACKAGE.rsplit('-').next().unwrap_or_default(),
        codes.len()
    )?;
    writeln!(
        md,
        "- Times are wall clock around the library calls the agent makes at start: \
         `resolve::resolve` (reads and indexes both CSVs, hashes them, turns each group into \
         prefixes), `compile::compile`, and `Dataplane::load` (trie build, then map creation, mmap \
         fill, verifier and the `LiveTrie` kept for in-place reloads, timed apart)."
    )?;
    writeln!(
        md,
        "- Kernel map memory: the sum of `memlock` over the process's BPF map descriptors in \
         `/proc/self/fdinfo` (what the kernel charges), and the sum of `max_entries` x \
         `value_size` (x CPUs for per-CPU maps) from the same files."
    )?;
    writeln!(
        md,
        "- Agent memory: `VmHWM` (peak resident set) and `VmRSS` from `/proc/self/status` after \
         loading, the compiled policy and data plane still held; `VmRSS` before was {}.\n",
        mib(rss_before * 1024)
    )?;
    writeln!(md, "| what | value |")?;
    writeln!(md, "| --- | ---: |")?;
    writeln!(
        md,
        "| ranges read (IPv4 / IPv6) | {} / {} |",
        rows[0], rows[1]
    )?;
    writeln!(
        md,
        "| prefixes compiled (IPv4 / IPv6) | {} / {} |",
        policy.v4.len(),
        policy.v6.len()
    )?;
    writeln!(
        md,
        "| trie nodes (IPv4 / IPv6) | {} / {} |",
        stats.v4_nodes, stats.v6_nodes
    )?;
    writeln!(md, "| read + resolve | {} |", secs(resolve_time))?;
    writeln!(md, "| compile | {} |", secs(compile_time))?;
    writeln!(md, "| load (`Dataplane::load`) | {} |", secs(load_time))?;
    writeln!(
        md,
        "| of which trie build (`table::build_v4` + `build_v6`) | {} |",
        secs(build_time)
    )?;
    writeln!(
        md,
        "| of which maps, fill, verifier, `LiveTrie` (`Dataplane::load_tables`) | {} |",
        secs(kernel_time)
    )?;
    writeln!(md, "| kernel map memory, memlock | {} |", mib(memlock))?;
    writeln!(
        md,
        "| kernel map memory, max_entries x value_size | {} |",
        mib(declared)
    )?;
    writeln!(md, "| agent peak RSS (VmHWM) | {} |", mib(hwm * 1024))?;
    writeln!(md, "| agent RSS after load (VmRSS) | {} |", mib(rss * 1024))?;
    print!("{md}");
    if let Some(path) = markdown {
        std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))?;
    }
    drop(dp);
    Ok(())
}
