//! One entity from several authorities' lists, through the `embargo` binary (issue 15): `--id`
//! on list imports, designations appended to an existing entity file, OFAC designation dates
//! from the advanced XML (and a refusal, not today, when there is none), the UK list's website,
//! sanctions imposed and statement of reasons kept and shown by `why`, `embargo init`, `why`
//! naming every evidence group that covers an address and the delisted designations in
//! `--json` (issue 14), and the worked example of `config/examples/two-authorities/README.md`
//! run command for command.

mod support;

use std::path::{Path, PathBuf};

use support::{embargo, stderr, stdout};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lists")
        .join(name)
        .display()
        .to_string()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `embargo ARGS`, which must succeed; its standard output.
fn ok(args: &[&str]) -> String {
    let out = embargo(args);
    assert!(
        out.status.success(),
        "embargo {args:?}: {}\n{}",
        stderr(&out),
        stdout(&out)
    );
    stdout(&out)
}

const GROUP: &str = r#"
[[networks]]
prefixes = ["45.77.231.209"]
[networks.evidence]
kind = "advisory"
source = "https://github.com/blacklotuslabs/IOCs"
retrieved = 2024-09-18
confidence = "medium"
"#;

/// A configuration enforcing UK and US with `entities/` (empty), and its main file.
fn config(dir: &Path) -> PathBuf {
    let main = dir.join("embargo.toml");
    std::fs::write(
        &main,
        "enforce = [\"UK\", \"US\"]\ninclude = [\"entities\"]\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("entities")).unwrap();
    main
}

/// The UK file of Integrity Tech (`--id integrity-tech`) in `dir/entities`.
fn uk_entity(dir: &Path) -> PathBuf {
    let out = ok(&[
        "import",
        "uk-csv",
        &fixture("UK_Sanctions_List.csv"),
        "--reference",
        "CYB9901",
        "--id",
        "integrity-tech",
        "--out",
        &s(&dir.join("entities")),
    ]);
    let file = dir.join("entities/integrity-tech.toml");
    assert!(out.contains(&s(&file)), "{out}");
    file
}

fn append_ofac(file: &Path, extra: &[&str]) -> std::process::Output {
    let (sdn, alt, dates) = (
        fixture("sdn.csv"),
        fixture("alt.csv"),
        fixture("sdn_advanced.xml"),
    );
    let mut args = vec![
        "import",
        "ofac-csv",
        &sdn,
        "--alt",
        &alt,
        "--dates",
        &dates,
        "--reference",
        "99901",
        "--entity",
        "integrity-tech",
        "--out",
    ];
    let f = s(file);
    args.push(&f);
    args.push("--append");
    args.extend_from_slice(extra);
    embargo(&args)
}

#[test]
fn id_chooses_the_entity_id_for_one_designation() {
    let out = ok(&[
        "import",
        "uk-csv",
        &fixture("UK_Sanctions_List.csv"),
        "--reference",
        "CYB0114",
        "--id",
        "i-soon",
    ]);
    assert!(out.contains("# ---- i-soon.toml"), "{out}");
    assert!(out.contains("id = \"i-soon\""), "{out}");
    // Two designations cannot share one id; a bad id is refused.
    for (id, want) in [
        ("x", "2 designations match"),
        ("Not An Id", "must be an entity id"),
    ] {
        let out = embargo(&[
            "import",
            "uk-csv",
            &fixture("UK_Sanctions_List.csv"),
            "--regime",
            "cyber",
            "--id",
            id,
        ]);
        assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
        assert!(stderr(&out).contains(want), "{}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    }
}

#[test]
fn an_ofac_designation_is_appended_to_the_uk_entity_and_a_duplicate_is_refused_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let main = config(dir.path());
    let file = uk_entity(dir.path());
    let out = append_ofac(&file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("added 1 designation (US 99901)"),
        "{}",
        stdout(&out)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("reference = \"CYB9901\""), "{text}");
    assert!(text.contains("reference = \"99901\""), "{text}");
    // The date is the advanced XML's entry event, not today and not a stand-in.
    assert!(text.contains("listed_on = 2025-01-03\n"), "{text}");
    assert!(text.contains("regime = \"CYBER2\""), "{text}");

    // With a network group the file is one enforced entity designated by both authorities.
    std::fs::write(&file, format!("{text}{GROUP}")).unwrap();
    let out = embargo(&["check", "--json", "--config", &s(&main)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &v["entities"][0];
    assert_eq!(v["entities"].as_array().unwrap().len(), 1, "{v}");
    let auth: Vec<&str> = e["designations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["authority"].as_str().unwrap())
        .collect();
    assert_eq!(auth, ["UK", "US"], "{e}");

    // Again: refused with the file and line of the designation there; the file is unchanged.
    let before = std::fs::read(&file).unwrap();
    let line = String::from_utf8_lossy(&before)
        .lines()
        .position(|l| l == "reference = \"99901\"")
        .unwrap()
        - 2;
    let again = append_ofac(&file, &[]);
    assert_eq!(again.status.code(), Some(65), "{}", stderr(&again));
    let err = stderr(&again);
    assert!(
        err.contains(&format!("{}:{line}: ", file.display())),
        "want line {line}: {err}"
    );
    assert!(
        err.contains("already has the US designation 99901"),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);

    // Another entity's file, or a link to this one: refused, nothing written.
    let other = dir.path().join("entities/other.toml");
    std::fs::write(
        &other,
        "id = \"other\"\nname = \"Other\"\naction = \"monitor\"\n",
    )
    .unwrap();
    let out = append_ofac(&other, &[]);
    assert_eq!(out.status.code(), Some(73), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not `integrity-tech`"),
        "{}",
        stderr(&out)
    );
    let link = dir.path().join("link.toml");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let out = append_ofac(&link, &[]);
    assert_eq!(out.status.code(), Some(73), "{}", stderr(&out));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);
}

#[test]
fn ofac_designation_dates_come_from_the_advanced_xml_and_are_never_invented() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    // sdn.csv alone has no date: refused, nothing written, the way out named.
    let out = embargo(&[
        "import",
        "ofac-csv",
        &fixture("sdn.csv"),
        "--alt",
        &fixture("alt.csv"),
        "--regime",
        "CYBER2",
        "--out",
        &s(&out_dir),
    ]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("carries no designation date"), "{err}");
    assert!(err.contains("--dates sdn_advanced.xml"), "{err}");
    assert!(err.contains("--listed-on"), "{err}");
    assert!(!out_dir.exists());
    // --listed-on: written as given, and said so.
    let text = ok(&[
        "import",
        "ofac-csv",
        &fixture("sdn.csv"),
        "--reference",
        "99901",
        "--listed-on",
        "2025-01-03",
    ]);
    assert!(
        text.contains("listed_on = 2025-01-03   # given with --listed-on"),
        "{text}"
    );
    // --dates: the earliest entry event (99902 was amended later), for CSV and XML alike.
    for (format, file) in [("ofac-csv", "sdn.csv"), ("ofac-xml", "sdn.xml")] {
        let text = ok(&[
            "import",
            format,
            &fixture(file),
            "--reference",
            "99902",
            "--dates",
            &fixture("sdn_advanced.xml"),
        ]);
        assert!(
            text.contains("listed_on = 2024-10-11\n"),
            "{format}: {text}"
        );
    }
    // sdn.xml without --dates: its publication date stands in, marked, with a note.
    let out = embargo(&[
        "import",
        "ofac-xml",
        &fixture("sdn.xml"),
        "--reference",
        "99901",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("listed_on = 2025-01-03   # the list carries no designation date"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("note: the list carries no designation date"));
    // A designation the advanced XML does not date (36) still needs --listed-on.
    let out = embargo(&[
        "import",
        "ofac-csv",
        &fixture("sdn.csv"),
        "--reference",
        "36",
        "--dates",
        &fixture("sdn_advanced.xml"),
    ]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nor does the --dates file"),
        "{}",
        stderr(&out)
    );
    // A damaged dates file is refused at its line.
    let bad = dir.path().join("adv.xml");
    let adv = std::fs::read_to_string(fixture("sdn_advanced.xml")).unwrap();
    std::fs::write(&bad, adv.replace("<Month>10</Month>", "<Month>13</Month>")).unwrap();
    let out = embargo(&[
        "import",
        "ofac-csv",
        &fixture("sdn.csv"),
        "--reference",
        "99902",
        "--dates",
        &s(&bad),
    ]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{}:48: ", bad.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn website_sanctions_imposed_and_statement_of_reasons_are_kept_and_shown_by_why() {
    let dir = tempfile::tempdir().unwrap();
    let main = config(dir.path());
    let file = uk_entity(dir.path());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("websites = [\"www.example.invalid\"]"),
        "{text}"
    );
    assert!(
        text.contains("sanctions_imposed = \"Asset freeze\""),
        "{text}"
    );
    assert!(
        text.contains(
            "statement_of_reasons = \"SAMPLE statement of reasons, not the published text"
        ),
        "{text}"
    );
    std::fs::write(&file, format!("{text}{GROUP}")).unwrap();
    let why = ok(&["why", "45.77.231.209", "--config", &s(&main)]);
    for want in [
        "- UK · The Cyber (Sanctions) (EU Exit) Regulations 2020 · ref CYB9901 · listed 2025-12-09",
        "      sanctions imposed: Asset freeze",
        "      website: www.example.invalid",
        "      statement of reasons: SAMPLE statement of reasons, not the published text",
    ] {
        assert!(why.contains(want), "{want}\n{why}");
    }
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "why",
        "45.77.231.209",
        "--json",
        "--config",
        &s(&main),
    ]))
    .unwrap();
    let d = &v["designations"][0];
    assert_eq!(d["websites"][0], "www.example.invalid", "{v}");
    assert_eq!(d["sanctions_imposed"], "Asset freeze", "{v}");
    assert!(
        d["statement_of_reasons"]
            .as_str()
            .unwrap()
            .starts_with("SAMPLE statement"),
        "{v}"
    );
}

#[test]
fn init_writes_a_configuration_check_accepts_and_refuses_a_non_empty_folder() {
    let tmp = tempfile::tempdir().unwrap();
    for a in ["UK", "US", "EU", "UN"] {
        let dir = tmp.path().join(format!("cfg-{a}"));
        ok(&["init", "--authority", a, &s(&dir)]);
        let main = dir.join("embargo.toml");
        let text = std::fs::read_to_string(&main).unwrap();
        assert!(text.contains(&format!("enforce = [\"{a}\"]")), "{text}");
        assert!(
            text.lines().filter(|l| l.starts_with('#')).count() > 10,
            "{text}"
        );
        assert!(dir.join("entities").is_dir());
        let check = embargo(&["check", "--config", &s(&main)]);
        assert!(check.status.success(), "{a}: {}", stderr(&check));
    }
    // The default authority is UK; an existing empty folder is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    ok(&["init", &s(&empty)]);
    assert!(
        std::fs::read_to_string(empty.join("embargo.toml"))
            .unwrap()
            .contains("enforce = [\"UK\"]")
    );
    // Again into the same (now non-empty) folder: refused, nothing changed.
    let before = std::fs::read(empty.join("embargo.toml")).unwrap();
    let out = embargo(&["init", "--authority", "US", &s(&empty)]);
    assert_eq!(out.status.code(), Some(73), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));
    assert_eq!(std::fs::read(empty.join("embargo.toml")).unwrap(), before);
    // A link to an empty folder is not written through.
    let target = tmp.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = embargo(&["init", &s(&link)]);
    assert_eq!(out.status.code(), Some(73), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
}

/// Issue 14: `why` names every evidence group whose prefix contains the address, most specific
/// first, and `--json` carries the delisted designations the text marks DELISTED.
#[test]
fn why_lists_every_covering_group_and_json_has_the_delisted_designations() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("embargo.toml");
    std::fs::write(
        &main,
        r#"enforce = ["UK", "US"]

[[entities]]
id = "integrity-tech"
name = "Integrity Technology Group Incorporated"
action = "drop"
designations = [
  { authority = "US", regime = "CYBER2", reference = "99901", listed_on = 2025-01-03, source = "https://home.treasury.gov/news/press-releases/jy2769" },
  { authority = "UK", regime = "Cyber", reference = "CYB9901", listed_on = 2025-12-09, delisted_on = 2026-01-10, source = "https://www.gov.uk/" },
]
[[entities.networks]]
prefixes = ["45.77.0.0/16"]
evidence = { kind = "registry", source = "https://rdap.example/45.77.0.0", retrieved = 2026-01-01, confidence = "high" }
[[entities.networks]]
prefixes = ["45.77.231.209"]
evidence = { kind = "advisory", source = "https://github.com/blacklotuslabs/IOCs", retrieved = 2024-09-18, confidence = "medium" }
[[entities.networks]]
prefixes = ["45.77.231.209"]
evidence = { kind = "advisory", source = "https://www.ic3.gov/CSA/2024/240918.pdf", retrieved = 2024-09-18, confidence = "high" }

[[entities]]
id = "other"
name = "Another Listed Entity"
action = "monitor"
designations = [{ authority = "US", regime = "CYBER2", reference = "99902", listed_on = 2025-01-03, source = "https://example.invalid/" }]
[[entities.networks]]
prefixes = ["45.77.231.0/24"]
evidence = { kind = "advisory", source = "https://advisory.example/b", retrieved = 2026-02-01, confidence = "low" }
[[entities.networks]]
prefixes = ["45.77.231.209"]
evidence = { kind = "manual", source = "https://advisory.example/c", retrieved = 2026-02-01, confidence = "low" }
"#,
    )
    .unwrap();
    let why = ok(&["why", "45.77.231.209", "--config", &s(&main)]);
    // The lines the tests already match stay: verdict, entity, the matched group's evidence.
    assert!(why.starts_with("45.77.231.209: BLOCKED\n"), "{why}");
    assert!(why.contains("  prefix:      45.77.231.209/32\n"), "{why}");
    assert!(
        why.contains("  evidence:    advisory, medium confidence, retrieved 2024-09-18"),
        "{why}"
    );
    assert!(why.contains("- DELISTED UK · Cyber · ref CYB9901"), "{why}");
    // Two groups of the entity and one of another list the same /32: the table keeps one
    // claim (the drop entity's first group), `why` names all three.
    let list = why
        .split("  evidence groups covering it (5, most specific first):\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no group list: {why}"));
    let rows: Vec<&str> = list.lines().take(5).collect();
    for (row, want) in rows.iter().zip([
        "    - 45.77.231.209/32 · `integrity-tech` group 2 · advisory, medium",
        "    - 45.77.231.209/32 · `integrity-tech` group 3 · advisory, high",
        "    - 45.77.231.209/32 · `other` group 2 · manual, low",
        "    - 45.77.231.0/24 · `other` group 1 · advisory, low",
        "    - 45.77.0.0/16 · `integrity-tech` group 1 · registry, high",
    ]) {
        assert!(row.starts_with(want), "{want}\n{why}");
    }

    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "why",
        "45.77.231.209",
        "--json",
        "--config",
        &s(&main),
    ]))
    .unwrap();
    let prefixes: Vec<&str> = v["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|g| g["prefix"].as_str().unwrap())
        .collect();
    assert_eq!(
        prefixes,
        [
            "45.77.231.209/32",
            "45.77.231.209/32",
            "45.77.231.209/32",
            "45.77.231.0/24",
            "45.77.0.0/16"
        ],
        "{v}"
    );
    assert_eq!(v["groups"][0]["group"], 1, "{v}");
    assert_eq!(v["groups"][1]["group"], 2, "{v}");
    assert_eq!(v["groups"][3]["entity"], "other", "{v}");
    assert_eq!(v["groups"][4]["evidence"]["kind"], "registry", "{v}");
    let delisted = v["delisted"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(delisted.len(), 1, "{v}");
    assert_eq!(delisted[0]["reference"], "CYB9901", "{v}");
    assert_eq!(delisted[0]["delisted_on"], "2026-01-10", "{v}");
    // One group only: no list, as before.
    let one = ok(&["why", "45.77.1.1", "--config", &s(&main)]);
    assert!(!one.contains("evidence groups covering it"), "{one}");
}

/// The worked example's README, run command for command: the block's `embargo` lines with
/// `$EX` replaced and `work` in a temporary folder.
#[test]
fn the_worked_example_runs_as_written() {
    let root = Path::new(support::ROOT);
    let readme =
        std::fs::read_to_string(root.join("config/examples/two-authorities/README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block");
    let ex = block
        .lines()
        .find_map(|l| l.strip_prefix("EX="))
        .expect("EX=");
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let commands: Vec<&str> = block
        .lines()
        .filter(|l| l.starts_with("embargo "))
        .collect();
    assert_eq!(commands.len(), 6, "{block}");
    let mut outputs = Vec::new();
    for c in &commands {
        let line = c.replace("$EX", ex);
        let args: Vec<String> = line
            .split_whitespace()
            .skip(1)
            .map(|a| {
                if a == "work" {
                    s(&work)
                } else if let Some(rest) = a.strip_prefix("work/") {
                    s(&work.join(rest))
                } else {
                    a.to_owned()
                }
            })
            .collect();
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = embargo(&argv);
        assert!(
            out.status.success(),
            "{line}: {}\n{}",
            stderr(&out),
            stdout(&out)
        );
        outputs.push((stdout(&out), stderr(&out)));
    }
    let file = std::fs::read_to_string(work.join("entities/integrity-tech.toml")).unwrap();
    assert!(file.contains("reference = \"CYB9901\""), "{file}");
    assert!(file.contains("reference = \"99901\""), "{file}");
    assert!(file.contains("listed_on = 2025-01-03\n"), "{file}");
    // The prose's four addresses, and the versions skipped, not refused.
    for a in [
        "45.77.231.209",
        "92.38.185.43",
        "139.180.137.219",
        "5.188.33.135",
    ] {
        assert!(file.contains(a), "{a}: {file}");
    }
    assert!(!file.contains("10.0.17763.1"), "{file}");
    let check = embargo(&[
        "check",
        "--json",
        "--config",
        &s(&work.join("embargo.toml")),
    ]);
    assert!(check.status.success(), "{}", stderr(&check));
    let v: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(v["entities"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(
        v["entities"][0]["designations"].as_array().unwrap().len(),
        2,
        "{v}"
    );
    assert_eq!(v["prefixes_v4"], 4, "{v}");
    let why = &outputs[5].0;
    assert!(why.contains("MONITORED"), "{why}");
    assert!(why.contains("ref 99901 · listed 2025-01-03"), "{why}");
    assert!(why.contains("ref CYB9901 · listed 2025-12-09"), "{why}");
    // Running the OFAC step again is refused: the designation is there.
    let again = commands[2]
        .replace("$EX", ex)
        .replace("work/", &format!("{}/", work.display()));
    let args: Vec<&str> = again.split_whitespace().skip(1).collect();
    let out = embargo(&args);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("already has the US designation 99901"),
        "{}",
        stderr(&out)
    );
}
