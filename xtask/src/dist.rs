//! `cargo xtask dist`: what an operator installs, built from the checkout into `target/dist/`.
//!
//! * `stage/`: the release tree, from which both packages are made: `bin/embargo` (the release
//!   binary, stripped; its debug info in `embargo.debug` beside the tarball, named by a
//!   `.gnu_debuglink`), `etc/embargo/` (the default policy: `config/default.toml` and the entity
//!   files it includes, byte for byte), `systemd/`, `sysusers/`, `completions/` and
//!   `man/embargo.8.gz` (printed by the built binary itself), `doc/` (licences, README) and
//!   `install.sh` (`deploy/install.sh`);
//! * `embargo-VERSION-x86_64-linux.tar.gz`: `stage/` under `embargo-VERSION-x86_64-linux/`;
//! * `embargo_VERSION-1_amd64.deb`: cargo-deb from `[package.metadata.deb]` in agent/Cargo.toml
//!   (`--no-build --no-strip`: it packages `stage/`, and `deb/embargo.service`, the unit naming
//!   `/usr/bin/embargo`);
//! * the container image `localhost/embargo:VERSION` (podman, `deploy/container/Containerfile`,
//!   from the tarball) and its OCI archive `embargo-VERSION-x86_64-linux.oci.tar`.
//!
//! Generated files are made here on every run, never committed, so they cannot drift from the
//! binary or from `config/`. The tests of what this makes are `tests/tests/dist.rs`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use crate::{cargo, exec, setup};

/// Where everything lands (relative to the workspace root).
pub const DIST: &str = "target/dist";
/// The container image's repository; its tag is the version.
pub const IMAGE: &str = "localhost/embargo";
/// The runtime image the Containerfile starts from, made locally (see [`runtime_image`]).
pub const RUNTIME_IMAGE: &str = "localhost/embargo-runtime:bookworm";
/// The Debian suite of the runtime image: the one the binary is built on (glibc 2.36).
const RUNTIME_SUITE: &str = "bookworm";
const DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";

/// `cargo xtask dist`; `container: false` skips the image.
pub fn run(container: bool) -> Result<()> {
    setup::run()?;
    let started = Instant::now();
    let version = version()?;
    let dist = PathBuf::from(DIST);
    // Nothing stale: a file removed from config/ must not stay in the packages.
    if dist.exists() {
        fs::remove_dir_all(&dist).with_context(|| format!("removing {}", dist.display()))?;
    }
    let stage = dist.join("stage");
    fs::create_dir_all(&stage).with_context(|| format!("creating {}", stage.display()))?;

    exec(cargo().args(["build", "--release", "-p", "embargo", "--bin", "embargo"]))?;
    let built = target_dir().join("release/embargo");
    let bin = stage.join("bin/embargo");
    fs::create_dir_all(bin.parent().expect("a folder"))?;
    strip(&built, &bin, &dist.join("embargo.debug"))?;

    generated(&bin, &stage)?;
    copied(&stage, &version)?;
    eprintln!(
        "dist: release build and stage in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let name = format!("embargo-{version}-x86_64-linux");
    tarball(&dist, &stage, &name)?;
    deb(&dist)?;
    if container {
        image(&dist, &version, &name)?;
    }
    eprintln!(
        "dist: everything in {} after {:.0} s",
        dist.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The workspace version (every crate shares it).
pub fn version() -> Result<String> {
    let manifest = fs::read_to_string("Cargo.toml").context("reading Cargo.toml")?;
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[workspace.package]";
        } else if in_package && let Some(v) = line.strip_prefix("version") {
            let v = v
                .trim_start()
                .trim_start_matches('=')
                .trim()
                .trim_matches('"');
            return Ok(v.to_owned());
        }
    }
    bail!("Cargo.toml has no [workspace.package] version")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from)
}

/// Copies `built` to `out` without debug info or symbols, the debug info (and symbols) into
/// `debug`, and a `.gnu_debuglink` from `out` to `debug`'s file name (gdb finds it beside the
/// binary or under /usr/lib/debug).
fn strip(built: &Path, out: &Path, debug: &Path) -> Result<()> {
    exec(
        Command::new("objcopy")
            .arg("--only-keep-debug")
            .arg(built)
            .arg(debug),
    )?;
    exec(
        Command::new("objcopy")
            .arg("--strip-all")
            .arg(format!("--add-gnu-debuglink={}", debug.display()))
            .arg(built)
            .arg(out),
    )
}

/// What the built binary prints: completions and the man page.
fn generated(bin: &Path, stage: &Path) -> Result<()> {
    let completions = stage.join("completions");
    fs::create_dir_all(&completions)?;
    for (shell, file) in [
        ("bash", "embargo.bash"),
        ("zsh", "_embargo"),
        ("fish", "embargo.fish"),
    ] {
        let text = stdout(Command::new(bin).args(["completion", shell]))?;
        fs::write(completions.join(file), text)?;
    }
    let man = stdout(Command::new(bin).arg("man"))?;
    let man_dir = stage.join("man");
    fs::create_dir_all(&man_dir)?;
    let page = man_dir.join("embargo.8");
    fs::write(&page, man)?;
    // -n: no name or time stamp in the header, so the same page gives the same bytes.
    exec(Command::new("gzip").args(["-9", "-n", "-f"]).arg(&page))
}

/// The files taken as they are from the checkout.
fn copied(stage: &Path, version: &str) -> Result<()> {
    let etc = stage.join("etc/embargo");
    let entities = etc.join("entities");
    fs::create_dir_all(&entities)?;
    // The default policy, the same bytes `cargo xtask demo` and the tests run.
    fs::copy("config/default.toml", etc.join("embargo.toml"))
        .context("copying config/default.toml")?;
    let mut names = Vec::new();
    for entry in fs::read_dir("config/entities").context("reading config/entities")? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            names.push(path);
        }
    }
    if names.is_empty() {
        bail!("config/entities has no entity file: the default policy includes that folder");
    }
    for path in names {
        fs::copy(&path, entities.join(path.file_name().expect("a file")))?;
    }
    for (from, to) in [
        ("deploy/systemd/embargo.service", "systemd/embargo.service"),
        ("deploy/systemd/embargo.sysusers", "sysusers/embargo.conf"),
        ("deploy/install.sh", "install.sh"),
        ("LICENSE", "doc/LICENSE"),
        ("ebpf/LICENSE.md", "doc/LICENSE-ebpf.md"),
        ("ebpf/LICENSE-GPL-2.0", "doc/LICENSE-GPL-2.0"),
        ("deploy/debian/copyright", "doc/copyright"),
        ("README.md", "doc/README.md"),
    ] {
        let to = stage.join(to);
        fs::create_dir_all(to.parent().expect("a folder"))?;
        fs::copy(from, &to).with_context(|| format!("copying {from}"))?;
    }
    // The .deb's unit names the binary where the package puts it.
    let unit = fs::read_to_string("deploy/systemd/embargo.service")?;
    if !unit.contains("/usr/local/bin/embargo") {
        bail!(
            "deploy/systemd/embargo.service no longer names /usr/local/bin/embargo: adjust dist.rs"
        );
    }
    let deb = PathBuf::from(DIST).join("deb");
    fs::create_dir_all(&deb)?;
    fs::write(
        deb.join("embargo.service"),
        unit.replace("/usr/local/bin/embargo", "/usr/bin/embargo"),
    )?;
    fs::write(deb.join("changelog"), changelog(version)?)?;
    Ok(())
}

/// The .deb's Debian changelog: one entry for this build, dated by its commit.
fn changelog(version: &str) -> Result<String> {
    let git = |args: &[&str]| -> Result<String> {
        Ok(String::from_utf8(stdout(Command::new("git").args(args))?)?
            .trim()
            .to_owned())
    };
    let (commit, date) = match (
        git(&["rev-parse", "--short=12", "HEAD"]),
        git(&["log", "-1", "--format=%aD"]),
    ) {
        (Ok(c), Ok(d)) => (format!("commit {c}"), d),
        // Outside a git checkout: today.
        _ => (
            "no git commit".to_owned(),
            String::from_utf8(stdout(Command::new("date").arg("-R"))?)?
                .trim()
                .to_owned(),
        ),
    };
    Ok(format!(
        "embargo ({version}-1) unstable; urgency=medium\n\n  * Embargo {version} ({commit}), \
         built by `cargo xtask dist`.\n\n -- Embargo developers \
         <embargo@users.noreply.github.com>  {date}\n"
    ))
}

fn tarball(dist: &Path, stage: &Path, name: &str) -> Result<()> {
    let file = dist.join(format!("{name}.tar.gz"));
    // Owner root, sorted names, one fixed time: the same stage gives the same archive.
    exec(
        Command::new("tar")
            .args([
                "--sort=name",
                "--owner=0",
                "--group=0",
                "--numeric-owner",
                "--mtime=@0",
            ])
            .arg(format!("--transform=s,^\\.,{name},"))
            .arg("-czf")
            .arg(&file)
            .arg("-C")
            .arg(stage)
            .arg("."),
    )?;
    eprintln!("dist: {}", file.display());
    Ok(())
}

fn deb(dist: &Path) -> Result<()> {
    exec(cargo().args([
        "deb",
        "-p",
        "embargo",
        "--no-build",
        "--no-strip",
        "--output",
        &format!("{}/", dist.display()),
    ]))
}

/// Builds the image from the tarball and saves it as an OCI archive beside it.
fn image(dist: &Path, version: &str, name: &str) -> Result<()> {
    runtime_image()?;
    let tag = format!("{IMAGE}:{version}");
    // The build context is target/dist: only the tarball is sent (not the debug info, the .deb).
    fs::write(
        dist.join(".containerignore"),
        format!("*\n!{name}.tar.gz\n"),
    )?;
    exec(
        Command::new("podman")
            .args(["build", "--quiet", "--pull=never"])
            .args(["-f", "deploy/container/Containerfile"])
            .args(["--build-arg", &format!("VERSION={version}")])
            .args(["-t", &tag])
            .arg(dist),
    )?;
    let archive = dist.join(format!("{name}.oci.tar"));
    exec(
        Command::new("podman")
            .args(["save", "--quiet", "--format", "oci-archive", "-o"])
            .arg(&archive)
            .arg(&tag),
    )?;
    eprintln!("dist: image {tag}, saved as {}", archive.display());
    Ok(())
}

/// The image the Containerfile starts from: Debian's libc6 and libgcc-s1 only, extracted by
/// mmdebstrap from Debian's package registry and imported into podman. Made once per machine.
fn runtime_image() -> Result<()> {
    let have = Command::new("podman")
        .args(["image", "exists", RUNTIME_IMAGE])
        .status()
        .is_ok_and(|s| s.success());
    if have {
        return Ok(());
    }
    let tar = PathBuf::from(DIST).join("runtime.tar");
    exec(
        Command::new("mmdebstrap")
            .args([
                "--variant=extract",
                "--include=libc6,libgcc-s1",
                "--quiet",
                RUNTIME_SUITE,
            ])
            .arg(&tar)
            .arg(DEBIAN_MIRROR),
    )?;
    exec(
        Command::new("podman")
            .args(["import", "--quiet"])
            .arg(&tar)
            .arg(RUNTIME_IMAGE),
    )?;
    fs::remove_file(&tar)?;
    Ok(())
}

/// Runs `cmd`, returning its standard output; fails with its standard error.
fn stdout(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}
