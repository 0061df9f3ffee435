//! Builds the XDP objects with aya-build (nightly, `-Z build-std=core`, `bpfel-unknown-none`,
//! linked by bpf-linker) into OUT_DIR, where the agent embeds them with `include_bytes_aligned!`.
//! `cargo xtask setup` installs the toolchain pieces this needs.
//!
//! Also what `embargo --version` says of the build (`embargo::build_info`): the git commit
//! (`EMBARGO_GIT_COMMIT`, `unknown` outside a git checkout, `-dirty` with uncommitted changes)
//! and the build date (`EMBARGO_BUILD_DATE`: `SOURCE_DATE_EPOCH`'s day when set, for
//! reproducible builds, else today's, UTC).

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    build_info();
    let cargo_metadata::Metadata { packages, .. } = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let xdp = packages
        .into_iter()
        .find(|p| p.name.as_str() == "embargo-xdp")
        .ok_or_else(|| anyhow!("embargo-xdp package not found"))?;
    let root_dir = xdp
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("embargo-xdp manifest has no parent"))?;
    aya_build::build_ebpf(
        [Package {
            name: xdp.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        Toolchain::default(),
    )
}

/// Sets `EMBARGO_GIT_COMMIT` and `EMBARGO_BUILD_DATE` for the crate.
fn build_info() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c) if !c.is_empty() => {
            // Tracked files changed since the commit (untracked ones do not count).
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{c}-dirty") } else { c }
        }
        _ => "unknown".to_owned(),
    };
    println!("cargo:rustc-env=EMBARGO_GIT_COMMIT={commit}");
    // A new commit or checkout reruns this script.
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        for f in ["HEAD", "index", "packed-refs"] {
            println!("cargo:rerun-if-changed={git_dir}/{f}");
        }
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={git_dir}/{head_ref}");
        }
    }
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let date = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .unwrap_or_else(chrono::Utc::now)
        .format("%Y-%m-%d");
    println!("cargo:rustc-env=EMBARGO_BUILD_DATE={date}");
}
