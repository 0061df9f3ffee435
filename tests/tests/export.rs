//! `embargo export --format nft|ipset` loaded into the real tools, in a network namespace of the
//! test's own: nft and ipset accept the files, loading them twice replaces rather than adds,
//! and the kernel's sets answer for sample addresses what `embargo why` answers (the entity that
//! drops the address, or none). The policy is agent/tests/fixtures/export/embargo.toml: nested
//! prefixes of two entities, an allow hole, a monitored entity, an expired group.

use std::{
    net::IpAddr,
    path::Path,
    process::{Command, Output},
};

use chrono::NaiveDate;
use embargo::{
    config::Action,
    policy::{
        compile::Compiled,
        explain::{Explanation, explain},
        export::{self, Format, Selection},
    },
};

/// A network namespace for the test, removed on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Self {
        let name = format!("embargo-export-{tag}-{}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(name)
    }

    fn run(&self, args: &[&str], stdin: Option<&Path>) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0]).args(args);
        if let Some(path) = stdin {
            cmd.stdin(std::fs::File::open(path).unwrap());
        }
        cmd.output().unwrap()
    }

    fn ok(&self, args: &[&str], stdin: Option<&Path>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn compiled() -> Compiled {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/tests/fixtures/export/embargo.toml");
    let today = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
    embargo::compile_file(&path, today)
        .unwrap_or_else(|e| panic!("{e}"))
        .1
}

fn write(c: &Compiled, format: Format, dir: &Path) -> std::path::PathBuf {
    let path = dir.join(format!("export.{}", format.name()));
    let mut out = Vec::new();
    export::write(c, format, &Selection::default(), &mut out).unwrap();
    std::fs::write(&path, out).unwrap();
    path
}

/// Addresses on every side of every boundary of the fixture's policy.
const PROBES: &[&str] = &[
    "198.51.100.0",
    "198.51.100.63",
    "198.51.100.64",
    "198.51.100.75",
    "198.51.100.95",
    "198.51.100.96",
    "198.51.100.111",
    "198.51.100.112",
    "198.51.100.127",
    "198.51.100.128",
    "198.51.100.131",
    "198.51.100.132",
    "198.51.100.255",
    "198.51.101.0",
    "203.0.113.1",
    "192.0.2.1",
    "2001:db8:100::1",
    "2001:db8:100:5500::1",
    "2001:db8:100:55ff::1",
    "2001:db8:100:5600::1",
    "2001:db8:1ff::1",
    "2001:db8:200::1",
];

/// The entity `why` says drops `addr`, if any.
fn dropped_by(c: &Compiled, addr: IpAddr) -> Option<String> {
    match explain(c, addr) {
        Explanation::Listed {
            entity,
            action: Action::Drop,
            ..
        } => Some(entity.id),
        _ => None,
    }
}

const ENTITIES: &[&str] = &["outer-corp", "inner-corp"];

fn family(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() { "v4" } else { "v6" }
}

#[test]
fn nft_loads_the_export_and_its_sets_answer_as_why_does() {
    let c = compiled();
    let dir = tempfile::tempdir().unwrap();
    let file = write(&c, Format::Nft, dir.path());
    let ns = Netns::new("nft");
    // Twice: the second load replaces the elements (flush + add in one transaction).
    ns.ok(&["nft", "-f", file.to_str().unwrap()], None);
    ns.ok(&["nft", "-f", file.to_str().unwrap()], None);
    let mut hits = 0;
    for probe in PROBES {
        let addr: IpAddr = probe.parse().unwrap();
        let want = dropped_by(&c, addr);
        for entity in ENTITIES {
            let set = format!("{}_{}", entity.replace('-', "_"), family(addr));
            let found = ns
                .run(
                    &[
                        "nft",
                        "get",
                        "element",
                        "inet",
                        "embargo",
                        &set,
                        &format!("{{ {probe} }}"),
                    ],
                    None,
                )
                .status
                .success();
            assert_eq!(
                found,
                want.as_deref() == Some(*entity),
                "{probe} in nft set {set}: {found}; why says {want:?}"
            );
            hits += usize::from(found);
        }
    }
    assert!(hits >= 8, "too few probes matched: {hits}");
    // The monitored entity is not exported.
    let sets = ns.ok(&["nft", "list", "sets"], None);
    assert!(!sets.contains("watched_org"), "{sets}");
}

#[test]
fn ipset_restores_the_export_and_its_sets_answer_as_why_does() {
    let c = compiled();
    let dir = tempfile::tempdir().unwrap();
    let file = write(&c, Format::Ipset, dir.path());
    let ns = Netns::new("ipset");
    ns.ok(&["ipset", "restore"], Some(&file));
    // Again: `-exist` and `flush` make a second restore replace the elements.
    ns.ok(&["ipset", "restore"], Some(&file));
    let mut hits = 0;
    for probe in PROBES {
        let addr: IpAddr = probe.parse().unwrap();
        let want = dropped_by(&c, addr);
        for entity in ENTITIES {
            let set = format!("embargo_{}_{}", entity.replace('-', "_"), family(addr));
            let found = ns
                .run(&["ipset", "test", &set, probe], None)
                .status
                .success();
            assert_eq!(
                found,
                want.as_deref() == Some(*entity),
                "{probe} in ipset {set}: {found}; why says {want:?}"
            );
            hits += usize::from(found);
        }
    }
    assert!(hits >= 8, "too few probes matched: {hits}");
    let list = ns.ok(&["ipset", "list", "-n"], None);
    assert!(!list.contains("watched"), "{list}");
    ns.ok(&["ipset", "destroy"], None);
}
