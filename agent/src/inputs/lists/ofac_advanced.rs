//! OFAC's advanced XML (`sdn_advanced.xml`, the UN "Advanced Sanctions List Standard" layout)
//! read for one thing the plain files lack: when each listing was made. `sdn.csv` and `sdn.xml`
//! carry no designation date; the advanced file's `<SanctionsEntries>` has one
//! `<SanctionsEntry ProfileID="...">` per listing (`ProfileID` is the `ent_num` of `sdn.csv` and
//! the `uid` of `sdn.xml`) whose `<EntryEvent>`s carry a `<Date>` of `<Year>`, `<Month>`, `<Day>`;
//! the document's `<DateOfIssue>` is its publication date.
//!
//! Invariants: one pass over the text with a streaming reader (the real file is over 100 MB;
//! no tree is built), so time and memory are linear in the file and constant per element;
//! a listing's date is the earliest of its entry events (the designation; later events are
//! amendments); a malformed file, a root other than `<Sanctions>`, or an event date that is not
//! a calendar day is refused with its file and line, never skipped.

use std::{collections::HashMap, path::Path};

use chrono::NaiveDate;
use quick_xml::{Reader, events::Event};

use super::{Lines, ListError};

/// The largest advanced XML read (OFAC's file is about 120 MB).
pub const MAX_BYTES: u64 = 512 * 1024 * 1024;

/// What the advanced XML says about dates.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ListingDates {
    /// `<DateOfIssue>`: when the file was published.
    pub published: Option<NaiveDate>,
    /// Earliest entry-event date by `ProfileID` (= `ent_num` / `uid`).
    pub listed: HashMap<String, NaiveDate>,
}

impl ListingDates {
    /// When listing `reference` (an `ent_num`) was made, if the file says.
    pub fn of(&self, reference: &str) -> Option<NaiveDate> {
        self.listed.get(reference.trim()).copied()
    }
}

/// A date being read: its parts as text.
#[derive(Default)]
struct Parts {
    year: String,
    month: String,
    day: String,
    line: usize,
}

impl Parts {
    fn date(&self, path: &Path) -> Result<NaiveDate, ListError> {
        let num = |s: &str| s.trim().parse::<u32>().ok();
        num(&self.year)
            .zip(num(&self.month))
            .zip(num(&self.day))
            .and_then(|((y, m), d)| NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, m, d))
            .ok_or_else(|| {
                ListError::new(
                    path,
                    self.line,
                    format!(
                        "a date of year `{}`, month `{}`, day `{}` is not a calendar day; the file is damaged",
                        self.year.trim(),
                        self.month.trim(),
                        self.day.trim()
                    ),
                )
            })
    }
}

/// Reads the listing dates of an OFAC advanced XML file.
pub fn parse(path: &Path, text: &str) -> Result<ListingDates, ListError> {
    let text = crate::files::read::strip_bom(text);
    let lines = Lines::new(text);
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut out = ListingDates::default();
    // Local names of the open elements.
    let mut stack: Vec<String> = Vec::new();
    // The `ProfileID` of the open <SanctionsEntry>, and the date being read.
    let mut entry: Option<String> = None;
    let mut date: Option<Parts> = None;
    let mut saw_root = false;
    loop {
        let at = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| {
            ListError::new(
                path,
                lines.line(reader.error_position() as usize),
                format!("not well-formed XML: {e}; is the file complete?"),
            )
        })?;
        match event {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let line = lines.line(at);
                if stack.is_empty() {
                    if name != "Sanctions" {
                        return Err(ListError::new(
                            path,
                            line,
                            format!(
                                "the root element is <{name}>, not <Sanctions>: not an OFAC advanced XML file (sdn_advanced.xml)"
                            ),
                        ));
                    }
                    saw_root = true;
                }
                let parent = stack.last().map(String::as_str);
                match (name.as_str(), parent) {
                    ("SanctionsEntry", _) => {
                        let mut profile = None;
                        for a in e.attributes() {
                            let a = a.map_err(|err| {
                                ListError::new(path, line, format!("malformed attribute: {err}"))
                            })?;
                            if a.key.local_name().as_ref() == b"ProfileID" {
                                profile = Some(String::from_utf8_lossy(&a.value).trim().to_owned());
                            }
                        }
                        let Some(profile) = profile.filter(|p| !p.is_empty()) else {
                            return Err(ListError::new(
                                path,
                                line,
                                "a <SanctionsEntry> without ProfileID; the file is damaged",
                            ));
                        };
                        entry = Some(profile);
                    }
                    ("Date", Some("EntryEvent")) if entry.is_some() => {
                        date = Some(Parts {
                            line,
                            ..Parts::default()
                        });
                    }
                    ("DateOfIssue", Some("Sanctions")) => {
                        date = Some(Parts {
                            line,
                            ..Parts::default()
                        });
                    }
                    _ => {}
                }
                stack.push(name);
            }
            Event::Text(t) => {
                if let (Some(d), Some(top)) = (date.as_mut(), stack.last()) {
                    let s = t.decode().map_err(|e| {
                        ListError::new(path, lines.line(at), format!("bad text: {e}"))
                    })?;
                    match top.as_str() {
                        "Year" => d.year.push_str(&s),
                        "Month" => d.month.push_str(&s),
                        "Day" => d.day.push_str(&s),
                        _ => {}
                    }
                }
            }
            Event::End(_) => {
                let name = stack.pop().expect("quick-xml checks end names");
                match name.as_str() {
                    "Date" if stack.last().is_some_and(|p| p == "EntryEvent") => {
                        if let (Some(d), Some(profile)) = (date.take(), entry.as_ref()) {
                            let day = d.date(path)?;
                            out.listed
                                .entry(profile.clone())
                                .and_modify(|x| *x = (*x).min(day))
                                .or_insert(day);
                        }
                    }
                    "DateOfIssue" if stack.len() == 1 => {
                        if let Some(d) = date.take() {
                            out.published = Some(d.date(path)?);
                        }
                    }
                    "SanctionsEntry" => entry = None,
                    _ => {}
                }
            }
            Event::Empty(e) if stack.is_empty() => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                return Err(ListError::new(
                    path,
                    lines.line(at),
                    format!("the root element is an empty <{name}>: not an OFAC advanced XML file"),
                ));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(ListError::new(
            path,
            lines.line(text.len()),
            format!(
                "the file ends before <{open}> is closed; the file is truncated, download it again"
            ),
        ));
    }
    if !saw_root {
        return Err(ListError::new(
            path,
            1,
            "no XML element in the file; is it OFAC's sdn_advanced.xml?",
        ));
    }
    if out.listed.is_empty() {
        return Err(ListError::new(
            path,
            1,
            "no <SanctionsEntry> with a dated <EntryEvent>: not the dates of an OFAC advanced XML file",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<Sanctions xmlns="https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/exports/ADVANCED_XML">
  <DateOfIssue><Year>2025</Year><Month>1</Month><Day>3</Day></DateOfIssue>
  <SanctionsEntries>
    <SanctionsEntry ID="99901" ProfileID="99901" ListID="1550">
      <EntryEvent ID="1" EntryEventTypeID="1" LegalBasisID="1">
        <Date CalendarTypeID="1"><Year>2025</Year><Month>1</Month><Day>3</Day></Date>
      </EntryEvent>
      <EntryEvent ID="2" EntryEventTypeID="2" LegalBasisID="1">
        <Date CalendarTypeID="1"><Year>2025</Year><Month>6</Month><Day>1</Day></Date>
      </EntryEvent>
    </SanctionsEntry>
  </SanctionsEntries>
</Sanctions>
"#;

    #[test]
    fn the_earliest_entry_event_is_the_listing_date() {
        let d = parse(Path::new("adv.xml"), DOC).unwrap();
        assert_eq!(d.published, NaiveDate::from_ymd_opt(2025, 1, 3));
        assert_eq!(d.of("99901"), NaiveDate::from_ymd_opt(2025, 1, 3));
        assert_eq!(d.of("36"), None);
    }

    #[test]
    fn a_bad_date_a_truncated_file_or_another_root_is_refused_at_its_line() {
        let bad = DOC.replace("<Month>6</Month>", "<Month>13</Month>");
        let e = parse(Path::new("adv.xml"), &bad).unwrap_err();
        assert_eq!(e.line, 10, "{e}");
        assert!(e.message.contains("not a calendar day"), "{e}");
        let cut = &DOC[..DOC.find("</SanctionsEntries>").unwrap()];
        let e = parse(Path::new("adv.xml"), cut).unwrap_err();
        assert!(e.message.contains("truncated"), "{e}");
        let e = parse(Path::new("sdn.xml"), "<sdnList><x/></sdnList>").unwrap_err();
        assert!(e.message.contains("not <Sanctions>"), "{e}");
    }
}
