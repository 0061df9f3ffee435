//! The running agent's status: what `embargo status` prints, served over the control socket.

use std::{
    io::Write as _,
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use embargo_abi::Stat;
use serde::{Deserialize, Serialize};

use crate::run::control::Request;

/// Where the agent listens for `embargo status` by default. Only root can reach it.
pub const DEFAULT_SOCKET: &str = "/run/embargo/control.sock";

/// A snapshot of the agent.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Status {
    pub pid: u32,
    /// The running agent's build: version, git commit and build date
    /// ([`crate::build_info::LONG`]); empty from an agent older than this field.
    #[serde(default)]
    pub version: String,
    pub config: PathBuf,
    pub interfaces: Vec<InterfaceStatus>,
    pub entities: Vec<EntityStatus>,
    /// Parse and classification outcomes, by stable label.
    pub outcomes: Vec<(String, u64)>,
    /// Every packet the program saw (the sum of terminal outcomes).
    pub packets_seen: u64,
    pub prefixes_v4: usize,
    pub prefixes_v6: usize,
    pub map_bytes: u64,
    /// Digest of the loaded table ([`crate::policy::compile::Compiled::digest`]).
    pub digest: String,
    pub reloads: ReloadStatus,
    /// Entries the last attestation found changed behind the agent's back (and repaired).
    pub drift_entries: u64,
    /// Remote sources and their freshness.
    #[serde(default)]
    pub sources: Vec<crate::inputs::sources::SourceState>,
    /// Designations no longer in the list they follow ([`crate::policy::compile::Report::delisted_by_list`]).
    #[serde(default)]
    pub delisted_by_list: Vec<String>,
    /// How this agent started: by adopting the maps a previous agent pinned, or fresh.
    #[serde(default)]
    pub start: Option<StartStatus>,
    /// The next scheduled change of the policy in force: when a date in the configuration
    /// takes effect and the agent reloads on its own ([`crate::policy::compile::NextChange`];
    /// `null` when no date is ahead or from an agent older than this field).
    #[serde(default)]
    pub next_change: Option<crate::policy::compile::NextChange>,
}

/// How the agent started its data plane.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StartStatus {
    /// `adopted` (the pinned maps of a previous agent, updated by diff) or `fresh` (a new
    /// data-plane generation; any pinned links were taken over atomically).
    pub kind: StartKind,
    /// Why the pinned maps were not reused (`fresh`), or what was adopted.
    pub reason: String,
    /// The data-plane generation in use at start.
    pub generation: String,
    /// Adopted: prefixes that differed from the pinned maps' (0 when the policy is the same).
    pub prefixes_changed: u64,
    /// Adopted: trie entries the diff wrote.
    pub entries_written: u64,
    /// Adopted: policy-map entries the diff wrote.
    pub policies_written: u64,
    /// Where links and maps are pinned, and whether the pins outlive the agent; `None` with
    /// `--no-pin`.
    #[serde(default)]
    pub pins: Option<crate::dataplane::bpffs::PinFs>,
}

/// How the agent started its data plane; serialized as `adopted` or `fresh`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StartKind {
    /// The maps a previous agent pinned, with the policy applied as a diff.
    Adopted,
    /// A new data-plane generation.
    #[default]
    Fresh,
}

impl StartKind {
    /// The label status, logs and tests use.
    pub const fn as_str(self) -> &'static str {
        match self {
            StartKind::Adopted => "adopted",
            StartKind::Fresh => "fresh",
        }
    }
}

/// How a policy was applied; serialized as `initial`, `in_place` or `new_generation`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReloadKind {
    /// The policy the agent started with.
    #[default]
    Initial,
    /// Written into the running data plane's maps.
    InPlace,
    /// Loaded as a new data-plane generation that took over every interface.
    NewGeneration,
}

impl ReloadKind {
    /// The label status, logs and tests use.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReloadKind::Initial => "initial",
            ReloadKind::InPlace => "in_place",
            ReloadKind::NewGeneration => "new_generation",
        }
    }
}

/// Labels print and compare as the strings they serialize to.
macro_rules! label {
    ($t:ty) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}
label!(StartKind);
label!(ReloadKind);

/// Reload history since the agent started.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Policies applied, the initial load included.
    pub succeeded: u64,
    /// Reloads refused (bad configuration, guard, data-plane error); the policy stayed.
    pub failed: u64,
    pub last_success_unix: i64,
    /// `initial`, `in_place` or `new_generation`.
    pub last_kind: ReloadKind,
    pub last_error: Option<String>,
    /// Data-plane generations loaded after the first.
    pub generations: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct InterfaceStatus {
    pub name: String,
    pub ifindex: u32,
    pub role: String,
    pub mode: String,
    /// Host egress is enforced too (the TC egress classifier is attached).
    #[serde(default)]
    pub egress: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntityStatus {
    pub id: String,
    pub name: String,
    pub action: String,
    pub direction: String,
    pub prefixes_v4: usize,
    pub prefixes_v6: usize,
    pub counters: Vec<CounterRow>,
    /// Its designations as they count ([`designation_lines`]), delisted ones marked.
    #[serde(default)]
    pub designations: Vec<String>,
    /// Its evidence groups with their counters (which sum to `counters`), in group index
    /// order.
    #[serde(default)]
    pub groups: Vec<GroupStatus>,
}

/// One evidence group of an entity (a network group of its configuration) and what the data
/// plane counted against it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupStatus {
    /// The data-plane group index (what events carry as `group`).
    pub index: u32,
    /// Its `name`, else its evidence's source: the `evidence` label of the packet metrics.
    pub evidence: String,
    /// Its evidence's source (URL or document).
    pub source: String,
    pub counters: Vec<CounterRow>,
}

/// The four counter rows (direction x verdict) of `c`.
pub fn counter_rows(c: &crate::dataplane::EntityCounters) -> Vec<CounterRow> {
    embargo_abi::Direction::ALL
        .iter()
        .flat_map(|d| embargo_abi::Verdict::ALL.iter().map(move |v| (*d, *v)))
        .map(|(d, v)| {
            let n = c.get(d, v);
            CounterRow {
                direction: d.label().into(),
                verdict: v.label().into(),
                packets: n.packets,
                bytes: n.bytes,
            }
        })
        .collect()
}

/// An enforced entity's designations for people: the current ones (with the list's regime and
/// date when they follow a list), then those that ended, marked `DELISTED`.
pub fn designation_lines(e: &crate::policy::compile::CompiledEntity) -> Vec<String> {
    let line = |d: &crate::config::Designation| {
        format!(
            "{} {} · {} · listed {}{}",
            d.authority,
            d.reference,
            d.regime,
            d.listed_on,
            d.list
                .as_ref()
                .map_or_else(String::new, |l| format!(" · list `{}`", l.get_ref()))
        )
    };
    e.designations
        .iter()
        .map(line)
        .chain(e.delisted.iter().map(|d| {
            format!(
                "DELISTED {} (from {})",
                line(d),
                d.delisted_on.map_or_else(String::new, |x| x.to_string())
            )
        }))
        .collect()
}

/// One counter: direction x verdict.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CounterRow {
    pub direction: String,
    pub verdict: String,
    pub packets: u64,
    pub bytes: u64,
}

impl EntityStatus {
    /// Packets with `verdict` in any direction.
    pub fn packets(&self, verdict: &str) -> u64 {
        self.counters
            .iter()
            .filter(|c| c.verdict == verdict)
            .map(|c| c.packets)
            .sum()
    }
}

/// Builds outcome rows and the packets-seen total from raw stats and the packets counted
/// against entities (every packet ends in one terminal stat or one entity counter).
pub fn outcomes(stats: &[u64], counted: u64) -> (Vec<(String, u64)>, u64) {
    let rows = Stat::ALL
        .iter()
        .zip(stats)
        .map(|((_, label), n)| ((*label).to_owned(), *n))
        .collect();
    let seen = stats.iter().take(Stat::TERMINAL as usize).sum::<u64>() + counted;
    (rows, seen)
}

/// Errors from `embargo status`.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(
        "cannot reach the agent at {path}: {source}; is `embargo run` running (and are you root)?"
    )]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the agent at {path} sent an unreadable answer: {message}")]
    Protocol { path: PathBuf, message: String },
    /// The agent answered with an error of its own (`{"error": "..."}`).
    #[error("the agent at {path} answered: {message}")]
    Agent { path: PathBuf, message: String },
}

/// Largest answer read from the agent (a table of millions of prefixes fits).
pub const MAX_ANSWER_BYTES: u64 = 1 << 30;
/// The whole answer arrives within this long (the agent gives a reader 60 s).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(90);

/// Reads an answer of at most `max` bytes, the whole of it within `deadline`.
fn read_answer(
    stream: &mut (impl std::io::Read + SetReadTimeout),
    max: u64,
    deadline: Duration,
) -> std::io::Result<Vec<u8>> {
    let started = std::time::Instant::now();
    let mut body = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = deadline
            .checked_sub(started.elapsed())
            .filter(|d| !d.is_zero());
        let Some(left) = left else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no complete answer within {}",
                    humantime::format_duration(deadline)
                ),
            ));
        };
        stream.set_timeout(left)?;
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            // A read timeout (EAGAIN) or a signal: the loop checks the deadline.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(body);
        }
        if body.len() as u64 + n as u64 > max {
            return Err(std::io::Error::other(format!(
                "the answer is over {max} bytes"
            )));
        }
        body.extend_from_slice(&buf[..n]);
    }
}

/// A stream whose read timeout can be set (a trait so tests can use a socket pair).
trait SetReadTimeout {
    fn set_timeout(&self, t: Duration) -> std::io::Result<()>;
}

impl SetReadTimeout for UnixStream {
    fn set_timeout(&self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))
    }
}

/// Parses the agent's answer: `T`, or the agent's own error (`{"error": "..."}`).
fn parse_answer<T: serde::de::DeserializeOwned>(
    socket: &Path,
    body: &[u8],
) -> Result<T, StatusError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct AgentError {
        error: String,
    }
    if let Ok(e) = serde_json::from_slice::<AgentError>(body) {
        return Err(StatusError::Agent {
            path: socket.to_owned(),
            message: e.error,
        });
    }
    serde_json::from_slice(body).map_err(|e| StatusError::Protocol {
        path: socket.to_owned(),
        message: e.to_string(),
    })
}

/// Sends `request` to the agent at `socket` and parses its JSON answer.
fn request<T: serde::de::DeserializeOwned>(
    socket: &Path,
    request: Request,
) -> Result<T, StatusError> {
    let connect = |source| StatusError::Connect {
        path: socket.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(connect)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .map_err(connect)?;
    stream
        .write_all(request.line().as_bytes())
        .map_err(connect)?;
    let body = read_answer(&mut stream, MAX_ANSWER_BYTES, ANSWER_TIMEOUT).map_err(connect)?;
    parse_answer(socket, &body)
}

/// One entity's counter (a direction and verdict) between two samples of [`Status`], for
/// `embargo status --watch`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Rate {
    pub entity: String,
    pub direction: String,
    pub verdict: String,
    /// Totals at the later sample.
    pub packets: u64,
    pub bytes: u64,
    /// Per second since the earlier sample (0 on the first, and where a counter went back,
    /// as after the agent restarted fresh).
    pub packets_per_s: f64,
    pub bytes_per_s: f64,
}

/// The per-entity rates from `prev` to `cur`, `secs` apart, busiest first (then by entity,
/// direction and verdict). Entities without counters are left out.
pub fn rates(prev: Option<&Status>, cur: &Status, secs: f64) -> Vec<Rate> {
    let before = |e: &str, c: &CounterRow| {
        prev.and_then(|p| p.entities.iter().find(|x| x.id == e))
            .and_then(|x| {
                x.counters
                    .iter()
                    .find(|o| o.direction == c.direction && o.verdict == c.verdict)
            })
            .map(|o| (o.packets, o.bytes))
    };
    let per_s = |now: u64, then: Option<u64>| match then {
        Some(then) if now >= then && secs > 0.0 => (now - then) as f64 / secs,
        _ => 0.0,
    };
    let mut out: Vec<Rate> = cur
        .entities
        .iter()
        .flat_map(|e| {
            e.counters.iter().map(move |c| {
                let then = before(&e.id, c);
                Rate {
                    entity: e.id.clone(),
                    direction: c.direction.clone(),
                    verdict: c.verdict.clone(),
                    packets: c.packets,
                    bytes: c.bytes,
                    packets_per_s: per_s(c.packets, then.map(|t| t.0)),
                    bytes_per_s: per_s(c.bytes, then.map(|t| t.1)),
                }
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.packets_per_s
            .total_cmp(&a.packets_per_s)
            .then_with(|| a.entity.cmp(&b.entity))
            .then_with(|| a.direction.cmp(&b.direction))
            .then_with(|| a.verdict.cmp(&b.verdict))
    });
    out
}

/// The `status --watch` table of `rates`.
pub fn render_rates(rates: &[Rate]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:<9} {:<10} {:>12} {:>14} {:>14} {:>16}",
        "ENTITY", "DIRECTION", "VERDICT", "PACKETS/S", "BYTES/S", "PACKETS", "BYTES"
    );
    for r in rates {
        let _ = writeln!(
            out,
            "{:<24} {:<9} {:<10} {:>12.1} {:>14.1} {:>14} {:>16}",
            r.entity, r.direction, r.verdict, r.packets_per_s, r.bytes_per_s, r.packets, r.bytes
        );
    }
    if rates.is_empty() {
        let _ = writeln!(out, "(no entity has counted a packet yet)");
    }
    out
}

/// Asks the agent at `socket` for its status.
pub fn query(socket: &Path) -> Result<Status, StatusError> {
    request(socket, Request::Status)
}

/// Asks the agent at `socket` to attest its kernel maps now (and repair any drift).
pub fn query_verify(socket: &Path) -> Result<crate::dataplane::Drift, StatusError> {
    request(socket, Request::Verify)
}

/// Asks the agent at `socket` for the table it has loaded.
pub fn query_table(socket: &Path) -> Result<crate::policy::plan::TableSnapshot, StatusError> {
    request(socket, Request::Table)
}

/// Renders a status for people.
pub fn render(s: &Status) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "embargo agent pid {} · config {} · {} IPv4 + {} IPv6 prefixes · {:.1} MiB of maps",
        s.pid,
        s.config.display(),
        s.prefixes_v4,
        s.prefixes_v6,
        s.map_bytes as f64 / (1024.0 * 1024.0)
    );
    if !s.version.is_empty() {
        let _ = writeln!(out, "version {}", s.version);
    }
    let r = &s.reloads;
    let _ = writeln!(
        out,
        "policy {} · {} applied ({} failed, last: {}) · attestation drift {}",
        s.digest.get(..16).unwrap_or(&s.digest),
        r.succeeded,
        r.failed,
        r.last_kind,
        s.drift_entries
    );
    if let Some(e) = &r.last_error {
        let _ = writeln!(out, "last reload error: {e}");
    }
    let _ = match &s.next_change {
        Some(n) => writeln!(
            out,
            "next change: {} ({}): reloads then",
            n.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            n.what
        ),
        None => writeln!(
            out,
            "next change: none scheduled (no date in the policy ahead)"
        ),
    };
    if let Some(st) = &s.start {
        let _ = match st.kind {
            StartKind::Adopted => writeln!(
                out,
                "start: adopted the pinned maps of generation {} by diff ({} prefixes changed, {} trie entries and {} policies written)",
                st.generation, st.prefixes_changed, st.entries_written, st.policies_written
            ),
            StartKind::Fresh => writeln!(
                out,
                "start: fresh generation {} ({})",
                st.generation, st.reason
            ),
        };
        let _ = match &st.pins {
            Some(p) => writeln!(out, "pins: {}", p.describe()),
            None => writeln!(
                out,
                "pins: none (--no-pin): enforcement ends when the agent exits"
            ),
        };
    }
    for src in &s.sources {
        let _ = writeln!(
            out,
            "source {}: {} entries, last success {}, {} fetch errors{}",
            src.name,
            src.entries,
            src.last_success
                .map_or("never".to_owned(), |t| t.to_rfc3339()),
            src.fetch_errors_total,
            src.last_error
                .as_ref()
                .map_or(String::new(), |e| format!(" (last: {e})"))
        );
        for (t, n) in &src.skipped.by_type {
            let _ = writeln!(out, "  skipped {n} rows of type `{t}`");
        }
        let bad = src.skipped.bad_lines();
        if bad > 0 {
            let _ = writeln!(out, "  skipped {bad} bad lines (on_bad_line = \"skip\"):");
            for l in &src.skipped.lines {
                let _ = writeln!(
                    out,
                    "    {} line {}: {} ({})",
                    src.url,
                    l.line,
                    l.message,
                    l.reason.label()
                );
            }
            if bad > src.skipped.lines.len() {
                let _ = writeln!(out, "    ... and {} more", bad - src.skipped.lines.len());
            }
        }
    }
    let _ = writeln!(out, "\nINTERFACE        IFINDEX  ROLE     MODE     EGRESS");
    for i in &s.interfaces {
        let _ = writeln!(
            out,
            "{:<16} {:>7}  {:<8} {:<8} {}",
            i.name,
            i.ifindex,
            i.role,
            i.mode,
            if i.egress { "on" } else { "off" }
        );
    }
    let _ = writeln!(
        out,
        "\nENTITY                  ACTION   DIRECTION  OUT-DROP  OUT-MON  IN-DROP  IN-MON     BYTES"
    );
    for e in &s.entities {
        let row = |counters: &[CounterRow]| {
            let get = |d: &str, v: &str| {
                counters
                    .iter()
                    .find(|c| c.direction == d && c.verdict == v)
                    .map_or(0, |c| c.packets)
            };
            let bytes: u64 = counters.iter().map(|c| c.bytes).sum();
            format!(
                "{:>8} {:>8} {:>8} {:>7} {:>9}",
                get("outbound", "dropped"),
                get("outbound", "monitored"),
                get("inbound", "dropped"),
                get("inbound", "monitored"),
                bytes
            )
        };
        let _ = writeln!(
            out,
            "{:<23} {:<8} {:<10} {}",
            e.id,
            e.action,
            e.direction,
            row(&e.counters)
        );
        // Its evidence groups under it (the groups' counters sum to the entity's).
        for g in &e.groups {
            let _ = writeln!(
                out,
                "  {:<42} {}  (group {})",
                format!("evidence {}", g.evidence),
                row(&g.counters),
                g.index
            );
        }
    }
    if s.entities.iter().any(|e| !e.designations.is_empty()) {
        let _ = writeln!(out, "\nDESIGNATIONS");
        for e in &s.entities {
            for d in &e.designations {
                let _ = writeln!(out, "{:<23} {d}", e.id);
            }
        }
    }
    if !s.delisted_by_list.is_empty() {
        let _ = writeln!(out, "\ndelisted: designations no longer in their list");
        for d in &s.delisted_by_list {
            let _ = writeln!(out, "  {d}");
        }
    }
    let _ = writeln!(out, "\npackets seen: {}", s.packets_seen);
    for (label, n) in &s.outcomes {
        if *n > 0 {
            let _ = writeln!(out, "  {label:<20} {n}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The agent's own error is shown, not a complaint about the fields a status needs.
    #[test]
    fn the_agents_error_answer_is_shown_as_such() {
        let socket = Path::new("/run/embargo/control.sock");
        let e = parse_answer::<Status>(socket, br#"{"error":"reading the counters: EPERM"}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "the agent at /run/embargo/control.sock answered: reading the counters: EPERM"
        );
        let e = parse_answer::<Status>(socket, b"{\"pid\": \"x\"").unwrap_err();
        assert!(matches!(e, StatusError::Protocol { .. }), "{e}");
    }

    fn with_counters(rows: &[(&str, &str, &str, u64, u64)]) -> Status {
        let mut s: Status = serde_json::from_str(
            r#"{"pid":1,"config":"c","interfaces":[],"entities":[],"outcomes":[],"packets_seen":0,
                "prefixes_v4":0,"prefixes_v6":0,"map_bytes":0,"digest":"d",
                "reloads":{"succeeded":1,"failed":0,"last_success_unix":0,"last_kind":"initial",
                "last_error":null,"generations":0},"drift_entries":0}"#,
        )
        .unwrap();
        for (id, direction, verdict, packets, bytes) in rows {
            let e = match s.entities.iter_mut().find(|e| e.id == *id) {
                Some(e) => e,
                None => {
                    s.entities.push(EntityStatus {
                        id: (*id).to_owned(),
                        name: String::new(),
                        action: "drop".into(),
                        direction: "both".into(),
                        prefixes_v4: 1,
                        prefixes_v6: 0,
                        counters: Vec::new(),
                        designations: Vec::new(),
                        groups: Vec::new(),
                    });
                    s.entities.last_mut().unwrap()
                }
            };
            e.counters.push(CounterRow {
                direction: (*direction).into(),
                verdict: (*verdict).into(),
                packets: *packets,
                bytes: *bytes,
            });
        }
        s
    }

    #[test]
    fn rates_are_differences_per_second_busiest_first() {
        let a = with_counters(&[
            ("acme", "outbound", "dropped", 100, 10_000),
            ("zeta", "inbound", "monitored", 5, 500),
        ]);
        let b = with_counters(&[
            ("acme", "outbound", "dropped", 120, 12_000),
            ("zeta", "inbound", "monitored", 65, 6_500),
            ("new", "outbound", "dropped", 7, 700),
        ]);
        let r = rates(Some(&a), &b, 2.0);
        let got: Vec<(&str, f64, f64, u64)> = r
            .iter()
            .map(|r| (r.entity.as_str(), r.packets_per_s, r.bytes_per_s, r.packets))
            .collect();
        // A counter first seen in the later sample has no rate yet.
        assert_eq!(
            got,
            [
                ("zeta", 30.0, 3000.0, 65),
                ("acme", 10.0, 1000.0, 120),
                ("new", 0.0, 0.0, 7)
            ]
        );
        // The first sample, and a counter that went back (a fresh restart): 0 per second.
        assert!(rates(None, &b, 1.0).iter().all(|r| r.packets_per_s == 0.0));
        assert!(
            rates(Some(&b), &a, 1.0)
                .iter()
                .all(|r| r.packets_per_s == 0.0)
        );
        let table = render_rates(&r);
        assert!(
            table.lines().nth(1).unwrap().starts_with("zeta "),
            "{table}"
        );
        assert!(render_rates(&[]).contains("no entity has counted"));
    }

    /// Through the socket: an agent answering with its error (a server end of a pair).
    #[test]
    fn query_shows_the_agents_error() {
        let dir = tempfile::Builder::new()
            .prefix("embargo-status-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("control.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let agent = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut line = [0u8; 7];
            std::io::Read::read_exact(&mut s, &mut line).unwrap();
            s.write_all(br#"{"error":"unknown request `nope`"}"#)
                .unwrap();
        });
        let e = query(&path).unwrap_err().to_string();
        agent.join().unwrap();
        assert!(e.ends_with("answered: unknown request `nope`"), "{e}");
        assert!(!e.contains("missing field"), "{e}");
    }

    /// An answer over the cap, or one that never ends, is an error, not a hang or a heap.
    #[test]
    fn answers_are_read_with_a_cap_and_a_deadline() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = b.write_all(&[b'x'; 300_000]);
            std::thread::sleep(Duration::from_millis(1500));
        });
        let e = read_answer(&mut a, 100_000, Duration::from_secs(5)).unwrap_err();
        assert!(e.to_string().contains("over 100000 bytes"), "{e}");
        drop(a);
        writer.join().unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        let started = std::time::Instant::now();
        let e = read_answer(&mut a, 100_000, Duration::from_millis(300)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(b);
    }

    #[test]
    fn designations_show_current_and_delisted_with_their_list() {
        let fixture = |n: &str| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/lists")
                .join(n)
                .display()
                .to_string()
        };
        let text = format!(
            r#"enforce = ["UK", "US"]
[[lists]]
name = "uk"
format = "uk-csv"
path = "{}"
[[entities]]
id = "i-soon"
name = "i-Soon"
action = "drop"
[[entities.designations]]
authority = "UK"
regime = "cyber"
reference = "CYB0114"
listed_on = 2025-12-09
source = "s"
list = "uk"
[[entities.designations]]
authority = "US"
regime = "CYBER2"
reference = "sample"
listed_on = 2025-01-03
source = "s"
[[entities.networks]]
prefixes = ["192.0.2.1"]
guard_override = "documentation range in a test"
[entities.networks.evidence]
kind = "manual"
source = "t"
retrieved = 2026-01-01
confidence = "low"
"#,
            fixture("UK_Sanctions_List.delisted.csv")
        );
        let c = crate::config::parse(Path::new("t.toml"), text).unwrap();
        let r = crate::policy::resolve::resolve(&c).unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2026, 7, 1).unwrap();
        let compiled = crate::policy::compile::compile(
            &crate::config::validate::validate(&c).unwrap(),
            &r,
            day,
        )
        .unwrap();
        let lines = designation_lines(&compiled.entities[0]);
        assert_eq!(
            lines,
            [
                "US sample · CYBER2 · listed 2025-01-03",
                "DELISTED UK CYB0114 · cyber · listed 2025-12-09 · list `uk` (from 2026-06-20)"
            ]
        );
        let status = Status {
            pid: 1,
            version: "0.1.0 (commit 0123456789ab, built 2026-12-03)".into(),
            config: "t.toml".into(),
            interfaces: Vec::new(),
            entities: vec![EntityStatus {
                id: "i-soon".into(),
                name: "i-Soon".into(),
                action: "drop".into(),
                direction: "both".into(),
                prefixes_v4: 1,
                prefixes_v6: 0,
                counters: Vec::new(),
                designations: lines,
                groups: Vec::new(),
            }],
            outcomes: Vec::new(),
            packets_seen: 0,
            prefixes_v4: 1,
            prefixes_v6: 0,
            map_bytes: 0,
            digest: String::new(),
            reloads: ReloadStatus::default(),
            drift_entries: 0,
            sources: vec![skipping_source()],
            delisted_by_list: compiled
                .report
                .messages(crate::policy::compile::FindingKind::DelistedByList),
            start: None,
            next_change: Some(crate::policy::compile::NextChange {
                at: chrono::DateTime::parse_from_rfc3339("2026-07-02T10:00:05Z")
                    .unwrap()
                    .into(),
                what: "entity `i-soon` group 1: evidence expires 2026-07-02T10:00:05Z".into(),
            }),
        };
        assert_eq!(compiled.next_change, None, "no date ahead on 2026-07-01");
        // The next change is an addition to the JSON: it reads back, and a status without it
        // (an older agent's) reads as none.
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["next_change"]["at"], "2026-07-02T10:00:05Z");
        assert_eq!(
            serde_json::from_value::<Status>(json.clone()).unwrap(),
            status
        );
        let mut older = json;
        older.as_object_mut().unwrap().remove("next_change");
        assert_eq!(
            serde_json::from_value::<Status>(older).unwrap().next_change,
            None
        );
        let text = render(&status);
        assert!(
            text.contains("next change: 2026-07-02T10:00:05Z (entity `i-soon` group 1: evidence expires 2026-07-02T10:00:05Z): reloads then"),
            "{text}"
        );
        assert!(
            text.lines()
                .nth(1)
                .is_some_and(|l| l == "version 0.1.0 (commit 0123456789ab, built 2026-12-03)"),
            "{text}"
        );
        assert!(
            text.contains("i-soon                  DELISTED UK CYB0114"),
            "{text}"
        );
        assert!(
            text.contains("delisted: designations no longer in their list"),
            "{text}"
        );
        // A source's skipped lines: by type, then each bad line with the URL and line.
        assert!(
            text.contains("  skipped 19 rows of type `domain`\n"),
            "{text}"
        );
        assert!(
            text.contains("  skipped 2 bad lines (on_bad_line = \"skip\"):\n    https://feeds.example.org/edl.txt line 6: `198.51.100.300` is not an IP address (invalid_value)\n    ... and 1 more\n"),
            "{text}"
        );
    }

    fn skipping_source() -> crate::inputs::sources::SourceState {
        use crate::inputs::sources::parse::{SkipReason, SkippedLine};
        let mut s =
            crate::inputs::sources::SourceState::new("edl", "https://feeds.example.org/edl.txt");
        s.entries = 4;
        s.sha256 = Some("ab".into());
        s.skipped.by_reason.insert(SkipReason::InvalidValue, 2);
        s.skipped.by_reason.insert(SkipReason::OtherType, 19);
        s.skipped.by_type.insert("domain".into(), 19);
        s.skipped.lines.push(SkippedLine {
            line: 6,
            reason: SkipReason::InvalidValue,
            message: "`198.51.100.300` is not an IP address".into(),
        });
        s
    }

    /// The status JSON keeps a source's fields and adds `skipped`; a status without it (an
    /// older agent's) still reads.
    #[test]
    fn a_sources_skipped_lines_are_an_added_json_field() {
        let s = skipping_source();
        let v = serde_json::to_value(&s).unwrap();
        for field in [
            "name",
            "url",
            "last_success",
            "last_attempt",
            "consecutive_failures",
            "fetch_errors_total",
            "last_error",
            "entries",
            "sha256",
        ] {
            assert!(v.get(field).is_some(), "{field}: {v}");
        }
        assert_eq!(v["skipped"]["by_reason"]["invalid_value"], 2);
        assert_eq!(v["skipped"]["by_type"]["domain"], 19);
        assert_eq!(v["skipped"]["lines"][0]["line"], 6);
        let mut old = v.clone();
        old.as_object_mut().unwrap().remove("skipped");
        let back: crate::inputs::sources::SourceState = serde_json::from_value(old).unwrap();
        assert!(back.skipped.is_empty());
        assert_eq!(
            serde_json::from_value::<crate::inputs::sources::SourceState>(v).unwrap(),
            s
        );
    }

    /// The kinds are enums in the code and the same strings as before on the wire, in the text
    /// and in comparisons (`restart.rs` and `netns.rs` compare them with string literals).
    #[test]
    fn start_and_reload_kinds_keep_their_strings() {
        for (kind, text) in [(StartKind::Adopted, "adopted"), (StartKind::Fresh, "fresh")] {
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{text}\""));
            assert_eq!(
                serde_json::from_str::<StartKind>(&format!("\"{text}\"")).unwrap(),
                kind
            );
            assert_eq!(kind.to_string(), text);
            assert_eq!(kind, text);
        }
        for (kind, text) in [
            (ReloadKind::Initial, "initial"),
            (ReloadKind::InPlace, "in_place"),
            (ReloadKind::NewGeneration, "new_generation"),
        ] {
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{text}\""));
            assert_eq!(
                serde_json::from_str::<ReloadKind>(&format!("\"{text}\"")).unwrap(),
                kind
            );
            assert_eq!(kind.to_string(), text);
            assert_eq!(kind, text);
        }
    }
}
