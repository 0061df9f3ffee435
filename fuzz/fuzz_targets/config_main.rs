//! The main configuration file (with inline entities), parsed in the sandbox, then resolved
//! and compiled: it compiles or is refused with an error at a line of the file, and the table
//! agrees with `evaluate` (see `embargo_fuzz::check_config`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        embargo_fuzz::fuzz_main_file(text);
    }
});
