//! `embargo report`: the compliance record for a period, built from what the agent wrote and
//! what it is counting, for a person (Markdown), a GRC tool (JSON) or a spreadsheet (CSV).
//!
//! # Inputs, each read with a bound
//!
//! * **The audit log** ([`super::audit`]), verified first with [`audit::verify`]: a broken chain
//!   refuses the whole report ([`ReportError::BrokenChain`], naming the line and what to do). The
//!   verified records give the policies applied in the period (and the one in force when it
//!   began), the list-driven delistings, and the chain's head hash. At most
//!   [`MAX_AUDIT_BYTES`].
//! * **The events** ([`super::events`]): the events file and its rotated copies (`path.N` ..
//!   `path.1`, then `path`, oldest first), read line by line, at most [`MAX_EVENT_LINE`] bytes a
//!   line, [`MAX_EVENT_FILE_BYTES`] a file and [`MAX_ROTATED`] rotated files. Lines are read
//!   tolerant of members this version does not know (another version may add some); a line
//!   that is not an event (not JSON, a required member missing or of the wrong type, a bad
//!   time, too long) is **counted and reported** in the report with its file and line (the
//!   first [`MAX_EXAMPLES`] of them), never skipped silently, and does not stop the report. A
//!   missing events file is reported as such (events may be off). When an event names its
//!   evidence group (`group`: its index, or an object with `index`/`name`/`source`;
//!   `evidence`: a label; `evidence_source`), drops are also broken down per group.
//! * **The counters**: the running agent's status over its control socket, when it answers
//!   within the status deadline; otherwise the report says the counters are unavailable and
//!   why. The audit log and the state file hold no counters. Counters are the data plane's
//!   totals since it was created (per entity, direction and verdict, every interface together),
//!   not totals for the period: the report says so next to them.
//! * **The configuration**: each entity's designations (authority, regime, reference, dates)
//!   and evidence groups (kind, source, dates). It is the configuration as it is now; when its
//!   main file's digest differs from the one the last audit record in the period names, the
//!   report says so.
//!
//! # The period
//!
//! `--from` and `--to` are dates (`2026-11-01`: `--from` from that day's 00:00 UTC, `--to`
//! through the end of that day) or RFC 3339 instants; `--to` defaults to now. The period is
//! `[from, to)`. Events, policies, delistings and expiries are those inside it; a designation
//! is *in force in the period* when its enforcing authority is enforced, it was listed before
//! the period ended and not delisted before it began.
//!
//! # Shapes
//!
//! * JSON ([`Report`]): `{"schema": "embargo-report", "version": 1, ...}`; the version changes
//!   when a member is removed or changes meaning (members may be added within a version).
//! * CSV ([`render_csv`]): one row per entity × interface × direction × verdict seen in the
//!   events (event columns filled), and one row per entity × direction × verdict with interface
//!   `*` carrying the events summed over interfaces and the counters (counters are not kept per
//!   interface in the status the agent serves).
//! * Markdown ([`render_markdown`]): the same content for people.
//!
//! Everything but [`gather`] is pure: [`build`] turns the inputs into a [`Report`], the
//! renderers turn a report into text.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    fs::File,
    io::{self, BufRead, BufReader, Read as _},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;

use super::{
    audit::{self, ChangeKind},
    events::RotatingFile,
    status::Status,
};
use crate::config::{self, Config, When};

/// The `schema` member of the JSON report.
pub const SCHEMA: &str = "embargo-report";
/// The `version` member of the JSON report.
pub const VERSION: u32 = 1;
/// Largest audit log read.
pub const MAX_AUDIT_BYTES: u64 = 256 * 1024 * 1024;
/// Longest events line read; a longer one is counted as malformed.
pub const MAX_EVENT_LINE: usize = 64 * 1024;
/// Most bytes read from one events file.
pub const MAX_EVENT_FILE_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Most rotated events files read (`path.1` .. `path.N`; `[events] keep` is at most 1,000).
pub const MAX_ROTATED: u32 = 1000;
/// Malformed events lines listed by file and line (all are counted).
pub const MAX_EXAMPLES: usize = 20;

/// Why no report was made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The period cannot be read or is empty.
    #[error("{0}")]
    Period(String),
    /// The audit log's chain is broken: nothing it says can be relied on.
    #[error(
        "audit log {}: chain broken at {brk}; {records} records before it are intact. No report is made from a broken chain: run `embargo audit verify --audit-log {}`, restore the log from a copy or investigate the change, and keep the broken file as evidence (move it aside; the agent starts a new log)",
        path.display(), path.display()
    )]
    BrokenChain {
        path: PathBuf,
        brk: audit::Break,
        records: u64,
    },
    /// The audit log cannot be read.
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    /// An input is too large to read.
    #[error("{}: {size} bytes, over the {max}-byte limit of `embargo report`", path.display())]
    TooLarge { path: PathBuf, size: u64, max: u64 },
    /// An input cannot be read.
    #[error("{}: {doing}: {source}", path.display())]
    Io {
        path: PathBuf,
        doing: &'static str,
        #[source]
        source: io::Error,
    },
    /// The audit log changed between its verification and its reading.
    #[error(
        "audit log {}: it changed while the report read it (a record was appended?); run the report again",
        path.display()
    )]
    Changed { path: PathBuf },
}

// ---------------------------------------------------------------------------------------------
// The period.

/// The half-open period `[from, to)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Period {
    /// From `--from` and `--to` (`None`: `now`); refuses an empty period.
    pub fn parse(from: &str, to: Option<&str>, now: DateTime<Utc>) -> Result<Self, ReportError> {
        let from = parse_bound(from, false)?;
        let to = match to {
            Some(t) => parse_bound(t, true)?,
            None => now,
        };
        if from >= to {
            return Err(ReportError::Period(format!(
                "the period is empty: --from {} is not before --to {}",
                rfc3339(from),
                rfc3339(to)
            )));
        }
        Ok(Self { from, to })
    }

    /// Whether `t` is in the period.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from <= t && t < self.to
    }
}

/// A date (`end`: the next day's 00:00 UTC, so the day is included) or an RFC 3339 instant.
pub fn parse_bound(s: &str, end: bool) -> Result<DateTime<Utc>, ReportError> {
    let s = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let d = if end {
            d.succ_opt()
                .ok_or_else(|| ReportError::Period(format!("`{s}` is the last date there is")))?
        } else {
            d
        };
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ReportError::Period(format!(
                "`{s}` is neither a date (2026-11-27) nor an RFC 3339 instant (2026-11-27T10:00:00Z)"
            ))
        })
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn day_start(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(chrono::NaiveTime::MIN).and_utc()
}

// ---------------------------------------------------------------------------------------------
// The audit log.

/// The verified audit log.
#[derive(Clone, Debug, Default)]
pub struct AuditInput {
    pub path: PathBuf,
    pub records: Vec<audit::Record>,
}

/// Verifies the log at `path` and reads its records (refusing a broken chain).
pub fn read_audit(path: &Path) -> Result<AuditInput, ReportError> {
    // The size of what `verify` will read (a symlink's target: the log is read, never
    // written, here).
    let size = std::fs::metadata(path)
        .map_err(|source| ReportError::Io {
            path: path.to_owned(),
            doing: "reading",
            source,
        })?
        .len();
    if size > MAX_AUDIT_BYTES {
        return Err(ReportError::TooLarge {
            path: path.to_owned(),
            size,
            max: MAX_AUDIT_BYTES,
        });
    }
    let verified = audit::verify(path)?;
    if let Some(brk) = verified.first_break {
        return Err(ReportError::BrokenChain {
            path: path.to_owned(),
            brk,
            records: verified.records,
        });
    }
    let data =
        crate::files::read::read_bytes(path, MAX_AUDIT_BYTES).map_err(|e| ReportError::Io {
            path: path.to_owned(),
            doing: "reading",
            source: io::Error::other(e.to_string()),
        })?;
    let records = parse_verified(&data, verified.records, verified.last_hash.as_deref())
        .ok_or_else(|| ReportError::Changed {
            path: path.to_owned(),
        })?;
    Ok(AuditInput {
        path: path.to_owned(),
        records,
    })
}

/// The first `count` records of `data`, if the last of them is the verified head `head` (the
/// file was not replaced between verification and reading; records appended since are left
/// out).
fn parse_verified(data: &[u8], count: u64, head: Option<&str>) -> Option<Vec<audit::Record>> {
    let mut out = Vec::new();
    for line in data.split(|&b| b == b'\n').take(count as usize) {
        out.push(serde_json::from_slice::<audit::Record>(line).ok()?);
    }
    (out.len() as u64 == count && out.last().map(|r| r.hash.as_str()) == head).then_some(out)
}

// ---------------------------------------------------------------------------------------------
// The events.

/// One events line as the report reads it: the members it needs, any others ignored.
#[derive(Debug, serde::Deserialize)]
struct EventLine {
    time: String,
    interface: String,
    direction: String,
    verdict: String,
    entity: String,
    length: u64,
    #[serde(default)]
    group: Option<serde_json::Value>,
    #[serde(default)]
    evidence: Option<serde_json::Value>,
    #[serde(default)]
    evidence_source: Option<String>,
    #[serde(default)]
    policy_digest: Option<String>,
}

impl EventLine {
    /// The evidence group the event names, as a label, if it names one.
    fn group_label(&self) -> Option<String> {
        use serde_json::Value;
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(format!("group {n}")),
            _ => None,
        };
        if let Some(Value::Object(o)) = &self.evidence {
            for k in ["name", "source"] {
                if let Some(s) = o.get(k).and_then(text) {
                    return Some(s);
                }
            }
        }
        if let Some(s) = self.evidence.as_ref().and_then(text) {
            return Some(s);
        }
        if let Some(s) = &self.evidence_source {
            return Some(s.clone());
        }
        match &self.group {
            Some(Value::Object(o)) => ["name", "source", "index"]
                .iter()
                .find_map(|k| o.get(*k).and_then(text)),
            Some(v) => text(v),
            None => None,
        }
    }
}

/// One events file as read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EventsFile {
    pub path: PathBuf,
    /// Lines read.
    pub lines: u64,
    /// Events inside the period.
    pub in_period: u64,
    /// Lines that are not events.
    pub malformed: u64,
}

/// A line that is not an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Malformed {
    pub file: PathBuf,
    /// 1-based.
    pub line: u64,
    pub reason: String,
}

/// Drops (or monitored packets) seen in the events for one entity, interface, direction and
/// verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    pub interface: String,
    pub direction: String,
    pub verdict: String,
    /// Events (one per packet the data plane reported).
    pub events: u64,
    /// Their frame lengths, summed.
    pub bytes: u64,
    pub first: Option<String>,
    pub last: Option<String>,
}

/// Events per evidence group (only when events name their group).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GroupTraffic {
    pub evidence: String,
    pub verdict: String,
    pub events: u64,
    pub bytes: u64,
}

/// What the events of the period say.
#[derive(Clone, Debug, Default)]
pub struct EventsInput {
    pub path: PathBuf,
    /// Why no events were read, when none were (the file is missing).
    pub missing: Option<String>,
    pub files: Vec<EventsFile>,
    pub malformed: u64,
    pub examples: Vec<Malformed>,
    /// By entity: keyed (interface, direction, verdict).
    pub traffic: BTreeMap<String, BTreeMap<(String, String, String), Traffic>>,
    /// By entity: keyed (evidence label, verdict).
    pub groups: BTreeMap<String, BTreeMap<(String, String), GroupTraffic>>,
    /// Policy digests events named in the period.
    pub digests: BTreeSet<String>,
}

impl EventsInput {
    fn malformed(&mut self, file: usize, line: u64, reason: String) {
        self.malformed += 1;
        self.files[file].malformed += 1;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(Malformed {
                file: self.files[file].path.clone(),
                line,
                reason,
            });
        }
    }

    /// Takes one line (without its newline) of file `file`.
    fn line(&mut self, file: usize, number: u64, line: &[u8], period: &Period) {
        self.files[file].lines += 1;
        let ev: EventLine = match serde_json::from_slice(line) {
            Ok(ev) => ev,
            Err(e) => return self.malformed(file, number, e.to_string()),
        };
        let time = match DateTime::parse_from_rfc3339(&ev.time) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => {
                return self.malformed(file, number, format!("time `{}`: {e}", ev.time));
            }
        };
        if !period.contains(time) {
            return;
        }
        self.files[file].in_period += 1;
        if let Some(d) = &ev.policy_digest {
            self.digests.insert(d.clone());
        }
        let shown = rfc3339(time);
        let t = self
            .traffic
            .entry(ev.entity.clone())
            .or_default()
            .entry((
                ev.interface.clone(),
                ev.direction.clone(),
                ev.verdict.clone(),
            ))
            .or_insert_with(|| Traffic {
                interface: ev.interface.clone(),
                direction: ev.direction.clone(),
                verdict: ev.verdict.clone(),
                ..Traffic::default()
            });
        t.events += 1;
        t.bytes += ev.length;
        // Files are read oldest first, but a line's place is no proof of its time: compare.
        let earlier = |a: &str| parse_time(a).is_none_or(|a| time < a);
        let later = |a: &str| parse_time(a).is_none_or(|a| time > a);
        if t.first.as_deref().is_none_or(earlier) {
            t.first = Some(shown.clone());
        }
        if t.last.as_deref().is_none_or(later) {
            t.last = Some(shown);
        }
        if let Some(label) = ev.group_label() {
            let g = self
                .groups
                .entry(ev.entity.clone())
                .or_default()
                .entry((label.clone(), ev.verdict.clone()))
                .or_insert_with(|| GroupTraffic {
                    evidence: label,
                    verdict: ev.verdict.clone(),
                    ..GroupTraffic::default()
                });
            g.events += 1;
            g.bytes += ev.length;
        }
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The events file at `path` and its rotated copies, oldest first, that exist.
fn event_files(path: &Path) -> Vec<PathBuf> {
    let mut rotated = Vec::new();
    for n in 1..=MAX_ROTATED {
        let p = RotatingFile::rotated(path, n);
        if std::fs::symlink_metadata(&p).is_err() {
            break;
        }
        rotated.push(p);
    }
    rotated.reverse();
    if std::fs::symlink_metadata(path).is_ok() {
        rotated.push(path.to_owned());
    }
    rotated
}

/// Opens `path` for reading: never through a symlink, only a regular file, without blocking
/// on a FIFO.
fn open_regular(path: &Path) -> Result<File, ReportError> {
    let io = |doing| {
        move |source| ReportError::Io {
            path: path.to_owned(),
            doing,
            source,
        }
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(io("opening"))?;
    let meta = file.metadata().map_err(io("reading its metadata"))?;
    if !meta.is_file() {
        return Err(io("opening")(io::Error::other("not a regular file")));
    }
    Ok(file)
}

/// Reads every events file of `path` for `period`.
pub fn read_events(path: &Path, period: &Period) -> Result<EventsInput, ReportError> {
    let mut input = EventsInput {
        path: path.to_owned(),
        ..EventsInput::default()
    };
    let files = event_files(path);
    if files.is_empty() {
        input.missing = Some(format!(
            "{} does not exist (are events on? `[events] output = \"file\"` or `embargo run --events-log`)",
            path.display()
        ));
    }
    for p in files {
        let file = open_regular(&p)?;
        input.files.push(EventsFile {
            path: p.clone(),
            ..EventsFile::default()
        });
        let index = input.files.len() - 1;
        let reader = BufReader::with_capacity(64 * 1024, file.take(MAX_EVENT_FILE_BYTES + 1));
        read_lines(reader, MAX_EVENT_LINE, |number, line| match line {
            Ok(l) => input.line(index, number, l, period),
            Err(reason) => {
                input.files[index].lines += 1;
                input.malformed(index, number, reason);
            }
        })
        .map_err(|source| ReportError::Io {
            path: p.clone(),
            doing: "reading",
            source,
        })
        .and_then(|total| {
            if total > MAX_EVENT_FILE_BYTES {
                Err(ReportError::TooLarge {
                    path: p.clone(),
                    size: total,
                    max: MAX_EVENT_FILE_BYTES,
                })
            } else {
                Ok(())
            }
        })?;
    }
    Ok(input)
}

/// Calls `f` with each line of `r` (numbered from 1, without its `\n`), or with why it was not
/// taken: longer than `max` bytes (the rest of it is skipped), or the last line without its
/// newline (a write in progress). Returns the bytes read. One pass; memory at most `max`.
fn read_lines(
    mut r: impl BufRead,
    max: usize,
    mut f: impl FnMut(u64, Result<&[u8], String>),
) -> io::Result<u64> {
    let mut total = 0u64;
    let mut number = 0u64;
    let mut line: Vec<u8> = Vec::new();
    let mut too_long = false;
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            if !line.is_empty() || too_long {
                number += 1;
                f(
                    number,
                    Err("the last line has no newline (a write in progress, or cut)".into()),
                );
            }
            return Ok(total);
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !too_long {
            if line.len() + chunk.len() > max {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let used = done.unwrap_or(buf.len());
        r.consume(used);
        total += used as u64;
        if done.is_some() {
            number += 1;
            if too_long {
                f(number, Err(format!("longer than {max} bytes")));
            } else {
                f(number, Ok(&line));
            }
            line.clear();
            too_long = false;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The counters.

/// The running agent's counters, or why there are none.
#[derive(Clone, Debug)]
pub enum CountersInput {
    Available(Box<Status>),
    Unavailable(String),
}

// ---------------------------------------------------------------------------------------------
// The report.

/// The audit chain as the report found it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AuditSummary {
    pub log: PathBuf,
    /// Records in the log (all verified).
    pub records: u64,
    /// `seq` and `hash` of the last record: the chain's head, to compare with an anchor kept
    /// elsewhere (the journal's `seq`/`hash` lines).
    pub head_seq: Option<u64>,
    pub head_hash: Option<String>,
    /// Always true in a report: a broken chain makes none.
    pub intact: bool,
}

/// A policy applied (an audit record).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PolicyApplied {
    pub seq: u64,
    pub time: String,
    pub digest: String,
    pub config: String,
    pub agent_version: Option<String>,
    /// What caused it: audit records do not say (the agent's journal does, `policy reloaded`
    /// lines with `trigger`), so `null`, except `start` for the log's first record.
    pub trigger: Option<String>,
    /// Applied before the period began, and still in force when it began.
    pub before_period: bool,
    pub changes: audit::Changes,
}

/// A designation of an entity.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DesignationRow {
    pub authority: String,
    pub regime: String,
    pub reference: String,
    pub listed_on: NaiveDate,
    /// The earlier of its file's `delisted_on` and the delisting its list recorded in the
    /// audit log, if either.
    pub delisted_on: Option<NaiveDate>,
    pub source: String,
    /// The `[[lists]]` it follows.
    pub list: Option<String>,
    /// Its authority is one the configuration enforces.
    pub enforced_authority: bool,
    /// Enforced authority, listed before the period ended and not delisted before it began
    /// (by its file or, per the audit log, by its list).
    pub in_force: bool,
}

/// An evidence group of an entity.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct GroupRow {
    /// 1-based, as `check` and `why` number groups.
    pub index: usize,
    pub kind: String,
    pub source: String,
    pub retrieved: NaiveDate,
    pub confidence: String,
    pub valid_from: Option<String>,
    /// When it stops counting (`expires`, or `retrieved + max_age`), if ever.
    pub ends: Option<String>,
    /// Its inputs: `prefixes` (count), `asn`, `countries`, `files`, `sources` as written.
    pub prefixes: usize,
    pub asn: Vec<u32>,
    pub countries: Vec<String>,
    pub files: Vec<String>,
    pub sources: Vec<String>,
    /// Counted at some time in the period (started before it ended, ended after it began).
    pub counted_in_period: bool,
}

/// A counter of the running agent.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CounterRow {
    pub direction: String,
    pub verdict: String,
    pub packets: u64,
    pub bytes: u64,
}

/// A delisting or an expiry in the period.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DatedChange {
    /// `delisted` (a designation), `expired` (a group's evidence) or `started` (a group's
    /// `valid_from`).
    pub change: String,
    pub at: String,
    /// The designation (`AUTHORITY REFERENCE`) or group (`group N: SOURCE`).
    pub what: String,
    /// Where the report learnt it: `configuration` or `audit seq N`.
    pub from: String,
}

/// One entity's record for the period.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct EntityReport {
    pub id: String,
    pub name: Option<String>,
    pub action: Option<String>,
    pub direction: Option<String>,
    /// Whether the configuration names it (events or counters may name an entity it no longer
    /// has).
    pub in_config: bool,
    pub designations: Vec<DesignationRow>,
    pub evidence_groups: Vec<GroupRow>,
    /// From the events of the period.
    pub traffic: Vec<Traffic>,
    pub by_evidence: Vec<GroupTraffic>,
    pub first_drop: Option<String>,
    pub last_drop: Option<String>,
    /// From the running agent (totals since its data plane was created), if available.
    pub counters: Vec<CounterRow>,
    pub changes: Vec<DatedChange>,
}

/// The events part of the report.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct EventsSummary {
    pub path: PathBuf,
    pub missing: Option<String>,
    pub files: Vec<EventsFile>,
    pub in_period: u64,
    /// Lines that are not events, all of them counted; the first [`MAX_EXAMPLES`] listed.
    pub malformed: u64,
    pub malformed_lines: Vec<Malformed>,
    /// Events are sent within a per-entity budget: fewer events than counted packets is
    /// expected, the shortfall is `embargo_events_lost_total`.
    pub note: &'static str,
}

/// The counters part of the report.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CountersSummary {
    pub available: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    /// The digest of the policy the running agent has loaded.
    pub digest: Option<String>,
    /// It is the audit log's head (the agent runs the last recorded policy).
    pub digest_matches_audit: Option<bool>,
    pub note: &'static str,
}

/// The configuration the report's entities come from.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ConfigSummary {
    pub path: PathBuf,
    pub sha256: String,
    /// Whether the last policy applied in (or before) the period was read from a main file
    /// with this digest; `null` without such a record.
    pub matches_audit: Option<bool>,
}

/// The compliance record for a period (the JSON shape, `version` [`VERSION`]).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Report {
    pub schema: &'static str,
    pub version: u32,
    pub generated: String,
    pub period: PeriodShown,
    pub audit: AuditSummary,
    /// The policy in force when the period began, then those applied in it, oldest first.
    pub policies: Vec<PolicyApplied>,
    pub config: ConfigSummary,
    pub events: EventsSummary,
    pub counters: CountersSummary,
    pub entities: Vec<EntityReport>,
}

/// The period as shown.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PeriodShown {
    pub from: String,
    /// Exclusive.
    pub to: String,
}

/// Everything a report is made from.
pub struct Inputs {
    pub period: Period,
    pub now: DateTime<Utc>,
    pub audit: AuditInput,
    pub config: Config,
    pub events: EventsInput,
    pub counters: CountersInput,
}

/// Reads every input: the audit log (refused if broken), the events, the counters (`status`
/// answers them or says why not) and the configuration already loaded.
pub fn gather(
    period: Period,
    config: Config,
    audit_log: &Path,
    events_log: &Path,
    status: impl FnOnce() -> Result<Status, String>,
) -> Result<Inputs, ReportError> {
    let audit = read_audit(audit_log)?;
    let events = read_events(events_log, &period)?;
    let counters = match status() {
        Ok(s) => CountersInput::Available(Box::new(s)),
        Err(e) => CountersInput::Unavailable(e),
    };
    Ok(Inputs {
        period,
        now: Utc::now(),
        audit,
        config,
        events,
        counters,
    })
}

/// The report of `inputs`.
pub fn build(inputs: &Inputs) -> Report {
    let p = &inputs.period;
    let records = &inputs.audit.records;
    let time_of = |r: &audit::Record| parse_time(&r.time);
    // The last record before the period (in force when it began), then those in it.
    let before = records
        .iter()
        .rposition(|r| time_of(r).is_some_and(|t| t < p.from));
    let mut policies = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let t = time_of(r);
        let before_period = Some(i) == before;
        if !(before_period || t.is_some_and(|t| p.contains(t))) {
            continue;
        }
        policies.push(PolicyApplied {
            seq: r.seq,
            time: r.time.clone(),
            digest: r.digest.clone(),
            config: r.config.clone(),
            agent_version: r.agent_version.clone(),
            trigger: (r.prev == audit::GENESIS).then(|| "start".to_owned()),
            before_period,
            changes: r.changes,
        });
    }
    let head = records.last();
    let audit = AuditSummary {
        log: inputs.audit.path.clone(),
        records: records.len() as u64,
        head_seq: head.map(|r| r.seq),
        head_hash: head.map(|r| r.hash.clone()),
        intact: true,
    };

    let main = inputs.config.main_file();
    let config_sha = crate::files::digest::sha256_hex(main.text.as_bytes());
    let last_policy = policies
        .last()
        .and_then(|pa| records.iter().find(|r| r.seq == pa.seq));
    let config = ConfigSummary {
        path: main.path.clone(),
        sha256: config_sha.clone(),
        matches_audit: last_policy.and_then(|r| {
            r.sources
                .iter()
                .find(|s| s.kind == audit::SourceKind::Config)
                .map(|s| s.sha256 == config_sha)
        }),
    };

    // List delistings recorded in the audit log: (entity, authority-less reference) -> when.
    let mut list_delisted: BTreeMap<(String, String), (NaiveDate, u64)> = BTreeMap::new();
    let mut audit_changes: BTreeMap<String, Vec<DatedChange>> = BTreeMap::new();
    for r in records {
        for d in &r.designations {
            if d.change != ChangeKind::Delisted {
                continue;
            }
            let since = d
                .since
                .as_deref()
                .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                .or_else(|| time_of(r).map(|t| t.date_naive()));
            let Some(since) = since else { continue };
            list_delisted.insert((d.entity.clone(), d.reference.clone()), (since, r.seq));
            if p.contains(day_start(since)) || time_of(r).is_some_and(|t| p.contains(t)) {
                audit_changes
                    .entry(d.entity.clone())
                    .or_default()
                    .push(DatedChange {
                        change: "delisted".into(),
                        at: since.to_string(),
                        what: format!("list `{}` {}", d.list, d.reference),
                        from: format!("audit seq {}", r.seq),
                    });
            }
        }
    }

    let enforced = config::enforced(&inputs.config.main);
    let mut entities: BTreeMap<String, EntityReport> = BTreeMap::new();
    for src in &inputs.config.entities {
        let def = &src.def;
        let id = def.id.get_ref().clone();
        let mut changes = audit_changes.remove(&id).unwrap_or_default();
        let designations = def
            .designations
            .iter()
            .map(|d| {
                let listed = d.listed_on.0;
                let delisted = d.delisted_on.map(|x| x.0);
                let by_list = list_delisted.get(&(id.clone(), d.reference.clone()));
                let ended = [delisted, by_list.map(|b| b.0)].into_iter().flatten().min();
                if let Some(x) = delisted
                    && p.contains(day_start(x))
                {
                    changes.push(DatedChange {
                        change: "delisted".into(),
                        at: x.to_string(),
                        what: format!("{} {}", d.authority, d.reference),
                        from: "configuration".into(),
                    });
                }
                let enforced_authority =
                    enforced.contains_key(&config::authority_key(&d.authority));
                DesignationRow {
                    authority: d.authority.clone(),
                    regime: d.regime.clone(),
                    reference: d.reference.clone(),
                    listed_on: listed,
                    delisted_on: ended,
                    source: d.source.clone(),
                    list: d.list.as_ref().map(|l| l.get_ref().clone()),
                    enforced_authority,
                    in_force: enforced_authority
                        && day_start(listed) < p.to
                        && ended.is_none_or(|e| day_start(e) > p.from),
                }
            })
            .collect();
        let evidence_groups = def
            .networks
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let e = &g.evidence;
                let ends = config::validate::evidence_expiry(e).ok().flatten();
                let what = format!("group {}: {}", i + 1, e.source);
                for (change, when) in [("started", e.valid_from), ("expired", ends)] {
                    if let Some(w) = when
                        && p.contains(w.start())
                    {
                        changes.push(DatedChange {
                            change: change.into(),
                            at: w.to_string(),
                            what: what.clone(),
                            from: "configuration".into(),
                        });
                    }
                }
                GroupRow {
                    index: i + 1,
                    kind: e.kind.get_ref().name().to_owned(),
                    source: e.source.clone(),
                    retrieved: e.retrieved.0,
                    confidence: serde_json::to_value(e.confidence)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    valid_from: e.valid_from.map(|w| w.to_string()),
                    ends: ends.map(|w| w.to_string()),
                    prefixes: g.prefixes.len(),
                    asn: g.asn.iter().map(|a| *a.get_ref()).collect(),
                    countries: g.countries.iter().map(|c| c.get_ref().clone()).collect(),
                    files: g.files.iter().map(|f| f.get_ref().clone()).collect(),
                    sources: g.sources.iter().map(|s| s.get_ref().clone()).collect(),
                    counted_in_period: e.valid_from.is_none_or(|w: When| w.start() < p.to)
                        && ends.is_none_or(|w| w.start() > p.from),
                }
            })
            .collect();
        let action = serde_json::to_value(def.action).ok();
        let direction = serde_json::to_value(def.direction).ok();
        entities.insert(
            id.clone(),
            EntityReport {
                id,
                name: Some(def.name.clone()),
                action: action.and_then(|v| v.as_str().map(str::to_owned)),
                direction: direction.and_then(|v| v.as_str().map(str::to_owned)),
                in_config: true,
                designations,
                evidence_groups,
                traffic: Vec::new(),
                by_evidence: Vec::new(),
                first_drop: None,
                last_drop: None,
                counters: Vec::new(),
                changes,
            },
        );
    }
    let unknown = |id: &str| EntityReport {
        id: id.to_owned(),
        name: None,
        action: None,
        direction: None,
        in_config: false,
        designations: Vec::new(),
        evidence_groups: Vec::new(),
        traffic: Vec::new(),
        by_evidence: Vec::new(),
        first_drop: None,
        last_drop: None,
        counters: Vec::new(),
        changes: Vec::new(),
    };
    for (id, changes) in audit_changes {
        entities
            .entry(id.clone())
            .or_insert_with(|| unknown(&id))
            .changes = changes;
    }
    for (id, rows) in &inputs.events.traffic {
        let e = entities.entry(id.clone()).or_insert_with(|| unknown(id));
        e.traffic = rows.values().cloned().collect();
        let drops = || e.traffic.iter().filter(|t| t.verdict == "dropped");
        e.first_drop = drops()
            .filter_map(|t| t.first.as_deref())
            .min_by_key(|t| parse_time(t))
            .map(str::to_owned);
        e.last_drop = drops()
            .filter_map(|t| t.last.as_deref())
            .max_by_key(|t| parse_time(t))
            .map(str::to_owned);
    }
    for (id, rows) in &inputs.events.groups {
        let e = entities.entry(id.clone()).or_insert_with(|| unknown(id));
        e.by_evidence = rows.values().cloned().collect();
    }
    let counters = match &inputs.counters {
        CountersInput::Available(status) => {
            for s in &status.entities {
                let e = entities
                    .entry(s.id.clone())
                    .or_insert_with(|| unknown(&s.id));
                e.counters = s
                    .counters
                    .iter()
                    .map(|c| CounterRow {
                        direction: c.direction.clone(),
                        verdict: c.verdict.clone(),
                        packets: c.packets,
                        bytes: c.bytes,
                    })
                    .collect();
            }
            CountersSummary {
                available: true,
                reason: None,
                digest: Some(status.digest.clone()),
                digest_matches_audit: head.map(|h| h.digest == status.digest),
                note: COUNTERS_NOTE,
            }
        }
        CountersInput::Unavailable(reason) => CountersSummary {
            available: false,
            reason: Some(reason.clone()),
            digest: None,
            digest_matches_audit: None,
            note: COUNTERS_NOTE,
        },
    };
    for e in entities.values_mut() {
        e.changes
            .sort_by(|a, b| a.at.cmp(&b.at).then(a.what.cmp(&b.what)));
    }

    let ev = &inputs.events;
    Report {
        schema: SCHEMA,
        version: VERSION,
        generated: rfc3339(inputs.now),
        period: PeriodShown {
            from: rfc3339(p.from),
            to: rfc3339(p.to),
        },
        audit,
        policies,
        config,
        events: EventsSummary {
            path: ev.path.clone(),
            missing: ev.missing.clone(),
            files: ev.files.clone(),
            in_period: ev.files.iter().map(|f| f.in_period).sum(),
            malformed: ev.malformed,
            malformed_lines: ev.examples.clone(),
            note: EVENTS_NOTE,
        },
        counters,
        entities: entities.into_values().collect(),
    }
}

const COUNTERS_NOTE: &str = "the running agent's counters: totals since its data plane was created, every interface together, not limited to the period";
const EVENTS_NOTE: &str = "one event per packet as far as the per-entity event budget allowed: fewer events than counted packets is expected (embargo_events_lost_total counts the rest)";

// ---------------------------------------------------------------------------------------------
// Rendering.

/// The JSON report, pretty-printed, with a final newline.
pub fn render_json(r: &Report) -> String {
    let mut s = serde_json::to_string_pretty(r).expect("a report serializes");
    s.push('\n');
    s
}

/// The CSV header ([`render_csv`]).
pub const CSV_HEADER: [&str; 11] = [
    "entity",
    "interface",
    "direction",
    "verdict",
    "event_packets",
    "event_bytes",
    "first_seen",
    "last_seen",
    "counter_packets",
    "counter_bytes",
    "designations",
];

/// The CSV report: see the module documentation for its rows.
pub fn render_csv(r: &Report) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER).expect("writing to memory");
    for e in &r.entities {
        let designations = e
            .designations
            .iter()
            .filter(|d| d.in_force)
            .map(|d| format!("{} {}", d.authority, d.reference))
            .collect::<Vec<_>>()
            .join("; ");
        for t in &e.traffic {
            w.write_record([
                e.id.as_str(),
                &t.interface,
                &t.direction,
                &t.verdict,
                &t.events.to_string(),
                &t.bytes.to_string(),
                t.first.as_deref().unwrap_or(""),
                t.last.as_deref().unwrap_or(""),
                "",
                "",
                &designations,
            ])
            .expect("writing to memory");
        }
        // The `*` rows: events summed over interfaces, and the counters.
        let mut keys: BTreeSet<(&str, &str)> = BTreeSet::new();
        keys.extend(
            e.traffic
                .iter()
                .map(|t| (t.direction.as_str(), t.verdict.as_str())),
        );
        keys.extend(
            e.counters
                .iter()
                .map(|c| (c.direction.as_str(), c.verdict.as_str())),
        );
        for (dir, verdict) in keys {
            let rows = || {
                e.traffic
                    .iter()
                    .filter(move |t| t.direction == dir && t.verdict == verdict)
            };
            let first = rows()
                .filter_map(|t| t.first.as_deref())
                .min_by_key(|t| parse_time(t));
            let last = rows()
                .filter_map(|t| t.last.as_deref())
                .max_by_key(|t| parse_time(t));
            let c = e
                .counters
                .iter()
                .find(|c| c.direction == dir && c.verdict == verdict);
            let opt = |v: Option<u64>| v.map_or_else(String::new, |v| v.to_string());
            w.write_record([
                e.id.as_str(),
                "*",
                dir,
                verdict,
                &rows().map(|t| t.events).sum::<u64>().to_string(),
                &rows().map(|t| t.bytes).sum::<u64>().to_string(),
                first.unwrap_or(""),
                last.unwrap_or(""),
                &opt(c.map(|c| c.packets)),
                &opt(c.map(|c| c.bytes)),
                &designations,
            ])
            .expect("writing to memory");
        }
    }
    String::from_utf8(w.into_inner().expect("writing to memory")).expect("CSV of UTF-8 text")
}

/// Escapes `|` and newlines for a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The Markdown report.
pub fn render_markdown(r: &Report) -> String {
    let mut o = String::new();
    let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "—".to_owned());
    let _ = writeln!(o, "# Embargo compliance report\n");
    let _ = writeln!(
        o,
        "Period: **{}** to **{}** (exclusive). Generated {}.\n",
        r.period.from, r.period.to, r.generated
    );
    let _ = writeln!(o, "## Audit chain\n");
    let _ = writeln!(
        o,
        "- Log: `{}`: {} records, chain intact (verified before this report).",
        r.audit.log.display(),
        r.audit.records
    );
    let _ = writeln!(
        o,
        "- Head: seq {}, hash `{}`",
        r.audit.head_seq.map_or("—".into(), |s| s.to_string()),
        opt(&r.audit.head_hash)
    );
    let _ = writeln!(
        o,
        "- Configuration: `{}` (sha256 `{}`){}\n",
        r.config.path.display(),
        r.config.sha256,
        match r.config.matches_audit {
            Some(true) => ", the main file the last policy in the period was read from.",
            Some(false) =>
                ". **It differs from the main file the last policy in the period was read from**: designations and groups below are the configuration's as it is now.",
            None => ". No policy recorded in or before the period to compare it with.",
        }
    );
    let _ = writeln!(o, "## Policies applied\n");
    if r.policies.is_empty() {
        let _ = writeln!(o, "No policy was in force in the period.\n");
    } else {
        let _ = writeln!(
            o,
            "| seq | time | digest | trigger | prefixes +/−/moved | entities +/−/changed |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|");
        for pa in &r.policies {
            let c = &pa.changes;
            let _ = writeln!(
                o,
                "| {}{} | {} | `{}` | {} | {}/{}/{} | {}/{}/{} |",
                pa.seq,
                if pa.before_period {
                    " (in force at start)"
                } else {
                    ""
                },
                pa.time,
                pa.digest,
                pa.trigger.as_deref().unwrap_or("not recorded"),
                c.prefixes_added,
                c.prefixes_removed,
                c.prefixes_moved,
                c.entities_added,
                c.entities_removed,
                c.entities_changed
            );
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "## Inputs\n");
    match &r.events.missing {
        Some(m) => {
            let _ = writeln!(o, "- Events: none read: {m}.");
        }
        None => {
            let _ = writeln!(
                o,
                "- Events: {} in the period from {} files ({}); {}.",
                r.events.in_period,
                r.events.files.len(),
                r.events
                    .files
                    .iter()
                    .map(|f| format!("`{}`: {} lines", f.path.display(), f.lines))
                    .collect::<Vec<_>>()
                    .join(", "),
                r.events.note
            );
        }
    }
    if r.events.malformed > 0 {
        let _ = writeln!(
            o,
            "- **{} events lines are not events** and were not counted:",
            r.events.malformed
        );
        for m in &r.events.malformed_lines {
            let _ = writeln!(
                o,
                "  - `{}` line {}: {}",
                m.file.display(),
                m.line,
                cell(&m.reason)
            );
        }
        if r.events.malformed > r.events.malformed_lines.len() as u64 {
            let _ = writeln!(
                o,
                "  - … and {} more",
                r.events.malformed - r.events.malformed_lines.len() as u64
            );
        }
    }
    if r.counters.available {
        let _ = writeln!(
            o,
            "- Counters: from the running agent (policy `{}`{}); {}.",
            opt(&r.counters.digest),
            match r.counters.digest_matches_audit {
                Some(true) => ", the audit log's head",
                Some(false) => ", **not the audit log's head**",
                None => "",
            },
            r.counters.note
        );
    } else {
        let _ = writeln!(
            o,
            "- Counters: **unavailable**: {}.",
            opt(&r.counters.reason)
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "## Entities\n");
    for e in &r.entities {
        let _ = writeln!(
            o,
            "### `{}`{}\n",
            e.id,
            e.name
                .as_ref()
                .map_or_else(String::new, |n| format!(": {}", cell(n)))
        );
        if e.in_config {
            let _ = writeln!(
                o,
                "Action {}, direction {}.\n",
                opt(&e.action),
                opt(&e.direction)
            );
        } else {
            let _ = writeln!(o, "Not in the configuration as it is now.\n");
        }
        if !e.designations.is_empty() {
            let _ = writeln!(
                o,
                "| designation | regime | listed | delisted | in force | source |"
            );
            let _ = writeln!(o, "|---|---|---|---|---|---|");
            for d in &e.designations {
                let _ = writeln!(
                    o,
                    "| {} {}{} | {} | {} | {} | {} | {} |",
                    cell(&d.authority),
                    cell(&d.reference),
                    d.list
                        .as_ref()
                        .map_or_else(String::new, |l| format!(" (list `{}`)", cell(l))),
                    cell(&d.regime),
                    d.listed_on,
                    d.delisted_on.map_or("—".into(), |x| x.to_string()),
                    if d.in_force {
                        "yes"
                    } else if d.enforced_authority {
                        "no"
                    } else {
                        "no (authority not enforced)"
                    },
                    cell(&d.source)
                );
            }
            let _ = writeln!(o);
        }
        if !e.evidence_groups.is_empty() {
            let _ = writeln!(
                o,
                "| group | kind | source | retrieved | confidence | from | until | inputs | counted in period |"
            );
            let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
            for g in &e.evidence_groups {
                let mut inputs = Vec::new();
                if g.prefixes > 0 {
                    inputs.push(format!("{} prefixes", g.prefixes));
                }
                if !g.asn.is_empty() {
                    inputs.push(format!(
                        "AS{}",
                        g.asn
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(", AS")
                    ));
                }
                inputs.extend(g.countries.iter().cloned());
                inputs.extend(g.files.iter().map(|f| format!("file {f}")));
                inputs.extend(g.sources.iter().map(|s| format!("source {s}")));
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    g.index,
                    g.kind,
                    cell(&g.source),
                    g.retrieved,
                    g.confidence,
                    opt(&g.valid_from),
                    opt(&g.ends),
                    cell(&inputs.join("; ")),
                    if g.counted_in_period { "yes" } else { "no" }
                );
            }
            let _ = writeln!(o);
        }
        if e.traffic.is_empty() {
            let _ = writeln!(o, "No events in the period.");
        } else {
            let _ = writeln!(
                o,
                "First drop seen {}, last {}.\n",
                opt(&e.first_drop),
                opt(&e.last_drop)
            );
            let _ = writeln!(
                o,
                "| interface | direction | verdict | events | bytes | first | last |"
            );
            let _ = writeln!(o, "|---|---|---|---|---|---|---|");
            for t in &e.traffic {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    cell(&t.interface),
                    t.direction,
                    t.verdict,
                    t.events,
                    t.bytes,
                    opt(&t.first),
                    opt(&t.last)
                );
            }
        }
        if !e.by_evidence.is_empty() {
            let _ = writeln!(o, "\nBy evidence:\n");
            for g in &e.by_evidence {
                let _ = writeln!(
                    o,
                    "- {} ({}): {} events, {} bytes",
                    cell(&g.evidence),
                    g.verdict,
                    g.events,
                    g.bytes
                );
            }
        }
        if r.counters.available {
            if e.counters.is_empty() {
                let _ = writeln!(o, "\nCounters: none (not loaded in the running agent).");
            } else {
                let _ = writeln!(o, "\nCounters (since the data plane was created):\n");
                for c in &e.counters {
                    let _ = writeln!(
                        o,
                        "- {} {}: {} packets, {} bytes",
                        c.direction, c.verdict, c.packets, c.bytes
                    );
                }
            }
        }
        if !e.changes.is_empty() {
            let _ = writeln!(o, "\nDelistings and expiries in the period:\n");
            for c in &e.changes {
                let _ = writeln!(o, "- {} {}: {} ({})", c.at, c.change, cell(&c.what), c.from);
            }
        }
        let _ = writeln!(o);
    }
    o
}

#[cfg(test)]
mod tests;
