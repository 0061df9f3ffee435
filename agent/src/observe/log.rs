//! The log lines a compile's report gives: the compiler itself never logs (it returns a
//! [`Report`](crate::policy::compile::Report)), so its callers log from the report here.
//!
//! Invariants: the lines, their fields, levels, order and targets are those the agent and the
//! commands printed when the compiler logged them itself ([`compile_notes`]) and those the
//! agent adds at each start and reload ([`report`]); nothing here changes the report.

use crate::policy::compile::{Compiled, FindingKind};

/// The target the compiler's lines have always been logged under, so `RUST_LOG` filters that
/// name it keep working.
const TARGET: &str = "embargo::policy::compile";

/// The target the agent's own lines about a compile have always been logged under.
const RUN_TARGET: &str = "embargo::run";

/// What every compile has always logged, in the order it was decided: per entity, where its
/// file and its list disagree, designations whose list was skipped or that their list no
/// longer has (warnings), whether it is left out, and its groups whose evidence does not count
/// today (info). Logged wherever a configuration is compiled (`check`, `why`, `plan`, `export`
/// through [`crate::compile_file`], and the agent through [`report`]).
pub fn compile_notes(c: &Compiled) {
    // The delisted statuses are in the order their findings were pushed (entity, then
    // designation), so they pair up one to one.
    let mut delisted = c.listed.iter().filter(|st| st.delisted_on.is_some());
    for f in &c.report.findings {
        match f.kind {
            FindingKind::ListMismatch => {
                tracing::warn!(target: TARGET, "{}; the list's values are used", f.message)
            }
            FindingKind::UnfollowedDesignation => tracing::warn!(target: TARGET, "{}", f.message),
            FindingKind::DelistedByList => {
                if let Some(st) = delisted.next()
                    && let Some(since) = st.delisted_on
                {
                    tracing::warn!(target: TARGET, entity = st.entity.as_str(), list = %st.list, reference = %st.reference, %since, "designation not in its list: delisted");
                }
            }
            FindingKind::LeftOut => {
                tracing::info!(target: TARGET, entity = f.entity.as_str(), reason = %f.message, "entity left out")
            }
            FindingKind::ExpiredEvidence | FindingKind::PendingEvidence => {
                tracing::info!(target: TARGET, "{}", f.message)
            }
            _ => {}
        }
    }
}

/// Everything the agent says about a compile it applies (at start and at each reload): the
/// [`compile_notes`], then the entities and groups left out as warnings, and the prefixes
/// listed twice or cut by `allow` (examples, then how many more).
pub fn report(c: &Compiled) {
    compile_notes(c);
    let r = &c.report;
    for (id, why) in r.entities_left_out() {
        tracing::warn!(target: RUN_TARGET, entity = %id, reason = %why, "entity not enforced");
    }
    for kind in [FindingKind::ExpiredEvidence, FindingKind::PendingEvidence] {
        for f in r.of(kind) {
            tracing::warn!(target: RUN_TARGET, "{}", f.message);
        }
    }
    for (kind, what) in [
        (FindingKind::SamePrefix, "same prefix listed twice"),
        (FindingKind::Subtracted, "subtracted by allow"),
    ] {
        let mut kept = 0;
        for f in r.of(kind) {
            tracing::warn!(target: RUN_TARGET, "{what}: {}", f.message);
            kept += 1;
        }
        if r.total(kind) > kept {
            tracing::warn!(target: RUN_TARGET, "{what}: {} more", r.total(kind) - kept);
        }
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogInitError {
    /// `--log-level` (or `EMBARGO_LOG_LEVEL`) is not a level or filter directives.
    #[error(
        "--log-level `{given}`: {source} (give a level such as info or debug, or directives such as info,embargo::run=debug)"
    )]
    Filter {
        given: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
}

/// How log lines on standard error are written (`--log-format`). Defined here, with the logging
/// it configures, so this module needs nothing from the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// JSON lines.
    Json,
}

/// Sets up the process's log lines on standard error: `format`, filtered by `level` (a level
/// or `RUST_LOG`-style directives), else by `RUST_LOG`, else at info. Colours only when
/// standard error is a terminal (a journal, a file or a pipe gets plain text).
pub fn init(format: LogFormat, level: Option<&str>) -> Result<(), LogInitError> {
    use std::io::IsTerminal as _;

    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(given) => EnvFilter::try_new(given).map_err(|source| LogInitError::Filter {
            given: given.to_owned(),
            source,
        })?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A closed stderr drops log lines; tracing's own report of that would panic.
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
    Ok(())
}
