//! Phase 3, claims: the prefixes of every counting group become rules. Each prefix passes the
//! guard, is claimed by one entity (same prefix), is cut by `allow` (subtraction), and the
//! table is sorted with nested prefixes of different entities reported.
//!
//! Invariants:
//! * a prefix broader than the guard (and any default route) is refused at its place unless
//!   its group has a `guard_override` (which, for a default route, says "default route");
//! * a claim the table does not keep (the same prefix in another group of the entity, or the
//!   other entity's claim) is kept aside, sorted, as [`super::Compiled::shared`]: never
//!   enforced by itself, but named by `why` beside the group that is;
//! * so is a prefix that overlaps a special-purpose range ([`special`]: private, loopback,
//!   documentation, ...); an accepted group is reported once, with how many it has;
//! * two entities listing the same prefix: the `drop` one takes it from a `monitor` one,
//!   otherwise the entity read first keeps it; an entity listing a prefix twice counts once;
//! * `allow` wins over everything: no rule left overlaps an allowed prefix, and every cut is
//!   recorded as [`Excluded`] for `why`;
//! * the rules come out sorted by [`sort_key`] with no two equal prefixes; where subtraction
//!   leaves a piece equal to another entity's more specific listing, the more specific wins.

use std::collections::HashMap;

use ipnetwork::IpNetwork;

use super::{
    CompiledEntity, Excluded, Rule,
    report::{FindingKind, Report},
    sort_key,
};
use crate::{
    config::{Action, ConfigError, Guard, NetworkGroup},
    policy::{
        cidr,
        resolve::{Candidate, Resolved, Via},
        special,
    },
};

/// The rules claimed so far, each prefix by one entity, and what a claim is checked against.
pub(super) struct Claims<'a> {
    /// Prefix -> index into `rules` of its current owner.
    owner: HashMap<IpNetwork, usize>,
    rules: Vec<Rule>,
    /// Claims of a prefix another claim kept (another group of the same entity, or another
    /// entity's): not in the table, but the evidence `why` names for the addresses inside.
    shared: Vec<Rule>,
    guard: &'a Guard,
    /// Where each candidate was listed, for the guard's refusal.
    resolved: &'a Resolved,
}

/// The entity claiming prefixes: its index in the compiled entities, id and action.
pub(super) struct Claimant<'a> {
    pub(super) index: u32,
    pub(super) id: &'a str,
    pub(super) action: Action,
}

impl<'a> Claims<'a> {
    /// No claims yet; each will be checked against `guard`.
    pub(super) fn new(guard: &'a Guard, resolved: &'a Resolved) -> Self {
        Claims {
            owner: HashMap::new(),
            rules: Vec::new(),
            shared: Vec::new(),
            guard,
            resolved,
        }
    }

    /// Claims every candidate of group `group` (index) `g` for `who`, after the guard.
    pub(super) fn claim_group(
        &mut self,
        who: &Claimant<'_>,
        entities: &[CompiledEntity],
        (group, g): (usize, &NetworkGroup),
        candidates: &[Candidate],
        report: &mut Report,
    ) -> Result<(), ConfigError> {
        let id = who.id;
        let mut special_examples: Vec<String> = Vec::new();
        let mut special_total = 0usize;
        for c in candidates {
            check_guard(c, (group, g), self.guard, self.resolved, id, report)?;
            if let Some((range, kind)) = special::overlap(&c.net) {
                check_special(c, (range, kind), g, self.resolved)?;
                special_total += 1;
                if special_examples.len() < 3 {
                    special_examples.push(special::describe(&c.net, &range, kind));
                }
            }
            let rule = Rule {
                net: c.net,
                entity: who.index,
                group: group as u32,
                origin: c.net,
                via: c.via.clone(),
            };
            match self.owner.get(&c.net) {
                None => {
                    self.owner.insert(c.net, self.rules.len());
                    self.rules.push(rule);
                }
                Some(&ri) if self.rules[ri].entity == who.index => {
                    report.duplicates += 1;
                    if self.rules[ri].group != rule.group {
                        self.shared.push(rule);
                    }
                }
                Some(&ri) => {
                    let prev = self.rules[ri].entity as usize;
                    let prev_id = entities.get(prev).map_or(id, |e| e.id.as_str()).to_owned();
                    // Drop beats monitor; otherwise the entity read first keeps it.
                    let takes_over = who.action == Action::Drop
                        && entities
                            .get(prev)
                            .is_some_and(|e| e.action == Action::Monitor);
                    let (keeper, loser) = if takes_over {
                        (id.to_owned(), prev_id)
                    } else {
                        (prev_id, id.to_owned())
                    };
                    report.push(FindingKind::SamePrefix, id, Some(group as u32 + 1), || {
                        format!(
                            "{} is listed by `{loser}` and `{keeper}`; `{keeper}` keeps it",
                            c.net
                        )
                    });
                    if takes_over {
                        let lost = std::mem::replace(&mut self.rules[ri], rule);
                        self.shared.push(lost);
                    } else {
                        self.shared.push(rule);
                    }
                }
            }
        }
        if special_total > 0 {
            let reason = g.guard_override.as_deref().unwrap_or_default();
            report.push(
                FindingKind::SpecialRangeOverridden,
                id,
                Some(group as u32 + 1),
                || {
                    let more = special_total - special_examples.len();
                    format!(
                        "entity `{id}` group {}: {special_total} prefixes in special-purpose ranges ({}{}): {reason}",
                        group + 1,
                        special_examples.join("; "),
                        if more > 0 {
                            format!("; and {more} more")
                        } else {
                            String::new()
                        }
                    )
                },
            );
        }
        Ok(())
    }

    /// The claims another claim of the same prefix kept out of the table (see `shared`),
    /// sorted by [`sort_key`].
    pub(super) fn take_shared(&mut self) -> Vec<Rule> {
        let mut shared = std::mem::take(&mut self.shared);
        shared.sort_by_key(|r| sort_key(&r.net));
        shared
    }

    /// The rules claimed, in claim order.
    pub(super) fn into_rules(self) -> Vec<Rule> {
        self.rules
    }
}

/// Refuses a prefix broader than the guard (or a default route) unless its group overrides
/// the guard; records an accepted override.
fn check_guard(
    c: &Candidate,
    (group, g): (usize, &NetworkGroup),
    guard: &Guard,
    resolved: &Resolved,
    id: &str,
    report: &mut Report,
) -> Result<(), ConfigError> {
    let len = c.net.prefix();
    let broadest = if c.net.is_ipv4() {
        guard.broadest_v4
    } else {
        guard.broadest_v6
    };
    // A default route is refused without the override whatever the guard says.
    if len >= broadest && len != 0 {
        return Ok(());
    }
    match &g.guard_override {
        Some(reason) if len > 0 || reason.contains("default route") => {
            report.push(
                FindingKind::GuardOverridden,
                id,
                Some(group as u32 + 1),
                || format!("{} (`{id}`): {reason}", c.net),
            );
            Ok(())
        }
        _ => {
            let what = if len == 0 {
                "is a default route and would block a whole address family".to_owned()
            } else {
                format!("is broader than the guard's /{broadest}")
            };
            // A range table hands out whole allocations: say which listing the broad prefix
            // came from, since the file shows only the name.
            let from = match &c.via {
                Via::Asn { asn, table } => format!(" (announced by AS{asn} per {table})"),
                Via::Country { code, table } => format!(
                    " (country {code} per {table}: a jurisdiction's ranges can \
                     merge into prefixes broader than the guard allows)"
                ),
                _ => String::new(),
            };
            Err(ConfigError::Invalid {
                at: resolved.location(c),
                message: format!(
                    "{}{from} {what}; if that is intended, set guard_override = \"<reason>\" on this network group{}",
                    c.net,
                    if len == 0 {
                        " (the reason must contain \"default route\")"
                    } else {
                        ""
                    }
                ),
            })
        }
    }
}

/// Refuses a prefix that overlaps the special-purpose `range` unless its group has a
/// `guard_override`.
fn check_special(
    c: &Candidate,
    (range, kind): (IpNetwork, special::Kind),
    g: &NetworkGroup,
    resolved: &Resolved,
) -> Result<(), ConfigError> {
    if g.guard_override.is_some() {
        return Ok(());
    }
    let from = match &c.via {
        Via::Asn { asn, table } => format!(" (announced by AS{asn} per {table})"),
        Via::Country { code, table } => format!(" (country {code} per {table})"),
        _ => String::new(),
    };
    Err(ConfigError::Invalid {
        at: resolved.location(c),
        message: format!(
            "{}{from} (IANA special-purpose): a gateway blocking it blocks its own networks or services, never a sanctioned entity; if that is intended, set guard_override = \"<reason>\" on this network group",
            special::describe(&c.net, &range, kind)
        ),
    })
}

/// Cuts every `allow` prefix out of the rules, recording each cut; then sorts the rules and
/// keeps one per prefix (the most specific listing).
pub(super) fn subtract_allow(
    rules: Vec<Rule>,
    allow: &[(IpNetwork, String)],
    entities: &[CompiledEntity],
    report: &mut Report,
    excluded: &mut Vec<Excluded>,
) -> Vec<Rule> {
    let mut rules = if allow.is_empty() {
        rules
    } else {
        let mut out = Vec::with_capacity(rules.len());
        for rule in rules {
            let mut pieces = vec![rule.net];
            for (a, reason) in allow {
                if !pieces.iter().any(|p| cidr::overlaps(p, a)) {
                    continue;
                }
                let eid = &entities[rule.entity as usize].id;
                report.push(FindingKind::Subtracted, eid, Some(rule.group + 1), || {
                    format!(
                        "{} (`{eid}`) overlaps allow {a} ({reason}): {a} is never blocked",
                        rule.net
                    )
                });
                excluded.push(Excluded {
                    net: if cidr::covers(a, &rule.net) {
                        rule.net
                    } else {
                        *a
                    },
                    entity: eid.clone(),
                    reason: format!("allowed by {a}: {reason}"),
                });
                pieces = pieces.iter().flat_map(|p| cidr::subtract(p, a)).collect();
            }
            out.extend(pieces.into_iter().map(|net| Rule {
                net,
                ..rule.clone()
            }));
        }
        out
    };
    // Subtraction can leave a piece of a broad prefix equal to (a piece of) a more specific
    // one of another entity; the more specific listing wins, as without the allow.
    rules.sort_by_key(|r| (sort_key(&r.net), std::cmp::Reverse(r.origin.prefix())));
    rules.dedup_by(|b, a| a.net == b.net);
    rules
}

/// Reports every rule inside a broader rule of another entity: a walk in address order with a
/// stack of enclosers (`rules` sorted by [`sort_key`]).
pub(super) fn report_nested(rules: &[Rule], entities: &[CompiledEntity], report: &mut Report) {
    let mut stack: Vec<usize> = Vec::new();
    for i in 0..rules.len() {
        while let Some(&top) = stack.last() {
            if cidr::covers(&rules[top].net, &rules[i].net) {
                break;
            }
            stack.pop();
        }
        if let Some(&top) = stack.last()
            && rules[top].entity != rules[i].entity
        {
            let (inner, outer) = (&rules[i], &rules[top]);
            let (ie, oe) = (
                &entities[inner.entity as usize].id,
                &entities[outer.entity as usize].id,
            );
            report.push(FindingKind::Nested, ie, Some(inner.group + 1), || {
                format!(
                    "{} (`{ie}`) is inside {} (`{oe}`): `{ie}` wins for {}",
                    inner.net, outer.net, inner.net
                )
            });
        }
        stack.push(i);
    }
}
