//! `embargo import stix|ioc|csv` end to end: import the fixtures (tests/fixtures/indicators),
//! append the groups to an entity file, and check that the result loads (`embargo check`) and
//! that `embargo why` names the entity with the imported evidence. Needs no root.

mod support;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Output,
};

use support::{stderr, stdout};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/indicators");

/// Runs `embargo` with `args`; an `import` of the fixtures, which hold only documentation
/// addresses (see their README), keeps them with `--guard-override` (left out otherwise, see
/// `special_purpose_indicators_are_left_out_and_counted`, which uses [`embargo_as_is`]).
fn embargo(args: &[&str]) -> Output {
    let mut args = args.to_vec();
    if args.first() == Some(&"import")
        && args
            .get(1)
            .is_some_and(|f| ["stix", "ioc", "csv"].contains(f))
    {
        args.extend([
            "--guard-override",
            "documentation addresses of the test fixtures",
        ]);
    }
    embargo_as_is(&args)
}

fn embargo_as_is(args: &[&str]) -> Output {
    support::embargo(args)
}

/// Special-purpose addresses are left out of an import and counted by kind on standard error;
/// `--guard-override` keeps them and writes the override on the group, which then compiles.
#[test]
fn special_purpose_indicators_are_left_out_and_counted() {
    let (_tmp, dir) = lab("special", "example-corp");
    let entity = dir.join("entity.toml");
    let config = dir.join("main.toml");
    let list = dir.join("mixed.txt");
    std::fs::write(
        &list,
        "8.8.8.8\n10.0.0.1\n169.254.169.254\n224.0.0.251\n255.255.255.255\n192.0.2.5\n::1\n2a00:1450::1\n",
    )
    .unwrap();
    let base = [
        "import",
        "ioc",
        s(&list),
        "--entity",
        "example-corp",
        "--source",
        "https://example.org/a",
    ];
    let out = embargo_as_is(&base);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    for kind in [
        "private",
        "link-local",
        "multicast",
        "broadcast",
        "documentation",
        "loopback",
    ] {
        assert!(
            err.contains(&format!("left out 1 in the {kind} special-purpose range")),
            "{kind}: {err}"
        );
    }
    let text = stdout(&out);
    assert!(
        text.contains("\"8.8.8.8\"") && text.contains("\"2a00:1450::1\""),
        "{text}"
    );
    for gone in [
        "10.0.0.1",
        "169.254.169.254",
        "224.0.0.251",
        "192.0.2.5",
        "\"::1\"",
    ] {
        assert!(!text.contains(gone), "{gone}: {text}");
    }
    assert!(!text.contains("guard_override"), "{text}");
    // Only special-purpose addresses: nothing to import, and the summary says why.
    std::fs::write(&list, "10.0.0.1\n").unwrap();
    let out = embargo_as_is(&base);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("left out 1 in the private special-purpose range"),
        "{}",
        stderr(&out)
    );
    // Kept under --guard-override, which the group carries: the entity file then compiles.
    std::fs::write(&list, "8.8.8.8\n10.0.0.1\n169.254.169.254\n").unwrap();
    let mut args = base.to_vec();
    args.extend([
        "--guard-override",
        "our lab's own ranges, on purpose",
        "--out",
        s(&entity),
        "--append",
    ]);
    let out = embargo_as_is(&args);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("kept 1 in the private special-purpose range (--guard-override)"),
        "{err}"
    );
    let written = std::fs::read_to_string(&entity).unwrap();
    assert!(
        written.contains("guard_override = \"our lab's own ranges, on purpose\""),
        "{written}"
    );
    let out = embargo(&["check", "--config", s(&config)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("special-purpose prefixes"),
        "{}",
        stdout(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

/// A fresh folder with `main.toml` (enforcing UK) including `entity.toml`, an entity `id`
/// designated by the UK and no networks yet: its guard (removes it on drop) and its path.
fn lab(test: &str, id: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("embargo-import-{test}-"))
        .tempdir()
        .unwrap();
    let dir = tmp.path().to_owned();
    std::fs::write(
        dir.join("main.toml"),
        "enforce = [\"UK\"]\ninclude = [\"entity.toml\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("entity.toml"),
        format!(
            "id = \"{id}\"\nname = \"{id} (test entity)\"\naction = \"drop\"\n\n\
             [[designations]]\nauthority = \"UK\"\nregime = \"test regime\"\n\
             reference = \"TEST-1\"\nlisted_on = 2025-01-01\n\
             source = \"https://example.org/designation\"\n"
        ),
    )
    .unwrap();
    (tmp, dir)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn why_json(config: &Path, addr: &str) -> serde_json::Value {
    let out = embargo(&["why", addr, "--config", s(config), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn stix_import_loads_and_why_shows_the_evidence_dates() {
    let (_tmp, dir) = lab("stix", "example-corp");
    let entity = dir.join("entity.toml");
    let config = dir.join("main.toml");
    let out = embargo(&[
        "import",
        "stix",
        &fixture("bundle.json"),
        "--entity",
        "example-corp",
        "--retrieved",
        "2026-11-27",
        "--out",
        s(&entity),
        "--append",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    // The summary counts what was skipped, by reason.
    for needle in [
        "3 imported, 5 skipped",
        "pattern_type `sigma`",
        "revoked indicators",
        "domain-name:value",
        "file:hashes.'SHA-256'",
        "comparisons joined by AND",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }

    let out = embargo(&["check", "--config", s(&config)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // 198.51.100.7, 203.0.113.10, 192.0.2.128/25 and 2001:db8:1::/48; 203.0.113.77 waits.
    assert!(
        text.contains("example-corp         drop    both           3 IPv4       1 IPv6"),
        "{text}"
    );
    assert!(text.contains("counts from 2035-01-01"), "{text}");

    let v = why_json(&config, "198.51.100.7");
    assert_eq!(v["verdict"], "listed", "{v}");
    assert_eq!(v["entity"]["id"], "example-corp", "{v}");
    assert_eq!(
        v["evidence"]["source"],
        "https://advisories.example.org/2026/sample-001"
    );
    assert_eq!(v["evidence"]["valid_from"], "2026-01-15", "{v}");
    assert_eq!(v["evidence"]["expires"], "2036-01-15", "{v}");
    assert_eq!(v["evidence"]["confidence"], "high", "{v}");
    assert!(
        v["evidence"]["note"]
            .as_str()
            .unwrap()
            .contains("indicator--967269bd-c640-45cb-856c-2f9aa3f18e92 (Sample C2 server)"),
        "{v}"
    );
    // Each side of the OR-joined pattern, at both levels, is enforced on its own.
    for addr in ["203.0.113.10", "2001:db8:1::5", "192.0.2.200"] {
        let v = why_json(&config, addr);
        assert_eq!(v["verdict"], "listed", "{addr}: {v}");
        assert_eq!(
            v["evidence"]["source"], "Example CERT (sample producer)",
            "{addr}: {v}"
        );
        assert_eq!(v["evidence"]["confidence"], "medium", "{v}");
    }
    // Not yet valid: left out, and why says until when. Its source is the report that
    // includes it.
    let v = why_json(&config, "203.0.113.77");
    assert_eq!(v["verdict"], "not_listed", "{v}");
    let reason = v["left_out"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("only from 2035-01-01"), "{v}");
    assert!(
        reason.contains("https://advisories.example.org/2026/sample-003"),
        "{v}"
    );
    // Revoked and Sigma indicators were not imported.
    for addr in ["192.0.2.99", "192.0.2.50"] {
        assert_eq!(why_json(&config, addr)["verdict"], "not_listed", "{addr}");
    }
    let human = embargo(&["why", "198.51.100.7", "--config", s(&config)]);
    let text = stdout(&human);
    assert!(
        text.contains("BLOCKED")
            && text.contains("counts from 2026-01-15, stops counting on 2036-01-15"),
        "{text}"
    );
}

#[test]
fn ioc_import_reads_defanged_addresses() {
    let (_tmp, dir) = lab("ioc", "example-corp");
    let entity = dir.join("entity.toml");
    let config = dir.join("main.toml");
    let out = embargo(&[
        "import",
        "ioc",
        &fixture("iocs.txt"),
        "--entity",
        "example-corp",
        "--source",
        "https://advisories.example.org/2026/sample-002",
        "--confidence",
        "low",
        "--out",
        s(&entity),
        "--append",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("6 imported, 2 skipped"), "{err}");
    let out = embargo(&["check", "--config", s(&config)]);
    assert!(out.status.success(), "{}", stderr(&out));
    for addr in [
        "198.51.100.23",
        "203.0.113.45",
        "192.0.2.61",
        "2001:db8:2::5",
        "198.51.100.70",
        "203.0.113.46",
    ] {
        let v = why_json(&config, addr);
        assert_eq!(v["verdict"], "listed", "{addr}: {v}");
        assert_eq!(v["entity"]["id"], "example-corp");
        assert_eq!(v["evidence"]["confidence"], "low");
        assert_eq!(
            v["evidence"]["source"],
            "https://advisories.example.org/2026/sample-002"
        );
    }
}

/// The Integrity Tech rows of the seed data, read independently of the importer.
fn seed_rows(kind: &str) -> Vec<csv::StringRecord> {
    let mut r = csv::Reader::from_path(fixture("seed-indicators/indicators.csv")).unwrap();
    r.records()
        .map(Result::unwrap)
        .filter(|row| &row[0] == "Integrity Technology Group Incorporated" && &row[3] == kind)
        .collect()
}

#[test]
fn csv_import_of_the_seed_data_yields_exactly_the_entitys_ipv4_rows() {
    let (_tmp, dir) = lab("csv", "integrity-tech");
    let entity = dir.join("entity.toml");
    let config = dir.join("main.toml");
    let generated = dir.join("generated.toml");
    let args = |out: &Path, dates: bool| {
        let mut a: Vec<String> = [
            "import",
            "csv",
            &fixture("seed-indicators/indicators.csv"),
            "--entity",
            "integrity-tech",
            "--column",
            "indicator",
            "--type-column",
            "type",
            "--source-column",
            "source",
            "--filter-column",
            "entity",
            "--filter-value",
            "Integrity Technology Group Incorporated",
            "--out",
            s(out),
        ]
        .map(String::from)
        .to_vec();
        if dates {
            a.extend(
                [
                    "--first-seen-column",
                    "first_seen",
                    "--last-seen-column",
                    "last_seen",
                ]
                .map(String::from),
            );
        }
        a
    };
    let run = |a: Vec<String>| embargo(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let out = run(args(&generated, false));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("rows of type `domain`"), "{err}");

    #[derive(serde::Deserialize)]
    struct Groups {
        networks: Vec<Group>,
    }
    #[derive(serde::Deserialize)]
    struct Group {
        prefixes: Vec<String>,
        evidence: toml::Value,
    }
    let groups: Groups = toml::from_str(&std::fs::read_to_string(&generated).unwrap()).unwrap();
    let imported: BTreeSet<String> = groups
        .networks
        .iter()
        .flat_map(|g| g.prefixes.iter().cloned())
        .collect();
    let ipv4 = seed_rows("ipv4");
    let want: BTreeSet<String> = ipv4.iter().map(|r| r[2].to_owned()).collect();
    assert_eq!(imported, want);
    assert_eq!(want.len(), 108, "the seed data changed?");
    // One group per source, each with exactly that source's rows.
    let sources: BTreeSet<&str> = ipv4.iter().map(|r| &r[7]).collect();
    assert_eq!(groups.networks.len(), sources.len());
    for g in &groups.networks {
        let source = g.evidence["source"].as_str().unwrap();
        let rows: BTreeSet<&str> = ipv4
            .iter()
            .filter(|r| &r[7] == source)
            .map(|r| &r[2])
            .collect();
        let got: BTreeSet<&str> = g.prefixes.iter().map(String::as_str).collect();
        assert_eq!(got, rows, "{source}");
    }
    // No domain became a prefix.
    assert!(
        seed_rows("domain")
            .iter()
            .all(|r| !imported.contains(&r[2]))
    );

    // Appended to the entity's file, it loads and `why` names the entity and its source.
    let out = run(args(&entity, false)
        .into_iter()
        .chain(["--append".into()])
        .collect());
    assert!(out.status.success(), "{}", stderr(&out));
    let out = embargo(&["check", "--config", s(&config)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("    108 IPv4"), "{}", stdout(&out));
    let v = why_json(&config, "114.255.70.20");
    assert_eq!(v["entity"]["id"], "integrity-tech", "{v}");
    assert!(
        v["evidence"]["source"]
            .as_str()
            .unwrap()
            .contains("blacklotuslabs/IOCs"),
        "{v}"
    );

    // With the seen dates, each row's evidence counts from first seen through last seen: the
    // Raptor Train rows (last seen in 2024) are expired, and `why` says when.
    let (_dated_tmp, dated) = lab("csv-dated", "integrity-tech");
    let out = run(args(&dated.join("entity.toml"), true)
        .into_iter()
        .chain(["--append".into()])
        .collect());
    assert!(out.status.success(), "{}", stderr(&out));
    let config = dated.join("main.toml");
    let out = embargo(&["check", "--config", s(&config)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let row = ipv4
        .iter()
        .find(|r| &r[2] == "202.182.109.151")
        .expect("seed row");
    let v = why_json(&config, "202.182.109.151");
    assert_eq!(v["verdict"], "not_listed", "{v}");
    let expiry =
        chrono::NaiveDate::parse_from_str(&row[5], "%Y-%m-%d").unwrap() + chrono::Days::new(1);
    assert!(
        v["left_out"][0]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("expired on {expiry}")),
        "{v}"
    );
    // Rows without dates still count.
    assert_eq!(why_json(&config, "38.147.190.192")["verdict"], "listed");
}

#[test]
fn bad_input_is_refused_naming_the_place_and_nothing_is_written() {
    let (_tmp, dir) = lab("bad", "example-corp");
    let entity = dir.join("entity.toml");
    let before = std::fs::read_to_string(&entity).unwrap();

    // Malformed JSON: exit 65, file:line:column.
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        "{\"type\": \"bundle\",\n \"id\": \"bundle--x\",\n \"objects\": [,]}\n",
    )
    .unwrap();
    let out = embargo(&[
        "import",
        "stix",
        s(&bad),
        "--entity",
        "example-corp",
        "--out",
        s(&entity),
        "--append",
    ]);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{}:3:", bad.display())),
        "{}",
        stderr(&out)
    );

    // An indicator without valid_from: names the indicator.
    let text = std::fs::read_to_string(fixture("bundle.json"))
        .unwrap()
        .replacen("\"valid_from\": \"2026-01-15T00:00:00Z\",", "", 1);
    std::fs::write(&bad, text).unwrap();
    let out = embargo(&[
        "import",
        "stix",
        s(&bad),
        "--entity",
        "example-corp",
        "--out",
        s(&entity),
        "--append",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(65), "{err}");
    assert!(err.contains("missing field `valid_from`"), "{err}");
    assert!(
        err.contains("indicator--967269bd-c640-45cb-856c-2f9aa3f18e92"),
        "{err}"
    );

    // A typo in an IOC list: file:line.
    let list = dir.join("list.txt");
    std::fs::write(&list, "# c2\n192.0.2.1\n192.0.2.256\n").unwrap();
    let out = embargo(&[
        "import",
        "ioc",
        s(&list),
        "--entity",
        "example-corp",
        "--source",
        "x",
        "--out",
        s(&entity),
        "--append",
    ]);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{}:3: ", list.display())),
        "{}",
        stderr(&out)
    );

    // No source for an IOC list: a usage error.
    let out = embargo(&["import", "ioc", s(&list), "--entity", "example-corp"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));

    // --out never overwrites.
    let out = embargo(&[
        "import",
        "ioc",
        &fixture("iocs.txt"),
        "--entity",
        "example-corp",
        "--source",
        "x",
        "--out",
        s(&entity),
    ]);
    assert_eq!(out.status.code(), Some(73), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refusing to overwrite"),
        "{}",
        stderr(&out)
    );

    // --append to another entity's file, or to a file that does not parse.
    let out = embargo(&[
        "import",
        "ioc",
        &fixture("iocs.txt"),
        "--entity",
        "other",
        "--source",
        "x",
        "--out",
        s(&entity),
        "--append",
    ]);
    assert_eq!(out.status.code(), Some(73), "{}", stderr(&out));
    assert!(stderr(&out).contains("not `other`"), "{}", stderr(&out));
    let broken = dir.join("broken.toml");
    std::fs::write(&broken, "id = \"example-corp\"\nname = \n").unwrap();
    let out = embargo(&[
        "import",
        "ioc",
        &fixture("iocs.txt"),
        "--entity",
        "example-corp",
        "--source",
        "x",
        "--out",
        s(&broken),
        "--append",
    ]);
    assert_eq!(out.status.code(), Some(73), "{}", stderr(&out));
    assert!(stderr(&out).contains("line 2"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&broken).unwrap(),
        "id = \"example-corp\"\nname = \n"
    );

    assert_eq!(
        std::fs::read_to_string(&entity).unwrap(),
        before,
        "the entity file changed"
    );
}

#[test]
fn ioc_import_reads_a_file_that_starts_with_a_byte_order_mark_and_counts_empty_lines() {
    let (_tmp, dir) = lab("ioc-bom", "example-corp");
    let input = dir.join("iocs.txt");
    // The first indicator follows the mark; the prose line yields nothing and is said so.
    std::fs::write(
        &input,
        "\u{feff}198.51.100.7\n# comment\n\nnothing to see here\n192.0.2.1\n",
    )
    .unwrap();
    let out = embargo(&[
        "import",
        "ioc",
        s(&input),
        "--entity",
        "example-corp",
        "--source",
        "https://advisories.example.org/2026/sample-002",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("2 imported, 0 skipped"), "{err}");
    assert!(
        err.contains("ignored 2: blank or comment-only lines"),
        "{err}"
    );
    assert!(
        err.contains("ignored 1: lines of text with no address"),
        "{err}"
    );
    assert!(
        stdout(&out).contains("\"198.51.100.7\""),
        "{}",
        stdout(&out)
    );
}

#[test]
fn an_import_input_that_is_not_a_regular_file_is_refused() {
    let out = embargo(&[
        "import",
        "ioc",
        "/dev/zero",
        "--entity",
        "example-corp",
        "--source",
        "https://advisories.example.org/2026/sample-002",
    ]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("/dev/zero: cannot read") && err.contains("not a regular file"),
        "{err}"
    );
}

/// Runs `embargo import` with `args` (strings) and returns the output.
fn import(args: &[&str]) -> Output {
    let mut a = vec!["import"];
    a.extend_from_slice(args);
    embargo(&a)
}

#[test]
fn max_age_counts_from_last_seen_and_expired_evidence_is_left_out_by_check() {
    // The seed rows were last seen in 2024: with --max-age 30d each counts through its
    // last-seen day plus 30 days, so `check` leaves every one out; with 3650d they count.
    for (age, listed) in [("30d", false), ("3650days", true)] {
        let (_tmp, dir) = lab(&format!("max-age-{listed}"), "integrity-tech");
        let config = dir.join("main.toml");
        let out = import(&[
            "csv",
            &fixture("seed-indicators/indicators.csv"),
            "--entity",
            "integrity-tech",
            "--column",
            "indicator",
            "--type-column",
            "type",
            "--source-column",
            "source",
            "--last-seen-column",
            "last_seen",
            "--filter-column",
            "entity",
            "--filter-value",
            "Integrity Technology Group Incorporated",
            "--max-age",
            age,
            "--out",
            s(&dir.join("entity.toml")),
            "--append",
        ]);
        let err = stderr(&out);
        assert!(out.status.success(), "{err}");
        let text = std::fs::read_to_string(dir.join("entity.toml")).unwrap();
        // Rows with a last-seen date get expires = last seen + age; rows without, max_age.
        let expires = if listed { "2034-06-26" } else { "2024-07-28" };
        assert!(text.contains(&format!("expires = {expires}\n")), "{text}");
        assert!(text.contains(&format!("max_age = \"{age}\"\n")), "{text}");
        let out = embargo(&["check", "--config", s(&config)]);
        assert!(out.status.success(), "{}", stderr(&out));
        // 114.255.70.20: one row, last seen 2024-06-28.
        let v = why_json(&config, "114.255.70.20");
        if listed {
            assert_eq!(v["verdict"], "listed", "{v}");
            assert_eq!(v["evidence"]["expires"], "2034-06-26", "{v}");
        } else {
            assert_eq!(v["verdict"], "not_listed", "{v}");
            let reason = v["left_out"][0]["reason"].as_str().unwrap();
            assert!(reason.contains("expired on 2024-07-28"), "{v}");
            assert!(err.contains("evidence expired before today"), "{err}");
        }
        // A row without a last-seen date gets max_age from --retrieved (today).
        assert_eq!(why_json(&config, "38.147.190.192")["verdict"], "listed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn expires_and_max_age_without_last_seen_are_written_and_enforced() {
    let (_tmp, dir) = lab("expires", "example-corp");
    let config = dir.join("main.toml");
    let entity = dir.join("entity.toml");
    let list = dir.join("c2.txt");
    std::fs::write(&list, "198.51.100.23\n").unwrap();
    let old = dir.join("old.txt");
    std::fs::write(&old, "203.0.113.45\n").unwrap();
    // --expires in the future: written, and the group is enforced until then.
    let out = import(&[
        "ioc",
        s(&list),
        "--entity",
        "example-corp",
        "--source",
        "https://advisories.example.org/x",
        "--expires",
        "2036-01-01",
        "--out",
        s(&entity),
        "--append",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // --max-age from a retrieval in 2024: written as max_age, expired by check.
    let out = import(&[
        "ioc",
        s(&old),
        "--entity",
        "example-corp",
        "--source",
        "https://advisories.example.org/y",
        "--retrieved",
        "2024-01-01",
        "--max-age",
        "90d",
        "--out",
        s(&entity),
        "--append",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&entity).unwrap();
    assert!(text.contains("expires = 2036-01-01\n"), "{text}");
    assert!(text.contains("max_age = \"90d\"\n"), "{text}");
    let out = embargo(&["check", "--config", s(&config)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = why_json(&config, "198.51.100.23");
    assert_eq!(v["verdict"], "listed", "{v}");
    assert_eq!(v["evidence"]["expires"], "2036-01-01", "{v}");
    let v = why_json(&config, "203.0.113.45");
    assert_eq!(v["verdict"], "not_listed", "{v}");
    assert!(
        v["left_out"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("expired on 2024-03-31"),
        "{v}"
    );

    // An --expires before the STIX indicators' valid_from would write groups that never
    // count (which check refuses): refused, nothing written.
    let before = std::fs::read_to_string(&entity).unwrap();
    let out = import(&[
        "stix",
        &fixture("bundle.json"),
        "--entity",
        "example-corp",
        "--expires",
        "2025-01-01",
        "--out",
        s(&entity),
        "--append",
    ]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("would never count"),
        "{}",
        stderr(&out)
    );
    let out = import(&[
        "ioc",
        s(&list),
        "--entity",
        "example-corp",
        "--source",
        "x",
        "--max-age",
        "1h",
        "--out",
        s(&entity),
        "--append",
    ]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(stderr(&out).contains("under a day"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&entity).unwrap(), before);
    let _ = std::fs::remove_dir_all(&dir);
}

fn feed(name: &str) -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/feeds/").to_owned() + name
}

/// The prefixes of every group in an entity file's text.
fn prefixes(text: &str) -> BTreeSet<String> {
    #[derive(serde::Deserialize)]
    struct Groups {
        #[serde(default)]
        networks: Vec<Group>,
    }
    #[derive(serde::Deserialize)]
    struct Group {
        prefixes: Vec<String>,
    }
    let g: Groups = toml::from_str(text).unwrap();
    g.networks.into_iter().flat_map(|g| g.prefixes).collect()
}

#[test]
fn a_tab_separated_ioc_table_imports_its_ip_rows_and_counts_the_other_types() {
    let (_tmp, dir) = lab("tsv", "integrity-tech");
    let config = dir.join("main.toml");
    let out = import(&[
        "csv",
        &feed("misp-attributes.tsv"),
        "--entity",
        "integrity-tech",
        "--delimiter",
        "tab",
        "--column",
        "value",
        "--type-column",
        "type",
        "--types",
        "ip-dst,ip-dst|port",
        "--last-seen-column",
        "last_seen",
        "--source",
        "https://github.com/blacklotuslabs/IOCs",
        "--max-age",
        "3650days",
        "--out",
        s(&dir.join("entity.toml")),
        "--append",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    // Read independently: the ip-dst rows' addresses (the port dropped from `value|port`).
    let tsv = std::fs::read_to_string(feed("misp-attributes.tsv")).unwrap();
    let rows: Vec<Vec<&str>> = tsv
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    let want: BTreeSet<String> = rows
        .iter()
        .filter(|r| r[3].starts_with("ip-dst"))
        .map(|r| r[4].split('|').next().unwrap().to_owned())
        .collect();
    assert!(rows.iter().any(|r| r[3] == "ip-dst|port"));
    let text = std::fs::read_to_string(dir.join("entity.toml")).unwrap();
    assert_eq!(prefixes(&text), want);
    for t in ["domain", "hostname"] {
        let n = rows.iter().filter(|r| r[3] == t).count();
        assert!(
            err.contains(&format!("skipped {n}: rows of type `{t}`")),
            "{err}"
        );
    }
    let out = embargo(&["check", "--config", s(&config)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(why_json(&config, "114.255.70.20")["verdict"], "listed");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_headerless_csv_is_read_by_column_number() {
    let (_tmp, dir) = lab("noheader", "integrity-tech");
    let generated = dir.join("generated.toml");
    let args = |column: &str| {
        import(&[
            "csv",
            &feed("feodo-layout.csv"),
            "--entity",
            "integrity-tech",
            "--no-header",
            "--column",
            column,
            "--last-seen-column",
            "5",
            "--source",
            "https://example.org/ipblocklist.csv",
            "--out",
            s(&generated),
        ])
    };
    let out = args("2");
    assert!(out.status.success(), "{}", stderr(&out));
    let body = std::fs::read_to_string(feed("feodo-layout.csv")).unwrap();
    let want: BTreeSet<String> = body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(',').nth(1).unwrap().trim_matches('"').to_owned())
        .collect();
    assert!(want.len() > 50);
    let text = std::fs::read_to_string(&generated).unwrap();
    assert_eq!(prefixes(&text), want);
    // Last online 2024-06-28: counts through that day.
    assert!(text.contains("expires = 2024-06-29"), "{text}");
    // Without a header, a column is a number.
    std::fs::remove_file(&generated).unwrap();
    let out = args("dst_ip");
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--column `dst_ip`"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("columns are numbers"),
        "{}",
        stderr(&out)
    );
    assert!(!generated.exists());
    // A delimiter is one character.
    let out = import(&[
        "csv",
        &feed("feodo-layout.csv"),
        "--entity",
        "x",
        "--column",
        "2",
        "--delimiter",
        ";;",
    ]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--delimiter `;;` must be one character"),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_row_is_refused_by_default_and_skipped_and_reported_with_skip() {
    let (_tmp, dir) = lab("badrow", "integrity-tech");
    let entity = dir.join("entity.toml");
    let before = std::fs::read_to_string(&entity).unwrap();
    // The TSV with two rows broken: an octet over 255 and a bad date.
    let tsv = std::fs::read_to_string(feed("misp-attributes.tsv")).unwrap();
    let mut lines: Vec<String> = tsv.lines().map(String::from).collect();
    lines[3] = lines[3].replacen("202.182.109.151", "202.182.109.351", 1);
    lines[5] = format!("{}\t2024-13-01", lines[5].rsplit_once('\t').unwrap().0);
    let bad = dir.join("bad.tsv");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let args = |extra: &[&str]| {
        let mut a = vec![
            "csv",
            s(&bad),
            "--entity",
            "integrity-tech",
            "--delimiter",
            "\\t",
            "--column",
            "value",
            "--type-column",
            "type",
            "--last-seen-column",
            "last_seen",
            "--source",
            "https://example.org/x",
            "--out",
            s(&entity),
            "--append",
        ];
        a.extend_from_slice(extra);
        import(&a)
    };
    let out = args(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(65), "{err}");
    assert!(
        err.contains(&format!("{}:4: column `value`", bad.display())),
        "{err}"
    );
    assert!(err.contains("202.182.109.351"), "{err}");
    assert_eq!(std::fs::read_to_string(&entity).unwrap(), before);

    let out = args(&["--on-bad-line", "skip"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("skipped 2: bad lines"), "{err}");
    assert!(
        err.contains(&format!("warning: {}:4: column `value`", bad.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!("warning: {}:6: column `last_seen`", bad.display())),
        "{err}"
    );
    let text = std::fs::read_to_string(&entity).unwrap();
    assert!(!prefixes(&text).contains("202.182.109.351"));
    assert!(prefixes(&text).contains("114.255.70.20"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ioc_prose_skips_versions_and_build_numbers_and_keeps_the_indicators() {
    let (_tmp, dir) = lab("prose", "integrity-tech");
    let config = dir.join("main.toml");
    let out = embargo(&[
        "import",
        "ioc",
        &fixture("advisory-prose.txt"),
        "--entity",
        "integrity-tech",
        "--source",
        "https://example.org/advisory",
        "--out",
        s(&dir.join("entity.toml")),
        "--append",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("4 imported, 5 skipped"), "{err}");
    assert!(err.contains("skipped 3: dotted software versions"), "{err}");
    assert!(
        err.contains("skipped 2: address-shaped words in prose"),
        "{err}"
    );
    let out = embargo(&["check", "--config", s(&config)]);
    assert!(out.status.success(), "{}", stderr(&out));
    for addr in [
        "45.77.231.209",
        "92.38.185.43",
        "139.180.137.219",
        "5.188.33.135",
    ] {
        assert_eq!(why_json(&config, addr)["verdict"], "listed", "{addr}");
    }
    for version in ["7.2.4.1", "22.7.1.1", "3.0.2.1"] {
        assert_eq!(
            why_json(&config, version)["verdict"],
            "not_listed",
            "{version}"
        );
    }
    // One indicator per line stays strict: a build number alone is an error.
    let list = dir.join("list.txt");
    std::fs::write(&list, "45.77.231.209\n10.0.17763.1\n").unwrap();
    let out = embargo(&[
        "import",
        "ioc",
        s(&list),
        "--entity",
        "integrity-tech",
        "--source",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{}:2: `10.0.17763.1`", list.display())),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `import ... --json`: the summary is one JSON line `{"summary": {...}}`, on standard error
/// when the TOML goes to standard output, on standard output when `--out` takes the TOML.
#[test]
fn import_json_summary_goes_where_the_toml_does_not() {
    let (_tmp, dir) = lab("json", "example-corp");
    let list = dir.join("mixed.txt");
    std::fs::write(&list, "8.8.8.8\n10.0.0.1\nexample.org\n2a00:1450::1\n").unwrap();
    let base = [
        "import",
        "ioc",
        s(&list),
        "--entity",
        "example-corp",
        "--source",
        "https://example.org/a",
        "--json",
    ];
    let summary = |line: &str| -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        v["summary"].clone()
    };
    // No --out: the TOML on stdout, the summary alone on stderr.
    let out = embargo_as_is(&base);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(stdout(&out).contains("\"8.8.8.8\""), "{}", stdout(&out));
    assert_eq!(err.lines().count(), 1, "{err}");
    let v = summary(err.trim_end());
    assert_eq!(v["format"], "ioc", "{v}");
    assert_eq!(v["entity"], "example-corp", "{v}");
    assert_eq!(v["imported"], 3, "{v}");
    assert_eq!(v["skipped_total"], 1, "{v}");
    assert_eq!(v["special"]["private"], 1, "{v}");
    assert_eq!(v["special_kept"], false, "{v}");
    assert_eq!(v["prefixes"], 2, "{v}");
    assert!(v["written"].is_null(), "{v}");

    // Nothing left to import: the error object, its notes say what was left out.
    std::fs::write(&list, "10.0.0.1\n").unwrap();
    let out = embargo_as_is(&base);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    let e: serde_json::Value = serde_json::from_str(err.trim_end()).unwrap();
    assert_eq!(e["exit_code"], 65, "{e}");
    assert!(
        e["notes"][0]
            .as_str()
            .unwrap()
            .contains("left out 1 in the private"),
        "{e}"
    );
    std::fs::write(&list, "8.8.8.8\n10.0.0.1\nexample.org\n2a00:1450::1\n").unwrap();

    // --out: the summary on stdout, nothing on stderr.
    let file = dir.join("groups.toml");
    let mut args = base.to_vec();
    args.extend(["--out", s(&file)]);
    let out = embargo_as_is(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    let v = summary(text.trim_end());
    assert_eq!(v["written"], s(&file), "{v}");
    assert_eq!(v["groups"], 1, "{v}");
    assert!(std::fs::read_to_string(&file).unwrap().contains("8.8.8.8"));

    // Refused (the file exists now): the JSON error object, exit 73.
    let out = embargo_as_is(&args);
    assert_eq!(out.status.code(), Some(73), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    let e: serde_json::Value = serde_json::from_str(err.trim_end()).unwrap();
    assert_eq!(e["exit_code"], 73, "{e}");
    assert!(e["error"].as_str().unwrap().contains("groups.toml"), "{e}");

    // A sanctions list: skeletons on stdout and the summary on stderr; with --out, the files
    // written named on stdout.
    let uk = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lists/UK_Sanctions_List.csv"
    );
    let list_args = [
        "import",
        "uk-csv",
        uk,
        "--reference",
        "CYB0114",
        "--reference",
        "NOPE-1",
        "--json",
    ];
    let out = embargo_as_is(&list_args);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(stdout(&out).contains("reference = \"CYB0114\""));
    assert_eq!(err.lines().count(), 1, "{err}");
    let v = summary(err.trim_end());
    assert_eq!(v["format"], "uk-csv", "{v}");
    assert_eq!(v["designations"], 1, "{v}");
    assert_eq!(
        v["references_not_found"],
        serde_json::json!(["NOPE-1"]),
        "{v}"
    );
    assert_eq!(v["written"], serde_json::json!([]), "{v}");
    let out_dir = dir.join("skeletons");
    let mut args = list_args.to_vec();
    args.extend(["--out", s(&out_dir)]);
    let out = embargo_as_is(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let v = summary(stdout(&out).trim_end());
    let written = v["written"].as_array().unwrap();
    assert_eq!(written.len(), 1, "{v}");
    assert!(Path::new(written[0].as_str().unwrap()).is_file(), "{v}");
}
