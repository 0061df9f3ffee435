//! UK Sanctions List (FCDO) XML, the format published since February 2022: a `<Designations>`
//! root with `<DateGenerated>` and one `<Designation>` per `UniqueID`, its names in
//! `<Names><Name>` (`Name1`..`Name6`, `NameType`: `Primary Name`, `Primary Name Variation`,
//! `Alias`), `RegimeName`, `IndividualEntityShip`, `DateDesignated` and `LastUpdated`
//! (`dd/mm/yyyy`).

use std::path::Path;

use super::{Builder, ListDocument, ListError, ListFormat, ListedDesignation, date, xml};

/// The UK list's date form.
pub(crate) const UK_DATES: &[&str] = &["%d/%m/%Y", "%d-%b-%Y", "%Y-%m-%d"];

/// A `<Name>`'s parts joined: `Name1`..`Name5` then `Name6` (the surname or entity name).
fn full_name(n: &xml::Element) -> String {
    ["Name1", "Name2", "Name3", "Name4", "Name5", "Name6"]
        .iter()
        .filter_map(|p| n.text_of(p))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn parse(path: &Path, text: &str) -> Result<ListDocument, ListError> {
    let root = xml::parse(path, text)?;
    if root.name != "Designations" {
        return Err(ListError::new(
            path,
            root.line,
            format!(
                "the root element is <{}>, not <Designations>: not a UK Sanctions List XML file",
                root.name
            ),
        ));
    }
    let published = root
        .text_of("DateGenerated")
        .and_then(|d| date(&d, UK_DATES));
    let mut designations = Vec::new();
    for d in root.children("Designation") {
        let Some(reference) = d.text_of("UniqueID") else {
            return Err(ListError::new(
                path,
                d.line,
                "a <Designation> without <UniqueID>; the file is damaged, download it again",
            ));
        };
        let mut names = Builder::default();
        for n in d
            .child("Names")
            .into_iter()
            .flat_map(|ns| ns.children("Name"))
        {
            let primary = n
                .text_of("NameType")
                .is_some_and(|t| t.eq_ignore_ascii_case("Primary Name"));
            names.name(&full_name(n), primary);
        }
        for n in d
            .child("NonLatinNames")
            .into_iter()
            .flat_map(|ns| ns.children.iter())
        {
            if let Some(s) = n.text_of("NameNonLatinScript") {
                names.name(&s, false);
            }
        }
        let Some((name, aliases)) = names.finish() else {
            return Err(ListError::new(
                path,
                d.line,
                format!("designation {reference} has no name; the file is damaged"),
            ));
        };
        designations.push(ListedDesignation {
            reference,
            authority: None,
            name,
            aliases,
            regime: d.text_of("RegimeName"),
            programs: Vec::new(),
            listed_on: d.text_of("DateDesignated").and_then(|x| date(&x, UK_DATES)),
            updated_on: d.text_of("LastUpdated").and_then(|x| date(&x, UK_DATES)),
            entity_type: d.text_of("IndividualEntityShip"),
            websites: Vec::new(),
            sanctions_imposed: d.text_of("SanctionsImposed"),
            statement_of_reasons: d.text_of("UKStatementofReasons"),
            line: d.line,
        });
    }
    Ok(ListDocument {
        format: ListFormat::UkXml,
        authority: Some("UK".into()),
        published,
        designations,
    })
}
