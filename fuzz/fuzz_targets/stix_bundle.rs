//! A STIX 2.1 bundle (`embargo import stix`): imported prefixes are networks and the rendered
//! groups parse back (see `embargo_fuzz::check_imported`).
#![no_main]

use std::path::Path;

use embargo::inputs::import::stix;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match stix::parse(Path::new("fuzz.input"), text, &embargo_fuzz::defaults()) {
        Ok(imported) => embargo_fuzz::check_imported(&imported, "stix"),
        Err(e) => embargo_fuzz::check_import_error(&e, text),
    }
});
