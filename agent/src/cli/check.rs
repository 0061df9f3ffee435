//! `embargo check`: compiles the configuration and prints what was decided, as a summary a
//! person reads or as JSON.
//!
//! Invariants: the text summary is the one `embargo check` has always printed (the tests and
//! the shipped-policy checks match it); the JSON keeps every field it has always had (`today`,
//! `enforce`, `digest`, `entities`, `prefixes_v4`, `prefixes_v6`, `allow`, `report`) and adds
//! `findings`, the report's typed list ([`crate::policy::compile::Finding`]); the report's
//! sections are rendered by [`crate::policy::compile::Report::render_sections`], once.
//!
//! Ageing evidence ([`report::ageing`]): enforced entities with no current prefixes and groups
//! that stop counting within `--expiring` (default 14 days) are added to the report as
//! findings of their own kinds (sections in the text, `findings` and the report's
//! `no_current_prefixes` / `expiring_evidence` in the JSON, `expiring_horizon_seconds` beside
//! them); with `--strict` any of them exits 4 ([`Exit::Ageing`]).

use std::{fmt::Write as _, path::Path};

use super::{commands, exit::Exit};
use crate::policy::{
    compile::{Compiled, FindingKind, report},
    resolve::SourceStatus,
};

/// `embargo check [--json] [--expiring DURATION] [--strict]`: its output and exit status.
pub fn check(config: &Path, json: bool, expiring: std::time::Duration, strict: bool) -> Exit {
    match crate::compile_file(config, crate::now()) {
        Ok((_, mut compiled)) => {
            let horizon = chrono::Duration::from_std(expiring).unwrap_or(chrono::Duration::MAX);
            let ageing = report::ageing(&compiled, horizon);
            let found = ageing.len();
            compiled.report.findings.extend(ageing);
            let text = if json {
                let mut v = check_json(&compiled);
                v["expiring_horizon_seconds"] = expiring.as_secs().into();
                let json = serde_json::to_string_pretty(&v);
                format!("{}\n", json.expect("serializable"))
            } else {
                check_summary(config, &compiled)
            };
            out!("{text}");
            if strict && found > 0 {
                let r = &compiled.report;
                errln!(
                    "--strict: {} entities without current prefixes, {} groups whose evidence stops counting within {}",
                    r.total(FindingKind::NoCurrentPrefixes),
                    r.total(FindingKind::ExpiringEvidence),
                    humantime::format_duration(expiring)
                );
                return Exit::Ageing;
            }
            Exit::Success
        }
        Err(e) => commands::config_error(&e),
    }
}

/// `embargo check --json`: the summary, the full report and its findings.
pub fn check_json(c: &Compiled) -> serde_json::Value {
    serde_json::json!({
        "today": c.today,
        "enforce": c.enforce,
        "digest": c.digest(),
        "entities": c.entities,
        "prefixes_v4": c.rules.iter().filter(|r| r.net.is_ipv4()).count(),
        "prefixes_v6": c.rules.iter().filter(|r| r.net.is_ipv6()).count(),
        "allow": c.allow.iter().map(|(n, r)| serde_json::json!({"prefix": n, "reason": r})).collect::<Vec<_>>(),
        "report": c.report,
        "findings": c.report.findings,
    })
}

/// `embargo check`: what a person reads.
pub fn check_summary(path: &Path, c: &Compiled) -> String {
    let mut o = String::new();
    let v4 = c.rules.iter().filter(|r| r.net.is_ipv4()).count();
    let v6 = c.rules.len() - v4;
    let r = &c.report;
    let _ = writeln!(o, "{}: OK", path.display());
    let _ = writeln!(
        o,
        "enforcing designations by {} as of {}",
        c.enforce.join(", "),
        c.today
    );
    let empty = r.total(FindingKind::NoCurrentPrefixes);
    if empty == 0 {
        let _ = writeln!(
            o,
            "entities: {} enforced, {} left out",
            c.entities.len(),
            r.entities_left_out().len()
        );
    } else {
        let _ = writeln!(
            o,
            "entities: {} enforced, {empty} designated but not enforced (no current prefixes), {} left out",
            c.entities.len() - empty,
            r.entities_left_out().len()
        );
    }
    for e in &c.entities {
        let _ = writeln!(
            o,
            "  {:<20} {:<7} {:<8} {:>7} IPv4 {:>7} IPv6  {}{}",
            e.id,
            format!("{:?}", e.action).to_lowercase(),
            format!("{:?}", e.direction).to_lowercase(),
            e.prefixes_v4,
            e.prefixes_v6,
            e.designations
                .iter()
                .map(|d| format!("{} {}", d.authority, d.reference))
                .collect::<Vec<_>>()
                .join("; "),
            if e.prefixes_v4 + e.prefixes_v6 == 0 {
                "  NO CURRENT PREFIXES"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        o,
        "prefixes: {v4} IPv4, {v6} IPv6 (table digest {})",
        &c.digest()[..16]
    );
    if !c.allow.is_empty() {
        let _ = writeln!(o, "allow: {} prefixes never blocked", c.allow.len());
    }
    if !r.sources.is_empty() {
        let _ = writeln!(o, "sources ({}):", r.sources.len());
        let now = chrono::Utc::now();
        for s in &r.sources {
            let _ = match s.status {
                SourceStatus::Used => {
                    let age = s.checked_at.map_or_else(String::new, |t| {
                        // To the minute: seconds would only be noise.
                        let secs = (now - t).num_minutes().max(0) as u64 * 60;
                        format!(
                            ", confirmed {} ago",
                            humantime::format_duration(std::time::Duration::from_secs(secs))
                        )
                    });
                    let unit = s.list.as_ref().map_or_else(
                        || "prefixes".to_owned(),
                        |l| format!("designations for list `{l}`"),
                    );
                    writeln!(
                        o,
                        "  {:<20} {} {unit} from {}{age}",
                        s.name,
                        s.entries,
                        s.cache.display()
                    )
                }
                SourceStatus::Skipped => writeln!(
                    o,
                    "  {:<20} SKIPPED (on_source_failure = \"skip\"): {}",
                    s.name,
                    s.problem.as_deref().unwrap_or_default()
                ),
                SourceStatus::Unreferenced => {
                    writeln!(o, "  {:<20} not used by any network group", s.name)
                }
            };
        }
    }
    if !r.lists.is_empty() {
        let _ = writeln!(o, "lists ({}):", r.lists.len());
        for l in &r.lists {
            let _ = writeln!(
                o,
                "  {:<20} {} designations ({}, {}) from {}",
                l.name,
                l.designations,
                l.format,
                l.published.map_or_else(
                    || "no publication date".to_owned(),
                    |p| format!("published {p}")
                ),
                l.path.display()
            );
        }
    }
    r.render_sections(&mut o);
    o
}
