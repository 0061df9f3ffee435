//! Phase 2, evidence windows: whether each network group of an enforced entity counts on the
//! compile's day. A group counts from its evidence's `valid_from` (when set) until its last
//! day (`expires`, or `retrieved` + `max_age`, computed once by
//! [`crate::config::validate::evidence_expiry`]).
//!
//! Invariants:
//! * a group that does not count contributes no rule, and each of its candidates is recorded
//!   as [`Excluded`] with the reason, so `why` can say so;
//! * expiry is checked before `valid_from`: a group that is both expired and not yet valid
//!   cannot exist (validation refuses a window that never opens).

use chrono::NaiveDate;

use super::{
    Excluded,
    report::{FindingKind, Report},
};
use crate::{
    config::{EntityDef, Evidence},
    policy::resolve::Candidate,
};

/// Whether evidence has not started counting yet on `today` (its `valid_from` is later).
pub(super) fn evidence_pending(e: &Evidence, today: NaiveDate) -> bool {
    e.valid_from.is_some_and(|from| from.0 > today)
}

/// Whether group `group` (index) of `def`, whose evidence stops counting on `until`, counts on
/// `today`; when it does not, records it in `report` and its `candidates` in `excluded`.
pub(super) fn group_counts(
    def: &EntityDef,
    group: usize,
    until: Option<NaiveDate>,
    candidates: &[Candidate],
    today: NaiveDate,
    report: &mut Report,
    excluded: &mut Vec<Excluded>,
) -> bool {
    let id = def.id.get_ref().as_str();
    let g = &def.networks[group];
    let number = Some(group as u32 + 1);
    let reason = if let Some(until) = until
        && until <= today
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
        && evidence_pending(&g.evidence, today)
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
