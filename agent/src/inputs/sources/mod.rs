//! Remote sources: HTTPS feeds of prefixes that network groups reference by name.
//!
//! The flow, each step in its own module:
//! * [`spec`]: `[[sources]]` entries checked into [`SourceSpec`]s (HTTPS only, durations, caps);
//! * [`fetch`]: one fetch: conditional GET over rustls ([`http`]: hyper-util and hyper-rustls), size cap, timeout, then [`verify`]
//!   (pinned SHA-256, minisign signature), [`parse`] (the whole body or nothing) and
//!   [`guard`] (no prefix broader than the guard allows), then [`cache`] writes the
//!   last-known-good copy atomically;
//! * [`manager`]: [`SourceManager`] fetches every source at start, refreshes each on its
//!   interval, keeps a [`SourceState`] per source and says when content changed.
//!
//! A source whose `format` is a sanctions list format (`uk-csv`, ...) feeds a `[[lists]]` entry
//! (`source = "<name>"`) instead of network groups: [`parse::count`] validates its body with the
//! list parser, the rest (fetch, cache, refresh, change notification) is the same.
//!
//! A `taxii` source ([`taxii`]) is a TAXII 2.1 collection: every page of its objects endpoint is
//! one fetch, stored as one STIX bundle and read with the STIX importer's pattern rules.
//!
//! The policy never reads the network: [`crate::policy::resolve`] reads the last-known-good copies, so
//! `embargo check` and the agent compile the same content.

pub mod cache;
pub mod fetch;
pub mod guard;
pub mod http;
pub mod manager;
pub mod parse;
pub mod spec;
pub mod state;
pub mod taxii;
pub mod verify;

pub use fetch::{FetchError, Fetcher, Outcome, SourceError};
pub use manager::{Changed, SourceManager};
pub use spec::{DEFAULT_CACHE_DIR, Format, SourceSpec};
pub use state::SourceState;
