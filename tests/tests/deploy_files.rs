//! The deployment files under `deploy/`: they parse; the systemd unit and the DaemonSet grant
//! exactly the capabilities measured in `capabilities.rs`; the policy the DaemonSet ships
//! compiles; `promtool` accepts the alert rules and passes their tests, which fire and stay
//! quiet for every alert; the dashboard is JSON; and every metric name used is one the agent
//! exports. Needs no root, but needs `promtool` (Debian's `prometheus`) and `systemd-analyze`
//! (`cargo xtask setup` installs both), and the built binary for the unit's flags.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use yaml_rust2::{Yaml, YamlLoader};

/// The metrics the agent exports: part of the product, fixed names.
const PRODUCT_METRICS: [&str; 17] = [
    "embargo_packets_total",
    "embargo_bytes_total",
    "embargo_prefixes",
    "embargo_map_entries",
    "embargo_map_capacity",
    "embargo_reloads_total",
    "embargo_policy_info",
    "embargo_last_reload_timestamp_seconds",
    "embargo_source_last_success_timestamp_seconds",
    "embargo_source_fetch_errors_total",
    "embargo_attestation_drift_entries",
    "embargo_parse_outcome_packets_total",
    "embargo_xdp_attach_info",
    "embargo_ready",
    "embargo_events_lost_total",
    "embargo_policy_next_change_timestamp_seconds",
    "embargo_evidence_expiry_timestamp_seconds",
];
/// The measured set (deploy/CAPABILITIES.md, tests/tests/capabilities.rs), Kubernetes spelling.
const CAPS: [&str; 3] = ["BPF", "NET_ADMIN", "PERFMON"];
const METRICS_PORT: i64 = 9610;
const ALERTS: &str = "prometheus/embargo-alerts.yml";
const ALERT_TESTS: &str = "prometheus/embargo-alerts.test.yml";
const DASHBOARD: &str = "grafana/embargo-dashboard.json";
const DAEMONSET: &str = "kubernetes/daemonset.yaml";
const SERVICEMONITOR: &str = "kubernetes/servicemonitor.yaml";
const UNIT: &str = "systemd/embargo.service";

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read(rel: &str) -> String {
    let path = deploy().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(rel: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The document of `kind` in `docs`.
fn of_kind<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} document"))
}

fn strs(y: &Yaml) -> Vec<&str> {
    y.as_vec()
        .unwrap_or_else(|| panic!("not a list: {y:?}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_else(|| panic!("not a string: {s:?}")))
        .collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `tool` with `args` from deploy/; panics naming the package if it is missing.
fn tool(tool: &str, package: &str, args: &[&str]) -> Output {
    Command::new(tool)
        .args(args)
        .current_dir(deploy())
        .output()
        .unwrap_or_else(|e| {
            panic!("{tool}: {e}; install Debian's `{package}` (`cargo xtask setup` does)")
        })
}

/// Every `embargo_*` name in `s`.
fn metric_names(s: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = s;
    while let Some(i) = rest.find("embargo_") {
        // Not the tail of a longer identifier.
        let before = rest[..i].chars().next_back();
        let tail = &rest[i..];
        let len = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.insert(tail[..len].to_owned());
        }
        rest = &tail[len..];
    }
    out
}

#[test]
fn every_yaml_file_parses() {
    let mut files = Vec::new();
    let mut dirs = vec![deploy()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert_eq!(files.len(), 4, "{files:?}");
    for f in &files {
        let docs = YamlLoader::load_from_str(&std::fs::read_to_string(f).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(
            docs.iter().any(|d| d.as_hash().is_some()),
            "{}: no mapping in it",
            f.display()
        );
    }
}

/// Kubernetes asks the agent's own endpoints: readiness is /readyz (policy loaded and attached),
/// liveness /healthz (the process answers), both on the metrics port over loopback; neither
/// runs a command in the container nor scrapes every counter through /metrics.
#[test]
fn the_daemonset_probes_readyz_and_healthz() {
    let docs = yaml(DAEMONSET);
    let ds = of_kind(&docs, "DaemonSet");
    let c = &ds["spec"]["template"]["spec"]["containers"][0];
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let p = &c[probe];
        assert!(p["exec"].is_badvalue(), "{probe} runs a command");
        let get = &p["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(get["port"].as_str(), Some("metrics"), "{probe}");
        assert_eq!(get["host"].as_str(), Some("127.0.0.1"), "{probe}");
    }
    // The port the probes name is the one the agent listens on.
    let ports = c["ports"].as_vec().unwrap();
    assert!(ports.iter().any(
        |p| p["name"].as_str() == Some("metrics") && p["containerPort"].as_i64() == Some(9610)
    ));
    let args = strs(&c["args"]);
    let listen = args.iter().position(|a| *a == "--metrics-listen").unwrap();
    assert!(args[listen + 1].ends_with(":9610"), "{args:?}");
}

#[test]
fn the_daemonset_grants_exactly_the_measured_capabilities() {
    let docs = yaml(DAEMONSET);
    let ds = of_kind(&docs, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"].as_bool(), Some(true));
    let containers = pod["containers"].as_vec().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_eq!(strs(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(strs(&sc["capabilities"]["add"]), CAPS);
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sc["privileged"].as_bool(), Some(false));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));

    // Mounts: bpffs from the host, the config from its ConfigMap.
    let volumes = pod["volumes"].as_vec().unwrap();
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    let mount = |path: &str| {
        let m = c["volumeMounts"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"].as_str() == Some(path))
            .unwrap_or_else(|| panic!("nothing mounted at {path}"));
        volume(m["name"].as_str().unwrap())
    };
    assert_eq!(
        mount("/sys/fs/bpf")["hostPath"]["path"].as_str(),
        Some("/sys/fs/bpf")
    );
    let config_map = of_kind(&docs, "ConfigMap");
    assert_eq!(
        mount("/etc/embargo")["configMap"]["name"].as_str(),
        config_map["metadata"]["name"].as_str()
    );

    // Metrics on every address of the node, on the product's port, announced for scraping.
    let args = strs(&c["args"]);
    let listen = args
        .iter()
        .position(|a| *a == "--metrics-listen")
        .map(|i| args[i + 1]);
    assert_eq!(listen, Some("0.0.0.0:9610"), "{args:?}");
    assert_eq!(
        &args[..3],
        ["run", "--config", "/etc/embargo/embargo.toml"],
        "{args:?}"
    );
    let port = &c["ports"][0];
    assert_eq!(
        (port["name"].as_str(), port["containerPort"].as_i64()),
        (Some("metrics"), Some(METRICS_PORT))
    );
    let ann = &ds["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(ann["prometheus.io/port"].as_str(), Some("9610"));
}

#[test]
fn the_headless_service_and_servicemonitor_reach_the_metrics_port() {
    let docs = yaml(DAEMONSET);
    let pod_labels = &of_kind(&docs, "DaemonSet")["spec"]["template"]["metadata"]["labels"];
    let svc = of_kind(&docs, "Service");
    assert_eq!(svc["spec"]["clusterIP"].as_str(), Some("None"));
    let selector = svc["spec"]["selector"].as_hash().unwrap();
    assert!(!selector.is_empty());
    for (k, v) in selector {
        assert_eq!(&pod_labels[k.as_str().unwrap()], v, "selector {k:?}");
    }
    let port = &svc["spec"]["ports"][0];
    assert_eq!(port["port"].as_i64(), Some(METRICS_PORT));
    assert_eq!(port["name"].as_str(), Some("metrics"));

    let sm_docs = yaml(SERVICEMONITOR);
    let sm = of_kind(&sm_docs, "ServiceMonitor");
    assert_eq!(sm["apiVersion"].as_str(), Some("monitoring.coreos.com/v1"));
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_hash().unwrap() {
        assert_eq!(&svc["metadata"]["labels"][k.as_str().unwrap()], v, "{k:?}");
    }
    assert_eq!(
        strs(&sm["spec"]["namespaceSelector"]["matchNames"]),
        [svc["metadata"]["namespace"].as_str().unwrap()]
    );
    assert_eq!(sm["spec"]["endpoints"][0]["port"].as_str(), Some("metrics"));
    // The job label the alert rules match on (`up{job="embargo"}`).
    let job_label = sm["spec"]["jobLabel"].as_str().unwrap();
    assert_eq!(
        svc["metadata"]["labels"][job_label].as_str(),
        Some("embargo")
    );
}

/// The ConfigMap's files, written out as the pod sees /etc/embargo, compile.
#[test]
fn the_policy_the_daemonset_ships_compiles() {
    let docs = yaml(DAEMONSET);
    let data = of_kind(&docs, "ConfigMap")["data"].as_hash().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in data {
        std::fs::write(
            dir.path().join(name.as_str().unwrap()),
            body.as_str().unwrap(),
        )
        .unwrap();
    }
    let compiled = embargo::compile_file(&dir.path().join("embargo.toml"), embargo::today());
    drop(dir);
    // Whether its evidence is still in force depends on today: compiling is what must hold.
    let (config, _) = compiled.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.main.interfaces.len(), 2);
    assert_eq!(
        config.files.len(),
        data.len(),
        "every ConfigMap key is read"
    );
}

/// `Key=Value` lines of the unit (repeated keys kept in order).
fn unit_entries() -> Vec<(String, String)> {
    read(UNIT)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("not Key=Value: {l}"));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn unit_value(entries: &[(String, String)], key: &str) -> String {
    let values: Vec<&String> = entries
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values.len(), 1, "{key} set {} times", values.len());
    values[0].clone()
}

#[test]
fn the_systemd_unit_grants_exactly_the_measured_capabilities() {
    let e = unit_entries();
    let caps: Vec<String> = CAPS.iter().map(|c| format!("CAP_{c}")).collect();
    let set = caps.join(" ");
    assert_eq!(unit_value(&e, "AmbientCapabilities"), set);
    assert_eq!(unit_value(&e, "CapabilityBoundingSet"), set);
    assert_eq!(unit_value(&e, "User"), "embargo");
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        (
            "RestrictAddressFamilies",
            "AF_UNIX AF_NETLINK AF_INET AF_INET6",
        ),
        ("SystemCallArchitectures", "native"),
        ("LimitMEMLOCK", "infinity"),
        ("LimitNOFILE", "65536"),
        ("RuntimeDirectory", "embargo"),
        ("StateDirectory", "embargo"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("RestartPreventExitStatus", "64"),
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("Restart", "always"),
    ] {
        assert_eq!(unit_value(&e, key), value, "{key}");
    }
    let rw = unit_value(&e, "ReadWritePaths");
    for path in ["/var/lib/embargo", "/run/embargo", "/sys/fs/bpf"] {
        assert!(rw.contains(path), "ReadWritePaths={rw}");
    }
    // Settings that would take the host's interfaces or capabilities away.
    for key in [
        "PrivateNetwork",
        "PrivateUsers",
        "ProcSubset",
        "DynamicUser",
    ] {
        assert!(!e.iter().any(|(k, _)| k == key), "{key} is set");
    }
    let exec = unit_value(&e, "ExecStart");
    assert!(
        exec.starts_with("/usr/local/bin/embargo run --config /etc/embargo/embargo.toml"),
        "{exec}"
    );
    // The configuration is checked before the start, with the same file.
    let pre: Vec<&str> = e
        .iter()
        .filter(|(k, _)| k == "ExecStartPre")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(
        pre.contains(&"/usr/local/bin/embargo check --config /etc/embargo/embargo.toml"),
        "{pre:?}"
    );
}

/// The unit's exposure score (`systemd-analyze security`, lower is better) stays at or under
/// what it was measured at when the unit was hardened (deploy/CAPABILITIES.md): a change that
/// loosens the sandbox fails here.
#[test]
fn the_units_hardening_score_does_not_get_worse() {
    const MEASURED: f64 = 1.8;
    let dir = std::env::temp_dir().join(format!("embargo-unit-sec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = dir.join("embargo.service");
    std::fs::write(&unit, read(UNIT)).unwrap();
    let out = tool(
        "systemd-analyze",
        "systemd",
        &[
            "security",
            "--offline=true",
            "--no-pager",
            unit.to_str().unwrap(),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let score: f64 = all
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for embargo.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{all}"));
    assert!(score <= MEASURED, "exposure {score} > {MEASURED}:\n{all}");
}

/// systemd's own parser accepts every line (unknown keys and bad values only warn, so any
/// output fails the test). The binary is swapped for one that exists.
#[test]
fn systemd_analyze_accepts_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("embargo.service");
    std::fs::write(
        &unit,
        read(UNIT).replace("/usr/local/bin/embargo", "/bin/true"),
    )
    .unwrap();
    let out = tool(
        "systemd-analyze",
        "systemd",
        &["verify", unit.to_str().unwrap()],
    );
    drop(dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        (text(&out.stdout), text(&out.stderr)),
        (String::new(), String::new())
    );
}

/// Every `--flag` of the unit's ExecStart is one `embargo run` has.
#[test]
fn the_units_flags_are_ones_embargo_run_accepts() {
    let exec = unit_value(&unit_entries(), "ExecStart");
    let bin = embargo_tests::lab::embargo_bin().unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(bin).args(["run", "--help"]).output().unwrap();
    let help = text(&out.stdout);
    let flags: Vec<&str> = exec
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .collect();
    assert_eq!(flags.len(), 5, "{exec}");
    for flag in flags {
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
            "{flag} not in:\n{help}"
        );
    }
}

#[test]
fn promtool_checks_and_tests_the_alert_rules() {
    let check = tool("promtool", "prometheus", &["check", "rules", ALERTS]);
    assert!(
        check.status.success(),
        "{}{}",
        text(&check.stdout),
        text(&check.stderr)
    );
    assert!(
        text(&check.stdout).contains("SUCCESS: 13 rules found"),
        "{}",
        text(&check.stdout)
    );
    let test = tool("promtool", "prometheus", &["test", "rules", ALERT_TESTS]);
    assert!(
        test.status.success(),
        "{}{}",
        text(&test.stdout),
        text(&test.stderr)
    );
    assert!(
        text(&test.stdout).contains("SUCCESS"),
        "{}",
        text(&test.stdout)
    );
}

/// Each alert of the rules has a test where it fires and one where it must not.
#[test]
fn every_alert_is_tested_firing_and_quiet() {
    let rules = yaml(ALERTS);
    let alerts: BTreeSet<&str> = rules[0]["groups"]
        .as_vec()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_vec().unwrap())
        .filter_map(|r| r["alert"].as_str())
        .collect();
    assert_eq!(alerts.len(), 13, "{alerts:?}");
    let tests = yaml(ALERT_TESTS);
    let (mut firing, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    for t in tests[0]["tests"].as_vec().unwrap() {
        for case in t["alert_rule_test"].as_vec().unwrap() {
            let name = case["alertname"].as_str().unwrap();
            if case["exp_alerts"].as_vec().unwrap().is_empty() {
                quiet.insert(name);
            } else {
                firing.insert(name);
            }
        }
    }
    assert_eq!(firing, alerts, "alerts without a firing test");
    assert_eq!(quiet, alerts, "alerts without a quiet test");
}

/// Each alert links to its own section of deploy/RUNBOOK.md, and the runbook has no section for
/// an alert that does not exist.
#[test]
fn every_alert_has_a_runbook_section() {
    let rules = yaml(ALERTS);
    let runbook = read("RUNBOOK.md");
    // GitHub's anchors for `## Name` headings: lower case.
    let sections: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_lowercase())
        .collect();
    let mut linked = BTreeSet::new();
    for rule in rules[0]["groups"]
        .as_vec()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_vec().unwrap())
    {
        let Some(alert) = rule["alert"].as_str() else {
            continue;
        };
        let url = rule["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_else(|| panic!("{alert} has no runbook_url"));
        let anchor = url
            .strip_prefix("deploy/RUNBOOK.md#")
            .unwrap_or_else(|| panic!("{alert}: runbook_url {url} is not deploy/RUNBOOK.md#..."));
        assert_eq!(
            anchor,
            alert.to_lowercase(),
            "{alert} links to another alert's section"
        );
        assert!(
            sections.contains(anchor),
            "{alert}: deploy/RUNBOOK.md has no `## {alert}` section"
        );
        linked.insert(anchor.to_owned());
    }
    assert_eq!(
        linked, sections,
        "runbook sections without an alert, or the reverse"
    );
}

#[test]
fn the_dashboard_is_json_and_charts_every_metric() {
    let text = read(DASHBOARD);
    let d: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(d["uid"], "embargo");
    let panels = d["panels"].as_array().unwrap();
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids repeat");
    let exprs: Vec<&str> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    let used = metric_names(&exprs.join("\n"));
    let product: BTreeSet<String> = PRODUCT_METRICS.iter().map(|m| m.to_string()).collect();
    assert_eq!(used, product, "charted vs exported metrics");
}

/// A typo in a metric name would make an alert or panel silently empty.
#[test]
fn every_metric_name_used_is_one_the_agent_exports() {
    let product: BTreeSet<String> = PRODUCT_METRICS.iter().map(|m| m.to_string()).collect();
    for file in [ALERTS, ALERT_TESTS, DASHBOARD, DAEMONSET] {
        let unknown: Vec<String> = metric_names(&read(file))
            .difference(&product)
            .cloned()
            .collect();
        assert!(unknown.is_empty(), "{file}: {unknown:?}");
    }
    assert_eq!(
        metric_names("rate(embargo_packets_total[5m]) / my_embargo_x + embargo_ready"),
        ["embargo_packets_total", "embargo_ready"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}

/// The DaemonSet's init container makes the pin folder the agent's before the agent starts: it
/// is run here, on folders of this machine, as the script the pod runs. Its argument is the
/// agent's --pin-dir; a new folder is 0700, one others can write in (or, as root, one owned by
/// another user) is refused with what to do.
#[test]
fn the_daemonset_makes_the_pin_folder_private_before_the_agent() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let docs = yaml(DAEMONSET);
    let pod = &of_kind(&docs, "DaemonSet")["spec"]["template"]["spec"];
    let agent = &pod["containers"][0];
    let args = strs(&agent["args"]);
    let pin_dir = args
        .iter()
        .position(|a| *a == "--pin-dir")
        .map(|i| args[i + 1])
        .unwrap_or_else(|| panic!("no --pin-dir: {args:?}"));
    let inits = pod["initContainers"].as_vec().expect("init containers");
    let init = inits
        .iter()
        .find(|c| c["name"].as_str() == Some("pin-folder"))
        .expect("a pin-folder init container");
    let command = strs(&init["command"]);
    assert_eq!(command.len(), 5, "{command:?}");
    assert_eq!(&command[..2], ["/bin/sh", "-c"]);
    assert_eq!(
        command[4], pin_dir,
        "the init container prepares the agent's --pin-dir"
    );
    let mounted = init["volumeMounts"].as_vec().unwrap().iter().any(|m| {
        m["mountPath"].as_str() == Some("/sys/fs/bpf") && m["name"].as_str() == Some("bpffs")
    });
    assert!(mounted, "the init container sees the node's bpffs");
    let sc = &init["securityContext"];
    assert_eq!(strs(&sc["capabilities"]["drop"]), ["ALL"]);
    assert!(
        sc["capabilities"]["add"].is_badvalue(),
        "no capability added"
    );
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));

    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("embargo");
    let script = |dir: &Path| {
        Command::new("sh")
            .args(["-c", command[2], command[3]])
            .arg(dir)
            .output()
            .unwrap()
    };
    let out = script(&dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let m = std::fs::metadata(&dir).unwrap();
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    assert_eq!((m.uid(), m.mode() & 0o7777), (me, 0o700));
    // Run again on its own folder: accepted as it is.
    assert!(script(&dir).status.success());
    for (mode, needle) in [
        (0o777, "chmod 0700"),
        (0o770, "mode 770"),
        (0o1777, "mode 1777"),
    ] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = script(&dir);
        assert!(!out.status.success(), "{mode:o} accepted");
        assert!(
            text(&out.stderr).contains(needle),
            "{mode:o}: {}",
            text(&out.stderr)
        );
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(
        script(&dir).status.success(),
        "0755 of its own user is fine"
    );
    let link = base.path().join("link");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    let out = script(&link);
    assert!(!out.status.success() && text(&out.stderr).contains("not a folder"));
    if me == 0 {
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let out = script(&dir);
        assert!(!out.status.success(), "a folder of uid 65534 accepted");
        assert!(
            text(&out.stderr).contains("owned by uid 65534"),
            "{}",
            text(&out.stderr)
        );
    } else {
        eprintln!("the foreign-owner case needs root to chown");
    }
}
