//! `cargo xtask fuzz`: the cargo-fuzz targets in `fuzz/` (libFuzzer, nightly), one per parser
//! of outside input, and the short run `cargo xtask test` makes of each.
//!
//! The targets are built once (`cargo fuzz build` with debug assertions and overflow checks and
//! no sanitizer: the parsers are safe Rust, and the build stays affordable; optimized for
//! `cargo xtask fuzz`, unoptimized for the few seconds `cargo xtask test` gives each, where the
//! build is most of the cost), then each binary runs on its own for a fixed time, one after the other, from the committed
//! seeds (`fuzz/seeds/<target>/`) and the corpus it grew before (`fuzz/corpus/<target>/`, not
//! committed). A crash, a panic, an input slower than [`INPUT_TIMEOUT_SECS`] or a run past
//! [`RSS_LIMIT_MB`] fails the target; libFuzzer writes the input to `fuzz/artifacts/<target>/`,
//! and `cargo fuzz run <target> <file>` replays it.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{exec, setup};

/// Seconds per target in `cargo xtask fuzz` unless `--seconds` says otherwise.
pub const DEFAULT_SECONDS: u64 = 60;
/// Seconds per target in `cargo xtask test`: about a minute over all targets.
pub const TEST_SECONDS: u64 = 4;
/// One input that takes longer than this is a failure (a quadratic parser, a loop).
const INPUT_TIMEOUT_SECS: u64 = 10;
/// Memory a target may use; small inputs that need more are a failure.
const RSS_LIMIT_MB: u64 = 2048;
/// Longest input tried: some KiB, so quadratic behaviour shows as a timeout.
const MAX_LEN: usize = 64 * 1024;
const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// How one target's run ended.
pub struct Outcome {
    pub target: String,
    pub passed: bool,
}

fn fuzz_dir() -> PathBuf {
    PathBuf::from("fuzz")
}

/// `cargo fuzz` on the nightly toolchain, in the workspace root (it finds `fuzz/`). Without
/// the package variables `cargo run` gave xtask (`CARGO_PKG_NAME`...): build scripts that watch
/// them (ring's) would otherwise rebuild between this and a `cargo fuzz` typed in a shell.
fn cargo_fuzz() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo", "fuzz"]);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|p| k.starts_with(p))
        {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// The targets `fuzz/Cargo.toml` declares, in order.
pub fn targets() -> Result<Vec<String>> {
    let out = cargo_fuzz()
        .arg("list")
        .output()
        .context("running `cargo fuzz list` (cargo xtask setup installs cargo-fuzz)")?;
    if !out.status.success() {
        bail!(
            "`cargo fuzz list` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// How the targets are built.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// Optimized: for long runs.
    Release,
    /// Unoptimized: quicker to build, for short runs.
    Dev,
}

impl Build {
    fn dir(self) -> &'static str {
        match self {
            Build::Release => "release",
            Build::Dev => "debug",
        }
    }
}

/// Builds every target once.
pub fn build(how: Build) -> Result<()> {
    let profile = match how {
        Build::Release => "--release",
        Build::Dev => "--dev",
    };
    exec(cargo_fuzz().args([
        "build",
        profile,
        "--debug-assertions",
        "--sanitizer",
        "none",
    ]))
}

/// Runs target `name` (built by [`build`]) for `seconds`.
pub fn run_one(name: &str, how: Build, seconds: u64) -> Result<Outcome> {
    let dir = fuzz_dir();
    let binary = dir.join("target").join(TRIPLE).join(how.dir()).join(name);
    let corpus = dir.join("corpus").join(name);
    let seeds = dir.join("seeds").join(name);
    let artifacts = dir.join("artifacts").join(name);
    for d in [&corpus, &artifacts] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    if !seeds.is_dir() {
        bail!(
            "{} is missing: every target has committed seeds",
            seeds.display()
        );
    }
    let mut cmd = Command::new(&binary);
    cmd.arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg(format!("-max_len={MAX_LEN}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1")
        // New inputs go to the first folder; the seeds are only read.
        .arg(&corpus)
        .arg(&seeds);
    eprintln!("+ {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(Outcome {
        target: name.to_owned(),
        passed: status.success(),
    })
}

/// Builds the targets and runs `only` (else all of them) for `seconds` each; the line per
/// target says how it ended.
pub fn run(only: Option<&str>, how: Build, seconds: u64) -> Result<Vec<Outcome>> {
    setup::cargo_fuzz()?;
    let all = targets()?;
    let chosen: Vec<String> = match only {
        Some(t) if all.iter().any(|a| a == t) => vec![t.to_owned()],
        Some(t) => bail!("no fuzz target `{t}`; the targets are: {}", all.join(", ")),
        None => all,
    };
    build(how)?;
    let mut outcomes = Vec::new();
    for name in &chosen {
        let o = run_one(name, how, seconds)?;
        println!(
            "fuzz {name} ... {}",
            if o.passed {
                "ok".to_owned()
            } else {
                format!(
                    "FAILED (the input is in {})",
                    Path::new("fuzz/artifacts").join(name).display()
                )
            }
        );
        outcomes.push(o);
    }
    Ok(outcomes)
}

/// `cargo xtask fuzz`: fails if any target found something.
pub fn task(only: Option<&str>, seconds: u64) -> Result<()> {
    let outcomes = run(only, Build::Release, seconds)?;
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| o.target.as_str())
        .collect();
    println!(
        "\nfuzz: {} passed, {} failed",
        outcomes.len() - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        bail!("fuzz targets failed: {}", failed.join(", "));
    }
    Ok(())
}
