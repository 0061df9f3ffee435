//! Builds the XDP objects with aya-build (nightly, `-Z build-std=core`, `bpfel-unknown-none`,
//! linked by bpf-linker) into OUT_DIR, where the agent embeds them with `include_bytes_aligned!`.
//! `cargo xtask setup` installs the toolchain pieces this needs.

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
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
