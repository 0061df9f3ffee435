//! Sanctions lists end to end through the `embargo` binary: `embargo import` output loads with
//! `embargo check` once a network group is added; a designation that follows a list is
//! enforced while the list has its reference and delisted when an updated list drops it; a
//! broken list or an unknown list name refuses the configuration (exit 64, file:line).

mod support;

use std::path::{Path, PathBuf};

use support::{embargo, stderr};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lists")
        .join(name)
}

const GROUP: &str = r#"
[[networks]]
prefixes = ["192.0.2.10"]
guard_override = "documentation range in a test"
[networks.evidence]
kind = "manual"
source = "test"
retrieved = 2026-01-01
confidence = "low"
"#;

/// A main file enforcing UK with list `uk` of `format` at `list`, including `entities/`.
fn main_file(dir: &Path, format: &str, list: &Path) -> PathBuf {
    let p = dir.join("main.toml");
    std::fs::write(
        &p,
        format!(
            "enforce = [\"UK\", \"US\", \"EU\"]\ninclude = [\"entities\"]\n\n[[lists]]\nname = \"uk\"\nformat = \"{format}\"\npath = \"{}\"\n",
            list.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("entities")).unwrap();
    p
}

fn check_json(main: &Path) -> serde_json::Value {
    let out = embargo(&["check", "--json", "--config", main.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn imported_skeletons_load_with_check_once_networks_are_added() {
    for (format, file, extra, regime, expected) in [
        ("uk-xml", "UK_Sanctions_List.xml", vec![], "cyber", 2),
        ("uk-csv", "UK_Sanctions_List.csv", vec![], "cyber", 2),
        // sdn.csv carries no designation date: given here as OFAC's notice states it.
        (
            "ofac-csv",
            "sdn.csv",
            vec!["--alt", "ALT", "--listed-on", "2025-01-03"],
            "CYBER2",
            1,
        ),
        ("ofac-xml", "sdn.xml", vec![], "CYBER2", 1),
        ("eu-xml", "eu_consolidated.xml", vec![], "CYB", 2),
        (
            "opensanctions",
            "opensanctions.ftm.json",
            vec![],
            "cyber",
            2,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let main = main_file(dir.path(), "uk-csv", &fixture("UK_Sanctions_List.csv"));
        let out_dir = dir.path().join("entities");
        let alt = fixture("alt.csv");
        let mut args = vec![
            "import".to_owned(),
            format.to_owned(),
            fixture(file).display().to_string(),
            "--regime".into(),
            regime.into(),
            "--out".into(),
            out_dir.display().to_string(),
        ];
        args.extend(extra.iter().map(|a| {
            if *a == "ALT" {
                alt.display().to_string()
            } else {
                (*a).to_owned()
            }
        }));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = embargo(&argv);
        assert!(out.status.success(), "{format}: {}", stderr(&out));
        let mut written: Vec<PathBuf> = std::fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        written.sort();
        assert_eq!(written.len(), expected, "{format}: {written:?}");
        // As imported, with no networks, they already load; add evidence and check again.
        for p in &written {
            let mut text = std::fs::read_to_string(p).unwrap();
            assert!(text.contains("action = \"monitor\""), "{text}");
            assert!(!text.lines().any(|l| l.trim() == "[[networks]]"), "{text}");
            text.push_str(GROUP);
            std::fs::write(p, text).unwrap();
        }
        let v = check_json(&main);
        let entities = v["entities"].as_array().unwrap();
        assert_eq!(entities.len(), expected, "{format}: {v}");
        assert_eq!(v["prefixes_v4"], 1, "{format}: {v}");

        // A second import refuses to overwrite and writes nothing.
        let before = std::fs::read_to_string(&written[0]).unwrap();
        let again = embargo(&argv);
        assert_eq!(again.status.code(), Some(1), "{format}");
        assert!(
            stderr(&again).contains("already exist"),
            "{}",
            stderr(&again)
        );
        assert_eq!(std::fs::read_to_string(&written[0]).unwrap(), before);
    }
}

#[test]
fn import_without_out_prints_and_filters_by_reference() {
    let out = embargo(&[
        "import",
        "uk-csv",
        fixture("UK_Sanctions_List.csv").to_str().unwrap(),
        "--reference",
        "CYB0114",
        "--list",
        "uk",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("[[designations]]").count(), 1, "{text}");
    assert!(text.contains("reference = \"CYB0114\""), "{text}");
    assert!(text.contains("list = \"uk\""), "{text}");
    assert!(text.contains("listed_on = 2025-12-09"), "{text}");
    assert!(
        text.contains("aliases = [\"Anxun Information Technology Co., Ltd.\", \"i-Soon\"]"),
        "{text}"
    );
}

const I_SOON: &str = r#"id = "i-soon"
name = "Sichuan Anxun Information Technology Co., Ltd."
aliases = ["i-Soon"]
action = "drop"

[[designations]]
authority = "UK"
regime = "The Cyber (Sanctions) (EU Exit) Regulations 2020"
reference = "CYB0114"
listed_on = 2025-12-09
source = "https://www.gov.uk/"
list = "uk"
"#;

#[test]
fn an_updated_list_without_the_reference_ends_enforcement() {
    let dir = tempfile::tempdir().unwrap();
    let main = main_file(dir.path(), "uk-csv", &fixture("UK_Sanctions_List.csv"));
    std::fs::write(
        dir.path().join("entities/i-soon.toml"),
        format!("{I_SOON}{GROUP}"),
    )
    .unwrap();
    let v = check_json(&main);
    assert_eq!(v["entities"][0]["id"], "i-soon", "{v}");
    assert_eq!(v["prefixes_v4"], 1);

    main_file(
        dir.path(),
        "uk-csv",
        &fixture("UK_Sanctions_List.delisted.csv"),
    );
    let v = check_json(&main);
    assert_eq!(v["entities"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["prefixes_v4"], 0);
    let delisted = v["report"]["delisted_by_list"][0].as_str().unwrap();
    assert!(
        delisted.contains("CYB0114") && delisted.contains("2026-06-20"),
        "{v}"
    );
    // `why` says why the address passes now.
    let out = embargo(&["why", "192.0.2.10", "--config", main.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no longer in list `uk`"), "{text}");
}

#[test]
fn a_broken_list_refuses_the_configuration_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    // A truncated XML list.
    let xml = std::fs::read_to_string(fixture("UK_Sanctions_List.xml")).unwrap();
    let cut = xml.find("<UniqueID>RUS9901").unwrap();
    let truncated = dir.path().join("truncated.xml");
    std::fs::write(&truncated, &xml[..cut]).unwrap();
    let line = xml[..cut].matches('\n').count() + 1;
    let main = main_file(dir.path(), "uk-xml", &truncated);
    std::fs::write(
        dir.path().join("entities/i-soon.toml"),
        format!("{I_SOON}{GROUP}"),
    )
    .unwrap();
    let out = embargo(&["check", "--config", main.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:{line}:1:", truncated.display())),
        "{err}"
    );
    assert!(err.contains("truncated"), "{err}");
    assert!(err.contains("nothing from it was applied"), "{err}");

    // A CSV row with the wrong number of fields.
    let csv = std::fs::read_to_string(fixture("UK_Sanctions_List.csv")).unwrap();
    let mut rows: Vec<&str> = csv.split("\r\n").collect();
    rows[3] = "09/12/2025,CYB0114,bad";
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, rows.join("\r\n")).unwrap();
    main_file(dir.path(), "uk-csv", &bad);
    let out = embargo(&["check", "--config", main.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{}:4:1:", bad.display())),
        "{}",
        stderr(&out)
    );

    // A list with a header and no designations would delist everyone: refused.
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, rows[..2].join("\r\n")).unwrap();
    main_file(dir.path(), "uk-csv", &empty);
    let out = embargo(&["check", "--config", main.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(stderr(&out).contains("no designations"), "{}", stderr(&out));

    // A missing list file: refused at the [[lists]] path.
    main_file(dir.path(), "uk-csv", &dir.path().join("missing.csv"));
    let out = embargo(&["check", "--config", main.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{}:7:8:", main.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unknown_list_name_is_refused_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let main = main_file(dir.path(), "uk-csv", &fixture("UK_Sanctions_List.csv"));
    let entity = dir.path().join("entities/i-soon.toml");
    std::fs::write(&entity, I_SOON.replace("list = \"uk\"", "list = \"ofac\"")).unwrap();
    let out = embargo(&["check", "--config", main.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:12:8:", entity.display())),
        "{err}"
    );
    assert!(err.contains("unknown list `ofac` (declared: uk)"), "{err}");
}

#[test]
fn why_marks_a_delisted_designation_while_another_keeps_the_entity_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let main = main_file(
        dir.path(),
        "uk-csv",
        &fixture("UK_Sanctions_List.delisted.csv"),
    );
    let us = r#"
[[designations]]
authority = "US"
regime = "CYBER2"
reference = "sample-99901"
listed_on = 2025-01-03
source = "https://home.treasury.gov/news/press-releases/jy2769"
"#;
    std::fs::write(
        dir.path().join("entities/i-soon.toml"),
        format!("{I_SOON}{us}{GROUP}"),
    )
    .unwrap();
    let out = embargo(&["why", "192.0.2.10", "--config", main.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("BLOCKED"), "{text}");
    assert!(text.contains("- US · CYBER2 · ref sample-99901"), "{text}");
    assert!(
        text.contains("- DELISTED UK · The Cyber (Sanctions) (EU Exit) Regulations 2020 · ref CYB0114 · listed 2025-12-09 · delisted 2026-06-20 (follows list `uk`)"),
        "{text}"
    );
}

#[test]
fn every_list_format_reads_a_file_that_starts_with_a_byte_order_mark() {
    // The same designations with and without the mark, whatever the format; `embargo import`
    // (which reads the file from disk) finds the first designation too.
    let dir = tempfile::tempdir().unwrap();
    for (format, file) in [
        (
            embargo::inputs::lists::ListFormat::UkCsv,
            "UK_Sanctions_List.csv",
        ),
        (
            embargo::inputs::lists::ListFormat::UkXml,
            "UK_Sanctions_List.xml",
        ),
        (embargo::inputs::lists::ListFormat::OfacCsv, "sdn.csv"),
        (embargo::inputs::lists::ListFormat::OfacXml, "sdn.xml"),
        (
            embargo::inputs::lists::ListFormat::EuXml,
            "eu_consolidated.xml",
        ),
        (
            embargo::inputs::lists::ListFormat::Opensanctions,
            "opensanctions.ftm.json",
        ),
    ] {
        let text = std::fs::read_to_string(fixture(file)).unwrap();
        let parse = |text: &str| {
            embargo::inputs::lists::parse(
                format,
                &embargo::inputs::lists::ListInput {
                    path: Path::new(file),
                    text,
                    alt: None,
                },
            )
            .map(|d| d.designations)
            .map_err(|e| e.to_string())
        };
        let plain = parse(&text).unwrap();
        let marked = format!("\u{feff}{text}");
        assert_eq!(parse(&marked), Ok(plain.clone()), "{format}");
        let path = dir.path().join(file);
        std::fs::write(&path, &marked).unwrap();
        // sdn.csv carries no date and no publication date: one is given (never invented).
        let out = embargo(&[
            "import",
            format.name(),
            path.to_str().unwrap(),
            "--reference",
            &plain[0].reference,
            "--listed-on",
            "2025-01-03",
        ]);
        assert!(out.status.success(), "{format}: {}", stderr(&out));
    }
}
