//! `embargo why ADDRESS`: why an address is blocked, monitored, allowed or not listed, with the
//! legal basis and the evidence an auditor asks for.
//!
//! It answers as the data plane decides: an IPv6 address carrying an IPv4 one (IPv4-mapped
//! `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`; [`embargo_abi::trie::embedded_v4`]) is
//! explained as that IPv4 address when the IPv4 prefixes list it, else as itself, which is
//! the order [`embargo_abi::trie::lookup_v6_or_v4`] looks the tries up in.

use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;
use serde::Serialize;

use crate::{
    config::{Action, Designation, DirectionSet, Evidence},
    policy::{
        compile::{Compiled, Excluded},
        resolve::Via,
    },
};

/// The entity behind a match.
#[derive(Clone, Debug, Serialize)]
pub struct EntityRef {
    pub id: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub file: String,
}

/// The answer for one address.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Explanation {
    /// Matched an enforced entity: `blocked` (action drop) or `monitored`.
    Listed {
        address: IpAddr,
        /// `drop` or `monitor`.
        action: Action,
        direction: DirectionSet,
        /// The table entry that matched (most specific).
        prefix: IpNetwork,
        /// The prefix as listed, when `allow` cut it into pieces.
        listed_as: IpNetwork,
        via: Via,
        entity: EntityRef,
        designations: Vec<Designation>,
        /// Its designations that no longer count (delisted in the file or by their list).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        delisted: Vec<Designation>,
        evidence: Box<Evidence>,
    },
    /// Inside an `allow` prefix: never blocked.
    Allowed {
        address: IpAddr,
        allow: IpNetwork,
        reason: String,
        /// Listings the allow overrides.
        overrides: Vec<Excluded>,
    },
    /// In no enforced listing.
    NotListed {
        address: IpAddr,
        /// Listings that contain it but do not count, and why (expired, delisted, not enforced).
        left_out: Vec<Excluded>,
    },
}

/// The IPv4 address an IPv6 `addr` carries (mapped or compatible), as the data plane reads it.
pub fn embedded_v4(addr: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(a) = addr else {
        return None;
    };
    let n = u128::from(a);
    embargo_abi::trie::embedded_v4((n >> 64) as u64, n as u64).map(Ipv4Addr::from)
}

/// Explains `addr` against a compiled policy.
pub fn explain(c: &Compiled, addr: IpAddr) -> Explanation {
    let Some(v4) = embedded_v4(addr) else {
        return explain_one(c, addr);
    };
    // As the data plane: the IPv4 prefixes first, then the IPv6 ones.
    let as_v4 = explain_one(c, v4.into()).for_address(addr);
    if matches!(as_v4, Explanation::Listed { .. }) {
        return as_v4;
    }
    match (as_v4, explain_one(c, addr)) {
        (_, x @ Explanation::Listed { .. }) => x,
        (x @ Explanation::Allowed { .. }, _) | (_, x @ Explanation::Allowed { .. }) => x,
        (
            Explanation::NotListed {
                left_out: mut a, ..
            },
            Explanation::NotListed { left_out: b, .. },
        ) => {
            a.extend(b);
            Explanation::NotListed {
                address: addr,
                left_out: a,
            }
        }
        (Explanation::Listed { .. }, _) => unreachable!("returned above"),
    }
}

impl Explanation {
    /// The same answer, about `address` (the IPv6 form of the IPv4 address explained).
    fn for_address(mut self, addr: IpAddr) -> Self {
        match &mut self {
            Explanation::Listed { address, .. }
            | Explanation::Allowed { address, .. }
            | Explanation::NotListed { address, .. } => *address = addr,
        }
        self
    }
}

/// Explains `addr` against the prefixes of its own family.
fn explain_one(c: &Compiled, addr: IpAddr) -> Explanation {
    let related = |filter: &dyn Fn(&Excluded) -> bool| -> Vec<Excluded> {
        c.excluded
            .iter()
            .filter(|x| x.net.contains(addr) && filter(x))
            .cloned()
            .collect()
    };
    if let Some((allow, reason)) = c.allowed(addr) {
        return Explanation::Allowed {
            address: addr,
            allow: *allow,
            reason: reason.clone(),
            overrides: related(&|x| x.reason.starts_with("allowed by")),
        };
    }
    match c.lookup(addr) {
        Some(rule) => {
            let e = &c.entities[rule.entity as usize];
            Explanation::Listed {
                address: addr,
                action: e.action,
                direction: e.direction,
                prefix: rule.net,
                listed_as: rule.origin,
                via: rule.via.clone(),
                entity: EntityRef {
                    id: e.id.clone(),
                    name: e.name.clone(),
                    aliases: e.aliases.clone(),
                    file: e.file.display().to_string(),
                },
                designations: e.designations.clone(),
                delisted: e.delisted.clone(),
                evidence: Box::new(e.evidence[rule.group as usize].clone()),
            }
        }
        None => Explanation::NotListed {
            address: addr,
            left_out: related(&|_| true),
        },
    }
}

/// Renders an explanation for people.
pub fn render(x: &Explanation) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    match x {
        Explanation::Listed {
            address,
            action,
            direction,
            prefix,
            listed_as,
            via,
            entity,
            designations,
            delisted,
            evidence,
        } => {
            let verdict = match action {
                Action::Drop => "BLOCKED",
                Action::Monitor => "MONITORED (counted, not blocked)",
            };
            let _ = writeln!(o, "{address}: {verdict}");
            if address.is_ipv6() && prefix.is_ipv4() {
                let _ = writeln!(
                    o,
                    "  matched as:  {} (the IPv4 address it carries, against the IPv4 prefixes)",
                    embedded_v4(*address).map_or_else(String::new, |a| a.to_string())
                );
            }
            let dir = match direction {
                DirectionSet::Outbound => "outbound (destination on inside interfaces)",
                DirectionSet::Inbound => "inbound (source on outside interfaces)",
                DirectionSet::Both => "both directions",
            };
            let _ = writeln!(o, "  applies to:  {dir}");
            if prefix == listed_as {
                let _ = writeln!(o, "  prefix:      {prefix}");
            } else {
                let _ = writeln!(
                    o,
                    "  prefix:      {prefix} (part of {listed_as}, the rest cut by allow)"
                );
            }
            let _ = writeln!(o, "  entity:      {} ({})", entity.name, entity.id);
            if !entity.aliases.is_empty() {
                let _ = writeln!(o, "  aliases:     {}", entity.aliases.join("; "));
            }
            let _ = writeln!(o, "  defined in:  {}", entity.file);
            let _ = writeln!(o, "  legal basis:");
            for d in designations {
                let _ = writeln!(
                    o,
                    "    - {} · {} · ref {} · listed {}",
                    d.authority, d.regime, d.reference, d.listed_on
                );
                let _ = writeln!(o, "      {}", d.source);
            }
            for d in delisted {
                let _ = writeln!(
                    o,
                    "    - DELISTED {} · {} · ref {} · listed {} · delisted {}{}",
                    d.authority,
                    d.regime,
                    d.reference,
                    d.listed_on,
                    d.delisted_on.map_or_else(String::new, |x| x.to_string()),
                    d.list.as_ref().map_or_else(String::new, |l| format!(
                        " (follows list `{}`)",
                        l.get_ref()
                    ))
                );
            }
            let kind = evidence.kind.get_ref().name();
            let conf = serde_json::to_value(evidence.confidence)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "  evidence:    {kind}, {conf} confidence, retrieved {}",
                evidence.retrieved
            );
            let _ = writeln!(o, "               {}", evidence.source);
            if evidence.valid_from.is_some() || evidence.expires.is_some() {
                let from = evidence
                    .valid_from
                    .map_or_else(|| "retrieval".to_owned(), |d| d.to_string());
                let until = evidence
                    .expires
                    .map_or_else(String::new, |d| format!(", stops counting on {d}"));
                let _ = writeln!(o, "               counts from {from}{until}");
            }
            if let Some(age) = &evidence.max_age {
                let _ = writeln!(
                    o,
                    "               stops counting {} after retrieval",
                    age.get_ref()
                );
            }
            if let Some(n) = &evidence.note {
                let _ = writeln!(o, "               {n}");
            }
            match via {
                Via::Listed => {}
                Via::File(f) => {
                    let _ = writeln!(o, "  listed in:   {f}");
                }
                Via::Asn { asn, table } => {
                    let _ = writeln!(o, "  announced by AS{asn} per {table}");
                }
                Via::Country { code, table } => {
                    let _ = writeln!(o, "  country {code} per {table}");
                }
                Via::Source { name } => {
                    let _ = writeln!(
                        o,
                        "  listed in:   source `{name}` (its last-known-good copy)"
                    );
                }
            }
        }
        Explanation::Allowed {
            address,
            allow,
            reason,
            overrides,
        } => {
            let _ = writeln!(o, "{address}: ALLOWED by {allow}: {reason}");
            for x in overrides {
                let _ = writeln!(o, "  overrides {} listed for `{}`", x.net, x.entity);
            }
        }
        Explanation::NotListed { address, left_out } => {
            let _ = writeln!(o, "{address}: not listed (passes)");
            for x in left_out {
                let _ = writeln!(
                    o,
                    "  {} of `{}` does not count: {}",
                    x.net, x.entity, x.reason
                );
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
enforce = ["TEST"]
[[allow]]
prefix = "10.1.2.0/24"
reason = "a partner"

[[entities]]
id = "v4-listed"
name = "Listed as IPv4"
action = "drop"
designations = [{ authority = "TEST", regime = "unit", reference = "U-1", listed_on = 2025-01-01, source = "unit" }]
networks = [{ prefixes = ["10.0.0.0/8", "0.0.0.0/30"], guard_override = "unit test", evidence = { kind = "manual", source = "unit", retrieved = 2026-01-01, confidence = "high" } }]

[[entities]]
id = "v6-listed"
name = "Listed in IPv6 form"
action = "monitor"
designations = [{ authority = "TEST", regime = "unit", reference = "U-2", listed_on = 2025-01-01, source = "unit" }]
networks = [{ prefixes = ["::ffff:198.18.0.0/112", "::ffff:10.1.2.0/120", "2001:db8::/32"], guard_override = "unit test", evidence = { kind = "manual", source = "unit", retrieved = 2026-01-01, confidence = "high" } }]
"#;

    fn compiled() -> Compiled {
        let config = crate::config::parse(std::path::Path::new("unit.toml"), POLICY.to_owned())
            .unwrap_or_else(|e| panic!("{e}"));
        let resolved = crate::policy::resolve::resolve(&config).unwrap_or_else(|e| panic!("{e}"));
        crate::policy::compile::compile(
            &crate::config::validate::validate(&config).unwrap(),
            &resolved,
            crate::today(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// What `why` says: the entity id, `allowed` or `not listed`.
    fn why(c: &Compiled, addr: &str) -> String {
        match explain(c, addr.parse().unwrap()) {
            Explanation::Listed { entity, .. } => entity.id,
            Explanation::Allowed { .. } => "allowed".into(),
            Explanation::NotListed { .. } => "not listed".into(),
        }
    }

    /// What the data plane decides: the tries the agent loads, walked by the shared lookup.
    fn data_plane(c: &Compiled, addr: &str) -> String {
        let v4 = crate::dataplane::trie::build::build_v4(&c.v4()).unwrap();
        let v6 = crate::dataplane::trie::build::build_v6(&c.v6()).unwrap();
        let entry = match addr.parse::<IpAddr>().unwrap() {
            IpAddr::V4(a) => {
                embargo_abi::trie::lookup_v4(u32::from(a), |i| v4.entries.get(i as usize).copied())
            }
            IpAddr::V6(a) => {
                let n = u128::from(a);
                embargo_abi::trie::lookup_v6_or_v4(
                    (n >> 64) as u64,
                    n as u64,
                    |i| v4.entries.get(i as usize).copied(),
                    |i| v6.entries.get(i as usize).copied(),
                )
            }
        };
        match embargo_abi::trie::entity_of(entry) {
            Some(e) => c.entities[e as usize].id.clone(),
            None if c.allowed(addr.parse().unwrap()).is_some()
                || embedded_v4(addr.parse().unwrap())
                    .is_some_and(|a| c.allowed(a.into()).is_some()) =>
            {
                "allowed".into()
            }
            None => "not listed".into(),
        }
    }

    #[test]
    fn ipv6_addresses_carrying_ipv4_ones_are_explained_as_the_data_plane_matches_them() {
        let c = compiled();
        for (addr, want) in [
            ("10.9.9.9", "v4-listed"),
            ("::ffff:10.9.9.9", "v4-listed"),
            ("::10.9.9.9", "v4-listed"),
            ("::0.0.0.2", "v4-listed"),
            // `::1` and `::` are IPv6's own, not 0.0.0.1 and 0.0.0.0.
            ("::1", "not listed"),
            ("::", "not listed"),
            ("::ffff:192.0.2.1", "not listed"),
            ("::fffe:10.9.9.9", "not listed"),
            // Unlisted as IPv4, listed in IPv6 form: the IPv6 prefixes still count.
            ("::ffff:198.18.0.1", "v6-listed"),
            ("198.18.0.1", "not listed"),
            // Allowed as IPv4, yet listed in IPv6 form: the data plane matches the IPv6 prefix.
            ("10.1.2.3", "allowed"),
            ("::ffff:10.1.2.3", "v6-listed"),
            ("::10.1.2.3", "allowed"),
            ("2001:db8::1", "v6-listed"),
        ] {
            assert_eq!(why(&c, addr), want, "why {addr}");
            assert_eq!(data_plane(&c, addr), want, "data plane {addr}");
        }
        let x = explain(&c, "::ffff:10.9.9.9".parse().unwrap());
        let Explanation::Listed {
            address,
            prefix,
            listed_as,
            ..
        } = &x
        else {
            panic!("{x:?}");
        };
        assert_eq!(address.to_string(), "::ffff:10.9.9.9");
        assert!(prefix.is_ipv4(), "{prefix}");
        assert_eq!(listed_as.to_string(), "10.0.0.0/8");
        assert!(
            render(&x).contains("matched as:  10.9.9.9"),
            "{}",
            render(&x)
        );
    }
}
