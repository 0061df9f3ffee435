//! What the compiler decided, as data: a list of [`Finding`]s (kind, entity, network group,
//! message) plus the counts and the inputs' summaries, rendered in one place.
//!
//! Invariants:
//! * every finding is pushed by the compile phases in the order they decided it (entities in
//!   configuration order, then allow subtraction, then nested prefixes), so a report is as
//!   deterministic as the compile;
//! * the kinds that can be numerous ([`FindingKind::capped`]) keep at most [`REPORT_EXAMPLES`]
//!   findings each, with their full count in the matching `*_total` field;
//! * a finding's `message` is the line `embargo check` has always printed for it (for
//!   [`FindingKind::LeftOut`] the reason alone, the entity being in `entity`), and the
//!   serialized [`Report`] keeps its historical fields (`entities_left_out`, `expired_groups`,
//!   ...), each derived from the findings here, so readers of `check --json` see no change.

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use super::Compiled;
use crate::policy::resolve::SourceReport;

/// Longest list of examples kept per kind of report entry.
pub const REPORT_EXAMPLES: usize = 50;

/// What a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// An entity left out entirely (not designated by an enforced authority, delisted).
    LeftOut,
    /// An entity whose designations are in force but that has no current prefixes (every
    /// group expired, not valid yet, or empty): nothing is blocked for it. Found by
    /// [`ageing`] (`embargo check`), not by the compile.
    NoCurrentPrefixes,
    /// A network group that counts now and stops counting within `embargo check --expiring`'s
    /// horizon. Found by [`ageing`], not by the compile.
    ExpiringEvidence,
    /// A designation whose list no longer has its reference: delisted from the list's date.
    DelistedByList,
    /// An entity file and its list disagree (regime, date, names, authority); the list wins.
    ListMismatch,
    /// A designation following a list that was skipped: it stands as the entity file writes it.
    UnfollowedDesignation,
    /// A network group left out because its evidence expired.
    ExpiredEvidence,
    /// A network group left out because its evidence counts only from a later `valid_from`.
    PendingEvidence,
    /// A blocked prefix cut by `allow`.
    Subtracted,
    /// An identical prefix listed by two entities, and who keeps it.
    SamePrefix,
    /// A prefix of one entity inside a broader one of another: the more specific wins there.
    Nested,
    /// A broad prefix accepted through a group's `guard_override`.
    GuardOverridden,
    /// A network group's prefixes in special-purpose ranges ([`crate::policy::special`])
    /// accepted through its `guard_override`: one finding per group.
    SpecialRangeOverridden,
}

impl FindingKind {
    /// Every kind, in the order `embargo check` prints their sections.
    pub const ALL: [FindingKind; 13] = [
        FindingKind::LeftOut,
        FindingKind::NoCurrentPrefixes,
        FindingKind::ExpiringEvidence,
        FindingKind::DelistedByList,
        FindingKind::ListMismatch,
        FindingKind::UnfollowedDesignation,
        FindingKind::ExpiredEvidence,
        FindingKind::PendingEvidence,
        FindingKind::Subtracted,
        FindingKind::SamePrefix,
        FindingKind::Nested,
        FindingKind::GuardOverridden,
        FindingKind::SpecialRangeOverridden,
    ];

    /// Whether findings of this kind are kept only up to [`REPORT_EXAMPLES`] (with a total).
    pub fn capped(self) -> bool {
        matches!(
            self,
            FindingKind::Subtracted | FindingKind::SamePrefix | FindingKind::Nested
        )
    }

    /// The heading of this kind's section in `embargo check`.
    pub fn title(self) -> &'static str {
        match self {
            FindingKind::LeftOut => "left out: entities",
            FindingKind::NoCurrentPrefixes => {
                "warning: designated entities with no current prefixes (nothing is blocked for them)"
            }
            FindingKind::ExpiringEvidence => "warning: evidence expiring soon",
            FindingKind::DelistedByList => "delisted: designations no longer in their list",
            FindingKind::ListMismatch => {
                "warning: entity files that disagree with their list (the list's values are used)"
            }
            FindingKind::UnfollowedDesignation => {
                "warning: designations whose list was skipped (kept as their entity file writes them, not delisted)"
            }
            FindingKind::ExpiredEvidence => "left out: expired evidence",
            FindingKind::PendingEvidence => "left out: evidence not valid yet (valid_from)",
            FindingKind::Subtracted => "subtracted by allow",
            FindingKind::SamePrefix => "same prefix in two entities",
            FindingKind::Nested => "nested prefixes of different entities (the more specific wins)",
            FindingKind::GuardOverridden => "broad prefixes accepted by guard_override",
            FindingKind::SpecialRangeOverridden => {
                "special-purpose prefixes (private, loopback, documentation, ...) accepted by guard_override"
            }
        }
    }
}

/// One thing the compiler decided that a person may want to know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// The entity's id.
    pub entity: String,
    /// The network group within the entity, counted from 1 as the messages do; `None` when the
    /// finding is about the entity or a designation rather than one group.
    pub group: Option<u32>,
    /// The sentence, as `embargo check` prints it.
    pub message: String,
}

impl Finding {
    /// The line `embargo check` and the log print for it.
    pub fn line(&self) -> String {
        match self.kind {
            FindingKind::LeftOut => format!("{}: {}", self.entity, self.message),
            _ => self.message.clone(),
        }
    }
}

/// A `[[lists]]` file as read, for `embargo check`.
#[derive(Clone, Debug, Serialize)]
pub struct ListSummary {
    pub name: String,
    pub format: String,
    pub path: std::path::PathBuf,
    pub published: Option<chrono::NaiveDate>,
    pub designations: usize,
}

/// What the compiler decided, for `embargo check` and logs.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Everything decided, in the order it was decided ([`FindingKind::capped`] kinds up to
    /// [`REPORT_EXAMPLES`] each).
    pub findings: Vec<Finding>,
    /// How many identical prefixes were listed by two entities (the findings keep examples).
    pub same_prefix_total: usize,
    /// How many prefixes were nested in another entity's (the findings keep examples).
    pub nested_total: usize,
    /// How many blocked prefixes `allow` cut (the findings keep examples).
    pub subtracted_total: usize,
    /// Duplicates within one entity, counted once.
    pub duplicates: usize,
    /// Every declared remote source: used (with its copy's age), skipped, or unreferenced.
    pub sources: Vec<SourceReport>,
    /// Every declared sanctions list.
    pub lists: Vec<ListSummary>,
}

impl Report {
    /// Records a finding; a capped kind's is counted and kept only while it has fewer than
    /// [`REPORT_EXAMPLES`] (`message` is then built only when kept).
    pub(super) fn push(
        &mut self,
        kind: FindingKind,
        entity: &str,
        group: Option<u32>,
        message: impl FnOnce() -> String,
    ) {
        let total = match kind {
            FindingKind::Subtracted => Some(&mut self.subtracted_total),
            FindingKind::SamePrefix => Some(&mut self.same_prefix_total),
            FindingKind::Nested => Some(&mut self.nested_total),
            _ => None,
        };
        if let Some(total) = total {
            *total += 1;
            if *total > REPORT_EXAMPLES {
                return;
            }
        }
        self.findings.push(Finding {
            kind,
            entity: entity.to_owned(),
            group,
            message: message(),
        });
    }

    /// The findings of one kind, in order.
    pub fn of(&self, kind: FindingKind) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.kind == kind)
    }

    /// The messages of one kind, in order.
    pub fn messages(&self, kind: FindingKind) -> Vec<String> {
        self.of(kind).map(|f| f.message.clone()).collect()
    }

    /// How many findings of this kind there were (kept or not).
    pub fn total(&self, kind: FindingKind) -> usize {
        match kind {
            FindingKind::Subtracted => self.subtracted_total,
            FindingKind::SamePrefix => self.same_prefix_total,
            FindingKind::Nested => self.nested_total,
            _ => self.of(kind).count(),
        }
    }

    /// The entities left out, with why.
    pub fn entities_left_out(&self) -> Vec<(&str, &str)> {
        self.of(FindingKind::LeftOut)
            .map(|f| (f.entity.as_str(), f.message.as_str()))
            .collect()
    }

    /// `embargo check`'s sections, one per kind with findings: heading with the total, a line
    /// per finding kept, and how many more were not.
    pub fn render_sections(&self, o: &mut String) {
        use std::fmt::Write as _;
        for kind in FindingKind::ALL {
            let total = self.total(kind);
            if total == 0 {
                continue;
            }
            let _ = writeln!(o, "{} ({total}):", kind.title());
            let mut kept = 0;
            for f in self.of(kind) {
                let _ = writeln!(o, "  {}", f.line());
                kept += 1;
            }
            if total > kept {
                let _ = writeln!(o, "  ... and {} more", total - kept);
            }
        }
        if self.duplicates > 0 {
            let _ = writeln!(
                o,
                "duplicates within an entity, counted once: {}",
                self.duplicates
            );
        }
    }
}

/// How the evidence of `c` ages, as of `c.now`: each enforced entity with no current prefixes
/// ([`FindingKind::NoCurrentPrefixes`]) and each network group that counts now but stops
/// counting within `horizon` ([`FindingKind::ExpiringEvidence`], soonest first), for `embargo
/// check` to add to the report (the compile does not know the horizon).
pub fn ageing(c: &Compiled, horizon: chrono::Duration) -> Vec<Finding> {
    let mut out = Vec::new();
    for e in &c.entities {
        if e.prefixes_v4 + e.prefixes_v6 == 0 {
            out.push(Finding {
                kind: FindingKind::NoCurrentPrefixes,
                entity: e.id.clone(),
                group: None,
                message: format!(
                    "entity `{}`: designated and in force, but no current prefixes (its evidence expired, is not valid yet, or lists none): nothing is blocked for it",
                    e.id
                ),
            });
        }
    }
    let limit = c.now + horizon;
    let mut expiring: Vec<(DateTime<Utc>, Finding)> = Vec::new();
    for (ei, e) in c.entities.iter().enumerate() {
        for &(gi, until) in &e.current_groups {
            let Some(until) = until.filter(|u| *u <= limit) else {
                continue;
            };
            let prefixes = c
                .rules
                .iter()
                .filter(|r| r.entity as usize == ei && r.group == gi)
                .count();
            let ev = &e.evidence[gi as usize];
            let left = until - c.now;
            let left = if left >= chrono::Duration::days(2) {
                format!("in {} days", left.num_days())
            } else {
                format!("in {} hours", left.num_hours())
            };
            expiring.push((
                until,
                Finding {
                    kind: FindingKind::ExpiringEvidence,
                    entity: e.id.clone(),
                    group: Some(gi + 1),
                    message: format!(
                        "entity `{}` group {} ({} evidence from {}): stops counting {} ({left}), {prefixes} prefixes",
                        e.id,
                        gi + 1,
                        ev.kind.get_ref().name(),
                        ev.source,
                        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    ),
                },
            ));
        }
    }
    expiring.sort_by_key(|(t, _)| *t);
    out.extend(expiring.into_iter().map(|(_, f)| f));
    out
}

/// The report as `embargo check --json` has always shown it: one field per kind (the messages),
/// the totals, the sources and lists. The typed findings are shown next to it, not in it.
impl Serialize for Report {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Fields<'a> {
            entities_left_out: Vec<(&'a str, &'a str)>,
            expired_groups: Vec<String>,
            pending_groups: Vec<String>,
            same_prefix: Vec<String>,
            same_prefix_total: usize,
            nested: Vec<String>,
            nested_total: usize,
            subtracted: Vec<String>,
            subtracted_total: usize,
            guard_overridden: Vec<String>,
            special_ranges_overridden: Vec<String>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            no_current_prefixes: Vec<String>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            expiring_evidence: Vec<String>,
            duplicates: usize,
            sources: &'a [SourceReport],
            lists: &'a [ListSummary],
            delisted_by_list: Vec<String>,
            list_warnings: Vec<String>,
            unfollowed_designations: Vec<String>,
        }
        Fields {
            entities_left_out: self.entities_left_out(),
            expired_groups: self.messages(FindingKind::ExpiredEvidence),
            pending_groups: self.messages(FindingKind::PendingEvidence),
            same_prefix: self.messages(FindingKind::SamePrefix),
            same_prefix_total: self.same_prefix_total,
            nested: self.messages(FindingKind::Nested),
            nested_total: self.nested_total,
            subtracted: self.messages(FindingKind::Subtracted),
            subtracted_total: self.subtracted_total,
            guard_overridden: self.messages(FindingKind::GuardOverridden),
            special_ranges_overridden: self.messages(FindingKind::SpecialRangeOverridden),
            no_current_prefixes: self.messages(FindingKind::NoCurrentPrefixes),
            expiring_evidence: self.messages(FindingKind::ExpiringEvidence),
            duplicates: self.duplicates,
            sources: &self.sources,
            lists: &self.lists,
            delisted_by_list: self.messages(FindingKind::DelistedByList),
            list_warnings: self.messages(FindingKind::ListMismatch),
            unfollowed_designations: self.messages(FindingKind::UnfollowedDesignation),
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_kinds_keep_examples_and_count_all() {
        let mut r = Report::default();
        for i in 0..REPORT_EXAMPLES + 3 {
            r.push(FindingKind::Nested, "a", None, || format!("n{i}"));
            r.push(FindingKind::ExpiredEvidence, "a", Some(1), || {
                format!("e{i}")
            });
        }
        assert_eq!(r.of(FindingKind::Nested).count(), REPORT_EXAMPLES);
        assert_eq!(r.total(FindingKind::Nested), REPORT_EXAMPLES + 3);
        assert_eq!(r.total(FindingKind::ExpiredEvidence), REPORT_EXAMPLES + 3);
        let mut o = String::new();
        r.render_sections(&mut o);
        assert!(o.contains("  ... and 3 more\n"), "{o}");
        assert!(
            o.starts_with("left out: expired evidence (53):\n  e0\n"),
            "{o}"
        );
    }

    #[test]
    fn the_serialized_report_keeps_its_fields() {
        let mut r = Report::default();
        r.push(FindingKind::LeftOut, "b", None, || "no designations".into());
        r.push(FindingKind::DelistedByList, "c", None, || "gone".into());
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v["entities_left_out"],
            serde_json::json!([["b", "no designations"]])
        );
        assert_eq!(v["delisted_by_list"], serde_json::json!(["gone"]));
        assert_eq!(v["nested_total"], 0);
        assert!(v.get("findings").is_none(), "{v}");
    }
}
