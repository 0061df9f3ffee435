//! Scale on the real country table: every IPv4 and IPv6 range of the pinned
//! `@ip-location-db/geo-whois-asn-country` package as one policy (one entity per ISO 3166-1
//! country code in it, `countries = [...]`), compiled and loaded into the kernel through the
//! agent's library, then spot-checked against the table itself.
//!
//! The spot check draws random IPv4 and IPv6 addresses (a seeded generator; the seed is printed
//! and `EMBARGO_SCALE_SEED` replays one), half inside a random row of the table and half anywhere
//! (IPv6: anywhere in 2000::/3). For each, the expected country comes from the raw CSV by a
//! binary search over its sorted ranges (written here, sharing nothing with the agent's range
//! code). The published files are not sorted and about 1% of their rows overlap a row of
//! another country (a /32 of BE inside a /23 of DE): where rows of several listed countries
//! contain the address, any of them is a correct answer (the policy gives it to the most
//! specific prefix); everywhere else exactly one is. The test asserts that
//! * `why` ([`embargo::policy::explain::explain`]) names an expected country's entity, through
//!   `countries` (`Via::Country` with its code), or nothing for space the table does not list
//!   (or lists only under a code that is not ISO 3166-1: `AN`, `XK`);
//! * the loaded XDP program, run on a packet to (inside role) or from (outside role) the
//!   address with `BPF_PROG_TEST_RUN`, agrees with `why`: drops it exactly when it is listed,
//!   and moves that entity's counter by one packet and no other entity's counter.
//!
//! The tables are not in the repository: `cargo xtask tables` fetches them (and `cargo xtask
//! test` does before running this) into `target/tables/` (`EMBARGO_TABLES_DIR` names another
//! folder holding the extracted packages). Without them the test fails saying so; it never
//! skips.
//! Needs root: `cargo test -p embargo-tests --test country_scale`.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    time::Instant,
};

use aya::programs::{TestRun as _, TestRunOptions};
use embargo::{
    config::Action,
    dataplane::{Dataplane, system},
    policy::{
        Policy,
        explain::{self, Explanation},
        resolve::Via,
    },
};
use embargo_abi::{Direction, IfaceRole, Verdict};
use embargo_tests::{
    packet::Frame,
    policy::{LabEntity, LabPolicy},
    rng::Rng,
};

const PACKAGE: &str = "geo-whois-asn-country-2.3.2026061719";
const FILES: [&str; 2] = [
    "geo-whois-asn-country-ipv4.csv",
    "geo-whois-asn-country-ipv6.csv",
];
/// Addresses checked per family.
const PER_FAMILY: usize = 2_000;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

fn table_dir() -> PathBuf {
    let root = std::env::var_os("EMBARGO_TABLES_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tables"),
        PathBuf::from,
    );
    let dir = root.join(PACKAGE);
    for f in FILES {
        assert!(
            dir.join(f).is_file(),
            "{} is missing: run `cargo xtask tables` first (it fetches the pinned range tables \
             into target/tables/; `cargo xtask test` does it before the kernel tests)",
            dir.join(f).display()
        );
    }
    dir
}

/// One row of the raw table: (start, end, code), addresses as integers.
type Row = (u128, u128, String);

/// The raw table of one family, sorted by start, with the largest end seen so far at each row
/// (the published files are not sorted, and about 1% of their rows overlap others: a range of
/// one country inside or across a range of another).
struct Raw {
    rows: Vec<Row>,
    max_end: Vec<u128>,
}

impl Raw {
    /// Reads a country CSV directly: `start,end,CC` per line (this table quotes nothing).
    fn read(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap();
        let mut rows: Vec<Row> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let mut cols = l.split(',');
                let mut next = || cols.next().unwrap_or_else(|| panic!("bad row {l}"));
                let (a, b, c) = (next(), next(), next());
                let num = |s: &str| match s.parse::<IpAddr>().unwrap() {
                    IpAddr::V4(a) => u128::from(u32::from(a)),
                    IpAddr::V6(a) => u128::from(a),
                };
                (num(a), num(b), c.to_owned())
            })
            .collect();
        rows.sort();
        let max_end = rows
            .iter()
            .scan(0u128, |m, r| {
                *m = (*m).max(r.1);
                Some(*m)
            })
            .collect();
        Self { rows, max_end }
    }

    /// The codes of every row containing `x`: a binary search for the last row starting at or
    /// before it, then back while an earlier row may still reach it.
    fn lookup(&self, x: u128) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        let mut j = self.rows.partition_point(|r| r.0 <= x);
        while j > 0 && self.max_end[j - 1] >= x {
            j -= 1;
            if self.rows[j].1 >= x {
                out.insert(self.rows[j].2.as_str());
            }
        }
        out
    }
}

fn entity_id(code: &str) -> String {
    format!("country-{}", code.to_ascii_lowercase())
}

/// One entity per ISO code in the tables, each with one `countries` group.
fn policy_text(dir: &Path, codes: &BTreeSet<String>) -> String {
    let mut policy = LabPolicy::new().authority("SCALE").top(&format!(
        "country_table = [{:?}, {:?}]",
        dir.join(FILES[0]).display().to_string(),
        dir.join(FILES[1]).display().to_string()
    ));
    for code in codes {
        policy = policy.entity(
            LabEntity::countries(&entity_id(code), Action::Drop, &[code])
                .name(&format!("Jurisdiction {code}"))
                .designation("scale test", &format!("SCALE-{code}"))
                .source("test")
                .guard("scale test: a whole jurisdiction")
                .evidence("jurisdiction", PACKAGE, "2026-11-27", "medium"),
        );
    }
    policy.to_string()
}

fn xdp_md(len: usize, ifindex: u32) -> [u8; 24] {
    let fields = [0, len as u32, 0, ifindex, 0, 0];
    let mut ctx = [0u8; 24];
    for (chunk, field) in ctx.chunks_exact_mut(4).zip(fields) {
        chunk.copy_from_slice(&field.to_le_bytes());
    }
    ctx
}

#[test]
fn every_country_range_loads_and_answers_like_the_table() {
    let dir = table_dir();
    let v4_raw = Raw::read(&dir.join(FILES[0]));
    let v6_raw = Raw::read(&dir.join(FILES[1]));
    let (v4_rows, v6_rows) = (&v4_raw.rows, &v6_raw.rows);
    let in_tables: BTreeSet<String> = v4_rows.iter().chain(v6_rows).map(|r| r.2.clone()).collect();
    let codes: BTreeSet<String> = in_tables
        .iter()
        .filter(|c| embargo::inputs::ranges::country_code(c).is_ok())
        .cloned()
        .collect();
    println!(
        "table {PACKAGE}: {} IPv4 and {} IPv6 ranges, {} codes ({} ISO 3166-1: one entity each; not: {:?})",
        v4_rows.len(),
        v6_rows.len(),
        in_tables.len(),
        codes.len(),
        in_tables.difference(&codes).collect::<Vec<_>>()
    );
    assert!(v4_rows.len() > 300_000 && v6_rows.len() > 200_000);

    // Compile and load exactly as the agent does.
    let started = Instant::now();
    let text = policy_text(&dir, &codes);
    let config = embargo::config::parse(Path::new("country-scale.toml"), text).unwrap();
    let resolved = embargo::policy::resolve::resolve(&config).unwrap_or_else(|e| panic!("{e}"));
    let compiled = embargo::policy::compile::compile(
        &embargo::config::validate::validate(&config).unwrap_or_else(|e| panic!("{e}")),
        &resolved,
        embargo::today(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let compile_time = started.elapsed();
    let policy = Policy::from(&compiled);
    let started = Instant::now();
    let mut dp = Dataplane::load(&policy)
        .unwrap_or_else(|e| panic!("loading the policy failed (this test needs root): {e}"));
    let load_time = started.elapsed();
    let stats = dp.load_stats;
    println!(
        "compiled {} IPv4 + {} IPv6 prefixes for {} entities in {compile_time:?}; loaded in \
         {load_time:?} ({} + {} trie nodes, {} MiB of maps)",
        policy.v4.len(),
        policy.v6.len(),
        policy.entities.len(),
        stats.v4_nodes,
        stats.v6_nodes,
        stats.map_bytes >> 20
    );
    assert_eq!(policy.entities.len(), codes.len());

    let lo = system::ifindex("lo").expect("the loopback interface");
    let seed = std::env::var("EMBARGO_SCALE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("spot-check seed {seed} (EMBARGO_SCALE_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let index: std::collections::HashMap<&str, usize> = policy
        .entities
        .iter()
        .enumerate()
        .map(|(i, e)| (e.id.as_str(), i))
        .collect();
    let (mut listed, mut unlisted, mut ambiguous) = (0, 0, 0);
    for i in 0..2 * PER_FAMILY {
        let v4 = i.is_multiple_of(2);
        let raw = if v4 { &v4_raw } else { &v6_raw };
        let rows = &raw.rows;
        let x = if rng.next_u64().is_multiple_of(2) {
            let r = &rows[(rng.next_u64() % rows.len() as u64) as usize];
            rng.between(r.0, r.1)
        } else if v4 {
            u128::from(rng.next_u64() as u32)
        } else {
            rng.between(0x2000 << 112, (0x4000 << 112) - 1)
        };
        let addr: IpAddr = if v4 {
            Ipv4Addr::from(x as u32).into()
        } else {
            Ipv6Addr::from(x).into()
        };
        // The table's answer: the listed codes of the rows containing it. Where rows of two
        // countries overlap, the policy may give the address to either (the more specific
        // prefix wins); everywhere else exactly one.
        let want: BTreeSet<String> = raw
            .lookup(x)
            .into_iter()
            .filter(|c| codes.contains(*c))
            .map(entity_id)
            .collect();
        if want.len() > 1 {
            ambiguous += 1;
        }

        // `why`.
        let why = explain::explain(&compiled, addr);
        let got = match &why {
            Explanation::Listed { entity, via, .. } => {
                let Via::Country { code, table } = via else {
                    panic!("{addr}: listed via {via:?}, not a country");
                };
                assert_eq!(
                    entity_id(code),
                    entity.id,
                    "{addr}: `why` names another country"
                );
                assert!(table.contains("geo-whois-asn-country"), "{table}");
                Some(entity.id.clone())
            }
            Explanation::NotListed { .. } => None,
            Explanation::Allowed { .. } => panic!("{addr}: nothing is allowed in this policy"),
        };
        let agrees = match &got {
            Some(id) => want.contains(id),
            None => want.is_empty(),
        };
        assert!(
            agrees,
            "{addr} (seed {seed}): `why` says {got:?}, the table says {want:?}\n{}",
            explain::render(&why)
        );

        // The kernel: a packet to it on an inside interface, or from it on an outside one.
        let (role, direction, frame) = if i % 4 < 2 {
            let other: IpAddr = if v4 {
                Ipv4Addr::new(10, 0, 0, 1).into()
            } else {
                "fd00::1".parse().unwrap()
            };
            (
                IfaceRole::Inside,
                Direction::Outbound,
                Frame::ip(other, addr),
            )
        } else {
            let other: IpAddr = if v4 {
                Ipv4Addr::new(10, 0, 0, 1).into()
            } else {
                "fd00::1".parse().unwrap()
            };
            (
                IfaceRole::Outside,
                Direction::Inbound,
                Frame::ip(addr, other),
            )
        };
        dp.set_role(lo, role).unwrap();
        let before = dp.counters().unwrap();
        let bytes = frame.bytes();
        let ctx = xdp_md(bytes.len(), lo);
        let action = dp
            .program()
            .test_run(TestRunOptions {
                data_in: Some(&bytes),
                ctx_in: Some(&ctx),
                repeat: 1,
                ..TestRunOptions::new()
            })
            .unwrap()
            .return_value;
        let after = dp.counters().unwrap();
        let moved: Vec<(usize, u64)> = before
            .iter()
            .zip(&after)
            .enumerate()
            .filter_map(|(e, (b, a))| {
                let d = a.get(direction, Verdict::Dropped).packets
                    - b.get(direction, Verdict::Dropped).packets;
                (d != 0).then_some((e, d))
            })
            .collect();
        // The kernel must say exactly what `why` says.
        match &got {
            Some(id) => {
                listed += 1;
                assert_eq!(action, XDP_DROP, "{addr} ({id}, seed {seed}): not dropped");
                assert_eq!(
                    moved,
                    vec![(index[id.as_str()], 1)],
                    "{addr} ({id}, seed {seed}): the kernel counted another entity"
                );
            }
            None => {
                unlisted += 1;
                assert_eq!(
                    action, XDP_PASS,
                    "{addr} (unlisted, seed {seed}): not passed"
                );
                assert!(
                    moved.is_empty(),
                    "{addr} (unlisted, seed {seed}): counted {moved:?}"
                );
            }
        }
    }
    println!(
        "spot-checked {} addresses: {listed} listed ({ambiguous} in rows of several countries), \
         {unlisted} unlisted",
        2 * PER_FAMILY
    );
    // Both outcomes were exercised, in numbers that make the check mean something.
    assert!(
        listed > PER_FAMILY / 2 && unlisted > PER_FAMILY / 4,
        "{listed} / {unlisted}"
    );
}
