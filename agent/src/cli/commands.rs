//! The bodies of the `embargo` commands: each takes its parsed arguments ([`super::args`]),
//! prints through [`super::output`] and returns its [`Exit`] status.
//!
//! Invariants: a command prints its result on standard output and its errors and notes on
//! standard error, each error line starting `error: `; an error's exit status comes from
//! [`exit_code`], never from a number written here; a command that refuses its input writes
//! nothing (the list and indicator imports check every destination before the first write).

use std::path::Path;

use super::{
    args::RunArgs,
    exit::{Exit, exit_code},
};
use crate::{
    config::ConfigError,
    files::write,
    observe::{audit, status},
    policy::{explain, export, plan},
    run::{self, RunError, RunOptions},
};

/// `embargo run`: enforces until SIGINT or SIGTERM.
pub fn run(args: RunArgs) -> Exit {
    let RunArgs {
        config,
        interfaces,
        control_socket,
        audit_log,
        metrics_listen,
        events_log,
        pin_dir,
        no_pin,
        keep_attached,
        state_dir,
    } = args;
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            fail!("starting the runtime: {e}");
            return Exit::Failure;
        }
    };
    match rt.block_on(run::run(RunOptions {
        config,
        interfaces,
        control_socket,
        audit_log,
        metrics_listen,
        events_log,
        pin_dir: (!no_pin).then_some(pin_dir),
        keep_attached,
        state_dir,
    })) {
        Ok(()) => Exit::Success,
        Err(RunError::Config(e)) => config_error(&e),
        Err(e) => {
            fail!("{e}");
            exit_code(&e)
        }
    }
}

/// `embargo detach`: removes every pinned link, the netlink egress filters, the pinned maps
/// and the state file, once the agent is gone.
///
/// With `json`, one JSON document on standard output instead of the lines:
/// `{"pin_dir", "filters": [names], "links": [names], "maps": [paths], "state_file": path|null,
/// "errors": [messages]}` (what was removed, and what could not be).
pub fn detach(pin_dir: &Path, state_dir: &Path, control_socket: &Path, json: bool) -> Exit {
    if status::query(control_socket).is_ok() {
        fail!(
            "an agent is running ({}): stop it instead (SIGTERM detaches), or it keeps the links",
            control_socket.display()
        );
        return Exit::Failure;
    }
    // Netlink egress filters have no pin: the state file names them.
    let filters = match crate::dataplane::state::read(state_dir) {
        Ok(s) => s.map(|s| s.netlink_filters).unwrap_or_default(),
        // A file of format 1 still names its netlink filters.
        Err(crate::dataplane::state::StateError::OldFormat {
            netlink_filters, ..
        }) => netlink_filters,
        Err(e) => {
            errln!("warning: {e}");
            Vec::new()
        }
    };
    let filter_results = crate::dataplane::remove_netlink_filters(&filters);
    let link_results = crate::dataplane::detach_pinned(pin_dir, |_| false);
    if filter_results.is_empty() && link_results.is_empty() && !json {
        outln!("nothing pinned in {}", pin_dir.display());
    }
    let mut errors: Vec<String> = Vec::new();
    let mut removed =
        |results: Vec<(String, Result<(), crate::dataplane::DataplaneError>)>| -> Vec<String> {
            let mut done = Vec::new();
            for (name, r) in results {
                match r {
                    Ok(()) => {
                        if !json {
                            outln!("detached {name}");
                        }
                        done.push(name);
                    }
                    Err(e) => errors.push(format!("{name}: {e}")),
                }
            }
            done
        };
    let filters_removed = removed(filter_results);
    let links_removed = removed(link_results);
    let mut maps = Vec::new();
    for (path, r) in crate::dataplane::pins::remove_generations(pin_dir) {
        match r {
            Ok(()) => {
                if !json {
                    outln!("unpinned the maps in {}", path.display());
                }
                maps.push(path.display().to_string());
            }
            Err(e) => errors.push(format!("removing {}: {e}", path.display())),
        }
    }
    let mut state_file = None;
    match crate::dataplane::state::remove(state_dir) {
        Ok(true) => {
            let path = crate::dataplane::state::path(state_dir);
            if !json {
                outln!("removed the state file {}", path.display());
            }
            state_file = Some(path.display().to_string());
        }
        Ok(false) => {}
        Err(e) => errors.push(e.to_string()),
    }
    let _ = std::fs::remove_dir(pin_dir);
    for e in &errors {
        fail!("{e}");
    }
    if json {
        let doc = serde_json::json!({
            "pin_dir": pin_dir.display().to_string(),
            "filters": filters_removed,
            "links": links_removed,
            "maps": maps,
            "state_file": state_file,
            "errors": errors,
        });
        outln!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("serializable")
        );
    }
    Exit::ok_or_failure(errors.is_empty())
}

/// `embargo plan`: what applying `config` would change against what the agent has loaded.
pub fn plan(config: &Path, control_socket: &Path, limit: usize, json: bool) -> Exit {
    let compiled = match crate::compile_file(config, crate::now()) {
        Ok((_, c)) => c,
        Err(e) => return config_error(&e),
    };
    let next = plan::TableSnapshot::of(&compiled);
    let loaded = match status::query_table(control_socket) {
        Ok(t) => t,
        Err(e) => {
            errln!("note: {e}\nnote: comparing against an empty policy");
            plan::TableSnapshot::default()
        }
    };
    let p = plan::diff(&loaded, &next);
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&p).expect("serializable")
        );
    } else {
        out!("{}", plan::render(&p, limit));
    }
    Exit::Success
}

/// `embargo why`: why `address` is blocked, monitored, allowed or not listed.
pub fn why(queries: &[String], config: &Path, json: bool) -> Exit {
    // The questions first: a bad one is refused before anything is compiled.
    let mut asked: Vec<explain::Query> = Vec::new();
    let mut from_stdin = false;
    for q in queries {
        if q == "-" {
            from_stdin = true;
            let text = match read_stdin(MAX_STDIN_BYTES) {
                Ok(t) => t,
                Err(e) => {
                    fail!("reading standard input: {e}");
                    return Exit::DataErr;
                }
            };
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                match line.parse() {
                    Ok(q) => asked.push(q),
                    Err(e) => {
                        fail!(
                            "standard input, line {}: {e}; give one address or CIDR per line",
                            i + 1
                        );
                        return Exit::DataErr;
                    }
                }
            }
        } else {
            match q.parse() {
                Ok(q) => asked.push(q),
                Err(e) => {
                    fail!("{e}; give addresses, CIDRs or - for standard input");
                    return Exit::Usage;
                }
            }
        }
    }
    let compiled = match crate::compile_file(config, crate::now()) {
        Ok((_, c)) => c,
        Err(e) => return config_error(&e),
    };
    let explainer = explain::Explainer::new(&compiled);
    let one = asked.len() == 1 && !from_stdin;
    for (i, q) in asked.iter().enumerate() {
        if super::output::stdout_closed() {
            break;
        }
        let (text, value) = match *q {
            explain::Query::Address(a) => {
                let x = explainer.explain(a);
                if json {
                    (None, serde_json::to_value(&x))
                } else {
                    (Some(explain::render(&x)), Ok(serde_json::Value::Null))
                }
            }
            explain::Query::Network(n) => {
                let x = explainer.cover(n);
                if json {
                    (None, serde_json::to_value(&x))
                } else {
                    (
                        Some(explain::render_coverage(&x)),
                        Ok(serde_json::Value::Null),
                    )
                }
            }
        };
        match (text, value) {
            (Some(t), _) => {
                if i > 0 {
                    outln!();
                }
                out!("{t}");
            }
            (None, Ok(v)) if one => {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&v).expect("serializable")
                )
            }
            (None, Ok(v)) => outln!("{v}"),
            (None, Err(e)) => {
                fail!("{e}");
                return Exit::Failure;
            }
        }
    }
    Exit::Success
}

/// The most `embargo why -` reads from standard input (about 4 million addresses).
const MAX_STDIN_BYTES: u64 = 64 << 20;

/// Standard input as text, at most `cap` bytes.
fn read_stdin(cap: u64) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(cap + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(std::io::Error::other(format!(
            "over {cap} bytes; split the input"
        )));
    }
    String::from_utf8(bytes)
        .map(|t| crate::files::read::strip_bom(&t).to_owned())
        .map_err(|_| std::io::Error::other("not UTF-8 text"))
}

/// `embargo export`: the enforced prefixes in `format`, on standard output or into `out`.
pub fn export(
    format: export::Format,
    entity: Option<String>,
    monitored: bool,
    config: &Path,
    out: Option<&Path>,
) -> Exit {
    let compiled = match crate::compile_file(config, crate::now()) {
        Ok((_, c)) => c,
        Err(e) => return config_error(&e),
    };
    let sel = export::Selection { entity, monitored };
    let mut bytes = Vec::new();
    if let Err(e) = export::write(&compiled, format, &sel, &mut bytes) {
        fail!("{e}");
        return exit_code(&e);
    }
    match out {
        None => {
            out!("{}", String::from_utf8_lossy(&bytes));
            Exit::Success
        }
        Some(path) => match write::write_atomic(path, &bytes, write::Mode::Create(0o644)) {
            Ok(()) => {
                errln!(
                    "wrote {} ({} bytes, {} export of the policy {})",
                    path.display(),
                    bytes.len(),
                    format.name(),
                    compiled.digest()
                );
                Exit::Success
            }
            Err(e) => {
                fail!("{e}");
                Exit::CantCreate
            }
        },
    }
}

/// `embargo status`: the running agent's state; with `verify`, its kernel maps attested first
/// (exit 3 when they had drifted).
pub fn status(json: bool, control_socket: &Path, verify: bool) -> Exit {
    let mut drifted = false;
    if verify {
        match status::query_verify(control_socket) {
            Ok(d) => {
                drifted = d.total() > 0;
                if !json {
                    outln!(
                        "attestation: {} drifted entries (IPv4 trie {}, IPv6 trie {}, policies {}, roles {}){}",
                        d.total(),
                        d.v4_entries,
                        d.v6_entries,
                        d.policies,
                        d.roles,
                        if drifted { ", repaired" } else { "" }
                    );
                }
            }
            Err(e) => {
                fail!("{e}");
                return Exit::Failure;
            }
        }
    }
    let code = status_command(json, control_socket);
    if drifted && code == Exit::Success {
        Exit::Drift
    } else {
        code
    }
}

fn status_command(json: bool, control_socket: &Path) -> Exit {
    match status::query(control_socket) {
        Ok(s) if json => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&s).expect("serializable")
            );
            Exit::Success
        }
        Ok(s) => {
            out!("{}", status::render(&s));
            Exit::Success
        }
        Err(e) => {
            fail!("{e}");
            Exit::Failure
        }
    }
}

/// `embargo fetch`: each source fetched once; exit 1 when any failed.
///
/// With `json`, one JSON document on standard output instead of the lines: `{"sources": [{
/// "name", "url" (credentials hidden), "outcome": "updated"|"not_modified"|"failed",
/// "changed", "unit" ("prefixes"|"designations"), "entries", "sha256", "error", "bad_lines",
/// "skipped": {by_reason, by_type, lines: [{line, reason, message}]}}], "failed": N}` (a failed
/// source has null entries, sha256 and skipped; its error also goes to the JSON error object).
pub fn fetch(path: &Path, json: bool) -> Exit {
    use crate::inputs::sources::{Outcome, manager};
    let config = match crate::config::load(path) {
        Ok(c) => c,
        Err(e) => return config_error(&e),
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            fail!("starting the runtime: {e}");
            return Exit::Failure;
        }
    };
    let results = match rt.block_on(manager::fetch_all(&config)) {
        Ok(r) => r,
        Err(e) => return config_error(&e),
    };
    let mut failed = 0;
    let mut docs = Vec::new();
    for (def, result) in config.main.sources.iter().zip(results) {
        let name = def.name.get_ref();
        let taxii = *def.format.get_ref() == crate::config::SourceFormat::Taxii;
        let unit = if def.format.get_ref().list_format().is_some() {
            "designations"
        } else {
            "prefixes"
        };
        if json {
            let url = crate::inputs::sources::spec::redact_url(def.url.get_ref().trim());
            let mut doc = serde_json::json!({
                "name": name,
                "url": url,
                "unit": unit,
                "outcome": "failed",
                "changed": false,
                "entries": null,
                "sha256": null,
                "error": null,
                "bad_lines": 0,
                "skipped": null,
            });
            match &result {
                Ok(
                    Outcome::Updated {
                        entries,
                        sha256,
                        skipped,
                        ..
                    }
                    | Outcome::NotModified {
                        entries,
                        sha256,
                        skipped,
                    },
                ) => {
                    let updated = matches!(result, Ok(Outcome::Updated { .. }));
                    doc["outcome"] = if updated { "updated" } else { "not_modified" }.into();
                    doc["changed"] = result.as_ref().is_ok_and(Outcome::changed).into();
                    doc["entries"] = (*entries).into();
                    doc["sha256"] = sha256.as_str().into();
                    doc["bad_lines"] = skipped.bad_lines().into();
                    doc["skipped"] = serde_json::to_value(skipped).expect("serializable");
                }
                Err(e) => {
                    failed += 1;
                    doc["error"] = e.error.to_string().into();
                    fail!("{e}; the last-known-good copy, if any, is kept");
                }
            }
            docs.push(doc);
            continue;
        }
        match result {
            Ok(Outcome::Updated {
                changed,
                entries,
                skipped,
                ..
            }) => {
                outln!(
                    "{name}: {} ({entries} {unit})",
                    if changed { "updated" } else { "unchanged" }
                );
                report_skipped(name, def.url.get_ref(), taxii, &skipped);
            }
            Ok(Outcome::NotModified {
                entries, skipped, ..
            }) => {
                outln!("{name}: not modified ({entries} {unit})");
                report_skipped(name, def.url.get_ref(), taxii, &skipped);
            }
            Err(e) => {
                failed += 1;
                fail!("{e}; the last-known-good copy, if any, is kept");
            }
        }
    }
    if json {
        let doc = serde_json::json!({ "sources": docs, "failed": failed });
        outln!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("serializable")
        );
    }
    if failed > 0 {
        Exit::Failure
    } else {
        Exit::Success
    }
}

/// What a source's body left out, on standard error: rows of other types by type, then every
/// skipped bad line (URL, line, reason) as listed.
fn report_skipped(
    name: &str,
    url: &str,
    taxii: bool,
    skipped: &crate::inputs::sources::parse::Skipped,
) {
    if skipped.is_empty() {
        return;
    }
    let url = crate::inputs::sources::spec::redact_url(url.trim());
    for (t, n) in &skipped.by_type {
        if taxii {
            // A TAXII collection's entries are the STIX importer's reasons, not CSV types.
            errln!("{name}: skipped {n}: {t}");
        } else {
            errln!("{name}: skipped {n} rows of type `{t}` (not in `types`)");
        }
    }
    let bad = skipped.bad_lines();
    if bad > 0 {
        errln!("warning: {name}: skipped {bad} bad lines (on_bad_line = \"skip\"):");
    }
    for l in &skipped.lines {
        errln!(
            "  {url} line {}: {} ({})",
            l.line,
            l.message,
            l.reason.label()
        );
    }
    if bad > skipped.lines.len() {
        errln!(
            "  ... and {} more bad lines, counted but not listed",
            bad - skipped.lines.len()
        );
    }
}

/// `embargo audit verify`: 0 with the record count when the chain holds, else 1.
///
/// With `json`, on standard output whether intact or not: `{"path", "records", "intact",
/// "last_hash", "first_broken": {"line", "seq", "reason", "problem"}|null}` (`reason` the text
/// message, `problem` its typed form); a broken chain is also the JSON error object.
pub fn audit_verify(log: &Path, json: bool) -> Exit {
    match audit::verify(log) {
        Ok(r) if json => {
            let first_broken = r.first_break.as_ref().map(|b| {
                serde_json::json!({
                    "line": b.line,
                    "seq": b.seq,
                    "reason": b.problem.to_string(),
                    "problem": b.problem,
                })
            });
            let doc = serde_json::json!({
                "path": log.display().to_string(),
                "records": r.records,
                "intact": r.intact(),
                "last_hash": r.last_hash,
                "first_broken": first_broken,
            });
            outln!(
                "{}",
                serde_json::to_string_pretty(&doc).expect("serializable")
            );
            if let Some(b) = &r.first_break {
                fail!("{}: chain broken at {b}", log.display());
                errln!("{} records before it are intact", r.records);
            }
            Exit::ok_or_failure(r.intact())
        }
        Ok(r) => match &r.first_break {
            None => {
                outln!("{}: {} records, chain intact", log.display(), r.records);
                Exit::Success
            }
            Some(b) => {
                fail!("{}: chain broken at {b}", log.display());
                errln!("{} records before it are intact", r.records);
                Exit::Failure
            }
        },
        Err(e) => {
            fail!("{e}");
            Exit::Failure
        }
    }
}

/// Reports a refused configuration; its exit status.
pub fn config_error(e: &ConfigError) -> Exit {
    fail!("{e}");
    errln!("the configuration was refused; nothing from it was applied");
    exit_code(e)
}

/// `embargo completion SHELL`: the shell's completion script for every command and flag.
pub fn completion(shell: clap_complete::Shell) -> Exit {
    let mut cmd = <super::args::Cli as clap::CommandFactory>::command();
    let mut bytes = Vec::new();
    clap_complete::generate(shell, &mut cmd, "embargo", &mut bytes);
    print_bytes(&bytes)
}

/// `embargo man`: the embargo(8) manual page, roff, with a section per subcommand.
pub fn man() -> Exit {
    let cmd = <super::args::Cli as clap::CommandFactory>::command();
    let mut bytes = Vec::new();
    let man = clap_mangen::Man::new(cmd.clone()).section("8");
    // The whole page but clap_mangen's list of subcommands, which names one page per
    // subcommand: here each has a section of this page instead.
    let rendered = (|| {
        man.render_title(&mut bytes)?;
        man.render_name_section(&mut bytes)?;
        man.render_synopsis_section(&mut bytes)?;
        man.render_description_section(&mut bytes)?;
        man.render_options_section(&mut bytes)?;
        // Each subcommand's synopsis, description and options after the main page.
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = format!("embargo {}", sub.get_name());
            bytes.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
            let sub_man = clap_mangen::Man::new(sub.clone().bin_name(name));
            let mut section = Vec::new();
            sub_man.render_synopsis_section(&mut section)?;
            sub_man.render_description_section(&mut section)?;
            sub_man.render_options_section(&mut section)?;
            // Its parts as subsections of the command's section.
            let section = String::from_utf8_lossy(&section).replace(".SH ", ".SS ");
            bytes.extend_from_slice(section.as_bytes());
        }
        man.render_version_section(&mut bytes)
    })();
    if let Err(e) = rendered {
        fail!("rendering the manual page: {e}");
        return Exit::Failure;
    }
    print_bytes(&bytes)
}

fn print_bytes(bytes: &[u8]) -> Exit {
    match super::output::stdout_bytes(bytes) {
        Ok(()) => Exit::Success,
        Err(e) => {
            fail!("writing to standard output: {e}");
            Exit::Io
        }
    }
}

/// `embargo status --watch`: samples the agent's counters every `interval` and shows the
/// per-entity rates, redrawn in place on a terminal (a frame after another otherwise, or JSON
/// lines with `json`), until `count` samples, a closed output or an unreachable agent.
pub fn status_watch(
    json: bool,
    control_socket: &Path,
    interval: std::time::Duration,
    count: Option<u64>,
) -> Exit {
    use std::io::IsTerminal as _;
    let redraw = !json && std::io::stdout().is_terminal();
    let mut prev: Option<(std::time::Instant, status::Status)> = None;
    let mut taken = 0u64;
    loop {
        let s = match status::query(control_socket) {
            Ok(s) => s,
            Err(e) => {
                fail!("{e}");
                return Exit::Failure;
            }
        };
        let now = std::time::Instant::now();
        let secs = prev
            .as_ref()
            .map_or(0.0, |(t, _)| now.duration_since(*t).as_secs_f64());
        let rates = status::rates(prev.as_ref().map(|(_, p)| p), &s, secs);
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        if json {
            let line = serde_json::json!({ "time": at, "interval_s": secs, "rates": rates });
            outln!("{line}");
        } else {
            let table = status::render_rates(&rates);
            if redraw {
                // Home and clear, then the frame: the table stays in one place.
                out!("\x1b[H\x1b[2J");
            } else if taken > 0 {
                outln!();
            }
            out!(
                "embargo agent pid {} · policy {} · {at}\n{table}",
                s.pid,
                s.digest.get(..16).unwrap_or(&s.digest)
            );
        }
        super::output::flush();
        if super::output::stdout_closed() {
            return Exit::Success;
        }
        taken += 1;
        if count.is_some_and(|n| taken >= n) {
            return Exit::Success;
        }
        prev = Some((now, s));
        std::thread::sleep(interval);
    }
}

/// `embargo events --follow`: the running agent's events, a line each (the events log's JSON
/// records with `json`), until standard output closes (exit 0) or the agent stops (exit 1).
pub fn events_follow(control_socket: &Path, entity: Option<&str>, json: bool) -> Exit {
    use crate::observe::follow;
    let followed = follow::follow(control_socket, entity, |text, line| {
        if json {
            outln!("{text}");
        } else {
            outln!("{}", follow::render(&line));
        }
        super::output::flush();
        !super::output::stdout_closed()
    });
    match followed {
        Ok(true) => Exit::Success,
        Ok(false) => {
            fail!(
                "the agent at {} closed the stream: it stopped",
                control_socket.display()
            );
            Exit::Failure
        }
        Err(e) => {
            fail!("{e}");
            Exit::Failure
        }
    }
}
