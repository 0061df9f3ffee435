//! `embargo import`: sanctions lists into entity file skeletons ([`list`]) and indicators
//! (STIX, IOC text, CSV) into `[[networks]]` groups ([`indicators`]).
//!
//! Invariants: nothing is written unless everything can be: every destination is checked
//! before the first write, no existing file is overwritten (a symlink included) and each file
//! is written whole or not at all; a refused list exits 64, indicator input that cannot be read
//! whole 65, output that cannot be written 73 ([`exit_code`]).
//!
//! With `--json` the summary is one JSON line `{"summary": {...}}` ([`summary_line`]) instead of
//! its text lines: on standard output when `--out` is given (standard output carries nothing
//! else then), else on standard error, since standard output carries the imported TOML. Errors
//! are then the JSON error object on standard error ([`super::output`]).

use std::path::Path;

use serde_json::{Value, json};

use super::{
    args::{IndicatorImport, ListImport},
    commands::config_error,
    exit::{Exit, exit_code},
};

/// Writes `{"summary": summary}` as one line: on standard output when the import wrote into
/// `--out`, else on standard error (standard output holds what was imported).
fn summary_line(summary: Value, to_stdout: bool) {
    let line = json!({ "summary": summary }).to_string();
    if to_stdout {
        outln!("{line}");
    } else {
        super::output::stderr_line(&line);
    }
}

/// `embargo import`: entity skeletons on stdout or into `--out`. Exit 64 when the list is
/// refused, 1 when a file exists or cannot be written (nothing is written then).
pub fn list(cmd: ListImport) -> Exit {
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
            fail!("{e}");
            errln!("the list was refused; nothing was written");
            return exit_code(&e);
        }
    };
    let picked = lists::filter(&doc, args.regime.as_deref(), &args.references);
    let picked_refs: std::collections::HashSet<String> = picked
        .iter()
        .map(|d| d.reference.to_ascii_lowercase())
        .collect();
    let mut not_found = Vec::new();
    for r in &args.references {
        if !picked_refs.contains(&r.trim().to_ascii_lowercase()) {
            if !args.json {
                errln!("warning: reference {r} is not among the matching designations");
            }
            not_found.push(r.clone());
        }
    }
    if picked.is_empty() {
        fail!("no designation in {} matches", args.file.display());
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
    let summary = |written: &[String]| {
        json!({
            "format": format.name(),
            "file": args.file.display().to_string(),
            "designations": files.len(),
            "ids": files.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            "references_not_found": not_found,
            "out": args.out.as_ref().map(|d| d.display().to_string()),
            "written": written,
        })
    };
    let Some(dir) = args.out.as_ref() else {
        for (i, (id, text)) in files.iter().enumerate() {
            if i > 0 {
                outln!();
            }
            outln!("# ---- {id}.toml");
            out!("{text}");
        }
        if args.json {
            summary_line(summary(&[]), false);
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
        fail!(
            "{} already exist; nothing was written (move them or choose another --out)",
            existing.join(", ")
        );
        return Exit::Failure;
    }
    if let Err(e) = std::fs::create_dir_all(dir) {
        fail!("creating {}: {e}", dir.display());
        return Exit::Failure;
    }
    let mut paths = Vec::new();
    for (id, text) in &files {
        let path = dir.join(format!("{id}.toml"));
        // Whole or not at all, never over an existing name (a symlink included).
        let written = crate::files::write::write_new(
            &path,
            text.as_bytes(),
            crate::files::write::Mode::Create(0o666),
        );
        if let Err(e) = written {
            fail!("writing {}: {e}", path.display());
            return Exit::Failure;
        }
        if !args.json {
            outln!("wrote {}", path.display());
        }
        paths.push(path.display().to_string());
    }
    if args.json {
        summary_line(summary(&paths), true);
    }
    Exit::Success
}

/// `embargo import stix|ioc|csv`.
pub fn indicators(format: IndicatorImport) -> Exit {
    use crate::inputs::import::{self, ImportError, csv, ioc, stix, writer};
    let (name, file, common) = match &format {
        IndicatorImport::Stix { file, common } => ("stix", file, common),
        IndicatorImport::Ioc { file, common } => ("ioc", file, common),
        IndicatorImport::Csv { file, common, .. } => ("csv", file, common),
    };
    let fail = |e: &ImportError| {
        fail!("{e}");
        errln!("nothing was written");
        exit_code(e)
    };
    let id = &common.entity;
    if !crate::config::validate::is_slug(id) {
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
            types,
            delimiter,
            no_header,
            on_bad_line,
            first_seen_column,
            last_seen_column,
            source_column,
            filter_column,
            filter_value,
            ..
        } => match crate::config::validate::csv_delimiter(delimiter) {
            Err(m) => Err(ImportError::Usage(format!("--{m}"))),
            Ok(delimiter) => csv::read(
                file,
                &csv::Columns {
                    indicator: column.clone(),
                    kind: type_column.clone(),
                    first_seen: first_seen_column.clone(),
                    last_seen: last_seen_column.clone(),
                    source: source_column.clone(),
                    filter: filter_column.clone().zip(filter_value.clone()),
                    delimiter,
                    header: !no_header,
                    types: types.clone(),
                    on_bad_line: *on_bad_line,
                },
                &defaults,
            ),
        },
    };
    let mut imported = match read {
        Ok(i) => i,
        Err(e) => return fail(&e),
    };
    let lifetime = match import::Lifetime::new(common.expires, common.max_age.as_deref()) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    if let Err(e) = lifetime.apply(&mut imported, defaults.retrieved) {
        return fail(&e);
    }
    import::leave_out_special(&mut imported, common.guard_override.is_some());
    if !common.json {
        errln!("{}: {}", file.display(), imported.summary);
        for (at, message) in &imported.summary.bad_lines {
            errln!("warning: {at}: {message}; skipped (--on-bad-line skip)");
        }
    }
    if imported.indicators.is_empty() {
        if common.json {
            // What was skipped, in the error object's notes.
            errln!("{}: {}", file.display(), imported.summary);
        }
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
        guard_override: common.guard_override.as_deref(),
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
    let text_summary = !common.json;
    if text_summary {
        errln!(
            "{prefixes} prefixes in {} network groups{}",
            groups.len(),
            common
                .out
                .as_ref()
                .map_or_else(String::new, |p| format!(" written to {}", p.display()))
        );
    }
    let by_age = lifetime
        .max_age
        .as_ref()
        .map(|(_, days)| defaults.retrieved.0 + chrono::Days::new(*days as u64));
    let expired = groups
        .iter()
        .filter(|g| {
            g.evidence.expires.is_some_and(|d| d.0 <= today)
                || (g.evidence.max_age.is_some() && by_age.is_some_and(|d| d <= today))
        })
        .count();
    let pending = groups
        .iter()
        .filter(|g| g.evidence.valid_from.is_some_and(|d| d.0 > today))
        .count();
    if common.json {
        let sum = &imported.summary;
        let summary = json!({
            "format": name,
            "file": file.display().to_string(),
            "entity": id,
            "imported": sum.imported,
            "skipped_total": sum.skipped_total(),
            "skipped": sum.skipped,
            "ignored": sum.ignored,
            "bad_lines": sum.bad_lines.iter().map(|(at, message)| json!({"at": at, "message": message})).collect::<Vec<_>>(),
            "special": sum.special,
            "special_kept": sum.special_kept,
            "prefixes": prefixes,
            "groups": groups.len(),
            "written": common.out.as_ref().map(|p| p.display().to_string()),
            "appended": common.append,
            "expired_groups": expired,
            "pending_groups": pending,
        });
        summary_line(summary, common.out.is_some());
        return Exit::Success;
    }
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
