//! `embargo::policy::export`: every format says what the data plane enforces, checked address by
//! address against `embargo why` ([`explain`]) on a policy with nested prefixes of two entities,
//! an allow hole, a monitored entity and expired evidence. Loading the nft and ipset files into
//! the real tools is tests/tests/export.rs (root).

mod support;

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use chrono::NaiveDate;
use embargo::{
    config::Action,
    policy::{
        compile::Compiled,
        explain::{Explanation, explain},
        export::{self, ExportError, Format, Selection},
    },
};
use ipnetwork::IpNetwork;
use support::embargo;

/// The policy: agent/tests/fixtures/export/embargo.toml.
pub fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/export/embargo.toml")
}

fn compiled() -> Compiled {
    let path = fixture();
    let today = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
    let (_, c) = embargo::compile_file(&path, today).unwrap_or_else(|e| panic!("{e}"));
    c
}

fn export(c: &Compiled, format: Format, sel: &Selection) -> String {
    let mut out = Vec::new();
    export::write(c, format, sel, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// What `why` says the data plane does with `addr`: the entity and whether it drops.
fn verdict(c: &Compiled, addr: IpAddr) -> Option<(String, Action)> {
    match explain(c, addr) {
        Explanation::Listed { entity, action, .. } => Some((entity.id, action)),
        _ => None,
    }
}

/// Every address of the policy's neighbourhood: 198.51.100.0/24, 203.0.113.0/24, 192.0.2.0/24
/// and the interesting corners of the IPv6 /40.
fn probes() -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for base in [[198, 51, 100], [203, 0, 113], [192, 0, 2]] {
        for last in 0..=255u8 {
            out.push(Ipv4Addr::new(base[0], base[1], base[2], last).into());
        }
    }
    let v6 = |s: &str| -> IpAddr { s.parse::<Ipv6Addr>().unwrap().into() };
    out.extend([
        v6("2001:db8:100::"),
        v6("2001:db8:100:54ff:ffff:ffff:ffff:ffff"),
        v6("2001:db8:100:5500::"),
        v6("2001:db8:100:55ff:ffff:ffff:ffff:ffff"),
        v6("2001:db8:100:5600::"),
        v6("2001:db8:1ff:ffff:ffff:ffff:ffff:ffff"),
        v6("2001:db8:200::"),
        v6("2001:db8:ff::1"),
    ]);
    out
}

fn nets(text: &str) -> Vec<IpNetwork> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn the_cidr_list_is_exactly_what_is_dropped() {
    let c = compiled();
    let list = nets(&export(&c, Format::Cidr, &Selection::default()));
    for addr in probes() {
        let listed = list.iter().any(|n| n.contains(addr));
        let dropped = matches!(verdict(&c, addr), Some((_, Action::Drop)));
        assert_eq!(
            listed,
            dropped,
            "{addr}: in the list {listed}, why: {:?}",
            verdict(&c, addr)
        );
    }
    // Disjoint and minimal: no prefix inside another, none adjacent to its sibling.
    for (i, a) in list.iter().enumerate() {
        for b in &list[i + 1..] {
            assert!(
                !a.contains(b.network()) && !b.contains(a.network()),
                "{a} {b}"
            );
        }
    }
    // The allow hole, the monitored /28 and the expired group are not there; the IPv6 /40 is
    // whole (the /56 inside it is dropped too, for another entity: one list merges them).
    for hole in ["198.51.100.129", "198.51.100.100", "203.0.113.1"] {
        assert!(
            !list.iter().any(|n| n.contains(hole.parse().unwrap())),
            "{hole}"
        );
    }
    assert!(
        list.contains(&"2001:db8:100::/40".parse().unwrap()),
        "{list:?}"
    );
}

#[test]
fn each_entity_gets_exactly_the_addresses_why_attributes_to_it() {
    let c = compiled();
    let sel = Selection {
        entity: None,
        monitored: true,
    };
    let sets = export::enforced(&c, &sel).unwrap();
    assert_eq!(
        sets.iter()
            .map(|s| s.entity.id.as_str())
            .collect::<Vec<_>>(),
        ["outer-corp", "inner-corp", "watched-org"]
    );
    for addr in probes() {
        let owners: Vec<&str> = sets
            .iter()
            .filter(|s| s.v4.iter().chain(&s.v6).any(|n| n.contains(addr)))
            .map(|s| s.entity.id.as_str())
            .collect();
        let want: Vec<String> = verdict(&c, addr).into_iter().map(|(id, _)| id).collect();
        assert_eq!(owners, want, "{addr}");
    }
    // EDL lines name the entity and its designation after the prefix.
    let edl = export(&c, Format::Edl, &sel);
    assert!(
        edl.lines()
            .any(|l| l == "198.51.100.64/27 inner-corp UK:CYB0002"),
        "{edl}"
    );
    assert!(edl.lines().any(|l| l.ends_with(" watched-org UK:CYB0003")));
}

#[test]
fn monitored_entities_only_when_asked() {
    let c = compiled();
    let blocked = export(&c, Format::Edl, &Selection::default());
    assert!(!blocked.contains("watched-org"), "{blocked}");
    let one = Selection {
        entity: Some("watched-org".into()),
        monitored: false,
    };
    let mut sink = Vec::new();
    assert!(matches!(
        export::write(&c, Format::Cidr, &one, &mut sink),
        Err(ExportError::Monitored(_))
    ));
    let unknown = Selection {
        entity: Some("nobody".into()),
        monitored: true,
    };
    let err = export::write(&c, Format::Cidr, &unknown, &mut sink).unwrap_err();
    assert!(
        err.to_string()
            .contains("`nobody` is not in the enforced policy"),
        "{err}"
    );
    // One entity: only its addresses.
    let inner = Selection {
        entity: Some("inner-corp".into()),
        monitored: false,
    };
    let list = nets(&export(&c, Format::Cidr, &inner));
    for addr in probes() {
        let want = verdict(&c, addr).is_some_and(|(id, _)| id == "inner-corp");
        assert_eq!(list.iter().any(|n| n.contains(addr)), want, "{addr}");
    }
}

#[test]
fn nft_and_ipset_files_name_one_set_per_entity_and_family() {
    let c = compiled();
    let nft = export(&c, Format::Nft, &Selection::default());
    for set in [
        "outer_corp_v4",
        "outer_corp_v6",
        "inner_corp_v4",
        "inner_corp_v6",
    ] {
        assert!(nft.contains(&format!("\tset {set} {{")), "{nft}");
        assert!(
            nft.contains(&format!("flush set inet embargo {set}\n")),
            "{nft}"
        );
    }
    // A quote in a name cannot end the nft string early.
    assert!(nft.contains("comment \"Inner 'Corp' UK:CYB0002\""), "{nft}");
    let ipset = export(&c, Format::Ipset, &Selection::default());
    assert!(ipset.contains("create embargo_inner_corp_v6 hash:net family inet6"));
    assert!(ipset.contains("add embargo_inner_corp_v6 2001:db8:100:5500::/56\n"));
    // Deterministic: the same policy, the same bytes.
    assert_eq!(nft, export(&c, Format::Nft, &Selection::default()));
}

/// The STIX bundle reads back through Embargo's own STIX 2.1 importer (which checks
/// spec_version, ids, timestamps and the pattern grammar) to the same prefixes per entity, and
/// carries the designations as external references.
#[test]
fn the_stix_bundle_reads_back_to_the_same_prefixes() {
    let c = compiled();
    let text = export(&c, Format::Stix, &Selection::default());
    let bundle: serde_json::Value = serde_json::from_str(&text).unwrap();
    let objects = bundle["objects"].as_array().unwrap();
    let uuid_ok = |id: &str| {
        let (_, u) = id.split_once("--").unwrap();
        u.len() == 36 && u.as_bytes()[14] == b'5'
    };
    assert!(uuid_ok(bundle["id"].as_str().unwrap()));
    let mut ids = BTreeSet::new();
    for o in objects {
        assert!(uuid_ok(o["id"].as_str().unwrap()), "{o}");
        assert!(
            ids.insert(o["id"].as_str().unwrap().to_owned()),
            "duplicate id {o}"
        );
        if o["type"] == "indicator" {
            assert_eq!(o["spec_version"], "2.1");
            let refs = o["external_references"].as_array().unwrap();
            assert!(
                refs[0]["external_id"]
                    .as_str()
                    .unwrap()
                    .starts_with("CYB000")
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle.json");
    std::fs::write(&path, &text).unwrap();
    let defaults = embargo::inputs::import::Defaults {
        kind: embargo::config::EvidenceKind::Advisory,
        source: Some("test".into()),
        retrieved: embargo::config::Date(NaiveDate::from_ymd_opt(2026, 12, 3).unwrap()),
        confidence: embargo::inputs::import::stix::confidence(90),
    };
    let imported = embargo::inputs::import::stix::parse(Path::new(&path), &text, &defaults)
        .unwrap_or_else(|e| panic!("{e}"));
    let back: BTreeSet<IpNetwork> = imported.indicators.iter().map(|i| i.net).collect();
    assert_eq!(imported.indicators.len(), back.len(), "an indicator twice");
    let sets = export::enforced(&c, &Selection::default()).unwrap();
    let want: BTreeSet<IpNetwork> = sets
        .iter()
        .flat_map(|s| s.v4.iter().chain(&s.v6).copied())
        .collect();
    assert_eq!(back, want);
}

/// `embargo export`: standard output or `--out` (a symlink there is replaced, never followed);
/// an unknown or monitored entity is a usage error (64) that writes nothing.
#[test]
fn the_command_writes_what_the_library_exports() {
    let c = compiled();
    let config = fixture();
    let config = config.to_str().unwrap();
    let out = embargo(&["export", "--format", "nft", "--config", config]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The command compiles as of today, the library call above as of a fixed day: the same
    // sets while the fixture's dates are all in the past.
    let want = export(&c, Format::Nft, &Selection::default());
    let skip_header = |t: &str| -> String {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        skip_header(&String::from_utf8_lossy(&out.stdout)),
        skip_header(&want)
    );

    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep me\n").unwrap();
    let target = dir.path().join("blocklist.txt");
    std::os::unix::fs::symlink(&victim, &target).unwrap();
    let out = embargo(&[
        "export",
        "--format",
        "cidr",
        "--entity",
        "inner-corp",
        "--config",
        config,
        "--out",
        target.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
    assert!(!target.is_symlink());
    let written = std::fs::read_to_string(&target).unwrap();
    assert_eq!(
        written,
        export(
            &c,
            Format::Cidr,
            &Selection {
                entity: Some("inner-corp".into()),
                monitored: false
            }
        )
    );

    for (entity, says) in [
        ("nobody", "`nobody` is not in the enforced policy"),
        ("watched-org", "add --monitored"),
    ] {
        let path = dir.path().join(format!("{entity}.txt"));
        let out = embargo(&[
            "export",
            "--format",
            "edl",
            "--entity",
            entity,
            "--config",
            config,
            "--out",
            path.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(64));
        assert!(String::from_utf8_lossy(&out.stderr).contains(says));
        assert!(!path.exists());
    }
}
