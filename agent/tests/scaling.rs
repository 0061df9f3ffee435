//! Every parser of outside input is linear: each is timed on an input and on one 8 times
//! larger, and the larger must take less than 25 times as long (linear is 8, `n log n` a little
//! more; a parser that locates each item by counting from the start of the text is 64).
//!
//! Timings are the fastest of a few runs, the two sizes measured alternately, so a busy machine
//! slows both alike; inputs are large enough that the smaller one takes milliseconds even in an
//! optimized build, and small enough that the larger stays under a second or two in a debug
//! build. The tests take a lock: they never time each other.

use std::{
    fmt::Write as _,
    path::Path,
    sync::Mutex,
    time::{Duration, Instant},
};

use embargo::{
    config::{Confidence, Date, EvidenceKind},
    inputs::{
        import::{self, Defaults},
        lists::{self, ListFormat, ListInput},
    },
};

/// Most a run on 8 times the input may take, relative to the smaller run.
const MAX_RATIO: f64 = 25.0;
const FACTOR: usize = 8;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Times `run` on `make(n)` and `make(8 n)` and checks the ratio.
fn assert_linear<T>(what: &str, n: usize, make: impl Fn(usize) -> T, run: impl Fn(&T)) {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let small = make(n);
    let large = make(n * FACTOR);
    let time = |input: &T| {
        let start = Instant::now();
        run(input);
        start.elapsed()
    };
    time(&small);
    let ratio =
        |small: Duration, large: Duration| large.as_secs_f64() / small.as_secs_f64().max(1e-9);
    let (mut t_small, mut t_large) = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        t_small = t_small.min(time(&small));
        t_large = t_large.min(time(&large));
        // Far past the bound: no noise does that, and a quadratic parser's runs are long.
        if ratio(t_small, t_large) > 3.0 * MAX_RATIO {
            break;
        }
    }
    let ratio = ratio(t_small, t_large);
    eprintln!(
        "{what}: {n} in {t_small:?}, {} in {t_large:?}: x{ratio:.1}",
        n * FACTOR
    );
    assert!(
        ratio < MAX_RATIO,
        "{what}: {FACTOR} times the input took {ratio:.1} times as long ({t_small:?} -> {t_large:?}); \
         the parser is not linear"
    );
}

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lists")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The fixture with its first `<open ...>...</close>` element repeated `n` times, each copy
/// passed through `edit` with its number.
fn repeat_element(
    text: &str,
    open: &str,
    close: &str,
    n: usize,
    edit: impl Fn(&str, usize) -> String,
) -> String {
    let start = text.find(open).expect("the fixture has the element");
    let end = text[start..].find(close).expect("closed") + start + close.len();
    // Every copy of the element replaces all of them: the tail is what follows the last one.
    let last_end = text.rfind(close).expect("closed") + close.len();
    let mut out = text[..start].to_owned();
    for i in 0..n {
        out.push_str(&edit(&text[start..end], i));
        out.push_str("\n  ");
    }
    out.push_str(&text[last_end..]);
    out
}

fn parse_list(format: ListFormat, text: &str) -> usize {
    let input = ListInput {
        path: Path::new("list"),
        text,
        alt: None,
    };
    lists::parse(format, &input)
        .unwrap_or_else(|e| panic!("{format}: {e}"))
        .designations
        .len()
}

#[test]
fn uk_csv_is_linear() {
    let fixture = fixture("UK_Sanctions_List.csv");
    let mut lines = fixture.lines();
    let head = format!("{}\n{}\n", lines.next().unwrap(), lines.next().unwrap());
    let row = lines.next().unwrap().to_owned();
    let make = |n: usize| {
        let mut t = head.clone();
        for i in 0..n {
            // Two rows (names) per designation, as the list has.
            let r = row.replace("CYB0114", &format!("CYB{i:06}"));
            t.push_str(&r.replace("Sichuan Anxun", &format!("Sample {i}")));
            t.push('\n');
            t.push_str(&r.replace("Primary Name", "Alias"));
            t.push('\n');
        }
        t
    };
    assert_eq!(parse_list(ListFormat::UkCsv, &make(3)), 3);
    assert_linear("uk-csv", 300, make, |t| {
        parse_list(ListFormat::UkCsv, t);
    });
}

#[test]
fn uk_xml_is_linear() {
    let fixture = fixture("UK_Sanctions_List.xml");
    let make = |n| {
        repeat_element(&fixture, "<Designation>", "</Designation>", n, |e, i| {
            e.replace("CYB0114", &format!("CYB{i:06}"))
        })
    };
    assert_eq!(parse_list(ListFormat::UkXml, &make(3)), 3);
    assert_linear("uk-xml", 100, make, |t| {
        parse_list(ListFormat::UkXml, t);
    });
}

#[test]
fn ofac_csv_is_linear() {
    let make = |n: usize| {
        let mut t = String::new();
        for i in 0..n {
            writeln!(
                t,
                "{i},\"SAMPLE TRADING {i} FZE\",-0- ,\"CYBER2\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,\"Website www.example.invalid.\""
            )
            .unwrap();
        }
        t
    };
    assert_eq!(parse_list(ListFormat::OfacCsv, &make(3)), 3);
    assert_linear("ofac-csv", 2000, make, |t| {
        parse_list(ListFormat::OfacCsv, t);
    });
}

#[test]
fn ofac_xml_is_linear() {
    let fixture = fixture("sdn.xml");
    let make = |n| {
        repeat_element(&fixture, "<sdnEntry>", "</sdnEntry>", n, |e, i| {
            e.replace("<uid>36</uid>", &format!("<uid>{}</uid>", 1_000_000 + i))
        })
    };
    assert_eq!(parse_list(ListFormat::OfacXml, &make(3)), 3);
    assert_linear("ofac-xml", 200, make, |t| {
        parse_list(ListFormat::OfacXml, t);
    });
}

#[test]
fn ofac_advanced_xml_dates_are_read_in_linear_time() {
    let fixture = fixture("sdn_advanced.xml");
    let make = |n| {
        repeat_element(
            &fixture,
            "<SanctionsEntry ",
            "</SanctionsEntry>",
            n,
            |e, i| e.replace("\"99901\"", &format!("\"{}\"", 1_000_000 + i)),
        )
    };
    let dates = |t: &String| {
        lists::ofac_advanced::parse(Path::new("sdn_advanced.xml"), t)
            .unwrap_or_else(|e| panic!("{e}"))
            .listed
            .len()
    };
    assert_eq!(dates(&make(3)), 3);
    assert_linear("ofac advanced xml", 300, make, |t| {
        dates(t);
    });
}

#[test]
fn eu_xml_is_linear() {
    let fixture = fixture("eu_consolidated.xml");
    let make = |n| {
        repeat_element(
            &fixture,
            "<sanctionEntity ",
            "</sanctionEntity>",
            n,
            |e, i| {
                e.replace("EU.9901.01", &format!("EU.{i}.01"))
                    .replace("999101", &format!("{}", 5_000_000 + i))
            },
        )
    };
    assert_eq!(parse_list(ListFormat::EuXml, &make(3)), 3);
    assert_linear("eu-xml", 100, make, |t| {
        parse_list(ListFormat::EuXml, t);
    });
}

fn opensanctions_entity(t: &mut String, i: usize, aliases: usize) {
    let aliases: Vec<String> = (0..aliases).map(|a| format!("\"alias {a}\"")).collect();
    writeln!(
        t,
        r#"{{"id": "e{i}", "schema": "Company", "properties": {{"name": ["Sample {i}"], "alias": [{}]}}}}"#,
        aliases.join(", ")
    )
    .unwrap();
    writeln!(
        t,
        r#"{{"id": "s{i}", "schema": "Sanction", "properties": {{"entity": ["e{i}"], "authorityId": ["R{i}"], "program": ["CYBER2"], "country": ["us"], "startDate": ["2025-01-03"]}}}}"#
    )
    .unwrap();
}

#[test]
fn opensanctions_is_linear() {
    let make = |n| {
        let mut t = String::new();
        for i in 0..n {
            opensanctions_entity(&mut t, i, 2);
        }
        t
    };
    assert_eq!(parse_list(ListFormat::Opensanctions, &make(3)), 3);
    assert_linear("opensanctions", 1000, make, |t| {
        parse_list(ListFormat::Opensanctions, t);
    });
}

#[test]
fn the_names_of_one_designation_are_linear() {
    // One entity known by thousands of names: each name is checked against those before it.
    let make = |n| {
        let mut t = String::new();
        opensanctions_entity(&mut t, 0, n);
        t
    };
    assert_linear("opensanctions, one entity's aliases", 4000, make, |t| {
        parse_list(ListFormat::Opensanctions, t);
    });
}

#[test]
fn range_tables_are_linear() {
    let make = |n: usize| {
        let mut t = String::from("ip_range_start,ip_range_end,as_number,as_organization\n");
        for i in 0..n {
            // Apart from each other, so nothing merges: n ranges in, n CIDRs out.
            let a = std::net::Ipv4Addr::from(0x0100_0000 + (i as u32) * 512);
            let b = std::net::Ipv4Addr::from(0x0100_0000 + (i as u32) * 512 + 255);
            writeln!(t, "{a},{b},{},\"Sample AS {i}\"", 64_512 + i % 1000).unwrap();
        }
        t
    };
    let parse = |t: &String| {
        embargo::inputs::ranges::RangeFile::parse(
            Path::new("asn.csv"),
            t,
            "test".into(),
            embargo::inputs::ranges::asn_key,
        )
        .unwrap()
    };
    assert_eq!(parse(&make(3)).ranges, 3);
    assert_linear("asn table", 4000, make, |t| {
        parse(t);
    });
}

fn defaults() -> Defaults {
    Defaults {
        kind: EvidenceKind::Advisory,
        source: Some("https://example.org/advisory".into()),
        retrieved: Date(chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()),
        confidence: Some(Confidence::Medium),
    }
}

/// The `i`-th of many distinct addresses.
fn addr(i: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(0x0a00_0000 + i as u32)
}

/// An import as `embargo import` does it: read, then group by evidence.
fn imported(got: Result<import::Imported, import::ImportError>) -> usize {
    let got = got.unwrap();
    import::writer::group(&got.indicators)
        .iter()
        .map(|g| g.prefixes.len())
        .sum()
}

#[test]
fn ioc_import_is_linear() {
    let make = |n| {
        let mut t = String::from("# C2 servers\n");
        for i in 0..n {
            writeln!(t, "{}", addr(i).to_string().replace('.', "[.]")).unwrap();
        }
        t
    };
    let run = |t: &String| imported(import::ioc::parse(Path::new("iocs.txt"), t, &defaults()));
    assert_eq!(run(&make(3)), 3);
    assert_linear("import ioc", 2000, make, |t| {
        run(t);
    });
}

#[test]
fn ioc_import_of_prose_is_linear() {
    // Prose lines (the mode that tracks the word before each address), and one long line.
    let sentence = |t: &mut String, i: usize| {
        write!(
            t,
            "C2 at {}, OpenSSL 3.0.2.1 and build 10.0.17763.{} seen; ",
            addr(i),
            i % 100
        )
        .unwrap();
    };
    let lines = |n| {
        let mut t = String::from("# advisory\n");
        for i in 0..n {
            sentence(&mut t, i);
            t.push('\n');
        }
        t
    };
    let one_line = |n| {
        let mut t = String::new();
        for i in 0..n {
            sentence(&mut t, i);
        }
        t
    };
    let run = |t: &String| imported(import::ioc::parse(Path::new("a.txt"), t, &defaults()));
    assert_eq!(run(&lines(3)), 3);
    assert_eq!(run(&one_line(3)), 3);
    assert_linear("import ioc prose lines", 2000, lines, |t| {
        run(t);
    });
    assert_linear("import ioc prose on one line", 2000, one_line, |t| {
        run(t);
    });
}

#[test]
fn csv_import_is_linear() {
    let make = |n| {
        let mut t = String::from("indicator,type\n");
        for i in 0..n {
            writeln!(t, "{},ip", addr(i)).unwrap();
        }
        t
    };
    let columns = import::csv::Columns {
        indicator: "indicator".into(),
        kind: Some("type".into()),
        ..Default::default()
    };
    let run = |t: &String| {
        imported(import::csv::parse(
            Path::new("iocs.csv"),
            t,
            &columns,
            &defaults(),
        ))
    };
    assert_eq!(run(&make(3)), 3);
    assert_linear("import csv", 2000, make, |t| {
        run(t);
    });
}

#[test]
fn stix_import_is_linear() {
    let make = |n| {
        let objects: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"type": "indicator", "spec_version": "2.1",
      "id": "indicator--00000000-0000-4000-8000-{i:012}",
      "created": "2026-01-10T09:00:00.000Z", "modified": "2026-01-10T09:00:00.000Z",
      "pattern": "[ipv4-addr:value = '{}']", "pattern_type": "stix",
      "valid_from": "2026-01-10T00:00:00Z", "confidence": 85,
      "external_references": [{{"source_name": "example", "url": "https://example.org/advisory"}}]}}"#,
                    addr(i)
                )
            })
            .collect();
        format!(
            r#"{{"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d", "objects": [{}]}}"#,
            objects.join(",\n")
        )
    };
    let run = |t: &String| imported(import::stix::parse(Path::new("b.json"), t, &defaults()));
    assert_eq!(run(&make(3)), 3);
    assert_linear("import stix", 300, make, |t| {
        run(t);
    });
}

/// A main file with one entity whose one group lists `n` prefixes, one a line or all on one.
fn inline_prefixes(n: usize, one_line: bool) -> String {
    let sep = if one_line { ", " } else { ",\n  " };
    let prefixes: Vec<String> = (0..n).map(|i| format!("\"{}\"", addr(i))).collect();
    format!(
        r#"enforce = ["UK"]

[[entities]]
id = "a"
name = "A Ltd"
action = "drop"

[[entities.designations]]
authority = "UK"
regime = "Cyber"
reference = "CYB0000"
listed_on = 2025-12-09
source = "https://example.org/a"

[[entities.networks]]
prefixes = [
  {}
]
[entities.networks.evidence]
kind = "advisory"
source = "https://example.org/ioc"
retrieved = 2026-11-01
confidence = "medium"
"#,
        prefixes.join(sep)
    )
}

fn resolve_inline(text: &str) -> usize {
    let config = embargo::config::parse(Path::new("main.toml"), text.to_owned()).unwrap();
    let resolved = embargo::policy::resolve::resolve(&config).unwrap();
    resolved.groups[0][0].len()
}

#[test]
fn inline_prefixes_are_linear() {
    assert_eq!(resolve_inline(&inline_prefixes(3, false)), 3);
    assert_linear(
        "inline prefixes, one a line",
        2000,
        |n| inline_prefixes(n, false),
        |t| {
            resolve_inline(t);
        },
    );
}

#[test]
fn inline_prefixes_on_one_line_are_linear() {
    // Their columns are counted in characters along one long line.
    assert_eq!(resolve_inline(&inline_prefixes(3, true)), 3);
    assert_linear(
        "inline prefixes, all on one line",
        4000,
        |n| inline_prefixes(n, true),
        |t| {
            resolve_inline(t);
        },
    );
}

#[test]
fn json_source_bodies_are_linear() {
    let make = |n| {
        let items: Vec<String> = (0..n).map(|i| format!("\"{}\"", addr(i))).collect();
        format!("[\n{}\n]\n", items.join(",\n"))
    };
    let format = embargo::inputs::sources::Format::Json { field: None };
    let run = |t: &String| {
        embargo::inputs::sources::parse::parse(&format, t)
            .unwrap()
            .len()
    };
    assert_eq!(run(&make(3)), 3);
    assert_linear("json source body", 4000, make, |t| {
        run(t);
    });
}
