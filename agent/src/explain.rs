//! `embargo why ADDRESS`: why an address is blocked, monitored, allowed or not listed, with the
//! legal basis and the evidence an auditor asks for.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::Serialize;

use crate::{
    compile::{Compiled, Excluded},
    config::{Action, Designation, DirectionSet, Evidence},
    resolve::Via,
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

/// Explains `addr` against a compiled policy.
pub fn explain(c: &Compiled, addr: IpAddr) -> Explanation {
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
