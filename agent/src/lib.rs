//! Embargo: a sanctions-aware egress firewall agent.
//!
//! The library behind the `embargo` binary:
//! * [`config`]: the configuration model (designations, evidence, allow, guard) and loading;
//! * [`resolve`]: indicator files, range tables ([`ranges`]: ASN, country) and source copies,
//!   read into candidate prefixes;
//! * [`lists`]: sanctions list files (UK, OFAC, EU, OpenSanctions) parsed into one model;
//! * [`sources`]: remote sources (HTTPS feeds): fetch, verify, parse, cache, refresh;
//! * [`compile`]: the pure policy compiler and its report; [`explain`] (`why`) and [`plan`];
//! * [`policy`], [`table`], [`dataplane`]: from the compiled policy to loaded XDP maps;
//! * [`run`] and [`status`]: the agent loop and what it reports;
//! * [`state`]: the state file that lets a restarted agent reuse the pinned maps by diff;
//! * [`audit`]: the hash-chained log of every policy the agent applied.
//! * [`metrics`] and [`http`]: the Prometheus metrics and the `/metrics`, `/healthz` and
//!   `/readyz` endpoints;
//! * [`events`]: drop and monitor events from the data plane, written as JSON lines;
//! * [`import`]: indicator data (STIX 2.1, IOC text, CSV) turned into network groups;
//! * [`output`]: what the command line prints, so a closed pipe never panics.
//! * [`safe_fs`]: atomic writes, appending opens and folder checks that never follow a symlink.
//! * [`input`]: the bounded reader of every outside file, and line numbers found in one pass.

pub mod audit;
pub mod cidr;
pub mod compile;
pub mod config;
pub mod dataplane;
pub mod events;
pub mod explain;
pub mod http;
pub mod import;
pub mod input;
pub mod lists;
pub mod live;
pub mod mapped;
pub mod metrics;
pub mod output;
pub mod plan;
pub mod policy;
pub mod ranges;
pub mod resolve;
pub mod run;
pub mod safe_fs;
pub mod sources;
pub mod state;
pub mod status;
pub mod system;
pub mod table;

use std::path::Path;

/// Loads, resolves and compiles the configuration at `path` as of `today`.
pub fn compile_file(
    path: &Path,
    today: chrono::NaiveDate,
) -> Result<(config::Config, compile::Compiled), config::ConfigError> {
    compile_file_resolved(path, today).map(|(config, _, compiled)| (config, compiled))
}

/// As [`compile_file`], keeping what was resolved (the files read, for [`audit`]).
pub fn compile_file_resolved(
    path: &Path,
    today: chrono::NaiveDate,
) -> Result<(config::Config, resolve::Resolved, compile::Compiled), config::ConfigError> {
    let config = config::load(path)?;
    let resolved = resolve::resolve(&config)?;
    let compiled = compile::compile(&config, &resolved, today)?;
    Ok((config, resolved, compiled))
}

/// Today's date (UTC), the reference for designation and evidence dates.
pub fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}
