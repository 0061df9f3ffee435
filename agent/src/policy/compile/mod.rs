//! The policy compiler: a pure, deterministic function from a validated configuration and its
//! resolved sources to the table the data plane loads, with a report of everything it decided.
//!
//! Semantics (the property tests check the compiled table against `evaluate` (test-only), a direct
//! reading of these rules, on random configurations and addresses):
//! * an entity is enforced when it has a designation by an enforced authority that is listed
//!   on or before today and not delisted on or before today;
//! * a designation with `list = "..."` takes its list's regime and date when the list has its
//!   reference, and is delisted from the list's date (publication, else file) when it does not;
//! * a network group counts from its evidence's `valid_from` (when set) while that evidence
//!   has not expired (`expires`, or `retrieved` + `max_age`); evidence dates are days (from
//!   00:00 UTC) or RFC 3339 instants ([`crate::config::When`]), compared with the instant
//!   compiled for ([`Now`]), designation dates with its UTC day;
//! * `allow` wins over everything, including a more specific blocked prefix;
//! * otherwise the most specific prefix wins; two entities listing the same prefix resolve to
//!   the one whose action is `drop`, then to the one read first.
//!
//! [`compile`] runs the phases in order, each in its module: [`designations`] (where each
//! entity stands), [`evidence`] (which groups count today), [`claims`] (guard, same prefix,
//! `allow` subtraction, nesting), and gathers what they decided in a [`Report`] ([`report`]);
//! [`dates`] finds the next instant a date changes what is enforced ([`Compiled::next_change`]).
//!
//! Invariants: no I/O, no clock, no logging (callers log from the report, see
//! [`crate::observe::log`]); the same inputs give the same table, report and digest; a
//! configuration is compiled only once [`crate::config::validate`] has accepted it (the
//! [`Validated`] argument proves it).

mod claims;
mod dates;
mod designations;
mod evidence;
pub mod report;
#[cfg(test)]
mod tests;

use std::{net::IpAddr, path::PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use serde::Serialize;

use self::{
    claims::{Claimant, Claims},
    dates::Upcoming,
    designations::Standing,
};
pub use self::{
    dates::NextChange,
    report::{Finding, FindingKind, ListSummary, REPORT_EXAMPLES, Report},
};
#[cfg(any(test, feature = "test-oracle"))]
use crate::config::Config;
use crate::{
    config::{Action, ConfigError, Designation, DirectionSet, Evidence, validate::Validated},
    policy::resolve::{Resolved, Via},
};

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
    /// When the first of its network groups that count now stops counting (the earliest
    /// expiry of its current evidence), if any does.
    #[serde(skip)]
    pub evidence_expires: Option<DateTime<Utc>>,
    /// Its network groups that count now: index and when each stops counting (if ever), for
    /// `embargo check --expiring` ([`report::ageing`]).
    #[serde(skip)]
    pub current_groups: Vec<(u32, Option<DateTime<Utc>>)>,
    /// Every network group's name and identity, by group index (like `evidence`), for the
    /// data plane's evidence groups ([`crate::policy::EntityIndex`]).
    #[serde(skip)]
    pub groups: Vec<GroupName>,
}

/// What a network group is called, and what identifies it across reloads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupName {
    /// Its `name`, else its evidence's `source` ([`crate::config::NetworkGroup::label`]): the
    /// `evidence` label of the packet counters.
    pub label: String,
    /// Its identity within the entity: `name:<name>`, or, unnamed, `source:<source>#<n>` with
    /// `n` the number of unnamed groups with the same source before it. Stays the same when the
    /// group's prefixes, files, sources or dates change, or when other groups come and go
    /// (except unnamed ones with the same source before it, which share its label anyway).
    pub key: String,
}

impl GroupName {
    /// The names of `groups` (an entity's `networks`), by group index.
    pub fn of(groups: &[crate::config::NetworkGroup]) -> Vec<GroupName> {
        let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        groups
            .iter()
            .map(|g| {
                let key = match &g.name {
                    Some(n) => format!("name:{}", n.get_ref()),
                    None => {
                        let n = seen.entry(g.evidence.source.as_str()).or_default();
                        *n += 1;
                        format!("source:{}#{}", g.evidence.source, *n - 1)
                    }
                };
                GroupName {
                    label: g.label().to_owned(),
                    key,
                }
            })
            .collect()
    }
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

/// The instant a policy is compiled for. From a date: that day's 00:00 UTC (what the commands
/// and tests that think in days pass); the agent and the commands pass the current instant
/// ([`crate::now`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now(pub DateTime<Utc>);

impl From<NaiveDate> for Now {
    fn from(d: NaiveDate) -> Self {
        Now(d.and_time(chrono::NaiveTime::MIN).and_utc())
    }
}

impl From<DateTime<Utc>> for Now {
    fn from(t: DateTime<Utc>) -> Self {
        Now(t)
    }
}

/// The compiled policy.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The UTC day of [`Compiled::now`].
    pub today: NaiveDate,
    /// The instant compiled for.
    pub now: DateTime<Utc>,
    /// The next instant at which a date in the configuration changes what is enforced
    /// ([`dates`]), if any: the agent compiles again then.
    pub next_change: Option<NextChange>,
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
    /// Claims of a prefix that another claim of the same prefix kept out of [`Compiled::rules`]
    /// (another group of the same entity, or the entity that did not keep it), sorted by
    /// [`sort_key`]: not enforced by themselves, but evidence `why` names for the addresses
    /// inside (before `allow` cuts; an allowed address is answered as allowed first).
    pub shared: Vec<Rule>,
}

/// Compiles the validated configuration `config` with its resolved sources as of `now` (an
/// instant, or a date: its 00:00 UTC).
pub fn compile(
    config: &Validated<'_>,
    resolved: &Resolved,
    now: impl Into<Now>,
) -> Result<Compiled, ConfigError> {
    let Now(now) = now.into();
    let today = now.date_naive();
    let mut upcoming = Upcoming::new(now);
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
    let mut claims = Claims::new(guard, resolved);

    for (ei, src) in config.entities.iter().enumerate() {
        let file = &config.files[src.file];
        let def = &src.def;
        let id = def.id.get_ref().as_str();
        let standing = designations::standing(
            config,
            config.enforce(),
            resolved,
            ei,
            today,
            &mut report,
            &mut listed,
            &mut upcoming,
        )?;
        let (active, delisted) = match standing {
            Standing::Enforced { active, delisted } => (active, delisted),
            Standing::LeftOut(why) => {
                excluded.extend(resolved.groups[ei].iter().flatten().map(|c| Excluded {
                    net: c.net,
                    entity: id.to_owned(),
                    reason: why.clone(),
                }));
                continue;
            }
        };
        let who = Claimant {
            index: entities.len() as u32,
            id,
            action: def.action,
        };
        let mut evidence_expires: Option<DateTime<Utc>> = None;
        let mut current_groups = Vec::new();
        for (gi, g) in def.networks.iter().enumerate() {
            let candidates = &resolved.groups[ei][gi];
            if evidence::group_counts(
                def,
                gi,
                config.expiry(ei, gi),
                candidates,
                now,
                &mut report,
                &mut excluded,
                &mut upcoming,
            ) {
                claims.claim_group(&who, &entities, (gi, g), candidates, &mut report)?;
                let until = config.expiry(ei, gi).map(|u| u.start());
                if let Some(until) = until {
                    evidence_expires = Some(evidence_expires.map_or(until, |e| e.min(until)));
                }
                current_groups.push((gi as u32, until));
            }
        }
        entities.push(CompiledEntity {
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
            evidence_expires,
            current_groups,
            groups: GroupName::of(&def.networks),
        });
    }

    let allow = config.allow().to_vec();
    let shared = claims.take_shared();
    let rules = claims::subtract_allow(
        claims.into_rules(),
        &allow,
        &entities,
        &mut report,
        &mut excluded,
    );
    claims::report_nested(&rules, &entities, &mut report);
    for r in &rules {
        let e = &mut entities[r.entity as usize];
        if r.net.is_ipv4() {
            e.prefixes_v4 += 1;
        } else {
            e.prefixes_v6 += 1;
        }
    }
    if rules.len() as u64 > guard.max_prefixes {
        return Err(config.main_file().invalid(
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
        now,
        next_change: upcoming.into_next(),
        enforce: config.enforce().values().cloned().collect(),
        entities,
        rules,
        allow,
        excluded,
        report,
        listed,
        shared,
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

    /// IPv4 rules as `(prefix, entity index, group index within the entity)`.
    pub fn v4_groups(&self) -> Vec<(Ipv4Network, u32, u32)> {
        self.rules
            .iter()
            .filter_map(|r| match r.net {
                IpNetwork::V4(n) => Some((n, r.entity, r.group)),
                IpNetwork::V6(_) => None,
            })
            .collect()
    }

    /// IPv6 rules as `(prefix, entity index, group index within the entity)`.
    pub fn v6_groups(&self) -> Vec<(Ipv6Network, u32, u32)> {
        self.rules
            .iter()
            .filter_map(|r| match r.net {
                IpNetwork::V6(n) => Some((n, r.entity, r.group)),
                IpNetwork::V4(_) => None,
            })
            .collect()
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
pub fn evaluate(
    config: &Config,
    resolved: &Resolved,
    now: impl Into<Now>,
    addr: IpAddr,
) -> Decision {
    use designations::{designation_active, effective_designations};
    use evidence::evidence_pending;

    use crate::config::{self, validate::evidence_expiry};

    let Now(now) = now.into();
    let today = now.date_naive();
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
                .is_some_and(|u| u.start() <= now)
                || evidence_pending(&g.evidence, now)
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
