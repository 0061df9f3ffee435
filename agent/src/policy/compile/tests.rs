//! The compiler's tests: each rule of the semantics on a small configuration, and the property
//! that the compiled table answers every address as [`super::evaluate`] does.

use std::{net::Ipv4Addr, path::Path};

use proptest::prelude::*;

use super::*;
use crate::{
    config::{self, validate::validate},
    policy::resolve,
};

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn build(text: &str) -> (Config, Resolved) {
    let c = config::parse(Path::new("t.toml"), text.to_owned()).unwrap();
    let r = resolve::resolve(&c).unwrap();
    (c, r)
}

fn compile_str(text: &str, today: &str) -> Result<Compiled, ConfigError> {
    let (c, r) = build(text);
    compile(&validate(&c)?, &r, day(today))
}

fn entity(
    id: &str,
    action: &str,
    authority: &str,
    extra_designation: &str,
    groups: &str,
) -> String {
    format!(
        r#"
[[entities]]
id = "{id}"
name = "{id} Ltd"
action = "{action}"
[[entities.designations]]
authority = "{authority}"
regime = "r"
reference = "REF-{id}"
listed_on = 2025-01-01
source = "https://example.org/{id}"
{extra_designation}
{groups}
"#
    )
}

/// A network group with a `guard_override`: the tests list documentation, benchmarking and
/// private ranges, which the guard refuses without one ([`crate::policy::special`]).
fn group(prefixes: &[&str], evidence_extra: &str) -> String {
    bare_group(prefixes, evidence_extra).replace(
        "[entities.networks.evidence]",
        "guard_override = \"documentation and private ranges in tests\"\n[entities.networks.evidence]",
    )
}

/// A network group without a `guard_override`, for the guard's tests.
fn bare_group(prefixes: &[&str], evidence_extra: &str) -> String {
    format!(
        r#"
[[entities.networks]]
prefixes = [{}]
[entities.networks.evidence]
kind = "advisory"
source = "https://example.org/ioc"
retrieved = 2026-01-01
confidence = "medium"
{evidence_extra}
"#,
        prefixes
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[test]
fn only_enforced_authorities_count() {
    let text = format!(
        "enforce = [\"uk\"]\n{}{}",
        entity("a", "drop", "UK", "", &group(&["192.0.2.0/24"], "")),
        entity("b", "drop", "US", "", &group(&["198.51.100.0/24"], ""))
    );
    let c = compile_str(&text, "2026-06-01").unwrap();
    assert_eq!(c.entities.len(), 1);
    assert_eq!(c.entities[0].id, "a");
    assert_eq!(c.report.entities_left_out().len(), 1);
    assert!(
        c.report.entities_left_out()[0]
            .1
            .contains("designated only by US")
    );
    let why = crate::policy::explain::explain(&c, "198.51.100.1".parse().unwrap());
    let crate::policy::explain::Explanation::NotListed { left_out, .. } = why else {
        panic!()
    };
    assert_eq!(left_out[0].entity, "b");
}

#[test]
fn delisting_ends_enforcement_on_its_date() {
    let text = format!(
        "enforce = [\"UK\"]\n{}",
        entity(
            "a",
            "drop",
            "UK",
            "delisted_on = 2026-03-01",
            &group(&["192.0.2.0/24"], "")
        )
    );
    assert_eq!(compile_str(&text, "2026-02-28").unwrap().rules.len(), 1);
    let c = compile_str(&text, "2026-03-01").unwrap();
    assert!(c.rules.is_empty());
    assert!(c.report.entities_left_out()[0].1.contains("delisted"));
}

#[test]
fn evidence_ages_out_by_max_age_or_expiry() {
    let text = format!(
        "enforce = [\"UK\"]\n{}",
        entity(
            "a",
            "drop",
            "UK",
            "",
            &(group(&["192.0.2.0/24"], "max_age = \"30days\"")
                + &group(&["198.51.100.0/24"], "expires = 2026-06-01"))
        )
    );
    let c = compile_str(&text, "2026-01-30").unwrap();
    assert_eq!(c.rules.len(), 2);
    let c = compile_str(&text, "2026-01-31").unwrap();
    assert_eq!(c.rules.len(), 1);
    assert_eq!(c.report.messages(FindingKind::ExpiredEvidence).len(), 1);
    let c = compile_str(&text, "2026-06-01").unwrap();
    assert!(c.rules.is_empty());
}

#[test]
fn evidence_counts_from_its_valid_from() {
    let text = format!(
        "enforce = [\"UK\"]\n{}",
        entity(
            "a",
            "drop",
            "UK",
            "",
            &(group(
                &["192.0.2.0/24"],
                "valid_from = 2026-03-01\nexpires = 2026-09-01"
            ) + &group(&["198.51.100.0/24"], ""))
        )
    );
    let probe: IpAddr = "192.0.2.9".parse().unwrap();
    // The day before: the group is left out, and `why` says until when.
    let c = compile_str(&text, "2026-02-28").unwrap();
    assert_eq!(c.rules.len(), 1);
    assert!(c.lookup(probe).is_none());
    assert_eq!(
        c.report.messages(FindingKind::PendingEvidence).len(),
        1,
        "{:?}",
        c.report
    );
    assert!(c.report.messages(FindingKind::PendingEvidence)[0].contains("counts from 2026-03-01"));
    let crate::policy::explain::Explanation::NotListed { left_out, .. } =
        crate::policy::explain::explain(&c, probe)
    else {
        panic!("listed before its valid_from")
    };
    assert!(
        left_out[0].reason.contains("only from 2026-03-01"),
        "{left_out:?}"
    );
    let (cfg, r) = build(&text);
    assert_eq!(
        evaluate(&cfg, &r, day("2026-02-28"), probe),
        Decision::NotListed
    );
    // On the date and after, until it expires.
    for today in ["2026-03-01", "2026-08-31"] {
        let c = compile_str(&text, today).unwrap();
        assert_eq!(c.rules.len(), 2, "{today}");
        assert!(c.lookup(probe).is_some(), "{today}");
        assert!(
            c.report.messages(FindingKind::PendingEvidence).is_empty(),
            "{today}"
        );
        assert_eq!(
            evaluate(&cfg, &r, day(today), probe),
            Decision::Entity("a".into())
        );
    }
    assert!(
        compile_str(&text, "2026-09-01")
            .unwrap()
            .lookup(probe)
            .is_none()
    );
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn next_change(text: &str, now: &str) -> Option<NextChange> {
    let (c, r) = build(text);
    compile(&validate(&c).unwrap(), &r, at(now))
        .unwrap()
        .next_change
}

/// Each kind of date is the next change while it is ahead, at its day's 00:00 UTC (or its
/// instant), and no longer once it has taken effect.
#[test]
fn the_next_change_is_each_kind_of_date() {
    let one = |designation: &str, evidence: &str| {
        format!(
            "enforce = [\"UK\"]\n{}",
            entity(
                "a",
                "drop",
                "UK",
                designation,
                &group(&["192.0.2.0/24"], evidence)
            )
        )
    };
    for (designation, evidence, now, want, what) in [
        (
            "",
            "expires = 2026-06-01",
            "2026-05-31T23:59:59Z",
            "2026-06-01T00:00:00Z",
            "evidence expires 2026-06-01",
        ),
        (
            "",
            "expires = 2026-06-01T12:30:05Z",
            "2026-06-01T12:30:04Z",
            "2026-06-01T12:30:05Z",
            "evidence expires 2026-06-01T12:30:05Z",
        ),
        (
            "",
            "expires = \"2026-06-01T14:30:05+02:00\"",
            "2026-06-01T00:00:00Z",
            "2026-06-01T12:30:05Z",
            "evidence expires",
        ),
        (
            "",
            "max_age = \"30days\"",
            "2026-01-30T08:00:00Z",
            "2026-01-31T00:00:00Z",
            "evidence expires 2026-01-31",
        ),
        (
            "",
            "valid_from = 2026-03-01",
            "2026-02-01T00:00:00Z",
            "2026-03-01T00:00:00Z",
            "evidence counts from 2026-03-01",
        ),
        (
            "",
            "valid_from = 2026-03-01T06:00:00Z",
            "2026-03-01T05:00:00Z",
            "2026-03-01T06:00:00Z",
            "counts from 2026-03-01T06:00:00Z",
        ),
        (
            "delisted_on = 2026-04-01",
            "",
            "2026-02-01T10:00:00Z",
            "2026-04-01T00:00:00Z",
            "UK REF-a delisted on 2026-04-01",
        ),
    ] {
        let text = one(designation, evidence);
        let n = next_change(&text, now).unwrap_or_else(|| panic!("{evidence}{designation}: none"));
        assert_eq!(n.at, at(want), "{evidence}{designation}");
        assert!(n.what.contains(what), "{}: {}", evidence, n.what);
        // At the instant itself the change has taken effect: nothing is left to schedule.
        assert_eq!(
            next_change(&text, want),
            None,
            "{evidence}{designation} at {want}"
        );
    }
    // A designation listed in the future: the entity is not enforced yet, and is from then.
    let text = one("", "").replace("listed_on = 2025-01-01", "listed_on = 2026-07-01");
    let n = next_change(&text, "2026-06-30T23:00:00Z").unwrap();
    assert_eq!(n.at, at("2026-07-01T00:00:00Z"));
    assert!(n.what.contains("listed on 2026-07-01"), "{}", n.what);
    // Instants take effect to the second, both ways.
    let text = one(
        "",
        "valid_from = 2026-03-01T06:00:00Z\nexpires = 2026-03-01T06:00:10Z",
    );
    let (c, r) = build(&text);
    let v = validate(&c).unwrap();
    let rules = |now: &str| compile(&v, &r, at(now)).unwrap().rules.len();
    assert_eq!(
        [
            rules("2026-03-01T05:59:59Z"),
            rules("2026-03-01T06:00:00Z"),
            rules("2026-03-01T06:00:09Z"),
            rules("2026-03-01T06:00:10Z")
        ],
        [0, 1, 1, 0]
    );
    let probe: IpAddr = "192.0.2.1".parse().unwrap();
    assert_eq!(
        evaluate(&c, &r, at("2026-03-01T06:00:09Z"), probe),
        Decision::Entity("a".into())
    );
    assert_eq!(
        evaluate(&c, &r, at("2026-03-01T06:00:10Z"), probe),
        Decision::NotListed
    );
}

/// The earliest date wins, whichever entity, group or designation it is in; dates of an
/// authority not enforced, and dates already past, are not changes.
#[test]
fn the_next_change_is_the_earliest_or_none() {
    let text = format!(
        "enforce = [\"UK\"]\n{}{}{}",
        entity(
            "a",
            "drop",
            "UK",
            "delisted_on = 2026-09-01",
            &(group(&["192.0.2.0/24"], "expires = 2026-08-01")
                + &group(
                    &["198.51.100.0/24"],
                    "valid_from = 2025-06-01\nmax_age = \"35days\""
                ))
        ),
        entity(
            "b",
            "drop",
            "UK",
            "",
            &group(&["203.0.113.0/24"], "expires = 2026-05-15T10:00:00Z")
        ),
        entity(
            "c",
            "drop",
            "US",
            "delisted_on = 2026-03-01",
            &group(&["198.18.0.0/15"], "expires = 2026-03-02")
        )
    );
    let n = next_change(&text, "2026-01-01T00:00:00Z").unwrap();
    // a's second group's max_age (2026-01-01 + 35 days) comes first, then b's instant.
    assert_eq!(n.at, at("2026-02-05T00:00:00Z"), "{}", n.what);
    assert!(n.what.contains("entity `a` group 2"), "{}", n.what);
    let n = next_change(&text, "2026-02-05T00:00:00Z").unwrap();
    assert_eq!(n.at, at("2026-05-15T10:00:00Z"), "{}", n.what);
    assert!(n.what.contains("entity `b` group 1"), "{}", n.what);
    assert_eq!(
        next_change(&text, "2026-05-15T10:00:00Z").unwrap().at,
        at("2026-08-01T00:00:00Z")
    );
    assert_eq!(
        next_change(&text, "2026-08-01T00:00:00Z").unwrap().at,
        at("2026-09-01T00:00:00Z")
    );
    // Delisted: nothing changes any more (c's US dates never count).
    assert_eq!(next_change(&text, "2026-09-01T00:00:00Z"), None);
    // No dates ahead at all.
    let plain = format!(
        "enforce = [\"UK\"]\n{}",
        entity("a", "drop", "UK", "", &group(&["192.0.2.0/24"], ""))
    );
    assert_eq!(next_change(&plain, "2026-01-01T00:00:00Z"), None);
    // A date compiles as its 00:00 UTC.
    let (c, r) = build(&plain);
    let compiled = compile(&validate(&c).unwrap(), &r, day("2026-01-02")).unwrap();
    assert_eq!(compiled.now, at("2026-01-02T00:00:00Z"));
    assert_eq!(compiled.today, day("2026-01-02"));
}

/// Ageing evidence as `check` reports it: an entity in force whose groups all expired has no
/// current prefixes; a current group stopping within the horizon is expiring (soonest first),
/// one stopping after it or never is not, nor is a group that does not count yet.
#[test]
fn ageing_finds_entities_without_prefixes_and_expiring_groups() {
    let text = format!(
        "enforce = [\"UK\"]\n{}{}",
        entity(
            "a",
            "drop",
            "UK",
            "",
            &(group(&["192.0.2.0/24"], "expires = 2026-03-01")
                + &group(&["198.51.100.0/24"], "expires = 2026-02-10T12:00:00Z")
                + &group(&["203.0.113.0/24"], "")
                + &group(
                    &["198.18.0.0/24"],
                    "valid_from = 2026-02-05\nexpires = 2026-02-06"
                ))
        ),
        entity(
            "b",
            "drop",
            "UK",
            "",
            &group(&["198.18.1.0/24"], "expires = 2026-01-15")
        )
    );
    let (c, r) = build(&text);
    let compiled = compile(&validate(&c).unwrap(), &r, at("2026-02-01T00:00:00Z")).unwrap();
    assert_eq!(
        compiled.entities[0].evidence_expires,
        Some(at("2026-02-10T12:00:00Z"))
    );
    assert_eq!(compiled.entities[1].evidence_expires, None);
    let found = report::ageing(&compiled, chrono::Duration::days(14));
    let got: Vec<(FindingKind, &str, Option<u32>)> = found
        .iter()
        .map(|f| (f.kind, f.entity.as_str(), f.group))
        .collect();
    assert_eq!(
        got,
        [
            (FindingKind::NoCurrentPrefixes, "b", None),
            (FindingKind::ExpiringEvidence, "a", Some(2)),
        ],
        "{found:?}"
    );
    assert!(
        found[1]
            .message
            .contains("stops counting 2026-02-10T12:00:00Z (in 9 days), 1 prefixes"),
        "{}",
        found[1].message
    );
    let found = report::ageing(&compiled, chrono::Duration::days(28));
    let groups: Vec<Option<u32>> = found.iter().map(|f| f.group).collect();
    assert_eq!(groups, [None, Some(2), Some(1)]);
    assert!(
        report::ageing(&compiled, chrono::Duration::days(1))
            .iter()
            .all(|f| f.kind == FindingKind::NoCurrentPrefixes)
    );
}

/// An instant without a time zone is refused: the zone would be a guess.
#[test]
fn an_instant_needs_a_time_zone() {
    let text = format!(
        "enforce = [\"UK\"]\n{}",
        entity(
            "a",
            "drop",
            "UK",
            "",
            &group(&["192.0.2.0/24"], "expires = 2026-06-01T12:00:00")
        )
    );
    let err = config::parse(Path::new("t.toml"), text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("has no time zone"), "{err}");
    let text = format!(
        "enforce = [\"UK\"]\n{}",
        entity(
            "a",
            "drop",
            "UK",
            "",
            &group(&["192.0.2.0/24"], "expires = \"soon\"")
        )
    );
    let err = config::parse(Path::new("t.toml"), text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("RFC 3339 instant"), "{err}");
}

#[test]
fn valid_from_on_or_after_expiry_is_refused() {
    let text = format!(
        "enforce = [\"UK\"]\n{}",
        entity(
            "a",
            "drop",
            "UK",
            "",
            &group(
                &["192.0.2.0/24"],
                "valid_from = 2026-03-01\nmax_age = \"30days\""
            )
        )
    );
    // retrieved 2026-01-01 + 30 days = 2026-01-31, before valid_from.
    let err = compile_str(&text, "2026-02-01").unwrap_err().to_string();
    assert!(err.starts_with("t.toml:"), "{err}");
    assert!(err.contains("never counts"), "{err}");
}

#[test]
fn allow_wins_even_over_more_specific() {
    let text = format!(
        "enforce = [\"UK\"]\n[[allow]]\nprefix = \"10.1.0.0/16\"\nreason = \"mgmt\"\n{}",
        entity(
            "a",
            "drop",
            "UK",
            "",
            &group(&["10.0.0.0/8", "10.1.2.0/24", "10.1.2.3/32"], "")
        )
    );
    let c = compile_str(&text, "2026-02-01").unwrap();
    assert!(c.lookup("10.1.2.3".parse().unwrap()).is_none());
    assert!(c.allowed("10.1.2.3".parse().unwrap()).is_some());
    assert_eq!(
        c.lookup("10.2.0.1".parse().unwrap()).unwrap().origin,
        "10.0.0.0/8".parse::<IpNetwork>().unwrap()
    );
    assert!(c.report.subtracted_total >= 3);
}

#[test]
fn same_prefix_prefers_drop_then_file_order() {
    let text = format!(
        "enforce = [\"UK\"]\n{}{}{}",
        entity("m", "monitor", "UK", "", &group(&["192.0.2.0/24"], "")),
        entity("d1", "drop", "UK", "", &group(&["192.0.2.0/24"], "")),
        entity("d2", "drop", "UK", "", &group(&["192.0.2.0/24"], ""))
    );
    let c = compile_str(&text, "2026-02-01").unwrap();
    assert_eq!(c.rules.len(), 1);
    assert_eq!(c.entities[c.rules[0].entity as usize].id, "d1");
    assert_eq!(c.report.same_prefix_total, 2);
}

#[test]
fn nested_prefixes_are_reported() {
    let text = format!(
        "enforce = [\"UK\"]\n{}{}",
        entity("a", "drop", "UK", "", &group(&["10.0.0.0/8"], "")),
        entity("b", "monitor", "UK", "", &group(&["10.1.0.0/16"], ""))
    );
    let c = compile_str(&text, "2026-02-01").unwrap();
    assert_eq!(c.report.nested_total, 1);
    assert!(c.report.messages(FindingKind::Nested)[0].contains("`b` wins"));
}

#[test]
fn guard_refuses_default_routes_and_broad_prefixes() {
    for (p, needle) in [
        ("0.0.0.0/0", "default route"),
        ("::/0", "default route"),
        ("10.0.0.0/7", "broader than the guard's /8"),
        ("2001::/16", "/19"),
    ] {
        let text = format!(
            "enforce = [\"UK\"]\n{}",
            entity("a", "drop", "UK", "", &bare_group(&[p], ""))
        );
        let err = compile_str(&text, "2026-02-01").unwrap_err().to_string();
        assert!(err.contains(needle), "{p}: {err}");
        assert!(err.starts_with("t.toml:"), "{err}");
        assert!(err.contains("guard_override"), "{err}");
    }
    let overridden = format!(
        "enforce = [\"UK\"]\n{}",
        entity(
            "a",
            "drop",
            "UK",
            "",
            &bare_group(&["10.0.0.0/7"], "").replace(
                "[entities.networks.evidence]",
                "guard_override = \"approved\"\n[entities.networks.evidence]"
            )
        )
    );
    let c = compile_str(&overridden, "2026-02-01").unwrap();
    assert_eq!(c.report.messages(FindingKind::GuardOverridden).len(), 1);
    // A default route needs the words in the reason.
    let dflt = format!(
        "enforce = [\"UK\"]\n{}",
        entity(
            "a",
            "drop",
            "UK",
            "",
            &bare_group(&["0.0.0.0/0"], "").replace(
                "[entities.networks.evidence]",
                "guard_override = \"approved\"\n[entities.networks.evidence]"
            )
        )
    );
    assert!(compile_str(&dflt, "2026-02-01").is_err());
    let dflt = dflt.replace(
        "\"approved\"",
        "\"block the default route: comprehensive regime\"",
    );
    assert!(compile_str(&dflt, "2026-02-01").is_ok());
}

/// Special-purpose prefixes are refused at their file, line and column, whatever their length
/// or how they are written (a broader prefix holding a range too), unless the group says
/// `guard_override`; an accepted group is reported once. `allow` is never checked.
#[test]
fn guard_refuses_special_purpose_ranges_without_an_override() {
    for (p, kind) in [
        ("10.0.0.0/8", "private"),
        ("172.16.5.0/24", "private"),
        ("192.168.0.1", "private"),
        ("100.64.0.0/10", "shared"),
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("192.0.0.8", "protocol-assignment"),
        ("192.0.2.0/24", "documentation"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.0/25", "documentation"),
        ("192.88.99.1", "6to4"),
        ("198.18.0.0/15", "benchmarking"),
        ("224.0.0.251", "multicast"),
        ("240.0.0.0/8", "reserved"),
        ("255.255.255.255", "broadcast"),
        ("0.0.0.0/8", "this-network"),
        ("8.0.0.0/8", ""),
        ("::1", "loopback"),
        ("::", "this-network"),
        ("::ffff:0:0/96", "ipv4-mapped"),
        ("64:ff9b::/96", "nat64"),
        ("100::/64", "discard-only"),
        ("2001::/32", "protocol-assignment"),
        ("2001:db8:bad::/48", "documentation"),
        ("2002:c000:204::/48", "6to4"),
        ("fd12:3456::/32", "unique-local"),
        ("fe80::1", "link-local"),
        ("ff02::fb", "multicast"),
    ] {
        let text = format!(
            "enforce = [\"UK\"]\n{}",
            entity("a", "drop", "UK", "", &bare_group(&["8.8.8.0/24", p], ""))
        );
        let result = compile_str(&text, "2026-02-01");
        if kind.is_empty() {
            // 8.0.0.0/8 is public and no broader than the guard.
            result.unwrap_or_else(|e| panic!("{p}: {e}"));
            continue;
        }
        let err = result.unwrap_err().to_string();
        // The prefix's own place: line 16 of t.toml, after `prefixes = ["8.8.8.0/24", `.
        assert!(err.starts_with("t.toml:16:27:"), "{p}: {err}");
        assert!(err.contains(&format!("{kind} range")), "{p}: {err}");
        assert!(err.contains("IANA special-purpose"), "{p}: {err}");
        assert!(err.contains("guard_override"), "{p}: {err}");
        let accepted = format!(
            "enforce = [\"UK\"]\n{}",
            entity("a", "drop", "UK", "", &group(&["8.8.8.0/24", p], ""))
        );
        let c = compile_str(&accepted, "2026-02-01").unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(c.rules.len(), 2, "{p}");
        let found = c.report.messages(FindingKind::SpecialRangeOverridden);
        assert_eq!(found.len(), 1, "{p}: {found:?}");
        assert!(
            found[0].starts_with("entity `a` group 1: 1 prefixes in special-purpose ranges"),
            "{found:?}"
        );
        assert!(
            found[0].ends_with(": documentation and private ranges in tests"),
            "{found:?}"
        );
    }
    // `allow` may name any range.
    let text = format!(
        "enforce = [\"UK\"]\n[[allow]]\nprefix = \"10.0.0.0/8\"\nreason = \"our own network\"\n{}",
        entity("a", "drop", "UK", "", &bare_group(&["8.8.8.0/24"], ""))
    );
    compile_str(&text, "2026-02-01").unwrap();
}

#[test]
fn guard_caps_the_prefix_count() {
    let text = format!(
        "enforce = [\"UK\"]\n[guard]\nmax_prefixes = 2\n{}",
        entity(
            "a",
            "drop",
            "UK",
            "",
            &group(&["192.0.2.1", "192.0.2.2", "192.0.2.3"], "")
        )
    );
    let err = compile_str(&text, "2026-02-01").unwrap_err().to_string();
    assert!(err.contains("max_prefixes = 2"), "{err}");
}

#[test]
fn compile_is_deterministic() {
    let text = format!(
        "enforce = [\"UK\"]\n{}{}",
        entity(
            "a",
            "drop",
            "UK",
            "",
            &group(&["10.0.0.0/8", "192.0.2.7"], "")
        ),
        entity(
            "b",
            "monitor",
            "UK",
            "",
            &group(&["10.1.0.0/16", "2001:db8::/32"], "")
        )
    );
    let a = compile_str(&text, "2026-02-01").unwrap();
    let b = compile_str(&text, "2026-02-01").unwrap();
    assert_eq!(a.rules, b.rules);
    assert_eq!(a.digest(), b.digest());
}

#[test]
fn the_examples_and_the_default_compile() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for p in ["config/default.toml", "config/examples/full.toml"] {
        let c = config::load(&root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        let r = resolve::resolve(&c).unwrap_or_else(|e| panic!("{p}: {e}"));
        let compiled = compile(&validate(&c).unwrap(), &r, day("2026-11-26"))
            .unwrap_or_else(|e| panic!("{p}: {e}"));
        assert!(!compiled.rules.is_empty(), "{p}");
    }
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lists")
        .join(name)
        .display()
        .to_string()
}

/// i-Soon designated by reference to a UK list read from `list_file`.
fn listed_config(list_file: &str, regime: &str) -> String {
    format!(
        r#"enforce = ["UK"]
[[lists]]
name = "uk"
format = "uk-csv"
path = "{}"

[[entities]]
id = "i-soon"
name = "Sichuan Anxun Information Technology Co., Ltd."
aliases = ["i-Soon"]
action = "drop"
[[entities.designations]]
authority = "UK"
regime = "{regime}"
reference = "CYB0114"
listed_on = 2025-12-09
source = "https://www.gov.uk/"
list = "uk"
{}"#,
        fixture(list_file),
        group(&["74.120.172.10"], "")
    )
}

#[test]
fn a_designation_missing_from_its_list_is_delisted_from_the_lists_date() {
    let regime = "The Cyber (Sanctions) (EU Exit) Regulations 2020";
    let before = compile_str(
        &listed_config("UK_Sanctions_List.csv", regime),
        "2026-07-01",
    )
    .unwrap();
    assert_eq!(before.rules.len(), 1, "on the list: enforced");
    assert!(
        before
            .report
            .messages(FindingKind::DelistedByList)
            .is_empty()
    );
    assert!(
        before.report.messages(FindingKind::ListMismatch).is_empty(),
        "{:?}",
        before.report.messages(FindingKind::ListMismatch)
    );
    assert_eq!(before.listed.len(), 1);
    assert!(before.listed[0].on_list);

    let after = compile_str(
        &listed_config("UK_Sanctions_List.delisted.csv", regime),
        "2026-07-01",
    )
    .unwrap();
    assert!(
        after.rules.is_empty(),
        "not on the updated list: not enforced"
    );
    assert!(after.entities.is_empty());
    assert_eq!(after.report.messages(FindingKind::DelistedByList).len(), 1);
    assert!(
        after.report.messages(FindingKind::DelistedByList)[0].contains("delisted from 2026-06-20"),
        "{:?}",
        after.report.messages(FindingKind::DelistedByList)
    );
    assert!(
        after.report.entities_left_out()[0]
            .1
            .contains("no longer in list `uk`")
    );
    assert_eq!(after.listed[0].delisted_on, Some(day("2026-06-20")));
    // Before the list's date it still counts.
    let earlier = compile_str(
        &listed_config("UK_Sanctions_List.delisted.csv", regime),
        "2026-06-19",
    )
    .unwrap();
    assert_eq!(earlier.rules.len(), 1);

    let changes = crate::observe::audit::designation_changes(&before.listed, &after.listed);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(
        changes[0].change,
        crate::observe::audit::ChangeKind::Delisted
    );
    assert_eq!(changes[0].reference, "CYB0114");
    assert_eq!(changes[0].since.as_deref(), Some("2026-06-20"));
    let back = crate::observe::audit::designation_changes(&after.listed, &before.listed);
    assert_eq!(back[0].change, crate::observe::audit::ChangeKind::Relisted);
    assert!(crate::observe::audit::designation_changes(&before.listed, &before.listed).is_empty());
}

#[test]
fn the_lists_metadata_wins_and_a_mismatch_is_a_warning() {
    let c = compile_str(
        &listed_config("UK_Sanctions_List.csv", "cyber regime"),
        "2026-07-01",
    )
    .unwrap();
    assert_eq!(
        c.report.messages(FindingKind::ListMismatch).len(),
        1,
        "{:?}",
        c.report.messages(FindingKind::ListMismatch)
    );
    assert!(c.report.messages(FindingKind::ListMismatch)[0].contains("regime `cyber regime`"));
    assert_eq!(
        c.entities[0].designations[0].regime,
        "The Cyber (Sanctions) (EU Exit) Regulations 2020"
    );
}

#[test]
fn the_full_example_follows_its_list() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/full.toml");
    let c = config::load(&root).unwrap();
    let r = resolve::resolve(&c).unwrap();
    let compiled = compile(&validate(&c).unwrap(), &r, day("2026-11-26")).unwrap();
    assert_eq!(compiled.report.lists.len(), 1);
    assert_eq!(compiled.report.lists[0].designations, 4);
    assert!(
        compiled
            .report
            .messages(FindingKind::ListMismatch)
            .is_empty(),
        "{:?}",
        compiled.report.messages(FindingKind::ListMismatch)
    );
    let e = compiled
        .entities
        .iter()
        .find(|e| e.id == "integrity-tech")
        .unwrap();
    assert_eq!(e.designations[0].reference, "CYB9901");
    assert_eq!(compiled.listed.len(), 1);
    assert!(compiled.listed[0].on_list);
    // The list is among the files whose change triggers a reload.
    let list = root.parent().unwrap().join("lists/UK_Sanctions_List.csv");
    assert!(r.inputs.iter().any(|i| i.path == list), "{:?}", r.inputs);
}

#[test]
fn an_unknown_list_name_is_an_error_at_its_place() {
    let text =
        listed_config("UK_Sanctions_List.csv", "r").replace("list = \"uk\"", "list = \"eu\"");
    let err = compile_str(&text, "2026-07-01").unwrap_err().to_string();
    assert!(err.starts_with("t.toml:18:8:"), "{err}");
    assert!(err.contains("unknown list `eu` (declared: uk)"), "{err}");
}

// Property: on random configurations the compiled table answers every address exactly as
// evaluating every rule does.

fn arb_prefix() -> impl Strategy<Value = String> {
    // Clustered in 44.0.0.0/12 (public, no special-purpose range) so prefixes overlap often: half are drawn from a small pool
    // of addresses and lengths, so identical and nested prefixes across entities are common.
    let pool = (
        prop::sample::select(vec![0u32, 0x1_0000, 0x1_2300, 0x1_2345, 0x8_0000]),
        prop::sample::select(vec![12u8, 16, 20, 24, 32]),
    );
    let free = (0u32..(1 << 20), 9u8..=32);
    prop_oneof![pool, free].prop_map(|(bits, len)| {
        let n = Ipv4Network::new(Ipv4Addr::from(0x2c00_0000 | bits), len).unwrap();
        format!("{}/{}", n.network(), len)
    })
}

fn arb_entity(i: usize) -> impl Strategy<Value = String> {
    (
        prop::bool::ANY,
        prop::sample::select(vec!["UK", "UK", "UK", "US"]),
        prop::option::weighted(0.2, prop::sample::select(vec!["2026-01-15", "2026-03-01"])),
        prop::collection::vec(
            (
                prop::collection::vec(arb_prefix(), 1..6),
                prop::option::weighted(0.3, prop::sample::select(vec!["10days", "100days"])),
                prop::option::weighted(
                    0.3,
                    prop::sample::select(vec!["2025-12-01", "2026-01-20", "2026-03-01"]),
                ),
            ),
            1..3,
        ),
    )
        .prop_map(move |(drop, auth, delisted, groups)| {
            let groups: String = groups
                .iter()
                .map(|(p, age, from)| {
                    let refs: Vec<&str> = p.iter().map(String::as_str).collect();
                    // `valid_from` only where it leaves the group a window to count in.
                    let from = from.filter(|_| *age != Some("10days"));
                    group(
                        &refs,
                        &(age
                            .map(|a| format!("max_age = \"{a}\"\n"))
                            .unwrap_or_default()
                            + &from
                                .map(|f| format!("valid_from = {f}"))
                                .unwrap_or_default()),
                    )
                })
                .collect();
            entity(
                &format!("e{i}"),
                if drop { "drop" } else { "monitor" },
                auth,
                &delisted
                    .map(|d| format!("delisted_on = {d}"))
                    .unwrap_or_default(),
                &groups,
            )
        })
}

fn arb_config() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(arb_prefix(), 0..3),
        (1usize..6).prop_flat_map(|n| (0..n).map(arb_entity).collect::<Vec<_>>()),
    )
        .prop_map(|(allows, entities)| {
            let mut t = String::from("enforce = [\"UK\"]\n");
            for a in allows {
                t.push_str(&format!("[[allow]]\nprefix = \"{a}\"\nreason = \"r\"\n"));
            }
            t.extend(entities);
            t
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn table_agrees_with_evaluating_every_rule(
        text in arb_config(),
        today in prop::sample::select(vec!["2026-01-05", "2026-02-01", "2026-06-01"]),
        probes in prop::collection::vec(prop_oneof![Just(0x1_2345u32), Just(0x1_2300), 0u32..(1 << 20)], 48),
    ) {
        let (c, r) = build(&text);
        let compiled = compile(&validate(&c).unwrap(), &r, day(today)).unwrap();
        let v4 = crate::dataplane::trie::build::build_v4(&compiled.v4()).unwrap();
        for p in probes {
            let addr = Ipv4Addr::from(0x0a00_0000 | p);
            let want = evaluate(&c, &r, day(today), addr.into());
            // The data plane's answer: the trie built from the compiled table.
            let got = match crate::dataplane::trie::build::lookup_v4(&v4, addr) {
                Some(e) => Decision::Entity(compiled.entities[e as usize].id.clone()),
                None if compiled.allowed(addr.into()).is_some() => Decision::Allowed,
                None => Decision::NotListed,
            };
            prop_assert_eq!(&got, &want, "{} on {}\n{}", addr, today, text);
            // And `why` agrees with the data plane.
            let why = match crate::policy::explain::explain(&compiled, addr.into()) {
                crate::policy::explain::Explanation::Listed { entity, .. } => Decision::Entity(entity.id),
                crate::policy::explain::Explanation::Allowed { .. } => Decision::Allowed,
                crate::policy::explain::Explanation::NotListed { .. } => Decision::NotListed,
            };
            prop_assert_eq!(&why, &want);
        }
    }
}
