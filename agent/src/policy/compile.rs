//! The policy compiler: a pure, deterministic function from the configuration and its resolved
//! sources to the table the data plane loads, with a report of everything it decided.
//!
//! Semantics (the property tests check the compiled table against `evaluate` (test-only), a direct
//! reading of these rules, on random configurations and addresses):
//! * an entity is enforced when it has a designation by an enforced authority that is listed
//!   on or before today and not delisted on or before today;
//! * a designation with `list = "..."` takes its list's regime and date when the list has its
//!   reference, and is delisted from the list's date (publication, else file) when it does not;
//! * a network group counts from its evidence's `valid_from` (when set) while that evidence
//!   has not expired (`expires`, or `retrieved` + `max_age`);
//! * `allow` wins over everything, including a more specific blocked prefix;
//! * otherwise the most specific prefix wins; two entities listing the same prefix resolve to
//!   the one whose action is `drop`, then to the one read first.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    path::PathBuf,
};

use chrono::NaiveDate;
use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use serde::Serialize;

use crate::{
    config::{self, Action, Config, ConfigError, Designation, DirectionSet, Evidence},
    policy::{
        cidr,
        resolve::{Resolved, Via},
    },
};

/// Longest list of examples kept per kind of report entry.
pub const REPORT_EXAMPLES: usize = 50;

/// One entity that is enforced.
#[derive(Clone, Debug, Serialize)]
pub struct CompiledEntity {
    pub id: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub action: Action,
    pub direction: DirectionSet,
    /// The designations that make it enforced here.
    pub designations: Vec<Designation>,
    /// Every network group's evidence, by group index (expired ones included, for `why`).
    pub evidence: Vec<Evidence>,
    pub file: PathBuf,
    pub prefixes_v4: usize,
    pub prefixes_v6: usize,
    /// Its designations by an enforced authority that no longer count (delisted, in the file or
    /// by their list), for `why` to show next to the current ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub delisted: Vec<Designation>,
}

/// How a designation written with `list = "..."` stands against its list on this compile.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ListedStatus {
    pub entity: String,
    pub list: String,
    pub authority: String,
    pub reference: String,
    /// Whether the list still has the reference.
    pub on_list: bool,
    /// When it counts as delisted (not on the list: the list's date).
    pub delisted_on: Option<NaiveDate>,
    /// The list's metadata when on it: regime, designation date, names (primary first).
    pub regime: Option<String>,
    pub listed_on: Option<NaiveDate>,
    pub names: Vec<String>,
}

/// A `[[lists]]` file as read, for `embargo check`.
#[derive(Clone, Debug, Serialize)]
pub struct ListSummary {
    pub name: String,
    pub format: String,
    pub path: PathBuf,
    pub published: Option<NaiveDate>,
    pub designations: usize,
}

/// One table entry: a prefix and who it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub net: IpNetwork,
    /// Index into [`Compiled::entities`].
    pub entity: u32,
    /// Network group within the entity.
    pub group: u32,
    /// The prefix as listed, before `allow` was subtracted.
    pub origin: IpNetwork,
    /// Where it was listed.
    pub via: Via,
}

/// A candidate prefix that is not in the table, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Excluded {
    pub net: IpNetwork,
    pub entity: String,
    pub reason: String,
}

/// What the compiler decided, for `embargo check` and logs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Entities left out entirely, with why (not designated by an enforced authority, delisted).
    pub entities_left_out: Vec<(String, String)>,
    /// Evidence groups left out because their evidence expired.
    pub expired_groups: Vec<String>,
    /// Evidence groups left out because their evidence counts only from a later `valid_from`.
    pub pending_groups: Vec<String>,
    /// Identical prefixes listed by two entities, and who keeps them.
    pub same_prefix: Vec<String>,
    pub same_prefix_total: usize,
    /// A prefix of one entity inside a broader one of another: the more specific wins there.
    pub nested: Vec<String>,
    pub nested_total: usize,
    /// Blocked prefixes cut by `allow`.
    pub subtracted: Vec<String>,
    pub subtracted_total: usize,
    /// Broad prefixes accepted through a group's `guard_override`.
    pub guard_overridden: Vec<String>,
    /// Duplicates within one entity, counted once.
    pub duplicates: usize,
    /// Every declared remote source: used (with its copy's age), skipped, or unreferenced.
    pub sources: Vec<crate::policy::resolve::SourceReport>,
    /// Every declared sanctions list.
    pub lists: Vec<ListSummary>,
    /// Designations whose list no longer has their reference: delisted from the list's date.
    pub delisted_by_list: Vec<String>,
    /// Where an entity file and its list disagree (regime, date, names, authority): the list's
    /// values are used.
    pub list_warnings: Vec<String>,
    /// Designations following a list that was skipped (its source had no usable copy and
    /// `on_source_failure = "skip"`): they stand as the entity file writes them, not delisted.
    pub unfollowed_designations: Vec<String>,
}

/// The compiled policy.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub today: NaiveDate,
    pub enforce: Vec<String>,
    pub entities: Vec<CompiledEntity>,
    /// Sorted by family, address, length.
    pub rules: Vec<Rule>,
    pub allow: Vec<(IpNetwork, String)>,
    /// Candidates not in the table (expired, not enforced, subtracted), for `why`.
    pub excluded: Vec<Excluded>,
    pub report: Report,
    /// Every designation that names a list, as it stands against it (for the audit log).
    pub listed: Vec<ListedStatus>,
}

fn note(list: &mut Vec<String>, total: &mut usize, text: impl FnOnce() -> String) {
    *total += 1;
    if list.len() < REPORT_EXAMPLES {
        list.push(text());
    }
}

/// Whether a designation makes its entity enforced on `today` under `enforce`.
fn designation_active(
    d: &Designation,
    enforce: &BTreeMap<String, String>,
    today: NaiveDate,
) -> bool {
    enforce.contains_key(&config::authority_key(&d.authority))
        && d.listed_on.0 <= today
        && d.delisted_on.is_none_or(|x| x.0 > today)
}

/// An entity's designations as they count, each list-driven one's status, and the warnings.
struct Effective {
    designations: Vec<Designation>,
    statuses: Vec<ListedStatus>,
    /// Where the entity file and its list disagree (the list's values are used).
    mismatches: Vec<String>,
    /// Designations whose list was skipped: they stand as the entity file writes them.
    unfollowed: Vec<String>,
}

/// An entity's designations as they count on this compile: those naming a list take the
/// list's regime and date when it has their reference, and are delisted from the list's date
/// when it does not. Also returns each list-driven designation's status and the
/// disagreements between the entity file and its list.
fn effective_designations(
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

/// Whether evidence still counts on `today`; the error names the bad `max_age`.
fn evidence_expiry(e: &Evidence) -> Result<Option<NaiveDate>, String> {
    let mut until = e.expires.map(|d| d.0);
    if let Some(age) = &e.max_age {
        let days = config::parse_max_age(age.get_ref())?;
        let by_age = e.retrieved.0 + chrono::Days::new(days as u64);
        until = Some(until.map_or(by_age, |u| u.min(by_age)));
    }
    Ok(until)
}

/// Whether evidence has not started counting yet on `today` (its `valid_from` is later).
fn evidence_pending(e: &Evidence, today: NaiveDate) -> bool {
    e.valid_from.is_some_and(|from| from.0 > today)
}

/// Records every candidate of a group that does not count (expired, not yet valid) as left out
/// for `reason`, so `why` can say so.
fn leave_out(
    excluded: &mut Vec<Excluded>,
    group: &[crate::policy::resolve::Candidate],
    entity: &str,
    reason: &str,
) {
    excluded.extend(group.iter().map(|c| Excluded {
        net: c.net,
        entity: entity.to_owned(),
        reason: reason.to_owned(),
    }));
}

/// Compiles `config` with its resolved sources as of `today`.
pub fn compile(
    config: &Config,
    resolved: &Resolved,
    today: NaiveDate,
) -> Result<Compiled, ConfigError> {
    let main = config.main_file();
    let enforce = config::enforced(&config.main);
    if enforce.is_empty() {
        return Err(main.invalid(
            0,
            "`enforce` is empty: name the authorities whose designations this gateway enforces, e.g. enforce = [\"UK\"]",
        ));
    }
    let guard = &config.main.guard;
    let mut report = Report {
        sources: resolved.sources.clone(),
        lists: resolved
            .lists
            .iter()
            .map(|l| ListSummary {
                name: l.name.clone(),
                format: l.document.format.to_string(),
                path: l.path.clone(),
                published: l.document.published,
                designations: l.document.designations.len(),
            })
            .collect(),
        ..Report::default()
    };
    let mut listed: Vec<ListedStatus> = Vec::new();
    let mut excluded = Vec::new();
    let mut entities: Vec<CompiledEntity> = Vec::new();
    // (net) -> index into `rules` of its current owner
    let mut owner: HashMap<IpNetwork, usize> = HashMap::new();
    let mut rules: Vec<Rule> = Vec::new();
    let mut ids: HashMap<&str, (usize, usize)> = HashMap::new();

    for (ei, src) in config.entities.iter().enumerate() {
        let file = &config.files[src.file];
        let def = &src.def;
        let id = def.id.get_ref().as_str();
        if !config::validate::is_slug(id) {
            return Err(file.invalid(
                def.id.span().start,
                format!("entity id `{id}` must be a slug: lowercase letters, digits, `-` and `_`"),
            ));
        }
        if let Some((f, off)) = ids.insert(id, (src.file, def.id.span().start)) {
            let first = config.files[f].at(off);
            return Err(file.invalid(
                def.id.span().start,
                format!("entity id `{id}` is already used at {first}; ids must be unique"),
            ));
        }
        for d in &def.designations {
            if d.delisted_on.is_some_and(|x| x < d.listed_on) {
                return Err(file.invalid(
                    def.id.span().start,
                    format!(
                        "entity `{id}`: designation {} is delisted ({}) before it was listed ({}); fix the dates",
                        d.reference,
                        d.delisted_on.expect("checked"),
                        d.listed_on
                    ),
                ));
            }
        }
        // Check every group's evidence, whether or not the entity is enforced: bad input is
        // refused even where it would not matter today.
        let mut expiry = Vec::with_capacity(def.networks.len());
        for g in &def.networks {
            let until = evidence_expiry(&g.evidence).map_err(|m| {
                let off = g
                    .evidence
                    .max_age
                    .as_ref()
                    .map_or(def.id.span().start, |a| a.span().start);
                file.invalid(off, m)
            })?;
            if let (Some(from), Some(until)) = (g.evidence.valid_from, until)
                && from.0 >= until
            {
                return Err(file.invalid(
                    def.id.span().start,
                    format!(
                        "entity `{id}`: a network group's evidence ({}) counts from {from} but stops counting on {until}, so it never counts; fix valid_from, expires or max_age",
                        g.evidence.source
                    ),
                ));
            }
            expiry.push(until);
        }
        let Effective {
            designations,
            statuses,
            mismatches,
            unfollowed,
        } = effective_designations(config, resolved, ei)?;
        for w in mismatches {
            tracing::warn!("{w}; the list's values are used");
            report.list_warnings.push(w);
        }
        for w in unfollowed {
            tracing::warn!("{w}");
            report.unfollowed_designations.push(w);
        }
        let mut list_delisted = Vec::new();
        for st in &statuses {
            if let Some(since) = st.delisted_on {
                let list = resolved
                    .lists
                    .iter()
                    .find(|l| l.name == st.list)
                    .expect("resolved above");
                let text = format!(
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
                );
                tracing::warn!(entity = id, list = %st.list, reference = %st.reference, %since, "designation not in its list: delisted");
                report.delisted_by_list.push(text);
                list_delisted.push(format!(
                    "{} {} is no longer in list `{}`",
                    st.authority, st.reference, st.list
                ));
            }
        }
        listed.extend(statuses);
        let active: Vec<Designation> = designations
            .iter()
            .filter(|d| designation_active(d, &enforce, today))
            .cloned()
            .collect();
        let delisted: Vec<Designation> = designations
            .iter()
            .filter(|d| {
                enforce.contains_key(&config::authority_key(&d.authority))
                    && d.delisted_on.is_some_and(|x| x.0 <= today)
            })
            .cloned()
            .collect();
        if active.is_empty() {
            let why = if def.designations.is_empty() {
                "no designations".to_owned()
            } else if def
                .designations
                .iter()
                .any(|d| enforce.contains_key(&config::authority_key(&d.authority)))
            {
                let mut why =
                    "every designation by an enforced authority is delisted or not yet in force"
                        .to_owned();
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
            tracing::info!(entity = id, reason = %why, "entity left out");
            for group in &resolved.groups[ei] {
                for c in group {
                    excluded.push(Excluded {
                        net: c.net,
                        entity: id.to_owned(),
                        reason: why.clone(),
                    });
                }
            }
            report.entities_left_out.push((id.to_owned(), why));
            continue;
        }
        let index = entities.len() as u32;
        let info = CompiledEntity {
            id: id.to_owned(),
            name: def.name.clone(),
            aliases: def.aliases.clone(),
            action: def.action,
            direction: def.direction,
            designations: active,
            evidence: def.networks.iter().map(|g| g.evidence.clone()).collect(),
            file: file.path.clone(),
            prefixes_v4: 0,
            prefixes_v6: 0,
            delisted,
        };
        for (gi, g) in def.networks.iter().enumerate() {
            if let Some(until) = expiry[gi]
                && until <= today
            {
                let text = format!(
                    "entity `{id}` group {} ({} evidence from {}): expired on {until}, {} prefixes left out",
                    gi + 1,
                    g.evidence.kind.get_ref().name(),
                    g.evidence.source,
                    resolved.groups[ei][gi].len()
                );
                tracing::info!("{text}");
                report.expired_groups.push(text);
                let reason = format!("evidence expired on {until} ({})", g.evidence.source);
                leave_out(&mut excluded, &resolved.groups[ei][gi], id, &reason);
                continue;
            }
            if let Some(from) = g.evidence.valid_from
                && evidence_pending(&g.evidence, today)
            {
                let text = format!(
                    "entity `{id}` group {} (evidence from {}): counts from {from}, {} prefixes left out until then",
                    gi + 1,
                    g.evidence.source,
                    resolved.groups[ei][gi].len()
                );
                tracing::info!("{text}");
                report.pending_groups.push(text);
                let reason = format!("evidence counts only from {from} ({})", g.evidence.source);
                leave_out(&mut excluded, &resolved.groups[ei][gi], id, &reason);
                continue;
            }
            for c in &resolved.groups[ei][gi] {
                let len = c.net.prefix();
                let broadest = if c.net.is_ipv4() {
                    guard.broadest_v4
                } else {
                    guard.broadest_v6
                };
                // A default route is refused without the override whatever the guard says.
                if len < broadest || len == 0 {
                    match &g.guard_override {
                        Some(reason) if len > 0 || reason.contains("default route") => {
                            report
                                .guard_overridden
                                .push(format!("{} (`{id}`): {reason}", c.net));
                        }
                        _ => {
                            let what = if len == 0 {
                                "is a default route and would block a whole address family"
                                    .to_owned()
                            } else {
                                format!("is broader than the guard's /{broadest}")
                            };
                            // A range table hands out whole allocations: say which listing
                            // the broad prefix came from, since the file shows only the name.
                            let from = match &c.via {
                                Via::Asn { asn, table } => {
                                    format!(" (announced by AS{asn} per {table})")
                                }
                                Via::Country { code, table } => format!(
                                    " (country {code} per {table}: a jurisdiction's ranges can \
                                     merge into prefixes broader than the guard allows)"
                                ),
                                _ => String::new(),
                            };
                            return Err(ConfigError::Invalid {
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
                            });
                        }
                    }
                }
                let rule = Rule {
                    net: c.net,
                    entity: index,
                    group: gi as u32,
                    origin: c.net,
                    via: c.via.clone(),
                };
                match owner.get(&c.net) {
                    None => {
                        owner.insert(c.net, rules.len());
                        rules.push(rule);
                    }
                    Some(&ri) if rules[ri].entity == index => report.duplicates += 1,
                    Some(&ri) => {
                        let prev = rules[ri].entity as usize;
                        let prev_id = entities.get(prev).map_or(id, |e| e.id.as_str()).to_owned();
                        // Drop beats monitor; otherwise the entity read first keeps it.
                        let takes_over = def.action == Action::Drop
                            && entities
                                .get(prev)
                                .is_some_and(|e| e.action == Action::Monitor);
                        let (keeper, loser) = if takes_over {
                            (id.to_owned(), prev_id)
                        } else {
                            (prev_id, id.to_owned())
                        };
                        note(
                            &mut report.same_prefix,
                            &mut report.same_prefix_total,
                            || {
                                format!(
                                    "{} is listed by `{loser}` and `{keeper}`; `{keeper}` keeps it",
                                    c.net
                                )
                            },
                        );
                        if takes_over {
                            rules[ri] = rule;
                        }
                    }
                }
            }
        }
        entities.push(info);
    }

    // Allow: parse, then subtract from every overlapping rule.
    let mut allow = Vec::new();
    for a in &config.main.allow {
        let net = config::parse_prefix(a.prefix.get_ref())
            .map_err(|m| main.invalid(a.prefix.span().start, m))?;
        allow.push((net, a.reason.clone()));
    }
    if !allow.is_empty() {
        let mut out = Vec::with_capacity(rules.len());
        for rule in rules {
            let mut pieces = vec![rule.net];
            for (a, reason) in &allow {
                if !pieces.iter().any(|p| cidr::overlaps(p, a)) {
                    continue;
                }
                let eid = &entities[rule.entity as usize].id;
                note(&mut report.subtracted, &mut report.subtracted_total, || {
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
        rules = out;
    }
    // Subtraction can leave a piece of a broad prefix equal to (a piece of) a more specific
    // one of another entity; the more specific listing wins, as without the allow.
    rules.sort_by_key(|r| (sort_key(&r.net), std::cmp::Reverse(r.origin.prefix())));
    rules.dedup_by(|b, a| a.net == b.net);

    // Nested prefixes of different entities: walk in address order with a stack of enclosers.
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
            note(&mut report.nested, &mut report.nested_total, || {
                format!(
                    "{} (`{ie}`) is inside {} (`{oe}`): `{ie}` wins for {}",
                    inner.net, outer.net, inner.net
                )
            });
        }
        stack.push(i);
    }

    for r in &rules {
        let e = &mut entities[r.entity as usize];
        if r.net.is_ipv4() {
            e.prefixes_v4 += 1;
        } else {
            e.prefixes_v6 += 1;
        }
    }
    if rules.len() as u64 > guard.max_prefixes {
        return Err(main.invalid(
            0,
            format!(
                "the policy compiles to {} prefixes, over guard.max_prefixes = {}; raise the limit if that is intended",
                rules.len(),
                guard.max_prefixes
            ),
        ));
    }
    Ok(Compiled {
        today,
        enforce: enforce.into_values().collect(),
        entities,
        rules,
        allow,
        excluded,
        report,
        listed,
    })
}

/// Orders prefixes by family, then address, then length: an encloser sorts before what it encloses.
pub fn sort_key(n: &IpNetwork) -> (u8, u128, u8) {
    match n {
        IpNetwork::V4(v) => (4, u128::from(u32::from(v.network())), v.prefix()),
        IpNetwork::V6(v) => (6, u128::from(v.network()), v.prefix()),
    }
}

impl Compiled {
    /// The most specific rule containing `addr`: a binary search in the sorted rules for each
    /// prefix length, longest first (33 or 129 searches, whatever the table's size).
    pub fn lookup(&self, addr: IpAddr) -> Option<&Rule> {
        let width: u8 = if addr.is_ipv4() { 32 } else { 128 };
        (0..=width).rev().find_map(|len| {
            let net = IpNetwork::new(addr, len).ok()?;
            let net = IpNetwork::new(net.network(), len).ok()?;
            let key = sort_key(&net);
            self.rules
                .binary_search_by_key(&key, |r| sort_key(&r.net))
                .ok()
                .map(|i| &self.rules[i])
        })
    }

    /// The allow rule containing `addr`, if any.
    pub fn allowed(&self, addr: IpAddr) -> Option<&(IpNetwork, String)> {
        self.allow.iter().find(|(n, _)| n.contains(addr))
    }

    /// IPv4 rules as `(prefix, entity index)`, for the trie builder.
    pub fn v4(&self) -> Vec<(Ipv4Network, u32)> {
        self.rules
            .iter()
            .filter_map(|r| match r.net {
                IpNetwork::V4(n) => Some((n, r.entity)),
                IpNetwork::V6(_) => None,
            })
            .collect()
    }

    /// IPv6 rules as `(prefix, entity index)`, for the trie builder.
    pub fn v6(&self) -> Vec<(Ipv6Network, u32)> {
        self.rules
            .iter()
            .filter_map(|r| match r.net {
                IpNetwork::V6(n) => Some((n, r.entity)),
                IpNetwork::V4(_) => None,
            })
            .collect()
    }

    /// SHA-256 of the table as loaded (prefix, entity id, action, directions), hex.
    pub fn digest(&self) -> String {
        use sha2::{Digest as _, Sha256};
        let mut h = Sha256::new();
        for e in &self.entities {
            h.update(format!(
                "entity {} {:?} {:?}\n",
                e.id, e.action, e.direction
            ));
        }
        for r in &self.rules {
            h.update(format!(
                "{} {}\n",
                r.net, self.entities[r.entity as usize].id
            ));
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What the rules say about one address, read directly from the configuration (no table):
/// the reference the compiled table is tested against (test-only: the oracle of this module's
/// tests and of the config fuzz targets, `embargo_fuzz::check_config`, built with the `test-oracle`
/// feature).
#[cfg(any(test, feature = "test-oracle"))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Entity(String),
    NotListed,
}

/// Evaluates every rule for `addr`; see the module docs for the semantics. Test-only: the
/// oracle the compiled table is checked against.
#[cfg(any(test, feature = "test-oracle"))]
pub fn evaluate(config: &Config, resolved: &Resolved, today: NaiveDate, addr: IpAddr) -> Decision {
    let enforce = config::enforced(&config.main);
    for a in &config.main.allow {
        if config::parse_prefix(a.prefix.get_ref()).is_ok_and(|n| n.contains(addr)) {
            return Decision::Allowed;
        }
    }
    // (prefix length, is drop, -entity order) maximised.
    let mut best: Option<((u8, bool, i64), String)> = None;
    for (ei, src) in config.entities.iter().enumerate() {
        let def = &src.def;
        let designations = effective_designations(config, resolved, ei)
            .map_or_else(|_| def.designations.clone(), |e| e.designations);
        if !designations
            .iter()
            .any(|d| designation_active(d, &enforce, today))
        {
            continue;
        }
        for (gi, g) in def.networks.iter().enumerate() {
            if evidence_expiry(&g.evidence)
                .ok()
                .flatten()
                .is_some_and(|u| u <= today)
                || evidence_pending(&g.evidence, today)
            {
                continue;
            }
            for c in &resolved.groups[ei][gi] {
                if c.net.contains(addr) {
                    let key = (c.net.prefix(), def.action == Action::Drop, -(ei as i64));
                    if best.as_ref().is_none_or(|(k, _)| key > *k) {
                        best = Some((key, def.id.get_ref().clone()));
                    }
                }
            }
        }
    }
    best.map_or(Decision::NotListed, |(_, id)| Decision::Entity(id))
}

#[cfg(test)]
mod tests {
    use std::{net::Ipv4Addr, path::Path};

    use proptest::prelude::*;

    use super::*;
    use crate::{config, policy::resolve};

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
        compile(&c, &r, day(today))
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

    fn group(prefixes: &[&str], evidence_extra: &str) -> String {
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
        assert_eq!(c.report.entities_left_out.len(), 1);
        assert!(
            c.report.entities_left_out[0]
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
        assert!(c.report.entities_left_out[0].1.contains("delisted"));
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
        assert_eq!(c.report.expired_groups.len(), 1);
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
        assert_eq!(c.report.pending_groups.len(), 1, "{:?}", c.report);
        assert!(c.report.pending_groups[0].contains("counts from 2026-03-01"));
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
            assert!(c.report.pending_groups.is_empty(), "{today}");
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
        assert!(c.report.nested[0].contains("`b` wins"));
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
                entity("a", "drop", "UK", "", &group(&[p], ""))
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
                &group(&["10.0.0.0/7"], "").replace(
                    "[entities.networks.evidence]",
                    "guard_override = \"approved\"\n[entities.networks.evidence]"
                )
            )
        );
        let c = compile_str(&overridden, "2026-02-01").unwrap();
        assert_eq!(c.report.guard_overridden.len(), 1);
        // A default route needs the words in the reason.
        let dflt = format!(
            "enforce = [\"UK\"]\n{}",
            entity(
                "a",
                "drop",
                "UK",
                "",
                &group(&["0.0.0.0/0"], "").replace(
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
            let compiled =
                compile(&c, &r, day("2026-11-26")).unwrap_or_else(|e| panic!("{p}: {e}"));
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
        assert!(before.report.delisted_by_list.is_empty());
        assert!(
            before.report.list_warnings.is_empty(),
            "{:?}",
            before.report.list_warnings
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
        assert_eq!(after.report.delisted_by_list.len(), 1);
        assert!(
            after.report.delisted_by_list[0].contains("delisted from 2026-06-20"),
            "{:?}",
            after.report.delisted_by_list
        );
        assert!(
            after.report.entities_left_out[0]
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
        assert!(
            crate::observe::audit::designation_changes(&before.listed, &before.listed).is_empty()
        );
    }

    #[test]
    fn the_lists_metadata_wins_and_a_mismatch_is_a_warning() {
        let c = compile_str(
            &listed_config("UK_Sanctions_List.csv", "cyber regime"),
            "2026-07-01",
        )
        .unwrap();
        assert_eq!(
            c.report.list_warnings.len(),
            1,
            "{:?}",
            c.report.list_warnings
        );
        assert!(c.report.list_warnings[0].contains("regime `cyber regime`"));
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
        let compiled = compile(&c, &r, day("2026-11-26")).unwrap();
        assert_eq!(compiled.report.lists.len(), 1);
        assert_eq!(compiled.report.lists[0].designations, 4);
        assert!(
            compiled.report.list_warnings.is_empty(),
            "{:?}",
            compiled.report.list_warnings
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
        // Clustered in 10.0.0.0/12 so prefixes overlap often: half are drawn from a small pool
        // of addresses and lengths, so identical and nested prefixes across entities are common.
        let pool = (
            prop::sample::select(vec![0u32, 0x1_0000, 0x1_2300, 0x1_2345, 0x8_0000]),
            prop::sample::select(vec![12u8, 16, 20, 24, 32]),
        );
        let free = (0u32..(1 << 20), 9u8..=32);
        prop_oneof![pool, free].prop_map(|(bits, len)| {
            let n = Ipv4Network::new(Ipv4Addr::from(0x0a00_0000 | bits), len).unwrap();
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
            let compiled = compile(&c, &r, day(today)).unwrap();
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
}
