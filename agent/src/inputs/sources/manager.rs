//! [`SourceManager`]: fetches every source at start (before the first compile), then refreshes
//! each on its own interval in a tokio task, keeps a [`SourceState`] per source and bumps a
//! [`Changed`] watch whenever a source's content changed, so the agent can reload.
//!
//! How `embargo run` uses it:
//! ```text
//! let config = config::load(&path)?;
//! // Fetches everything (a source that is down keeps its last-known-good copy) and returns.
//! let (sources, mut changed) = SourceManager::start(&config).await?;
//! let compiled = compile_file(&path, today())?;          // reads the copies just written
//! loop {
//!     tokio::select! {
//!         Ok(()) = changed.changed() => { /* reload: compile_file again; on error keep the old */ }
//!         // ...
//!     }
//! }
//! // sources.states() feeds embargo_source_last_success_timestamp_seconds{source} and
//! // embargo_source_fetch_errors_total{source}. Dropping the manager stops its tasks; after a
//! // configuration reload that changed [[sources]], drop it and start a new one.
//! ```

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::Utc;
use tokio::{sync::watch, task::JoinHandle};

use super::{
    cache::{self, CacheError},
    fetch::{Fetcher, Outcome, SourceError},
    spec::{self, SourceSpec},
    state::SourceState,
};
use crate::config::{Config, ConfigError};

/// The first retry after a failure comes this soon (then 2×, 4×, ... up to the interval).
pub const FIRST_RETRY: Duration = Duration::from_secs(30);

/// Sent through the watch when a source's content changed. Changes that come faster than the
/// agent reloads coalesce: the agent reloads everything from the copies anyway.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// Content changes since the manager started (the initial fetch is not counted).
    pub generation: u64,
    /// The source that changed last.
    pub source: Option<String>,
}

/// Fetches and refreshes every source; see the module docs. Dropping it stops the refreshes.
#[derive(Debug)]
pub struct SourceManager {
    states: Arc<Mutex<Vec<SourceState>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for SourceManager {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// When to try again after `failures` consecutive failures (0: the regular interval).
pub fn next_delay(interval: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return interval;
    }
    let backoff = FIRST_RETRY.saturating_mul(1u32 << (failures - 1).min(16));
    backoff.min(interval)
}

fn fetchers(specs: Vec<SourceSpec>) -> Result<Vec<Fetcher>, ConfigError> {
    specs
        .into_iter()
        .map(|s| {
            let at = s.at.clone();
            let name = s.name.clone();
            Fetcher::new(Arc::new(s)).map_err(|e| ConfigError::Invalid {
                at,
                message: format!("source `{name}`: {e}"),
            })
        })
        .collect()
}

/// Fetches every source of `config` once, all at the same time, in configuration order.
pub async fn fetch_all(config: &Config) -> Result<Vec<Result<Outcome, SourceError>>, ConfigError> {
    let fetchers = fetchers(spec::specs(config)?)?;
    Ok(fetch_each(&fetchers).await)
}

async fn fetch_each(fetchers: &[Fetcher]) -> Vec<Result<Outcome, SourceError>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, f) in fetchers.iter().enumerate() {
        let f = f.clone();
        set.spawn(async move { (i, f.fetch().await) });
    }
    let mut out: Vec<Option<Result<Outcome, SourceError>>> =
        (0..fetchers.len()).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((i, r)) => out[i] = Some(r),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out.into_iter()
        .map(|r| r.expect("every task joined"))
        .collect()
}

/// Records a fetch's result in `state` and logs it; true when the content changed.
fn record(state: &mut SourceState, result: &Result<Outcome, SourceError>) -> bool {
    let now = Utc::now();
    match result {
        Ok(outcome) => {
            state.succeeded(now, outcome);
            match outcome {
                Outcome::Updated {
                    changed: true,
                    entries,
                    sha256,
                    skipped,
                } => {
                    tracing::info!(source = %state.name, entries, sha256 = %sha256, "source updated");
                    if !skipped.is_empty() {
                        tracing::warn!(
                            source = %state.name,
                            bad_lines = skipped.bad_lines(),
                            other_types = skipped.by_type.values().sum::<usize>(),
                            "lines left out of the body (see embargo status / embargo fetch)"
                        );
                    }
                }
                _ => tracing::debug!(source = %state.name, "source unchanged"),
            }
            outcome.changed()
        }
        Err(e) => {
            state.failed(now, e.error.to_string());
            tracing::warn!(
                source = %state.name,
                consecutive_failures = state.consecutive_failures,
                keeping = if state.has_content() { "last-known-good copy" } else { "nothing: no copy yet" },
                "{e}"
            );
            false
        }
    }
}

impl SourceManager {
    /// Checks `config`'s sources, fetches each once (all at the same time, each within its
    /// timeout), then starts refreshing them. Fetch failures are not errors here: they are in
    /// [`SourceManager::states`], and the compile that follows uses the last-known-good copies
    /// or applies `on_source_failure`. Only a bad `[[sources]]` entry is refused.
    pub async fn start(config: &Config) -> Result<(Self, watch::Receiver<Changed>), ConfigError> {
        let specs = spec::specs(config)?;
        let fetchers = fetchers(specs)?;
        let mut states: Vec<SourceState> = fetchers
            .iter()
            .map(|f| {
                let mut s = SourceState::new(&f.spec.name, &f.spec.shown_url());
                match cache::load(&f.spec) {
                    Ok(c) => s.seed(&c),
                    Err(CacheError::Missing { .. }) => {}
                    Err(e) => tracing::warn!(source = %f.spec.name, "last-known-good copy not usable: {e}"),
                }
                s
            })
            .collect();
        for (state, result) in states.iter_mut().zip(fetch_each(&fetchers).await) {
            record(state, &result);
        }
        let states = Arc::new(Mutex::new(states));
        let (tx, rx) = watch::channel(Changed::default());
        let tx = Arc::new(tx);
        let tasks = fetchers
            .into_iter()
            .enumerate()
            .map(|(i, f)| tokio::spawn(refresh(i, f, Arc::clone(&states), Arc::clone(&tx))))
            .collect();
        Ok((Self { states, tasks }, rx))
    }

    /// Every source's state, in configuration order.
    pub fn states(&self) -> Vec<SourceState> {
        self.states.lock().expect("not poisoned").clone()
    }
}

/// Refreshes one source forever: on its interval, sooner after a failure.
async fn refresh(
    index: usize,
    fetcher: Fetcher,
    states: Arc<Mutex<Vec<SourceState>>>,
    tx: Arc<watch::Sender<Changed>>,
) {
    loop {
        let failures = states.lock().expect("not poisoned")[index].consecutive_failures;
        tokio::time::sleep(next_delay(fetcher.spec.interval, failures)).await;
        let result = fetcher.fetch().await;
        let changed = record(&mut states.lock().expect("not poisoned")[index], &result);
        if changed {
            tx.send_modify(|c| {
                c.generation += 1;
                c.source = Some(fetcher.spec.name.clone());
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_the_interval() {
        let hour = Duration::from_secs(3600);
        assert_eq!(next_delay(hour, 0), hour);
        assert_eq!(next_delay(hour, 1), Duration::from_secs(30));
        assert_eq!(next_delay(hour, 2), Duration::from_secs(60));
        assert_eq!(next_delay(hour, 7), Duration::from_secs(1920));
        assert_eq!(next_delay(hour, 8), hour);
        assert_eq!(next_delay(hour, u32::MAX), hour);
        let second = Duration::from_secs(1);
        assert_eq!(next_delay(second, 3), second);
    }
}
