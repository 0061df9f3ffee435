//! Reloading a running agent: compile the configuration again (off the async threads), apply
//! the policy to the data plane in place or as a new generation, and record the outcome in the
//! reload history, the metrics, the audit log and the state file.
//!
//! Invariants: a reload that fails leaves the running policy, data plane and counters exactly
//! as they were ([`ReloadError`] says why, in the status's `last_error` and the log); one that
//! succeeds replaces them under the shared lock in one step, with a new generation taking over
//! every interface atomically and carrying the old generation's counters so totals never go
//! back. The outcome's labels (`in_place`, `new_generation`) are [`ReloadKind`]'s.

use std::sync::{Arc, Mutex};

use super::{Shared, fingerprint, to_carried, unix_now, watch_list};
use crate::{
    config::{self, ConfigError},
    dataplane::{Dataplane, DataplaneError, state},
    observe::{audit, metrics, status::ReloadKind},
    policy::{EntityIndex, compile::Compiled, plan::TableSnapshot, resolve::Resolved},
};

/// Why a reload was refused; the running policy stays in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The configuration (or a file it names) was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The blocking compile task panicked or was cancelled.
    #[error("the compile task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// The data plane could not take the policy (in place or as a new generation).
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
}

impl Shared {
    /// Applies a newly compiled policy: in place when it fits, else as a new data-plane
    /// generation that takes over every interface atomically. Either way the interfaces are
    /// never without a program, and on error the running policy stays as it was.
    fn apply(
        &mut self,
        config: &config::Config,
        resolved: &Resolved,
        compiled: Compiled,
    ) -> Result<ReloadKind, ReloadError> {
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
                ReloadKind::InPlace
            }
            Err(DataplaneError::NeedsRebuild { reason }) => {
                tracing::info!(%reason, "loading a new data-plane generation");
                let mut index = EntityIndex::default();
                let policy = index.policy(&compiled);
                let mut next = Dataplane::load(&policy)?;
                // Carry the old generation's counters so totals never go back.
                let old = self.dataplane.counters()?;
                for (e, c) in self.policy.entities.iter().zip(old) {
                    let acc = self.carried.entry(e.id.clone()).or_default();
                    acc.add(&c);
                }
                let old = self.dataplane.group_counters()?;
                for (g, c) in self.policy.groups.iter().zip(old) {
                    let Some(e) = self.policy.entities.get(g.entity as usize) else {
                        continue;
                    };
                    let key = state::group_carry_key(&e.id, &g.key);
                    self.carried_groups.entry(key).or_default().add(&c);
                }
                next.take_over(&mut self.dataplane)?;
                self.dataplane = next;
                self.index = index;
                self.policy = policy;
                self.reloads.generations += 1;
                ReloadKind::NewGeneration
            }
            Err(e) => return Err(e.into()),
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
    pub(super) fn save_state(&mut self) {
        let Some(writer) = &self.state_writer else {
            return;
        };
        let carried = (
            self.carried
                .iter()
                .map(|(id, c)| (id.clone(), to_carried(c)))
                .collect(),
            self.carried_groups
                .iter()
                .map(|(id, c)| (id.clone(), to_carried(c)))
                .collect(),
        );
        match self
            .dataplane
            .state_update(&self.index, &self.compiled.digest(), carried)
        {
            Ok(Some(update)) => writer.send(update),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "the state file could not be written; a restarted agent will load a fresh generation");
            }
        }
    }

    /// Schedules the next reload for a date: the applied policy's next change, if any.
    pub(super) fn schedule(&mut self) {
        self.scheduled = self.compiled.next_change.as_ref().map(|n| n.at);
        if let Some(n) = &self.compiled.next_change {
            tracing::info!(at = %n.at.to_rfc3339(), change = %n.what, "next change of the policy scheduled");
        }
    }

    /// Records the outcome of a reload attempt.
    fn reloaded(&mut self, trigger: &str, result: Result<ReloadKind, ReloadError>) {
        match result {
            Ok(kind) => {
                self.reloads.succeeded += 1;
                self.reloads.last_success_unix = unix_now();
                self.reloads.last_error = None;
                self.reloads.last_kind = kind;
                self.metrics
                    .reload_succeeded(metrics::unix_now(), &self.compiled.digest());
                tracing::info!(trigger, kind = kind.as_str(), digest = %self.compiled.digest(), "policy reloaded");
                self.schedule();
                self.metrics.policy_dates(&self.compiled);
                self.metrics.policy_lists(&self.compiled);
            }
            Err(e) => {
                self.reloads.failed += 1;
                self.metrics.reload_failed();
                // A date that has passed is tried again later, not on every turn of the loop.
                let now = chrono::Utc::now();
                if self.scheduled.is_some_and(|at| at <= now) {
                    self.scheduled = chrono::Duration::from_std(super::DATE_RETRY)
                        .ok()
                        .map(|d| now + d);
                }
                tracing::error!(trigger, error = %e, "reload failed; the running policy stays in force");
                self.reloads.last_error = Some(e.to_string());
            }
        }
    }
}

/// Compiles the configuration again (off the async threads) and applies it.
pub(super) async fn reload(shared: &Arc<Mutex<Shared>>, trigger: &str) {
    super::notify::reloading(trigger);
    let path = shared.lock().expect("not poisoned").config.clone();
    let compiled =
        tokio::task::spawn_blocking(move || crate::compile_file_resolved(&path, crate::now()))
            .await;
    let mut s = shared.lock().expect("not poisoned");
    let result = match compiled {
        Ok(Ok((config, resolved, compiled))) => {
            crate::observe::log::report(&compiled);
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
            Err(e.into())
        }
        Err(e) => Err(ReloadError::Task(e)),
    };
    let status = match &result {
        Ok(_) => format!("enforcing (reloaded: {trigger})"),
        Err(_) => format!("enforcing the previous policy (reload refused: {trigger})"),
    };
    s.reloaded(trigger, result);
    super::notify::ready(&status);
}
