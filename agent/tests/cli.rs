//! The `embargo` binary's behaviour on bad input and missing prerequisites: what a person sees
//! before anything touches the kernel. Needs no root (one check drops root if it has it).

use std::process::{Command, Output};

fn embargo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_embargo"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("run embargo")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_config(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("embargo-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bad_config_exits_64_naming_file_line_and_column() {
    let path = temp_config(
        "bad.toml",
        "enforce = [\"UK\"]\n[[allow]]\nprefix = \"192.0.2.300\"\nreason = \"x\"\n",
    );
    let out = embargo(&["run", "--config", path.to_str().unwrap(), "-i", "lo:inside"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:3:10", path.display())), "{err}");
    assert!(err.contains("nothing from it was applied"), "{err}");
}

#[test]
fn check_passes_on_the_default() {
    let out = embargo(&["check", "--config", "config/default.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("config/default.toml: OK"), "{text}");
    assert!(text.contains("2 enforced"), "{text}");
    assert!(text.contains("CYB0114"), "{text}");
}

#[test]
fn why_names_the_entity_and_its_references_for_each_seed_entity() {
    // One indicator of each entity, from ../shared/data/seed-indicators.
    for (addr, id, reference) in [
        ("114.255.70.20", "integrity-tech", "jy2769"),
        ("74.120.172.10", "i-soon", "CYB0114"),
    ] {
        let out = embargo(&["why", addr, "--config", "config/default.toml", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["verdict"], "listed", "{v}");
        assert_eq!(v["action"], "drop", "{v}");
        assert_eq!(v["entity"]["id"], id, "{v}");
        assert!(
            v["designations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["reference"].as_str().unwrap().contains(reference)),
            "{v}"
        );
        assert_eq!(v["designations"][0]["authority"], "UK", "{v}");
        assert_eq!(v["evidence"]["kind"], "advisory", "{v}");
        let human = embargo(&["why", addr, "--config", "config/default.toml"]);
        let text = String::from_utf8_lossy(&human.stdout);
        assert!(
            text.contains("BLOCKED") && text.contains(reference),
            "{text}"
        );
    }
    let out = embargo(&[
        "why",
        "192.0.2.10",
        "--config",
        "config/default.toml",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "not_listed", "{v}");
}

#[test]
fn plan_without_agent_compares_against_nothing() {
    let out = embargo(&[
        "plan",
        "--config",
        "config/default.toml",
        "--control-socket",
        "/nonexistent/e.sock",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("comparing against an empty policy"),
        "{}",
        stderr(&out)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["added"].as_array().unwrap().len(), 132, "{v}");
    assert_eq!(v["entities_added"].as_array().unwrap().len(), 2, "{v}");
}

#[test]
fn syntax_error_exits_64() {
    let path = temp_config(
        "syntax.toml",
        "enforce = [\"UK\"]\n[[entities]\nid = \"a\"\n",
    );
    let out = embargo(&["run", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{}:2:", path.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_config_file_is_a_config_error() {
    let out = embargo(&["run", "--config", "/nonexistent/embargo.toml"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr(&out).contains("/nonexistent/embargo.toml: cannot read"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unknown_interface_is_named_before_anything_loads() {
    let out = embargo(&[
        "run",
        "--config",
        "config/default.toml",
        "-i",
        "nosuch0:inside",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("no interface named `nosuch0`"), "{err}");
    assert!(err.contains("ip link"), "{err}");
}

#[test]
fn interface_flag_needs_a_role() {
    let out = embargo(&["run", "--config", "config/default.toml", "-i", "lo"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("lo:inside"), "{}", stderr(&out));
}

#[test]
fn no_interfaces_is_explained() {
    let out = embargo(&["run", "--config", "config/default.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--interface NAME:ROLE"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn status_without_agent_says_what_to_check() {
    let out = embargo(&["status", "--control-socket", "/nonexistent/embargo.sock"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is `embargo run` running"),
        "{}",
        stderr(&out)
    );
}

/// Runs `embargo run --config <"enforce = [UK]"> -i lo:inside --control-socket <tmp> ARGS`
/// without privileges: as root, it drops to `nobody` with no capabilities through setpriv
/// (util-linux); as a normal user it runs as is. So nothing can be loaded or attached whatever
/// happens. The binary and config are copied to a world-readable folder first, since the
/// checkout may sit in a private one.
fn run_unprivileged(name: &str, args: &[&str]) -> Output {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("embargo-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.join("embargo");
    std::fs::copy(env!("CARGO_BIN_EXE_embargo"), &bin).unwrap();
    let config = dir.join("default.toml");
    // Self-contained (the default's entity files are elsewhere).
    std::fs::write(&config, "enforce = [\"UK\"]\n").unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    let out = cmd
        .arg("run")
        .arg("--config")
        .arg(&config)
        .args(["-i", "lo:inside", "--control-socket"])
        .arg(dir.join("control.sock"))
        .args(args)
        .output()
        .expect("run embargo without privileges");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// Without CAP_BPF the agent says which capabilities it needs.
#[test]
fn missing_privileges_name_the_capabilities() {
    // Port 0: a free one, so an agent elsewhere on 9610 cannot change the outcome.
    let out = run_unprivileged("priv", &["--metrics-listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("CAP_BPF"), "{}", stderr(&out));
}

/// A metrics address that cannot be bound stops the agent before it loads anything, saying
/// which address and how to choose another.
#[test]
fn a_taken_metrics_address_is_a_startup_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run_unprivileged("metrics-bind", &["--metrics-listen", &addr]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot listen for metrics on {addr}")),
        "{err}"
    );
    assert!(err.contains("--metrics-listen"), "{err}");
    // Refused before loading: the privilege error never came.
    assert!(!err.contains("CAP_BPF"), "{err}");
}

#[test]
fn metrics_listen_flag_must_be_an_address() {
    let out = embargo(&[
        "run",
        "--config",
        "config/default.toml",
        "-i",
        "lo:inside",
        "--metrics-listen",
        "localhost",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--metrics-listen"),
        "{}",
        stderr(&out)
    );
}
