//! Embargo's developer tasks: `cargo xtask setup | test | fuzz | demo | bench | tables | matrix |
//! dist`.
//!
//! `setup` is idempotent and every other task runs it first, so each works on a fresh machine.

mod dist;
mod fuzz;
mod matrix;
mod setup;
mod tables;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Embargo developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need (nightly rust-src, bpf-linker, Debian packages).
    Setup,
    /// Run every test: formatting, clippy, unit tests, each fuzz target for a few seconds, then
    /// the root-only kernel tests.
    Test {
        /// Skip the formatting and clippy checks.
        #[arg(long)]
        no_lint: bool,
        /// Skip the kernel matrix, which otherwise runs last on the Debian kernels (every check
        /// of `cargo xtask matrix`; no host column: the host tests just ran; about 10 minutes
        /// under TCG). For quick local runs only: CI runs it.
        #[arg(long)]
        no_matrix: bool,
    },
    /// Run the fuzz targets (cargo-fuzz, libFuzzer) in fuzz/, one after the other, from their
    /// seeds and the corpus they grew before; fails if any finds a crash, a timeout or an OOM.
    Fuzz {
        /// Only this target (`cargo fuzz list` names them).
        #[arg(long)]
        target: Option<String>,
        /// Seconds per target.
        #[arg(long, default_value_t = fuzz::DEFAULT_SECONDS)]
        seconds: u64,
    },
    /// The main job on the embedded default, in a throwaway network-namespace lab.
    Demo {
        /// Configuration to run (defaults to the embedded default).
        #[arg(long, default_value = "config/default.toml")]
        config: PathBuf,
    },
    /// Boot each kernel of the matrix (pinned Debian packages) under qemu and run the demo, the
    /// fixture tables, the restart tests and the egress-API probe inside; the same on the host.
    /// Prints a table of kernel × check; fails if any cell fails.
    Matrix {
        /// Only this kernel (repeatable): debian12-6.1, debian12-6.12 or host.
        #[arg(long = "kernel", value_name = "NAME")]
        kernels: Vec<String>,
        /// Only the restart tests' two kill -9 cases (same policy; egress).
        #[arg(long)]
        quick: bool,
        /// How qemu runs the guests: auto (KVM when a probe boot works, else TCG), kvm, tcg.
        #[arg(long, value_enum, default_value = "auto")]
        accel: matrix::Accel,
        /// Deadline of one boot (or of the host's run), checks included, in seconds.
        #[arg(long, default_value_t = matrix::BOOT_TIMEOUT_SECS)]
        timeout: u64,
    },
    /// Build what an operator installs into target/dist/: the stripped release binary (its
    /// debug info split out), a .deb, a release tarball with install.sh, and the container
    /// image localhost/embargo:VERSION (podman).
    Dist {
        /// Skip the container image.
        #[arg(long)]
        no_container: bool,
    },
    /// Fetch the pinned IP-to-ASN and IP-to-country range tables (npm, verified by SHA-256)
    /// into target/tables/, for the scale test and the bench.
    Tables,
    /// Measure the data plane against XDP_DROP and the kernel LPM trie, the cost of a metrics
    /// scrape, what a reload pays for the restart state file, and the whole country table as
    /// one policy; update BENCHMARKS.md.
    Bench {
        /// Smaller sizes, for a smoke run (does not update BENCHMARKS.md).
        #[arg(long)]
        quick: bool,
        /// Only the country-table section (compile, load, memory).
        #[arg(long)]
        countries: bool,
        /// Extra arguments for the bench binary.
        #[arg(last = true)]
        args: Vec<String>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    std::env::set_current_dir(&root).context("entering the workspace root")?;
    match cli.task {
        Task::Setup => setup::run(),
        Task::Test { no_lint, no_matrix } => test(no_lint, !no_matrix),
        Task::Fuzz { target, seconds } => fuzz::task(target.as_deref(), seconds),
        Task::Demo { config } => demo(&config),
        Task::Bench {
            quick,
            countries,
            args,
        } => {
            if !countries {
                bench(quick, &args)?;
            }
            bench_countries(quick)
        }
        Task::Tables => tables::run(),
        Task::Dist { no_container } => dist::run(!no_container),
        Task::Matrix {
            kernels,
            quick,
            accel,
            timeout,
        } => {
            setup::run()?;
            require_root("the kernel matrix")?;
            let report = matrix::run(&matrix::Options {
                kernels,
                quick,
                accel,
                boot_timeout: std::time::Duration::from_secs(timeout),
            })?;
            if report.failed() > 0 {
                bail!("{} of the matrix's cells failed", report.failed());
            }
            Ok(())
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// Runs a command, failing with its command line if it fails.
pub(crate) fn exec(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn require_root(what: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "{what} loads BPF programs and creates network namespaces: run it as root \
             (e.g. `sudo -E cargo xtask ...`)"
        );
    }
    Ok(())
}

fn test(no_lint: bool, with_matrix: bool) -> Result<()> {
    setup::run()?;
    if !no_lint {
        // Nightly rustfmt: rustfmt.toml groups and merges imports, which stable cannot.
        exec(Command::new("rustup").args(["run", "nightly", "cargo", "fmt", "--all", "--check"]))?;
        // The eBPF crate on its own target (feature unification differs from the host's).
        exec(Command::new("rustup").args([
            "run",
            "nightly",
            "cargo",
            "clippy",
            "-p",
            "embargo-xdp",
            "--release",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--bins",
            "--",
            "-D",
            "warnings",
        ]))?;
        exec(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
        // Licences and duplicate crates (deny.toml); advisories need the RustSec database.
        exec(cargo().args(["deny", "check", "licenses", "bans"]))?;
    }
    let mut tally = Tally::default();
    // Unit tests: everything that needs no root.
    tally.run(cargo().args([
        "test",
        "--workspace",
        "--exclude",
        "embargo-tests",
        "--exclude",
        "embargo-xdp",
    ]))?;
    // Each fuzz target for a few seconds, one passed or failed test each.
    let outcomes = fuzz::run(None, fuzz::Build::Dev, fuzz::TEST_SECONDS)?;
    tally.fuzzed(&outcomes)?;
    require_root("the kernel tests")?;
    // The country-table scale test loads the real tables.
    tables::run()?;
    // The netns tests start the real binary.
    exec(cargo().args(["build", "--bin", "embargo"]))?;
    // What an operator installs; tests/tests/dist.rs installs the .deb and the tarball into
    // throwaway roots and runs the image.
    dist::run(true)?;
    // Kernel tests: BPF_PROG_TEST_RUN fixtures and netns labs. One thread: labs attach XDP
    // and create namespaces, and the fixtures share per-CPU counters within a test.
    tally.run(cargo().args([
        "test",
        "-p",
        "embargo-tests",
        "--lib",
        "--bins",
        "--tests",
        "--",
        "--test-threads=1",
    ]))?;
    if with_matrix {
        // The Debian kernels under qemu; each cell counts as one test.
        let report = matrix::run(&matrix::Options {
            kernels: matrix::KERNELS.iter().map(|k| k.name.to_owned()).collect(),
            quick: false,
            accel: matrix::Accel::Auto,
            boot_timeout: std::time::Duration::from_secs(matrix::BOOT_TIMEOUT_SECS),
        })?;
        println!(
            "matrix: {} passed, {} failed",
            report.passed(),
            report.failed()
        );
        tally.passed += report.passed();
        tally.failed += report.failed();
        if report.failed() > 0 {
            println!("\ntotal: {} passed, {} failed", tally.passed, tally.failed);
            bail!("{} of the matrix's cells failed", report.failed());
        }
    }
    // One closing line for the whole run, in the plain form CI reads.
    println!("\ntotal: {} passed, {} failed", tally.passed, tally.failed);
    Ok(())
}

/// Counts what every `cargo test` run reports, echoing its output as it goes.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
}

impl Tally {
    /// Counts each fuzz target's run as one test; fails if any target found something.
    fn fuzzed(&mut self, outcomes: &[fuzz::Outcome]) -> Result<()> {
        let failed: Vec<&str> = outcomes
            .iter()
            .filter(|o| !o.passed)
            .map(|o| o.target.as_str())
            .collect();
        self.passed += (outcomes.len() - failed.len()) as u64;
        self.failed += failed.len() as u64;
        if !failed.is_empty() {
            bail!(
                "fuzz targets failed: {} (inputs in fuzz/artifacts/)",
                failed.join(", ")
            );
        }
        Ok(())
    }

    fn run(&mut self, cmd: &mut Command) -> Result<()> {
        use std::io::{BufRead as _, BufReader};
        eprintln!("+ {cmd:?}");
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {cmd:?}"))?;
        let stdout = child.stdout.take().expect("piped");
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            // "test result: ok. 25 passed; 0 failed; ..."
            if let Some(rest) = line.strip_prefix("test result: ") {
                let num = |key: &str| {
                    rest.split(';')
                        .find_map(|part| {
                            part.trim()
                                .trim_start_matches("ok. ")
                                .trim_start_matches("FAILED. ")
                                .strip_suffix(key)
                        })
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .unwrap_or(0)
                };
                self.passed += num(" passed");
                self.failed += num(" failed");
            }
        }
        let status = child.wait()?;
        if !status.success() {
            bail!("{cmd:?} failed: {status}");
        }
        Ok(())
    }
}

fn demo(config: &Path) -> Result<()> {
    setup::run()?;
    require_root("the demo")?;
    // The agent's binary, which the demo's lab starts (embargo-tests is not a default member).
    exec(cargo().args(["build", "-p", "embargo", "--bin", "embargo"]))?;
    exec(
        cargo()
            .args([
                "run",
                "--quiet",
                "-p",
                "embargo-tests",
                "--bin",
                "embargo-demo",
                "--",
            ])
            .arg(config),
    )
}

const COUNTRIES_BEGIN: &str = "<!-- bench-countries:begin (written by `cargo xtask bench`) -->";
const COUNTRIES_END: &str = "<!-- bench-countries:end -->";

/// The whole country table as one policy: compile and load time, map and agent memory.
fn bench_countries(quick: bool) -> Result<()> {
    setup::run()?;
    require_root("the benchmark")?;
    tables::run()?;
    let out = Path::new("target/bench-countries.md");
    // The whole table either way: it has no smaller size to run.
    run_bench_bin("embargo-country-bench", &[], false, out, &[])?;
    if quick {
        eprintln!("quick run: BENCHMARKS.md left as it is");
        return Ok(());
    }
    let section = std::fs::read_to_string(out).context("reading the country bench's markdown")?;
    replace_section(COUNTRIES_BEGIN, COUNTRIES_END, section.trim())
}

/// Rewrites what lies between `begin` and `end` in BENCHMARKS.md.
fn replace_section(begin: &str, end: &str, section: &str) -> Result<()> {
    let doc_path = Path::new("BENCHMARKS.md");
    let doc = std::fs::read_to_string(doc_path).context("reading BENCHMARKS.md")?;
    let (Some(b), Some(e)) = (doc.find(begin), doc.find(end)) else {
        bail!("BENCHMARKS.md lacks the {begin} / {end} markers");
    };
    let updated = format!("{}{begin}\n{section}\n{}", &doc[..b], &doc[e..]);
    std::fs::write(doc_path, updated).context("writing BENCHMARKS.md")?;
    eprintln!("BENCHMARKS.md updated between {begin} and {end}");
    Ok(())
}

const BENCH_BEGIN: &str = "<!-- bench:begin (written by `cargo xtask bench`) -->";
const BENCH_END: &str = "<!-- bench:end -->";
const STATE_BEGIN: &str = "<!-- bench-state:begin (written by `cargo xtask bench`) -->";
const STATE_END: &str = "<!-- bench-state:end -->";
const EVENTS_BEGIN: &str = "<!-- bench-events:begin (written by `cargo xtask bench`) -->";
const EVENTS_END: &str = "<!-- bench-events:end -->";

/// Runs bench binary `bin` of embargo-tests (release) with `first` arguments, `--quick` when
/// asked, `--markdown out`, then `rest`.
fn run_bench_bin(
    bin: &str,
    first: &[&str],
    quick: bool,
    out: &Path,
    rest: &[String],
) -> Result<()> {
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "-p",
        "embargo-tests",
        "--bin",
        bin,
        "--",
    ])
    .args(first);
    if quick {
        cmd.arg("--quick");
    }
    cmd.arg("--markdown").arg(out).args(rest);
    exec(&mut cmd)
}

fn bench(quick: bool, args: &[String]) -> Result<()> {
    setup::run()?;
    require_root("the benchmark")?;
    let out = Path::new("target/bench.md");
    // Also the per-size summary (issue 13's format) as JSON.
    run_bench_bin(
        "embargo-bench",
        &["--summary", "target/bench-summary.json"],
        quick,
        out,
        args,
    )?;
    // Then what a Prometheus scrape of the agent costs with 1,000 entities.
    let scrape_out = Path::new("target/bench-scrape.md");
    run_bench_bin("embargo-scrape-bench", &[], quick, scrape_out, &[])?;
    // Then what a 1-prefix reload pays for the restart state file, at 1M+200k prefixes.
    let state_out = Path::new("target/bench-state.md");
    run_bench_bin("embargo-bench", &["--reload-state"], quick, state_out, &[])?;
    // Then what drop and monitor events cost a dropped packet: off and on, side by side.
    let events_out = Path::new("target/bench-events.md");
    run_bench_bin("embargo-bench", &["--events"], quick, events_out, &[])?;
    if quick {
        eprintln!("quick run: BENCHMARKS.md left as it is");
        return Ok(());
    }
    replace_section(
        EVENTS_BEGIN,
        EVENTS_END,
        std::fs::read_to_string(events_out)
            .context("reading the events bench's markdown")?
            .trim(),
    )?;
    replace_section(
        STATE_BEGIN,
        STATE_END,
        std::fs::read_to_string(state_out)
            .context("reading the reload-state bench's markdown")?
            .trim(),
    )?;
    let section = format!(
        "{}\n\n{}",
        std::fs::read_to_string(out)
            .context("reading the bench's markdown")?
            .trim(),
        std::fs::read_to_string(scrape_out)
            .context("reading the scrape bench's markdown")?
            .trim()
    );
    replace_section(BENCH_BEGIN, BENCH_END, section.trim())
}
