//! `embargo import`: entity file skeletons from list designations. Each skeleton has the id
//! (a slug of the name), name, aliases and the designation as the list states it, action
//! `monitor` and no network groups: the evidence linking addresses to the entity must be added
//! by a person, with its source.

use chrono::NaiveDate;

use super::{ListDocument, ListedDesignation};

/// Where each authority publishes, for the designation's `source`.
fn source_of(doc: &ListDocument, authority: &str) -> &'static str {
    match (doc.format, authority) {
        (super::ListFormat::UkCsv | super::ListFormat::UkXml, _) => {
            "https://www.gov.uk/government/publications/the-uk-sanctions-list"
        }
        (super::ListFormat::OfacCsv | super::ListFormat::OfacXml, _) => {
            "https://sanctionslist.ofac.treas.gov/"
        }
        (super::ListFormat::EuXml, _) => {
            "https://data.europa.eu/data/datasets/consolidated-list-of-persons-groups-and-entities-subject-to-eu-financial-sanctions"
        }
        (super::ListFormat::Opensanctions, _) => "https://www.opensanctions.org/",
    }
}

/// A slug of `name`: lowercase ASCII letters and digits, other runs as `-`, at most 48 chars.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut out: String = out.trim_end_matches('-').chars().take(48).collect();
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() { "entity".into() } else { out }
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// One entity file for `d` of `doc`. `list` fills the designation's `list = ...`; `today` is the
/// fallback `listed_on` when the list carries no designation date (OFAC), said in a comment.
pub fn entity_file(
    doc: &ListDocument,
    d: &ListedDesignation,
    id: &str,
    list: Option<&str>,
    today: NaiveDate,
) -> String {
    use std::fmt::Write as _;
    let authority = d
        .authority
        .clone()
        .or_else(|| doc.authority.clone())
        .unwrap_or_else(|| "UNKNOWN".into());
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Imported by `embargo import {}` from line {} of the list ({}).",
        doc.format,
        d.line,
        doc.published.map_or_else(
            || "no publication date in the file".to_owned(),
            |p| format!("published {p}")
        )
    );
    let _ = writeln!(
        o,
        "# No network evidence yet: sanctions lists carry no addresses. Add [[networks]] groups,\n\
         # each with the evidence (advisory, registry, routing) that links them to this entity,\n\
         # then review `action` (monitor counts and passes; drop blocks)."
    );
    let _ = writeln!(o, "id = {}", quoted(id));
    let _ = writeln!(o, "name = {}", quoted(&d.name));
    let _ = writeln!(
        o,
        "aliases = [{}]",
        d.aliases
            .iter()
            .map(|a| quoted(a))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(o, "action = \"monitor\"");
    if let Some(t) = &d.entity_type {
        let _ = writeln!(o, "# type on the list: {t}");
    }
    let _ = writeln!(o, "\n[[designations]]");
    let _ = writeln!(o, "authority = {}", quoted(&authority));
    let regime = d.regime.clone().unwrap_or_else(|| d.programs.join(", "));
    let _ = writeln!(o, "regime = {}", quoted(&regime));
    let _ = writeln!(o, "reference = {}", quoted(&d.reference));
    match d.listed_on {
        Some(day) => {
            let _ = writeln!(o, "listed_on = {day}");
        }
        None => {
            let day = doc.published.unwrap_or(today);
            let _ = writeln!(
                o,
                "listed_on = {day}   # the list carries no designation date: set it from the authority's notice"
            );
        }
    }
    let _ = writeln!(o, "source = {}", quoted(source_of(doc, &authority)));
    match list {
        Some(name) => {
            let _ = writeln!(o, "list = {}", quoted(name));
        }
        None => {
            let _ = writeln!(
                o,
                "# list = \"<name>\"   # a [[lists]] name of the main file: the list then keeps this designation current"
            );
        }
    }
    o
}
