//! A STIX pattern alone (the patterning grammar), and the addresses read from it: no panic,
//! no runaway recursion, every address a network of the family its object names.
#![no_main]

use embargo::inputs::import::stix;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(pattern) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(observation) = stix::parse_pattern(pattern) else {
        return;
    };
    let mut found = stix::Found::default();
    if found.observation(&observation).is_ok() {
        for net in &found.nets {
            embargo_fuzz::check_net("a pattern's address", net);
        }
    }
});
