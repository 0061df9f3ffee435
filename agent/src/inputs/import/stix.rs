//! STIX 2.1 bundles: `indicator` objects whose pattern names IPv4 or IPv6 addresses.
//!
//! Read (OASIS STIX Version 2.1: the Bundle, Identity and Indicator objects, STIX Patterning):
//! * a bundle (`"type": "bundle"`, `objects`); every indicator's required properties (`type`,
//!   `spec_version` = `2.1`, `id`, `created`, `modified`, `pattern`, `pattern_type`,
//!   `valid_from`) must be there, or the file is refused naming the line and column;
//! * `pattern_type: "stix"` patterns are parsed whole (the patterning grammar: observation
//!   expressions in `[...]` joined by `AND`, `OR`, `FOLLOWEDBY`, with qualifiers; comparison
//!   expressions joined by `AND`/`OR`, `NOT`, every operator and constant type). An address is
//!   imported when matching it alone satisfies the pattern: an `ipv4-addr:value` or
//!   `ipv6-addr:value` compared with `=` (or `ISSUBSET`, which the spec uses for CIDR
//!   membership, or `IN`, a set of equalities) to an address or CIDR, alone or in an `OR` at
//!   either level. Every other branch
//!   (other objects such as `domain-name`, `url`, `file:hashes`; `AND`, `FOLLOWEDBY`, qualified
//!   observations, `NOT`, other operators) is skipped and counted, as are indicators with
//!   another `pattern_type`, `revoked: true` or `confidence: 0`.
//!
//! Evidence per indicator: `source` is the indicator's first `external_references` URL, else
//! the first such URL of a `report` in the bundle whose `object_refs` include the indicator,
//! else the name of the `created_by_ref` identity in the bundle, else `--source`; `confidence` maps the 0-100
//! value with the "None / Low / Med / High" scale of the STIX 2.1 confidence-scales appendix (1-29 low, 30-69 medium,
//! 70-100 high; 0, "None", is skipped), else `--confidence`; `valid_from` and `valid_until`
//! become the evidence's `valid_from` and `expires`, rounded inward to whole UTC days (a
//! `valid_from` after midnight counts from the next day; `valid_until` stops the evidence on
//! its own day) so a group never counts outside the indicator's validity.

use std::{collections::HashMap, path::Path};

use chrono::{DateTime, NaiveTime, Utc};
use ipnetwork::IpNetwork;
use serde::Deserialize;

use super::{Defaults, EvidenceKey, ImportError, Imported, Indicator, parse_net};
use crate::config::{self, Confidence, Date};

#[derive(Deserialize)]
struct Bundle {
    #[serde(rename = "type")]
    _type: String,
    #[serde(rename = "id")]
    _id: String,
    #[serde(default)]
    objects: Vec<Object>,
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum Object {
    #[serde(rename = "indicator")]
    Indicator(Box<StixIndicator>),
    #[serde(rename = "identity")]
    Identity(Identity),
    #[serde(rename = "report")]
    Report(Report),
    #[serde(other)]
    Other,
}

/// The properties of a STIX 2.1 indicator this reader uses or requires.
#[derive(Deserialize)]
struct StixIndicator {
    spec_version: String,
    id: String,
    #[serde(rename = "created")]
    _created: DateTime<Utc>,
    #[serde(rename = "modified")]
    _modified: DateTime<Utc>,
    #[serde(default)]
    name: Option<String>,
    pattern: String,
    pattern_type: String,
    valid_from: DateTime<Utc>,
    #[serde(default)]
    valid_until: Option<DateTime<Utc>>,
    #[serde(default)]
    confidence: Option<u8>,
    #[serde(default)]
    revoked: bool,
    #[serde(default)]
    created_by_ref: Option<String>,
    #[serde(default)]
    external_references: Vec<ExternalReference>,
}

#[derive(Deserialize)]
struct ExternalReference {
    #[serde(rename = "source_name")]
    _source_name: String,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Deserialize)]
struct Identity {
    id: String,
    name: String,
}

/// A report: the publication its `object_refs` come from.
#[derive(Deserialize)]
struct Report {
    object_refs: Vec<String>,
    #[serde(default)]
    external_references: Vec<ExternalReference>,
}

/// Maps a STIX confidence (0-100) to the evidence's, per the STIX 2.1 "None / Low / Med /
/// High" confidence scale; `None` for 0 ("None": no confidence at all).
pub fn confidence(value: u8) -> Option<Confidence> {
    match value {
        0 => None,
        1..=29 => Some(Confidence::Low),
        30..=69 => Some(Confidence::Medium),
        _ => Some(Confidence::High),
    }
}

/// The first whole UTC day at or after `t`.
fn day_from(t: DateTime<Utc>) -> Date {
    let d = t.date_naive();
    if t.time() == NaiveTime::MIN {
        Date(d)
    } else {
        Date(d.succ_opt().unwrap_or(d))
    }
}

/// Reads a STIX 2.1 bundle from `path`.
pub fn read(path: &Path, defaults: &Defaults) -> Result<Imported, ImportError> {
    let text = config::read_text(path)?;
    parse(path, &text, defaults)
}

/// Where a serde_json error is: `FILE:LINE:COLUMN`.
fn json_at(path: &Path, e: &serde_json::Error) -> String {
    format!("{}:{}:{}", path.display(), e.line(), e.column())
}

/// Reads a STIX 2.1 bundle's text; `path` names it in errors.
pub fn parse(path: &Path, text: &str, defaults: &Defaults) -> Result<Imported, ImportError> {
    let text = crate::files::read::strip_bom(text);
    let raw: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        ImportError::invalid(
            json_at(path, &e),
            format!("not valid JSON: {e}; a STIX 2.1 bundle is one JSON object"),
        )
    })?;
    let at_file = format!("{}", path.display());
    match raw.get("type").and_then(|t| t.as_str()) {
        Some("bundle") => {}
        other => {
            return Err(ImportError::invalid(
                &at_file,
                format!(
                    "not a STIX bundle (`type` is {}); export the indicators as a STIX 2.1 bundle",
                    other.map_or_else(|| "missing".to_owned(), |t| format!("`{t}`"))
                ),
            ));
        }
    }
    // STIX 2.0 bundles carry a spec_version; 2.1 bundles do not (it moved to each object).
    if let Some(v) = raw.get("spec_version") {
        return Err(ImportError::invalid(
            &at_file,
            format!(
                "a STIX {v} bundle: only STIX 2.1 is read (a 2.1 bundle has no spec_version; \
                 each object has spec_version \"2.1\")"
            ),
        ));
    }
    let bundle: Bundle = serde_json::from_str(text).map_err(|e| {
        // Name the object too: the first one that does not read alone.
        let which = raw
            .get("objects")
            .and_then(|o| o.as_array())
            .and_then(|objects| {
                objects
                    .iter()
                    .find(|o| serde_json::from_value::<Object>((*o).clone()).is_err())
            })
            .map(|o| {
                format!(
                    " (object {})",
                    o.get("id")
                        .and_then(|i| i.as_str())
                        .unwrap_or("without an id")
                )
            })
            .unwrap_or_default();
        ImportError::invalid(
            json_at(path, &e),
            format!(
                "{e}{which}; give the object the properties STIX 2.1 requires (an \
                 indicator: type, spec_version, id, created, modified, pattern, pattern_type \
                 and valid_from)"
            ),
        )
    })?;
    // The URL of the first report in the bundle that names an object, by object id.
    let mut reported: HashMap<&str, &str> = HashMap::new();
    for o in &bundle.objects {
        let Object::Report(r) = o else { continue };
        let Some(url) = r.external_references.iter().find_map(|e| e.url.as_deref()) else {
            continue;
        };
        for id in &r.object_refs {
            reported.entry(id.as_str()).or_insert(url);
        }
    }
    let identities: HashMap<&str, &str> = bundle
        .objects
        .iter()
        .filter_map(|o| match o {
            Object::Identity(i) => Some((i.id.as_str(), i.name.as_str())),
            _ => None,
        })
        .collect();
    let mut out = Imported::default();
    for o in &bundle.objects {
        let Object::Indicator(ind) = o else { continue };
        let context = Context {
            identities: &identities,
            reported: &reported,
        };
        read_indicator(path, ind, &context, defaults, &mut out)?;
    }
    Ok(out)
}

/// What the rest of the bundle says about an indicator's source.
struct Context<'a> {
    /// Identity id -> name.
    identities: &'a HashMap<&'a str, &'a str>,
    /// Object id -> URL of a report that includes it.
    reported: &'a HashMap<&'a str, &'a str>,
}

fn read_indicator(
    path: &Path,
    ind: &StixIndicator,
    context: &Context<'_>,
    defaults: &Defaults,
    out: &mut Imported,
) -> Result<(), ImportError> {
    let at = format!("{}: indicator {}", path.display(), ind.id);
    let invalid = |m: String| ImportError::invalid(&at, m);
    if !ind.id.starts_with("indicator--") {
        return Err(invalid(
            "its id must be `indicator--<UUID>` (STIX 2.1 identifier)".into(),
        ));
    }
    if ind.spec_version != "2.1" {
        return Err(invalid(format!(
            "spec_version is `{}`; only STIX 2.1 is read",
            ind.spec_version
        )));
    }
    if let Some(until) = ind.valid_until
        && until <= ind.valid_from
    {
        return Err(invalid(format!(
            "valid_until ({until}) is not after valid_from ({}), which STIX 2.1 requires",
            ind.valid_from
        )));
    }
    if ind.confidence.is_some_and(|c| c > 100) {
        return Err(invalid(format!(
            "confidence {} is outside 0-100",
            ind.confidence.unwrap_or_default()
        )));
    }
    if ind.pattern_type != "stix" {
        out.summary.skip(format!(
            "indicators with pattern_type `{}`",
            ind.pattern_type
        ));
        return Ok(());
    }
    // The pattern is checked even when the indicator is revoked: a bad one is bad input.
    let pattern = parse_pattern(&ind.pattern)
        .map_err(|m| invalid(format!("pattern {:?}: {m}", ind.pattern)))?;
    let mut found = Found::default();
    found
        .observation(&pattern)
        .map_err(|m| invalid(format!("pattern {:?}: {m}", ind.pattern)))?;
    if ind.revoked {
        out.summary.skip("revoked indicators");
        return Ok(());
    }
    if found.nets.is_empty() {
        let mut reasons = found.skipped.clone();
        reasons.sort();
        reasons.dedup();
        out.summary.skip(format!(
            "indicators without an address to match alone ({})",
            reasons.join(", ")
        ));
        return Ok(());
    }
    for r in &found.skipped {
        out.summary.skip(format!(
            "branches beside imported addresses in a pattern ({r})"
        ));
    }
    let confidence = match ind.confidence {
        Some(c) => match confidence(c) {
            Some(c) => c,
            None => {
                out.summary
                    .skip("indicators with confidence 0 (\"None\" on the STIX scale)");
                return Ok(());
            }
        },
        None => defaults.confidence.ok_or_else(|| {
            invalid("has no confidence; pass --confidence low|medium|high".into())
        })?,
    };
    let source = ind
        .external_references
        .iter()
        .find_map(|r| r.url.clone())
        .or_else(|| {
            context
                .reported
                .get(ind.id.as_str())
                .map(|u| (*u).to_owned())
        })
        .or_else(|| {
            ind.created_by_ref
                .as_deref()
                .and_then(|r| context.identities.get(r))
                .map(|n| (*n).to_owned())
        })
        .or_else(|| defaults.source.clone())
        .ok_or_else(|| {
            invalid(
                "names no source (no external_references url, on it or on a report that \
                 includes it, and no created_by_ref identity in the bundle); pass --source URL"
                    .into(),
            )
        })?;
    let valid_from = day_from(ind.valid_from);
    let expires = ind.valid_until.map(|t| Date(t.date_naive()));
    if expires.is_some_and(|e| e <= valid_from) {
        out.summary
            .skip("indicators valid for less than a whole UTC day");
        return Ok(());
    }
    let evidence = EvidenceKey {
        source,
        confidence,
        valid_from: Some(valid_from),
        expires,
        last_seen: None,
        max_age: None,
    };
    let label = match &ind.name {
        Some(n) => format!("{} ({n})", ind.id),
        None => ind.id.clone(),
    };
    out.summary.imported += 1;
    for net in found.nets {
        out.indicators.push(Indicator {
            net,
            evidence: evidence.clone(),
            label: Some(label.clone()),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The pattern grammar (STIX 2.1 Patterning).

/// A token of a STIX pattern.
#[derive(Clone, Debug, PartialEq)]
enum Tok {
    LBrack,
    RBrack,
    LParen,
    RParen,
    Comma,
    /// `=`, `!=`, `<>`, `<`, `<=`, `>`, `>=`.
    Op(String),
    /// A `'...'` string, unescaped.
    Str(String),
    /// Any other constant: number, boolean, `t'...'`, `h'...'`, `b'...'`.
    Lit(String),
    /// An object path: `object-type:property...`.
    Path {
        object: String,
        property: String,
    },
    /// A keyword.
    Word(String),
}

/// A comparison expression (inside `[...]`).
#[derive(Clone, Debug, PartialEq)]
pub enum Comparison {
    Test {
        object: String,
        property: String,
        negated: bool,
        op: String,
        value: Constant,
    },
    Exists(String),
    Or(Vec<Comparison>),
    And(Vec<Comparison>),
}

/// A constant on the right of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub enum Constant {
    Str(String),
    Other(String),
    Set(Vec<Constant>),
}

/// An observation expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    Brackets(Comparison),
    Or(Vec<Observation>),
    And(Vec<Observation>),
    FollowedBy(Vec<Observation>),
    /// With `WITHIN`, `REPEATS` or `START ... STOP`; the text names the qualifier.
    Qualified(Box<Observation>, String),
}

fn lex(p: &str) -> Result<Vec<Tok>, String> {
    let c: Vec<char> = p.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let quoted = |i: &mut usize| -> Result<String, String> {
        // At the opening quote.
        *i += 1;
        let mut s = String::new();
        loop {
            match c.get(*i) {
                None => return Err("a string constant is not closed with '".into()),
                Some('\\') => {
                    match c.get(*i + 1) {
                        Some(x @ ('\'' | '\\')) => s.push(*x),
                        _ => return Err("only \\' and \\\\ may be escaped in a string".into()),
                    }
                    *i += 2;
                }
                Some('\'') => {
                    *i += 1;
                    return Ok(s);
                }
                Some(x) => {
                    s.push(*x);
                    *i += 1;
                }
            }
        }
    };
    let ident = |i: &mut usize| -> String {
        let start = *i;
        while *i < c.len() && (c[*i].is_ascii_alphanumeric() || c[*i] == '_' || c[*i] == '-') {
            *i += 1;
        }
        c[start..*i].iter().collect()
    };
    while i < c.len() {
        let ch = c[i];
        match ch {
            _ if ch.is_whitespace() => i += 1,
            '[' => (out.push(Tok::LBrack), i += 1).1,
            ']' => (out.push(Tok::RBrack), i += 1).1,
            '(' => (out.push(Tok::LParen), i += 1).1,
            ')' => (out.push(Tok::RParen), i += 1).1,
            ',' => (out.push(Tok::Comma), i += 1).1,
            '\'' => out.push(Tok::Str(quoted(&mut i)?)),
            '=' | '!' | '<' | '>' => {
                let two: String = c[i..(i + 2).min(c.len())].iter().collect();
                let op = match two.as_str() {
                    "!=" | "<>" | "<=" | ">=" => two,
                    _ if ch == '!' => return Err("`!` must be followed by `=`".into()),
                    _ => ch.to_string(),
                };
                i += op.len();
                out.push(Tok::Op(if op == "<>" { "!=".into() } else { op }));
            }
            _ if ch.is_ascii_digit() || ch == '-' || ch == '+' => {
                let start = i;
                i += 1;
                while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.') {
                    i += 1;
                }
                out.push(Tok::Lit(c[start..i].iter().collect()));
            }
            _ if ch.is_ascii_alphabetic() => {
                let word = ident(&mut i);
                if c.get(i) == Some(&'\'') && matches!(word.as_str(), "t" | "h" | "b") {
                    let s = quoted(&mut i)?;
                    out.push(Tok::Lit(format!("{word}'{s}'")));
                } else if c.get(i) == Some(&':') {
                    i += 1;
                    let mut property = String::new();
                    loop {
                        if c.get(i) == Some(&'\'') {
                            let s = quoted(&mut i)?;
                            property.push_str(&format!("'{s}'"));
                        } else {
                            let part = ident(&mut i);
                            if part.is_empty() {
                                return Err(format!("object path `{word}:{property}` ends early"));
                            }
                            property.push_str(&part);
                        }
                        // List indexes: [0], [*].
                        while c.get(i) == Some(&'[') {
                            let end = c[i..].iter().position(|&x| x == ']').map(|p| i + p);
                            let Some(end) = end else {
                                return Err("`[` in an object path is not closed".into());
                            };
                            let idx: String = c[i + 1..end].iter().collect();
                            if idx != "*" && idx.parse::<u64>().is_err() {
                                return Err(format!("list index `[{idx}]` must be a number or *"));
                            }
                            property.push_str(&format!("[{idx}]"));
                            i = end + 1;
                        }
                        if c.get(i) == Some(&'.') {
                            property.push('.');
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    out.push(Tok::Path {
                        object: word,
                        property,
                    });
                } else {
                    out.push(Tok::Word(word));
                }
            }
            _ => return Err(format!("unexpected `{ch}`")),
        }
    }
    Ok(out)
}

/// Deepest nesting of parentheses a pattern may have: the parser recurses once per level, and a
/// pattern of thousands of `(` would otherwise overflow the stack. Real patterns nest a few.
const MAX_NESTING: usize = 64;

struct Parser {
    toks: Vec<Tok>,
    at: usize,
    /// Parentheses open around the current token.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    /// Enters one more level of parentheses, refusing past [`MAX_NESTING`].
    fn nest(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(format!(
                "parentheses nested deeper than {MAX_NESTING} levels; simplify the pattern"
            ));
        }
        Ok(())
    }

    fn keyword(&mut self, k: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: &Tok, what: &str) -> Result<(), String> {
        match self.next() {
            Some(x) if &x == t => Ok(()),
            Some(x) => Err(format!("expected {what}, found {}", show(&x))),
            None => Err(format!("expected {what}, found the end")),
        }
    }

    /// observationExpressions: `OR`-level expressions joined by `FOLLOWEDBY`.
    fn followed_by(&mut self) -> Result<Observation, String> {
        let mut v = vec![self.obs_or()?];
        while self.keyword("FOLLOWEDBY") {
            v.push(self.obs_or()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Observation::FollowedBy(v)
        })
    }

    fn obs_or(&mut self) -> Result<Observation, String> {
        let mut v = vec![self.obs_and()?];
        while self.keyword("OR") {
            v.push(self.obs_and()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Observation::Or(v)
        })
    }

    fn obs_and(&mut self) -> Result<Observation, String> {
        let mut v = vec![self.obs_unit()?];
        while self.keyword("AND") {
            v.push(self.obs_unit()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Observation::And(v)
        })
    }

    fn obs_unit(&mut self) -> Result<Observation, String> {
        let mut o = match self.next() {
            Some(Tok::LBrack) => {
                let c = self.cmp_or()?;
                self.expect(&Tok::RBrack, "`]`")?;
                Observation::Brackets(c)
            }
            Some(Tok::LParen) => {
                self.nest()?;
                let o = self.followed_by()?;
                self.expect(&Tok::RParen, "`)`")?;
                self.depth -= 1;
                o
            }
            Some(t) => return Err(format!("expected `[` or `(`, found {}", show(&t))),
            None => return Err("expected `[` or `(`, found the end".into()),
        };
        loop {
            let q = if self.keyword("WITHIN") {
                let n = self.literal("a number of seconds after WITHIN")?;
                self.want_keyword("SECONDS")?;
                format!("WITHIN {n} SECONDS")
            } else if self.keyword("REPEATS") {
                let n = self.literal("a count after REPEATS")?;
                self.want_keyword("TIMES")?;
                format!("REPEATS {n} TIMES")
            } else if self.keyword("START") {
                let a = self.literal("a t'...' timestamp after START")?;
                self.want_keyword("STOP")?;
                let b = self.literal("a t'...' timestamp after STOP")?;
                format!("START {a} STOP {b}")
            } else {
                break;
            };
            o = Observation::Qualified(Box::new(o), q);
        }
        Ok(o)
    }

    fn literal(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Some(Tok::Lit(l)) => Ok(l),
            Some(t) => Err(format!("expected {what}, found {}", show(&t))),
            None => Err(format!("expected {what}, found the end")),
        }
    }

    fn want_keyword(&mut self, k: &str) -> Result<(), String> {
        if self.keyword(k) {
            Ok(())
        } else {
            Err(format!("expected {k}"))
        }
    }

    fn cmp_or(&mut self) -> Result<Comparison, String> {
        let mut v = vec![self.cmp_and()?];
        while self.keyword("OR") {
            v.push(self.cmp_and()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Comparison::Or(v)
        })
    }

    fn cmp_and(&mut self) -> Result<Comparison, String> {
        let mut v = vec![self.cmp_unit()?];
        while self.keyword("AND") {
            v.push(self.cmp_unit()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Comparison::And(v)
        })
    }

    fn cmp_unit(&mut self) -> Result<Comparison, String> {
        match self.next() {
            Some(Tok::LParen) => {
                self.nest()?;
                let c = self.cmp_or()?;
                self.expect(&Tok::RParen, "`)`")?;
                self.depth -= 1;
                Ok(c)
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("EXISTS") => match self.next() {
                Some(Tok::Path { object, property }) => {
                    Ok(Comparison::Exists(format!("{object}:{property}")))
                }
                _ => Err("expected an object path after EXISTS".into()),
            },
            Some(Tok::Path { object, property }) => {
                let negated = self.keyword("NOT");
                let op = match self.next() {
                    Some(Tok::Op(op)) => op,
                    Some(Tok::Word(w))
                        if ["LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET", "IN"]
                            .iter()
                            .any(|k| w.eq_ignore_ascii_case(k)) =>
                    {
                        w.to_ascii_uppercase()
                    }
                    Some(t) => {
                        return Err(format!(
                            "expected an operator after {object}:{property}, found {}",
                            show(&t)
                        ));
                    }
                    None => return Err(format!("{object}:{property} has no operator")),
                };
                let value = if op == "IN" {
                    self.expect(&Tok::LParen, "`(` after IN")?;
                    let mut set = vec![self.constant()?];
                    while self.peek() == Some(&Tok::Comma) {
                        self.at += 1;
                        set.push(self.constant()?);
                    }
                    self.expect(&Tok::RParen, "`)` closing the IN set")?;
                    Constant::Set(set)
                } else {
                    self.constant()?
                };
                Ok(Comparison::Test {
                    object,
                    property,
                    negated,
                    op,
                    value,
                })
            }
            Some(t) => Err(format!(
                "expected a comparison (object-type:property), found {}",
                show(&t)
            )),
            None => Err("expected a comparison, found the end".into()),
        }
    }

    fn constant(&mut self) -> Result<Constant, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Constant::Str(s)),
            Some(Tok::Lit(l)) => Ok(Constant::Other(l)),
            Some(Tok::Word(w)) if w == "true" || w == "false" => Ok(Constant::Other(w)),
            Some(t) => Err(format!("expected a constant, found {}", show(&t))),
            None => Err("expected a constant, found the end".into()),
        }
    }
}

fn show(t: &Tok) -> String {
    match t {
        Tok::LBrack => "`[`".into(),
        Tok::RBrack => "`]`".into(),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Op(o) => format!("`{o}`"),
        Tok::Str(s) => format!("'{s}'"),
        Tok::Lit(l) | Tok::Word(l) => format!("`{l}`"),
        Tok::Path { object, property } => format!("`{object}:{property}`"),
    }
}

/// Why a STIX pattern was refused: what is wrong with it, as a sentence (the importer places it
/// at its indicator).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(pub String);

/// Parses a STIX pattern (the whole string) into its observation expression.
pub fn parse_pattern(pattern: &str) -> Result<Observation, PatternError> {
    parse_pattern_text(pattern).map_err(PatternError)
}

fn parse_pattern_text(pattern: &str) -> Result<Observation, String> {
    let mut p = Parser {
        toks: lex(pattern)?,
        at: 0,
        depth: 0,
    };
    let o = p.followed_by()?;
    match p.peek() {
        None => Ok(o),
        Some(t) => Err(format!("unexpected {} after the expression", show(t))),
    }
}

/// What a pattern matches by one address alone, and the branches it could not use.
#[derive(Debug, Default)]
pub struct Found {
    pub nets: Vec<IpNetwork>,
    pub skipped: Vec<String>,
}

impl Found {
    /// Walks an observation expression; an error is an address that is not one.
    pub fn observation(&mut self, o: &Observation) -> Result<(), PatternError> {
        self.walk(o).map_err(PatternError)
    }

    fn walk(&mut self, o: &Observation) -> Result<(), String> {
        match o {
            Observation::Brackets(c) => self.comparison(c),
            Observation::Or(v) => v.iter().try_for_each(|x| self.walk(x)),
            Observation::And(_) => {
                self.skipped.push("observations joined by AND".into());
                Ok(())
            }
            Observation::FollowedBy(_) => {
                self.skipped
                    .push("observations joined by FOLLOWEDBY".into());
                Ok(())
            }
            Observation::Qualified(_, q) => {
                let word = q.split(' ').next().unwrap_or_default();
                self.skipped
                    .push(format!("observation qualified by {word}"));
                Ok(())
            }
        }
    }

    fn comparison(&mut self, c: &Comparison) -> Result<(), String> {
        match c {
            Comparison::Or(v) => v.iter().try_for_each(|x| self.comparison(x)),
            Comparison::And(_) => {
                self.skipped.push("comparisons joined by AND".into());
                Ok(())
            }
            Comparison::Exists(_) => {
                self.skipped.push("EXISTS".into());
                Ok(())
            }
            Comparison::Test {
                object,
                property,
                negated,
                op,
                value,
            } => {
                let family = match object.as_str() {
                    "ipv4-addr" => 4,
                    "ipv6-addr" => 6,
                    _ => {
                        self.skipped.push(format!("{object}:{property}"));
                        return Ok(());
                    }
                };
                if property != "value" {
                    self.skipped.push(format!("{object}:{property}"));
                } else if *negated {
                    self.skipped.push("NOT".into());
                } else if op != "=" && op != "ISSUBSET" && op != "IN" {
                    self.skipped.push(format!("operator {op}"));
                } else {
                    let values = match value {
                        Constant::Set(set) if op == "IN" => set.as_slice(),
                        one if op != "IN" => std::slice::from_ref(one),
                        _ => return Err("IN needs a set: ('...', '...')".into()),
                    };
                    for v in values {
                        let Constant::Str(text) = v else {
                            return Err(format!("{object}:value must be compared with a string"));
                        };
                        let net = parse_net(text).map_err(|e| e.to_string())?;
                        if (family == 4) != net.is_ipv4() {
                            return Err(format!("`{text}` is not an {object} value"));
                        }
                        self.nets.push(net);
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EvidenceKind;

    fn nets(pattern: &str) -> (Vec<String>, Vec<String>) {
        let o = parse_pattern(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        let mut f = Found::default();
        f.observation(&o)
            .unwrap_or_else(|e| panic!("{pattern}: {e}"));
        (f.nets.iter().map(|n| n.to_string()).collect(), f.skipped)
    }

    #[test]
    fn address_patterns_are_read() {
        for (pattern, want) in [
            (
                "[ipv4-addr:value = '198.51.100.7']",
                vec!["198.51.100.7/32"],
            ),
            ("[ipv6-addr:value = '2001:db8::1']", vec!["2001:db8::1/128"]),
            ("[ipv4-addr:value='203.0.113.0/24']", vec!["203.0.113.0/24"]),
            (
                "[ipv4-addr:value ISSUBSET '198.51.100.0/25']",
                vec!["198.51.100.0/25"],
            ),
            // OR inside one observation expression.
            (
                "[ipv4-addr:value = '198.51.100.1' OR ipv6-addr:value = '2001:db8::/48']",
                vec!["198.51.100.1/32", "2001:db8::/48"],
            ),
            // OR between observation expressions, and nested parentheses.
            (
                "[ipv4-addr:value = '198.51.100.1'] OR ([ipv4-addr:value = '198.51.100.2'] OR [ipv4-addr:value = '198.51.100.3'])",
                vec!["198.51.100.1/32", "198.51.100.2/32", "198.51.100.3/32"],
            ),
            (
                "[(ipv4-addr:value = '198.51.100.1' OR ipv4-addr:value = '198.51.100.2')]",
                vec!["198.51.100.1/32", "198.51.100.2/32"],
            ),
            // IN is an OR of equalities.
            (
                "[ipv4-addr:value IN ('198.51.100.1', '198.51.100.2')]",
                vec!["198.51.100.1/32", "198.51.100.2/32"],
            ),
        ] {
            let (got, skipped) = nets(pattern);
            assert_eq!(got, want, "{pattern}");
            assert!(skipped.is_empty(), "{pattern}: {skipped:?}");
        }
    }

    #[test]
    fn what_an_address_alone_cannot_match_is_skipped() {
        for (pattern, imported, skipped) in [
            (
                "[domain-name:value = 'example.com']",
                vec![],
                "domain-name:value",
            ),
            ("[url:value = 'http://198.51.100.7/x']", vec![], "url:value"),
            (
                "[file:hashes.'SHA-256' = 'aa']",
                vec![],
                "file:hashes.'SHA-256'",
            ),
            (
                "[ipv4-addr:value = '198.51.100.7' AND network-traffic:dst_port = 443]",
                vec![],
                "comparisons joined by AND",
            ),
            (
                "[ipv4-addr:value = '198.51.100.7'] AND [ipv4-addr:value = '198.51.100.8']",
                vec![],
                "observations joined by AND",
            ),
            (
                "[ipv4-addr:value = '198.51.100.7'] FOLLOWEDBY [domain-name:value = 'a.example']",
                vec![],
                "observations joined by FOLLOWEDBY",
            ),
            ("[ipv4-addr:value != '198.51.100.7']", vec![], "operator !="),
            ("[ipv4-addr:value NOT = '198.51.100.7']", vec![], "NOT"),
            ("[ipv4-addr:value > '198.51.100.7']", vec![], "operator >"),
            (
                "[ipv4-addr:value LIKE '198.51.100.%']",
                vec![],
                "operator LIKE",
            ),
            (
                "[ipv4-addr:value = '198.51.100.7'] REPEATS 5 TIMES WITHIN 600 SECONDS",
                vec![],
                "observation qualified by WITHIN",
            ),
            (
                "[ipv4-addr:value = '198.51.100.7'] START t'2026-01-01T00:00:00Z' STOP t'2026-02-01T00:00:00Z'",
                vec![],
                "observation qualified by START",
            ),
            (
                "[network-traffic:dst_ref.value = '198.51.100.7']",
                vec![],
                "network-traffic:dst_ref.value",
            ),
            (
                "[ipv4-addr:resolves_to_refs[*].value = '00:00:5e:00:53:01']",
                vec![],
                "ipv4-addr:resolves_to_refs[*].value",
            ),
            // Mixed: the address alone satisfies the pattern; the domain is counted.
            (
                "[ipv4-addr:value = '198.51.100.7'] OR [domain-name:value = 'a.example']",
                vec!["198.51.100.7/32"],
                "domain-name:value",
            ),
            (
                "[ipv4-addr:value = '198.51.100.7' OR (ipv4-addr:value = '198.51.100.8' AND network-traffic:dst_port = 80)]",
                vec!["198.51.100.7/32"],
                "comparisons joined by AND",
            ),
        ] {
            let (got, why) = nets(pattern);
            assert_eq!(got, imported, "{pattern}");
            assert_eq!(why, [skipped], "{pattern}");
        }
    }

    #[test]
    fn malformed_patterns_and_addresses_are_errors() {
        for (pattern, needle) in [
            ("[ipv4-addr:value = '198.51.100.7'", "expected `]`"),
            ("ipv4-addr:value = '198.51.100.7'", "expected `[` or `(`"),
            ("[ipv4-addr:value = '198.51.100.7]", "not closed"),
            ("[ipv4-addr:value = '198.51.100.7'] OR", "found the end"),
            ("[ipv4-addr:value '198.51.100.7']", "expected an operator"),
            (
                "[ipv4-addr:value = '198.51.100.7'] [x:y = 1]",
                "unexpected `[`",
            ),
        ] {
            let err = parse_pattern(pattern).unwrap_err().to_string();
            assert!(err.contains(needle), "{pattern}: {err}");
        }
        for (pattern, needle) in [
            ("[ipv4-addr:value = '198.51.100.300']", "not an IP address"),
            ("[ipv4-addr:value = '198.51.100.7/24']", "host bits set"),
            (
                "[ipv4-addr:value = '2001:db8::1']",
                "not an ipv4-addr value",
            ),
            ("[ipv6-addr:value = 42]", "compared with a string"),
        ] {
            let o = parse_pattern(pattern).unwrap();
            let err = Found::default().observation(&o).unwrap_err().to_string();
            assert!(err.contains(needle), "{pattern}: {err}");
        }
    }

    /// Found by the `stix_pattern` fuzz target: a pattern of many nested parentheses (or
    /// brackets inside an observation) overflowed the stack of the recursive-descent parser,
    /// aborting `embargo import stix`. Nesting is now bounded, and past the bound the pattern is
    /// refused with an error.
    #[test]
    fn deeply_nested_patterns_are_refused_not_a_stack_overflow() {
        let leaf = "[ipv4-addr:value = '192.0.2.1']";
        let deep = 50_000;
        for pattern in [
            format!("{}{leaf}{}", "(".repeat(deep), ")".repeat(deep)),
            format!(
                "[{}ipv4-addr:value = '192.0.2.1'{}]",
                "(".repeat(deep),
                ")".repeat(deep)
            ),
            "(".repeat(deep),
        ] {
            let err = parse_pattern(&pattern).unwrap_err().to_string();
            assert!(err.contains("nested deeper than"), "{err}");
        }
        // Nesting within the bound still reads.
        let ok = format!("{}{leaf}{}", "(".repeat(32), ")".repeat(32));
        assert_eq!(nets(&ok).0, ["192.0.2.1/32"]);
    }

    #[test]
    fn confidence_follows_the_stix_none_low_med_high_scale() {
        let got: Vec<Option<Confidence>> = [0, 1, 29, 30, 69, 70, 100]
            .into_iter()
            .map(confidence)
            .collect();
        use Confidence::*;
        assert_eq!(
            got,
            [
                None,
                Some(Low),
                Some(Low),
                Some(Medium),
                Some(Medium),
                Some(High),
                Some(High)
            ]
        );
    }

    fn defaults() -> Defaults {
        Defaults {
            kind: EvidenceKind::Advisory,
            source: None,
            retrieved: Date(chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()),
            confidence: None,
        }
    }

    fn bundle(indicator: &str) -> String {
        format!(
            r#"{{"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
  "objects": [{indicator}]}}"#
        )
    }

    const IND: &str = r#"{"type": "indicator", "spec_version": "2.1",
      "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
      "created": "2026-01-10T09:00:00.000Z", "modified": "2026-01-10T09:00:00.000Z",
      "pattern": "[ipv4-addr:value = '198.51.100.7']", "pattern_type": "stix",
      "valid_from": "2026-01-10T09:00:00Z", "valid_until": "2026-07-10T00:00:00Z",
      "confidence": 85,
      "external_references": [{"source_name": "example", "url": "https://example.org/advisory"}]}"#;

    #[test]
    fn dates_round_inward_to_whole_days() {
        let got = parse(Path::new("b.json"), &bundle(IND), &defaults()).unwrap();
        let e = &got.indicators[0].evidence;
        // 09:00 on the 10th: counts from the 11th; valid_until at midnight: stops that day.
        assert_eq!(e.valid_from.unwrap().to_string(), "2026-01-11");
        assert_eq!(e.expires.unwrap().to_string(), "2026-07-10");
        assert_eq!(e.confidence, Confidence::High);
        assert_eq!(e.source, "https://example.org/advisory");
    }

    #[test]
    fn a_missing_required_property_names_the_file_line_and_indicator() {
        let text = bundle(&IND.replace(r#""valid_from": "2026-01-10T09:00:00Z","#, ""));
        let err = parse(Path::new("b.json"), &text, &defaults())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("b.json:"), "{err}");
        assert!(err.contains("valid_from"), "{err}");
        assert!(
            err.contains("indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"),
            "{err}"
        );
        let err = parse(
            Path::new("b.json"),
            "{\"type\": \"bundle\",\n  \"id\": }",
            &defaults(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("b.json:2:"), "{err}");
    }

    #[test]
    fn without_a_source_or_confidence_in_the_data_the_flags_are_required() {
        let bare = IND
            .replace(r#""confidence": 85,"#, "")
            .replace(
                r#""external_references": [{"source_name": "example", "url": "https://example.org/advisory"}]"#,
                r#""created_by_ref": "identity--0c8f1d4e-3e6a-4b6e-9d3a-6f4b8a2c1d00""#,
            );
        let err = parse(Path::new("b.json"), &bundle(&bare), &defaults())
            .unwrap_err()
            .to_string();
        assert!(err.contains("--confidence"), "{err}");
        let mut d = defaults();
        d.confidence = Some(Confidence::Low);
        let err = parse(Path::new("b.json"), &bundle(&bare), &d)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--source"), "{err}");
        // The identity in the bundle names the source.
        let identity = r#"{"type": "identity", "spec_version": "2.1",
          "id": "identity--0c8f1d4e-3e6a-4b6e-9d3a-6f4b8a2c1d00",
          "created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z",
          "name": "Example CERT", "identity_class": "organization"}"#;
        let got = parse(
            Path::new("b.json"),
            &bundle(&format!("{identity}, {bare}")),
            &d,
        )
        .unwrap();
        assert_eq!(got.indicators[0].evidence.source, "Example CERT");
        assert_eq!(got.indicators[0].evidence.confidence, Confidence::Low);
    }
}
