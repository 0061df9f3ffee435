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

/// `embargo import`: entity skeletons on stdout or into `--out`, or designations added to an
/// existing entity file (`--entity ID --out FILE --append`). Exit 64 when the list is refused
/// or a designation has no date (nothing is invented), 1 when a file exists or cannot be
/// written, 65/73 when an append is refused (nothing is written then).
pub fn list(cmd: ListImport) -> Exit {
    use crate::inputs::lists::{self, ListFormat, append, ofac_advanced, skeleton};
    let (format, args, alt, dates) = match cmd {
        ListImport::UkCsv(a) => (ListFormat::UkCsv, a, None, None),
        ListImport::UkXml(a) => (ListFormat::UkXml, a, None, None),
        ListImport::OfacCsv { args, alt, dates } => (ListFormat::OfacCsv, args, alt, dates),
        ListImport::OfacXml { args, dates } => (ListFormat::OfacXml, args, None, dates),
        ListImport::EuXml(a) => (ListFormat::EuXml, a, None, None),
        ListImport::Opensanctions(a) => (ListFormat::Opensanctions, a, None, None),
    };
    for (flag, id) in [("--id", &args.id), ("--entity", &args.entity)] {
        if let Some(id) = id
            && !crate::config::validate::is_slug(id)
        {
            fail!("{flag} `{id}` must be an entity id: lowercase letters, digits, `-` and `_`");
            return Exit::Usage;
        }
    }
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
    let advanced = match &dates {
        None => None,
        Some(p) => {
            let parsed = crate::files::read::read_text(p, ofac_advanced::MAX_BYTES)
                .map_err(|e| e.to_string())
                .and_then(|t| ofac_advanced::parse(p, &t).map_err(|e| e.to_string()));
            match parsed {
                Ok(d) => Some(d),
                Err(e) => {
                    fail!("{e}");
                    errln!("the dates file was refused; nothing was written");
                    return Exit::Usage;
                }
            }
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
    if args.id.is_some() && picked.len() > 1 {
        fail!(
            "--id names one entity, and {} designations match ({}); choose one with --reference",
            picked.len(),
            picked
                .iter()
                .map(|d| d.reference.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Exit::Usage;
    }
    // Each designation's date: the list's, the advanced XML's, --listed-on, else the list's
    // publication date marked as a stand-in; never today.
    let mut dated = Vec::with_capacity(picked.len());
    let mut undated = Vec::new();
    let mut stand_ins = 0usize;
    for d in picked {
        let on = if let Some(day) = d.listed_on {
            skeleton::ListedOn::Listed(day)
        } else if let Some(day) = advanced.as_ref().and_then(|a| a.of(&d.reference)) {
            skeleton::ListedOn::Listed(day)
        } else if let Some(day) = args.listed_on {
            skeleton::ListedOn::Given(day)
        } else if let Some(day) = doc.published {
            stand_ins += 1;
            skeleton::ListedOn::StandIn(day)
        } else {
            undated.push(d.reference.clone());
            continue;
        };
        dated.push((d, on));
    }
    if !undated.is_empty() {
        fail!(
            "{} carries no designation date for {} ({}){}, and no publication date to stand in",
            args.file.display(),
            if undated.len() == 1 {
                "this designation".to_owned()
            } else {
                format!("{} designations", undated.len())
            },
            undated.join(", "),
            if dates.is_some() {
                " (nor does the --dates file)"
            } else {
                ""
            }
        );
        errln!(
            "give the date from the authority's notice with --listed-on YYYY-MM-DD{}; nothing was written",
            if matches!(format, ListFormat::OfacCsv | ListFormat::OfacXml) {
                ", or OFAC's advanced XML with --dates sdn_advanced.xml"
            } else {
                ""
            }
        );
        return Exit::Usage;
    }
    if stand_ins > 0 {
        errln!(
            "note: the list carries no designation date for {stand_ins} designation{}: listed_on is its publication date ({}), marked in the file; give --listed-on{} for the real one",
            if stand_ins == 1 { "" } else { "s" },
            doc.published.map_or_else(String::new, |d| d.to_string()),
            if matches!(format, ListFormat::OfacCsv | ListFormat::OfacXml) {
                " or --dates sdn_advanced.xml"
            } else {
                ""
            }
        );
    }
    if args.append {
        let (Some(path), Some(entity)) = (&args.out, &args.entity) else {
            unreachable!("clap requires --out and --entity with --append");
        };
        let new: Vec<append::NewDesignation> = dated
            .iter()
            .map(|(d, on)| append::NewDesignation {
                authority: skeleton::authority_of(&doc, d),
                reference: d.reference.clone(),
                block: skeleton::designation_block(&doc, d, args.list.as_deref(), *on),
            })
            .collect();
        return match append::append(path, entity, &new) {
            Ok(()) => {
                outln!(
                    "added {} designation{} ({}) to {}",
                    new.len(),
                    if new.len() == 1 { "" } else { "s" },
                    new.iter()
                        .map(|d| format!("{} {}", d.authority, d.reference))
                        .collect::<Vec<_>>()
                        .join(", "),
                    path.display()
                );
                Exit::Success
            }
            Err(e) => {
                fail!("{e}");
                exit_code(&e)
            }
        };
    }
    let mut files: Vec<(String, String)> = Vec::new();
    // The ids taken so far: a whole list (thousands of designations) is written in linear time.
    let mut ids = std::collections::HashSet::new();
    for (d, on) in dated {
        let mut id = args.id.clone().unwrap_or_else(|| skeleton::slug(&d.name));
        if ids.contains(&id) {
            id = format!("{id}-{}", skeleton::slug(&d.reference));
        }
        ids.insert(id.clone());
        let text = skeleton::entity_file_dated(&doc, d, &id, args.list.as_deref(), on);
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
