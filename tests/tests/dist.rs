//! What `cargo xtask dist` made in target/dist/, used the way an operator would: the .deb
//! installed by dpkg into a throwaway root (its maintainer script creating the user there) and
//! linted by lintian, the tarball's install.sh run into a temporary DESTDIR, the container image
//! run by podman; in each, the installed binary checks the installed policy. Needs root (dpkg
//! --root, podman), and `cargo xtask dist` first (`cargo xtask test` runs it before these).

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use yaml_rust2::YamlLoader;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dist() -> PathBuf {
    let dist = workspace().join("target/dist");
    assert!(
        dist.join("stage/bin/embargo").exists(),
        "{} has no release tree: run `cargo xtask dist` first",
        dist.display()
    );
    dist
}

fn deb() -> PathBuf {
    dist().join(format!("embargo_{VERSION}-1_amd64.deb"))
}

fn tarball() -> PathBuf {
    dist().join(format!("embargo-{VERSION}-x86_64-linux.tar.gz"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `root`'s binary (at `bin`, relative) accepts `root`'s installed policy.
fn installed_policy_checks(root: &Path, bin: &str) {
    let config = root.join("etc/embargo/embargo.toml");
    assert_eq!(
        std::fs::read(&config).unwrap(),
        std::fs::read(workspace().join("config/default.toml")).unwrap(),
        "the installed policy is the default one, byte for byte"
    );
    let out = run(Command::new(root.join(bin))
        .arg("check")
        .arg("--config")
        .arg(&config));
    assert!(
        text(&out.stdout).contains("i-soon"),
        "{}",
        text(&out.stdout)
    );
}

/// The completions and man page at `share` (the installed `PREFIX/share`), `zsh` its folder.
fn completions_and_man(share: &Path, zsh: &str) {
    for (file, needle) in [
        ("bash-completion/completions/embargo", "_embargo()"),
        (zsh, "#compdef embargo"),
        (
            "fish/vendor_completions.d/embargo.fish",
            "complete -c embargo",
        ),
    ] {
        let body = read(&share.join(file));
        assert!(body.contains(needle), "{file} lacks {needle}");
        // Generated from the binary's clap definitions: every command is there.
        assert!(body.contains("check") && body.contains("why"), "{file}");
    }
    let man = share.join("man/man8/embargo.8.gz");
    let page = run(Command::new("gzip").arg("-dc").arg(&man));
    let page = text(&page.stdout);
    assert!(page.contains(".TH embargo 8"), "{page:.200}");
    assert!(page.contains("EMBARGO RUN"), "one section per subcommand");
}

#[test]
fn the_release_binary_is_stripped_and_links_its_debug_info() {
    let dist = dist();
    let sections = |f: &Path| text(&run(Command::new("readelf").arg("-S").arg(f)).stdout);
    let bin = sections(&dist.join("stage/bin/embargo"));
    assert!(
        !bin.contains(".debug_info"),
        "debug info left in the binary"
    );
    assert!(!bin.contains(".symtab"), "symbols left in the binary");
    assert!(bin.contains(".gnu_debuglink"), "no debug link");
    let link = run(Command::new("readelf")
        .args(["-p", ".gnu_debuglink"])
        .arg(dist.join("stage/bin/embargo")));
    assert!(text(&link.stdout).contains("embargo.debug"));
    let debug = sections(&dist.join("embargo.debug"));
    assert!(debug.contains(".debug_info") && debug.contains(".symtab"));
    let version = run(Command::new(dist.join("stage/bin/embargo")).arg("--version"));
    assert!(
        text(&version.stdout).starts_with(&format!("embargo {VERSION} (commit ")),
        "{}",
        text(&version.stdout)
    );
}

#[test]
fn the_deb_installs_into_a_throwaway_root_and_its_binary_checks_the_policy() {
    let deb = deb();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let admin = root.join("var/lib/dpkg");
    std::fs::create_dir_all(admin.join("info")).unwrap();
    std::fs::create_dir_all(admin.join("updates")).unwrap();
    std::fs::write(admin.join("status"), "").unwrap();
    // A real install: dpkg unpacks, records the conffiles and runs the postinst outside a chroot
    // with DPKG_ROOT set (it creates the embargo user in the root's /etc/passwd). The root has
    // no libc6 package to satisfy Depends (the binary runs on the host's libraries).
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-depends",
            "--force-not-root",
        ])
        .arg("-i")
        .arg(&deb));
    installed_policy_checks(root, "usr/bin/embargo");

    let conffiles = read(&admin.join("info/embargo.conffiles"));
    for f in [
        "/etc/embargo/embargo.toml",
        "/etc/embargo/entities/i-soon.toml",
        "/etc/embargo/entities/integrity-tech.toml",
    ] {
        assert!(
            conffiles.lines().any(|l| l == f),
            "{f} not a conffile:\n{conffiles}"
        );
    }
    let unit = read(&root.join("lib/systemd/system/embargo.service"));
    assert!(unit.contains("ExecStart=/usr/bin/embargo run --config /etc/embargo/embargo.toml"));
    assert!(
        !unit.contains("/usr/local"),
        "the unit names the packaged binary"
    );
    assert!(root.join("usr/lib/sysusers.d/embargo.conf").exists());
    completions_and_man(&root.join("usr/share"), "zsh/vendor-completions/_embargo");
    let copyright = read(&root.join("usr/share/doc/embargo/copyright"));
    assert!(copyright.contains("GPL-2.0-only") && copyright.contains("declares the licence"));
    if Command::new("systemd-sysusers")
        .arg("--version")
        .output()
        .is_ok()
    {
        let passwd = read(&root.join("etc/passwd"));
        assert!(
            passwd.lines().any(|l| l.starts_with("embargo:")),
            "the postinst made no embargo user:\n{passwd}"
        );
    }

    // An upgrade keeps an edited conffile (dpkg's conffile handling, not ours to re-test in
    // full): reinstall with --force-confold over an edited policy.
    let config = root.join("etc/embargo/embargo.toml");
    let edited = format!("{}\n# edited by the operator\n", read(&config));
    std::fs::write(&config, &edited).unwrap();
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-depends",
            "--force-not-root",
            "--force-confold",
        ])
        .arg("-i")
        .arg(&deb));
    assert_eq!(read(&config), edited);
}

#[test]
fn the_deb_control_names_its_dependencies() {
    let out = run(Command::new("dpkg-deb").arg("-f").arg(deb()));
    let control = text(&out.stdout);
    assert!(
        control.contains(&format!("Version: {VERSION}-1")),
        "{control}"
    );
    assert!(control.contains("Architecture: amd64"), "{control}");
    let depends = control
        .lines()
        .find_map(|l| l.strip_prefix("Depends: "))
        .unwrap_or_else(|| panic!("no Depends:\n{control}"));
    assert!(depends.contains("libc6"), "{depends}");
}

#[test]
fn lintian_finds_no_error_in_the_deb() {
    let out = Command::new("lintian")
        .args(["--fail-on", "error", "--tag-display-limit", "0"])
        .arg(deb())
        .output()
        .expect("lintian is not installed: `cargo xtask setup` installs it");
    assert!(
        out.status.success(),
        "lintian: {}\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn the_tarball_installs_into_a_destdir_and_keeps_an_existing_policy() {
    let tmp = tempfile::tempdir().unwrap();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(tarball())
        .arg("-C")
        .arg(tmp.path()));
    let unpacked = tmp.path().join(format!("embargo-{VERSION}-x86_64-linux"));
    let root = tmp.path().join("root");
    let install = |extra: &[&str]| {
        run(Command::new(unpacked.join("install.sh"))
            .args(extra)
            .env("DESTDIR", &root))
    };
    install(&[]);
    installed_policy_checks(&root, "usr/local/bin/embargo");
    let unit = read(&root.join("usr/local/lib/systemd/system/embargo.service"));
    assert!(unit.contains("ExecStart=/usr/local/bin/embargo run"));
    assert!(root.join("usr/local/lib/sysusers.d/embargo.conf").exists());
    assert!(root.join("etc/embargo/entities/i-soon.toml").exists());
    completions_and_man(&root.join("usr/local/share"), "zsh/site-functions/_embargo");
    assert!(read(&root.join("usr/local/share/doc/embargo/LICENSE-GPL-2.0")).contains("GNU"));

    // Again, over an edited policy and into another prefix: the policy is kept, the unit names
    // the new binary.
    let config = root.join("etc/embargo/embargo.toml");
    std::fs::write(&config, "enforce = []\n").unwrap();
    let out = install(&["--prefix", "/opt/embargo"]);
    assert!(text(&out.stdout).contains("kept /etc/embargo/embargo.toml"));
    assert_eq!(read(&config), "enforce = []\n");
    let unit = read(&root.join("etc/systemd/system/embargo.service"));
    assert!(
        unit.contains("ExecStart=/opt/embargo/bin/embargo run"),
        "{unit}"
    );
    assert!(root.join("opt/embargo/bin/embargo").exists());

    let bad = Command::new(unpacked.join("install.sh"))
        .args(["--prefix", "relative"])
        .env("DESTDIR", &root)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(64));
    assert!(text(&bad.stderr).contains("absolute path"));
}

/// podman, run as the machine allows: runc (crun refuses a hybrid cgroup hierarchy) and
/// explicit limits (podman's default RLIMIT_NOFILE exceeds the hard limit a CI shell may have).
fn podman_run(args: &[&str]) -> Output {
    let image = format!("localhost/embargo:{VERSION}");
    run(Command::new("podman")
        .args(["--runtime", "runc", "run", "--rm", "--network", "none"])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .arg(&image)
        .args(args))
}

#[test]
fn the_container_image_runs_and_checks_its_shipped_policy() {
    let version = podman_run(&["--version"]);
    assert!(
        text(&version.stdout).starts_with(&format!("embargo {VERSION} (commit ")),
        "{}",
        text(&version.stdout)
    );
    let check = podman_run(&["check", "--config", "/etc/embargo/embargo.toml"]);
    assert!(
        text(&check.stdout).contains("i-soon"),
        "{}",
        text(&check.stdout)
    );
    assert!(
        dist()
            .join(format!("embargo-{VERSION}-x86_64-linux.oci.tar"))
            .exists()
    );
}

#[test]
fn the_daemonset_runs_the_image_the_build_makes() {
    let path = workspace().join("deploy/kubernetes/daemonset.yaml");
    let docs = YamlLoader::load_from_str(&read(&path)).unwrap();
    let ds = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("DaemonSet"))
        .expect("a DaemonSet");
    let containers = ds["spec"]["template"]["spec"]["containers"]
        .as_vec()
        .unwrap();
    let agent = containers
        .iter()
        .find(|c| c["name"].as_str() == Some("embargo"))
        .unwrap();
    assert_eq!(
        agent["image"].as_str(),
        Some(format!("localhost/embargo:{VERSION}").as_str())
    );
    assert_eq!(
        agent["command"][0].as_str(),
        Some("/usr/local/bin/embargo"),
        "where the Containerfile puts the binary"
    );
    let containerfile = read(&workspace().join("deploy/container/Containerfile"));
    assert!(containerfile.contains("/usr/local/bin/embargo"));
}
