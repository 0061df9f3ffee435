//! OFAC SDN CSV (`sdn.csv`, with `alt.csv` for the aliases), per OFAC's data specification:
//! no header row, `-0-` for null. `sdn.csv` columns: `ent_num, SDN_Name, SDN_Type, Program,
//! Title, Call_Sign, Vess_type, Tonnage, GRT, Vess_flag, Vess_owner, Remarks` (`SDN_Type` is
//! null for entities; several programs read `SDGT] [IRGC`). `alt.csv`: `ent_num, alt_num,
//! alt_type, alt_name, alt_remarks`. The files end with a SUB (0x1A) character. They carry
//! no designation or publication date.

use std::{collections::HashMap, path::Path};

use super::{Builder, ListDocument, ListError, ListFormat, ListedDesignation, non_empty};

/// A value, with OFAC's null `-0-` as `None`.
fn value(s: &str) -> Option<String> {
    non_empty(s).filter(|v| v != "-0-")
}

/// Every row of `text` with its 1-based line, each checked to have `columns` fields.
fn records(
    path: &Path,
    text: &str,
    columns: usize,
) -> Result<Vec<(usize, csv::StringRecord)>, ListError> {
    let text = text.trim_end_matches(['\u{1a}', '\r', '\n']);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    let lines = super::Lines::new(text);
    while let Some((line, r)) = super::next_csv_record(&mut rdr, &lines, 0, path)? {
        if r.len() != columns {
            return Err(ListError::new(
                path,
                line,
                format!(
                    "{} fields where OFAC's layout has {columns}; the file is truncated or not this format",
                    r.len()
                ),
            ));
        }
        out.push((line, r));
    }
    Ok(out)
}

pub fn parse(
    path: &Path,
    text: &str,
    alt: Option<(&Path, &str)>,
) -> Result<ListDocument, ListError> {
    let mut aliases: HashMap<String, Vec<String>> = HashMap::new();
    if let Some((alt_path, alt_text)) = alt {
        for (line, r) in records(alt_path, alt_text, 5)? {
            let Some(ent) = value(&r[0]) else {
                return Err(ListError::new(alt_path, line, "a row without ent_num"));
            };
            if let Some(name) = value(&r[3]) {
                aliases.entry(ent).or_default().push(name);
            }
        }
    }
    let mut designations = Vec::new();
    for (line, r) in records(path, text, 12)? {
        let Some(reference) = value(&r[0]) else {
            return Err(ListError::new(path, line, "a row without ent_num"));
        };
        if !reference.chars().all(|c| c.is_ascii_digit()) {
            return Err(ListError::new(
                path,
                line,
                format!("ent_num `{reference}` is not a number: not an OFAC sdn.csv file"),
            ));
        }
        let mut names = Builder::default();
        names.name(&value(&r[1]).unwrap_or_default(), true);
        for a in aliases.get(&reference).into_iter().flatten() {
            names.name(a, false);
        }
        let Some((name, alias_list)) = names.finish() else {
            return Err(ListError::new(
                path,
                line,
                format!("ent_num {reference} has no name"),
            ));
        };
        let programs: Vec<String> = value(&r[3])
            .map(|p| {
                p.split("] [")
                    .map(|x| x.trim_matches(['[', ']', ' ']).to_owned())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        designations.push(ListedDesignation {
            reference,
            authority: None,
            name,
            aliases: alias_list,
            regime: (!programs.is_empty()).then(|| programs.join(", ")),
            programs,
            listed_on: None,
            updated_on: None,
            entity_type: Some(value(&r[2]).unwrap_or_else(|| "entity".into())),
            websites: Vec::new(),
            sanctions_imposed: None,
            statement_of_reasons: None,
            line,
        });
    }
    Ok(ListDocument {
        format: ListFormat::OfacCsv,
        authority: Some("US".into()),
        published: None,
        designations,
    })
}
