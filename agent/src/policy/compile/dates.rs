//! When the compiled policy stops being true: the next instant, after the one compiled for, at
//! which a date in the configuration changes what is enforced, so the agent can compile again
//! then ([`crate::run`] schedules a reload at [`Compiled::next_change`](super::Compiled)).
//!
//! The dates that count, each as the instant it takes effect (a date is its day's 00:00 UTC,
//! an instant is itself, see [`crate::config::When`]):
//! * of every designation by an enforced authority, as it counts (a list's date included):
//!   `listed_on` (it starts to count) and `delisted_on` (it stops);
//! * of every network group of an entity that is enforced now: its evidence's `valid_from`
//!   (it starts to count) and its expiry (`expires`, or `retrieved` + `max_age`; it stops).
//!
//! A group of an entity that is not enforced now cannot change what is enforced before one of
//! the entity's designation dates, which is considered, and the compile at that date considers
//! the groups. Only instants strictly after the compile's are candidates: one at the compile's
//! instant has taken effect already (a group counts from `valid_from` inclusive and stops at
//! its expiry).
//!
//! Invariants: pure (no clock); the earliest candidate wins, the first one found (entity, then
//! designation or group order) among equals, so the same inputs name the same change.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The next scheduled change: when, and what happens then.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextChange {
    /// The instant the change takes effect (UTC).
    pub at: DateTime<Utc>,
    /// What changes, for people: e.g. "entity `a` group 2: evidence expires".
    pub what: String,
}

/// The earliest change found so far after `now`.
#[derive(Debug)]
pub(super) struct Upcoming {
    now: DateTime<Utc>,
    next: Option<NextChange>,
}

impl Upcoming {
    pub(super) fn new(now: DateTime<Utc>) -> Self {
        Self { now, next: None }
    }

    /// Considers a change at `at`, described by `what` (called only when it is the earliest).
    pub(super) fn consider(&mut self, at: DateTime<Utc>, what: impl FnOnce() -> String) {
        if at > self.now && self.next.as_ref().is_none_or(|n| at < n.at) {
            self.next = Some(NextChange { at, what: what() });
        }
    }

    pub(super) fn into_next(self) -> Option<NextChange> {
        self.next
    }
}
