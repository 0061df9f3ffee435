//! A remote source's body (`sources::parse`): the first byte picks the format (`list`, `csv`
//! with column `prefix`, `json` of strings, `json` of objects with `ip`, and with
//! `on_bad_line = "skip"`: `list`, and headerless tab-separated `csv` with the prefix in column
//! 2 and the type in column 1). Every prefix is a network at a line of the body, every skipped
//! line a line of the body, and `count` agrees with `parse` when nothing is skipped.
#![no_main]

use embargo::{
    config::{
        OnBadLine,
        validate::{Column, CsvLayout},
    },
    inputs::sources::{Format, parse},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let tsv = CsvLayout {
        delimiter: b'\t',
        header: false,
        column: Column::Number(2),
        type_column: Some(Column::Number(1)),
        types: vec!["ip-dst".into(), "ip:port".into()],
    };
    let (format, on_bad_line) = match which % 6 {
        0 => (Format::List, OnBadLine::Refuse),
        1 => (
            Format::Csv {
                layout: CsvLayout::named("prefix"),
            },
            OnBadLine::Refuse,
        ),
        2 => (Format::Json { field: None }, OnBadLine::Refuse),
        3 => (
            Format::Json {
                field: Some("ip".into()),
            },
            OnBadLine::Refuse,
        ),
        4 => (Format::List, OnBadLine::Skip),
        _ => (Format::Csv { layout: tsv }, OnBadLine::Skip),
    };
    match parse::parse_with(&format, on_bad_line, text) {
        Ok(parsed) => {
            for (net, line) in &parsed.entries {
                embargo_fuzz::check_net("a source prefix", net);
                embargo_fuzz::check_line("a source prefix", *line as usize, text);
            }
            for l in &parsed.skipped.lines {
                embargo_fuzz::check_line("a skipped line", l.line, text);
            }
            if parsed.skipped.is_empty() {
                assert_eq!(parse::count(&format, text).ok(), Some(parsed.entries.len()));
            }
        }
        Err(e) => embargo_fuzz::check_line(&e.to_string(), e.line, text),
    }
});
