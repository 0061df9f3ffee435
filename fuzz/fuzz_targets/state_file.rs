//! The restart state file (`state::decode`). The input is decoded as it is, and again with a
//! correct checksum appended (so the fuzzer gets past the CRC to the head and the records).
//! A file that decodes re-encodes to bytes that decode to the same state, and encoding is
//! stable from then on.
#![no_main]

use std::path::Path;

use embargo::dataplane::state;
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    let path = Path::new("fuzz.state");
    let Ok(s) = state::decode(path, bytes) else {
        return;
    };
    let encoded = state::encode(&s);
    let again = state::decode(path, &encoded).expect("an encoded state decodes");
    assert_eq!(again, s, "decode(encode(s)) != s");
    assert_eq!(state::encode(&again), encoded, "encoding is not stable");
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut with_crc = data.to_vec();
    with_crc.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    check(&with_crc);
});
