//! Prometheus metrics: every name, type, label and HELP text Embargo exposes, and where each
//! value comes from. The names are part of the product: dashboards and alerts are built on them.
//!
//! `embargo run` creates one [`prometheus::Registry`] and passes it down; [`Metrics::register`]
//! registers this module's handles in it, and [`crate::observe::http`] serves it (`/metrics`) with the
//! health endpoints (`/healthz`, `/readyz`).
//!
//! # Two kinds of values
//!
//! * **Read at scrape time** from the running agent, by [`DataplaneCollector`], a custom
//!   [`Collector`]: the per-interface entity counters and the parse outcomes (kernel per-CPU
//!   counters, summed over CPUs, exposed as counters: the kernel's values only grow), prefix
//!   counts, map usage, where XDP is attached and readiness. Reading them at scrape time keeps
//!   every series current without a polling task, also across reloads.
//! * **Pushed by the agent** through [`Metrics`]' methods: reloads ([`Metrics::reload_succeeded`],
//!   [`Metrics::reload_failed`]), source fetches ([`Metrics::source_succeeded`],
//!   [`Metrics::source_failed`]), attestation drift ([`Metrics::set_drift`]), lost events
//!   ([`Metrics::events_lost`]) and the applied policy's dates ([`Metrics::set_policy_dates`]:
//!   its next scheduled change, each entity's earliest evidence expiry).
//!
//! # The contract with the agent loop
//!
//! The collector reads the agent through one [`Source`], installed with [`Metrics::set_source`]
//! once the policy is loaded and attached (before that, `embargo_ready` is 0 and `/readyz`
//! answers 503). `run.rs` implements it as a closure over its shared state:
//!
//! ```text
//! metrics.set_source(move |kernel| {
//!     let s = shared.lock().expect("not poisoned");
//!     Ok(Snapshot::read(&s.dataplane, &s.policy, &configured_interfaces, kernel)?)
//! });
//! ```
//!
//! What a source must guarantee, whatever the agent's state looks like:
//! * [`Source::snapshot`] returns one consistent view: the entities, attachments and counters
//!   of the same loaded policy (take them under one lock; [`Snapshot::read`] does the reading);
//! * `entities` are in data-plane index order, the order of the counters;
//! * `configured` lists the interfaces the agent should be attached to right now (readiness is
//!   "every one of them is in `attachments`");
//! * with `kernel == false` it reads no BPF map (readiness probes call it), with `true` it reads
//!   the counters and stats (scrapes call it, on a blocking thread);
//! * it may be called from any thread at any time, concurrently with reloads.
//!
//! # Labels stay bounded
//!
//! `entity` and `evidence` (a network group's `name`, else its evidence `source`) come from the
//! configuration, `interface` from the attachments, `map`, `family`,
//! `direction`, `verdict`, `outcome` and `result` are fixed sets; addresses are never labels.
//! A packet received on an `inside` interface can only count as `outbound` and one on an
//! `outside` interface only as `inbound`, and an entity's action decides its verdict, so for each
//! evidence group and interface the collector emits the one series that can grow (present from
//! zero), plus any other whose kernel counter is not zero (after a reload changed an action,
//! say). With 1,000 single-group entities on 2 interfaces that is 2,000 series per counter
//! family, not 8,000. Groups of one entity with the same label are one series (their sum).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{SystemTime, UNIX_EPOCH},
};

use embargo_abi::{Direction, Stat, Verdict};
use prometheus::{
    Gauge, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    core::{Collector, Desc},
    proto::{self, MetricFamily, MetricType},
};

use crate::{
    config::{Action, Interface, Role},
    dataplane::{Attachment, Dataplane, DataplaneError, GroupCounters},
    policy::{EntityInfo, GroupInfo, Policy},
};

// ---------------------------------------------------------------------------------------------
// Names, types, labels and HELP: the product's metric surface, in one table.

/// Counter or gauge (the only two types Embargo exposes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One metric family as exposed.
#[derive(Clone, Copy, Debug)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

pub const PACKETS: Family = Family {
    name: "embargo_packets_total",
    kind: Kind::Counter,
    labels: &["direction", "entity", "evidence", "interface", "verdict"],
    help: "Packets that matched an entity's prefixes and had its action applied, by entity, evidence (the network group whose prefix matched: its configured name, else its evidence source), direction (outbound: destination matched on an inside interface; inbound: source matched on an outside interface), verdict (dropped|monitored) and receiving interface; sum by (entity) for an entity's total. Kernel per-CPU counters, summed at scrape time.",
};
pub const BYTES: Family = Family {
    name: "embargo_bytes_total",
    kind: Kind::Counter,
    labels: &["direction", "entity", "evidence", "interface", "verdict"],
    help: "Bytes (whole frames as XDP sees them, Ethernet header included) of the packets counted in embargo_packets_total, same labels.",
};
pub const PREFIXES: Family = Family {
    name: "embargo_prefixes",
    kind: Kind::Gauge,
    labels: &["entity", "family"],
    help: "Prefixes of the loaded policy attributed to each entity, by address family (ipv4|ipv6).",
};
pub const MAP_ENTRIES: Family = Family {
    name: "embargo_map_entries",
    kind: Kind::Gauge,
    labels: &["map"],
    help: "Entries in use per BPF map. ipv4_trie/ipv6_trie: 32-bit trie words in use, the 2^16-word direct array plus the subtrees' nodes (8 words each) and leaves; policy: entities loaded; counters: counter slots in use (evidence groups x interfaces x 2 directions x 2 verdicts).",
};
pub const MAP_CAPACITY: Family = Family {
    name: "embargo_map_capacity",
    kind: Kind::Gauge,
    labels: &["map"],
    help: "Entries allocated per BPF map, in the units of embargo_map_entries. ipv4_trie/ipv6_trie: the map's max_entries (64-byte chunks) x 16; policy: max_entries; counters: max_entries (evidence groups x 16 interface slots x 4).",
};
pub const RELOADS: Family = Family {
    name: "embargo_reloads_total",
    kind: Kind::Counter,
    labels: &["result"],
    help: "Policy loads by result (success|failure); the initial load at startup counts as a success. A failed reload leaves the previous policy in place.",
};
pub const POLICY_INFO: Family = Family {
    name: "embargo_policy_info",
    kind: Kind::Gauge,
    labels: &["digest"],
    help: "Always 1; the digest label is the SHA-256 of the loaded table (entities, actions, directions, prefixes), as `embargo check` prints it.",
};
pub const BUILD_INFO: Family = Family {
    name: "embargo_build_info",
    kind: Kind::Gauge,
    labels: &["build_date", "commit", "version"],
    help: "Always 1; the labels say which build of the agent runs: its version, git commit and build date, as `embargo --version` prints them.",
};
pub const LAST_RELOAD: Family = Family {
    name: "embargo_last_reload_timestamp_seconds",
    kind: Kind::Gauge,
    labels: &[],
    help: "Unix time of the last successful policy load or reload.",
};
pub const SOURCE_LAST_SUCCESS: Family = Family {
    name: "embargo_source_last_success_timestamp_seconds",
    kind: Kind::Gauge,
    labels: &["source"],
    help: "Unix time of the last successful fetch of each configured data source.",
};
pub const SOURCE_FETCH_ERRORS: Family = Family {
    name: "embargo_source_fetch_errors_total",
    kind: Kind::Counter,
    labels: &["source"],
    help: "Failed fetches of each configured data source.",
};
pub const SOURCE_SKIPPED_LINES: Family = Family {
    name: "embargo_source_skipped_lines",
    kind: Kind::Gauge,
    labels: &["reason", "source"],
    help: "Lines left out of each data source's last-known-good copy, by reason: invalid_value, empty_value and malformed_row are bad lines skipped with on_bad_line = \"skip\" (embargo fetch and embargo status list them); other_type counts rows whose type_column value is not in types. Every reason is present from zero once a source has content.",
};
pub const DRIFT: Family = Family {
    name: "embargo_attestation_drift_entries",
    kind: Kind::Gauge,
    labels: &[],
    help: "Entries that differ between the attested policy and what the data plane holds (0: no drift).",
};
pub const PARSE_OUTCOMES: Family = Family {
    name: "embargo_parse_outcome_packets_total",
    kind: Kind::Counter,
    labels: &["outcome"],
    help: "Packets by parse or classification outcome other than an entity match (no_role ... egress_forwarded each end a packet, which then passes; vlan, qinq and ipv4_fragment describe packets further). The XDP and TC egress programs count here alike. Kernel per-CPU counters, summed at scrape time.",
};
pub const ATTACH_INFO: Family = Family {
    name: "embargo_xdp_attach_info",
    kind: Kind::Gauge,
    labels: &["interface", "mode"],
    help: "Always 1 for each interface the XDP program is attached to; mode is native or generic.",
};
pub const READY: Family = Family {
    name: "embargo_ready",
    kind: Kind::Gauge,
    labels: &[],
    help: "1 when the policy is loaded and the program attached on every configured interface (what /readyz answers 200 for), else 0.",
};
pub const EVENTS_LOST: Family = Family {
    name: "embargo_events_lost_total",
    kind: Kind::Counter,
    labels: &["entity"],
    help: "Drop and monitor events the data plane did not send, by entity: over the entity's [events] rate limit, or the ring buffer to the agent full. Read from kernel per-CPU counters every second; a replaced data-plane generation's last second is not counted.",
};

pub const NEXT_CHANGE: Family = Family {
    name: "embargo_policy_next_change_timestamp_seconds",
    kind: Kind::Gauge,
    labels: &[],
    help: "Unix time of the next scheduled change of the loaded policy: the next date in the configuration (evidence valid_from or expiry, retrieved + max_age, a designation's listing or delisting) at which the agent reloads on its own. Absent when no date is ahead.",
};
pub const EVIDENCE_EXPIRY: Family = Family {
    name: "embargo_evidence_expiry_timestamp_seconds",
    kind: Kind::Gauge,
    labels: &["entity"],
    help: "Unix time at which the first of an enforced entity's currently counting network groups stops counting (the earliest expiry of its current evidence: expires, or retrieved + max_age). Absent for an entity whose current evidence never expires; see embargo_prefixes for one left with none.",
};
pub const TC_EGRESS_ATTACH_INFO: Family = Family {
    name: "embargo_tc_egress_attach_info",
    kind: Kind::Gauge,
    labels: &["interface", "mode"],
    help: "Always 1 for each interface the TC egress classifier is attached to (outside interfaces with egress = true: host egress enforced); mode is tcx (a TCX link, Linux 6.6+) or netlink (a cls_bpf filter on a clsact qdisc).",
};
pub const SOURCE_ENTRIES: Family = Family {
    name: "embargo_source_entries",
    kind: Kind::Gauge,
    labels: &["source"],
    help: "Entries (prefixes, or designations for a designation feed) in each configured data source's last-known-good copy; 0 while it has none.",
};
pub const SOURCE_INTERVAL: Family = Family {
    name: "embargo_source_interval_seconds",
    kind: Kind::Gauge,
    labels: &["source"],
    help: "The configured refresh interval of each data source (after a failure the next try comes sooner, backing off up to this).",
};
pub const SOURCE_LAST_ATTEMPT: Family = Family {
    name: "embargo_source_last_attempt_timestamp_seconds",
    kind: Kind::Gauge,
    labels: &["source"],
    help: "Unix time of the last fetch of each data source since the agent started, whatever its end (compare with embargo_source_last_success_timestamp_seconds). Absent until the first attempt.",
};
pub const LIST_DESIGNATIONS: Family = Family {
    name: "embargo_list_designations",
    kind: Kind::Gauge,
    labels: &["list"],
    help: "Designations in each configured sanctions list ([[lists]]) as the loaded policy read it.",
};
pub const LIST_PUBLISHED: Family = Family {
    name: "embargo_list_published_timestamp_seconds",
    kind: Kind::Gauge,
    labels: &["list"],
    help: "Unix time (midnight UTC) of the publication date each sanctions list's file states. Absent for a list whose file states none.",
};
pub const LIST_DELISTED: Family = Family {
    name: "embargo_list_delisted_designations",
    kind: Kind::Gauge,
    labels: &["list"],
    help: "Designations named in the entity files that their sanctions list no longer has (delisted: they no longer make an entity enforced), per list; present from zero for every list.",
};

/// Every family Embargo exposes.
pub const FAMILIES: [Family; 26] = [
    BUILD_INFO,
    PACKETS,
    BYTES,
    PREFIXES,
    MAP_ENTRIES,
    MAP_CAPACITY,
    RELOADS,
    POLICY_INFO,
    LAST_RELOAD,
    SOURCE_LAST_SUCCESS,
    SOURCE_FETCH_ERRORS,
    SOURCE_SKIPPED_LINES,
    DRIFT,
    PARSE_OUTCOMES,
    ATTACH_INFO,
    READY,
    EVENTS_LOST,
    NEXT_CHANGE,
    EVIDENCE_EXPIRY,
    TC_EGRESS_ATTACH_INFO,
    SOURCE_ENTRIES,
    SOURCE_INTERVAL,
    SOURCE_LAST_ATTEMPT,
    LIST_DESIGNATIONS,
    LIST_PUBLISHED,
    LIST_DELISTED,
];

/// Labels of the `map` label of [`MAP_ENTRIES`] and [`MAP_CAPACITY`].
pub const MAPS: [&str; 4] = ["ipv4_trie", "ipv6_trie", "policy", "counters"];

// ---------------------------------------------------------------------------------------------
// What the collector reads.

/// Use of one BPF map, in the units [`MAP_ENTRIES`] defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapUsage {
    /// One of [`MAPS`].
    pub map: &'static str,
    pub entries: u64,
    pub capacity: u64,
}

/// Kernel counters read at scrape time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelCounters {
    /// Per counter slot in use: its ifindex and the per-group counters summed over CPUs, as
    /// [`Dataplane::group_counters_by_slot`] returns them.
    pub by_interface: Vec<(u32, Vec<GroupCounters>)>,
    /// Parse outcomes summed over CPUs, indexed by [`Stat`].
    pub stats: Vec<u64>,
}

/// One consistent view of the agent, see the module documentation for the contract.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The loaded policy's entities, in data-plane index order.
    pub entities: Vec<EntityInfo>,
    /// The loaded policy's evidence groups, in data-plane index order (the counters' order).
    pub groups: Vec<GroupInfo>,
    /// Names of the interfaces the agent should be attached to.
    pub configured: Vec<String>,
    /// Where the program is attached.
    pub attachments: Vec<Attachment>,
    /// How the TC egress classifier is attached where it is (`attachments` with `egress`).
    pub tc_api: Option<crate::dataplane::TcApi>,
    /// Map usage, one per [`MAPS`] entry.
    pub maps: Vec<MapUsage>,
    /// Read only when asked for (`kernel == true`).
    pub kernel: Option<KernelCounters>,
}

impl Snapshot {
    /// Reads a snapshot from the loaded data plane and its policy; reads the kernel counters
    /// only if `kernel` (entities x interfaces x 4 + 16 map lookups).
    pub fn read(
        dataplane: &Dataplane,
        policy: &Policy,
        configured: &[Interface],
        kernel: bool,
    ) -> Result<Self, DataplaneError> {
        let kernel = if kernel {
            Some(KernelCounters {
                by_interface: dataplane.group_counters_by_slot()?,
                stats: dataplane.stats()?,
            })
        } else {
            None
        };
        Ok(Self {
            entities: policy.entities.clone(),
            groups: policy.groups.clone(),
            configured: configured.iter().map(|i| i.name.clone()).collect(),
            attachments: dataplane.attachments(),
            tc_api: Some(dataplane.tc_api()),
            maps: map_usage(dataplane, policy.entities.len(), policy.groups.len()),
            kernel,
        })
    }

    /// `Ok` when ready (see [`READY`]), else what is missing.
    pub fn readiness(&self) -> Result<(), NotReady> {
        if self.configured.is_empty() {
            return Err(NotReady::NoInterfaces);
        }
        let missing: Vec<String> = self
            .configured
            .iter()
            .filter(|c| !self.attachments.iter().any(|a| &a.name == *c))
            .cloned()
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(NotReady::NotAttached { missing })
        }
    }
}

fn map_usage(dataplane: &Dataplane, entities: usize, groups: usize) -> Vec<MapUsage> {
    use embargo_abi::{COUNTERS_PER_GROUP, trie};
    let ls = dataplane.load_stats;
    let lanes = u64::from(trie::LANES);
    let slots = dataplane.slots().len() as u64;
    vec![
        MapUsage {
            map: "ipv4_trie",
            entries: ls.v4_words,
            capacity: u64::from(ls.v4_chunks) * lanes,
        },
        MapUsage {
            map: "ipv6_trie",
            entries: ls.v6_words,
            capacity: u64::from(ls.v6_chunks) * lanes,
        },
        MapUsage {
            map: "policy",
            entries: entities as u64,
            capacity: u64::from(ls.policy_capacity),
        },
        MapUsage {
            map: "counters",
            entries: groups as u64 * slots * 4,
            capacity: u64::from(ls.group_capacity) * u64::from(COUNTERS_PER_GROUP),
        },
    ]
}

/// Why the agent is not ready (`/readyz` answers 503 with this text).
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    /// No [`Source`] is installed: the policy is not loaded yet (or no longer).
    #[error("the policy is not loaded yet")]
    NoPolicy,
    /// The agent has no interface to enforce on.
    #[error("no interfaces are configured")]
    NoInterfaces,
    /// Configured interfaces the program is not attached to.
    #[error("the XDP program is not attached on {}", .missing.join(", "))]
    NotAttached { missing: Vec<String> },
    /// The source could not answer.
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// Why a [`Source`] could not answer.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Reading a BPF map failed.
    #[error("reading the data plane: {0}")]
    Dataplane(#[from] DataplaneError),
    /// The agent has no loaded policy to report on right now (between a detach and exit).
    #[error("{0}")]
    Unavailable(String),
}

/// The agent state the collector reads at scrape time; see the module documentation.
pub trait Source: Send + Sync {
    /// One consistent view; reads the kernel counters only if `kernel`.
    fn snapshot(&self, kernel: bool) -> Result<Snapshot, SourceError>;
}

impl<F> Source for F
where
    F: Fn(bool) -> Result<Snapshot, SourceError> + Send + Sync,
{
    fn snapshot(&self, kernel: bool) -> Result<Snapshot, SourceError> {
        self(kernel)
    }
}

type SourceSlot = Arc<RwLock<Option<Arc<dyn Source>>>>;

fn current(slot: &SourceSlot) -> Option<Arc<dyn Source>> {
    slot.read().unwrap_or_else(|p| p.into_inner()).clone()
}

// ---------------------------------------------------------------------------------------------
// The handles.

/// Why the metrics could not be set up (a name registered twice: a programming error).
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("registering metric {name}: {source}")]
    Register {
        name: &'static str,
        #[source]
        source: prometheus::Error,
    },
}

/// The agent's metric handles; cheap to clone (every handle is shared).
#[derive(Clone)]
pub struct Metrics {
    source: SourceSlot,
    reloads: IntCounterVec,
    policy_info: IntGaugeVec,
    last_reload: Gauge,
    source_last_success: GaugeVec,
    source_fetch_errors: IntCounterVec,
    source_skipped_lines: IntGaugeVec,
    drift: IntGauge,
    events_lost: IntCounterVec,
    next_change: GaugeVec,
    evidence_expiry: GaugeVec,
    source_entries: IntGaugeVec,
    source_interval: GaugeVec,
    source_last_attempt: GaugeVec,
    list_designations: IntGaugeVec,
    list_published: GaugeVec,
    list_delisted: IntGaugeVec,
}

/// Builds a handle for family `f` with `build` and registers it in `registry`.
fn handle<C: Collector + Clone + 'static>(
    registry: &Registry,
    f: &Family,
    build: impl FnOnce(Opts, &[&str]) -> prometheus::Result<C>,
) -> Result<C, MetricsError> {
    let err = |source| MetricsError::Register {
        name: f.name,
        source,
    };
    let c = build(Opts::new(f.name, f.help), f.labels).map_err(err)?;
    registry.register(Box::new(c.clone())).map_err(err)?;
    Ok(c)
}

impl Metrics {
    /// Creates the handles and the scrape-time collector and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let source: SourceSlot = Arc::new(RwLock::new(None));
        let reloads = handle(registry, &RELOADS, IntCounterVec::new)?;
        // Both results exist from the start, so `increase(...[5m])` sees the first failure.
        for result in ["success", "failure"] {
            reloads.with_label_values(&[result]);
        }
        // Set once: a build does not change while it runs.
        handle(registry, &BUILD_INFO, IntGaugeVec::new)?
            .with_label_values(&[
                crate::build_info::BUILD_DATE,
                crate::build_info::COMMIT,
                crate::build_info::VERSION,
            ])
            .set(1);
        let m = Self {
            reloads,
            policy_info: handle(registry, &POLICY_INFO, IntGaugeVec::new)?,
            last_reload: handle(registry, &LAST_RELOAD, |o, _| Gauge::with_opts(o))?,
            source_last_success: handle(registry, &SOURCE_LAST_SUCCESS, GaugeVec::new)?,
            source_fetch_errors: handle(registry, &SOURCE_FETCH_ERRORS, IntCounterVec::new)?,
            source_skipped_lines: handle(registry, &SOURCE_SKIPPED_LINES, IntGaugeVec::new)?,
            drift: handle(registry, &DRIFT, |o, _| IntGauge::with_opts(o))?,
            events_lost: handle(registry, &EVENTS_LOST, IntCounterVec::new)?,
            next_change: handle(registry, &NEXT_CHANGE, GaugeVec::new)?,
            evidence_expiry: handle(registry, &EVIDENCE_EXPIRY, GaugeVec::new)?,
            source_entries: handle(registry, &SOURCE_ENTRIES, IntGaugeVec::new)?,
            source_interval: handle(registry, &SOURCE_INTERVAL, GaugeVec::new)?,
            source_last_attempt: handle(registry, &SOURCE_LAST_ATTEMPT, GaugeVec::new)?,
            list_designations: handle(registry, &LIST_DESIGNATIONS, IntGaugeVec::new)?,
            list_published: handle(registry, &LIST_PUBLISHED, GaugeVec::new)?,
            list_delisted: handle(registry, &LIST_DELISTED, IntGaugeVec::new)?,
            source: Arc::clone(&source),
        };
        let err = |source| MetricsError::Register {
            name: "the data-plane collector",
            source,
        };
        let collector = DataplaneCollector::new(source).map_err(err)?;
        registry.register(Box::new(collector)).map_err(err)?;
        // The standard process_* series (CPU, memory, descriptors and their limit, start time),
        // read from /proc/self at scrape time, as every Prometheus client exports them.
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .map_err(|source| MetricsError::Register {
                name: "the process collector",
                source,
            })?;
        Ok(m)
    }

    /// Installs the agent state the collector and `/readyz` read (see the module docs).
    /// Replaces any earlier source.
    pub fn set_source(&self, source: impl Source + 'static) {
        *self.source.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(source));
    }

    /// Removes the source: `embargo_ready` drops to 0 and the data-plane series disappear.
    pub fn clear_source(&self) {
        *self.source.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// `Ok` when ready (see [`READY`]), else why not, for `/readyz`. Reads no BPF map.
    pub fn readiness(&self) -> Result<(), NotReady> {
        let Some(source) = current(&self.source) else {
            return Err(NotReady::NoPolicy);
        };
        source.snapshot(false)?.readiness()
    }

    /// A policy was loaded (at startup) or reloaded and is in force: `digest` is
    /// [`Compiled::digest`](crate::policy::compile::Compiled::digest), `unix_ts` seconds since the epoch.
    pub fn reload_succeeded(&self, unix_ts: f64, digest: &str) {
        self.reloads.with_label_values(&["success"]).inc();
        self.last_reload.set(unix_ts);
        // One series: the digest in force.
        self.policy_info.reset();
        self.policy_info.with_label_values(&[digest]).set(1);
    }

    /// A reload was refused or failed; the previous policy stays in force.
    pub fn reload_failed(&self) {
        self.reloads.with_label_values(&["failure"]).inc();
    }

    /// Source `name` (from the configuration) was fetched successfully at `unix_ts`.
    pub fn source_succeeded(&self, name: &str, unix_ts: f64) {
        self.source_last_success
            .with_label_values(&[name])
            .set(unix_ts);
        // The error counter exists from zero once a source is known.
        self.source_fetch_errors.with_label_values(&[name]);
    }

    /// What source `name`'s last-known-good copy left out, by reason (every reason set, from
    /// zero).
    pub fn source_skipped(&self, name: &str, skipped: &crate::inputs::sources::parse::Skipped) {
        for reason in crate::inputs::sources::parse::SkipReason::ALL {
            let n = skipped.by_reason.get(&reason).copied().unwrap_or(0);
            self.source_skipped_lines
                .with_label_values(&[reason.label(), name])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Source `name`'s configured refresh interval, seconds (set once at start: the sources
    /// are fetched with the configuration the agent started with).
    pub fn source_interval(&self, name: &str, seconds: f64) {
        self.source_interval.with_label_values(&[name]).set(seconds);
    }

    /// Source `name`'s state now: the entries of its last-known-good copy (0: none) and its
    /// last fetch attempt (`None`: not tried yet).
    pub fn source_state(&self, name: &str, entries: usize, last_attempt: Option<f64>) {
        self.source_entries
            .with_label_values(&[name])
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
        if let Some(t) = last_attempt {
            self.source_last_attempt.with_label_values(&[name]).set(t);
        }
    }

    /// The sanctions lists of the policy now in force: per list, its designations, its
    /// publication date (Unix seconds; `None`: the file states none) and how many designations
    /// the entity files name that it no longer has. Replaces what an earlier policy set.
    pub fn set_lists(&self, lists: &[(&str, usize, Option<f64>, usize)]) {
        self.list_designations.reset();
        self.list_published.reset();
        self.list_delisted.reset();
        for (name, designations, published, delisted) in lists {
            let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
            self.list_designations
                .with_label_values(&[name])
                .set(n(*designations));
            if let Some(t) = published {
                self.list_published.with_label_values(&[name]).set(*t);
            }
            self.list_delisted
                .with_label_values(&[name])
                .set(n(*delisted));
        }
    }

    /// [`Metrics::set_lists`] from a compiled policy.
    pub fn policy_lists(&self, compiled: &crate::policy::compile::Compiled) {
        let lists: Vec<(&str, usize, Option<f64>, usize)> = compiled
            .report
            .lists
            .iter()
            .map(|l| {
                let published = l
                    .published
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc().timestamp() as f64);
                let delisted = compiled
                    .listed
                    .iter()
                    .filter(|st| st.list == l.name && st.delisted_on.is_some())
                    .count();
                (l.name.as_str(), l.designations, published, delisted)
            })
            .collect();
        self.set_lists(&lists);
    }

    /// Fetching source `name` (from the configuration) failed.
    pub fn source_failed(&self, name: &str) {
        self.source_fetch_errors.with_label_values(&[name]).inc();
    }

    /// Entries that differ between the attested policy and the data plane.
    pub fn set_drift(&self, entries: u64) {
        self.drift.set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    /// The dates of the policy now in force: its next scheduled change (`None`: no date
    /// ahead) and, per enforced entity (ids from the configuration), the earliest expiry of
    /// its current evidence; all Unix seconds. Replaces what an earlier policy set.
    pub fn set_policy_dates(&self, next_change: Option<f64>, evidence_expiry: &[(&str, f64)]) {
        self.next_change.reset();
        if let Some(t) = next_change {
            self.next_change.with_label_values::<&str>(&[]).set(t);
        }
        self.evidence_expiry.reset();
        for (entity, t) in evidence_expiry {
            self.evidence_expiry.with_label_values(&[entity]).set(*t);
        }
    }

    /// [`Metrics::set_policy_dates`] from a compiled policy.
    pub fn policy_dates(&self, compiled: &crate::policy::compile::Compiled) {
        let ts = |t: chrono::DateTime<chrono::Utc>| t.timestamp() as f64;
        let expiry: Vec<(&str, f64)> = compiled
            .entities
            .iter()
            .filter_map(|e| e.evidence_expires.map(|t| (e.id.as_str(), ts(t))))
            .collect();
        self.set_policy_dates(compiled.next_change.as_ref().map(|n| ts(n.at)), &expiry);
    }

    /// `n` match events of `entity` (an entity id from the configuration) were lost.
    pub fn events_lost(&self, entity: &str, n: u64) {
        self.events_lost.with_label_values(&[entity]).inc_by(n);
    }
}

/// Seconds since the Unix epoch, for the timestamp arguments above.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Renders every family in `registry` in the text exposition format.
pub fn render(registry: &Registry) -> Result<String, prometheus::Error> {
    prometheus::TextEncoder::new().encode_to_string(&registry.gather())
}

// ---------------------------------------------------------------------------------------------
// The scrape-time collector.

/// Reads the [`Source`] at collect time and emits the data-plane families (see
/// [`DataplaneCollector::FAMILIES`]).
pub struct DataplaneCollector {
    source: SourceSlot,
    descs: Vec<Desc>,
}

impl DataplaneCollector {
    /// The families this collector emits.
    pub const FAMILIES: [Family; 9] = [
        PACKETS,
        BYTES,
        PARSE_OUTCOMES,
        PREFIXES,
        MAP_ENTRIES,
        MAP_CAPACITY,
        ATTACH_INFO,
        TC_EGRESS_ATTACH_INFO,
        READY,
    ];

    fn new(source: SourceSlot) -> Result<Self, prometheus::Error> {
        let descs = Self::FAMILIES
            .iter()
            .map(|f| {
                Desc::new(
                    f.name.into(),
                    f.help.into(),
                    f.labels.iter().map(|l| (*l).to_owned()).collect(),
                    HashMap::new(),
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { source, descs })
    }
}

impl Collector for DataplaneCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let snapshot = match current(&self.source).map(|s| s.snapshot(true)) {
            None => None,
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "metrics: reading the agent state failed");
                None
            }
        };
        families(snapshot.as_ref())
    }
}

/// The data-plane families for `snapshot` (`None`: nothing loaded, only `embargo_ready` 0).
pub fn families(snapshot: Option<&Snapshot>) -> Vec<MetricFamily> {
    let ready = snapshot.is_some_and(|s| s.readiness().is_ok());
    let mut out = vec![family(
        &READY,
        vec![sample(&[], if ready { 1.0 } else { 0.0 }, Kind::Gauge)],
    )];
    let Some(s) = snapshot else {
        return out;
    };
    out.push(family(
        &PREFIXES,
        s.entities
            .iter()
            .filter(|e| !e.retired)
            .flat_map(|e| {
                [("ipv4", e.prefixes_v4), ("ipv6", e.prefixes_v6)].map(|(fam, n)| {
                    sample(&[("entity", &e.id), ("family", fam)], n as f64, Kind::Gauge)
                })
            })
            .collect(),
    ));
    for (f, value) in [
        (
            &MAP_ENTRIES,
            (|m: &MapUsage| m.entries) as fn(&MapUsage) -> u64,
        ),
        (&MAP_CAPACITY, |m: &MapUsage| m.capacity),
    ] {
        out.push(family(
            f,
            s.maps
                .iter()
                .map(|m| sample(&[("map", m.map)], value(m) as f64, Kind::Gauge))
                .collect(),
        ));
    }
    out.push(family(
        &ATTACH_INFO,
        s.attachments
            .iter()
            .map(|a| {
                sample(
                    &[("interface", &a.name), ("mode", a.mode.as_str())],
                    1.0,
                    Kind::Gauge,
                )
            })
            .collect(),
    ));
    out.push(family(
        &TC_EGRESS_ATTACH_INFO,
        s.attachments
            .iter()
            .filter(|a| a.egress)
            .map(|a| {
                let mode = s
                    .tc_api
                    .map_or_else(|| "unknown".to_owned(), |m| m.to_string());
                sample(&[("interface", &a.name), ("mode", &mode)], 1.0, Kind::Gauge)
            })
            .collect(),
    ));
    if let Some(k) = &s.kernel {
        out.push(family(
            &PARSE_OUTCOMES,
            Stat::ALL
                .iter()
                .zip(&k.stats)
                .map(|((_, label), n)| sample(&[("outcome", label)], *n as f64, Kind::Counter))
                .collect(),
        ));
        let (packets, bytes) = entity_counters(s, k);
        out.push(family(&PACKETS, packets));
        out.push(family(&BYTES, bytes));
    }
    out
}

/// The packets and bytes series: see "Labels stay bounded" in the module documentation.
fn entity_counters(s: &Snapshot, k: &KernelCounters) -> (Vec<proto::Metric>, Vec<proto::Metric>) {
    let mut packets = Vec::new();
    let mut bytes = Vec::new();
    for (ifindex, per_group) in &k.by_interface {
        let attachment = s.attachments.iter().find(|a| a.ifindex == *ifindex);
        // A slot with a role but no attachment (tests set roles directly): named by ifindex.
        let name = attachment.map_or_else(|| format!("ifindex{ifindex}"), |a| a.name.clone());
        // The directions the interface can count: its role's, and outbound with host egress.
        let live_direction = |d: Direction| {
            attachment.is_some_and(|a| match a.role {
                Role::Inside => d == Direction::Outbound,
                Role::Outside => d == Direction::Inbound || (a.egress && d == Direction::Outbound),
            })
        };
        // By entity and label, in group order: groups sharing a label are one series.
        let mut series: Vec<((u32, &str), GroupCounters, bool)> = Vec::new();
        let mut at: HashMap<(u32, &str), usize> = HashMap::new();
        for (g, c) in s.groups.iter().zip(per_group) {
            if s.entities.get(g.entity as usize).is_none_or(|e| e.retired) {
                continue;
            }
            let key = (g.entity, g.label.as_str());
            match at.get(&key) {
                Some(&i) => {
                    let (_, total, live) = &mut series[i];
                    total.add(c);
                    *live |= !g.retired;
                }
                None => {
                    at.insert(key, series.len());
                    series.push((key, *c, !g.retired));
                }
            }
        }
        for ((entity, label), counters, live_group) in &series {
            let entity = &s.entities[*entity as usize];
            let live_verdict = match entity.action {
                Action::Drop => Verdict::Dropped,
                Action::Monitor => Verdict::Monitored,
            };
            for d in Direction::ALL {
                for v in Verdict::ALL {
                    let c = counters.get(d, v);
                    let live = *live_group && live_direction(d) && v == live_verdict;
                    if !live && c.packets == 0 && c.bytes == 0 {
                        continue;
                    }
                    let labels = [
                        ("direction", d.label()),
                        ("entity", entity.id.as_str()),
                        ("evidence", label),
                        ("interface", name.as_str()),
                        ("verdict", v.label()),
                    ];
                    packets.push(sample(&labels, c.packets as f64, Kind::Counter));
                    bytes.push(sample(&labels, c.bytes as f64, Kind::Counter));
                }
            }
        }
    }
    (packets, bytes)
}

fn family(f: &Family, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut mf = MetricFamily::default();
    mf.set_name(f.name.to_owned());
    mf.set_help(f.help.to_owned());
    mf.set_field_type(match f.kind {
        Kind::Counter => MetricType::COUNTER,
        Kind::Gauge => MetricType::GAUGE,
    });
    mf.set_metric(metrics);
    mf
}

fn sample(labels: &[(&str, &str)], value: f64, kind: Kind) -> proto::Metric {
    let mut m = proto::Metric::from_label(
        labels
            .iter()
            .map(|(n, v)| {
                let mut l = proto::LabelPair::default();
                l.set_name((*n).to_owned());
                l.set_value((*v).to_owned());
                l
            })
            .collect(),
    );
    match kind {
        Kind::Counter => {
            let mut c = proto::Counter::default();
            c.set_value(value);
            m.set_counter(c);
        }
        Kind::Gauge => {
            let mut g = proto::Gauge::default();
            g.set_value(value);
            m.set_gauge(g);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use embargo_abi::Counter;

    use super::*;
    use crate::{
        config::DirectionSet,
        dataplane::{AttachMode, EntityCounters},
    };

    fn entity(id: &str, action: Action, v4: usize, v6: usize) -> EntityInfo {
        EntityInfo {
            id: id.into(),
            name: format!("{id} Ltd"),
            action,
            direction: DirectionSet::Both,
            prefixes_v4: v4,
            prefixes_v6: v6,
            retired: false,
        }
    }

    fn group(entity: u32, label: &str) -> GroupInfo {
        GroupInfo {
            entity,
            key: format!("name:{label}"),
            label: label.into(),
            source: label.into(),
            retired: false,
        }
    }

    fn attachment(name: &str, ifindex: u32, role: Role, mode: AttachMode) -> Attachment {
        Attachment {
            name: name.into(),
            ifindex,
            role,
            mode,
            egress: false,
            link: embargo_abi::Link::Ethernet,
        }
    }

    fn counters(slots: &[(Direction, Verdict, u64, u64)]) -> EntityCounters {
        let mut c = EntityCounters::default();
        for (d, v, packets, bytes) in slots {
            c.slots[*d as usize][*v as usize] = Counter {
                packets: *packets,
                bytes: *bytes,
            };
        }
        c
    }

    /// Two entities (drop, monitor) on eth1 (inside, ifindex 4) and eth0 (outside, ifindex 3).
    fn snapshot() -> Snapshot {
        use Direction::*;
        use Verdict::*;
        let mut stats = vec![0; Stat::COUNT as usize];
        for (i, s) in stats.iter_mut().enumerate() {
            *s = 100 + i as u64;
        }
        Snapshot {
            entities: vec![
                entity("acme", Action::Drop, 3, 1),
                entity("globex", Action::Monitor, 2, 0),
            ],
            groups: vec![
                group(0, "cisa-aa24"),
                group(1, "https://example.org/globex"),
            ],
            configured: vec!["eth1".into(), "eth0".into()],
            attachments: vec![
                attachment("eth1", 4, Role::Inside, AttachMode::Native),
                attachment("eth0", 3, Role::Outside, AttachMode::Generic),
            ],
            tc_api: Some(crate::dataplane::TcApi::Netlink),
            maps: vec![
                MapUsage {
                    map: "ipv4_trie",
                    entries: 16_777_232,
                    capacity: 16_777_232,
                },
                MapUsage {
                    map: "ipv6_trie",
                    entries: 0,
                    capacity: 16,
                },
                MapUsage {
                    map: "policy",
                    entries: 2,
                    capacity: 2,
                },
                MapUsage {
                    map: "counters",
                    entries: 16,
                    capacity: 128,
                },
            ],
            kernel: Some(KernelCounters {
                by_interface: vec![
                    (
                        4,
                        vec![
                            counters(&[(Outbound, Dropped, 5, 530)]),
                            // Left from before a reload turned globex from drop to monitor.
                            counters(&[(Outbound, Monitored, 2, 212), (Outbound, Dropped, 1, 106)]),
                        ],
                    ),
                    (
                        3,
                        vec![counters(&[(Inbound, Dropped, 7, 742)]), counters(&[])],
                    ),
                ],
                stats,
            }),
        }
    }

    /// A registry with the handles registered and `snapshot` (or an error) as the source.
    fn registry_with(source: Option<Result<Snapshot, String>>) -> (Registry, Metrics) {
        let registry = Registry::new();
        let metrics = Metrics::register(&registry).unwrap();
        if let Some(result) = source {
            metrics.set_source(move |kernel: bool| match &result {
                Ok(s) => {
                    let mut s = s.clone();
                    if !kernel {
                        s.kernel = None;
                    }
                    Ok(s)
                }
                Err(e) => Err(SourceError::Unavailable(e.clone())),
            });
        }
        (registry, metrics)
    }

    /// One parsed exposition: HELP and TYPE per family, and samples as
    /// (name, sorted labels) -> value.
    #[derive(Default)]
    struct Parsed {
        help: BTreeMap<String, String>,
        types: BTreeMap<String, String>,
        samples: BTreeMap<(String, BTreeMap<String, String>), f64>,
    }

    impl Parsed {
        fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
            let key = (
                name.to_owned(),
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            );
            self.samples.get(&key).copied()
        }

        fn series(&self, name: &str) -> Vec<&BTreeMap<String, String>> {
            self.samples
                .keys()
                .filter(|(n, _)| n == name)
                .map(|(_, l)| l)
                .collect()
        }
    }

    /// A strict reader of the text format as this module writes it (no escapes in values,
    /// which the labels here never need).
    fn parse(text: &str) -> Parsed {
        let mut p = Parsed::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap();
                assert!(p.help.insert(name.into(), help.into()).is_none(), "{line}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(p.types.insert(name.into(), kind.into()).is_none(), "{line}");
            } else {
                let (series, value) = line.rsplit_once(' ').unwrap();
                let (name, labels) = match series.split_once('{') {
                    Some((n, l)) => (n, l.strip_suffix('}').unwrap()),
                    None => (series, ""),
                };
                let labels: BTreeMap<String, String> = labels
                    .split(',')
                    .filter(|l| !l.is_empty())
                    .map(|l| {
                        let (k, v) = l.split_once('=').unwrap();
                        (k.into(), v.trim_matches('"').into())
                    })
                    .collect();
                assert!(p.types.contains_key(name), "sample before its TYPE: {line}");
                let key = (name.to_owned(), labels);
                assert!(!p.samples.contains_key(&key), "duplicate series: {line}");
                p.samples.insert(key, value.parse().unwrap());
            }
        }
        p
    }

    fn scrape(registry: &Registry) -> Parsed {
        parse(&render(registry).unwrap())
    }

    /// Every handle fed once, so every family has a series.
    fn feed(m: &Metrics) {
        m.reload_succeeded(1_700_000_000.5, "d1g35t");
        m.source_succeeded("ofsi", 1_700_000_100.0);
        m.source_failed("ofac");
        let mut skipped = crate::inputs::sources::parse::Skipped::default();
        skipped
            .by_reason
            .insert(crate::inputs::sources::parse::SkipReason::InvalidValue, 2);
        m.source_skipped("ofsi", &skipped);
        m.set_drift(3);
        m.events_lost("acme", 9);
        m.set_policy_dates(Some(1_700_086_400.0), &[("acme", 1_700_172_800.0)]);
        m.source_interval("ofsi", 3600.0);
        m.source_state("ofsi", 120, Some(1_700_000_100.0));
        m.set_lists(&[("uk", 4000, Some(1_764_979_200.0), 2)]);
    }

    #[test]
    fn every_family_has_its_name_type_help_and_labels() {
        // Host egress on eth0, so the TC egress family has a series too.
        let mut s = snapshot();
        s.attachments[1].egress = true;
        let (registry, metrics) = registry_with(Some(Ok(s)));
        feed(&metrics);
        let p = scrape(&registry);
        let documented: BTreeSet<&str> = FAMILIES.iter().map(|f| f.name).collect();
        // The process collector's standard families come on top of Embargo's own.
        let (process, exposed): (BTreeSet<&str>, BTreeSet<&str>) = p
            .types
            .keys()
            .map(String::as_str)
            .partition(|n| n.starts_with("process_"));
        assert_eq!(exposed, documented);
        for standard in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            assert!(
                process.contains(standard),
                "{standard} missing: {process:?}"
            );
        }
        for f in FAMILIES {
            let kind = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            assert_eq!(p.types[f.name], kind, "{}", f.name);
            assert_eq!(p.help[f.name], f.help, "{}", f.name);
            assert!(!f.help.is_empty(), "{}", f.name);
            // Counters end in _total, nothing else does.
            assert_eq!(
                f.name.ends_with("_total"),
                f.kind == Kind::Counter,
                "{}",
                f.name
            );
            let series = p.series(f.name);
            assert!(!series.is_empty(), "{} has no series", f.name);
            for labels in series {
                let names: Vec<&str> = labels.keys().map(String::as_str).collect();
                assert_eq!(names, f.labels, "{}", f.name);
            }
        }
    }

    /// A policy's dates replace the previous policy's: a change no longer ahead and an entity
    /// no longer expiring leave no series behind.
    #[test]
    fn policy_dates_follow_the_policy_in_force() {
        let (registry, m) = registry_with(Some(Ok(snapshot())));
        m.set_policy_dates(
            Some(1_800_000_000.0),
            &[("acme", 1_800_000_000.0), ("globex", 1_900_000_000.0)],
        );
        let p = scrape(&registry);
        assert_eq!(p.series(NEXT_CHANGE.name).len(), 1);
        assert_eq!(p.series(EVIDENCE_EXPIRY.name).len(), 2);
        m.set_policy_dates(None, &[("globex", 1_900_000_000.0)]);
        let p = scrape(&registry);
        assert!(p.series(NEXT_CHANGE.name).is_empty());
        assert_eq!(p.series(EVIDENCE_EXPIRY.name).len(), 1);
        assert_eq!(
            p.get(EVIDENCE_EXPIRY.name, &[("entity", "globex")]),
            Some(1_900_000_000.0)
        );
    }

    #[test]
    fn entity_counters_are_per_interface_and_keep_every_nonzero_series() {
        let (registry, _) = registry_with(Some(Ok(snapshot())));
        let p = scrape(&registry);
        let get = |name, entity, dir, verdict, iface| {
            p.get(
                name,
                &[
                    ("direction", dir),
                    ("entity", entity),
                    ("evidence", evidence_of(entity)),
                    ("interface", iface),
                    ("verdict", verdict),
                ],
            )
        };
        let pk = "embargo_packets_total";
        assert_eq!(get(pk, "acme", "outbound", "dropped", "eth1"), Some(5.0));
        assert_eq!(
            get("embargo_bytes_total", "acme", "outbound", "dropped", "eth1"),
            Some(530.0)
        );
        assert_eq!(get(pk, "acme", "inbound", "dropped", "eth0"), Some(7.0));
        assert_eq!(
            get(pk, "globex", "outbound", "monitored", "eth1"),
            Some(2.0)
        );
        // Not the current action, but counted before: kept.
        assert_eq!(get(pk, "globex", "outbound", "dropped", "eth1"), Some(1.0));
        // The series that can grow exists from zero.
        assert_eq!(get(pk, "globex", "inbound", "monitored", "eth0"), Some(0.0));
        // Ones that cannot (inbound on an inside interface, monitored for a drop entity) and
        // are zero are left out.
        assert_eq!(get(pk, "acme", "inbound", "dropped", "eth1"), None);
        assert_eq!(get(pk, "acme", "outbound", "monitored", "eth1"), None);
        assert_eq!(get(pk, "globex", "outbound", "monitored", "eth0"), None);
        assert_eq!(p.series(pk).len(), 5);
        assert_eq!(p.series("embargo_bytes_total").len(), 5);
    }

    /// The `evidence` label of the one group of each entity of [`snapshot`].
    fn evidence_of(entity: &str) -> &'static str {
        match entity {
            "acme" => "cisa-aa24",
            _ => "https://example.org/globex",
        }
    }

    #[test]
    fn counters_are_per_evidence_group_and_sum_to_the_entity() {
        use Direction::*;
        use Verdict::*;
        // acme gets a second group (named), and a third that shares the first's label (an
        // unnamed group with the same source): its counts join that series.
        let mut s = snapshot();
        s.groups.push(group(0, "whois"));
        s.groups.push(group(0, "cisa-aa24"));
        let k = s.kernel.as_mut().unwrap();
        k.by_interface[0]
            .1
            .push(counters(&[(Outbound, Dropped, 3, 300)]));
        k.by_interface[0]
            .1
            .push(counters(&[(Outbound, Dropped, 4, 400)]));
        k.by_interface[1].1.extend([counters(&[]), counters(&[])]);
        let (registry, _) = registry_with(Some(Ok(s)));
        let p = scrape(&registry);
        let get = |evidence| {
            p.get(
                "embargo_packets_total",
                &[
                    ("direction", "outbound"),
                    ("entity", "acme"),
                    ("evidence", evidence),
                    ("interface", "eth1"),
                    ("verdict", "dropped"),
                ],
            )
        };
        assert_eq!(get("cisa-aa24"), Some(9.0), "5 + 4: one series per label");
        assert_eq!(get("whois"), Some(3.0));
        // sum by (entity): the entity's total, as before groups.
        let acme: f64 = p
            .samples
            .iter()
            .filter(|((n, l), _)| {
                n == "embargo_packets_total"
                    && l["entity"] == "acme"
                    && l["interface"] == "eth1"
                    && l["verdict"] == "dropped"
            })
            .map(|(_, v)| v)
            .sum();
        assert_eq!(acme, 12.0);
        // acme's inbound series on eth0 can grow for both of its labels.
        assert_eq!(p.series("embargo_packets_total").len(), 7);
    }

    #[test]
    fn host_egress_makes_outbound_live_on_an_outside_interface() {
        let mut s = snapshot();
        s.attachments[1].egress = true;
        let (registry, _) = registry_with(Some(Ok(s)));
        let p = scrape(&registry);
        let get = |entity, dir, verdict| {
            p.get(
                "embargo_packets_total",
                &[
                    ("direction", dir),
                    ("entity", entity),
                    ("evidence", evidence_of(entity)),
                    ("interface", "eth0"),
                    ("verdict", verdict),
                ],
            )
        };
        // What the host sends out of eth0 is matched by destination: outbound can grow there.
        assert_eq!(get("acme", "outbound", "dropped"), Some(0.0));
        assert_eq!(get("globex", "outbound", "monitored"), Some(0.0));
        assert_eq!(get("acme", "inbound", "dropped"), Some(7.0));
        assert_eq!(get("globex", "inbound", "monitored"), Some(0.0));
        // The two outbound series come on top of the five without egress.
        assert_eq!(p.series("embargo_packets_total").len(), 7);
        // The TC egress classifier, on eth0 only, in the data plane's mode.
        assert_eq!(
            p.get(
                TC_EGRESS_ATTACH_INFO.name,
                &[("interface", "eth0"), ("mode", "netlink")]
            ),
            Some(1.0)
        );
        assert_eq!(p.series(TC_EGRESS_ATTACH_INFO.name).len(), 1);
    }

    /// Without host egress there is no TC egress series; the sources' and lists' state lands in
    /// its series, and a policy's lists replace the previous policy's.
    #[test]
    fn tc_egress_sources_and_lists() {
        let (registry, m) = registry_with(Some(Ok(snapshot())));
        m.source_interval("ofsi", 3600.0);
        m.source_state("ofsi", 0, None);
        m.source_state("ofac", 12, Some(1_700_000_000.0));
        m.set_lists(&[("uk", 4000, Some(1_764_979_200.0), 2), ("us", 10, None, 0)]);
        let p = scrape(&registry);
        assert!(p.series(TC_EGRESS_ATTACH_INFO.name).is_empty());
        let src = |f: &Family, n| p.get(f.name, &[("source", n)]);
        assert_eq!(src(&SOURCE_INTERVAL, "ofsi"), Some(3600.0));
        assert_eq!(src(&SOURCE_ENTRIES, "ofsi"), Some(0.0));
        assert_eq!(src(&SOURCE_ENTRIES, "ofac"), Some(12.0));
        // Never tried: no attempt series (not a zero that would read as 1970).
        assert_eq!(src(&SOURCE_LAST_ATTEMPT, "ofsi"), None);
        assert_eq!(src(&SOURCE_LAST_ATTEMPT, "ofac"), Some(1_700_000_000.0));
        let list = |f: &Family, n| p.get(f.name, &[("list", n)]);
        assert_eq!(list(&LIST_DESIGNATIONS, "uk"), Some(4000.0));
        assert_eq!(list(&LIST_PUBLISHED, "uk"), Some(1_764_979_200.0));
        assert_eq!(list(&LIST_DELISTED, "uk"), Some(2.0));
        assert_eq!(list(&LIST_PUBLISHED, "us"), None);
        assert_eq!(list(&LIST_DELISTED, "us"), Some(0.0));
        m.set_lists(&[("us", 11, None, 1)]);
        let p = scrape(&registry);
        assert_eq!(p.series(LIST_DESIGNATIONS.name).len(), 1);
        assert!(p.series(LIST_PUBLISHED.name).is_empty());
        assert_eq!(p.get(LIST_DELISTED.name, &[("list", "us")]), Some(1.0));
    }

    #[test]
    fn gauges_describe_the_loaded_policy_and_attachments() {
        let (registry, _) = registry_with(Some(Ok(snapshot())));
        let p = scrape(&registry);
        let pre = |e, f| p.get("embargo_prefixes", &[("entity", e), ("family", f)]);
        assert_eq!(pre("acme", "ipv4"), Some(3.0));
        assert_eq!(pre("acme", "ipv6"), Some(1.0));
        assert_eq!(pre("globex", "ipv4"), Some(2.0));
        assert_eq!(pre("globex", "ipv6"), Some(0.0));
        assert_eq!(
            p.get("embargo_map_entries", &[("map", "counters")]),
            Some(16.0)
        );
        assert_eq!(
            p.get("embargo_map_capacity", &[("map", "ipv6_trie")]),
            Some(16.0)
        );
        assert_eq!(p.series("embargo_map_entries").len(), MAPS.len());
        let attach = |i, m| p.get("embargo_xdp_attach_info", &[("interface", i), ("mode", m)]);
        assert_eq!(attach("eth1", "native"), Some(1.0));
        assert_eq!(attach("eth0", "generic"), Some(1.0));
        assert_eq!(p.series("embargo_xdp_attach_info").len(), 2);
        assert_eq!(p.get("embargo_ready", &[]), Some(1.0));
        for (i, (_, label)) in Stat::ALL.iter().enumerate() {
            assert_eq!(
                p.get("embargo_parse_outcome_packets_total", &[("outcome", label)]),
                Some(100.0 + i as f64),
                "{label}"
            );
        }
        assert_eq!(
            p.series("embargo_parse_outcome_packets_total").len(),
            Stat::COUNT as usize
        );
    }

    #[test]
    fn build_info_names_the_running_build() {
        let (registry, _) = registry_with(None);
        let p = scrape(&registry);
        let labels = [
            ("build_date", crate::build_info::BUILD_DATE),
            ("commit", crate::build_info::COMMIT),
            ("version", crate::build_info::VERSION),
        ];
        assert_eq!(p.get("embargo_build_info", &labels), Some(1.0));
    }

    #[test]
    fn pushed_values_land_in_their_series() {
        let (registry, metrics) = registry_with(None);
        let p = scrape(&registry);
        // Both reload results exist from the start.
        assert_eq!(
            p.get("embargo_reloads_total", &[("result", "success")]),
            Some(0.0)
        );
        assert_eq!(
            p.get("embargo_reloads_total", &[("result", "failure")]),
            Some(0.0)
        );
        feed(&metrics);
        metrics.reload_failed();
        metrics.reload_succeeded(1_700_000_500.0, "n3w");
        metrics.source_failed("ofac");
        metrics.events_lost("acme", 1);
        let p = scrape(&registry);
        assert_eq!(
            p.get("embargo_reloads_total", &[("result", "success")]),
            Some(2.0)
        );
        assert_eq!(
            p.get("embargo_reloads_total", &[("result", "failure")]),
            Some(1.0)
        );
        // Only the digest in force.
        assert_eq!(p.series("embargo_policy_info").len(), 1);
        assert_eq!(
            p.get("embargo_policy_info", &[("digest", "n3w")]),
            Some(1.0)
        );
        assert_eq!(
            p.get("embargo_last_reload_timestamp_seconds", &[]),
            Some(1_700_000_500.0)
        );
        let src = "embargo_source_last_success_timestamp_seconds";
        assert_eq!(p.get(src, &[("source", "ofsi")]), Some(1_700_000_100.0));
        assert_eq!(p.get(src, &[("source", "ofac")]), None);
        let errs = "embargo_source_fetch_errors_total";
        assert_eq!(p.get(errs, &[("source", "ofac")]), Some(2.0));
        assert_eq!(p.get(errs, &[("source", "ofsi")]), Some(0.0));
        // Skipped lines: every reason present, from zero.
        let skipped = "embargo_source_skipped_lines";
        let got = |reason: &str| p.get(skipped, &[("reason", reason), ("source", "ofsi")]);
        assert_eq!(got("invalid_value"), Some(2.0));
        for reason in ["empty_value", "malformed_row", "other_type"] {
            assert_eq!(got(reason), Some(0.0), "{reason}");
        }
        assert_eq!(p.get("embargo_attestation_drift_entries", &[]), Some(3.0));
        assert_eq!(
            p.get("embargo_events_lost_total", &[("entity", "acme")]),
            Some(10.0)
        );
    }

    /// Readiness as `/readyz` says it.
    fn ready(metrics: &Metrics) -> Result<(), String> {
        metrics.readiness().map_err(|e| e.to_string())
    }

    #[test]
    fn readiness_needs_a_policy_and_every_configured_interface() {
        let (registry, metrics) = registry_with(None);
        assert_eq!(ready(&metrics), Err("the policy is not loaded yet".into()));
        let p = scrape(&registry);
        assert_eq!(p.get("embargo_ready", &[]), Some(0.0));
        // Nothing is known of the data plane without a source: no data-plane series.
        assert!(p.series("embargo_packets_total").is_empty());

        let mut partial = snapshot();
        partial.configured.push("eth2".into());
        let (registry, metrics) = registry_with(Some(Ok(partial)));
        let reason = ready(&metrics).unwrap_err();
        assert!(reason.contains("not attached on eth2"), "{reason}");
        assert_eq!(scrape(&registry).get("embargo_ready", &[]), Some(0.0));

        let (registry, metrics) = registry_with(Some(Ok(snapshot())));
        assert_eq!(ready(&metrics), Ok(()));
        assert_eq!(scrape(&registry).get("embargo_ready", &[]), Some(1.0));
        metrics.clear_source();
        assert!(metrics.readiness().is_err());
        assert_eq!(scrape(&registry).get("embargo_ready", &[]), Some(0.0));
    }

    #[test]
    fn a_failing_source_is_not_ready_and_the_rest_still_renders() {
        let (registry, metrics) = registry_with(Some(Err("lock timed out".into())));
        metrics.reload_succeeded(1.0, "d");
        assert_eq!(ready(&metrics), Err("lock timed out".into()));
        let p = scrape(&registry);
        assert_eq!(p.get("embargo_ready", &[]), Some(0.0));
        assert_eq!(p.get("embargo_policy_info", &[("digest", "d")]), Some(1.0));
        assert!(p.series("embargo_packets_total").is_empty());
    }

    #[test]
    fn readiness_reads_no_kernel_counters() {
        let registry = Registry::new();
        let metrics = Metrics::register(&registry).unwrap();
        metrics.set_source(|kernel: bool| {
            assert!(!kernel, "readiness asked for the kernel counters");
            Ok(snapshot())
        });
        assert_eq!(ready(&metrics), Ok(()));
    }

    #[test]
    fn the_documented_listen_address_is_the_default() {
        use crate::config::{self, MetricsSettings};
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for p in ["config/default.toml", "config/examples/full.toml"] {
            let c = config::load(&root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
            assert_eq!(
                c.main.metrics.listen,
                MetricsSettings::DEFAULT_LISTEN,
                "{p}"
            );
        }
        let bare = config::parse(
            std::path::Path::new("m.toml"),
            "enforce = [\"UK\"]\n".into(),
        )
        .unwrap();
        assert_eq!(
            bare.main.metrics.listen.to_string(),
            "127.0.0.1:9610",
            "the default when [metrics] is absent"
        );
    }

    #[test]
    fn registering_twice_in_one_registry_is_refused() {
        let registry = Registry::new();
        Metrics::register(&registry).unwrap();
        let e = Metrics::register(&registry)
            .err()
            .expect("a second registration fails");
        assert!(e.to_string().contains("embargo_reloads_total"), "{e}");
    }
}
