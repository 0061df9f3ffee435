//! `cargo xtask matrix`: the kernel matrix. The same checks run on each kernel of [`KERNELS`],
//! booted under qemu, and on the host's own kernel, and the result is one table of kernel ×
//! check.
//!
//! The checks (`matrix/checks.sh`): the demo lab on the default policy with the release agent,
//! the BPF_PROG_TEST_RUN fixture tables, the restart tests (kill -9 keeps enforcing, a restart
//! adopts by diff), and which API the TC egress classifier gets (TCX on 6.6+, else a netlink
//! `cls_bpf` filter): a fallback is a column of its own, not a footnote.
//!
//! What must stay true:
//! - A kernel comes only from Debian's package registry (`apt-get download`), pinned by exact
//!   package version and SHA-256 in [`KERNELS`]; a package whose digest differs is deleted and
//!   refused before anything is extracted from it.
//! - A VM has no network device (`-nic none`): the checks' packets stay inside the VM's own
//!   namespaces.
//! - Every boot has a deadline ([`Options::boot_timeout`]; qemu is killed after it) and every
//!   check inside has its own (`timeout -s KILL`), so a hang is a FAIL, never a hung CI.
//! - A check that printed no result line is a FAIL ("no result"), never a silent pass.
//! - The host column is the same script run directly on the host (no qemu): the host has no
//!   bootable image of its own kernel.
//!
//! Everything is built under `target/matrix/`: the verified `.deb` files (`debs/`), and per
//! kernel its extracted package (`<name>/pkg/`), the initramfs (`<name>/initramfs.cpio`, written
//! here as a `newc` archive: busybox, the release binaries and their shared libraries, `ip` and
//! `tc`, the kernel modules of [`MODULES`] and their dependencies, decompressed) and the serial
//! console's log (`<name>/console.log`).

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::{self, File},
    io::{BufRead as _, BufReader, BufWriter, Read as _, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use sha2::{Digest as _, Sha256};

use crate::{cargo, exec};

/// A kernel of the matrix: one Debian `linux-image-*` package, pinned.
#[derive(Debug)]
pub struct Kernel {
    /// The name `--kernel` takes and the table shows.
    pub name: &'static str,
    pub package: &'static str,
    /// Exact package version (`apt-get download PACKAGE=VERSION`).
    pub version: &'static str,
    /// SHA-256 of the `.deb`, hex.
    pub sha256: &'static str,
    /// The kernel release inside (`uname -r`, the `lib/modules/` folder).
    pub release: &'static str,
}

/// The kernels booted under qemu. To move a pin: `apt-get update; apt-cache policy
/// 'linux-image-6.12*-amd64'`, `apt-get download PACKAGE=VERSION`, `sha256sum` the `.deb`.
/// The generic flavour (`-amd64`), not `-cloud-amd64`: the cloud kernels have no PPP
/// (`CONFIG_PPP` unset), and the generic ones carry every module the checks need. Measured under
/// TCG: the generic 6.1 (xz-compressed) reaches /init about 12 s later than the cloud one (lz4);
/// the 6.12s are the same.
pub const KERNELS: &[Kernel] = &[
    // Debian 12's kernel: before TCX (6.6), so egress goes through a netlink cls_bpf filter.
    Kernel {
        name: "debian12-6.1",
        package: "linux-image-6.1.0-50-amd64",
        version: "6.1.176-1",
        sha256: "7b5597492a0a65aee61985a492e6bcc3f2cde830072a0e3b3d8c7e1b90279bd3",
        release: "6.1.0-50-amd64",
    },
    // Debian 13's kernel series (here its Debian 12 security build): TCX egress.
    Kernel {
        name: "debian12-6.12",
        package: "linux-image-6.12.117+deb12-amd64",
        version: "6.12.117-1~deb12u1",
        sha256: "803d36a7cda13355ae8152122470288b2636f19f1cb58162dd9d8b408af9b1b4",
        release: "6.12.117+deb12-amd64",
    },
];

/// The host column's name.
pub const HOST: &str = "host";

/// Modules loaded in every VM (with their dependencies, in order): the lab's veth pairs, the
/// `clsact` qdisc and the `cls_bpf` filter of the netlink egress path.
const MODULES: &[&str] = &[
    "veth",
    "sch_ingress",
    "cls_bpf",
    // tests/tests/tunnels.rs: the uplinks the host kernel lacks.
    "ip_gre",
    "ipip",
    "wireguard",
    "8021q",
    "bonding",
    // PPP over a pty: the PPP line discipline (ppp_async pulls in ppp_generic and slhc).
    "ppp_async",
];

/// The checks, in the table's column order; each must print one result line.
const CHECKS: &[&str] = &["demo", "fixtures", "restart", "egress", "tunnels"];
/// Checks only a VM runs: they need modules the host kernel lacks (`tests/tests/tunnels.rs`:
/// GRE, IPIP, WireGuard, PPP, VLAN and bond uplinks). The host's cell is `-`.
const VM_ONLY: &[&str] = &["tunnels"];

/// Default deadline of one boot, checks included: a boot took 4-5 minutes under TCG on a
/// loaded 2-core machine; two boots that hang still fit CI's 90 minutes.
pub const BOOT_TIMEOUT_SECS: u64 = 1200;

/// Memory and vCPUs of each VM.
const VM_MEMORY_MIB: u32 = 2048;
const VM_CPUS: u32 = 2;

const CHECKS_SH: &str = include_str!("matrix/checks.sh");
const INIT_SH: &str = include_str!("matrix/init.sh");

/// How qemu runs the guests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    /// KVM when /dev/kvm works (a probe boot), else TCG.
    Auto,
    Kvm,
    Tcg,
}

/// What `cargo xtask matrix` (or the end of `cargo xtask test`) runs.
pub struct Options {
    /// Kernel names ([`KERNELS`] and [`HOST`]); empty for all of them.
    pub kernels: Vec<String>,
    /// Only the restart test's two kill -9 cases.
    pub quick: bool,
    pub accel: Accel,
    /// Deadline of one boot, checks included.
    pub boot_timeout: Duration,
}

/// One cell: a kernel's result for one check.
#[derive(Clone, Debug)]
struct Cell {
    pass: bool,
    detail: String,
}

/// One row of the table.
struct Row {
    kernel: String,
    /// How it ran: `qemu/tcg`, `qemu/kvm` or `host (no qemu)`.
    how: String,
    cells: BTreeMap<String, Cell>,
}

/// The whole matrix's result.
pub struct Report {
    rows: Vec<Row>,
}

impl Report {
    /// Cells that passed.
    pub fn passed(&self) -> u64 {
        self.cells().filter(|c| c.pass).count() as u64
    }

    /// Cells that failed (a missing result counts as failed).
    pub fn failed(&self) -> u64 {
        self.cells().filter(|c| !c.pass).count() as u64
    }

    fn cells(&self) -> impl Iterator<Item = &Cell> {
        self.rows.iter().flat_map(|r| r.cells.values())
    }

    /// The table of kernel × check, one line per kernel.
    pub fn table(&self) -> String {
        let columns: Vec<&str> = std::iter::once("boot")
            .chain(CHECKS.iter().copied())
            .collect();
        let text = |cell: Option<&Cell>| match cell {
            Some(c) => format!("{} {}", if c.pass { "PASS" } else { "FAIL" }, c.detail)
                .trim()
                .to_owned(),
            None => "-".to_owned(),
        };
        let mut lines = vec![
            std::iter::once("KERNEL".to_owned())
                .chain(std::iter::once("RUN".to_owned()))
                .chain(columns.iter().map(|c| c.to_uppercase()))
                .collect::<Vec<_>>(),
        ];
        for row in &self.rows {
            lines.push(
                [row.kernel.clone(), row.how.clone()]
                    .into_iter()
                    .chain(columns.iter().map(|c| text(row.cells.get(*c))))
                    .collect(),
            );
        }
        let widths: Vec<usize> = (0..lines[0].len())
            .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for line in lines {
            let cols: Vec<String> = line
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            out.push_str(cols.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

/// The built artefacts every kernel's run uses.
struct Artefacts {
    embargo: PathBuf,
    demo: PathBuf,
    fixtures: PathBuf,
    restart: PathBuf,
    tunnels: PathBuf,
}

/// Runs the matrix and prints its table; fails only when it could not run (a failed cell is in
/// the report: see [`Report::failed`]).
pub fn run(opts: &Options) -> Result<Report> {
    let (kernels, host) = select(&opts.kernels)?;
    let dir = Path::new("target/matrix");
    fs::create_dir_all(dir).context("creating target/matrix")?;
    let art = build()?;
    let mut rows = Vec::new();
    if !kernels.is_empty() {
        need_tools()?;
        let debs = fetch(&kernels, &dir.join("debs"))?;
        let accel = choose_accel(opts.accel, kernels[0], &debs[0], dir)?;
        for (kernel, deb) in kernels.iter().zip(&debs) {
            rows.push(boot(
                kernel,
                deb,
                &art,
                opts,
                accel,
                &dir.join(kernel.name),
            )?);
        }
    }
    if host {
        rows.push(run_host(&art, opts, &dir.join(HOST))?);
    }
    let report = Report { rows };
    println!("\nKernel matrix:\n{}", report.table());
    Ok(report)
}

/// The kernels named (all when none are), and whether the host column is wanted.
fn select(names: &[String]) -> Result<(Vec<&'static Kernel>, bool)> {
    if names.is_empty() {
        return Ok((KERNELS.iter().collect(), true));
    }
    let mut kernels = Vec::new();
    let mut host = false;
    for name in names {
        if name == HOST {
            host = true;
        } else if let Some(k) = KERNELS.iter().find(|k| k.name == name) {
            kernels.push(k);
        } else {
            let known: Vec<&str> = KERNELS.iter().map(|k| k.name).chain([HOST]).collect();
            bail!(
                "--kernel {name}: no such kernel in the matrix (known: {})",
                known.join(", ")
            );
        }
    }
    Ok((kernels, host))
}

/// Builds the release agent, the demo and the two test executables, and finds their paths.
fn build() -> Result<Artefacts> {
    exec(cargo().args(["build", "--release", "-p", "embargo", "--bin", "embargo"]))?;
    exec(cargo().args([
        "build",
        "--release",
        "-p",
        "embargo-tests",
        "--bin",
        "embargo-demo",
    ]))?;
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--release",
        "-p",
        "embargo-tests",
        "--test",
        "fixtures",
        "--test",
        "restart",
        "--test",
        "tunnels",
        "--no-run",
        "--message-format=json",
    ]);
    eprintln!("+ {cmd:?}");
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", out.status);
    }
    let mut tests = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let (Some(name), Some(exe)) = (
            msg.pointer("/target/name").and_then(|n| n.as_str()),
            msg.get("executable").and_then(|e| e.as_str()),
        ) {
            tests.insert(name.to_owned(), PathBuf::from(exe));
        }
    }
    let test = |name: &str| {
        tests
            .get(name)
            .cloned()
            .with_context(|| format!("cargo test --no-run named no executable for the {name} test"))
    };
    let release = Path::new("target/release");
    Ok(Artefacts {
        embargo: absolute(&release.join("embargo"))?,
        demo: absolute(&release.join("embargo-demo"))?,
        fixtures: absolute(&test("fixtures")?)?,
        restart: absolute(&test("restart")?)?,
        tunnels: absolute(&test("tunnels")?)?,
    })
}

fn absolute(path: &Path) -> Result<PathBuf> {
    fs::canonicalize(path).with_context(|| format!("finding {}", path.display()))
}

/// qemu, busybox (static) and the module tools, installed from Debian when missing.
fn need_tools() -> Result<()> {
    let missing: Vec<&str> = [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("busybox", "busybox-static"),
        ("modinfo", "kmod"),
        ("xz", "xz-utils"),
        ("strip", "binutils"),
        ("wg", "wireguard-tools"),
        ("pppd", "ppp"),
    ]
    .into_iter()
    .filter(|(tool, _)| !on_path(tool))
    .map(|(_, package)| package)
    .collect();
    if !missing.is_empty() {
        exec(Command::new("apt-get").arg("update"))?;
        exec(
            Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    // The initramfs needs a static busybox: a dynamic one would need its libraries too.
    let busybox = which("busybox")?;
    let out = Command::new("ldd").arg(&busybox).output()?;
    if out.status.success() {
        bail!(
            "{} is dynamically linked: the matrix's initramfs needs a static busybox \
             (apt-get install busybox-static)",
            busybox.display()
        );
    }
    Ok(())
}

fn on_path(tool: &str) -> bool {
    which(tool).is_ok()
}

/// `tool`'s path on PATH.
fn which(tool: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .with_context(|| format!("{tool} is not on PATH"))
}

/// The `.deb` file name `apt-get download` writes for `kernel`.
fn deb_name(kernel: &Kernel) -> String {
    format!(
        "{}_{}_amd64.deb",
        kernel.package,
        kernel.version.replace(':', "%3a")
    )
}

/// Downloads each kernel's package into `dir` (unless a verified copy is there) and checks its
/// SHA-256; a package that does not match is deleted and refused.
fn fetch(kernels: &[&Kernel], dir: &Path) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut updated = false;
    let mut debs = Vec::new();
    for kernel in kernels {
        let deb = dir.join(deb_name(kernel));
        if !deb.is_file() {
            if !updated {
                exec(Command::new("apt-get").arg("update"))?;
                updated = true;
            }
            let spec = format!("{}={}", kernel.package, kernel.version);
            exec(
                Command::new("apt-get")
                    .args(["download", &spec])
                    .current_dir(dir),
            )
            .with_context(|| {
                format!(
                    "downloading {spec}: if Debian's archive no longer has this version, \
                         move the pin in KERNELS (xtask/src/matrix.rs) to one `apt-cache policy \
                         {}` lists",
                    kernel.package
                )
            })?;
        }
        let digest = sha256_file(&deb)?;
        if digest != kernel.sha256 {
            fs::remove_file(&deb).with_context(|| format!("removing {}", deb.display()))?;
            bail!(
                "{} has SHA-256 {digest}, the pin in KERNELS (xtask/src/matrix.rs) says {}: \
                 deleted it and refused to use it",
                deb.display(),
                kernel.sha256
            );
        }
        eprintln!("{}: SHA-256 verified", deb.display());
        debs.push(deb);
    }
    Ok(debs)
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Extracts `deb` into `dir/pkg` (afresh) and returns the kernel image's path.
fn extract(kernel: &Kernel, deb: &Path, dir: &Path) -> Result<PathBuf> {
    let pkg = dir.join("pkg");
    if pkg.exists() {
        fs::remove_dir_all(&pkg).with_context(|| format!("removing {}", pkg.display()))?;
    }
    fs::create_dir_all(&pkg).with_context(|| format!("creating {}", pkg.display()))?;
    exec(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&pkg))?;
    let vmlinuz = pkg.join(format!("boot/vmlinuz-{}", kernel.release));
    if !vmlinuz.is_file() {
        bail!(
            "{} has no boot/vmlinuz-{}: is `release` in KERNELS right?",
            deb.display(),
            kernel.release
        );
    }
    Ok(vmlinuz)
}

/// Decides KVM or TCG: `auto` boots `kernel` (no initramfs: it panics at once, which is the
/// point) under KVM and takes KVM only if that panic shows up within 30 s.
fn choose_accel(accel: Accel, kernel: &Kernel, deb: &Path, dir: &Path) -> Result<Accel> {
    match accel {
        Accel::Kvm | Accel::Tcg => return Ok(accel),
        Accel::Auto => {}
    }
    if fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        eprintln!("matrix: /dev/kvm cannot be opened: TCG");
        return Ok(Accel::Tcg);
    }
    let probe_dir = dir.join("kvm-probe");
    let vmlinuz = extract(kernel, deb, &probe_dir)?;
    let log = probe_dir.join("console.log");
    let mut cmd = qemu(Accel::Kvm, &vmlinuz, None, "console=ttyS0 panic=-1", 256);
    let (_, output) = run_console(&mut cmd, &log, Duration::from_secs(30), false)?;
    let _ = fs::remove_dir_all(probe_dir.join("pkg"));
    if output.contains("Kernel panic") {
        eprintln!("matrix: KVM works: using it");
        Ok(Accel::Kvm)
    } else {
        eprintln!(
            "matrix: a KVM probe boot did not reach the kernel within 30 s (see {}): TCG",
            log.display()
        );
        Ok(Accel::Tcg)
    }
}

/// The qemu command line for one boot: no network device, serial console on stdout.
fn qemu(
    accel: Accel,
    vmlinuz: &Path,
    initrd: Option<&Path>,
    append: &str,
    memory_mib: u32,
) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    match accel {
        Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host"]),
        _ => cmd.args(["-accel", "tcg", "-cpu", "max"]),
    };
    cmd.args(["-smp", &VM_CPUS.to_string(), "-m", &memory_mib.to_string()])
        .args(["-nographic", "-nodefaults", "-no-reboot", "-nic", "none"])
        .args(["-serial", "stdio", "-monitor", "none"])
        .arg("-kernel")
        .arg(vmlinuz)
        .args(["-append", append]);
    if let Some(initrd) = initrd {
        cmd.arg("-initrd").arg(initrd);
    }
    cmd
}

/// Runs `cmd` (qemu, or the host's checks), its console in `log` (and `MATRIX` lines, or
/// everything when `echo`, on stderr), killing it after `timeout`. Returns whether it finished in time, and the console.
fn run_console(
    cmd: &mut Command,
    log: &Path,
    timeout: Duration,
    echo: bool,
) -> Result<(bool, String)> {
    eprintln!("+ {cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let mut file =
        BufWriter::new(File::create(log).with_context(|| format!("creating {}", log.display()))?);
    let reader = std::thread::spawn(move || -> String {
        let mut all = String::new();
        for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line).trim_end().to_owned();
            let _ = writeln!(file, "{line}");
            if echo || line.starts_with("MATRIX ") {
                eprintln!("  | {line}");
            }
            all.push_str(&line);
            all.push('\n');
        }
        let _ = file.flush();
        all
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(stderr)
            .take(64 * 1024)
            .read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let in_time = loop {
        if child.try_wait()?.is_some() {
            break true;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut console = reader.join().expect("console reader");
    let errors = err_reader.join().expect("stderr reader");
    if !errors.trim().is_empty() {
        eprintln!("  qemu: {}", errors.trim());
        console.push_str(&errors);
    }
    Ok((in_time, console))
}

/// Builds `kernel`'s initramfs, boots it and reads the checks' results off the console.
fn boot(
    kernel: &Kernel,
    deb: &Path,
    art: &Artefacts,
    opts: &Options,
    accel: Accel,
    dir: &Path,
) -> Result<Row> {
    eprintln!("\n=== {} ({})", kernel.name, kernel.release);
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let vmlinuz = extract(kernel, deb, dir)?;
    let initrd = dir.join("initramfs.cpio");
    let modules = write_initramfs(kernel, &dir.join("pkg"), art, opts, &initrd)?;
    eprintln!("{}: modules {}", initrd.display(), modules.join(" "));
    let log = dir.join("console.log");
    let how = format!("qemu/{}", if accel == Accel::Kvm { "kvm" } else { "tcg" });
    let mut cmd = qemu(
        accel,
        &vmlinuz,
        Some(&initrd),
        "console=ttyS0 panic=-1 loglevel=4",
        VM_MEMORY_MIB,
    );
    let start = Instant::now();
    let (in_time, console) = run_console(&mut cmd, &log, opts.boot_timeout, false)?;
    let took = start.elapsed().as_secs();
    let _ = fs::remove_dir_all(dir.join("pkg"));
    let results = parse_results(&console);
    let mut cells = BTreeMap::new();
    let booted = results.get("kernel").map(|c| c.detail.clone());
    let modules_cell = results.get("modules");
    let boot_cell = match (&booted, modules_cell) {
        (Some(release), _) if release != kernel.release => Cell {
            pass: false,
            detail: format!("booted {release}, expected {}", kernel.release),
        },
        (Some(_), Some(m)) if m.pass => Cell {
            pass: in_time,
            detail: if in_time {
                format!("{took}s")
            } else {
                format!("killed after {}s", opts.boot_timeout.as_secs())
            },
        },
        (Some(_), Some(m)) => Cell {
            pass: false,
            detail: m.detail.clone(),
        },
        _ => Cell {
            pass: false,
            detail: format!("never reached /init (see {})", log.display()),
        },
    };
    cells.insert("boot".to_owned(), boot_cell);
    fill_checks(&mut cells, &results, &log, true);
    Ok(Row {
        kernel: format!("{} ({})", kernel.name, kernel.release),
        how,
        cells,
    })
}

/// The result lines of a console: check → cell (INFO lines keep their detail, pass = true).
fn parse_results(console: &str) -> BTreeMap<String, Cell> {
    let mut results = BTreeMap::new();
    for line in console.lines() {
        let Some(rest) = line.trim().strip_prefix("MATRIX ") else {
            continue;
        };
        let mut parts = rest.splitn(3, ' ');
        let (Some(check), Some(verdict)) = (parts.next(), parts.next()) else {
            continue;
        };
        let detail = parts.next().unwrap_or("").trim().to_owned();
        let pass = matches!(verdict, "PASS" | "INFO");
        // A FAIL line for a check is never overwritten by a later PASS.
        results
            .entry(check.to_owned())
            .and_modify(|c: &mut Cell| {
                if c.pass && !pass {
                    *c = Cell {
                        pass,
                        detail: detail.clone(),
                    };
                }
            })
            .or_insert(Cell { pass, detail });
    }
    results
}

/// Puts each check's result in `cells`, explaining the egress API, and a FAIL for a check
/// without a result line.
fn fill_checks(
    cells: &mut BTreeMap<String, Cell>,
    results: &BTreeMap<String, Cell>,
    log: &Path,
    vm: bool,
) {
    for check in CHECKS.iter().filter(|c| vm || !VM_ONLY.contains(c)) {
        let cell = match results.get(*check) {
            Some(c) if *check == "egress" && c.pass => Cell {
                pass: true,
                detail: if c.detail.contains("api=netlink") {
                    format!("{} (fallback: netlink cls_bpf, TCX needs 6.6)", c.detail)
                } else {
                    c.detail.clone()
                },
            },
            Some(c) => c.clone(),
            None => Cell {
                pass: false,
                detail: format!("no result (see {})", log.display()),
            },
        };
        cells.insert((*check).to_owned(), cell);
    }
}

/// The host column: the same checks, run directly on the host's kernel.
fn run_host(art: &Artefacts, opts: &Options, dir: &Path) -> Result<Row> {
    eprintln!("\n=== host (no qemu)");
    crate::require_root("the host column of the matrix")?;
    let logs = dir.join("logs");
    if logs.exists() {
        fs::remove_dir_all(&logs).with_context(|| format!("removing {}", logs.display()))?;
    }
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let script = dir.join("checks.sh");
    fs::write(&script, format!("{CHECKS_SH}\nrun_all\n"))
        .with_context(|| format!("writing {}", script.display()))?;
    let config = absolute(Path::new("config/default.toml"))?;
    // No bpffs is mounted for it: where there is none, the agent mounts it.
    let mut cmd = Command::new("sh");
    cmd.arg(&script);
    cmd.env("EMBARGO_BIN", &art.embargo)
        .env("MATRIX_DEMO", &art.demo)
        .env("MATRIX_FIXTURES", &art.fixtures)
        .env("MATRIX_RESTART", &art.restart)
        .env("MATRIX_CONFIG", &config)
        .env("MATRIX_IP", which("ip")?)
        .env("MATRIX_LOGS", absolute(&logs)?)
        .env("MATRIX_QUICK", if opts.quick { "1" } else { "0" });
    let log = dir.join("console.log");
    let (in_time, console) = run_console(&mut cmd, &log, opts.boot_timeout, false)?;
    let release = fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let results = parse_results(&console);
    let mut cells = BTreeMap::new();
    if !in_time {
        cells.insert(
            "boot".to_owned(),
            Cell {
                pass: false,
                detail: format!("killed after {}s", opts.boot_timeout.as_secs()),
            },
        );
    }
    fill_checks(&mut cells, &results, &log, false);
    Ok(Row {
        kernel: format!("{HOST} ({release})"),
        how: "host (no qemu)".to_owned(),
        cells,
    })
}

/// Writes `kernel`'s initramfs to `out`; returns the modules it loads, in order.
fn write_initramfs(
    kernel: &Kernel,
    pkg: &Path,
    art: &Artefacts,
    opts: &Options,
    out: &Path,
) -> Result<Vec<String>> {
    let mut cpio = Cpio::create(out)?;
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "proc",
        "sys",
        "dev",
        "tmp",
        "run",
        "root",
        "etc",
        "lib/modules",
        "matrix/config",
    ] {
        cpio.dir(d)?;
    }
    // iproute2's netns folder is /var/run/netns; the lab looks in /run/netns.
    cpio.dir("var")?;
    cpio.symlink("var/run", "../run")?;
    cpio.file("init", 0o755, INIT_SH.as_bytes())?;
    cpio.file("matrix/checks.sh", 0o644, CHECKS_SH.as_bytes())?;
    cpio.file(
        "matrix/settings",
        0o644,
        format!("export MATRIX_QUICK={}\n", if opts.quick { 1 } else { 0 }).as_bytes(),
    )?;

    // busybox and its applets, except those iproute2 provides for real (the lab needs `ip -j`).
    let busybox = which("busybox")?;
    cpio.file("bin/busybox", 0o755, &read(&busybox)?)?;
    let list = Command::new(&busybox)
        .arg("--list")
        .output()
        .context("busybox --list")?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || matches!(applet, "busybox" | "ip" | "tc" | "init") {
            continue;
        }
        cpio.symlink(&format!("bin/{applet}"), "busybox")?;
    }

    // The binaries, each with its shared libraries; ours without their debug info (the release
    // profile keeps it: 60-80 MB each, that TCG would have to unpack).
    let mut libs = BTreeSet::new();
    for (src, dst, ours) in [
        (art.embargo.clone(), "usr/bin/embargo", true),
        (art.demo.clone(), "matrix/embargo-demo", true),
        (art.fixtures.clone(), "matrix/fixtures", true),
        (art.restart.clone(), "matrix/restart", true),
        (art.tunnels.clone(), "matrix/tunnels", true),
        // tunnels.rs gives its WireGuard pair keys and a peer with `wg`.
        (which("wg")?, "usr/bin/wg", false),
        // tunnels.rs's PPP link: two pppd over a pty (no /etc/ppp files or plugins needed).
        (which("pppd")?, "usr/sbin/pppd", false),
        (which("ip")?, "usr/sbin/ip", false),
        (which("tc")?, "usr/sbin/tc", false),
    ] {
        let bytes = if ours { stripped(&src)? } else { read(&src)? };
        cpio.file(dst, 0o755, &bytes)?;
        libs.extend(shared_libraries(&src)?);
    }
    for lib in &libs {
        let rel = lib.strip_prefix("/").unwrap_or(lib);
        if let Some(parent) = rel.parent() {
            cpio.dir(&parent.to_string_lossy())?;
        }
        cpio.file(&rel.to_string_lossy(), 0o755, &read(lib)?)?;
    }

    // The default policy, as the demo reads it.
    cpio.file(
        "matrix/config/default.toml",
        0o644,
        &read(Path::new("config/default.toml"))?,
    )?;
    cpio.dir("matrix/config/entities")?;
    let mut entities: Vec<PathBuf> = fs::read_dir("config/entities")
        .context("reading config/entities")?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entities.sort();
    for e in entities.iter().filter(|p| p.is_file()) {
        let name = e.file_name().expect("a file").to_string_lossy();
        cpio.file(&format!("matrix/config/entities/{name}"), 0o644, &read(e)?)?;
    }

    // The modules, decompressed, and the order to load them in.
    let modules = resolve_modules(&pkg.join("lib/modules").join(kernel.release), MODULES)?;
    let mut order = String::new();
    for (name, path) in &modules {
        cpio.file(
            &format!("lib/modules/{name}.ko"),
            0o644,
            &decompress_module(path)?,
        )?;
        order.push_str(name);
        order.push('\n');
    }
    cpio.file("lib/modules/load-order", 0o644, order.as_bytes())?;
    cpio.finish()?;
    Ok(modules.into_iter().map(|(n, _)| n).collect())
}

/// `bin` without its debug info (`strip --strip-debug`; symbols stay for backtraces).
fn stripped(bin: &Path) -> Result<Vec<u8>> {
    let out = Path::new("target/matrix").join(format!(
        "stripped-{}",
        bin.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = fs::remove_file(&out);
    exec(
        Command::new("strip")
            .arg("--strip-debug")
            .arg("-o")
            .arg(&out)
            .arg(bin),
    )?;
    let bytes = read(&out);
    let _ = fs::remove_file(&out);
    bytes
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The shared libraries `bin` loads (ldd), the dynamic loader included; none for a static one.
fn shared_libraries(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .with_context(|| format!("ldd {}", bin.display()))?;
    if !out.status.success() {
        // "not a dynamic executable"
        return Ok(Vec::new());
    }
    let mut libs = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(path));
        } else if line.contains("not found") {
            bail!("ldd {}: {}", bin.display(), line.trim());
        }
    }
    Ok(libs)
}

/// `wanted` and their dependencies (`modinfo -F depends`) under `root`, dependencies first:
/// (name, file).
fn resolve_modules(root: &Path, wanted: &[&str]) -> Result<Vec<(String, PathBuf)>> {
    let mut index = BTreeMap::new();
    index_modules(&root.join("kernel"), &mut index)?;
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for name in wanted {
        visit_module(name, &index, &mut seen, &mut order, 0)?;
    }
    Ok(order)
}

/// Module name (`-` as `_`) → file, for every `.ko`, `.ko.xz` and `.ko.zst` under `dir`.
fn index_modules(dir: &Path, index: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            index_modules(&path, index)?;
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = [".ko", ".ko.xz", ".ko.zst"]
            .iter()
            .find_map(|ext| name.strip_suffix(ext))
        {
            index.insert(stem.replace('-', "_"), path);
        }
    }
    Ok(())
}

fn visit_module(
    name: &str,
    index: &BTreeMap<String, PathBuf>,
    seen: &mut BTreeSet<String>,
    order: &mut Vec<(String, PathBuf)>,
    depth: usize,
) -> Result<()> {
    let name = name.replace('-', "_");
    if depth > 32 {
        bail!("module dependencies deeper than 32 at {name}: a cycle?");
    }
    if !seen.insert(name.clone()) {
        return Ok(());
    }
    let Some(path) = index.get(&name) else {
        bail!("the kernel package has no module {name} (built in? then drop it from MODULES)");
    };
    let out = Command::new("modinfo")
        .args(["-F", "depends"])
        .arg(path)
        .output()
        .with_context(|| format!("modinfo {}", path.display()))?;
    if !out.status.success() {
        bail!(
            "modinfo {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    for dep in String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(',')
        .filter(|d| !d.is_empty())
    {
        visit_module(dep, index, seen, order, depth + 1)?;
    }
    order.push((name, path.clone()));
    Ok(())
}

/// A module file's ELF bytes (busybox insmod takes them uncompressed).
fn decompress_module(path: &Path) -> Result<Vec<u8>> {
    let tool = match path.extension().and_then(|e| e.to_str()) {
        Some("xz") => "xz",
        Some("zst") => "zstd",
        _ => return read(path),
    };
    let out = Command::new(tool)
        .arg("-dc")
        .arg(path)
        .output()
        .with_context(|| format!("{tool} -dc {}", path.display()))?;
    if !out.status.success() {
        bail!(
            "{tool} -dc {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// A `newc` cpio archive (what the kernel unpacks as an initramfs), written as it goes.
struct Cpio {
    out: BufWriter<File>,
    path: PathBuf,
    ino: u32,
    dirs: BTreeSet<String>,
}

impl Cpio {
    fn create(path: &Path) -> Result<Self> {
        if path.exists() {
            fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
        }
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            out: BufWriter::new(file),
            path: path.to_owned(),
            ino: 1,
            dirs: BTreeSet::new(),
        })
    }

    /// A folder and its parents (each once).
    fn dir(&mut self, path: &str) -> Result<()> {
        let mut so_far = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !so_far.is_empty() {
                so_far.push('/');
            }
            so_far.push_str(part);
            if self.dirs.insert(so_far.clone()) {
                let name = so_far.clone();
                self.entry(&name, 0o040_755, &[])?;
            }
        }
        Ok(())
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<()> {
        self.entry(path, 0o100_000 | mode, data)
    }

    fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        self.entry(path, 0o120_777, target.as_bytes())
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) -> Result<()> {
        let ino = self.ino;
        self.ino += 1;
        let nlink = if mode & 0o170_000 == 0o040_000 { 2 } else { 1 };
        self.header(ino, mode, nlink, data.len(), name)?;
        self.out.write_all(data)?;
        self.pad(data.len())?;
        Ok(())
    }

    fn header(&mut self, ino: u32, mode: u32, nlink: u32, size: usize, name: &str) -> Result<()> {
        let namesize = name.len() + 1;
        let size = u32::try_from(size).context("a file over 4 GiB in the initramfs")?;
        // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
        // rdevminor, namesize, check.
        write!(
            self.out,
            "070701{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{:08x}{size:08x}{:08x}{:08x}{:08x}{:08x}{namesize:08x}{:08x}",
            0, 0, 0, 0, 0, 0, 0, 0
        )?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.pad(110 + namesize)
    }

    fn pad(&mut self, len: usize) -> Result<()> {
        let pad = (4 - len % 4) % 4;
        self.out.write_all(&[0u8; 3][..pad])?;
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.header(0, 0, 1, 0, "TRAILER!!!")?;
        self.out
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fail_line_is_never_overwritten_and_info_lines_keep_their_detail() {
        let console = "noise\r\nMATRIX kernel INFO 6.1.0-50-cloud-amd64\r\n[demo] MATRIX demo PASS\n\
                       MATRIX demo FAIL exit 1 after 3s xdp=native\nMATRIX demo PASS 2s\n\
                       MATRIX fixtures PASS 9s 80 passed; 0 failed\n";
        let r = parse_results(console);
        assert_eq!(r["kernel"].detail, "6.1.0-50-cloud-amd64");
        assert!(r["kernel"].pass);
        assert!(!r["demo"].pass, "{:?}", r["demo"]);
        assert_eq!(r["demo"].detail, "exit 1 after 3s xdp=native");
        assert!(r["fixtures"].pass);
        assert_eq!(r["fixtures"].detail, "9s 80 passed; 0 failed");
    }

    #[test]
    fn a_check_without_a_result_fails_and_the_netlink_fallback_is_named() {
        let r = parse_results("MATRIX egress PASS 4s api=netlink\nMATRIX demo PASS 1s\n");
        let mut cells = BTreeMap::new();
        fill_checks(&mut cells, &r, Path::new("console.log"), true);
        assert!(cells["demo"].pass);
        assert!(cells["egress"].pass);
        assert!(cells["egress"].detail.contains("fallback: netlink"));
        for missing in ["fixtures", "restart", "tunnels"] {
            assert!(!cells[missing].pass);
            assert!(cells[missing].detail.contains("no result"));
        }
        let report = Report {
            rows: vec![Row {
                kernel: "k".into(),
                how: "qemu/tcg".into(),
                cells,
            }],
        };
        assert_eq!((report.passed(), report.failed()), (2, 3));
        assert!(report.table().contains("FAIL no result"));
    }

    #[test]
    fn unknown_kernel_names_are_refused_with_the_known_ones() {
        let err = select(&["debian9".into()]).unwrap_err().to_string();
        assert!(
            err.contains("debian12-6.1") && err.contains("host"),
            "{err}"
        );
        let (k, host) = select(&[HOST.into()]).unwrap();
        assert!(k.is_empty() && host);
        let (k, host) = select(&[]).unwrap();
        assert_eq!(k.len(), KERNELS.len());
        assert!(host);
    }

    #[test]
    fn the_cpio_archive_is_newc_with_padding_and_a_trailer() {
        let dir = std::env::temp_dir().join(format!("xtask-cpio-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.cpio");
        let mut c = Cpio::create(&path).unwrap();
        c.dir("a/b").unwrap();
        c.file("a/b/f", 0o644, b"hello").unwrap();
        c.symlink("a/l", "b/f").unwrap();
        c.finish().unwrap();
        let bytes = fs::read(&path).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(bytes.len() % 4, 0);
        // Walk the archive: every header at a 4-byte boundary, names and sizes as written.
        let mut at = 0;
        let mut names = Vec::new();
        loop {
            let h = std::str::from_utf8(&bytes[at..at + 110]).unwrap();
            assert_eq!(&h[..6], "070701");
            let field = |i: usize| u32::from_str_radix(&h[6 + 8 * i..14 + 8 * i], 16).unwrap();
            let (mode, size, namesize) = (field(1), field(6) as usize, field(11) as usize);
            let name = std::str::from_utf8(&bytes[at + 110..at + 110 + namesize - 1]).unwrap();
            let data_at = (at + 110 + namesize).next_multiple_of(4);
            let data = &bytes[data_at..data_at + size];
            names.push((name.to_owned(), mode, data.to_vec()));
            at = (data_at + size).next_multiple_of(4);
            if name == "TRAILER!!!" {
                break;
            }
        }
        assert_eq!(at, bytes.len());
        assert_eq!(
            names,
            vec![
                ("a".to_owned(), 0o040_755, vec![]),
                ("a/b".to_owned(), 0o040_755, vec![]),
                ("a/b/f".to_owned(), 0o100_644, b"hello".to_vec()),
                ("a/l".to_owned(), 0o120_777, b"b/f".to_vec()),
                ("TRAILER!!!".to_owned(), 0, vec![]),
            ]
        );
    }
}
