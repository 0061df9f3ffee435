//! `embargo run`: load, attach, serve status, reload on SIGHUP, a changed file or a date in the
//! policy taking effect, attest the kernel maps, write drop and monitor events, and detach
//! cleanly on SIGINT or SIGTERM.
//!
//! At start, with a pin folder, the maps a previous agent pinned are reused when the state file
//! agrees with them ([`start`]): the policy is applied to them as a diff and the pinned
//! links are taken over, so counters continue and nothing is rewritten that did not change.
//! Otherwise a fresh generation is loaded (the log and `embargo status` say why) and takes the
//! pinned links over atomically. The state file is written after every policy applied, by the
//! state writer's thread ([`state::Writer`]): a reload only hands it the change, under the lock;
//! at start the agent waits for the first write, and before it exits for the last.
//!
//! The pieces: [`start`] (reuse the pinned maps or load fresh), [`reload`](mod@reload) (compile again and
//! apply), [`control`] (the control socket `embargo status` and `plan` talk to); [`run`] here
//! wires them, with the metrics, events, watcher and attestation, until a signal ends it.

pub mod control;
mod notify;
mod reload;
mod start;

use std::{
    collections::HashMap,
    net::SocketAddr,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::signal::unix::{SignalKind, signal};

pub use self::reload::ReloadError;
use self::{
    control::{MAX_CONTROL_CONNECTIONS, bind_control, serve},
    reload::reload,
    start::{Started, start_dataplane, to_carried},
};
use crate::{
    config::{self, Interface},
    dataplane::{Dataplane, DataplaneError, Drift, EntityCounters, state},
    observe::{
        audit::{self, AuditLog},
        events, http,
        metrics::{self, Metrics, Snapshot},
        status::{ReloadKind, ReloadStatus, StartKind, StartStatus},
    },
    policy::{EntityIndex, Policy, compile::Compiled, plan::TableSnapshot, resolve::Resolved},
};

/// How often the configuration's files are checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);
/// How often the per-CPU event budgets are refilled ([`Dataplane::refill_event_budgets`]): the
/// rate in `[events]` is per second.
const EVENT_REFILL_INTERVAL: Duration = Duration::from_secs(1);
/// How often the kernel maps are read back and compared with what the agent wrote.
const ATTEST_INTERVAL: Duration = Duration::from_secs(30);
/// How long after a refused reload a date that has passed is tried again (the running policy
/// stays in force meanwhile, as after any refused reload).
const DATE_RETRY: Duration = Duration::from_secs(60);
/// The trigger of a reload at [`Compiled::next_change`]: a date in the policy took effect.
pub(crate) const DATE_TRIGGER: &str = "date reached";

/// What `embargo run` needs.
pub struct RunOptions {
    pub config: PathBuf,
    /// `--interface` values: added to the config's, replacing any with the same name.
    pub interfaces: Vec<Interface>,
    pub control_socket: PathBuf,
    /// The policy audit log ([`crate::observe::audit`]).
    pub audit_log: PathBuf,
    /// `--metrics-listen`: overrides the config's `[metrics] listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// `--events-log`: overrides the config's `[events] path` and implies `output = "file"`.
    pub events_log: Option<PathBuf>,
    /// Where XDP links are pinned (bpffs) so enforcement survives the agent; `None`: no pins.
    pub pin_dir: Option<PathBuf>,
    /// On SIGINT/SIGTERM, leave the pinned links attached instead of detaching.
    pub keep_attached: bool,
    /// Where the state file describing the pinned maps lives ([`crate::dataplane::state`]).
    pub state_dir: PathBuf,
}

/// Errors from `embargo run`, by what failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error(
        "no interfaces to attach to: add [[interfaces]] to the config or pass --interface NAME:ROLE"
    )]
    NoInterfaces,
    #[error("control socket {path}: {source}")]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("installing signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error(transparent)]
    Metrics(#[from] metrics::MetricsError),
    #[error(transparent)]
    Http(#[from] http::HttpError),
    #[error(transparent)]
    Events(#[from] events::EventsError),
}

/// Merges `--interface` values into the configured ones (same name: the flag wins).
pub fn merge_interfaces(config: &[Interface], flags: &[Interface]) -> Vec<Interface> {
    let mut out: Vec<Interface> = config
        .iter()
        .filter(|c| !flags.iter().any(|f| f.name == c.name))
        .cloned()
        .collect();
    out.extend(flags.iter().cloned());
    out
}

/// The agent's state, shared by the signal, watch, attestation and control-socket tasks.
pub(crate) struct Shared {
    pub(crate) dataplane: Dataplane,
    pub(crate) policy: Policy,
    pub(crate) compiled: Compiled,
    index: EntityIndex,
    pub(crate) config: PathBuf,
    audit: AuditLog,
    /// Counters of earlier data-plane generations, by entity id, so totals never go back.
    carried: HashMap<String, EntityCounters>,
    /// Likewise by evidence group ([`state::group_carry_key`]).
    carried_groups: HashMap<String, EntityCounters>,
    pub(crate) reloads: ReloadStatus,
    /// Every file the policy was read from, with its fingerprint when read.
    watched: Vec<(PathBuf, Option<Fingerprint>)>,
    /// The last attestation's findings.
    pub(crate) drift: Drift,
    /// Remote sources, refreshed in the background while the agent runs.
    pub(crate) sources: crate::inputs::sources::SourceManager,
    /// Metric handles fed by reloads and attestation.
    metrics: Metrics,
    /// Whether an event reader runs (`[events] output` was not `none` at start): the data
    /// plane sends events only then.
    pub(crate) events: bool,
    /// `embargo events --follow` clients; the event reader publishes to them.
    pub(crate) followers: crate::observe::follow::Followers,
    /// Writes the state file after each policy applied; `None` without pins.
    state_writer: Option<state::Writer>,
    /// How the data plane started.
    start: StartStatus,
    /// When the next reload for a date is due: the applied policy's
    /// [`Compiled::next_change`], or a retry after a refused reload once that has passed.
    scheduled: Option<chrono::DateTime<chrono::Utc>>,
}

/// A file's modification time (seconds, nanoseconds), size and inode.
type Fingerprint = (i64, i64, u64, u64);

pub(super) fn fingerprint(path: &Path) -> Option<Fingerprint> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.mtime(), m.mtime_nsec(), m.len(), m.ino()))
}

pub(super) fn watch_list(resolved: &Resolved) -> Vec<(PathBuf, Option<Fingerprint>)> {
    resolved
        .inputs
        .iter()
        .map(|i| (i.path.clone(), fingerprint(&i.path)))
        .collect()
}

pub(super) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// How long from now until `at` (zero once it has passed), by the wall clock, which is what
/// the dates are in; recomputed on every turn of the loop, so a clock step is followed.
fn until(at: chrono::DateTime<chrono::Utc>) -> Duration {
    (at - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO)
}

impl Shared {
    /// Whether any watched file changed since it was read.
    fn files_changed(&self) -> bool {
        self.watched.iter().any(|(p, f)| fingerprint(p) != *f)
    }

    /// Reads the kernel maps back, compares them with what was written, and repairs drift.
    pub(crate) fn attest(&mut self) -> Result<Drift, DataplaneError> {
        let drift = self.dataplane.attest(true)?;
        if drift.total() > 0 {
            tracing::warn!(
                v4_entries = drift.v4_entries,
                v6_entries = drift.v6_entries,
                policies = drift.policies,
                roles = drift.roles,
                "attestation: kernel maps drifted from the policy; repaired"
            );
        }
        self.drift = drift;
        self.metrics.set_drift(drift.total());
        Ok(drift)
    }
}

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(opts: RunOptions) -> Result<(), RunError> {
    // Fetch every [[sources]] feed into its last-known-good copy before the first compile (one
    // that is down keeps its copy). The manager refreshes them while it lives; a change of
    // content triggers a reload below.
    // The configuration is read once: the policy compiled is the one whose sources were fetched.
    let config = config::load(&opts.config)?;
    let valid = config::validate::validate(&config)?;
    let (sources, mut source_changes) =
        crate::inputs::sources::SourceManager::start(&config).await?;
    let resolved = crate::policy::resolve::resolve(&config)?;
    let compiled = crate::policy::compile::compile(&valid, &resolved, crate::now())?;
    crate::observe::log::report(&compiled);
    let configured: Vec<Interface> = config
        .main
        .interfaces
        .iter()
        .map(|i| i.get_ref().clone())
        .collect();
    let interfaces = merge_interfaces(&configured, &opts.interfaces);
    if interfaces.is_empty() {
        return Err(RunError::NoInterfaces);
    }
    // Fail before loading anything if an interface does not exist.
    if let Some(missing) = interfaces
        .iter()
        .find(|i| crate::dataplane::system::ifindex(&i.name).is_none())
    {
        return Err(DataplaneError::UnknownInterface {
            name: missing.name.clone(),
        }
        .into());
    }
    // Metrics (begin): bound before anything loads, so a taken address fails with nothing
    // attached; /healthz answers from here on, /readyz once the source below is set.
    let registry = prometheus::Registry::new();
    let metrics = Metrics::register(&registry)?;
    let server = http::bind(opts.metrics_listen.unwrap_or(config.main.metrics.listen)).await?;
    tracing::info!(listen = %server.local_addr(), "serving /metrics, /healthz and /readyz");
    server.spawn(registry, metrics.clone());
    // Metrics (end).
    // Pins: the pin folder must be on bpffs before a previous agent's pins can be looked for;
    // where there is none, one is mounted at /sys/fs/bpf (said once, here, and in `status`).
    // If that fails, the error waits until after the load, which names missing BPF privileges
    // first (without them nothing could be pinned anyway).
    let pin_fs = opts
        .pin_dir
        .as_deref()
        .map(crate::dataplane::bpffs::ensure)
        .transpose();
    let started = std::time::Instant::now();
    let Started {
        mut dataplane,
        index,
        policy,
        carried,
        carried_groups,
        mut start,
    } = start_dataplane(&opts, &compiled)?;
    let pin_fs = pin_fs.map_err(DataplaneError::from)?;
    match &pin_fs {
        Some(p) if p.ephemeral() => {
            tracing::warn!(pins = %p.describe(), "mounted bpffs in a private mount namespace: the pins do not outlive it")
        }
        Some(p) if p.mount == crate::dataplane::bpffs::Mount::Mounted => {
            tracing::info!(pins = %p.describe(), "mounted bpffs")
        }
        _ => {}
    }
    start.pins = pin_fs;
    let reused = start.kind == StartKind::Adopted;
    let ls = dataplane.load_stats;
    tracing::info!(
        entities = policy.entities.len(),
        digest = %compiled.digest(),
        v4_prefixes = ls.v4_prefixes,
        v6_prefixes = ls.v6_prefixes,
        v4_nodes = ls.v4_nodes,
        v6_nodes = ls.v6_nodes,
        map_mib = ls.map_bytes / (1024 * 1024),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "policy loaded"
    );
    // Opened after loading (which names missing privileges first) and before attaching; held,
    // locked, for the agent's life. On reloads, call `audit::record_applied` with the old table.
    let mut audit = AuditLog::open(&opts.audit_log)?;
    // Events (begin): the sink is opened like the audit log (after loading, before attaching);
    // with `output = "none"` there is none and the data plane sends no events (the default is a
    // file, [`config::EventsSettings::DEFAULT_PATH`]).
    // `--events-log` implies `output = "file"`.
    let mut events_settings = config.main.events.clone();
    if opts.events_log.is_some() {
        events_settings.output = config::EventsOutput::File;
    }
    let events_path = events::log_path(&config, opts.events_log.as_deref());
    let event_sink = events::Sink::open(&events_settings, &events_path)?;
    dataplane.set_event_limits(match event_sink {
        Some(_) => events_settings.limits(),
        None => embargo_abi::EventLimits::OFF,
    })?;
    // Events (end).
    if let Some(dir) = &opts.pin_dir {
        dataplane.set_pin_dir(dir)?;
        if !reused {
            // Pinned before any interface uses them: the pin folder always holds the maps of
            // the attached program.
            dataplane.pin_maps(dir)?;
        }
    }
    for iface in &interfaces {
        // A link a previous agent pinned (it was killed, or left it attached) is taken over in
        // one atomic switch; otherwise attach. On failure, dataplane drops here and detaches
        // what was attached: all or nothing.
        if let Some(a) = dataplane.adopt(iface)? {
            tracing::info!(interface = %a.name, ifindex = a.ifindex, role = %a.role, "adopted the pinned attachment without detaching");
            continue;
        }
        let a = dataplane.attach(iface)?;
        tracing::info!(interface = %a.name, ifindex = a.ifindex, role = %a.role, mode = %a.mode, egress = a.egress, "attached");
    }
    if reused {
        // Interfaces the previous agent enforced on and this one does not: no role any more.
        for ifindex in dataplane.clear_unattached_roles() {
            tracing::info!(
                ifindex,
                "cleared the role of an interface no longer configured"
            );
        }
    }
    if let Some(dir) = &opts.pin_dir {
        // Pins for interfaces no longer configured: detach them.
        for (name, r) in
            crate::dataplane::detach_pinned(dir, |n| interfaces.iter().any(|i| i.name == n))
        {
            match r {
                Ok(()) => {
                    tracing::info!(interface = %name, "detached a pinned link no longer configured")
                }
                Err(e) => {
                    tracing::warn!(interface = %name, error = %e, "could not remove a stale pinned link")
                }
            }
        }
    }
    // A policy that cannot be recorded is not kept: returning drops and detaches the dataplane.
    audit::record_applied(
        &mut audit,
        &config,
        &resolved,
        &TableSnapshot::default(),
        &[],
        &compiled,
    )?;
    let digest = compiled.digest();
    let shared = Arc::new(Mutex::new(Shared {
        dataplane,
        policy,
        compiled,
        index,
        config: opts.config.clone(),
        audit,
        carried,
        carried_groups,
        reloads: ReloadStatus {
            succeeded: 1,
            last_success_unix: unix_now(),
            last_kind: ReloadKind::Initial,
            ..Default::default()
        },
        watched: watch_list(&resolved),
        drift: Drift::default(),
        sources,
        metrics: metrics.clone(),
        events: event_sink.is_some(),
        followers: crate::observe::follow::Followers::default(),
        state_writer: opts
            .pin_dir
            .as_ref()
            .map(|_| state::Writer::start(opts.state_dir.clone())),
        start,
        scheduled: None,
    }));
    // The state file names this generation from now on; older generations' maps are unpinned.
    // Waited for: from here on a restarted agent can reuse these maps.
    {
        let mut s = shared.lock().expect("not poisoned");
        s.save_state();
        if let Some(Err(e)) = s.state_writer.as_ref().map(state::Writer::flush) {
            tracing::error!(error = %e, "the state file could not be written; a restarted agent will load a fresh generation");
        }
    }
    // Events (begin): the reader follows reloads and generations through `EventFeed`.
    if let Some(sink) = event_sink {
        tracing::info!(output = ?events_settings.output, path = %events_path.display(), "writing drop and monitor events");
        // The per-CPU event budgets are refilled once a second (a map write, not a reload);
        // the data plane in `shared` is the current generation's.
        let budgets = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVENT_REFILL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let mut s = budgets.lock().expect("not poisoned");
                if let Err(e) = s.dataplane.refill_event_budgets() {
                    tracing::warn!(error = %e, "the event budgets could not be refilled");
                }
            }
        });
        let feed = EventFeed(Arc::clone(&shared));
        let followers = shared.lock().expect("not poisoned").followers.clone();
        tokio::spawn(
            events::Reader::new(feed, sink, Some(metrics.clone()))
                .with_followers(followers)
                .run(),
        );
    }
    // Events (end).
    // Metrics (begin): the collector and /readyz read the shared state through this closure;
    // its contract is in `crate::observe::metrics`. The initial load counts as a successful reload.
    let state = Arc::clone(&shared);
    let source_metrics = metrics.clone();
    // Fetch errors already counted, by source, to turn the sources' totals into increments.
    let counted_errors = Mutex::new(HashMap::<String, u64>::new());
    metrics.set_source(move |kernel| {
        let s = state.lock().expect("not poisoned");
        for st in s.sources.states() {
            if let Some(t) = st.last_success {
                source_metrics.source_succeeded(&st.name, t.timestamp() as f64);
            }
            if st.has_content() {
                source_metrics.source_skipped(&st.name, &st.skipped);
            }
            source_metrics.source_state(
                &st.name,
                st.entries,
                st.last_attempt.map(|t| t.timestamp() as f64),
            );
            let mut counted = counted_errors.lock().expect("not poisoned");
            let seen = counted.entry(st.name.clone()).or_default();
            for _ in *seen..st.fetch_errors_total {
                source_metrics.source_failed(&st.name);
            }
            *seen = st.fetch_errors_total;
        }
        Ok(Snapshot::read(
            &s.dataplane,
            &s.policy,
            &interfaces,
            kernel,
        )?)
    });
    metrics.reload_succeeded(metrics::unix_now(), &digest);
    // The sources are fetched with the configuration the agent started with.
    for spec in crate::inputs::sources::spec::specs(&config).unwrap_or_default() {
        metrics.source_interval(&spec.name, spec.interval.as_secs_f64());
    }
    {
        let mut s = shared.lock().expect("not poisoned");
        s.schedule();
        metrics.policy_dates(&s.compiled);
        metrics.policy_lists(&s.compiled);
    }
    // Metrics (end).
    let listener = bind_control(&opts.control_socket)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(RunError::Signals)?;
    let mut watch = tokio::time::interval(WATCH_INTERVAL);
    let mut attest = tokio::time::interval(ATTEST_INTERVAL);
    let control_permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONTROL_CONNECTIONS));
    let mut control_accept_log = http::RateLimited::new(http::ACCEPT_LOG_EVERY);
    tracing::info!(socket = %opts.control_socket.display(), "running; SIGHUP or a changed file reloads, SIGINT or SIGTERM detaches and exits");
    notify::ready("enforcing");
    loop {
        // The next date in the policy: a reload then, like SIGHUP (recomputed every turn, after
        // every reload; the watch tick turns the loop at least every WATCH_INTERVAL).
        let scheduled = shared.lock().expect("not poisoned").scheduled;
        let date_due = until(scheduled.unwrap_or_else(chrono::Utc::now));
        tokio::select! {
            _ = sigint.recv() => { tracing::info!("SIGINT"); break; }
            _ = sigterm.recv() => { tracing::info!("SIGTERM"); break; }
            _ = sighup.recv() => reload(&shared, "SIGHUP").await,
            Ok(()) = source_changes.changed() => reload(&shared, "source refresh").await,
            () = tokio::time::sleep(date_due), if scheduled.is_some() => {
                // The timer runs on the monotonic clock, the dates on the wall clock: early by
                // a hair, wait the rest rather than compile the same policy twice.
                if scheduled.is_some_and(|at| chrono::Utc::now() < at) {
                    continue;
                }
                let what = shared.lock().expect("not poisoned").compiled.next_change.as_ref().map(|n| n.what.clone());
                tracing::info!(change = what.as_deref().unwrap_or("retry"), "a date in the policy takes effect; reloading");
                reload(&shared, DATE_TRIGGER).await;
            }
            _ = watch.tick() => {
                let changed = shared.lock().expect("not poisoned").files_changed();
                if changed {
                    reload(&shared, "file changed").await;
                }
            }
            _ = attest.tick() => {
                if let Err(e) = shared.lock().expect("not poisoned").attest() {
                    tracing::error!(error = %e, "attestation failed");
                }
            }
            conn = listener.accept() => match conn {
                Ok((stream, _)) => match Arc::clone(&control_permits).try_acquire_owned() {
                    Ok(permit) => {
                        let shared = Arc::clone(&shared);
                        tokio::spawn(serve(stream, shared, permit));
                    }
                    // Over the cap: closed at once.
                    Err(_) => drop(stream),
                },
                Err(e) => {
                    if let Some(suppressed) = control_accept_log.hit(tokio::time::Instant::now()) {
                        tracing::warn!(error = %e, suppressed, "control socket accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    notify::stopping();
    let _ = std::fs::remove_file(&opts.control_socket);
    let mut guard = shared.lock().expect("not poisoned");
    // The last state reaches the disk before anything else: a restart reuses these maps.
    if let Some(Err(e)) = guard.state_writer.take().map(state::Writer::finish) {
        tracing::error!(error = %e, "the state file could not be written; a restarted agent will load a fresh generation");
    }
    if opts.keep_attached {
        let kept = guard.dataplane.leave_attached();
        tracing::info!(interfaces = ?kept, "leaving the pinned links attached: enforcement continues; the next agent adopts them, `embargo detach` removes them");
        return Ok(());
    }
    for (name, result) in guard.dataplane.detach_all() {
        match result {
            Ok(()) => tracing::info!(interface = %name, "detached"),
            Err(e) => tracing::error!(interface = %name, error = %e, "detach failed"),
        }
    }
    // Nothing enforces any more: the pinned maps and the state describing them go too.
    if let Err(e) = guard.dataplane.unpin_maps() {
        tracing::warn!(error = %e, "could not unpin the maps");
    }
    if opts.pin_dir.is_some()
        && let Err(e) = state::remove(&opts.state_dir)
    {
        tracing::warn!(error = %e, "could not remove the state file");
    }
    Ok(())
}

/// The events reader's view of the shared state (see [`events::Feed`]): each call takes the lock
/// once. The version is the data-plane generation and the number of policies applied, which
/// change under the same lock as the policy they describe.
struct EventFeed(Arc<Mutex<Shared>>);

impl EventFeed {
    fn version_of(s: &Shared) -> events::Version {
        events::Version {
            generation: s.reloads.generations,
            reloads: s.reloads.succeeded,
        }
    }
}

impl events::Feed for EventFeed {
    fn version(&self) -> events::Version {
        Self::version_of(&self.0.lock().expect("not poisoned"))
    }

    fn context(&self) -> events::Context {
        let s = self.0.lock().expect("not poisoned");
        events::Context::new(
            Self::version_of(&s),
            &s.policy,
            &s.compiled,
            &s.dataplane.attachments(),
        )
    }

    fn take_ring(&self) -> Option<(u64, aya::maps::RingBuf<aya::maps::MapData>)> {
        let mut s = self.0.lock().expect("not poisoned");
        let generation = s.reloads.generations;
        s.dataplane.take_events().map(|r| (generation, r))
    }

    fn lost(&self) -> Option<(u64, Vec<(String, u64)>)> {
        let s = self.0.lock().expect("not poisoned");
        let totals = s.dataplane.events_lost().ok()?;
        let ids = s.policy.entities.iter().map(|e| e.id.clone());
        Some((s.reloads.generations, ids.zip(totals).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Role, XdpMode};

    fn iface(name: &str, role: Role) -> Interface {
        Interface {
            name: name.into(),
            role,
            mode: XdpMode::Auto,
            egress: false,
        }
    }

    #[test]
    fn flags_override_and_extend_config_interfaces() {
        let merged = merge_interfaces(
            &[iface("eth0", Role::Inside), iface("eth1", Role::Outside)],
            &[iface("eth1", Role::Inside), iface("eth2", Role::Outside)],
        );
        assert_eq!(
            merged,
            vec![
                iface("eth0", Role::Inside),
                iface("eth1", Role::Inside),
                iface("eth2", Role::Outside)
            ]
        );
    }
}
