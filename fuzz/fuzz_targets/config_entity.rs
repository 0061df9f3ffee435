//! One entity file, parsed as an `include` reads it and compiled under a fixed main file
//! (see `embargo_fuzz::fuzz_entity_file`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        embargo_fuzz::fuzz_entity_file(text);
    }
});
