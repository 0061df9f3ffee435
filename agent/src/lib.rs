//! Embargo: a sanctions-aware egress firewall agent.
//!
//! The library behind the `embargo` binary, one folder per part of the path from a list to a
//! dropped packet:
//! * [`config`]: the configuration model (entities, designations, evidence, allow, guard) and
//!   its loading;
//! * [`inputs`]: what comes from outside: sanctions lists, indicator imports, range tables
//!   (ASN, country) and remote sources (HTTPS feeds);
//! * [`policy`]: resolve what a configuration names, compile it into the enforced policy (pure),
//!   lay it out for the kernel; `why` ([`policy::explain`]) and `plan` answer from it;
//! * [`dataplane`]: the XDP/TC programs loaded, their maps filled (the tries in
//!   [`dataplane::trie`]), attached, pinned, attested and updated in place; the state file a
//!   restarted agent reuses the pinned maps by; a packet's verdict is the XDP program's
//!   (`ebpf/embargo-xdp`) walk of those maps;
//! * [`observe`]: metrics and the HTTP endpoints, drop events, the audit log, `status`;
//! * [`run`]: the agent loop: start, reload, control socket;
//! * [`files`]: the bounded reader and the symlink-safe writer every module uses;
//! * [`cli`]: the command line's library side; [`build_info`]: the version, commit and build
//!   date.

pub mod build_info;
pub mod cli;
pub mod config;
pub mod dataplane;
pub mod files;
pub mod inputs;
pub mod observe;
pub mod policy;
pub mod run;

/// The tests' seeded generator (splitmix64). One copy for the workspace: the root tests crate's
/// `tests/src/rng.rs`, included here by path (that crate depends on this one, so this one cannot
/// depend on it).
#[cfg(test)]
#[allow(dead_code, reason = "the unit tests use a part of it")]
#[path = "../../tests/src/rng.rs"]
pub(crate) mod test_rng;

use std::path::Path;

/// Loads, validates, resolves and compiles the configuration at `path` as of `now` (an instant,
/// or a date: its 00:00 UTC), for the commands: logs what the compile decided as it always has
/// ([`observe::log::compile_notes`]).
pub fn compile_file(
    path: &Path,
    now: impl Into<policy::compile::Now>,
) -> Result<(config::Config, policy::compile::Compiled), config::ConfigError> {
    let (config, _, compiled) = compile_file_resolved(path, now)?;
    observe::log::compile_notes(&compiled);
    Ok((config, compiled))
}

/// As [`compile_file`], keeping what was resolved (the files read, for [`observe::audit`]),
/// without logging (the agent logs the whole report, [`observe::log::report`]).
pub fn compile_file_resolved(
    path: &Path,
    now: impl Into<policy::compile::Now>,
) -> Result<
    (
        config::Config,
        policy::resolve::Resolved,
        policy::compile::Compiled,
    ),
    config::ConfigError,
> {
    let config = config::load(path)?;
    let valid = config::validate::validate(&config)?;
    let resolved = policy::resolve::resolve(&config)?;
    let compiled = policy::compile::compile(&valid, &resolved, now)?;
    Ok((config, resolved, compiled))
}

/// Today's date (UTC), the reference for designation dates and the default of dates written.
pub fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

/// The current instant (UTC): what the agent and the commands compile for, so evidence dates
/// written as instants take effect to the second.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}
