//! What is known about each source's fetches, for logs, status and metrics
//! (`embargo_source_last_success_timestamp_seconds{source}`,
//! `embargo_source_fetch_errors_total{source}`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{cache::Cached, fetch::Outcome};

/// One source's fetch history since the agent started (the last success survives restarts:
/// it is read from the cached copy).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SourceState {
    pub name: String,
    pub url: String,
    /// The last fetch that ended with usable content (a 200 that passed, or a 304).
    pub last_success: Option<DateTime<Utc>>,
    /// The last fetch, whatever its end.
    pub last_attempt: Option<DateTime<Utc>>,
    /// Failed fetches since the last success.
    pub consecutive_failures: u32,
    /// Failed fetches since the agent started: a counter.
    pub fetch_errors_total: u64,
    /// The last failure's message (kept after a later success, for status).
    pub last_error: Option<String>,
    /// Prefixes in the last-known-good copy (0 when there is none).
    pub entries: usize,
    /// SHA-256 of the last-known-good copy.
    pub sha256: Option<String>,
    /// What the last-known-good copy's parse left out: bad lines skipped (`on_bad_line =
    /// "skip"`, each with its line and reason, the first 1,000 listed) and rows of other types
    /// (`type_column`), counted by reason and type. Empty when nothing was.
    #[serde(default)]
    pub skipped: super::parse::Skipped,
}

impl SourceState {
    /// A source with nothing fetched yet.
    pub fn new(name: &str, url: &str) -> Self {
        Self {
            name: name.to_owned(),
            url: url.to_owned(),
            ..Self::default()
        }
    }

    /// Takes what the cached copy says (at start).
    pub fn seed(&mut self, cached: &Cached) {
        self.last_success = Some(cached.meta.checked_at);
        self.entries = cached.meta.entries;
        self.sha256 = Some(cached.meta.sha256.clone());
        self.skipped = cached.meta.skipped.clone();
    }

    /// Whether the source has content the policy can use.
    pub fn has_content(&self) -> bool {
        self.sha256.is_some()
    }

    /// Records a successful fetch.
    pub fn succeeded(&mut self, at: DateTime<Utc>, outcome: &Outcome) {
        self.last_attempt = Some(at);
        self.last_success = Some(at);
        self.consecutive_failures = 0;
        let (Outcome::Updated {
            entries,
            sha256,
            skipped,
            ..
        }
        | Outcome::NotModified {
            entries,
            sha256,
            skipped,
        }) = outcome;
        self.entries = *entries;
        self.sha256 = Some(sha256.clone());
        self.skipped = skipped.clone();
    }

    /// Records a failed fetch; the content stays what it was.
    pub fn failed(&mut self, at: DateTime<Utc>, error: String) {
        self.last_attempt = Some(at);
        self.consecutive_failures += 1;
        self.fetch_errors_total += 1;
        self.last_error = Some(error);
    }

    /// How old the content is: `now` minus the last success (`None` if there never was one).
    pub fn staleness(&self, now: DateTime<Utc>) -> Option<Duration> {
        self.last_success
            .map(|t| (now - t).to_std().unwrap_or(Duration::ZERO))
    }

    /// `embargo_source_last_success_timestamp_seconds`: Unix time of the last success, 0 when
    /// there never was one (the Prometheus convention for "never").
    pub fn last_success_timestamp_seconds(&self) -> f64 {
        self.last_success
            .map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_and_keep_the_content() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut s = SourceState::new("feed", "https://example.org/f");
        assert_eq!(s.last_success_timestamp_seconds(), 0.0);
        assert_eq!(s.staleness(t0), None);
        s.succeeded(
            t0,
            &Outcome::Updated {
                changed: true,
                entries: 3,
                sha256: "ab".into(),
                skipped: Default::default(),
            },
        );
        let t1 = t0 + chrono::Duration::minutes(90);
        s.failed(t1, "boom".into());
        s.failed(t1, "boom again".into());
        assert_eq!(s.consecutive_failures, 2);
        assert_eq!(s.fetch_errors_total, 2);
        assert_eq!(s.entries, 3);
        assert!(s.has_content());
        assert_eq!(s.last_error.as_deref(), Some("boom again"));
        assert_eq!(s.staleness(t1), Some(Duration::from_secs(90 * 60)));
        assert_eq!(s.last_success_timestamp_seconds(), t0.timestamp() as f64);
        s.succeeded(
            t1,
            &Outcome::NotModified {
                entries: 3,
                sha256: "ab".into(),
                skipped: Default::default(),
            },
        );
        assert_eq!(s.consecutive_failures, 0);
        assert_eq!(s.fetch_errors_total, 2, "a counter never goes down");
        assert_eq!(s.staleness(t1), Some(Duration::ZERO));
    }
}
