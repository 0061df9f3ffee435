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

/// `s` as the rest of a comment line: whitespace runs (newlines too) as one space, control
/// characters escaped, so a list value can neither end the comment nor make it invalid TOML.
fn comment_text(s: &str) -> String {
    super::collapse(s)
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Where a designation's `listed_on` comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListedOn {
    /// The list's own designation date (or the OFAC advanced XML's, `--dates`).
    Listed(NaiveDate),
    /// Given on the command line (`--listed-on`), the list carrying none.
    Given(NaiveDate),
    /// The list's publication date (or another stand-in), the list carrying no designation
    /// date: written with a comment saying to set it from the authority's notice.
    StandIn(NaiveDate),
}

impl ListedOn {
    /// The date written.
    pub fn day(self) -> NaiveDate {
        match self {
            ListedOn::Listed(d) | ListedOn::Given(d) | ListedOn::StandIn(d) => d,
        }
    }
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
    let listed_on = match d.listed_on {
        Some(day) => ListedOn::Listed(day),
        None => ListedOn::StandIn(doc.published.unwrap_or(today)),
    };
    entity_file_dated(doc, d, id, list, listed_on)
}

/// One entity file for `d` of `doc`, its designation listed on `listed_on`.
pub fn entity_file_dated(
    doc: &ListDocument,
    d: &ListedDesignation,
    id: &str,
    list: Option<&str>,
    listed_on: ListedOn,
) -> String {
    use std::fmt::Write as _;
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
        let _ = writeln!(o, "# type on the list: {}", comment_text(t));
    }
    let _ = writeln!(o);
    o.push_str(&designation_block(doc, d, list, listed_on));
    o
}

/// The `[[designations]]` table for `d` of `doc` (what `embargo import --append` adds to an
/// existing entity file): authority, regime, reference, `listed_on`, source, `list`, and the
/// list's websites, sanctions imposed and statement of reasons when it has them.
pub fn designation_block(
    doc: &ListDocument,
    d: &ListedDesignation,
    list: Option<&str>,
    listed_on: ListedOn,
) -> String {
    use std::fmt::Write as _;
    let authority = authority_of(doc, d);
    let mut o = String::new();
    let _ = writeln!(o, "[[designations]]");
    let _ = writeln!(o, "authority = {}", quoted(&authority));
    let regime = d.regime.clone().unwrap_or_else(|| d.programs.join(", "));
    let _ = writeln!(o, "regime = {}", quoted(&regime));
    let _ = writeln!(o, "reference = {}", quoted(&d.reference));
    match listed_on {
        ListedOn::Listed(day) => {
            let _ = writeln!(o, "listed_on = {day}");
        }
        ListedOn::Given(day) => {
            let _ = writeln!(
                o,
                "listed_on = {day}   # given with --listed-on: the list carries no designation date"
            );
        }
        ListedOn::StandIn(day) => {
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
    if !d.websites.is_empty() {
        let _ = writeln!(
            o,
            "websites = [{}]",
            d.websites
                .iter()
                .map(|w| quoted(w))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(s) = &d.sanctions_imposed {
        let _ = writeln!(o, "sanctions_imposed = {}", quoted(s));
    }
    if let Some(s) = &d.statement_of_reasons {
        let _ = writeln!(o, "statement_of_reasons = {}", quoted(s));
    }
    o
}

/// The authority of `d`: its own, else the document's.
pub fn authority_of(doc: &ListDocument, d: &ListedDesignation) -> String {
    d.authority
        .clone()
        .or_else(|| doc.authority.clone())
        .unwrap_or_else(|| "UNKNOWN".into())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Found by the `list_opensanctions` fuzz target: a list value written into a comment of the
    /// skeleton (the entity type, raw from an OpenSanctions `schema` or an EU `code` attribute)
    /// could hold a newline, which ended the comment and put the rest of the value into the
    /// entity file as TOML: a field of the list's choosing (here `direction`), or a file that
    /// does not parse.
    #[test]
    fn a_list_value_cannot_add_lines_to_the_skeleton() {
        let text = concat!(
            r#"{"id": "e1", "schema": "Company\u0001\ndirection = \"outbound\"", "properties": {"name": ["Acme Ltd"]}}"#,
            "\n",
            r#"{"id": "s1", "schema": "Sanction", "properties": {"entity": ["e1"], "authorityId": ["X1"], "country": ["gb"]}}"#,
            "\n"
        );
        let doc = super::super::opensanctions::parse(Path::new("x.json"), text).unwrap();
        let d = &doc.designations[0];
        let day = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let file = entity_file(&doc, d, "acme-ltd", None, day);
        let table: toml::Table = toml::from_str(&file).unwrap_or_else(|e| panic!("{e}\n{file}"));
        assert!(!table.contains_key("direction"), "{file}");
        assert_eq!(table["name"].as_str(), Some("Acme Ltd"));
        assert!(
            file.contains("# type on the list: Company\\u{1} direction = \"outbound\"\n"),
            "{file}"
        );
    }
}
