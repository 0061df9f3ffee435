//! IOC text (`embargo import ioc`): imported prefixes are networks, the rendered groups parse
//! back, and a refusal names a line of the input.
#![no_main]

use std::path::Path;

use embargo::inputs::import::ioc;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ioc::parse(Path::new("fuzz.input"), text, &embargo_fuzz::defaults()) {
        Ok(imported) => {
            assert_eq!(
                imported.summary.imported,
                imported.indicators.len(),
                "one indicator per imported word"
            );
            embargo_fuzz::check_imported(&imported, "ioc");
        }
        Err(e) => embargo_fuzz::check_import_error(&e, text),
    }
});
