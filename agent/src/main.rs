//! The `embargo` command line: parses the arguments ([`embargo::cli::args`]), runs the command
//! ([`embargo::cli::commands`]) and exits with its status ([`embargo::cli::exit`]). Nothing else
//! lives here.

use std::process::ExitCode;

use clap::Parser as _;
use embargo::{
    cli::{
        args::{AuditCommand, Cli, Command, ImportCommand},
        commands,
        exit::Exit,
        import,
    },
    policy::{compile::Compiled, resolve::SourceStatus},
};

fn main() -> ExitCode {
    let code = command(Cli::parse());
    // What is still buffered is written (or dropped, if the reader has gone) before the exit.
    embargo::cli::output::flush();
    code.into()
}

/// Runs one command; its exit status.
fn command(cli: Cli) -> Exit {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // A closed stderr drops log lines; tracing's own report of that would panic.
        .log_internal_errors(false)
        .init();
    match cli.command {
        Command::Run(args) => commands::run(args),
        Command::Audit {
            command: AuditCommand::Verify { log },
        } => commands::audit_verify(&log),
        Command::Detach {
            pin_dir,
            state_dir,
            control_socket,
        } => commands::detach(&pin_dir, &state_dir, &control_socket),
        Command::Check { config, json } => match embargo::compile_file(&config, embargo::today()) {
            Ok((_, compiled)) => {
                let text = if json {
                    let json = serde_json::to_string_pretty(&check_json(&compiled));
                    format!("{}\n", json.expect("serializable"))
                } else {
                    check_summary(&config, &compiled)
                };
                embargo::cli::output::stdout(format_args!("{text}"));
                Exit::Success
            }
            Err(e) => commands::config_error(&e),
        },
        Command::Fetch { config } => commands::fetch(&config),
        Command::Import {
            format: ImportCommand::List(format),
        } => import::list(format),
        Command::Import {
            format: ImportCommand::Indicators(format),
        } => import::indicators(format),
        Command::Plan {
            config,
            control_socket,
            limit,
            json,
        } => commands::plan(&config, &control_socket, limit, json),
        Command::Why {
            address,
            config,
            json,
        } => commands::why(address, &config, json),
        Command::Export {
            format,
            entity,
            monitored,
            config,
            out,
        } => commands::export(format, entity, monitored, &config, out.as_deref()),
        Command::Status {
            json,
            control_socket,
            verify,
        } => commands::status(json, &control_socket, verify),
    }
}

/// `embargo check --json`: the summary and the full report.
fn check_json(c: &Compiled) -> serde_json::Value {
    serde_json::json!({
        "today": c.today,
        "enforce": c.enforce,
        "digest": c.digest(),
        "entities": c.entities,
        "prefixes_v4": c.rules.iter().filter(|r| r.net.is_ipv4()).count(),
        "prefixes_v6": c.rules.iter().filter(|r| r.net.is_ipv6()).count(),
        "allow": c.allow.iter().map(|(n, r)| serde_json::json!({"prefix": n, "reason": r})).collect::<Vec<_>>(),
        "report": c.report,
    })
}

/// `embargo check`: what a person reads.
fn check_summary(path: &std::path::Path, c: &Compiled) -> String {
    use std::fmt::Write as _;
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
    let _ = writeln!(
        o,
        "entities: {} enforced, {} left out",
        c.entities.len(),
        r.entities_left_out.len()
    );
    for e in &c.entities {
        let _ = writeln!(
            o,
            "  {:<20} {:<7} {:<8} {:>7} IPv4 {:>7} IPv6  {}",
            e.id,
            format!("{:?}", e.action).to_lowercase(),
            format!("{:?}", e.direction).to_lowercase(),
            e.prefixes_v4,
            e.prefixes_v6,
            e.designations
                .iter()
                .map(|d| format!("{} {}", d.authority, d.reference))
                .collect::<Vec<_>>()
                .join("; ")
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
    let mut section = |title: &str, lines: &[String], total: usize| {
        if total == 0 {
            return;
        }
        let _ = writeln!(o, "{title} ({total}):");
        for l in lines {
            let _ = writeln!(o, "  {l}");
        }
        if total > lines.len() {
            let _ = writeln!(o, "  ... and {} more", total - lines.len());
        }
    };
    let left: Vec<String> = r
        .entities_left_out
        .iter()
        .map(|(id, why)| format!("{id}: {why}"))
        .collect();
    section("left out: entities", &left, left.len());
    section(
        "delisted: designations no longer in their list",
        &r.delisted_by_list,
        r.delisted_by_list.len(),
    );
    section(
        "warning: entity files that disagree with their list (the list's values are used)",
        &r.list_warnings,
        r.list_warnings.len(),
    );
    section(
        "warning: designations whose list was skipped (kept as their entity file writes them, not delisted)",
        &r.unfollowed_designations,
        r.unfollowed_designations.len(),
    );
    section(
        "left out: expired evidence",
        &r.expired_groups,
        r.expired_groups.len(),
    );
    section(
        "left out: evidence not valid yet (valid_from)",
        &r.pending_groups,
        r.pending_groups.len(),
    );
    section("subtracted by allow", &r.subtracted, r.subtracted_total);
    section(
        "same prefix in two entities",
        &r.same_prefix,
        r.same_prefix_total,
    );
    section(
        "nested prefixes of different entities (the more specific wins)",
        &r.nested,
        r.nested_total,
    );
    section(
        "broad prefixes accepted by guard_override",
        &r.guard_overridden,
        r.guard_overridden.len(),
    );
    if r.duplicates > 0 {
        let _ = writeln!(
            o,
            "duplicates within an entity, counted once: {}",
            r.duplicates
        );
    }
    o
}
