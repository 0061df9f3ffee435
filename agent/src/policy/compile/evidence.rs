//! Phase 2, evidence windows: whether each network group of an enforced entity counts at the
//! compile's instant. A group counts from its evidence's `valid_from` (when set, inclusive)
//! until its expiry (`expires`, or `retrieved` + `max_age`, computed once by
//! [`crate::config::validate::evidence_expiry`]; exclusive), each a day (from its 00:00 UTC)
//! or an instant ([`crate::config::When`]). Both dates, when still ahead, are offered to
//! [`Upcoming`] as the group's next change.
//!
//! Invariants:
//! * a group that does not count contributes no rule, and each of its candidates is recorded
//!   as [`Excluded`] with the reason, so `why` can say so;
//! * expiry is checked before `valid_from`: a group that is both expired and not yet valid
//!   cannot exist (validation refuses a window that never opens).

use chrono::{DateTime, Utc};

use super::{
    Excluded,
    dates::Upcoming,
    report::{FindingKind, Report},
};
use crate::{
    config::{EntityDef, Evidence, When},
    policy::resolve::Candidate,
};

/// Whether evidence has not started counting yet at `now` (its `valid_from` is later).
pub(super) fn evidence_pending(e: &Evidence, now: DateTime<Utc>) -> bool {
    e.valid_from.is_some_and(|from| from.start() > now)
}

/// Whether group `group` (index) of `def`, whose evidence stops counting at `until`, counts at
/// `now`; when it does not, records it in `report` and its `candidates` in `excluded`. Offers
/// the group's dates still ahead to `upcoming`.
#[allow(clippy::too_many_arguments)]
pub(super) fn group_counts(
    def: &EntityDef,
    group: usize,
    until: Option<When>,
    candidates: &[Candidate],
    now: DateTime<Utc>,
    report: &mut Report,
    excluded: &mut Vec<Excluded>,
    upcoming: &mut Upcoming,
) -> bool {
    let id = def.id.get_ref().as_str();
    let g = &def.networks[group];
    let number = Some(group as u32 + 1);
    if let Some(from) = g.evidence.valid_from {
        upcoming.consider(from.start(), || {
            format!(
                "entity `{id}` group {}: evidence counts from {from}",
                group + 1
            )
        });
    }
    if let Some(until) = until {
        upcoming.consider(until.start(), || {
            format!(
                "entity `{id}` group {}: evidence expires {until}",
                group + 1
            )
        });
    }
    let reason = if let Some(until) = until
        && until.start() <= now
    {
        report.push(FindingKind::ExpiredEvidence, id, number, || {
            format!(
                "entity `{id}` group {} ({} evidence from {}): expired on {until}, {} prefixes left out",
                group + 1,
                g.evidence.kind.get_ref().name(),
                g.evidence.source,
                candidates.len()
            )
        });
        format!("evidence expired on {until} ({})", g.evidence.source)
    } else if let Some(from) = g.evidence.valid_from
        && evidence_pending(&g.evidence, now)
    {
        report.push(FindingKind::PendingEvidence, id, number, || {
            format!(
                "entity `{id}` group {} (evidence from {}): counts from {from}, {} prefixes left out until then",
                group + 1,
                g.evidence.source,
                candidates.len()
            )
        });
        format!("evidence counts only from {from} ({})", g.evidence.source)
    } else {
        return true;
    };
    excluded.extend(candidates.iter().map(|c| Excluded {
        net: c.net,
        entity: id.to_owned(),
        reason: reason.clone(),
    }));
    false
}
