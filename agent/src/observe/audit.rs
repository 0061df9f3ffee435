//! The policy audit log: an append-only, hash-chained JSON-lines file with one record per policy
//! the agent applied (`/var/lib/embargo/audit.jsonl` unless `--audit-log` says otherwise).
//!
//! # Records
//!
//! Each line is one JSON object with these members:
//!
//! | member      | value |
//! | ----------- | ----- |
//! | `agent_version` | the agent's build that applied the policy: version, git commit, build date, as `embargo --version` prints them (absent in records of agents before it) |
//! | `seq`       | 1 for the first record, then +1 per record, no gaps |
//! | `time`      | when the record was written: RFC 3339, UTC, milliseconds (`2025-12-09T10:00:00.000Z`) |
//! | `digest`    | [`Compiled::digest`] of the applied table |
//! | `config`    | path of the main configuration file |
//! | `sources`   | every file the policy was read from, in reading order: `{"kind", "path", "sha256"}` with kind `config` (the main file), `entities` (an included entity file), `list` (a sanctions list file) or `indicators` (an indicator file) |
//! | `asn_table` | the IP-to-ASN table's version ([`Resolved::asn_table`]: per file `<npm name>@<version> <file> sha256:<hex>`, or `<path> sha256:<hex>` without a `package.json`; files joined with `; `), or `null` |
//! | `country_table` | the IP-to-country table's version, as `asn_table` ([`Resolved::country_table`]); absent when the policy uses none |
//! | `changes`   | counts against the previous policy (an empty table for the agent's first): `prefixes_added`, `prefixes_removed`, `prefixes_moved`, `entities_added`, `entities_removed`, `entities_changed` |
//! | `designations` | only when some changed: designations written with `list = "..."` that their list delisted, relisted or changed against the previous policy (for the agent's first, those already delisted): `{"change", "entity", "list", "reference", "since", "detail"}`, `change` one of `delisted`, `relisted`, `metadata_changed` |
//! | `prev`      | the previous record's `hash`; 64 zeros (`GENESIS`) in the first record |
//! | `hash`      | this record's hash, below |
//!
//! # Canonical form and hash
//!
//! `hash` is the lowercase hex SHA-256 of the UTF-8 bytes of the *canonical serialization* of the
//! record with its `hash` member removed. The canonical serialization of a JSON value is:
//!
//! * no whitespace between tokens;
//! * object members sorted by name, comparing the names' UTF-8 bytes;
//! * strings in double quotes with exactly these escapes: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`,
//!   `\t`, and `\u00xx` (lowercase hex) for the other characters below U+0020; every other
//!   character, non-ASCII included, as its raw UTF-8 bytes;
//! * integers in decimal, without sign for non-negative values, exponent or leading zeros;
//!   `null`, `true` and `false` as such.
//!
//! Each line of the file is the canonical serialization of the whole record (its `hash`
//! included) followed by `\n`. The form is what Python prints with
//! `json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`, so a record
//! can be checked without Embargo:
//!
//! ```text
//! python3 -c 'import hashlib,json,sys
//! for l in open(sys.argv[1]):
//!     r = json.loads(l); h = r.pop("hash")
//!     c = json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
//!     print(r["seq"], h == hashlib.sha256(c.encode()).hexdigest())' audit.jsonl
//! ```
//!
//! # Durability and what the chain proves
//!
//! The file is opened with `O_APPEND | O_NOFOLLOW` ([`write::open_append`]: never through a
//! symlink, only a regular file) in a folder owned by the agent's user and not writable by group
//! or others ([`write::ensure_dir`]), and an exclusive `flock` is held for the [`AuditLog`]'s life
//! (one writer); each record is written with one `write_all` and then `fsync`ed before
//! [`AuditLog::append`] returns. A crash during a write leaves a last line without its `\n`:
//! [`verify`] reports it as truncated and [`AuditLog::open`] refuses to continue such a log
//! rather than append after the fragment or cut it away.
//!
//! The chain shows any edit, removal, insertion or reordering of records before the last one,
//! unless every later hash is recomputed too, and removing the newest records leaves a valid
//! shorter chain. Both need an anchor kept elsewhere: the agent logs each record's `seq` and
//! `hash` when it appends it, so the journal holds one.

use std::{
    fs::File,
    io::Write as _,
    os::{fd::AsRawFd as _, unix::fs::FileExt as _},
    path::{Path, PathBuf},
};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    config::Config,
    files::{digest::sha256_hex, write},
    policy::{
        compile::{Compiled, ListedStatus},
        plan::{self, TableSnapshot},
        resolve::{InputKind, Resolved},
    },
};

/// Where `embargo run` appends and `embargo audit verify` reads unless told otherwise.
pub const DEFAULT_LOG: &str = "/var/lib/embargo/audit.jsonl";

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Errors opening, appending to or reading the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The log (or its folder) cannot be opened, read, written or synced.
    #[error("audit log {path}: {doing}: {source}")]
    Io {
        path: PathBuf,
        doing: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the log's lock.
    #[error(
        "audit log {path} is in use by another process (another embargo agent?); give each agent its own --audit-log"
    )]
    Locked { path: PathBuf },
    /// The log's last record cannot be continued from.
    #[error(
        "audit log {path} cannot be continued: {problem}; `embargo audit verify --log {path}` shows where it breaks, move the file aside to start a new log"
    )]
    BadTail { path: PathBuf, problem: Problem },
    /// The log or its folder is not safe to write: a symlink, not a regular file, a folder
    /// others can write in or owned by another user.
    #[error("audit log {path}: {source}")]
    Unsafe {
        path: PathBuf,
        #[source]
        source: write::SafeFsError,
    },
    /// An earlier append failed part-way; this log refuses further records.
    #[error(
        "audit log {path}: an earlier write failed, so no further records are appended until the agent restarts"
    )]
    Poisoned { path: PathBuf },
}

/// What a source file was to the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The main configuration file.
    Config,
    /// An included entity file.
    Entities,
    /// An indicator file a network group names.
    Indicators,
    /// A sanctions list file (`[[lists]]`).
    List,
}

/// What happened to a designation that follows a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Its reference is no longer on the list: enforcement on it ends.
    Delisted,
    /// Its reference is on the list again.
    Relisted,
    /// Still listed, with another regime, date or names.
    MetadataChanged,
}

/// A designation change recorded with the policy that applied it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesignationChange {
    pub change: ChangeKind,
    pub entity: String,
    pub list: String,
    pub reference: String,
    /// `delisted`: the date it counts as delisted from (`YYYY-MM-DD`).
    pub since: Option<String>,
    /// What changed, for `metadata_changed`.
    pub detail: Option<String>,
}

/// The changes from `old` to `new` (see the module documentation): a designation first seen
/// off its list counts as delisted.
pub fn designation_changes(old: &[ListedStatus], new: &[ListedStatus]) -> Vec<DesignationChange> {
    let mut out = Vec::new();
    for n in new {
        let prev = old
            .iter()
            .find(|o| o.entity == n.entity && o.list == n.list && o.reference == n.reference);
        let change =
            |change, since: Option<chrono::NaiveDate>, detail: Option<String>| DesignationChange {
                change,
                entity: n.entity.clone(),
                list: n.list.clone(),
                reference: n.reference.clone(),
                since: since.map(|d| d.to_string()),
                detail,
            };
        match (prev.map(|o| o.on_list), n.on_list) {
            (None | Some(true), false) => {
                out.push(change(ChangeKind::Delisted, n.delisted_on, None))
            }
            (Some(false), true) => out.push(change(ChangeKind::Relisted, None, None)),
            (Some(true), true) => {
                let o = prev.expect("matched Some");
                let mut what = Vec::new();
                if o.regime != n.regime {
                    what.push(format!("regime {:?} -> {:?}", o.regime, n.regime));
                }
                if o.listed_on != n.listed_on {
                    what.push(format!("listed_on {:?} -> {:?}", o.listed_on, n.listed_on));
                }
                if o.names != n.names {
                    what.push(format!("names {:?} -> {:?}", o.names, n.names));
                }
                if !what.is_empty() {
                    out.push(change(
                        ChangeKind::MetadataChanged,
                        None,
                        Some(what.join("; ")),
                    ));
                }
            }
            (None, true) | (Some(false), false) => {}
        }
    }
    out
}

/// A file the policy was read from, with the SHA-256 of its content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub kind: SourceKind,
    pub path: String,
    pub sha256: String,
}

/// What changed against the previous policy, as counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Changes {
    pub prefixes_added: u64,
    pub prefixes_removed: u64,
    pub prefixes_moved: u64,
    pub entities_added: u64,
    pub entities_removed: u64,
    /// Entities whose action or direction changed (each counted once).
    pub entities_changed: u64,
}

impl Changes {
    /// The counts of [`plan::diff`] from `old` to `new`.
    pub fn between(old: &TableSnapshot, new: &TableSnapshot) -> Self {
        let p = plan::diff(old, new);
        let mut changed: Vec<&str> = p
            .entities_changed
            .iter()
            .map(|(id, _)| id.as_str())
            .collect();
        changed.sort_unstable();
        changed.dedup();
        let n = |len: usize| len as u64;
        Self {
            prefixes_added: n(p.added.len()),
            prefixes_removed: n(p.removed.len()),
            prefixes_moved: n(p.moved.len()),
            entities_added: n(p.entities_added.len()),
            entities_removed: n(p.entities_removed.len()),
            entities_changed: n(changed.len()),
        }
    }
}

/// One applied policy, as given to [`AuditLog::append`] (which adds `seq`, `prev` and `hash`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyApplied {
    pub time: DateTime<Utc>,
    pub digest: String,
    pub config: PathBuf,
    pub sources: Vec<Source>,
    pub asn_table: Option<String>,
    pub country_table: Option<String>,
    pub changes: Changes,
    /// List-driven designation changes ([`designation_changes`]).
    pub designations: Vec<DesignationChange>,
}

impl PolicyApplied {
    /// The entry for `new`, compiled from `config` and `resolved`, replacing `old` (an empty
    /// snapshot when nothing was loaded before) whose list-driven designations stood as
    /// `old_listed`. The sources' digests are those `resolved` recorded when it read them.
    pub fn new(
        config: &Config,
        resolved: &Resolved,
        old: &TableSnapshot,
        old_listed: &[ListedStatus],
        new: &Compiled,
    ) -> Self {
        let next = TableSnapshot::of(new);
        Self {
            time: Utc::now(),
            digest: next.digest.clone(),
            config: config.main_file().path.clone(),
            sources: sources(resolved),
            asn_table: resolved.asn_table.clone(),
            country_table: resolved.country_table.clone(),
            changes: Changes::between(old, &next),
            designations: designation_changes(old_listed, &new.listed),
        }
    }
}

/// Every file `config` and `resolved` were read from, each once, in reading order, with the
/// digest [`resolve`](crate::policy::resolve::resolve) recorded when it read the file (never a
/// second read, which could see a newer file than the one enforced).
pub fn sources(resolved: &Resolved) -> Vec<Source> {
    let mut out: Vec<Source> = Vec::with_capacity(resolved.inputs.len());
    for input in &resolved.inputs {
        let shown = input.path.display().to_string();
        if out.iter().any(|s| s.path == shown) {
            continue;
        }
        out.push(Source {
            kind: match input.kind {
                InputKind::Config => SourceKind::Config,
                InputKind::Entities => SourceKind::Entities,
                InputKind::List => SourceKind::List,
                InputKind::Indicators | InputKind::Source => SourceKind::Indicators,
            },
            path: shown,
            sha256: input.sha256.clone(),
        });
    }
    out
}

/// One line of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The build of the agent that applied the policy ([`crate::build_info::LONG`]). Absent
    /// in records written before the field existed, which keep their hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    pub seq: u64,
    /// RFC 3339, UTC.
    pub time: String,
    pub digest: String,
    pub config: String,
    pub sources: Vec<Source>,
    pub asn_table: Option<String>,
    /// Absent (not `null`) without a country table, so records written before the field
    /// existed keep their hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_table: Option<String>,
    pub changes: Changes,
    /// Absent when empty, so records without list changes hash as before lists existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub designations: Vec<DesignationChange>,
    pub prev: String,
    pub hash: String,
}

impl Record {
    /// The hash this record's content gives (its `hash` member left out).
    pub fn compute_hash(&self) -> String {
        let mut v = serde_json::to_value(self).expect("a record serializes");
        hash_without_own(&mut v)
    }

    /// The line written to the log, `\n` included.
    pub fn to_line(&self) -> String {
        let mut s = canonical(&serde_json::to_value(self).expect("a record serializes"));
        s.push('\n');
        s
    }
}

/// Removes `hash` from the object `v` and hashes the canonical form of the rest.
fn hash_without_own(v: &mut serde_json::Value) -> String {
    if let Some(o) = v.as_object_mut() {
        o.remove("hash");
    }
    sha256_hex(canonical(v).as_bytes())
}

/// The canonical serialization described in the module documentation.
pub fn canonical(v: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        // serde_json escapes exactly `"`, `\` and U+0000..U+001F, in the form documented above.
        Value::String(s) => out.push_str(&serde_json::to_string(s).expect("a string serializes")),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            // Sorted here rather than trusting the map's order (serde_json's `preserve_order`
            // feature, if any crate enables it, keeps insertion order).
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (name, value)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(name).expect("a string serializes"));
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => out.push_str(&v.to_string()),
    }
}

/// What is wrong with a line of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Problem {
    /// Not a JSON object with exactly the record's members and types.
    #[error("not a valid record: {reason}")]
    BadJson { reason: String },
    /// The content does not hash to the stored `hash`: the record was edited.
    #[error("hash mismatch: the record says {stored}, its content hashes to {computed} (edited?)")]
    HashMismatch { stored: String, computed: String },
    /// `prev` is not the previous record's hash: a record before it was changed or replaced.
    #[error(
        "prev-hash mismatch: prev is {found}, the previous record's hash is {expected} (a record before it was changed, removed or replaced?)"
    )]
    PrevMismatch { expected: String, found: String },
    /// `seq` is not one more than the previous record's.
    #[error(
        "sequence gap: seq {found} where {expected} was expected (a record was removed, repeated or moved?)"
    )]
    SequenceGap { expected: u64, found: u64 },
    /// The last line has no `\n`: a write did not finish.
    #[error(
        "truncated last line: it does not end with a newline (a write interrupted by a crash?)"
    )]
    Truncated,
}

/// The first broken link of a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("line {line}{}: {problem}", .seq.map(|s| format!(" (seq {s})")).unwrap_or_default())]
pub struct Break {
    /// 1-based line number.
    pub line: usize,
    /// The line's `seq`, when it could be read.
    pub seq: Option<u64>,
    pub problem: Problem,
}

/// What [`verify`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Records whose links hold, up to the first break.
    pub records: u64,
    /// The hash of the last of those.
    pub last_hash: Option<String>,
    pub first_break: Option<Break>,
}

impl VerifyReport {
    pub fn intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Parses one line (without its `\n`) and checks that its content hashes to its `hash`.
fn check_line(line: &[u8]) -> Result<Record, (Option<u64>, Problem)> {
    let bad = |reason: String| (None, Problem::BadJson { reason });
    let text = std::str::from_utf8(line).map_err(|e| bad(format!("not UTF-8 ({e})")))?;
    if text.trim().is_empty() {
        return Err(bad("empty line".into()));
    }
    let mut value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let record: Record = serde_json::from_value(value.clone()).map_err(|e| {
        let seq = value.get("seq").and_then(serde_json::Value::as_u64);
        (
            seq,
            Problem::BadJson {
                reason: e.to_string(),
            },
        )
    })?;
    let computed = hash_without_own(&mut value);
    if computed != record.hash {
        return Err((
            Some(record.seq),
            Problem::HashMismatch {
                stored: record.hash,
                computed,
            },
        ));
    }
    Ok(record)
}

/// Checks every link of the log at `path` and reports the first broken one.
///
/// Per line, in order: a complete line (ends with `\n`), a valid record, its hash, its `seq`
/// (one more than the previous), its `prev` (the previous record's hash). An empty file is an
/// intact chain of no records; a missing one is an error.
pub fn verify(path: &Path) -> Result<VerifyReport, AuditError> {
    let data = std::fs::read(path).map_err(|source| AuditError::Io {
        path: path.to_owned(),
        doing: "reading",
        source,
    })?;
    let mut report = VerifyReport {
        records: 0,
        last_hash: None,
        first_break: None,
    };
    if data.is_empty() {
        return Ok(report);
    }
    let terminated = data.ends_with(b"\n");
    let body = if terminated {
        &data[..data.len() - 1]
    } else {
        &data[..]
    };
    let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    let mut prev = GENESIS.to_owned();
    for (i, raw) in lines.iter().enumerate() {
        let line = i + 1;
        let broken = |seq, problem| Some(Break { line, seq, problem });
        if !terminated && line == lines.len() {
            let seq = check_line(raw).ok().map(|r| r.seq);
            report.first_break = broken(seq, Problem::Truncated);
            break;
        }
        let record = match check_line(raw) {
            Ok(r) => r,
            Err((seq, problem)) => {
                report.first_break = broken(seq, problem);
                break;
            }
        };
        let expected = report.records + 1;
        if record.seq != expected {
            report.first_break = broken(
                Some(record.seq),
                Problem::SequenceGap {
                    expected,
                    found: record.seq,
                },
            );
            break;
        }
        if record.prev != prev {
            report.first_break = broken(
                Some(record.seq),
                Problem::PrevMismatch {
                    expected: prev,
                    found: record.prev,
                },
            );
            break;
        }
        report.records += 1;
        prev = record.hash.clone();
        report.last_hash = Some(record.hash);
    }
    Ok(report)
}

/// The log, open for appending; holds its lock until dropped.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    /// `seq` of the last record, 0 for an empty log.
    seq: u64,
    /// `hash` of the last record, [`GENESIS`] for an empty log.
    last_hash: String,
    poisoned: bool,
}

impl AuditLog {
    /// Opens (creating it and its folder if needed) the log at `path` for appending, locks it,
    /// and reads its last record to continue the chain. Refuses a log whose last line is
    /// truncated or not a valid record; earlier lines are [`verify`]'s business.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let io = |doing| {
            move |source| AuditError::Io {
                path: path.to_owned(),
                doing,
                source,
            }
        };
        let dir = write::parent_of(path);
        let unsafe_err = |source| AuditError::Unsafe {
            path: path.to_owned(),
            source,
        };
        write::ensure_dir(dir, 0o750, "audit log folder").map_err(unsafe_err)?;
        let existed = std::fs::symlink_metadata(path).is_ok();
        // Never through a symlink, never anything but a regular file.
        let file = write::open_append(path, 0o640).map_err(unsafe_err)?;
        // SAFETY: flock on a descriptor `file` owns; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                AuditError::Locked {
                    path: path.to_owned(),
                }
            } else {
                io("locking")(e)
            });
        }
        if !existed {
            // Make the new directory entry durable too.
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io("syncing its folder"))?;
        }
        let reader = &file;
        let (seq, last_hash) = match last_line(reader).map_err(io("reading its last line"))? {
            Tail::Empty => (0, GENESIS.to_owned()),
            Tail::Unterminated => {
                return Err(AuditError::BadTail {
                    path: path.to_owned(),
                    problem: Problem::Truncated,
                });
            }
            Tail::Line(line) => match check_line(&line) {
                Ok(r) => (r.seq, r.hash),
                Err((_, problem)) => {
                    return Err(AuditError::BadTail {
                        path: path.to_owned(),
                        problem,
                    });
                }
            },
        };
        Ok(Self {
            path: path.to_owned(),
            file,
            seq,
            last_hash,
            poisoned: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `seq` of the last record (0 when there is none).
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// `hash` of the last record ([`GENESIS`] when there is none).
    pub fn last_hash(&self) -> &str {
        &self.last_hash
    }

    /// Appends `entry` as the next record and returns once it is on disk (written and
    /// `fsync`ed). After a failed write the log refuses further appends.
    pub fn append(&mut self, entry: PolicyApplied) -> Result<Record, AuditError> {
        if self.poisoned {
            return Err(AuditError::Poisoned {
                path: self.path.clone(),
            });
        }
        let mut record = Record {
            agent_version: Some(crate::build_info::LONG.to_owned()),
            seq: self.seq + 1,
            time: entry.time.to_rfc3339_opts(SecondsFormat::Millis, true),
            digest: entry.digest,
            config: entry.config.display().to_string(),
            sources: entry.sources,
            asn_table: entry.asn_table,
            country_table: entry.country_table,
            changes: entry.changes,
            designations: entry.designations,
            prev: self.last_hash.clone(),
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        let written = self
            .file
            .write_all(record.to_line().as_bytes())
            .map_err(|source| (source, "writing"))
            .and_then(|()| self.file.sync_all().map_err(|source| (source, "syncing")));
        if let Err((source, doing)) = written {
            self.poisoned = true;
            return Err(AuditError::Io {
                path: self.path.clone(),
                doing,
                source,
            });
        }
        self.seq = record.seq;
        self.last_hash = record.hash.clone();
        Ok(record)
    }
}

/// Records that the policy `new`, compiled from `config` and `resolved`, replaced `old` (an
/// empty snapshot for the first policy) and logs the record's `seq` and `hash`.
pub fn record_applied(
    log: &mut AuditLog,
    config: &Config,
    resolved: &Resolved,
    old: &TableSnapshot,
    old_listed: &[ListedStatus],
    new: &Compiled,
) -> Result<Record, AuditError> {
    let record = log.append(PolicyApplied::new(config, resolved, old, old_listed, new))?;
    for d in &record.designations {
        tracing::warn!(
            change = ?d.change,
            entity = %d.entity,
            list = %d.list,
            reference = %d.reference,
            since = d.since.as_deref().unwrap_or(""),
            detail = d.detail.as_deref().unwrap_or(""),
            seq = record.seq,
            "designation change recorded in the audit log"
        );
    }
    tracing::info!(
        log = %log.path().display(),
        seq = record.seq,
        hash = %record.hash,
        digest = %record.digest,
        "policy recorded in the audit log"
    );
    Ok(record)
}

enum Tail {
    Empty,
    /// The file does not end with `\n`.
    Unterminated,
    /// The last line, without its `\n`.
    Line(Vec<u8>),
}

/// Reads the file's last line from the end, a block at a time.
fn last_line(file: &File) -> std::io::Result<Tail> {
    const BLOCK: u64 = 8192;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(Tail::Empty);
    }
    let mut last = [0u8];
    file.read_exact_at(&mut last, len - 1)?;
    if last[0] != b'\n' {
        return Ok(Tail::Unterminated);
    }
    let end = len - 1;
    let mut start = end;
    while start > 0 {
        let from = start.saturating_sub(BLOCK);
        let mut block = vec![0u8; (start - from) as usize];
        file.read_exact_at(&mut block, from)?;
        if let Some(i) = block.iter().rposition(|&b| b == b'\n') {
            start = from + i as u64 + 1;
            break;
        }
        start = from;
    }
    let mut line = vec![0u8; (end - start) as usize];
    file.read_exact_at(&mut line, start)?;
    Ok(Tail::Line(line))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    /// A fresh folder under the temp dir; `tempfile` removes it on drop (also when the
    /// test panics).
    struct TempDir(PathBuf, #[allow(dead_code)] tempfile::TempDir);

    impl TempDir {
        fn new(name: &str) -> Self {
            let tmp = tempfile::Builder::new()
                .prefix(&format!("embargo-audit-{name}-"))
                .tempdir()
                .unwrap();
            Self(tmp.path().to_owned(), tmp)
        }
    }

    fn entry(n: u32) -> PolicyApplied {
        PolicyApplied {
            time: Utc.with_ymd_and_hms(2025, 12, 9, 10, 0, n).unwrap(),
            digest: format!("digest-{n}"),
            config: "/etc/embargo/embargo.toml".into(),
            sources: vec![Source {
                kind: SourceKind::Config,
                path: "/etc/embargo/embargo.toml".into(),
                sha256: sha256_hex(format!("config {n}").as_bytes()),
            }],
            asn_table: n.is_multiple_of(2).then(|| format!("asn.csv sha256:{n}")),
            country_table: (n == 3).then(|| format!("country.csv sha256:{n}")),
            changes: Changes {
                prefixes_added: u64::from(n),
                ..Changes::default()
            },
            designations: Vec::new(),
        }
    }

    /// A log of `n` records at `<dir>/audit.jsonl`.
    fn log_of(dir: &TempDir, n: u32) -> PathBuf {
        let path = dir.0.join("audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        for i in 1..=n {
            log.append(entry(i)).unwrap();
        }
        path
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(path, text).unwrap();
    }

    /// Parses, changes and re-hashes a line, as someone covering their tracks would.
    fn rewrite(line: &str, change: impl FnOnce(&mut Record)) -> String {
        let mut r: Record = serde_json::from_str(line).unwrap();
        change(&mut r);
        r.hash = r.compute_hash();
        r.to_line().trim_end().to_owned()
    }

    fn first_break(path: &Path) -> Break {
        let report = verify(path).unwrap();
        match report.first_break {
            Some(b) => b,
            None => panic!("expected a break, got {report:?}"),
        }
    }

    #[test]
    fn designation_changes_are_recorded_in_the_chain() {
        let dir = TempDir::new("designations");
        let path = dir.0.join("audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        log.append(entry(1)).unwrap();
        let mut e = entry(2);
        e.designations = vec![DesignationChange {
            change: ChangeKind::Delisted,
            entity: "i-soon".into(),
            list: "uk".into(),
            reference: "CYB0114".into(),
            since: Some("2026-06-20".into()),
            detail: None,
        }];
        let r = log.append(e).unwrap();
        drop(log);
        let l = lines(&path);
        // A record without changes has no `designations` member: it hashes as before lists.
        assert!(!l[0].contains("designations"), "{}", l[0]);
        assert!(
            l[1].contains(r#""designations":[{"change":"delisted","detail":null,"entity":"i-soon","list":"uk","reference":"CYB0114","since":"2026-06-20"}]"#),
            "{}",
            l[1]
        );
        assert_eq!(r.designations.len(), 1);
        let report = verify(&path).unwrap();
        assert!(report.intact(), "{report:?}");
        assert_eq!(report.records, 2);
        // Editing the change breaks the record's hash.
        write_lines(
            &path,
            &[l[0].clone(), l[1].replace("2026-06-20", "2026-06-21")],
        );
        let b = first_break(&path);
        assert_eq!(b.line, 2);
        assert!(matches!(b.problem, Problem::HashMismatch { .. }), "{b}");
    }

    #[test]
    fn a_list_update_is_a_metadata_change_and_a_first_policy_reports_delistings() {
        let listed = |on_list: bool, regime: &str| ListedStatus {
            entity: "i-soon".into(),
            list: "uk".into(),
            authority: "UK".into(),
            reference: "CYB0114".into(),
            on_list,
            delisted_on: (!on_list).then(|| chrono::NaiveDate::from_ymd_opt(2026, 6, 20).unwrap()),
            regime: on_list.then(|| regime.to_owned()),
            listed_on: None,
            names: vec!["i-Soon".into()],
        };
        let c = designation_changes(&[listed(true, "Cyber")], &[listed(true, "Cyber 2")]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].change, ChangeKind::MetadataChanged);
        assert!(c[0].detail.as_deref().unwrap().contains("Cyber 2"), "{c:?}");
        // The agent's first policy: nothing before, already off the list.
        let c = designation_changes(&[], &[listed(false, "")]);
        assert_eq!(c[0].change, ChangeKind::Delisted);
        assert_eq!(c[0].since.as_deref(), Some("2026-06-20"));
        assert!(designation_changes(&[], &[listed(true, "Cyber")]).is_empty());
        assert!(designation_changes(&[listed(false, "")], &[listed(false, "")]).is_empty());
    }

    #[test]
    fn appended_records_chain_and_verify() {
        let dir = TempDir::new("chain");
        let path = log_of(&dir, 5);
        let records: Vec<Record> = lines(&path)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 5);
        assert_eq!(records[0].prev, GENESIS);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.seq, i as u64 + 1);
            assert_eq!(r.hash, r.compute_hash());
            assert_eq!(r.hash.len(), 64);
            if i > 0 {
                assert_eq!(r.prev, records[i - 1].hash);
            }
        }
        assert_eq!(records[2].time, "2025-12-09T10:00:03.000Z");
        assert_eq!(records[1].asn_table.as_deref(), Some("asn.csv sha256:2"));
        assert_eq!(records[0].asn_table, None);
        let report = verify(&path).unwrap();
        assert!(report.intact(), "{report:?}");
        assert_eq!(report.records, 5);
        assert_eq!(report.last_hash.as_deref(), Some(records[4].hash.as_str()));
    }

    #[test]
    fn reopening_continues_the_chain() {
        let dir = TempDir::new("reopen");
        let path = log_of(&dir, 2);
        let last = lines(&path)[1].clone();
        let last: Record = serde_json::from_str(&last).unwrap();
        let mut log = AuditLog::open(&path).unwrap();
        assert_eq!((log.last_seq(), log.last_hash()), (2, last.hash.as_str()));
        let r = log.append(entry(3)).unwrap();
        assert_eq!((r.seq, r.prev.as_str()), (3, last.hash.as_str()));
        drop(log);
        let report = verify(&path).unwrap();
        assert_eq!((report.records, report.intact()), (3, true));
    }

    #[test]
    fn lines_are_canonical_and_the_hash_leaves_itself_out() {
        let dir = TempDir::new("canonical");
        let path = log_of(&dir, 1);
        let line = &lines(&path)[0];
        // Sorted members, no whitespace.
        assert!(
            line.starts_with(&format!(
                r#"{{"agent_version":"{}","asn_table":null,"changes":{{"entities_added":0,"#,
                crate::build_info::LONG
            )),
            "{line}"
        );
        // (The version string's own ", " is content, not whitespace between tokens.)
        let bare = line.replace(crate::build_info::LONG, "");
        assert!(!bare.contains(": ") && !bare.contains(", "), "{line}");
        let r: Record = serde_json::from_str(line).unwrap();
        let without = line.replace(&format!(r#""hash":"{}","#, r.hash), "");
        assert_eq!(r.hash, sha256_hex(without.as_bytes()));
        let v =
            serde_json::json!({"b": "\u{1}\"é\n", "a": [1, null, true], "A": {"z": 0, "y": -1}});
        assert_eq!(
            canonical(&v),
            r#"{"A":{"y":-1,"z":0},"a":[1,null,true],"b":"\u0001\"é\n"}"#
        );
    }

    #[test]
    fn an_edited_field_is_a_hash_mismatch_on_its_line() {
        let dir = TempDir::new("edit");
        let path = log_of(&dir, 5);
        let mut l = lines(&path);
        l[2] = l[2].replace("digest-3", "digest-X");
        write_lines(&path, &l);
        let b = first_break(&path);
        assert_eq!((b.line, b.seq), (3, Some(3)));
        assert!(matches!(b.problem, Problem::HashMismatch { .. }), "{b}");
        assert_eq!(verify(&path).unwrap().records, 2);
    }

    #[test]
    fn a_deleted_line_is_a_sequence_gap() {
        let dir = TempDir::new("delete");
        let path = log_of(&dir, 5);
        let mut l = lines(&path);
        l.remove(2);
        write_lines(&path, &l);
        let b = first_break(&path);
        assert_eq!(
            b,
            Break {
                line: 3,
                seq: Some(4),
                problem: Problem::SequenceGap {
                    expected: 3,
                    found: 4
                }
            }
        );
        // The first record removed: the chain must start at 1.
        let mut l = lines(&path);
        l.remove(0);
        write_lines(&path, &l);
        let b = first_break(&path);
        assert_eq!((b.line, b.seq), (1, Some(2)));
        assert!(matches!(
            b.problem,
            Problem::SequenceGap {
                expected: 1,
                found: 2
            }
        ));
    }

    #[test]
    fn reordered_lines_break_at_the_first_moved_one() {
        let dir = TempDir::new("reorder");
        let path = log_of(&dir, 5);
        let mut l = lines(&path);
        l.swap(1, 3);
        write_lines(&path, &l);
        let b = first_break(&path);
        assert_eq!((b.line, b.seq), (2, Some(4)));
        assert!(matches!(
            b.problem,
            Problem::SequenceGap {
                expected: 2,
                found: 4
            }
        ));
    }

    #[test]
    fn a_truncated_last_line_is_reported_and_refused_by_open() {
        let dir = TempDir::new("truncate");
        let path = log_of(&dir, 5);
        let data = std::fs::read(&path).unwrap();
        std::fs::write(&path, &data[..data.len() - 20]).unwrap();
        let report = verify(&path).unwrap();
        assert_eq!(report.records, 4);
        assert_eq!(
            report.first_break,
            Some(Break {
                line: 5,
                seq: None,
                problem: Problem::Truncated
            })
        );
        // Only the newline missing: still a write that did not finish.
        std::fs::write(&path, &data[..data.len() - 1]).unwrap();
        let b = first_break(&path);
        assert_eq!((b.line, b.seq, b.problem), (5, Some(5), Problem::Truncated));
        let e = AuditLog::open(&path).unwrap_err();
        assert!(
            matches!(
                e,
                AuditError::BadTail {
                    problem: Problem::Truncated,
                    ..
                }
            ),
            "{e}"
        );
        // Nothing was appended after the fragment.
        assert_eq!(std::fs::read(&path).unwrap(), &data[..data.len() - 1]);
    }

    #[test]
    fn a_changed_prev_is_caught_with_or_without_a_new_hash() {
        let dir = TempDir::new("prev");
        let path = log_of(&dir, 5);
        let orig = lines(&path);
        let other = "ab".repeat(32);
        // Changed in place: the hash no longer matches.
        let mut l = orig.clone();
        let r: Record = serde_json::from_str(&l[3]).unwrap();
        l[3] = l[3].replace(&r.prev, &other);
        write_lines(&path, &l);
        let b = first_break(&path);
        assert_eq!((b.line, b.seq), (4, Some(4)));
        assert!(matches!(b.problem, Problem::HashMismatch { .. }), "{b}");
        // Changed and re-hashed: the link to record 3 is broken.
        let mut l = orig.clone();
        l[3] = rewrite(&l[3], |r| r.prev = other.clone());
        write_lines(&path, &l);
        let b = first_break(&path);
        assert_eq!((b.line, b.seq), (4, Some(4)));
        let Problem::PrevMismatch { expected, found } = b.problem else {
            panic!("{b}")
        };
        let r3: Record = serde_json::from_str(&orig[2]).unwrap();
        assert_eq!((expected, found), (r3.hash, other));
    }

    #[test]
    fn a_rehashed_edit_breaks_the_next_link() {
        let dir = TempDir::new("rehash");
        let path = log_of(&dir, 5);
        let mut l = lines(&path);
        l[1] = rewrite(&l[1], |r| r.changes.prefixes_removed = 99);
        write_lines(&path, &l);
        let b = first_break(&path);
        assert_eq!((b.line, b.seq), (3, Some(3)));
        assert!(matches!(b.problem, Problem::PrevMismatch { .. }), "{b}");
    }

    #[test]
    fn bad_json_and_unknown_members_are_reported_and_only_the_first_break_counts() {
        let dir = TempDir::new("json");
        let path = log_of(&dir, 5);
        let orig = lines(&path);
        let mut l = orig.clone();
        l[1] = "{\"seq\": 2, not json".into();
        l[3] = l[3].replace("digest-4", "digest-Y");
        write_lines(&path, &l);
        let b = first_break(&path);
        assert_eq!((b.line, b.seq), (2, None));
        assert!(matches!(b.problem, Problem::BadJson { .. }), "{b}");
        // Valid JSON with an extra member is not a record.
        let mut l = orig.clone();
        l[1] = rewrite(&l[1], |_| {}).replacen('{', "{\"note\":\"x\",", 1);
        write_lines(&path, &l);
        let b = first_break(&path);
        assert_eq!((b.line, b.seq), (2, Some(2)));
        assert!(b.to_string().contains("unknown field `note`"), "{b}");
        // An empty line.
        let mut l = orig;
        l.insert(2, String::new());
        write_lines(&path, &l);
        let b = first_break(&path);
        assert_eq!(b.line, 3);
        assert!(b.to_string().contains("empty line"), "{b}");
    }

    #[test]
    fn empty_log_is_intact_and_missing_is_an_error() {
        let dir = TempDir::new("empty");
        let path = dir.0.join("audit.jsonl");
        assert!(matches!(verify(&path), Err(AuditError::Io { .. })));
        std::fs::write(&path, "").unwrap();
        let r = verify(&path).unwrap();
        assert_eq!((r.records, r.intact()), (0, true));
    }

    #[test]
    fn a_second_writer_is_refused() {
        let dir = TempDir::new("lock");
        let path = dir.0.join("sub/audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        assert!(matches!(
            AuditLog::open(&path),
            Err(AuditError::Locked { .. })
        ));
        drop(log);
        AuditLog::open(&path).unwrap();
    }

    /// Regression (issue 10): the log was opened for appending through a symlink at its path.
    #[test]
    fn a_symlink_at_the_log_path_is_refused_not_written_through() {
        let dir = TempDir::new("symlink");
        // An empty file (a log the agent would continue) elsewhere.
        let victim = dir.0.join("victim");
        std::fs::write(&victim, "").unwrap();
        let path = dir.0.join("audit.jsonl");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let e = AuditLog::open(&path)
            .and_then(|mut l| l.append(entry(1)))
            .unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "");
        // Dangling: nothing is created at its target either.
        let gone = dir.0.join("gone");
        let path = dir.0.join("audit2.jsonl");
        std::os::unix::fs::symlink(&gone, &path).unwrap();
        assert!(AuditLog::open(&path).is_err());
        assert!(!gone.exists());
    }

    /// Regression (issue 10): the log's folder was used whoever could write in it.
    #[test]
    fn a_folder_others_can_write_in_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = TempDir::new("open-folder");
        let sub = dir.0.join("logs");
        std::fs::create_dir(&sub).unwrap();
        for mode in [0o777, 0o775, 0o1777] {
            std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = AuditLog::open(&sub.join("audit.jsonl")).unwrap_err();
            assert!(
                e.to_string().contains("group or others can write"),
                "{mode:o}: {e}"
            );
            assert!(!sub.join("audit.jsonl").exists());
        }
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o750)).unwrap();
        AuditLog::open(&sub.join("audit.jsonl")).unwrap();
    }

    /// Needs root (chown); skipped otherwise.
    #[test]
    fn a_folder_owned_by_another_user_is_refused() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root to chown");
            return;
        }
        let dir = TempDir::new("foreign-folder");
        let sub = dir.0.join("logs");
        std::fs::create_dir(&sub).unwrap();
        std::os::unix::fs::chown(&sub, Some(65534), Some(65534)).unwrap();
        let e = AuditLog::open(&sub.join("audit.jsonl")).unwrap_err();
        assert!(e.to_string().contains("owned by uid 65534"), "{e}");
    }

    #[test]
    fn changes_count_the_plan() {
        let snap = |entities: &[(&str, &str, &str)], rules: &[(&str, &str)]| TableSnapshot {
            digest: String::new(),
            entities: entities
                .iter()
                .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
                .collect(),
            rules: rules
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        };
        let old = snap(
            &[("a", "drop", "both"), ("b", "drop", "both")],
            &[
                ("10.0.0.0/8", "a"),
                ("192.0.2.0/24", "b"),
                ("198.51.100.0/24", "a"),
            ],
        );
        let new = snap(
            &[("a", "monitor", "inbound"), ("c", "drop", "both")],
            &[
                ("10.0.0.0/8", "a"),
                ("192.0.2.0/24", "c"),
                ("2001:db8::/32", "c"),
                ("203.0.113.0/24", "c"),
            ],
        );
        assert_eq!(
            Changes::between(&old, &new),
            Changes {
                prefixes_added: 2,
                prefixes_removed: 1,
                prefixes_moved: 1,
                entities_added: 1,
                entities_removed: 1,
                // action and direction changed: one entity
                entities_changed: 1,
            }
        );
        let first = Changes::between(&TableSnapshot::default(), &new);
        assert_eq!((first.prefixes_added, first.entities_added), (4, 2));
    }

    #[test]
    fn entries_name_every_source_file_with_its_digest() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/full.toml");
        let config = crate::config::load(&path).unwrap();
        let resolved = crate::policy::resolve::resolve(&config).unwrap();
        let compiled = crate::policy::compile::compile(
            &crate::config::validate::validate(&config).unwrap(),
            &resolved,
            crate::today(),
        )
        .unwrap();
        let e = PolicyApplied::new(
            &config,
            &resolved,
            &TableSnapshot::default(),
            &[],
            &compiled,
        );
        assert_eq!(e.digest, compiled.digest());
        assert_eq!(e.config, path);
        let kinds: Vec<SourceKind> = e.sources.iter().map(|s| s.kind).collect();
        // The main file, the two included entity files, the sanctions list, the indicator file
        // and the cached copies of the two remote sources that have one.
        assert_eq!(
            kinds,
            [
                SourceKind::Config,
                SourceKind::Entities,
                SourceKind::Entities,
                SourceKind::List,
                SourceKind::Indicators,
                SourceKind::Indicators,
                SourceKind::Indicators
            ]
        );
        for s in &e.sources {
            assert_eq!(
                s.sha256,
                sha256_hex(&std::fs::read(&s.path).unwrap()),
                "{s:?}"
            );
        }
        assert!(e.sources[3].path.ends_with("UK_Sanctions_List.csv"));
        assert!(e.sources[4].path.ends_with("indicators.txt"));
        let asn = e.asn_table.unwrap();
        assert!(asn.contains("asn-table.csv sha256:"), "{asn}");
        // Each file of the country table, with its digest.
        let country = e.country_table.unwrap();
        for f in ["country-sample-ipv4.csv", "country-sample-ipv6.csv"] {
            let sha = sha256_hex(&std::fs::read(path.with_file_name(f)).unwrap());
            assert!(country.contains(&format!("{f} sha256:{sha}")), "{country}");
        }
        assert_eq!(e.changes.prefixes_added, compiled.rules.len() as u64);
        assert_eq!(e.changes.entities_added, compiled.entities.len() as u64);
    }

    /// Regression: the audit record named the digest of whatever the files held when the
    /// record was written (it read them again), not of what was resolved and enforced. A file
    /// changed between resolve and audit must not change the record.
    #[test]
    fn a_file_changed_after_resolve_is_recorded_as_it_was_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("embargo.toml");
        std::fs::create_dir(dir.path().join("entities")).unwrap();
        std::fs::write(&main, "enforce = [\"UK\"]\ninclude = [\"entities\"]\n").unwrap();
        std::fs::write(
            dir.path().join("entities/a.toml"),
            r#"id = "a"
name = "A Ltd"
action = "drop"

[[designations]]
authority = "UK"
regime = "Cyber"
reference = "CYB0000"
listed_on = 2025-12-09
source = "https://example.org/a"

[[networks]]
files = ["iocs.txt"]
guard_override = "documentation ranges in a test"
[networks.evidence]
kind = "advisory"
source = "https://example.org/ioc"
retrieved = 2026-11-01
confidence = "medium"
"#,
        )
        .unwrap();
        let iocs = dir.path().join("entities/iocs.txt");
        let enforced = "192.0.2.0/24\n";
        std::fs::write(&iocs, enforced).unwrap();
        let config = crate::config::load(&main).unwrap();
        let resolved = crate::policy::resolve::resolve(&config).unwrap();
        let compiled = crate::policy::compile::compile(
            &crate::config::validate::validate(&config).unwrap(),
            &resolved,
            crate::today(),
        )
        .unwrap();
        // The file changes after it was read and compiled, before the record is written.
        std::fs::write(&iocs, "198.51.100.0/24\n").unwrap();
        let e = PolicyApplied::new(
            &config,
            &resolved,
            &TableSnapshot::default(),
            &[],
            &compiled,
        );
        let shown = iocs.display().to_string();
        let source = e
            .sources
            .iter()
            .find(|s| s.path == shown)
            .unwrap_or_else(|| panic!("{shown} in {:?}", e.sources));
        assert_eq!(source.kind, SourceKind::Indicators);
        assert_eq!(source.sha256, sha256_hex(enforced.as_bytes()));
        // Removed altogether, it is still recorded as enforced.
        std::fs::remove_file(&iocs).unwrap();
        assert_eq!(sources(&resolved), e.sources);
    }
}
