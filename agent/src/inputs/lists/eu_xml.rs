//! The EU consolidated financial sanctions list XML (`xmlFullSanctionsList_1_1`): an `<export>`
//! root (`generationDate`) with one `<sanctionEntity>` per listing (`logicalId`,
//! `euReferenceNumber`), its `<regulation>`s (`programme`, `publicationDate`,
//! `entryIntoForceDate`, `numberTitle`), `<subjectType code=...>` and `<nameAlias wholeName=...>`
//! (the first `strong="true"` one is taken as the primary name).

use std::path::Path;

use super::{Builder, ListDocument, ListError, ListFormat, ListedDesignation, date, xml};

const EU_DATES: &[&str] = &["%Y-%m-%d"];

/// The date part of `2026-03-16` or `2026-03-16T10:00:00`.
fn day(s: &str) -> Option<chrono::NaiveDate> {
    date(s.get(..10).unwrap_or(s), EU_DATES)
}

pub fn parse(path: &Path, text: &str) -> Result<ListDocument, ListError> {
    let root = xml::parse(path, text)?;
    if root.name != "export" {
        return Err(ListError::new(
            path,
            root.line,
            format!(
                "the root element is <{}>, not <export>: not an EU consolidated list XML file",
                root.name
            ),
        ));
    }
    let published = root.attr("generationDate").and_then(day);
    let mut designations = Vec::new();
    for e in root.children("sanctionEntity") {
        let reference = e
            .attr("euReferenceNumber")
            .and_then(super::non_empty)
            .or_else(|| e.attr("logicalId").and_then(super::non_empty));
        let Some(reference) = reference else {
            return Err(ListError::new(
                path,
                e.line,
                "a <sanctionEntity> with neither euReferenceNumber nor logicalId",
            ));
        };
        let mut names = Builder::default();
        for a in e.children("nameAlias") {
            let whole = a.attr("wholeName").unwrap_or_default();
            names.name(whole, a.attr("strong") == Some("true"));
        }
        let Some((name, aliases)) = names.finish() else {
            return Err(ListError::new(
                path,
                e.line,
                format!("{reference} has no nameAlias"),
            ));
        };
        let regulations: Vec<&xml::Element> = e.children("regulation").collect();
        let mut programs: Vec<String> = Vec::new();
        for r in &regulations {
            if let Some(p) = r.attr("programme").and_then(super::non_empty)
                && !programs.contains(&p)
            {
                programs.push(p);
            }
        }
        let listed_on = regulations
            .iter()
            .filter_map(|r| {
                r.attr("entryIntoForceDate")
                    .and_then(day)
                    .or_else(|| r.attr("publicationDate").and_then(day))
            })
            .min();
        let regime = regulations
            .iter()
            .find_map(|r| r.attr("numberTitle").and_then(super::non_empty))
            .map(|t| format!("Regulation {t}"))
            .or_else(|| (!programs.is_empty()).then(|| programs.join(", ")));
        designations.push(ListedDesignation {
            reference,
            authority: None,
            name,
            aliases,
            regime,
            programs,
            listed_on,
            updated_on: None,
            entity_type: e
                .child("subjectType")
                .and_then(|s| s.attr("code"))
                .map(str::to_owned),
            websites: Vec::new(),
            sanctions_imposed: None,
            statement_of_reasons: None,
            line: e.line,
        });
    }
    Ok(ListDocument {
        format: ListFormat::EuXml,
        authority: Some("EU".into()),
        published,
        designations,
    })
}
