//! OFAC SDN XML (`sdn.xml`): `<sdnList>` with `<publshInformation><Publish_Date>` (`MM/DD/YYYY`;
//! OFAC's spelling) and one `<sdnEntry>` per listing: `uid` (the same number as `ent_num` in
//! `sdn.csv`), `firstName`, `lastName`, `sdnType`, `<programList><program>` and
//! `<akaList><aka>` (`lastName`, `firstName`). It carries no designation date.

use std::path::Path;

use super::{Builder, ListDocument, ListError, ListFormat, ListedDesignation, date, xml};

fn joined(e: &xml::Element) -> String {
    ["firstName", "lastName"]
        .iter()
        .filter_map(|p| e.text_of(p))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn parse(path: &Path, text: &str) -> Result<ListDocument, ListError> {
    let root = xml::parse(path, text)?;
    if root.name != "sdnList" {
        return Err(ListError::new(
            path,
            root.line,
            format!(
                "the root element is <{}>, not <sdnList>: not an OFAC sdn.xml file",
                root.name
            ),
        ));
    }
    let published = root
        .child("publshInformation")
        .and_then(|p| p.text_of("Publish_Date"))
        .and_then(|d| date(&d, &["%m/%d/%Y"]));
    let mut designations = Vec::new();
    for e in root.children("sdnEntry") {
        let Some(reference) = e.text_of("uid") else {
            return Err(ListError::new(path, e.line, "an <sdnEntry> without <uid>"));
        };
        let mut names = Builder::default();
        names.name(&joined(e), true);
        for aka in e
            .child("akaList")
            .into_iter()
            .flat_map(|l| l.children("aka"))
        {
            names.name(&joined(aka), false);
        }
        let Some((name, aliases)) = names.finish() else {
            return Err(ListError::new(
                path,
                e.line,
                format!("uid {reference} has no name"),
            ));
        };
        let programs: Vec<String> = e
            .child("programList")
            .into_iter()
            .flat_map(|l| l.children("program"))
            .filter_map(|p| super::non_empty(&p.text))
            .collect();
        designations.push(ListedDesignation {
            reference,
            authority: None,
            name,
            aliases,
            regime: (!programs.is_empty()).then(|| programs.join(", ")),
            programs,
            listed_on: None,
            updated_on: None,
            entity_type: e.text_of("sdnType"),
            websites: Vec::new(),
            sanctions_imposed: None,
            statement_of_reasons: None,
            line: e.line,
        });
    }
    Ok(ListDocument {
        format: ListFormat::OfacXml,
        authority: Some("US".into()),
        published,
        designations,
    })
}
