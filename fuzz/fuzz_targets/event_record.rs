//! One ring-buffer record from the data plane (`events::decode`, then `events::record`): any
//! `size_of::<Event>()` bytes or more are an event; its JSON line round-trips and names addresses
//! of its family. The 8 bytes after the event, when present, give the clock offset.
#![no_main]

use std::collections::HashMap;

use embargo::observe::events::{self, Clock, Context, DesignationRef, EntityRef, Record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    const EVENT: usize = size_of::<embargo_abi::Event>();
    let Some(ev) = events::decode(data) else {
        assert!(data.len() < EVENT, "{} bytes not decoded", data.len());
        return;
    };
    let offset = data.get(EVENT..EVENT + 8).map_or(1_700_000_000_000_000_000, |b| {
        i64::from_le_bytes(b.try_into().expect("8 bytes"))
    });
    let ctx = Context {
        entities: vec![
            EntityRef {
                id: "fuzz-entity".into(),
                designations: vec![DesignationRef {
                    authority: "UK".into(),
                    reference: "CYB0114".into(),
                }],
            },
            EntityRef::default(),
        ],
        interfaces: HashMap::from([(1, "lo".to_owned()), (7, "eth0".to_owned())]),
        digest: "0".repeat(64),
        ..Context::default()
    };
    let rec = events::record(&ev, &ctx, &Clock::with_offset(i128::from(offset)));
    chrono::DateTime::parse_from_rfc3339(&rec.time).expect("an RFC 3339 time");
    assert_eq!(rec.source.is_ipv4(), rec.destination.is_ipv4());
    let line = serde_json::to_string(&rec).expect("a record serializes");
    assert!(!line.contains('\n'), "a JSON line with a newline");
    let back: Record = serde_json::from_str(&line).expect("a record line parses");
    assert_eq!(back, rec, "the JSON line does not round-trip");
});
