//! Sanctions list: OpenSanctions FollowTheMoney JSON lines. A list that parses has findable designations whose entity file
//! skeletons parse back; a refusal names a line of the input (see `embargo_fuzz::check_list`).
#![no_main]

use embargo::inputs::lists::ListFormat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| embargo_fuzz::fuzz_list(ListFormat::Opensanctions, data));
