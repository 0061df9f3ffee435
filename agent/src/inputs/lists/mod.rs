//! Sanctions lists: the published files of the authorities (UK Sanctions List CSV and XML,
//! OFAC SDN XML and CSV, the EU consolidated list XML, OpenSanctions FollowTheMoney JSON lines)
//! parsed into one model, [`ListDocument`].
//!
//! Two uses: `[[lists]]` in the main file are read on every compile ([`crate::policy::resolve`]), from
//! a local `path` or from the last-known-good copy of a `source` ([`crate::inputs::sources`], whose
//! fetches validate a list body with [`parse`] before caching it), so a
//! designation written with `list = "<name>"` follows the list (its metadata, and a delisting
//! when its reference is gone), and `embargo import` turns designations into entity file
//! skeletons ([`skeleton`]) or adds designations to an existing entity file ([`append`]), with
//! OFAC's designation dates from its advanced XML ([`ofac_advanced`]). One module per format;
//! each parses a whole file or refuses it with
//! a [`ListError`] naming the file and line.

pub mod append;
pub mod eu_xml;
pub mod ofac_advanced;
pub mod ofac_csv;
pub mod ofac_xml;
pub mod opensanctions;
pub mod skeleton;
pub mod uk_csv;
pub mod uk_xml;
mod xml;

use std::{
    fmt,
    path::{Path, PathBuf},
};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The formats read.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListFormat {
    /// UK Sanctions List (FCDO) CSV: a `Report Date:` line, a header row, one row per name.
    UkCsv,
    /// UK Sanctions List (FCDO) XML: `<Designations>` of `<Designation>`.
    UkXml,
    /// OFAC SDN `sdn.csv` (no header; `alt.csv` adds the aliases).
    OfacCsv,
    /// OFAC SDN `sdn.xml`.
    OfacXml,
    /// EU consolidated financial sanctions list XML (`xmlFullSanctionsList_1_1`).
    EuXml,
    /// OpenSanctions FollowTheMoney entities, one JSON object a line.
    Opensanctions,
}

impl ListFormat {
    /// The name used in configuration and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ListFormat::UkCsv => "uk-csv",
            ListFormat::UkXml => "uk-xml",
            ListFormat::OfacCsv => "ofac-csv",
            ListFormat::OfacXml => "ofac-xml",
            ListFormat::EuXml => "eu-xml",
            ListFormat::Opensanctions => "opensanctions",
        }
    }
}

impl fmt::Display for ListFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A whole list, as published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListDocument {
    pub format: ListFormat,
    /// The authority every designation in the file is by (`UK`, `US`, `EU`); `None` for
    /// OpenSanctions, where each designation names its own.
    pub authority: Option<String>,
    /// When the list was generated or published, if the file says.
    pub published: Option<NaiveDate>,
    /// In file order; one per reference.
    pub designations: Vec<ListedDesignation>,
}

impl ListDocument {
    /// The designation with `reference` (compared trimmed and case-insensitively).
    pub fn find(&self, reference: &str) -> Option<&ListedDesignation> {
        let key = reference.trim();
        self.designations
            .iter()
            .find(|d| d.reference.eq_ignore_ascii_case(key))
    }
}

/// One designation as a list states it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListedDesignation {
    /// The list's own identifier: UK `Unique ID`, OFAC `ent_num`/`uid`, EU `euReferenceNumber`
    /// (else `logicalId`), OpenSanctions `authorityId`.
    pub reference: String,
    /// The authority, when the file names one per designation (OpenSanctions); else the
    /// document's.
    pub authority: Option<String>,
    /// The primary name.
    pub name: String,
    /// Every other name, without duplicates or the primary name.
    pub aliases: Vec<String>,
    /// The legal regime (UK `Regime Name`, OFAC programs, EU programme, OpenSanctions program).
    pub regime: Option<String>,
    /// Program tags (OFAC `CYBER2`, EU `CYB`).
    pub programs: Vec<String>,
    /// When it was designated, if the list says (sdn.xml and sdn.csv do not).
    pub listed_on: Option<NaiveDate>,
    /// When the list last changed it, if it says.
    pub updated_on: Option<NaiveDate>,
    /// `Entity`, `Individual`, `Ship`, `Vessel`... as the list writes it.
    pub entity_type: Option<String>,
    /// The entity's websites, if the list gives them (UK `Website`), without duplicates.
    pub websites: Vec<String>,
    /// What the designation imposes, if the list says (UK `Sanctions Imposed`).
    pub sanctions_imposed: Option<String>,
    /// The authority's statement of reasons, if the list carries it (UK `UK Statement of
    /// Reasons`).
    pub statement_of_reasons: Option<String>,
    /// 1-based line where it starts in the file.
    pub line: usize,
}

/// What a parser accumulates for one reference before it is final.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    names: Vec<String>,
    /// `names` in ASCII lowercase: a designation with thousands of names stays linear.
    seen: std::collections::HashSet<String>,
    primary: Option<String>,
}

impl Builder {
    /// Adds a name; `primary` marks the list's primary name (the first one wins).
    pub(crate) fn name(&mut self, name: &str, primary: bool) {
        let name = collapse(name);
        if name.is_empty() {
            return;
        }
        if primary && self.primary.is_none() {
            self.primary = Some(name.clone());
        }
        if self.seen.insert(name.to_ascii_lowercase()) {
            self.names.push(name);
        }
    }

    /// (primary name, aliases): the primary, else the first name.
    pub(crate) fn finish(self) -> Option<(String, Vec<String>)> {
        let primary = self.primary.or_else(|| self.names.first().cloned())?;
        let aliases = self
            .names
            .into_iter()
            .filter(|n| !n.eq_ignore_ascii_case(&primary))
            .collect();
        Some((primary, aliases))
    }
}

/// Whitespace collapsed to single spaces, trimmed.
pub(crate) fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `Some(text)` unless blank.
pub(crate) fn non_empty(s: &str) -> Option<String> {
    let s = collapse(s);
    (!s.is_empty()).then_some(s)
}

/// Why a list file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", path.display())]
pub struct ListError {
    pub path: PathBuf,
    /// 1-based.
    pub line: usize,
    pub message: String,
}

impl ListError {
    pub(crate) fn new(path: &Path, line: usize, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            line,
            message: message.into(),
        }
    }
}

/// A list file's text with where its lines start, found once: every row or element is then
/// located in logarithmic time, so parsing stays linear in the size of the file.
pub(crate) struct Lines<'a> {
    pub text: &'a str,
    index: crate::files::read::LineIndex,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            text,
            index: crate::files::read::LineIndex::new(text),
        }
    }

    /// 1-based line of byte `offset`.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.index.line(offset.min(self.text.len()))
    }

    /// 1-based line of the CSV record starting at byte `offset` (the csv crate's position may
    /// sit on the previous record's line terminator).
    pub(crate) fn csv_line(&self, offset: u64) -> usize {
        let offset = (offset as usize).min(self.text.len());
        let rest = &self.text[offset..];
        let skipped = rest.len() - rest.trim_start_matches(['\r', '\n']).len();
        self.line(offset + skipped)
    }
}

/// Reads the next CSV record of `rdr` (which reads `lines.text`) with its 1-based line in the
/// file (`line_offset` lines come before the text there); `None` at the end. A row the csv
/// crate refuses is an error naming that line.
pub(crate) fn next_csv_record<R: std::io::Read>(
    rdr: &mut csv::Reader<R>,
    lines: &Lines<'_>,
    line_offset: usize,
    path: &Path,
) -> Result<Option<(usize, csv::StringRecord)>, ListError> {
    let line = lines.csv_line(rdr.position().byte()) + line_offset;
    let mut rec = csv::StringRecord::new();
    match rdr.read_record(&mut rec) {
        Ok(false) => Ok(None),
        Ok(true) => Ok(Some((line, rec))),
        Err(e) => Err(ListError::new(
            path,
            line,
            format!("bad CSV row: {e}; the file is damaged or truncated, download it again"),
        )),
    }
}

/// Parses a date in one of `formats` (chrono syntax).
pub(crate) fn date(text: &str, formats: &[&str]) -> Option<NaiveDate> {
    let t = text.trim();
    formats
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(t, f).ok())
}

/// What to read: the list file and, for `ofac-csv`, the optional `alt.csv`.
#[derive(Debug, Clone)]
pub struct ListInput<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    /// OFAC `alt.csv`: its path and text.
    pub alt: Option<(&'a Path, &'a str)>,
}

/// Parses a list file of `format`. A file that parses to no designation is refused too: an
/// empty list would delist everyone.
pub fn parse(format: ListFormat, input: &ListInput<'_>) -> Result<ListDocument, ListError> {
    // A byte-order mark is not part of the first row or element, whichever the format.
    let input = &ListInput {
        path: input.path,
        text: crate::files::read::strip_bom(input.text),
        alt: input
            .alt
            .map(|(p, t)| (p, crate::files::read::strip_bom(t))),
    };
    let doc = match format {
        ListFormat::UkCsv => uk_csv::parse(input.path, input.text)?,
        ListFormat::UkXml => uk_xml::parse(input.path, input.text)?,
        ListFormat::OfacCsv => ofac_csv::parse(input.path, input.text, input.alt)?,
        ListFormat::OfacXml => ofac_xml::parse(input.path, input.text)?,
        ListFormat::EuXml => eu_xml::parse(input.path, input.text)?,
        ListFormat::Opensanctions => opensanctions::parse(input.path, input.text)?,
    };
    if doc.designations.is_empty() {
        return Err(ListError::new(
            input.path,
            1,
            format!(
                "no designations found in this {format} file; is it the right file and format? \
                 (an empty list is refused: it would end every designation that names it)"
            ),
        ));
    }
    Ok(doc)
}

/// Keeps the designations whose regime or programs contain `regime` (case-insensitive) and,
/// when `references` is not empty, whose reference is one of them.
pub fn filter<'a>(
    doc: &'a ListDocument,
    regime: Option<&str>,
    references: &[String],
) -> Vec<&'a ListedDesignation> {
    let regime = regime.map(str::to_lowercase);
    doc.designations
        .iter()
        .filter(|d| {
            regime.as_ref().is_none_or(|r| {
                d.regime
                    .as_ref()
                    .is_some_and(|x| x.to_lowercase().contains(r))
                    || d.programs.iter().any(|p| p.to_lowercase().contains(r))
            })
        })
        .filter(|d| {
            references.is_empty()
                || references
                    .iter()
                    .any(|r| r.trim().eq_ignore_ascii_case(&d.reference))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> (PathBuf, String) {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/lists")
            .join(name);
        let text = std::fs::read_to_string(&p).unwrap();
        (p, text)
    }

    fn load(format: ListFormat, name: &str) -> ListDocument {
        let (p, t) = fixture(name);
        let alt = (format == ListFormat::OfacCsv).then(|| fixture("alt.csv"));
        parse(
            format,
            &ListInput {
                path: &p,
                text: &t,
                alt: alt.as_ref().map(|(p, t)| (p.as_path(), t.as_str())),
            },
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn refs(doc: &ListDocument) -> Vec<&str> {
        doc.designations
            .iter()
            .map(|d| d.reference.as_str())
            .collect()
    }

    const CYBER: &str = "The Cyber (Sanctions) (EU Exit) Regulations 2020";

    #[test]
    fn uk_csv_and_xml_give_one_designation_per_unique_id_with_every_name() {
        for (format, file) in [
            (ListFormat::UkCsv, "UK_Sanctions_List.csv"),
            (ListFormat::UkXml, "UK_Sanctions_List.xml"),
        ] {
            let doc = load(format, file);
            assert_eq!(doc.authority.as_deref(), Some("UK"));
            assert_eq!(doc.published, Some(day("2025-12-09")), "{file}");
            assert_eq!(
                refs(&doc),
                ["CYB0114", "CYB9901", "RUS9901", "RUS9902"],
                "{file}"
            );
            let d = doc.find("cyb0114").unwrap();
            assert_eq!(d.name, "Sichuan Anxun Information Technology Co., Ltd.");
            assert_eq!(
                d.aliases,
                ["Anxun Information Technology Co., Ltd.", "i-Soon"],
                "{file}"
            );
            assert_eq!(d.regime.as_deref(), Some(CYBER));
            assert_eq!(d.listed_on, Some(day("2025-12-09")));
            assert_eq!(d.entity_type.as_deref(), Some("Entity"));
            // Name 1..5 come before Name 6; a variation is an alias.
            let p = doc.find("RUS9902").unwrap();
            assert_eq!(p.name, "Ivan Ivanovich SAMPLE", "{file}");
            assert_eq!(p.aliases, ["I. I. SAMPLE"], "{file}");
            assert_eq!(p.listed_on, Some(day("2022-03-15")));
        }
    }

    #[test]
    fn ofac_csv_and_xml_read_programs_and_aliases() {
        for (format, file) in [
            (ListFormat::OfacCsv, "sdn.csv"),
            (ListFormat::OfacXml, "sdn.xml"),
        ] {
            let doc = load(format, file);
            assert_eq!(doc.authority.as_deref(), Some("US"));
            assert_eq!(refs(&doc), ["36", "306", "99901", "99902"], "{file}");
            let d = doc.find("99901").unwrap();
            assert_eq!(d.name, "INTEGRITY TECHNOLOGY GROUP, INC.");
            assert_eq!(
                d.aliases,
                [
                    "INTEGRITY TECH",
                    "BEIJING YONGXIN ZHICHENG TECHNOLOGY GROUP CO., LTD."
                ],
                "{file}"
            );
            assert_eq!(d.programs, ["CYBER2"]);
            assert_eq!(d.listed_on, None, "OFAC files carry no designation date");
            assert_eq!(
                doc.find("99902").unwrap().programs,
                ["SDGT", "IRGC"],
                "{file}"
            );
            assert_eq!(doc.find("306").unwrap().aliases, ["NATIONAL BANK OF CUBA"]);
        }
        assert_eq!(
            load(ListFormat::OfacXml, "sdn.xml").published,
            Some(day("2025-01-03"))
        );
        assert_eq!(load(ListFormat::OfacCsv, "sdn.csv").published, None);
    }

    #[test]
    fn eu_xml_reads_references_programmes_and_dates() {
        let doc = load(ListFormat::EuXml, "eu_consolidated.xml");
        assert_eq!(doc.published, Some(day("2026-03-17")));
        assert_eq!(refs(&doc), ["EU.9901.01", "EU.9901.02", "EU.9902.01"]);
        let d = &doc.designations[0];
        assert_eq!(d.name, "Sichuan Anxun Information Technology Co., Ltd.");
        assert_eq!(d.aliases, ["i-Soon"]);
        assert_eq!(d.programs, ["CYB"]);
        assert_eq!(d.regime.as_deref(), Some("Regulation 2026/589 (OJ L)"));
        assert_eq!(d.listed_on, Some(day("2026-03-16")));
        assert_eq!(d.entity_type.as_deref(), Some("enterprise"));
    }

    #[test]
    fn opensanctions_links_sanctions_to_their_entities() {
        let doc = load(ListFormat::Opensanctions, "opensanctions.ftm.json");
        assert_eq!(refs(&doc), ["CYB0114", "99901", "99902"]);
        let d = doc.find("CYB0114").unwrap();
        assert_eq!(d.authority.as_deref(), Some("UK"));
        assert_eq!(d.name, "Sichuan Anxun Information Technology Co., Ltd.");
        assert_eq!(
            d.aliases,
            ["Anxun Information Technology Co., Ltd.", "i-Soon"]
        );
        assert_eq!(d.regime.as_deref(), Some(CYBER));
        assert_eq!(d.listed_on, Some(day("2025-12-09")));
        let o = doc.find("99901").unwrap();
        assert_eq!(o.authority.as_deref(), Some("US"));
        assert_eq!(o.programs, ["CYBER2"]);
        assert_eq!(o.listed_on, Some(day("2025-01-03")));
        assert_eq!(o.aliases.len(), 2);
    }

    #[test]
    fn the_regime_filter_keeps_the_cyber_designations() {
        let uk = load(ListFormat::UkCsv, "UK_Sanctions_List.csv");
        let kept: Vec<&str> = filter(&uk, Some("cyber"), &[])
            .iter()
            .map(|d| d.reference.as_str())
            .collect();
        assert_eq!(kept, ["CYB0114", "CYB9901"]);
        let ofac = load(ListFormat::OfacXml, "sdn.xml");
        let kept: Vec<&str> = filter(&ofac, Some("CYBER"), &[])
            .iter()
            .map(|d| d.reference.as_str())
            .collect();
        assert_eq!(kept, ["99901"]);
        let one = filter(&uk, None, &["cyb0114".into()]);
        assert_eq!(one.len(), 1);
        assert!(filter(&uk, Some("cyber"), &["RUS9901".into()]).is_empty());
    }

    fn err(format: ListFormat, name: &str, text: &str) -> ListError {
        let p = PathBuf::from(name);
        parse(
            format,
            &ListInput {
                path: &p,
                text,
                alt: None,
            },
        )
        .unwrap_err()
    }

    #[test]
    fn a_truncated_xml_list_is_refused_at_its_line() {
        let (_, text) = fixture("UK_Sanctions_List.xml");
        // Cut inside the third designation.
        let cut = text.find("<UniqueID>RUS9901").unwrap();
        let e = err(ListFormat::UkXml, "uk.xml", &text[..cut]);
        assert_eq!(e.path, Path::new("uk.xml"));
        assert_eq!(e.line, Lines::new(&text).line(cut), "{e}");
        assert!(e.message.contains("truncated"), "{e}");
        let (_, sdn) = fixture("sdn.xml");
        let e = err(
            ListFormat::OfacXml,
            "sdn.xml",
            &sdn.replace(
                "</uid>\n    <lastName>BANCO",
                "</uidx>\n    <lastName>BANCO",
            ),
        );
        assert_eq!(e.line, 16, "{e}");
    }

    #[test]
    fn a_bad_csv_row_is_refused_at_its_line() {
        let (_, text) = fixture("UK_Sanctions_List.csv");
        let mut lines: Vec<&str> = text.split("\r\n").collect();
        lines[4] = "09/12/2025,CYB9901,short row";
        let e = err(ListFormat::UkCsv, "uk.csv", &lines.join("\r\n"));
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("bad CSV row"), "{e}");
        let (_, sdn) = fixture("sdn.csv");
        let e = err(
            ListFormat::OfacCsv,
            "sdn.csv",
            &sdn.replace("306,\"BANCO", "306,\"BANCO\",x"),
        );
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn a_list_with_no_designations_or_of_another_format_is_refused() {
        let (_, text) = fixture("UK_Sanctions_List.csv");
        let header_only: String = text.split("\r\n").take(2).collect::<Vec<_>>().join("\r\n");
        let e = err(ListFormat::UkCsv, "uk.csv", &header_only);
        assert!(e.message.contains("no designations"), "{e}");
        let (_, sdn) = fixture("sdn.xml");
        let e = err(ListFormat::EuXml, "sdn.xml", &sdn);
        assert!(e.message.contains("not an EU consolidated list"), "{e}");
        let e = err(ListFormat::Opensanctions, "x.json", "{\"id\": 1}\n");
        assert_eq!(e.line, 1);
    }
}
