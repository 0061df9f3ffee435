//! `cargo xtask setup`: installs what building and testing Embargo need, idempotently.
//!
//! * the nightly toolchain's `rust-src` (the eBPF crate builds `core` with `-Z build-std`);
//! * bpf-linker, built against the nightly rustc's own LLVM (see [`bpf_linker`]);
//! * cargo-fuzz, for the fuzz targets in `fuzz/` (see [`cargo_fuzz`]);
//! * cargo-deny, for the licence and duplicate-crate checks of `deny.toml` (see [`cargo_deny`]);
//! * cargo-deb, for `cargo xtask dist`'s .deb (see [`cargo_deb`]);
//! * Debian packages the tests use: iproute2 (`ip netns`, veth), prometheus (`promtool` for the
//!   alert rules in deploy/), systemd (`systemd-analyze` for the unit in deploy/), g++
//!   (libFuzzer, which the fuzz targets link, is C++), nftables and ipset (`embargo export`'s
//!   files are loaded into the real tools), and for `cargo xtask dist` and its tests: binutils
//!   (`objcopy` splits the debug info out), lintian (lints the .deb), podman and runc (the
//!   container image; crun refuses this machine's hybrid cgroup hierarchy), mmdebstrap (the
//!   image's Debian runtime, made locally: no image registry is reachable).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::exec;

/// Pinned so a fresh machine builds the linker that was tested.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// Pinned like bpf-linker.
const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// Pinned like bpf-linker.
const CARGO_DENY_VERSION: &str = "0.20.2";
/// Pinned like bpf-linker; 3.8.0 needs rustc 1.85 (stable here is 1.95).
const CARGO_DEB_VERSION: &str = "3.8.0";
/// Debian packages: (command that proves it is installed, package).
const DEBIAN: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("promtool", "prometheus"),
    ("systemd-analyze", "systemd"),
    ("g++", "g++"),
    ("nft", "nftables"),
    ("ipset", "ipset"),
    ("objcopy", "binutils"),
    ("lintian", "lintian"),
    ("podman", "podman"),
    ("runc", "runc"),
    ("mmdebstrap", "mmdebstrap"),
];

pub fn run() -> Result<()> {
    rust_src()?;
    bpf_linker()?;
    debian()?;
    cargo_fuzz()?;
    cargo_deny()?;
    cargo_deb()?;
    Ok(())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

fn rust_src() -> Result<()> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .context("the nightly toolchain is needed to build the eBPF program")?;
    if !installed.lines().any(|l| l.starts_with("rust-src")) {
        exec(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    Ok(())
}

/// bpf-linker links the eBPF object with LLVM, and its LLVM must be the one the nightly rustc
/// emits bitcode for: the distribution's LLVM is older, and no prebuilt bpf-linker can be
/// downloaded here. So it is built from the Rust package registry against the nightly
/// toolchain's own `libLLVM`: llvm-sys finds LLVM through `LLVM_PREFIX/lib/libLLVM.so`, which we
/// point at the toolchain's shared library (the `libLLVM-<major>-rust-*.so` there is a linker
/// script naming the real `libLLVM.so.<ver>-rust-*`, so we link to the real file, and keep its
/// soname beside it for the rpath the build records).
fn bpf_linker() -> Result<()> {
    let sysroot = PathBuf::from(output(
        Command::new("rustc").args(["+nightly", "--print", "sysroot"]),
    )?);
    let lib = sysroot.join("lib");
    let (major, real) = toolchain_llvm(&lib)?;
    let prefix = home()?.join(".cache/embargo").join(format!("llvm-{major}"));
    let wanted = format!("bpf-linker {BPF_LINKER_VERSION}");
    let have = Command::new("bpf-linker")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    // Installed, the pinned version, and its LLVM link resolves: nothing to do.
    if have.as_deref() == Some(wanted.as_str()) && prefix.join("lib/libLLVM.so").exists() {
        return Ok(());
    }
    let prefix_lib = prefix.join("lib");
    fs::create_dir_all(&prefix_lib)
        .with_context(|| format!("creating {}", prefix_lib.display()))?;
    let soname = real.file_name().expect("a file").to_owned();
    for link in [prefix_lib.join("libLLVM.so"), prefix_lib.join(&soname)] {
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&real, &link)
            .with_context(|| format!("linking {} to {}", link.display(), real.display()))?;
    }
    eprintln!(
        "building bpf-linker {BPF_LINKER_VERSION} against LLVM {major} of the nightly toolchain (about a minute)"
    );
    exec(
        Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--force",
                "--version",
                BPF_LINKER_VERSION,
            ])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
            ])
            .env("LLVM_PREFIX", &prefix),
    )
}

/// cargo-fuzz (`cargo fuzz`), from the Rust package registry, unless the pinned version is
/// installed. It builds the targets with the nightly toolchain (`rustup run nightly`).
pub fn cargo_fuzz() -> Result<()> {
    cargo_tool("fuzz", CARGO_FUZZ_VERSION, "a minute or two")
}

/// cargo-deny at [`CARGO_DENY_VERSION`], built from crates.io (its advisories check needs the
/// RustSec database, which these machines cannot reach; licences and bans need nothing more).
pub fn cargo_deny() -> Result<()> {
    cargo_tool("deny", CARGO_DENY_VERSION, "a few minutes")
}

/// cargo-deb at [`CARGO_DEB_VERSION`], built from crates.io (`cargo xtask dist`).
pub fn cargo_deb() -> Result<()> {
    cargo_tool("deb", CARGO_DEB_VERSION, "a few minutes")
}

/// Installs the cargo subcommand `cargo-<sub>` at `version` from crates.io (`--locked`),
/// unless `cargo <sub> --version` already answers with exactly that version.
fn cargo_tool(sub: &str, version: &str, takes: &str) -> Result<()> {
    let krate = format!("cargo-{sub}");
    let wanted = format!("{krate} {version}");
    let have = Command::new("cargo")
        .args([sub, "--version"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if have.as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    eprintln!("installing {krate} {version} ({takes})");
    exec(Command::new("cargo").args([
        "install",
        &krate,
        "--locked",
        "--force",
        "--version",
        version,
    ]))
}

/// Finds the nightly toolchain's LLVM: its major version and the real shared object.
fn toolchain_llvm(lib: &Path) -> Result<(String, PathBuf)> {
    for entry in fs::read_dir(lib).with_context(|| format!("reading {}", lib.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        // libLLVM-22-rust-1.97.0-nightly.so
        let Some(rest) = name.strip_prefix("libLLVM-") else {
            continue;
        };
        if !name.ends_with(".so") {
            continue;
        }
        let major = rest.split('-').next().unwrap_or_default().to_owned();
        if major.is_empty() || !major.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        // Either the library itself, or a linker script `INPUT(libLLVM.so.X-rust-...)`.
        let bytes = fs::read(&path)?;
        if bytes.starts_with(b"\x7fELF") {
            return Ok((major, path));
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Some(inner) = text
            .trim()
            .strip_prefix("INPUT(")
            .and_then(|s| s.strip_suffix(')'))
        {
            let real = lib.join(inner.trim());
            if real.exists() {
                return Ok((major, real));
            }
        }
        bail!(
            "{} is neither a shared object nor a linker script naming one",
            path.display()
        );
    }
    bail!(
        "no libLLVM-<major>-rust-*.so in {}; is the nightly toolchain installed?",
        lib.display()
    )
}

fn home() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .context("HOME is not set")
}

fn debian() -> Result<()> {
    let missing: Vec<&str> = DEBIAN
        .iter()
        .filter(|(cmd, _)| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {cmd}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    exec(Command::new("apt-get").args(["update", "-qq"]))?;
    exec(
        Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
