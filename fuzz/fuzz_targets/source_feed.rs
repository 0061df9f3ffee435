//! A remote source's body (`sources::parse`): the first byte picks the format (`list`, `csv`
//! with column `prefix`, `json` of strings, `json` of objects with `ip`). Every prefix is a
//! network at a line of the body, and `count` agrees with `parse`.
#![no_main]

use embargo::inputs::sources::{Format, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let format = match which % 4 {
        0 => Format::List,
        1 => Format::Csv {
            column: "prefix".into(),
        },
        2 => Format::Json { field: None },
        _ => Format::Json {
            field: Some("ip".into()),
        },
    };
    match parse::parse(&format, text) {
        Ok(entries) => {
            for (net, line) in &entries {
                embargo_fuzz::check_net("a source prefix", net);
                embargo_fuzz::check_line("a source prefix", *line as usize, text);
            }
            assert_eq!(parse::count(&format, text).ok(), Some(entries.len()));
        }
        Err(e) => embargo_fuzz::check_line(&e.to_string(), e.line, text),
    }
});
