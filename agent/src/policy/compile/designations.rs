//! Phase 1, designations: where each entity stands on the compile's day. A designation naming
//! a list takes the list's regime and date when the list has its reference, and is delisted
//! from the list's date when it does not; then the entity is enforced when one of its
//! designations by an enforced authority is in force, and left out (with why) otherwise.
//!
//! Invariants:
//! * the entity file's designations are never changed in the configuration: the effective ones
//!   are copies;
//! * a designation following a list that was skipped (`on_source_failure = "skip"`) stands as
//!   its entity file writes it, never delisted for that;
//! * a list named by a designation but not declared is refused at the designation's `list`;
//! * every list-driven designation yields one [`ListedStatus`], in entity then designation
//!   order (the audit log compares them between compiles).

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::{
    ListedStatus,
    dates::Upcoming,
    report::{FindingKind, Report},
};
use crate::{
    config::{self, Config, ConfigError, Designation},
    policy::resolve::Resolved,
};

/// Whether a designation makes its entity enforced on `today` under `enforce`.
pub(super) fn designation_active(
    d: &Designation,
    enforce: &BTreeMap<String, String>,
    today: NaiveDate,
) -> bool {
    enforce.contains_key(&config::authority_key(&d.authority))
        && d.listed_on.0 <= today
        && d.delisted_on.is_none_or(|x| x.0 > today)
}

/// An entity's designations as they count, each list-driven one's status, and the warnings.
pub(super) struct Effective {
    pub(super) designations: Vec<Designation>,
    pub(super) statuses: Vec<ListedStatus>,
    /// Where the entity file and its list disagree (the list's values are used).
    pub(super) mismatches: Vec<String>,
    /// Designations whose list was skipped: they stand as the entity file writes them.
    pub(super) unfollowed: Vec<String>,
}

/// An entity's designations as they count on this compile: those naming a list take the
/// list's regime and date when it has their reference, and are delisted from the list's date
/// when it does not. Also returns each list-driven designation's status and the
/// disagreements between the entity file and its list.
pub(super) fn effective_designations(
    config: &Config,
    resolved: &Resolved,
    entity: usize,
) -> Result<Effective, ConfigError> {
    let src = &config.entities[entity];
    let file = &config.files[src.file];
    let def = &src.def;
    let id = def.id.get_ref();
    let mut out = Vec::with_capacity(def.designations.len());
    let mut statuses = Vec::new();
    let mut warnings = Vec::new();
    let mut unfollowed = Vec::new();
    for d in &def.designations {
        let Some(list_name) = &d.list else {
            out.push(d.clone());
            continue;
        };
        if resolved.skipped_lists.contains(list_name.get_ref()) {
            // The list's source had no usable copy (on_source_failure = "skip"): the
            // designation stands as its entity file writes it, never delisted for that.
            unfollowed.push(format!(
                "entity `{id}` ({}), {} {}: list `{}` was skipped (its source has no usable \
                 copy); the designation keeps its entity file's metadata and is NOT delisted",
                file.path.display(),
                d.authority,
                d.reference,
                list_name.get_ref()
            ));
            out.push(d.clone());
            continue;
        }
        let Some(list) = resolved
            .lists
            .iter()
            .find(|l| l.name == *list_name.get_ref())
        else {
            let declared: Vec<&str> = resolved.lists.iter().map(|l| l.name.as_str()).collect();
            return Err(file.invalid(
                list_name.span().start,
                if declared.is_empty() {
                    format!(
                        "unknown list `{}`: declare it in the main file with [[lists]] name = \"{}\", format and path",
                        list_name.get_ref(),
                        list_name.get_ref()
                    )
                } else {
                    format!(
                        "unknown list `{}` (declared: {}); fix the name or declare it with [[lists]]",
                        list_name.get_ref(),
                        declared.join(", ")
                    )
                },
            ));
        };
        let mut e = d.clone();
        let mut status = ListedStatus {
            entity: id.clone(),
            list: list.name.clone(),
            authority: d.authority.clone(),
            reference: d.reference.clone(),
            on_list: false,
            delisted_on: None,
            regime: None,
            listed_on: None,
            names: Vec::new(),
        };
        match list.find(&d.reference) {
            Some(ld) => {
                let at = || {
                    format!(
                        "entity `{id}` ({}), {} {}",
                        file.path.display(),
                        d.authority,
                        d.reference
                    )
                };
                let list_authority = ld.authority.as_ref().or(list.document.authority.as_ref());
                if let Some(a) = list_authority
                    && config::authority_key(a) != config::authority_key(&d.authority)
                {
                    warnings.push(format!(
                        "{}: the entity file says authority {}, list `{}` is by {a}",
                        at(),
                        d.authority,
                        list.name
                    ));
                }
                if let Some(r) = &ld.regime {
                    if r.trim() != d.regime.trim() {
                        warnings.push(format!(
                            "{}: regime `{}` in the entity file, `{r}` in list `{}`",
                            at(),
                            d.regime,
                            list.name
                        ));
                    }
                    e.regime = r.clone();
                }
                if let Some(l) = ld.listed_on {
                    if l != d.listed_on.0 {
                        warnings.push(format!(
                            "{}: listed_on {} in the entity file, {l} in list `{}`",
                            at(),
                            d.listed_on,
                            list.name
                        ));
                    }
                    e.listed_on = config::Date(l);
                }
                let ours: Vec<String> = std::iter::once(&def.name)
                    .chain(&def.aliases)
                    .map(|n| crate::inputs::lists::collapse(n).to_lowercase())
                    .collect();
                let theirs: Vec<String> = std::iter::once(&ld.name)
                    .chain(&ld.aliases)
                    .cloned()
                    .collect();
                if !theirs.iter().any(|n| ours.contains(&n.to_lowercase())) {
                    warnings.push(format!(
                        "{}: none of the entity's names is on list `{}`, which names it `{}`",
                        at(),
                        list.name,
                        ld.name
                    ));
                }
                status.on_list = true;
                status.regime = ld.regime.clone();
                status.listed_on = ld.listed_on;
                status.names = theirs;
            }
            None => {
                let since = list.as_of.max(d.listed_on.0);
                let delisted = d.delisted_on.map_or(since, |x| x.0.min(since));
                e.delisted_on = Some(config::Date(delisted));
                status.delisted_on = Some(delisted);
            }
        }
        statuses.push(status);
        out.push(e);
    }
    Ok(Effective {
        designations: out,
        statuses,
        mismatches: warnings,
        unfollowed,
    })
}

/// Where an entity stands on the compile's day.
pub(super) enum Standing {
    /// Enforced: the designations that make it so, and those by an enforced authority that no
    /// longer count (for `why`).
    Enforced {
        active: Vec<Designation>,
        delisted: Vec<Designation>,
    },
    /// Left out entirely, with why.
    LeftOut(String),
}

/// Entity `entity`'s standing on `today`; records its list findings (mismatches, unfollowed
/// and delisted designations) in `report` and its list-driven designations in `listed`, and
/// offers the dates of its designations by an enforced authority to `upcoming`.
#[allow(clippy::too_many_arguments)]
pub(super) fn standing(
    config: &Config,
    enforce: &BTreeMap<String, String>,
    resolved: &Resolved,
    entity: usize,
    today: NaiveDate,
    report: &mut Report,
    listed: &mut Vec<ListedStatus>,
    upcoming: &mut Upcoming,
) -> Result<Standing, ConfigError> {
    let def = &config.entities[entity].def;
    let id = def.id.get_ref().as_str();
    let Effective {
        designations,
        statuses,
        mismatches,
        unfollowed,
    } = effective_designations(config, resolved, entity)?;
    for w in mismatches {
        report.push(FindingKind::ListMismatch, id, None, || w);
    }
    for w in unfollowed {
        report.push(FindingKind::UnfollowedDesignation, id, None, || w);
    }
    let mut list_delisted = Vec::new();
    for st in &statuses {
        if let Some(since) = st.delisted_on {
            let list = resolved
                .lists
                .iter()
                .find(|l| l.name == st.list)
                .expect("resolved by effective_designations");
            report.push(FindingKind::DelistedByList, id, None, || {
                format!(
                    "entity `{id}`: {} {} is not in list `{}` ({}, {} {}): delisted from {since}",
                    st.authority,
                    st.reference,
                    st.list,
                    list.path.display(),
                    if list.published {
                        "published"
                    } else {
                        "file dated"
                    },
                    list.as_of
                )
            });
            list_delisted.push(format!(
                "{} {} is no longer in list `{}`",
                st.authority, st.reference, st.list
            ));
        }
    }
    listed.extend(statuses);
    let enforced_by = |d: &Designation| enforce.contains_key(&config::authority_key(&d.authority));
    for d in designations.iter().filter(|d| enforced_by(d)) {
        let start = |day: config::Date| config::When::from(day).start();
        upcoming.consider(start(d.listed_on), || {
            format!(
                "entity `{id}`: {} {} listed on {}",
                d.authority, d.reference, d.listed_on
            )
        });
        if let Some(off) = d.delisted_on {
            upcoming.consider(start(off), || {
                format!(
                    "entity `{id}`: {} {} delisted on {off}",
                    d.authority, d.reference
                )
            });
        }
    }
    let active: Vec<Designation> = designations
        .iter()
        .filter(|d| designation_active(d, enforce, today))
        .cloned()
        .collect();
    if !active.is_empty() {
        let delisted = designations
            .iter()
            .filter(|d| enforced_by(d) && d.delisted_on.is_some_and(|x| x.0 <= today))
            .cloned()
            .collect();
        return Ok(Standing::Enforced { active, delisted });
    }
    let why = if def.designations.is_empty() {
        "no designations".to_owned()
    } else if def.designations.iter().any(enforced_by) {
        let mut why =
            "every designation by an enforced authority is delisted or not yet in force".to_owned();
        if !list_delisted.is_empty() {
            why.push_str(&format!(" ({})", list_delisted.join("; ")));
        }
        why
    } else {
        format!(
            "designated only by {}, not enforced here",
            def.designations
                .iter()
                .map(|d| d.authority.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    report.push(FindingKind::LeftOut, id, None, || why.clone());
    Ok(Standing::LeftOut(why))
}
