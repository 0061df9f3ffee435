//! The generated seeds of the fuzz targets (`fuzz/seeds/state_file/`, `fuzz/seeds/event_record/`):
//! a small restart state file and two ring-buffer event records, made here from the library's
//! own encoders. The test fails when a committed seed no longer matches what the encoder
//! writes (the format changed); `EMBARGO_WRITE_FUZZ_SEEDS=1 cargo test -p embargo --test
//! fuzz_seeds` rewrites them.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use embargo::dataplane::{
    state::{self, MapRecord, NetlinkFilter, SlotState, State, TrieState},
    trie::live::Bookkeeping,
};
use embargo_abi::{EVENT_PORTS, Event, FAMILY_IPV4, FAMILY_IPV6};

fn seeds(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target)
}

/// Compares (or, with `EMBARGO_WRITE_FUZZ_SEEDS=1`, writes) one seed.
fn seed(target: &str, name: &str, bytes: &[u8]) {
    let path = seeds(target).join(name);
    if std::env::var_os("EMBARGO_WRITE_FUZZ_SEEDS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        committed == bytes,
        "{} is not what the encoder writes now; rewrite it with EMBARGO_WRITE_FUZZ_SEEDS=1",
        path.display()
    );
}

fn trie(prefixes: &[(u128, u8, u32)]) -> TrieState {
    TrieState {
        len: 64,
        fingerprint: 0x0123_4567_89ab_cdef,
        prefixes: prefixes.iter().map(|&(a, l, e)| ((a, l), e)).collect(),
        bookkeeping: Bookkeeping {
            free: vec![(8200, 10)],
            quarantine: vec![(8192, 4)],
            capacity: 8256,
            nodes: 12,
        },
    }
}

fn small_state() -> State {
    State {
        format: state::FORMAT_VERSION,
        layout: embargo_abi::LAYOUT_VERSION,
        generation: "1700000000-42".into(),
        digest: "ab".repeat(32),
        maps: vec![MapRecord {
            name: "EMB_TRIE_V4".into(),
            id: 17,
            key_size: 4,
            value_size: 8,
            max_entries: 64,
        }],
        entity_ids: vec!["i-soon".into(), "integrity-tech".into()],
        policies: vec![(1, 3), (2, 1)],
        entity_capacity: 16,
        groups: vec![
            (0, "name:cisa-aa24".into()),
            (1, "source:https://example.org/advisory#0".into()),
        ],
        group_capacity: 16,
        v4: trie(&[
            (0xc000_0200, 24, 0),
            (0xc633_6400, 24, 1),
            (0xcb00_7105, 32, 1),
        ]),
        v6: trie(&[(0x2001_0db8_u128 << 96, 32, 0)]),
        slots: vec![SlotState {
            slot: 0,
            ifindex: 2,
            flags: 1,
        }],
        carried: BTreeMap::from([("i-soon".into(), [[(1, 60), (2, 120)], [(0, 0), (3, 180)]])]),
        carried_groups: BTreeMap::from([(
            "i-soon/name:cisa-aa24".into(),
            [[(1, 60), (2, 120)], [(0, 0), (3, 180)]],
        )]),
        netlink_filters: vec![NetlinkFilter {
            interface: "eth0".into(),
            priority: 49152,
            handle: 0x0001_0001,
            added_clsact: true,
        }],
    }
}

fn event_bytes(ev: &Event) -> Vec<u8> {
    // SAFETY: Event is `repr(C)` plain integers with explicit padding (no uninitialized
    // bytes), 72 bytes, read as bytes for as long as `ev` is borrowed.
    unsafe {
        std::slice::from_raw_parts((ev as *const Event).cast::<u8>(), size_of::<Event>()).to_vec()
    }
}

#[test]
fn the_state_file_seed_is_what_the_encoder_writes() {
    let s = small_state();
    let bytes = state::encode(&s);
    assert_eq!(state::decode(Path::new("seed"), &bytes).unwrap(), s);
    seed("state_file", "small.state", &bytes);
}

#[test]
fn the_event_record_seeds_are_events() {
    let mut src = [0u8; 16];
    src[..4].copy_from_slice(&[192, 0, 2, 7]);
    let mut dst = [0u8; 16];
    dst[..4].copy_from_slice(&[198, 51, 100, 23]);
    let v4 = Event {
        timestamp_ns: 5_000_000_000,
        ifindex: 7,
        entity: 0,
        src,
        dst,
        packet_len: 74,
        src_port: 40000,
        dst_port: 443,
        direction: 0,
        verdict: 0,
        family: FAMILY_IPV4,
        protocol: 6,
        flags: EVENT_PORTS,
        _pad: [0; 3],
        group: 0,
        _pad2: [0; 4],
    };
    let v6 = Event {
        ifindex: 1,
        entity: 1,
        src: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        dst: [0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5],
        family: FAMILY_IPV6,
        protocol: 58,
        flags: 0,
        direction: 1,
        verdict: 1,
        ..v4
    };
    for (name, ev) in [("ipv4-tcp.bin", v4), ("ipv6-icmp.bin", v6)] {
        let bytes = event_bytes(&ev);
        assert_eq!(embargo::observe::events::decode(&bytes), Some(ev));
        seed("event_record", name, &bytes);
    }
}
