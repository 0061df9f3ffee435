//! `embargo why ADDRESS`: why an address is blocked, monitored, allowed or not listed, with the
//! legal basis and the evidence an auditor asks for.
//!
//! It answers as the data plane decides: an IPv6 address carrying an IPv4 one (IPv4-mapped
//! `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`; [`embargo_abi::trie::embedded_v4`]) is
//! explained as that IPv4 address when the IPv4 prefixes list it, else as itself, which is
//! the order [`embargo_abi::trie::lookup_v6_or_v4`] looks the tries up in.
//!
//! Many questions against one compile go through an [`Explainer`], which indexes the listings
//! that do not count by prefix once, so each address costs a fixed number of binary searches
//! and hash probes (33 for IPv4, 129 for IPv6) whatever the policy's size. A CIDR is answered
//! with every enforced prefix, allow rule and left-out listing that overlaps it ([`Coverage`]).

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr},
    str::FromStr,
};

use ipnetwork::IpNetwork;
use serde::Serialize;

use crate::{
    config::{Action, Designation, DirectionSet, Evidence},
    policy::{
        cidr,
        compile::{Compiled, Excluded, sort_key},
        resolve::Via,
    },
};

/// One question to `embargo why`: an address, or a CIDR (every listing overlapping it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Query {
    Address(IpAddr),
    Network(IpNetwork),
}

impl FromStr for Query {
    type Err = String;

    /// An address, or a CIDR with its host bits clear (as the configuration writes them).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(a) = s.parse::<IpAddr>() {
            return Ok(Query::Address(a));
        }
        if s.contains('/') {
            return crate::config::parse_prefix(s)
                .map(Query::Network)
                .map_err(|e| e.to_string());
        }
        Err(format!("`{s}` is not an IP address or CIDR"))
    }
}

/// A compiled policy indexed for many questions.
pub struct Explainer<'a> {
    c: &'a Compiled,
    /// [`Compiled::excluded`] by prefix ([`sort_key`]), each list in the policy's order.
    excluded: HashMap<(u8, u128, u8), Vec<usize>>,
    /// [`Compiled::entities`] by id.
    entities: HashMap<&'a str, usize>,
}

/// The answer for a CIDR: every enforced prefix, allow rule and left-out listing overlapping it.
#[derive(Clone, Debug, Serialize)]
pub struct Coverage {
    pub query: IpNetwork,
    /// `overlaps` (some enforced prefix overlaps the query) or `not_listed`.
    pub verdict: &'static str,
    /// Enforced prefixes overlapping the query, in address order (containing ones first).
    pub matches: Vec<CoverMatch>,
    /// `allow` rules overlapping it: never blocked there.
    pub allowed: Vec<(IpNetwork, String)>,
    /// Listings overlapping it that do not count, and why.
    pub left_out: Vec<Excluded>,
}

/// One enforced prefix overlapping a CIDR query.
#[derive(Clone, Debug, Serialize)]
pub struct CoverMatch {
    pub prefix: IpNetwork,
    pub listed_as: IpNetwork,
    pub action: Action,
    pub direction: DirectionSet,
    pub entity: String,
    pub entity_name: String,
    /// The network group's index in its entity, and its evidence's source.
    pub group: u32,
    pub evidence_source: String,
    pub via: Via,
}

impl<'a> Explainer<'a> {
    /// Indexes `c` (linear in its left-out listings).
    pub fn new(c: &'a Compiled) -> Self {
        let mut excluded: HashMap<(u8, u128, u8), Vec<usize>> = HashMap::new();
        for (i, x) in c.excluded.iter().enumerate() {
            excluded.entry(sort_key(&x.net)).or_default().push(i);
        }
        let entities = c
            .entities
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id.as_str(), i))
            .collect();
        Self {
            c,
            excluded,
            entities,
        }
    }

    /// Explains `addr` as [`explain`] does.
    pub fn explain(&self, addr: IpAddr) -> Explanation {
        let Some(v4) = embedded_v4(addr) else {
            return self.explain_one(addr);
        };
        // As the data plane: the IPv4 prefixes first, then the IPv6 ones.
        let as_v4 = self.explain_one(v4.into()).for_address(addr);
        if matches!(as_v4, Explanation::Listed { .. }) {
            return as_v4;
        }
        match (as_v4, self.explain_one(addr)) {
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

    /// The left-out listings containing `addr` that pass `filter`, in the policy's order.
    fn related(&self, addr: IpAddr, filter: &dyn Fn(&Excluded) -> bool) -> Vec<Excluded> {
        let width: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let mut found: Vec<usize> = (0..=width)
            .filter_map(|len| IpNetwork::new(addr, len).ok())
            .filter_map(|n| IpNetwork::new(n.network(), n.prefix()).ok())
            .filter_map(|n| self.excluded.get(&sort_key(&n)))
            .flatten()
            .copied()
            .filter(|&i| filter(&self.c.excluded[i]))
            .collect();
        found.sort_unstable();
        found
            .into_iter()
            .map(|i| self.c.excluded[i].clone())
            .collect()
    }

    /// Explains `addr` against the prefixes of its own family.
    fn explain_one(&self, addr: IpAddr) -> Explanation {
        let c = self.c;
        if let Some((allow, reason)) = c.allowed(addr) {
            return Explanation::Allowed {
                address: addr,
                allow: *allow,
                reason: reason.clone(),
                overrides: self.related(addr, &|x| x.reason.starts_with("allowed by")),
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
                    groups: self.groups_containing(addr),
                }
            }
            None => Explanation::NotListed {
                address: addr,
                left_out: self.related(addr, &|_| true),
            },
        }
    }

    /// Every evidence group whose enforced prefix contains `addr`, most specific first (ties in
    /// the policy's order).
    fn groups_containing(&self, addr: IpAddr) -> Vec<GroupMatch> {
        let width: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let Ok(host) = IpNetwork::new(addr, width) else {
            return Vec::new();
        };
        let mut found: Vec<GroupMatch> = self
            .cover(host)
            .matches
            .into_iter()
            .map(|m| {
                let e = &self.c.entities[self.entities[m.entity.as_str()]];
                GroupMatch {
                    prefix: m.prefix,
                    listed_as: m.listed_as,
                    entity: m.entity,
                    entity_name: m.entity_name,
                    action: m.action,
                    group: m.group,
                    evidence: e.evidence[m.group as usize].clone(),
                    via: m.via,
                }
            })
            .collect();
        // The claims of the same prefixes kept out of the table (a second group or entity
        // listing it): one range of the sorted list per length.
        let shared = &self.c.shared;
        for len in 0..=width {
            let Some(net) = IpNetwork::new(addr, len)
                .ok()
                .and_then(|n| IpNetwork::new(n.network(), len).ok())
            else {
                continue;
            };
            let key = sort_key(&net);
            let start = shared.partition_point(|r| sort_key(&r.net) < key);
            for r in shared[start..]
                .iter()
                .take_while(|r| sort_key(&r.net) == key)
            {
                let e = &self.c.entities[r.entity as usize];
                let dup = found
                    .iter()
                    .any(|g| g.entity == e.id && g.group == r.group && g.listed_as == r.origin);
                if !dup {
                    found.push(GroupMatch {
                        prefix: r.net,
                        listed_as: r.origin,
                        entity: e.id.clone(),
                        entity_name: e.name.clone(),
                        action: e.action,
                        group: r.group,
                        evidence: e.evidence[r.group as usize].clone(),
                        via: r.via.clone(),
                    });
                }
            }
        }
        // Stable: for one prefix, the table's claim (the match) before the others.
        found.sort_by_key(|m| std::cmp::Reverse(m.prefix.prefix()));
        found
    }

    /// Every enforced prefix, allow rule and left-out listing overlapping `q`. The enforced
    /// ones containing `q` are found by a binary search per shorter length, those inside it as
    /// one range of the sorted table; allow rules and left-out listings are scanned.
    pub fn cover(&self, q: IpNetwork) -> Coverage {
        let c = self.c;
        let rules = &c.rules;
        let mut idx: Vec<usize> = (0..q.prefix())
            .filter_map(|len| IpNetwork::new(q.network(), len).ok())
            .filter_map(|n| IpNetwork::new(n.network(), n.prefix()).ok())
            .filter_map(|n| {
                let key = sort_key(&n);
                rules.binary_search_by_key(&key, |r| sort_key(&r.net)).ok()
            })
            .collect();
        let (lo, hi) = cidr::bounds(&q);
        let family = sort_key(&q).0;
        let start = rules.partition_point(|r| sort_key(&r.net) < sort_key(&q));
        idx.extend(
            (start..rules.len())
                .take_while(|&i| {
                    let (f, s, _) = sort_key(&rules[i].net);
                    f == family && s >= lo && s <= hi
                })
                .filter(|&i| cidr::covers(&q, &rules[i].net)),
        );
        let matches: Vec<CoverMatch> = idx
            .into_iter()
            .map(|i| {
                let r = &rules[i];
                let e = &c.entities[r.entity as usize];
                CoverMatch {
                    prefix: r.net,
                    listed_as: r.origin,
                    action: e.action,
                    direction: e.direction,
                    entity: e.id.clone(),
                    entity_name: e.name.clone(),
                    group: r.group,
                    evidence_source: e.evidence[r.group as usize].source.clone(),
                    via: r.via.clone(),
                }
            })
            .collect();
        Coverage {
            query: q,
            verdict: if matches.is_empty() {
                "not_listed"
            } else {
                "overlaps"
            },
            matches,
            allowed: c
                .allow
                .iter()
                .filter(|(n, _)| cidr::overlaps(n, &q))
                .cloned()
                .collect(),
            left_out: c
                .excluded
                .iter()
                .filter(|x| cidr::overlaps(&x.net, &q))
                .cloned()
                .collect(),
        }
    }
}

/// Renders a CIDR's coverage for people.
pub fn render_coverage(x: &Coverage) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    if x.matches.is_empty() {
        let _ = writeln!(
            o,
            "{}: not listed (no enforced prefix overlaps it)",
            x.query
        );
    } else {
        let _ = writeln!(
            o,
            "{}: {} enforced prefix{} overlap{} it",
            x.query,
            x.matches.len(),
            if x.matches.len() == 1 { "" } else { "es" },
            if x.matches.len() == 1 { "s" } else { "" }
        );
    }
    for m in &x.matches {
        let verdict = match m.action {
            Action::Drop => "BLOCKED",
            Action::Monitor => "MONITORED",
        };
        let _ = writeln!(
            o,
            "  {:<20} {verdict:<9} {} ({}) · group {} · {}",
            m.prefix.to_string(),
            m.entity_name,
            m.entity,
            m.group + 1,
            m.evidence_source
        );
    }
    for (n, reason) in &x.allowed {
        let _ = writeln!(o, "  {:<20} ALLOWED   {reason}", n.to_string());
    }
    for l in &x.left_out {
        let _ = writeln!(
            o,
            "  {} of `{}` does not count: {}",
            l.net, l.entity, l.reason
        );
    }
    o
}

/// One evidence group whose enforced prefix contains an address.
#[derive(Clone, Debug, Serialize)]
pub struct GroupMatch {
    /// The enforced prefix (after `allow` cuts) and the prefix as listed.
    pub prefix: IpNetwork,
    pub listed_as: IpNetwork,
    pub entity: String,
    pub entity_name: String,
    pub action: Action,
    /// The network group's index in its entity (0-based; `why` prints it 1-based).
    pub group: u32,
    pub evidence: Evidence,
    pub via: Via,
}

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
        /// Every evidence group with an enforced prefix containing the address, most specific
        /// first (the match above is the first); several when more than one advisory or
        /// entity lists it.
        groups: Vec<GroupMatch>,
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

/// Explains `addr` against a compiled policy (one question; [`Explainer`] for many).
pub fn explain(c: &Compiled, addr: IpAddr) -> Explanation {
    Explainer::new(c).explain(addr)
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

/// The list metadata a designation carries (websites, sanctions imposed, statement of
/// reasons), one line each under it.
fn designation_details(o: &mut String, d: &Designation) {
    use std::fmt::Write as _;
    if let Some(s) = &d.sanctions_imposed {
        let _ = writeln!(o, "      sanctions imposed: {s}");
    }
    if !d.websites.is_empty() {
        let _ = writeln!(o, "      website: {}", d.websites.join(", "));
    }
    if let Some(s) = &d.statement_of_reasons {
        let _ = writeln!(o, "      statement of reasons: {s}");
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
            groups,
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
                designation_details(&mut o, d);
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
                designation_details(&mut o, d);
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
            if groups.len() > 1 {
                let _ = writeln!(
                    o,
                    "  evidence groups covering it ({}, most specific first):",
                    groups.len()
                );
                for g in groups {
                    let conf = serde_json::to_value(g.evidence.confidence)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default();
                    let _ = writeln!(
                        o,
                        "    - {} · `{}` group {} · {}, {conf} confidence, retrieved {} · {}",
                        g.prefix,
                        g.entity,
                        g.group + 1,
                        g.evidence.kind.get_ref().name(),
                        g.evidence.retrieved,
                        g.evidence.source
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

    #[test]
    fn questions_are_addresses_or_cidrs() {
        assert_eq!(
            "10.0.0.1".parse::<Query>().unwrap(),
            Query::Address("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            " 2001:db8::/32 ".parse::<Query>().unwrap(),
            Query::Network("2001:db8::/32".parse().unwrap())
        );
        assert!(
            "10.0.0.1/8"
                .parse::<Query>()
                .unwrap_err()
                .contains("host bits")
        );
        assert!(
            "nope"
                .parse::<Query>()
                .unwrap_err()
                .contains("not an IP address or CIDR")
        );
    }

    /// A CIDR's answer names every enforced prefix inside or around it, the allow rules and the
    /// listings left out there.
    #[test]
    fn a_cidr_is_answered_with_everything_that_overlaps_it() {
        let c = compiled();
        let x = Explainer::new(&c);
        let net = |s: &str| s.parse::<IpNetwork>().unwrap();
        // Around 10/8: its pieces (the allow cut 10.1.2.0/24 out), and the allow.
        let wide = x.cover(net("10.0.0.0/7"));
        assert_eq!(wide.verdict, "overlaps");
        assert!(wide.matches.len() > 1, "{wide:?}");
        assert!(wide.matches.iter().all(|m| m.entity == "v4-listed"
            && m.listed_as == net("10.0.0.0/8")
            && cidr::covers(&net("10.0.0.0/8"), &m.prefix)));
        let covered: u128 = wide
            .matches
            .iter()
            .map(|m| {
                let (lo, hi) = cidr::bounds(&m.prefix);
                hi - lo + 1
            })
            .sum();
        assert_eq!(covered, (1 << 24) - 256, "10/8 but the allowed /24");
        assert_eq!(
            wide.allowed,
            vec![(net("10.1.2.0/24"), "a partner".to_owned())]
        );
        // Inside one enforced piece: that piece, which contains it.
        let inside = x.cover(net("10.200.0.0/16"));
        assert_eq!(inside.matches.len(), 1, "{inside:?}");
        assert!(cidr::covers(
            &inside.matches[0].prefix,
            &net("10.200.0.0/16")
        ));
        // Inside the allow: nothing enforced, the allow named.
        let allowed = x.cover(net("10.1.2.0/25"));
        assert_eq!(allowed.verdict, "not_listed");
        assert!(allowed.matches.is_empty(), "{allowed:?}");
        assert_eq!(allowed.allowed.len(), 1);
        let none = x.cover(net("192.0.2.0/24"));
        assert!(none.matches.is_empty() && none.allowed.is_empty());
        assert!(render_coverage(&none).contains("not listed"));
        assert!(render_coverage(&wide).contains("BLOCKED"));
    }

    /// For any address, the most specific enforced prefix of its /32 (/128) coverage is the
    /// compiled lookup's answer, and the indexed explainer answers as the one-shot one.
    #[test]
    fn coverage_and_the_index_agree_with_the_lookup() {
        let c = compiled();
        let x = Explainer::new(&c);
        let mut rng = crate::test_rng::Rng(7);
        for _ in 0..2000 {
            let r = rng.next_u64();
            let addr: IpAddr = match r % 3 {
                0 => Ipv4Addr::from(0x0a00_0000 | (r >> 40) as u32 & 0x00ff_ffff).into(),
                1 => Ipv4Addr::from((r >> 16) as u32).into(),
                _ => std::net::Ipv6Addr::from((0x2001_0db8u128 << 96) | u128::from(r) << 8).into(),
            };
            let q = IpNetwork::new(addr, if addr.is_ipv4() { 32 } else { 128 }).unwrap();
            let best = x
                .cover(q)
                .matches
                .into_iter()
                .max_by_key(|m| m.prefix.prefix())
                .map(|m| m.prefix);
            assert_eq!(best, c.lookup(addr).map(|r| r.net), "{addr}");
            assert_eq!(
                format!("{:?}", x.explain(addr)),
                format!("{:?}", explain(&c, addr)),
                "{addr}"
            );
        }
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
        let chunk4 = |c| embargo_abi::trie::chunk_of(&v4.entries, c);
        let chunk6 = |c| embargo_abi::trie::chunk_of(&v6.entries, c);
        let entry = match addr.parse::<IpAddr>().unwrap() {
            IpAddr::V4(a) => embargo_abi::trie::lookup_v4(u32::from(a), chunk4),
            IpAddr::V6(a) => {
                let n = u128::from(a);
                embargo_abi::trie::lookup_v6_or_v4((n >> 64) as u64, n as u64, chunk4, chunk6)
            }
        };
        // Built from `(prefix, entity index)`: the leaves hold entity indices here.
        match embargo_abi::trie::group_of(entry) {
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
