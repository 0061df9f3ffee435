//! UK Sanctions List (FCDO) CSV: a first line `Report Date: dd-Mon-yyyy`, then a header row and
//! one row per name: a designation (`Unique ID`) spans as many rows as it has names (`Name 1`..
//! `Name 6`, `Name type`), each repeating `Regime Name`, `Date Designated` (`dd/mm/yyyy`),
//! `Last Updated` and the type (`Designation Type`, called `Individual, Entity, Ship` in some
//! editions). Columns are found by their header, so their order does not matter. `Website`,
//! `Sanctions Imposed` and `UK Statement of Reasons` are kept (shown by `embargo why`).

use std::{collections::HashMap, path::Path};

use super::{
    Builder, ListDocument, ListError, ListFormat, ListedDesignation, date, non_empty,
    uk_xml::UK_DATES,
};

pub fn parse(path: &Path, text: &str) -> Result<ListDocument, ListError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // The report line, if present, precedes the header.
    let (published, skip) = match text.lines().next() {
        Some(first) if first.trim_start().starts_with("Report Date:") => {
            let d = first
                .trim()
                .trim_start_matches("Report Date:")
                .trim()
                .trim_end_matches(',');
            (
                date(d, UK_DATES),
                text.find('\n').map_or(text.len(), |i| i + 1),
            )
        }
        _ => (None, 0),
    };
    let offset_lines = usize::from(skip > 0);
    if skip > 0 && text[skip..].trim().is_empty() {
        return Err(ListError::new(
            path,
            1,
            "a `Report Date:` line and no header row after it: the file is truncated, download it again",
        ));
    }
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.get(skip..).unwrap_or("").as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| ListError::new(path, 1 + offset_lines, format!("bad CSV header: {e}")))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let Some(id_col) = col("Unique ID") else {
        return Err(ListError::new(
            path,
            1 + offset_lines,
            "no `Unique ID` column: not a UK Sanctions List CSV file (the OFSI consolidated list has `Group ID`; use the FCDO UK Sanctions List)",
        ));
    };
    let name_cols: Vec<Option<usize>> = (1..=6).map(|i| col(&format!("Name {i}"))).collect();
    let name_type = col("Name type");
    let non_latin = col("Name non-latin script");
    let regime = col("Regime Name");
    let designated = col("Date Designated");
    let updated = col("Last Updated");
    let kind = col("Designation Type").or_else(|| col("Individual, Entity, Ship"));
    let website = col("Website");
    let imposed = col("Sanctions Imposed");
    let reasons = col("UK Statement of Reasons");

    struct Acc {
        d: ListedDesignation,
        names: Builder,
    }
    let mut order: Vec<Acc> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let body = super::Lines::new(text.get(skip..).unwrap_or(""));
    while let Some((line, rec)) = super::next_csv_record(&mut rdr, &body, offset_lines, path)? {
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).unwrap_or("");
        let Some(reference) = non_empty(get(Some(id_col))) else {
            return Err(ListError::new(
                path,
                line,
                "a row without `Unique ID`; the file is damaged",
            ));
        };
        let i = *index.entry(reference.clone()).or_insert_with(|| {
            order.push(Acc {
                d: ListedDesignation {
                    reference: reference.clone(),
                    authority: None,
                    name: String::new(),
                    aliases: Vec::new(),
                    regime: non_empty(get(regime)),
                    programs: Vec::new(),
                    listed_on: date(get(designated), UK_DATES),
                    updated_on: date(get(updated), UK_DATES),
                    entity_type: non_empty(get(kind)),
                    websites: Vec::new(),
                    sanctions_imposed: non_empty(get(imposed)),
                    statement_of_reasons: non_empty(get(reasons)),
                    line,
                },
                names: Builder::default(),
            });
            order.len() - 1
        });
        let acc = &mut order[i];
        // Every name row repeats the designation's fields; a field the first row left empty
        // is taken from a later one, and each distinct website is kept once.
        if acc.d.sanctions_imposed.is_none() {
            acc.d.sanctions_imposed = non_empty(get(imposed));
        }
        if acc.d.statement_of_reasons.is_none() {
            acc.d.statement_of_reasons = non_empty(get(reasons));
        }
        if let Some(w) = non_empty(get(website))
            && !acc.d.websites.iter().any(|x| x.eq_ignore_ascii_case(&w))
        {
            acc.d.websites.push(w);
        }
        let full: Vec<&str> = name_cols
            .iter()
            .map(|c| get(*c).trim())
            .filter(|s| !s.is_empty())
            .collect();
        let primary = get(name_type).trim().eq_ignore_ascii_case("Primary Name");
        acc.names.name(&full.join(" "), primary);
        acc.names.name(get(non_latin), false);
    }
    let mut designations = Vec::with_capacity(order.len());
    for acc in order {
        let Some((name, aliases)) = acc.names.finish() else {
            return Err(ListError::new(
                path,
                acc.d.line,
                format!(
                    "designation {} has no name; the file is damaged",
                    acc.d.reference
                ),
            ));
        };
        designations.push(ListedDesignation {
            name,
            aliases,
            ..acc.d
        });
    }
    Ok(ListDocument {
        format: ListFormat::UkCsv,
        authority: Some("UK".into()),
        published,
        designations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `list_uk_csv` fuzz target: a file that is only its `Report Date:` line was
    /// refused at line 2, a line the file does not have, for a missing `Unique ID` column.
    #[test]
    fn a_file_of_only_the_report_line_is_refused_at_line_1() {
        for text in ["Report Date: 09-Dec-2025", "Report Date: 09-Dec-2025,\r\n"] {
            let e = parse(Path::new("uk.csv"), text).unwrap_err();
            assert_eq!(e.line, 1, "{e}");
            assert!(e.message.contains("no header row"), "{e}");
        }
    }
}
