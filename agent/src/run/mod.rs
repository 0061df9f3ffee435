//! `embargo run`: load, attach, serve status, reload on SIGHUP or a changed file, attest the
//! kernel maps, write drop and monitor events, and detach cleanly on SIGINT or SIGTERM.
//!
//! At start, with a pin folder, the maps a previous agent pinned are reused when the state file
//! agrees with them ([`start_dataplane`]): the policy is applied to them as a diff and the pinned
//! links are taken over, so counters continue and nothing is rewritten that did not change.
//! Otherwise a fresh generation is loaded (the log and `embargo status` say why) and takes the
//! pinned links over atomically. The state file is written after every policy applied, by the
//! state writer's thread ([`state::Writer`]): a reload only hands it the change, under the lock;
//! at start the agent waits for the first write, and before it exits for the last.

use std::{
    collections::HashMap,
    net::SocketAddr,
    os::unix::fs::{DirBuilderExt as _, MetadataExt as _},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::UnixListener,
    signal::unix::{SignalKind, signal},
};

use crate::{
    config::{self, Interface},
    dataplane::{Dataplane, DataplaneError, Drift, EntityCounters, state},
    observe::{
        audit::{self, AuditLog},
        events, http,
        metrics::{self, Metrics, Snapshot},
        status::{
            self, CounterRow, EntityStatus, InterfaceStatus, ReloadStatus, StartStatus, Status,
        },
    },
    policy::{EntityIndex, Policy, compile::Compiled, plan::TableSnapshot, resolve::Resolved},
};

/// How often the configuration's files are checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);
/// How often the kernel maps are read back and compared with what the agent wrote.
const ATTEST_INTERVAL: Duration = Duration::from_secs(30);

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
    events: bool,
    /// Writes the state file after each policy applied; `None` without pins.
    state_writer: Option<state::Writer>,
    /// How the data plane started.
    start: StartStatus,
}

/// A file's modification time (seconds, nanoseconds), size and inode.
type Fingerprint = (i64, i64, u64, u64);

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.mtime(), m.mtime_nsec(), m.len(), m.ino()))
}

fn watch_list(resolved: &Resolved) -> Vec<(PathBuf, Option<Fingerprint>)> {
    resolved
        .paths
        .iter()
        .map(|p| (p.clone(), fingerprint(p)))
        .collect()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Shared {
    /// Whether any watched file changed since it was read.
    fn files_changed(&self) -> bool {
        self.watched.iter().any(|(p, f)| fingerprint(p) != *f)
    }

    /// Applies a newly compiled policy: in place when it fits, else as a new data-plane
    /// generation that takes over every interface atomically. Either way the interfaces are
    /// never without a program, and on error the running policy stays as it was.
    fn apply(
        &mut self,
        config: &config::Config,
        resolved: &Resolved,
        compiled: Compiled,
    ) -> Result<&'static str, String> {
        let old_snapshot = TableSnapshot::of(&self.compiled);
        let mut index = self.index.clone();
        let policy = index.policy(&compiled);
        let kind = match self.dataplane.apply(&policy) {
            Ok(stats) => {
                tracing::info!(
                    prefixes_changed = stats.prefixes_changed,
                    entries_written = stats.entries_written,
                    nodes_allocated = stats.nodes_allocated,
                    nodes_released = stats.nodes_released,
                    policies_written = stats.policies_written,
                    "applied in place"
                );
                self.index = index;
                self.policy = policy;
                "in_place"
            }
            Err(DataplaneError::NeedsRebuild { reason }) => {
                tracing::info!(%reason, "loading a new data-plane generation");
                let mut index = EntityIndex::default();
                let policy = index.policy(&compiled);
                let mut next = Dataplane::load(&policy).map_err(|e| e.to_string())?;
                // Carry the old generation's counters so totals never go back.
                let old = self.dataplane.counters().map_err(|e| e.to_string())?;
                for (e, c) in self.policy.entities.iter().zip(old) {
                    let acc = self.carried.entry(e.id.clone()).or_default();
                    acc.add(&c);
                }
                next.take_over(&mut self.dataplane)
                    .map_err(|e| e.to_string())?;
                self.dataplane = next;
                self.index = index;
                self.policy = policy;
                self.reloads.generations += 1;
                "new_generation"
            }
            Err(e) => return Err(e.to_string()),
        };
        // Events: the rate and burst follow the configuration; the output stays as at start.
        let limits = if self.events {
            let e = &config.main.events;
            embargo_abi::EventLimits::per_second(e.rate_per_entity, e.burst)
        } else {
            embargo_abi::EventLimits::OFF
        };
        if let Err(e) = self.dataplane.set_event_limits(limits) {
            tracing::error!(error = %e, "the event limits could not be updated");
        }
        if let Err(e) = audit::record_applied(
            &mut self.audit,
            config,
            resolved,
            &old_snapshot,
            &self.compiled.listed,
            &compiled,
        ) {
            tracing::error!(error = %e, "the applied policy could not be recorded in the audit log");
        }
        self.compiled = compiled;
        self.save_state();
        Ok(kind)
    }

    /// Hands what the pinned maps now hold to the state writer, which writes the state file
    /// and then unpins the maps of older generations (only once the file names a newer one).
    /// Costs what the reload changed, not the size of the policy. A failure is logged: the
    /// next agent then loads a fresh generation, without a gap.
    fn save_state(&mut self) {
        let Some(writer) = &self.state_writer else {
            return;
        };
        let carried = self
            .carried
            .iter()
            .map(|(id, c)| (id.clone(), to_carried(c)))
            .collect();
        match self
            .dataplane
            .state_update(self.index.ids(), &self.compiled.digest(), carried)
        {
            Ok(Some(update)) => writer.send(update),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "the state file could not be written; a restarted agent will load a fresh generation");
            }
        }
    }

    /// Records the outcome of a reload attempt.
    fn reloaded(&mut self, trigger: &str, result: Result<&'static str, String>) {
        match result {
            Ok(kind) => {
                self.reloads.succeeded += 1;
                self.reloads.last_success_unix = unix_now();
                self.reloads.last_error = None;
                self.reloads.last_kind = kind.into();
                self.metrics
                    .reload_succeeded(metrics::unix_now(), &self.compiled.digest());
                tracing::info!(trigger, kind, digest = %self.compiled.digest(), "policy reloaded");
            }
            Err(e) => {
                self.reloads.failed += 1;
                self.metrics.reload_failed();
                tracing::error!(trigger, error = %e, "reload failed; the running policy stays in force");
                self.reloads.last_error = Some(e);
            }
        }
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

/// Compiles the configuration again (off the async threads) and applies it.
async fn reload(shared: &Arc<Mutex<Shared>>, trigger: &str) {
    let path = shared.lock().expect("not poisoned").config.clone();
    let compiled =
        tokio::task::spawn_blocking(move || crate::compile_file_resolved(&path, crate::today()))
            .await;
    let mut s = shared.lock().expect("not poisoned");
    let result = match compiled {
        Ok(Ok((config, resolved, compiled))) => {
            log_report(&compiled);
            s.watched = watch_list(&resolved);
            s.apply(&config, &resolved, compiled)
        }
        Ok(Err(e)) => {
            // Retry when a file changes again, not on every tick.
            let watched = s
                .watched
                .iter()
                .map(|(p, _)| (p.clone(), fingerprint(p)))
                .collect();
            s.watched = watched;
            Err(e.to_string())
        }
        Err(e) => Err(format!("the compile task failed: {e}")),
    };
    s.reloaded(trigger, result);
}

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(opts: RunOptions) -> Result<(), RunError> {
    // Fetch every [[sources]] feed into its last-known-good copy before the first compile (one
    // that is down keeps its copy). The manager refreshes them while it lives; a change of
    // content triggers a reload below.
    // The configuration is read once: the policy compiled is the one whose sources were fetched.
    let config = config::load(&opts.config)?;
    let (sources, mut source_changes) =
        crate::inputs::sources::SourceManager::start(&config).await?;
    let resolved = crate::policy::resolve::resolve(&config)?;
    let compiled = crate::policy::compile::compile(&config, &resolved, crate::today())?;
    log_report(&compiled);
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
    let reused = start.kind == "adopted";
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
    // with `output = "none"` (the default) there is none and the data plane sends no events.
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
        reloads: ReloadStatus {
            succeeded: 1,
            last_success_unix: unix_now(),
            last_kind: "initial".into(),
            ..Default::default()
        },
        watched: watch_list(&resolved),
        drift: Drift::default(),
        sources,
        metrics: metrics.clone(),
        events: event_sink.is_some(),
        state_writer: opts
            .pin_dir
            .as_ref()
            .map(|_| state::Writer::start(opts.state_dir.clone())),
        start,
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
        let clock = shared.lock().expect("not poisoned").dataplane.event_clock();
        tracing::info!(output = ?events_settings.output, path = %events_path.display(), ?clock, "writing drop and monitor events");
        let feed = EventFeed(Arc::clone(&shared));
        tokio::spawn(events::Reader::new(feed, sink, Some(metrics.clone())).run());
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
    loop {
        tokio::select! {
            _ = sigint.recv() => { tracing::info!("SIGINT"); break; }
            _ = sigterm.recv() => { tracing::info!("SIGTERM"); break; }
            _ = sighup.recv() => reload(&shared, "SIGHUP").await,
            Ok(()) = source_changes.changed() => reload(&shared, "source refresh").await,
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
                        tokio::spawn(async move {
                            serve(stream, shared).await;
                            drop(permit);
                        });
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

/// The data plane an agent starts with, and what goes with it.
struct Started {
    dataplane: Dataplane,
    index: EntityIndex,
    policy: Policy,
    carried: HashMap<String, EntityCounters>,
    start: StartStatus,
}

fn to_carried(c: &EntityCounters) -> state::Carried {
    c.slots.map(|d| d.map(|v| (v.packets, v.bytes)))
}

fn from_carried(c: &state::Carried) -> EntityCounters {
    EntityCounters {
        slots: c.map(|d| d.map(|(packets, bytes)| embargo_abi::Counter { packets, bytes })),
    }
}

/// Reuses the maps a previous agent pinned, with `compiled` applied as a diff, when the state
/// file agrees with them; else loads a fresh generation, saying why. Either way nothing is
/// attached or detached yet.
fn start_dataplane(opts: &RunOptions, compiled: &Compiled) -> Result<Started, RunError> {
    let mut netlink_left = Vec::new();
    // Nothing to reuse is expected (first start, no pins); anything else is worth a warning.
    let mut expected = false;
    let reason = match &opts.pin_dir {
        None => {
            expected = true;
            "pinning is off (--no-pin)".to_owned()
        }
        Some(pin_dir) => match state::read(&opts.state_dir) {
            Ok(None) => {
                expected = true;
                format!(
                    "no state file in {} (first start, or removed by `embargo detach`)",
                    opts.state_dir.display()
                )
            }
            Err(e) => {
                if let state::StateError::OldFormat {
                    netlink_filters, ..
                } = &e
                {
                    netlink_left = netlink_filters.clone();
                }
                e.to_string()
            }
            Ok(Some(st)) => {
                netlink_left = st.netlink_filters.clone();
                match Dataplane::reuse(pin_dir, &st) {
                    Err(why) => why.to_string(),
                    Ok(mut dataplane) => {
                        let mut index = EntityIndex::from_ids(st.entity_ids.clone());
                        let policy = index.policy(compiled);
                        match dataplane.apply(&policy) {
                            Ok(stats) => {
                                tracing::info!(
                                    generation = dataplane.generation(),
                                    prefixes_changed = stats.prefixes_changed,
                                    entries_written = stats.entries_written,
                                    policies_written = stats.policies_written,
                                    "adopted the pinned maps and applied the policy as a diff"
                                );
                                let start = StartStatus {
                                    kind: "adopted".into(),
                                    reason: format!(
                                        "the pinned maps agree with the state file (policy {} before)",
                                        st.digest.get(..16).unwrap_or(&st.digest)
                                    ),
                                    generation: dataplane.generation().to_owned(),
                                    prefixes_changed: stats.prefixes_changed,
                                    entries_written: stats.entries_written,
                                    policies_written: stats.policies_written,
                                    pins: None,
                                };
                                return Ok(Started {
                                    dataplane,
                                    index,
                                    policy,
                                    carried: st
                                        .carried
                                        .iter()
                                        .map(|(id, c)| (id.clone(), from_carried(c)))
                                        .collect(),
                                    start,
                                });
                            }
                            Err(e) => format!("the policy does not fit the pinned maps: {e}"),
                        }
                    }
                }
            }
        },
    };
    if expected {
        tracing::info!(%reason, "not reusing pinned maps; loading a fresh data-plane generation");
    } else {
        tracing::warn!(%reason, "not reusing pinned maps; loading a fresh data-plane generation");
    }
    let mut index = EntityIndex::default();
    let policy = index.policy(compiled);
    let mut dataplane = Dataplane::load(&policy)?;
    dataplane.set_netlink_left(netlink_left);
    let start = StartStatus {
        kind: "fresh".into(),
        reason,
        generation: dataplane.generation().to_owned(),
        ..Default::default()
    };
    Ok(Started {
        dataplane,
        index,
        policy,
        carried: HashMap::new(),
        start,
    })
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

/// Logs what the compiler decided that an operator should know.
fn log_report(c: &Compiled) {
    let r = &c.report;
    for (id, why) in &r.entities_left_out {
        tracing::warn!(entity = %id, reason = %why, "entity not enforced");
    }
    for g in r.expired_groups.iter().chain(&r.pending_groups) {
        tracing::warn!("{g}");
    }
    for (list, total, what) in [
        (
            &r.same_prefix,
            r.same_prefix_total,
            "same prefix listed twice",
        ),
        (&r.subtracted, r.subtracted_total, "subtracted by allow"),
    ] {
        for line in list {
            tracing::warn!("{what}: {line}");
        }
        if total > list.len() {
            tracing::warn!("{what}: {} more", total - list.len());
        }
    }
}

fn bind_control(path: &Path) -> Result<UnixListener, RunError> {
    let err = |source| RunError::Socket {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(err)?;
    }
    // A socket left by a killed agent would make bind fail; nothing else lives at this path
    // (a symlink there is removed, not followed).
    if std::fs::symlink_metadata(path).is_ok() {
        std::fs::remove_file(path).map_err(err)?;
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    // Not through a symlink swapped in since the bind.
    crate::files::write::set_mode_nofollow(path, 0o600)
        .map_err(|e| err(std::io::Error::other(e)))?;
    Ok(listener)
}

/// Longest control request accepted, newline included (the requests are single words).
pub const MAX_CONTROL_REQUEST: usize = 1024;
/// A control client sends its request line within this long, or is disconnected.
pub const CONTROL_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A control client reads the whole answer within this long, or is disconnected.
pub const CONTROL_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Control connections served at the same time; more are closed at once.
pub const MAX_CONTROL_CONNECTIONS: usize = 16;

/// Reads one request line: at most [`MAX_CONTROL_REQUEST`] bytes within
/// [`CONTROL_READ_TIMEOUT`]. Never holds more than that, whatever the client sends.
async fn read_request<R: tokio::io::AsyncRead + Unpin>(read: R) -> Result<String, String> {
    use tokio::io::AsyncReadExt as _;
    let mut reader = BufReader::new(read.take(MAX_CONTROL_REQUEST as u64));
    let mut line = Vec::with_capacity(64);
    match tokio::time::timeout(CONTROL_READ_TIMEOUT, reader.read_until(b'\n', &mut line)).await {
        Err(_) => Err(format!(
            "no request line within {}",
            humantime::format_duration(CONTROL_READ_TIMEOUT)
        )),
        Ok(Err(e)) => Err(format!("reading the request: {e}")),
        Ok(Ok(_)) if line.last() != Some(&b'\n') && line.len() >= MAX_CONTROL_REQUEST => Err(
            format!("the request is over {MAX_CONTROL_REQUEST} bytes without a newline"),
        ),
        Ok(Ok(_)) => Ok(String::from_utf8_lossy(&line).into_owned()),
    }
}

/// An error answer: `{"error": "..."}`.
fn error_answer(message: &str) -> String {
    format!(
        "{{\"error\":{}}}",
        serde_json::Value::String(message.to_owned())
    )
}

/// Serves one control connection: one request line, `answer`'s answer, close. A request that
/// is too long or too slow gets an error answer and the connection is closed.
async fn serve_control(stream: tokio::net::UnixStream, answer: impl FnOnce(&str) -> String) {
    let (read, mut write) = stream.into_split();
    let body = match read_request(read).await {
        Ok(line) => answer(line.trim()),
        Err(e) => {
            tracing::debug!("control socket: request refused: {e}");
            error_answer(&e)
        }
    };
    let _ = tokio::time::timeout(CONTROL_WRITE_TIMEOUT, async {
        let _ = write.write_all(body.as_bytes()).await;
        let _ = write.shutdown().await;
    })
    .await;
}

async fn serve(stream: tokio::net::UnixStream, shared: Arc<Mutex<Shared>>) {
    serve_control(stream, |request| answer(request, &shared)).await;
}

/// The answer to one control request.
fn answer(request: &str, shared: &Mutex<Shared>) -> String {
    match request {
        "status" => {
            let snapshot = {
                let guard = shared.lock().expect("not poisoned");
                snapshot(&guard)
            };
            match snapshot {
                Ok(s) => serde_json::to_string(&s).unwrap_or_default(),
                Err(e) => error_answer(&e.to_string()),
            }
        }
        "table" => {
            let snapshot = TableSnapshot::of(&shared.lock().expect("not poisoned").compiled);
            serde_json::to_string(&snapshot).unwrap_or_default()
        }
        "verify" => match shared.lock().expect("not poisoned").attest() {
            Ok(drift) => serde_json::to_string(&drift).unwrap_or_default(),
            Err(e) => error_answer(&e.to_string()),
        },
        other => error_answer(&format!("unknown request `{other}`")),
    }
}

fn snapshot(s: &Shared) -> Result<Status, DataplaneError> {
    let counters = s.dataplane.counters()?;
    let stats = s.dataplane.stats()?;
    let counted = counters
        .iter()
        .flat_map(|c| c.slots.iter().flatten())
        .map(|c| c.packets)
        .sum();
    let (outcomes, packets_seen) = status::outcomes(&stats, counted);
    let entities = s
        .policy
        .entities
        .iter()
        .zip(counters)
        .filter(|(e, _)| !e.retired)
        .map(|(e, mut c)| {
            if let Some(old) = s.carried.get(&e.id) {
                c.add(old);
            }
            (e, c)
        })
        .map(|(e, c)| EntityStatus {
            designations: s
                .compiled
                .entities
                .iter()
                .find(|x| x.id == e.id)
                .map(status::designation_lines)
                .unwrap_or_default(),
            id: e.id.clone(),
            name: e.name.clone(),
            action: format!("{:?}", e.action).to_lowercase(),
            direction: format!("{:?}", e.direction).to_lowercase(),
            prefixes_v4: e.prefixes_v4,
            prefixes_v6: e.prefixes_v6,
            counters: embargo_abi::Direction::ALL
                .iter()
                .flat_map(|d| embargo_abi::Verdict::ALL.iter().map(move |v| (*d, *v)))
                .map(|(d, v)| {
                    let n = c.get(d, v);
                    CounterRow {
                        direction: d.label().into(),
                        verdict: v.label().into(),
                        packets: n.packets,
                        bytes: n.bytes,
                    }
                })
                .collect(),
        })
        .collect();
    let ls = s.dataplane.load_stats;
    Ok(Status {
        pid: std::process::id(),
        config: s.config.clone(),
        interfaces: s
            .dataplane
            .attachments()
            .iter()
            .map(|a| InterfaceStatus {
                name: a.name.clone(),
                ifindex: a.ifindex,
                role: a.role.to_string(),
                mode: a.mode.to_string(),
                egress: a.egress,
            })
            .collect(),
        entities,
        outcomes,
        packets_seen,
        prefixes_v4: ls.v4_prefixes,
        prefixes_v6: ls.v6_prefixes,
        map_bytes: ls.map_bytes,
        digest: s.compiled.digest(),
        reloads: s.reloads.clone(),
        drift_entries: s.drift.total(),
        sources: s.sources.states(),
        delisted_by_list: s.compiled.report.delisted_by_list.clone(),
        start: Some(s.start.clone()),
    })
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

    /// Serves one control connection whose answer echoes the request; the client end.
    fn control_pair() -> tokio::net::UnixStream {
        let (client, server) = tokio::net::UnixStream::pair().unwrap();
        tokio::spawn(serve_control(server, |r| format!("{{\"echo\":\"{r}\"}}")));
        client
    }

    /// Reads until the server closes (or `within` passes: then panics).
    async fn until_closed(client: &mut tokio::net::UnixStream, within: Duration) -> String {
        use tokio::io::AsyncReadExt as _;
        let mut got = Vec::new();
        let read = async {
            let mut buf = [0u8; 4096];
            loop {
                match client.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(within, read)
            .await
            .expect("the server closed the connection");
        String::from_utf8_lossy(&got).into_owned()
    }

    #[tokio::test]
    async fn control_requests_are_answered() {
        let mut c = control_pair();
        c.write_all(b"status\n").await.unwrap();
        let got = until_closed(&mut c, Duration::from_secs(5)).await;
        assert_eq!(got, "{\"echo\":\"status\"}");
    }

    /// 64 MiB without a newline: the server stops reading after MAX_CONTROL_REQUEST bytes and
    /// closes, so the client cannot even send it all (an unbounded reader takes it whole and
    /// holds it, 600 MB for 300 MiB).
    #[tokio::test]
    async fn an_oversized_control_request_is_refused_and_closed() {
        let mut c = control_pair();
        let big = vec![b'x'; 64 << 20];
        let sent = tokio::time::timeout(Duration::from_secs(20), c.write_all(&big))
            .await
            .expect("the write ends: refused or taken");
        assert!(
            sent.is_err(),
            "all 64 MiB were taken by the server: the request is not bounded"
        );
    }

    #[tokio::test]
    async fn a_control_request_without_newline_is_refused_after_the_read_timeout() {
        let mut c = control_pair();
        c.write_all(b"stat").await.unwrap();
        let started = std::time::Instant::now();
        let got = until_closed(&mut c, CONTROL_READ_TIMEOUT + Duration::from_secs(5)).await;
        assert!(started.elapsed() >= CONTROL_READ_TIMEOUT - Duration::from_millis(100));
        assert!(got.contains("no request line within"), "{got}");
        // One that says too much in time gets an answer that says so.
        let mut c = control_pair();
        c.write_all(&[b'y'; MAX_CONTROL_REQUEST + 10])
            .await
            .unwrap();
        let got = until_closed(&mut c, Duration::from_secs(5)).await;
        assert!(got.contains("over 1024 bytes"), "{got}");
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
