//! What the agent shows of itself: Prometheus metrics and the HTTP endpoints that serve them,
//! drop and monitor events from the data plane, the hash-chained audit log of every applied
//! policy, `embargo status`, the followers of the events (`embargo events --follow`, [`follow`]), and the log lines a compile's report gives ([`log`]).
//!
//! Nothing here decides a verdict: these modules read the data plane's counters and the run
//! loop's record and render them.

pub mod audit;
pub mod events;
pub mod follow;
pub mod http;
pub mod log;
pub mod metrics;
pub mod report;
pub mod status;
