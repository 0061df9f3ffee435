//! The kernel contract without root: parses the eBPF objects the agent embeds
//! (`embargo::dataplane::OBJECT`, `BENCH_OBJECT`) with `aya-obj` and checks every map (name,
//! type, key and value size, max entries where the program fixes them, flags), program (name,
//! section kind) and global (name, size) against `embargo-abi`. A change on one side only (a
//! struct that grows, a renamed map, a flag dropped) fails here, in `cargo test`, before any
//! kernel refuses the load or, worse, accepts it with values of the wrong layout.
//!
//! Max entries are checked only for the maps whose size the object fixes; the agent resizes
//! the others at load (`map_max_entries` in `dataplane`), so the object holds a placeholder.

use std::collections::BTreeSet;

use aya_obj::{EbpfSectionKind, Object, ProgramSection, generated::bpf_map_type};
use embargo::dataplane::{BENCH_OBJECT, OBJECT};
use embargo_abi::{
    BPF_F_MMAPABLE, Counter, EVENTS_RING_BYTES, EntityPolicy, GroupEntry, IfaceConfig, MAX_IFINDEX,
    Stat, maps, programs, trie,
};

/// `BPF_F_NO_PREALLOC` (linux/bpf.h).
const BPF_F_NO_PREALLOC: u32 = 1;

/// What the ABI says one map is.
struct Expect {
    name: &'static str,
    kind: bpf_map_type,
    key: usize,
    value: usize,
    /// `Some` where the object fixes the size, `None` where the agent sets it at load.
    max_entries: Option<u32>,
    flags: u32,
}

fn production_maps() -> Vec<Expect> {
    use bpf_map_type::{BPF_MAP_TYPE_ARRAY as ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY as PERCPU};
    let u32_key = size_of::<u32>();
    vec![
        Expect {
            name: maps::IFACE_ROLES,
            kind: ARRAY,
            key: u32_key,
            value: size_of::<IfaceConfig>(),
            max_entries: Some(MAX_IFINDEX),
            flags: 0,
        },
        Expect {
            name: maps::V4_TRIE,
            kind: ARRAY,
            key: u32_key,
            value: size_of::<trie::Chunk>(),
            max_entries: None,
            flags: BPF_F_MMAPABLE,
        },
        Expect {
            name: maps::V6_TRIE,
            kind: ARRAY,
            key: u32_key,
            value: size_of::<trie::Chunk>(),
            max_entries: None,
            flags: BPF_F_MMAPABLE,
        },
        Expect {
            name: maps::POLICY,
            kind: ARRAY,
            key: u32_key,
            value: size_of::<EntityPolicy>(),
            max_entries: None,
            flags: 0,
        },
        Expect {
            name: maps::GROUPS,
            kind: ARRAY,
            key: u32_key,
            value: size_of::<GroupEntry>(),
            max_entries: None,
            flags: 0,
        },
        Expect {
            name: maps::COUNTERS,
            kind: PERCPU,
            key: u32_key,
            value: size_of::<Counter>(),
            max_entries: None,
            flags: 0,
        },
        Expect {
            name: maps::STATS,
            kind: PERCPU,
            key: u32_key,
            value: size_of::<u64>(),
            max_entries: Some(Stat::COUNT),
            flags: 0,
        },
        Expect {
            name: maps::EVENTS,
            kind: bpf_map_type::BPF_MAP_TYPE_RINGBUF,
            key: 0,
            value: 0,
            max_entries: Some(EVENTS_RING_BYTES),
            flags: 0,
        },
        Expect {
            name: maps::EVENT_BUDGETS,
            kind: PERCPU,
            key: u32_key,
            value: size_of::<u64>(),
            max_entries: None,
            flags: 0,
        },
        Expect {
            name: maps::EVENTS_LOST,
            kind: PERCPU,
            key: u32_key,
            value: size_of::<u64>(),
            max_entries: None,
            flags: 0,
        },
    ]
}

fn parse(bytes: &[u8], which: &str) -> Object {
    Object::parse(bytes)
        .unwrap_or_else(|e| panic!("the embedded {which} object does not parse: {e}"))
}

/// Every map of `obj` that is a map definition (not `.rodata`/`.data`/`.bss`), by name.
fn defined_maps(obj: &Object) -> BTreeSet<String> {
    obj.maps
        .iter()
        .filter(|(_, m)| {
            !matches!(
                m.section_kind(),
                EbpfSectionKind::Rodata | EbpfSectionKind::Data | EbpfSectionKind::Bss
            )
        })
        .map(|(name, _)| name.clone())
        .collect()
}

fn check_map(obj: &Object, want: &Expect) {
    let map = obj
        .maps
        .get(want.name)
        .unwrap_or_else(|| panic!("map {} is in the ABI but not in the object", want.name));
    let name = want.name;
    assert_eq!(map.map_type(), want.kind as u32, "{name}: map type");
    assert_eq!(map.key_size() as usize, want.key, "{name}: key size");
    assert_eq!(map.value_size() as usize, want.value, "{name}: value size");
    if let Some(max) = want.max_entries {
        assert_eq!(map.max_entries(), max, "{name}: max entries");
    }
    assert_eq!(map.map_flags(), want.flags, "{name}: flags");
}

#[test]
fn production_maps_match_the_abi() {
    let obj = parse(OBJECT, "production");
    let expected = production_maps();
    // The table above covers the ABI's list, and the object defines exactly those maps.
    let abi: BTreeSet<String> = maps::ALL.iter().map(|s| s.to_string()).collect();
    let table: BTreeSet<String> = expected.iter().map(|e| e.name.to_string()).collect();
    assert_eq!(table, abi, "this test's table and maps::ALL differ");
    assert_eq!(defined_maps(&obj), abi, "maps in the object vs maps::ALL");
    for want in &expected {
        check_map(&obj, want);
    }
}

#[test]
fn production_programs_match_the_abi() {
    let obj = parse(OBJECT, "production");
    let names: BTreeSet<&str> = obj.programs.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from([programs::CLASSIFY, programs::EGRESS]),
        "programs in the production object"
    );
    let section = |name: &str| &obj.programs[name].section;
    assert!(
        matches!(
            section(programs::CLASSIFY),
            ProgramSection::Xdp { frags: false, .. }
        ),
        "{}: {:?}, want XDP",
        programs::CLASSIFY,
        section(programs::CLASSIFY)
    );
    assert!(
        matches!(section(programs::EGRESS), ProgramSection::SchedClassifier),
        "{}: {:?}, want a TC classifier",
        programs::EGRESS,
        section(programs::EGRESS)
    );
}

#[test]
fn bench_object_matches_the_abi() {
    let obj = parse(BENCH_OBJECT, "bench");
    let names: BTreeSet<&str> = obj.programs.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from([programs::BENCH_DROP, programs::BENCH_LPM]),
        "programs in the bench object"
    );
    for name in [programs::BENCH_DROP, programs::BENCH_LPM] {
        assert!(
            matches!(obj.programs[name].section, ProgramSection::Xdp { .. }),
            "{name}: {:?}, want XDP",
            obj.programs[name].section
        );
    }
    assert_eq!(
        defined_maps(&obj),
        BTreeSet::from([
            programs::BENCH_LPM_V4.to_string(),
            programs::BENCH_LPM_V6.to_string(),
        ]),
        "maps in the bench object"
    );
    // LPM trie keys: a u32 prefix length, then the address bytes; the kernel refuses an LPM
    // trie without BPF_F_NO_PREALLOC, which aya sets.
    for (name, addr) in [(programs::BENCH_LPM_V4, 4), (programs::BENCH_LPM_V6, 16)] {
        check_map(
            &obj,
            &Expect {
                name,
                kind: bpf_map_type::BPF_MAP_TYPE_LPM_TRIE,
                key: size_of::<u32>() + addr,
                value: size_of::<u32>(),
                max_entries: None,
                flags: BPF_F_NO_PREALLOC,
            },
        );
    }
}
