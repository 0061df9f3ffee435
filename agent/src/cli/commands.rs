//! The bodies of the `embargo` commands: each takes its parsed arguments ([`super::args`]),
//! prints through [`super::output`] and returns its [`Exit`] status.
//!
//! Invariants: a command prints its result on standard output and its errors and notes on
//! standard error, each error line starting `error: `; an error's exit status comes from
//! [`exit_code`], never from a number written here; a command that refuses its input writes
//! nothing (the list and indicator imports check every destination before the first write).

use std::{net::IpAddr, path::Path};

use super::{
    args::{IndicatorImport, ListImport, RunArgs},
    exit::{Exit, exit_code},
};
use crate::{
    config::ConfigError,
    observe::{audit, status},
    policy::{explain, plan},
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
            errln!("error: starting the runtime: {e}");
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
            errln!("error: {e}");
            exit_code(&e)
        }
    }
}

/// `embargo detach`: removes every pinned link, the netlink egress filters, the pinned maps
/// and the state file, once the agent is gone.
pub fn detach(pin_dir: &Path, state_dir: &Path, control_socket: &Path) -> Exit {
    if status::query(control_socket).is_ok() {
        errln!(
            "error: an agent is running ({}): stop it instead (SIGTERM detaches), or it keeps the links",
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
    let mut results = crate::dataplane::remove_netlink_filters(&filters);
    results.extend(crate::dataplane::detach_pinned(pin_dir, |_| false));
    if results.is_empty() {
        outln!("nothing pinned in {}", pin_dir.display());
    }
    let mut ok = true;
    for (name, r) in results {
        match r {
            Ok(()) => outln!("detached {name}"),
            Err(e) => {
                ok = false;
                errln!("error: {name}: {e}");
            }
        }
    }
    for (path, r) in crate::dataplane::pins::remove_generations(pin_dir) {
        match r {
            Ok(()) => outln!("unpinned the maps in {}", path.display()),
            Err(e) => {
                ok = false;
                errln!("error: removing {}: {e}", path.display());
            }
        }
    }
    match crate::dataplane::state::remove(state_dir) {
        Ok(true) => outln!(
            "removed the state file {}",
            crate::dataplane::state::path(state_dir).display()
        ),
        Ok(false) => {}
        Err(e) => {
            ok = false;
            errln!("error: {e}");
        }
    }
    let _ = std::fs::remove_dir(pin_dir);
    if ok { Exit::Success } else { Exit::Failure }
}

/// `embargo plan`: what applying `config` would change against what the agent has loaded.
pub fn plan(config: &Path, control_socket: &Path, limit: usize, json: bool) -> Exit {
    let compiled = match crate::compile_file(config, crate::today()) {
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
pub fn why(address: IpAddr, config: &Path, json: bool) -> Exit {
    match crate::compile_file(config, crate::today()) {
        Ok((_, compiled)) => {
            let x = explain::explain(&compiled, address);
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&x).expect("serializable")
                );
            } else {
                out!("{}", explain::render(&x));
            }
            Exit::Success
        }
        Err(e) => config_error(&e),
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
                errln!("error: {e}");
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
            errln!("error: {e}");
            Exit::Failure
        }
    }
}

/// `embargo import`: entity skeletons on stdout or into `--out`. Exit 64 when the list is
/// refused, 1 when a file exists or cannot be written (nothing is written then).
pub fn import_list(cmd: ListImport) -> Exit {
    use crate::inputs::lists::{self, ListFormat, skeleton};
    let (format, args, alt) = match cmd {
        ListImport::UkCsv(a) => (ListFormat::UkCsv, a, None),
        ListImport::UkXml(a) => (ListFormat::UkXml, a, None),
        ListImport::OfacCsv { args, alt } => (ListFormat::OfacCsv, args, alt),
        ListImport::OfacXml(a) => (ListFormat::OfacXml, a, None),
        ListImport::EuXml(a) => (ListFormat::EuXml, a, None),
        ListImport::Opensanctions(a) => (ListFormat::Opensanctions, a, None),
    };
    let read = |p: &Path| crate::config::read_text(p);
    let text = match read(&args.file) {
        Ok(t) => t,
        Err(e) => return config_error(&e),
    };
    let alt_text = match alt.as_deref().map(read).transpose() {
        Ok(t) => t,
        Err(e) => return config_error(&e),
    };
    let input = lists::ListInput {
        path: &args.file,
        text: &text,
        alt: alt.as_deref().zip(alt_text.as_deref()),
    };
    let doc = match lists::parse(format, &input) {
        Ok(d) => d,
        Err(e) => {
            errln!("error: {e}");
            errln!("the list was refused; nothing was written");
            return exit_code(&e);
        }
    };
    let picked = lists::filter(&doc, args.regime.as_deref(), &args.references);
    let picked_refs: std::collections::HashSet<String> = picked
        .iter()
        .map(|d| d.reference.to_ascii_lowercase())
        .collect();
    for r in &args.references {
        if !picked_refs.contains(&r.trim().to_ascii_lowercase()) {
            errln!("warning: reference {r} is not among the matching designations");
        }
    }
    if picked.is_empty() {
        errln!("error: no designation in {} matches", args.file.display());
        return Exit::Failure;
    }
    let today = crate::today();
    let mut files: Vec<(String, String)> = Vec::new();
    // The ids taken so far: a whole list (thousands of designations) is written in linear time.
    let mut ids = std::collections::HashSet::new();
    for d in picked {
        let mut id = skeleton::slug(&d.name);
        if ids.contains(&id) {
            id = format!("{id}-{}", skeleton::slug(&d.reference));
        }
        ids.insert(id.clone());
        let text = skeleton::entity_file(&doc, d, &id, args.list.as_deref(), today);
        files.push((id, text));
    }
    let Some(dir) = args.out else {
        for (i, (id, text)) in files.iter().enumerate() {
            if i > 0 {
                outln!();
            }
            outln!("# ---- {id}.toml");
            out!("{text}");
        }
        return Exit::Success;
    };
    // Refuse before writing anything: no file is overwritten, none is half written.
    let existing: Vec<String> = files
        .iter()
        .map(|(id, _)| dir.join(format!("{id}.toml")))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        errln!(
            "error: {} already exist; nothing was written (move them or choose another --out)",
            existing.join(", ")
        );
        return Exit::Failure;
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        errln!("error: creating {}: {e}", dir.display());
        return Exit::Failure;
    }
    for (id, text) in &files {
        let path = dir.join(format!("{id}.toml"));
        // Whole or not at all, never over an existing name (a symlink included).
        let written = crate::files::write::write_new(
            &path,
            text.as_bytes(),
            crate::files::write::Mode::Create(0o666),
        );
        if let Err(e) = written {
            errln!("error: writing {}: {e}", path.display());
            return Exit::Failure;
        }
        outln!("wrote {}", path.display());
    }
    Exit::Success
}

/// `embargo fetch`.
pub fn fetch(path: &Path) -> Exit {
    use crate::inputs::sources::{Outcome, manager};
    let config = match crate::config::load(path) {
        Ok(c) => c,
        Err(e) => return config_error(&e),
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: starting the runtime: {e}");
            return Exit::Failure;
        }
    };
    let results = match rt.block_on(manager::fetch_all(&config)) {
        Ok(r) => r,
        Err(e) => return config_error(&e),
    };
    let mut failed = 0;
    for (def, result) in config.main.sources.iter().zip(results) {
        let name = def.name.get_ref();
        let unit = if def.format.get_ref().list_format().is_some() {
            "designations"
        } else {
            "prefixes"
        };
        match result {
            Ok(Outcome::Updated {
                changed, entries, ..
            }) => outln!(
                "{name}: {} ({entries} {unit})",
                if changed { "updated" } else { "unchanged" }
            ),
            Ok(Outcome::NotModified { entries, .. }) => {
                outln!("{name}: not modified ({entries} {unit})")
            }
            Err(e) => {
                failed += 1;
                errln!("error: {e}; the last-known-good copy, if any, is kept");
            }
        }
    }
    if failed > 0 {
        Exit::Failure
    } else {
        Exit::Success
    }
}

/// `embargo import stix|ioc|csv`.
pub fn import_indicators(format: IndicatorImport) -> Exit {
    use crate::inputs::import::{self, ImportError, csv, ioc, stix, writer};
    let (name, file, common) = match &format {
        IndicatorImport::Stix { file, common } => ("stix", file, common),
        IndicatorImport::Ioc { file, common } => ("ioc", file, common),
        IndicatorImport::Csv { file, common, .. } => ("csv", file, common),
    };
    let fail = |e: &ImportError| {
        errln!("error: {e}");
        errln!("nothing was written");
        exit_code(e)
    };
    let id = &common.entity;
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return fail(&ImportError::Usage(format!(
            "--entity `{id}` must be an entity id: lowercase letters, digits, `-` and `_`"
        )));
    }
    let today = crate::today();
    let defaults = import::Defaults {
        kind: common.kind,
        source: common.source.clone(),
        retrieved: crate::config::Date(common.retrieved.unwrap_or(today)),
        confidence: common.confidence,
    };
    let read = match &format {
        IndicatorImport::Stix { file, .. } => stix::read(file, &defaults),
        IndicatorImport::Ioc { file, .. } => ioc::read(file, &defaults),
        IndicatorImport::Csv {
            file,
            column,
            type_column,
            first_seen_column,
            last_seen_column,
            source_column,
            filter_column,
            filter_value,
            ..
        } => csv::read(
            file,
            &csv::Columns {
                indicator: column.clone(),
                kind: type_column.clone(),
                first_seen: first_seen_column.clone(),
                last_seen: last_seen_column.clone(),
                source: source_column.clone(),
                filter: filter_column.clone().zip(filter_value.clone()),
            },
            &defaults,
        ),
    };
    let imported = match read {
        Ok(i) => i,
        Err(e) => return fail(&e),
    };
    errln!("{}: {}", file.display(), imported.summary);
    if imported.indicators.is_empty() {
        return fail(&ImportError::invalid(
            file.display(),
            "no IPv4 or IPv6 indicator to import (see what was skipped above)",
        ));
    }
    let groups = writer::group(&imported.indicators);
    let origin = writer::Origin {
        format: name,
        input: file,
        entity: id,
    };
    let text = writer::render(&groups, &defaults, &origin);
    let dest = match (&common.out, common.append) {
        (None, _) => writer::Destination::Stdout,
        (Some(p), false) => writer::Destination::New(p.clone()),
        (Some(p), true) => writer::Destination::Append(p.clone()),
    };
    if let Err(e) = writer::deliver(&dest, &text, id) {
        return fail(&e);
    }
    let prefixes: usize = groups.iter().map(|g| g.prefixes.len()).sum();
    errln!(
        "{prefixes} prefixes in {} network groups{}",
        groups.len(),
        common
            .out
            .as_ref()
            .map_or_else(String::new, |p| format!(" written to {}", p.display()))
    );
    let expired = groups
        .iter()
        .filter(|g| g.evidence.expires.is_some_and(|d| d.0 <= today))
        .count();
    let pending = groups
        .iter()
        .filter(|g| g.evidence.valid_from.is_some_and(|d| d.0 > today))
        .count();
    if expired > 0 {
        errln!(
            "note: {expired} groups' evidence expired before today ({today}): `embargo check` leaves them out"
        );
    }
    if pending > 0 {
        errln!("note: {pending} groups' evidence counts only from a later valid_from");
    }
    Exit::Success
}

/// `embargo audit verify`: 0 with the record count when the chain holds, else 1.
pub fn audit_verify(log: &Path) -> Exit {
    match audit::verify(log) {
        Ok(r) => match &r.first_break {
            None => {
                outln!("{}: {} records, chain intact", log.display(), r.records);
                Exit::Success
            }
            Some(b) => {
                errln!("error: {}: chain broken at {b}", log.display());
                errln!("{} records before it are intact", r.records);
                Exit::Failure
            }
        },
        Err(e) => {
            errln!("error: {e}");
            Exit::Failure
        }
    }
}

/// Reports a refused configuration; its exit status.
pub fn config_error(e: &ConfigError) -> Exit {
    errln!("error: {e}");
    errln!("the configuration was refused; nothing from it was applied");
    exit_code(e)
}
