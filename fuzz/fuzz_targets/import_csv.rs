//! CSV indicators (`embargo import csv`) with the columns of the seed-indicators fixture:
//! imported prefixes are networks, the rendered groups parse back, and a refusal names a line
//! of the input.
#![no_main]

use std::path::Path;

use embargo::inputs::import::csv::{Columns, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let columns = Columns {
        indicator: "indicator".into(),
        kind: Some("type".into()),
        first_seen: Some("first_seen".into()),
        last_seen: Some("last_seen".into()),
        source: Some("source".into()),
        filter: Some((
            "entity".into(),
            "Integrity Technology Group Incorporated".into(),
        )),
        ..Columns::default()
    };
    match parse(
        Path::new("fuzz.input"),
        text,
        &columns,
        &embargo_fuzz::defaults(),
    ) {
        Ok(imported) => embargo_fuzz::check_imported(&imported, "csv"),
        Err(e) => embargo_fuzz::check_import_error(&e, text),
    }
});
