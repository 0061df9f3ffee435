//! `embargo run`: load, attach, serve status, and detach cleanly on SIGINT or SIGTERM.

use std::{
    net::SocketAddr,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::UnixListener,
    signal::unix::{SignalKind, signal},
};

use crate::{
    compile::Compiled,
    config::{self, Interface},
    dataplane::Dataplane,
    http,
    metrics::{self, Metrics, Snapshot},
    plan::TableSnapshot,
    policy::Policy,
    status::{self, CounterRow, EntityStatus, InterfaceStatus, Status},
};

/// What `embargo run` needs.
pub struct RunOptions {
    pub config: PathBuf,
    /// `--interface` values: added to the config's, replacing any with the same name.
    pub interfaces: Vec<Interface>,
    pub control_socket: PathBuf,
    /// `--metrics-listen`: overrides the config's `[metrics] listen`.
    pub metrics_listen: Option<SocketAddr>,
}

/// Errors from `embargo run`, by what failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Dataplane(#[from] crate::dataplane::DataplaneError),
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
    Metrics(#[from] metrics::MetricsError),
    #[error(transparent)]
    Http(#[from] http::HttpError),
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

struct Shared {
    dataplane: Dataplane,
    policy: Policy,
    compiled: Compiled,
    config: PathBuf,
}

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(opts: RunOptions) -> Result<(), RunError> {
    let (config, compiled) = crate::compile_file(&opts.config, crate::today())?;
    log_report(&compiled);
    let policy = Policy::from(&compiled);
    let interfaces = merge_interfaces(&config.main.interfaces, &opts.interfaces);
    if interfaces.is_empty() {
        return Err(RunError::NoInterfaces);
    }
    // Fail before loading anything if an interface does not exist.
    if let Some(missing) = interfaces
        .iter()
        .find(|i| crate::system::ifindex(&i.name).is_none())
    {
        return Err(crate::dataplane::DataplaneError::UnknownInterface {
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
    let started = std::time::Instant::now();
    let mut dataplane = Dataplane::load(&policy)?;
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
    for iface in &interfaces {
        // On failure, dataplane drops here and detaches what was attached: all or nothing.
        let a = dataplane.attach(iface)?;
        tracing::info!(interface = %a.name, ifindex = a.ifindex, role = %a.role, mode = a.mode, "attached");
    }
    let digest = compiled.digest();
    let shared = Arc::new(Mutex::new(Shared {
        dataplane,
        policy,
        compiled,
        config: opts.config.clone(),
    }));
    // Metrics (begin): the collector and /readyz read the shared state through this closure;
    // its contract is in `crate::metrics`. The initial load counts as a successful reload.
    let state = Arc::clone(&shared);
    metrics.set_source(move |kernel| {
        let s = state.lock().expect("not poisoned");
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
    tracing::info!(socket = %opts.control_socket.display(), "running; SIGINT or SIGTERM detaches and exits");
    loop {
        tokio::select! {
            _ = sigint.recv() => { tracing::info!("SIGINT"); break; }
            _ = sigterm.recv() => { tracing::info!("SIGTERM"); break; }
            conn = listener.accept() => match conn {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&shared);
                    tokio::spawn(async move { serve(stream, shared).await });
                }
                Err(e) => tracing::warn!(error = %e, "control socket accept failed"),
            },
        }
    }
    let _ = std::fs::remove_file(&opts.control_socket);
    let mut guard = shared.lock().expect("not poisoned");
    for (name, result) in guard.dataplane.detach_all() {
        match result {
            Ok(()) => tracing::info!(interface = %name, "detached"),
            Err(e) => tracing::error!(interface = %name, error = %e, "detach failed"),
        }
    }
    Ok(())
}

/// Logs what the compiler decided that an operator should know.
fn log_report(c: &Compiled) {
    let r = &c.report;
    for (id, why) in &r.entities_left_out {
        tracing::warn!(entity = %id, reason = %why, "entity not enforced");
    }
    for g in &r.expired_groups {
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
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    // A socket left by a killed agent would make bind fail; nothing else lives at this path.
    if path.exists() {
        std::fs::remove_file(path).map_err(err)?;
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    Ok(listener)
}

async fn serve(stream: tokio::net::UnixStream, shared: Arc<Mutex<Shared>>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read);
    if reader.read_line(&mut line).await.is_err() {
        return;
    }
    let body = match line.trim() {
        "status" => {
            let snapshot = {
                let guard = shared.lock().expect("not poisoned");
                snapshot(&guard)
            };
            match snapshot {
                Ok(s) => serde_json::to_string(&s).unwrap_or_default(),
                Err(e) => format!("{{\"error\":{}}}", serde_json::Value::String(e.to_string())),
            }
        }
        "table" => {
            let snapshot = TableSnapshot::of(&shared.lock().expect("not poisoned").compiled);
            serde_json::to_string(&snapshot).unwrap_or_default()
        }
        other => format!(
            "{{\"error\":{}}}",
            serde_json::Value::String(format!("unknown request `{other}`"))
        ),
    };
    let _ = write.write_all(body.as_bytes()).await;
    let _ = write.shutdown().await;
}

fn snapshot(s: &Shared) -> Result<Status, crate::dataplane::DataplaneError> {
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
        .map(|(e, c)| EntityStatus {
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
                        direction: status::direction_label(d).into(),
                        verdict: status::verdict_label(v).into(),
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
                mode: a.mode.into(),
            })
            .collect(),
        entities,
        outcomes,
        packets_seen,
        prefixes_v4: ls.v4_prefixes,
        prefixes_v6: ls.v6_prefixes,
        map_bytes: ls.map_bytes,
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
