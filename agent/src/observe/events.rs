//! Drop and monitor events: from the data plane's ring buffer to JSON lines.
//!
//! For each dropped or monitored packet the XDP program sends an [`Event`] over the
//! `EMB_EVENTS` ring buffer, as far as the entity's per-CPU event budget allows (`[events]
//! rate_per_entity` and `burst`, see [`EventLimits`]); the events it could not send (over the
//! limit, or the ring full) are counted per entity and exported as
//! `embargo_events_lost_total{entity}`.
//!
//! The [`Reader`] task waits on the ring's file descriptor ([`AsyncFd`]) and turns each event
//! into one JSON line ([`Record`]): the time (RFC 3339, UTC), the interface, direction, verdict,
//! addresses, protocol and ports, the entity's id and designation references, and the digest of
//! the policy in force. Lines go to a size-rotated file ([`RotatingFile`]) or standard output
//! ([`Sink`]).
//!
//! # Following reloads
//!
//! The reader reads the agent through a [`Feed`] (`run.rs` implements it over its shared state),
//! never a copy taken at start:
//! * the entity table (id and designations by data-plane index), interface names and digest come
//!   in a [`Context`] rebuilt whenever the [`Version`] (data-plane generation, reloads applied)
//!   changes, so an in-place reload (entity indices are stable across those) shows in the next
//!   line (the context is checked each time the reader wakes, so an event sent just before a
//!   reload and read just after it carries the new one);
//! * a new data-plane generation has its own ring buffer (and its own entity indices): when
//!   the generation changes, the reader drains the old ring with the old generation's context,
//!   then takes the new ring ([`Feed::take_ring`]). It notices on the next event of the old ring
//!   or within [`POLL_INTERVAL`];
//! * the lost counters are read every [`POLL_INTERVAL`] and their increase is added to the
//!   metric; a new generation's counters start at zero (what the old generation lost since its
//!   last read is not counted).
//!
//! Event times are `bpf_ktime_get_ns` (CLOCK_MONOTONIC) turned into wall-clock time with the
//! offset between CLOCK_REALTIME and CLOCK_MONOTONIC taken when the reader starts ([`Clock`]).

use std::{
    collections::HashMap,
    fs::File,
    io::{self, BufWriter, Write as _},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use chrono::{DateTime, SecondsFormat, Utc};
use embargo_abi::{Direction, EVENT_PORTS, Event, FAMILY_IPV4, FAMILY_IPV6, Verdict};
use serde::{Deserialize, Serialize};
use tokio::io::{Interest, unix::AsyncFd};

use crate::{
    config::{Config, EventsOutput, EventsSettings},
    dataplane::{Attachment, system},
    files::write,
    observe::metrics::Metrics,
    policy::{Policy, compile::Compiled},
};

/// How often the reader reads the lost counters and checks for a new data-plane generation.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Why events cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The event log cannot be opened (or its folder created).
    #[error(
        "event log {path}: {source}; check the folder and its permissions, or set [events] path or --events-log"
    )]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The event log's folder is missing and cannot be created.
    #[error(
        "event log {path}: cannot create its folder {dir}: {source}; create it for the agent's user (`install -d -m 0750 {dir}`, the systemd unit's StateDirectory does), choose another file with [events] path or `embargo run --events-log PATH`, or turn events off with [events] output = \"none\""
    )]
    Folder {
        path: PathBuf,
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The event log or its folder is not safe to write: a symlink, not a regular file, a
    /// folder others can write in or owned by another user.
    #[error("event log {path}: {source}")]
    Unsafe {
        path: PathBuf,
        #[source]
        source: write::SafeFsError,
    },
}

// ---------------------------------------------------------------------------------------------
// What events are formatted with.

/// One designation as events name it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesignationRef {
    pub authority: String,
    pub reference: String,
}

/// An entity as events name it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntityRef {
    pub id: String,
    /// The designations that make it enforced (none for a retired index).
    pub designations: Vec<DesignationRef>,
}

/// An evidence group as events name it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupRef {
    /// Its `name`, else its evidence's source (the `evidence` label of the packet metrics).
    pub label: String,
    /// Its evidence's source (URL or document).
    pub source: String,
}

/// Which policy a [`Context`] describes: the data-plane generation (see
/// [`crate::observe::status::ReloadStatus::generations`]) and the number of policies applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Version {
    pub generation: u64,
    pub reloads: u64,
}

/// What events of one policy are formatted with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    pub version: Version,
    /// By data-plane entity index.
    pub entities: Vec<EntityRef>,
    /// Evidence groups by data-plane group index: what the group is called (its `name`, else
    /// its evidence's source) and its evidence's source.
    pub groups: Vec<GroupRef>,
    /// Attached interfaces by ifindex.
    pub interfaces: HashMap<u32, String>,
    /// [`Compiled::digest`] of the policy in force.
    pub digest: String,
}

impl Context {
    /// The context of the loaded `policy` (data-plane indices) compiled as `compiled`.
    pub fn new(
        version: Version,
        policy: &Policy,
        compiled: &Compiled,
        attachments: &[Attachment],
    ) -> Self {
        let designations: HashMap<&str, Vec<DesignationRef>> = compiled
            .entities
            .iter()
            .map(|e| {
                let refs = e
                    .designations
                    .iter()
                    .map(|d| DesignationRef {
                        authority: d.authority.clone(),
                        reference: d.reference.clone(),
                    })
                    .collect();
                (e.id.as_str(), refs)
            })
            .collect();
        Self {
            version,
            entities: policy
                .entities
                .iter()
                .map(|e| EntityRef {
                    id: e.id.clone(),
                    designations: if e.retired {
                        Vec::new()
                    } else {
                        designations.get(e.id.as_str()).cloned().unwrap_or_default()
                    },
                })
                .collect(),
            groups: policy
                .groups
                .iter()
                .map(|g| GroupRef {
                    label: g.label.clone(),
                    source: g.source.clone(),
                })
                .collect(),
            interfaces: attachments
                .iter()
                .map(|a| (a.ifindex, a.name.clone()))
                .collect(),
            digest: compiled.digest(),
        }
    }
}

/// Turns `bpf_ktime_get_ns` values (CLOCK_MONOTONIC) into wall-clock time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, nanoseconds.
    offset_ns: i128,
}

impl Clock {
    /// The offset between the two clocks now.
    pub fn now() -> Self {
        let read = |clock| {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: a valid clock id and a timespec to write to.
            unsafe { libc::clock_gettime(clock, &mut ts) };
            i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
        };
        let mono = read(libc::CLOCK_MONOTONIC);
        let real = read(libc::CLOCK_REALTIME);
        Self {
            offset_ns: real - mono,
        }
    }

    /// A fixed offset (for tests).
    pub const fn with_offset(offset_ns: i128) -> Self {
        Self { offset_ns }
    }

    /// The wall-clock time of monotonic time `ktime_ns`.
    pub fn wall(&self, ktime_ns: u64) -> DateTime<Utc> {
        let t = i128::from(ktime_ns) + self.offset_ns;
        DateTime::from_timestamp_nanos(i64::try_from(t).unwrap_or(i64::MAX))
    }
}

// ---------------------------------------------------------------------------------------------
// The JSON line.

/// One event as written: one JSON object per line, fields in this order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// When the data plane saw the packet: RFC 3339, UTC, microseconds
    /// (`2026-11-27T10:15:00.123456Z`).
    pub time: String,
    /// The interface it was received on.
    pub interface: String,
    /// `outbound` (received on an inside interface) or `inbound`.
    pub direction: String,
    /// `dropped` or `monitored`.
    pub verdict: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
    pub source: IpAddr,
    pub destination: IpAddr,
    /// `tcp`, `udp`, `icmp`, `ipv6-icmp`, ... (IANA keywords), or the protocol number.
    pub protocol: String,
    /// TCP or UDP ports; `null` for other protocols, non-first fragments and ports past the
    /// frame's end.
    pub source_port: Option<u16>,
    pub destination_port: Option<u16>,
    /// Frame length as XDP saw it (Ethernet header included), bytes.
    pub length: u32,
    /// The entity id the packet matched.
    pub entity: String,
    /// The entity's designations (authority and list reference).
    pub designations: Vec<DesignationRef>,
    /// The digest of the policy in force ([`Compiled::digest`], as `embargo status` shows it).
    pub policy_digest: String,
    /// The data-plane index of the evidence group whose prefix matched (as `embargo status`
    /// shows it under the entity).
    #[serde(default)]
    pub group: u32,
    /// That group's `name`, else its evidence's source (the `evidence` label of
    /// `embargo_packets_total`); `#<index>` for a group the agent does not know.
    #[serde(default)]
    pub evidence: String,
    /// That group's evidence source (URL or document).
    #[serde(default)]
    pub evidence_source: String,
}

/// Reads an [`Event`] from the bytes of one ring buffer record.
pub fn decode(bytes: &[u8]) -> Option<Event> {
    if bytes.len() < size_of::<Event>() {
        return None;
    }
    // SAFETY: at least size_of::<Event>() bytes; Event is plain integers, any bit pattern is
    // valid; the record has no alignment guarantee for us, so read unaligned.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) })
}

/// The IANA keyword of IP protocol `p`, or its number.
pub fn protocol_name(p: u8) -> String {
    match p {
        0 => "hopopt",
        1 => "icmp",
        2 => "igmp",
        6 => "tcp",
        17 => "udp",
        41 => "ipv6",
        43 => "ipv6-route",
        44 => "ipv6-frag",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        58 => "ipv6-icmp",
        59 => "ipv6-nonxt",
        60 => "ipv6-opts",
        132 => "sctp",
        _ => return p.to_string(),
    }
    .to_owned()
}

fn address(family: u8, bytes: [u8; 16]) -> IpAddr {
    if family == FAMILY_IPV6 {
        Ipv6Addr::from(bytes).into()
    } else {
        Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).into()
    }
}

/// The line for `ev`, formatted with `ctx` (of the generation that sent it).
pub fn record(ev: &Event, ctx: &Context, clock: &Clock) -> Record {
    let entity = ctx.entities.get(ev.entity as usize);
    let group = ctx.groups.get(ev.group as usize);
    let ports = ev.flags & EVENT_PORTS != 0;
    Record {
        time: clock
            .wall(ev.timestamp_ns)
            .to_rfc3339_opts(SecondsFormat::Micros, true),
        interface: ctx
            .interfaces
            .get(&ev.ifindex)
            .cloned()
            .or_else(|| system::ifname(ev.ifindex))
            .unwrap_or_else(|| format!("ifindex {}", ev.ifindex)),
        direction: (if ev.direction == Direction::Inbound as u8 {
            Direction::Inbound
        } else {
            Direction::Outbound
        })
        .label()
        .to_owned(),
        verdict: (if ev.verdict == Verdict::Monitored as u8 {
            Verdict::Monitored
        } else {
            Verdict::Dropped
        })
        .label()
        .to_owned(),
        family: match ev.family {
            FAMILY_IPV4 => "ipv4".to_owned(),
            FAMILY_IPV6 => "ipv6".to_owned(),
            other => other.to_string(),
        },
        source: address(ev.family, ev.src),
        destination: address(ev.family, ev.dst),
        protocol: protocol_name(ev.protocol),
        source_port: ports.then_some(ev.src_port),
        destination_port: ports.then_some(ev.dst_port),
        length: ev.packet_len,
        entity: entity.map_or_else(|| format!("#{}", ev.entity), |e| e.id.clone()),
        designations: entity.map(|e| e.designations.clone()).unwrap_or_default(),
        policy_digest: ctx.digest.clone(),
        group: ev.group,
        evidence: group.map_or_else(|| format!("#{}", ev.group), |g| g.label.clone()),
        evidence_source: group.map(|g| g.source.clone()).unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------------
// Where lines go.

/// A JSON-lines file rotated by size, the way logrotate's `size` and `rotate` do it: before a
/// line would take the file past `max_bytes`, `path` becomes `path.1`, `path.1` becomes `path.2`
/// and so on, keeping `keep` old files (the oldest is deleted), and a new `path` starts. Lines are
/// never split; a line longer than `max_bytes` gets a file of its own. An existing file is
/// appended to. Files are created mode 0640 (they hold addresses), in a folder owned by the
/// agent's user and not writable by group or others, and never opened through a symlink
/// ([`safe_fs`]).
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    out: BufWriter<File>,
    size: u64,
}

/// Never through a symlink, never anything but a regular file.
fn open_append(path: &Path) -> Result<File, write::SafeFsError> {
    write::open_append(path, 0o640)
}

impl RotatingFile {
    /// Opens (or creates, with its folder) `path` for appending.
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> Result<Self, EventsError> {
        let err = |source| EventsError::Open {
            path: path.to_owned(),
            source,
        };
        let unsafe_err = |source| EventsError::Unsafe {
            path: path.to_owned(),
            source,
        };
        let dir = write::parent_of(path);
        // Missing before: a failure is the folder's creation (events are on by default, so a
        // first start without /var/lib/embargo lands here), said with what to do.
        let missing = std::fs::symlink_metadata(dir).is_err();
        write::ensure_dir(dir, 0o750, "events log folder").map_err(|source| match source {
            write::SafeFsError::Io { source, .. } if missing => EventsError::Folder {
                path: path.to_owned(),
                dir: dir.to_owned(),
                source,
            },
            source => unsafe_err(source),
        })?;
        let file = open_append(path).map_err(unsafe_err)?;
        let size = file.metadata().map_err(err)?.len();
        Ok(Self {
            path: path.to_owned(),
            max_bytes: max_bytes.max(1),
            keep,
            out: BufWriter::new(file),
            size,
        })
    }

    /// `path.n`: the `n`th newest rotated file.
    pub fn rotated(path: &Path, n: u32) -> PathBuf {
        let mut p = path.as_os_str().to_owned();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    /// Appends `line` and a newline, rotating first if the file would grow past `max_bytes`.
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        let n = line.len() as u64 + 1;
        if self.size > 0 && self.size + n > self.max_bytes {
            self.rotate()?;
        }
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.size += n;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.out.flush()?;
        let gone_ok = |r: io::Result<()>| match r {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        // Older than `keep` (left by a larger `keep` before): deleted.
        let mut n = self.keep + 1;
        while Self::rotated(&self.path, n).exists() {
            gone_ok(std::fs::remove_file(Self::rotated(&self.path, n)))?;
            n += 1;
        }
        if self.keep == 0 {
            gone_ok(std::fs::remove_file(&self.path))?;
        } else {
            for i in (1..self.keep).rev() {
                gone_ok(std::fs::rename(
                    Self::rotated(&self.path, i),
                    Self::rotated(&self.path, i + 1),
                ))?;
            }
            gone_ok(std::fs::rename(&self.path, Self::rotated(&self.path, 1)))?;
        }
        self.out = BufWriter::new(open_append(&self.path).map_err(io::Error::other)?);
        self.size = 0;
        Ok(())
    }
}

/// Where the reader writes lines.
pub enum Sink {
    File(RotatingFile),
    Stdout,
}

impl Sink {
    /// The sink `[events]` asks for, `None` for `output = "none"`; a file at `path`.
    pub fn open(settings: &EventsSettings, path: &Path) -> Result<Option<Self>, EventsError> {
        Ok(match settings.output {
            EventsOutput::None => None,
            EventsOutput::Stdout => Some(Sink::Stdout),
            EventsOutput::File => Some(Sink::File(RotatingFile::open(
                path,
                settings.max_bytes,
                settings.keep,
            )?)),
        })
    }

    /// Writes every line and flushes.
    pub fn write_lines(&mut self, lines: &[String]) -> io::Result<()> {
        match self {
            Sink::File(f) => {
                for l in lines {
                    f.write_line(l)?;
                }
                f.flush()
            }
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                for l in lines {
                    out.write_all(l.as_bytes())?;
                    out.write_all(b"\n")?;
                }
                out.flush()
            }
        }
    }
}

/// The event log's path: `--events-log`, else `[events] path` (relative to the main file),
/// else [`EventsSettings::DEFAULT_PATH`].
pub fn log_path(config: &Config, flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_owned();
    }
    match &config.main.events.path {
        Some(p) => config.relative(0, p.get_ref()),
        None => PathBuf::from(EventsSettings::DEFAULT_PATH),
    }
}

// ---------------------------------------------------------------------------------------------
// The reader.

/// The running agent as the reader sees it; `run.rs` implements it over its shared state. Each
/// method takes the state's lock once, so what it returns is consistent.
pub trait Feed: Send + 'static {
    /// The version in force (cheap).
    fn version(&self) -> Version;
    /// The context of the version in force.
    fn context(&self) -> Context;
    /// Takes the current generation's ring buffer, with the generation; `None` once taken.
    fn take_ring(&self) -> Option<(u64, RingBuf<MapData>)>;
    /// The current generation and its lost-event totals by entity index, with the entity ids.
    fn lost(&self) -> Option<(u64, Vec<(String, u64)>)>;
}

/// Turns the lost-event totals of successive reads into increments (a new generation's
/// counters start again from zero).
#[derive(Debug, Default)]
pub struct LostCounter {
    generation: u64,
    seen: Vec<u64>,
}

impl LostCounter {
    /// The increase per entity index since the last read (only the non-zero ones).
    pub fn deltas(&mut self, generation: u64, totals: &[u64]) -> Vec<(usize, u64)> {
        if generation != self.generation {
            self.generation = generation;
            self.seen.clear();
        }
        let out = totals
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let before = self.seen.get(i).copied().unwrap_or(0);
                (*t > before).then(|| (i, t - before))
            })
            .collect();
        self.seen = totals.to_vec();
        out
    }
}

/// The ring of one generation, waited on through the runtime.
struct Ring {
    generation: u64,
    fd: AsyncFd<RingBuf<MapData>>,
}

/// The events reader task; see the module documentation.
pub struct Reader<F: Feed> {
    feed: F,
    sink: Sink,
    metrics: Option<Metrics>,
    clock: Clock,
    ring: Option<Ring>,
    /// The context of `ring`'s generation.
    ctx: Option<Arc<Context>>,
    lost: LostCounter,
    /// Whether the last write failed (logged once until one succeeds).
    failing: bool,
    /// `embargo events --follow` clients: every line written is also published to them.
    followers: Option<super::follow::Followers>,
}

impl<F: Feed> Reader<F> {
    pub fn new(feed: F, sink: Sink, metrics: Option<Metrics>) -> Self {
        Self {
            feed,
            sink,
            metrics,
            clock: Clock::now(),
            ring: None,
            ctx: None,
            lost: LostCounter::default(),
            failing: false,
            followers: None,
        }
    }

    /// Also publishes every line to `followers` (never waiting for them).
    pub fn with_followers(mut self, followers: super::follow::Followers) -> Self {
        self.followers = Some(followers);
        self
    }

    /// Runs until the task is dropped (the runtime shuts down); every line is flushed as it is
    /// written, so nothing read is left in a buffer.
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.sync();
            let Some(ring) = self.ring.as_mut() else {
                tick.tick().await;
                self.count_lost();
                continue;
            };
            tokio::select! {
                ready = ring.fd.readable_mut() => match ready {
                    // Cleared before reading: whatever arrives from here on wakes us again.
                    Ok(mut guard) => guard.clear_ready(),
                    Err(e) => {
                        tracing::error!(error = %e, "waiting on the event ring buffer failed; events stop");
                        self.ring = None;
                        continue;
                    }
                },
                // Also reads, should a wakeup ever be missed.
                _ = tick.tick() => self.count_lost(),
            }
            // A reload may have happened while waiting: format with what is in force now.
            self.sync();
            self.drain();
        }
    }

    /// Writes every event waiting in the current ring, with its generation's context.
    fn drain(&mut self) {
        if let (Some(ring), Some(ctx)) = (self.ring.as_mut(), &self.ctx) {
            let (entities, lines) = drain(ring.fd.get_mut(), ctx, &self.clock);
            if let Some(f) = &self.followers {
                f.publish(
                    entities
                        .iter()
                        .map(String::as_str)
                        .zip(lines.iter().map(String::as_str)),
                );
            }
            write(&mut self.sink, &lines, &mut self.failing);
        }
    }

    /// Follows the feed: a new generation's ring (after draining the old one), a new context.
    fn sync(&mut self) {
        let now = self.feed.version();
        if self.ring.as_ref().map(|r| r.generation) != Some(now.generation) {
            // The old generation's events, with the old generation's context.
            self.drain();
            self.ring = None;
            self.ctx = None;
            let registered = |ring| {
                // SAFETY: the ring buffer owns its map's file descriptor for as long as it lives,
                // and `as_raw_fd` always returns that one; the reader only calls `next` on it.
                unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
                    .map_err(io::Error::from)
            };
            match self.feed.take_ring() {
                Some((generation, ring)) => match registered(ring) {
                    Ok(fd) => self.ring = Some(Ring { generation, fd }),
                    Err(e) => {
                        tracing::error!(error = %e, generation, "the event ring buffer cannot be polled; events stop")
                    }
                },
                None => tracing::debug!("no event ring buffer to take"),
            }
        }
        let Some(ring) = &self.ring else {
            return;
        };
        if self.ctx.as_ref().map(|c| c.version) != Some(now) {
            let ctx = self.feed.context();
            // A context of a later generation than the ring would misname its entities: the
            // next round takes that generation's ring first.
            if ctx.version.generation == ring.generation {
                self.ctx = Some(Arc::new(ctx));
            }
        }
    }

    fn count_lost(&mut self) {
        let Some(metrics) = &self.metrics else {
            return;
        };
        let Some((generation, totals)) = self.feed.lost() else {
            return;
        };
        let counts: Vec<u64> = totals.iter().map(|(_, n)| *n).collect();
        for (i, n) in self.lost.deltas(generation, &counts) {
            metrics.events_lost(&totals[i].0, n);
        }
    }
}

/// Every event waiting in `ring`, as JSON lines, with each line's entity id (same order).
fn drain(ring: &mut RingBuf<MapData>, ctx: &Context, clock: &Clock) -> (Vec<String>, Vec<String>) {
    let (mut entities, mut lines) = (Vec::new(), Vec::new());
    while let Some(item) = ring.next() {
        match decode(&item) {
            Some(ev) => {
                let r = record(&ev, ctx, clock);
                match serde_json::to_string(&r) {
                    Ok(line) => {
                        lines.push(line);
                        entities.push(r.entity);
                    }
                    Err(e) => tracing::warn!(error = %e, "an event could not be formatted"),
                }
            }
            None => tracing::warn!(len = item.len(), "a short record in the event ring buffer"),
        }
    }
    (entities, lines)
}

fn write(sink: &mut Sink, lines: &[String], failing: &mut bool) {
    if lines.is_empty() {
        return;
    }
    match sink.write_lines(lines) {
        Ok(()) => *failing = false,
        Err(e) => {
            if !*failing {
                tracing::error!(error = %e, lines = lines.len(), "writing events failed; they are lost (logged once until a write succeeds)");
            }
            *failing = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            version: Version::default(),
            entities: vec![
                EntityRef {
                    id: "acme".into(),
                    designations: vec![
                        DesignationRef {
                            authority: "UK".into(),
                            reference: "CYB0114".into(),
                        },
                        DesignationRef {
                            authority: "US".into(),
                            reference: "CYBER2".into(),
                        },
                    ],
                },
                EntityRef {
                    id: "other".into(),
                    designations: vec![],
                },
            ],
            groups: vec![
                GroupRef {
                    label: "whois".into(),
                    source: "https://rdap.example/acme".into(),
                },
                GroupRef {
                    label: "cisa-aa24".into(),
                    source: "https://cisa.example/aa24".into(),
                },
            ],
            interfaces: [(7, "eth1".to_owned())].into(),
            digest: "ab12".into(),
        }
    }

    fn event() -> Event {
        let mut ev = Event {
            timestamp_ns: 1_000_000_123_456,
            ifindex: 7,
            entity: 0,
            group: 1,
            packet_len: 106,
            src_port: 40000,
            dst_port: 53,
            direction: Direction::Outbound as u8,
            verdict: Verdict::Dropped as u8,
            family: FAMILY_IPV4,
            protocol: 17,
            flags: EVENT_PORTS,
            ..Event::default()
        };
        ev.src[..4].copy_from_slice(&[198, 18, 0, 2]);
        ev.dst[..4].copy_from_slice(&[203, 0, 113, 7]);
        ev
    }

    // 2026-01-01T00:00:00Z minus 1000 s of monotonic time.
    const CLOCK: Clock = Clock::with_offset(1_767_225_600_000_000_000 - 1_000_000_000_000);

    #[test]
    fn a_dropped_udp_packet_becomes_this_line() {
        let line = serde_json::to_string(&record(&event(), &ctx(), &CLOCK)).unwrap();
        assert_eq!(
            line,
            r#"{"time":"2026-01-01T00:00:00.000123Z","interface":"eth1","direction":"outbound","verdict":"dropped","family":"ipv4","source":"198.18.0.2","destination":"203.0.113.7","protocol":"udp","source_port":40000,"destination_port":53,"length":106,"entity":"acme","designations":[{"authority":"UK","reference":"CYB0114"},{"authority":"US","reference":"CYBER2"}],"policy_digest":"ab12","group":1,"evidence":"cisa-aa24","evidence_source":"https://cisa.example/aa24"}"#
        );
        // And reads back.
        let back: Record = serde_json::from_str(&line).unwrap();
        assert_eq!(back, record(&event(), &ctx(), &CLOCK));
    }

    #[test]
    fn ipv6_monitored_without_ports() {
        let mut ev = event();
        ev.family = FAMILY_IPV6;
        ev.src = "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets();
        ev.dst = "2001:db8:bad::7".parse::<Ipv6Addr>().unwrap().octets();
        ev.protocol = 58;
        ev.flags = 0;
        ev.direction = Direction::Inbound as u8;
        ev.verdict = Verdict::Monitored as u8;
        ev.entity = 1;
        let r = record(&ev, &ctx(), &CLOCK);
        assert_eq!(r.family, "ipv6");
        assert_eq!(r.source, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(r.destination, "2001:db8:bad::7".parse::<IpAddr>().unwrap());
        assert_eq!(r.protocol, "ipv6-icmp");
        assert_eq!((r.source_port, r.destination_port), (None, None));
        assert_eq!(
            (r.direction.as_str(), r.verdict.as_str()),
            ("inbound", "monitored")
        );
        assert_eq!(r.entity, "other");
        assert!(r.designations.is_empty());
        let line = serde_json::to_string(&r).unwrap();
        assert!(
            line.contains(r#""source_port":null,"destination_port":null"#),
            "{line}"
        );
    }

    #[test]
    fn unknown_entities_and_protocols_are_named_by_number() {
        let mut ev = event();
        ev.entity = 9;
        ev.protocol = 253;
        let r = record(&ev, &ctx(), &CLOCK);
        assert_eq!(r.entity, "#9");
        assert_eq!(r.protocol, "253");
        assert_eq!(protocol_name(6), "tcp");
    }

    #[test]
    fn decode_reads_the_abi_layout_and_refuses_short_records() {
        let ev = event();
        // SAFETY: Event is plain integers; viewing it as bytes is what the kernel sends.
        let bytes: [u8; 72] = unsafe { std::mem::transmute(ev) };
        assert_eq!(decode(&bytes), Some(ev));
        assert_eq!(decode(&bytes[..63]), None);
    }

    #[test]
    fn the_clock_offset_is_realtime_minus_monotonic() {
        let c = Clock::now();
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: as in Clock::now.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let mono = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
        let skew = (c.wall(mono) - Utc::now()).num_milliseconds().abs();
        assert!(skew < 1000, "{skew} ms");
    }

    #[test]
    fn lost_counts_become_increments_and_restart_with_a_generation() {
        let mut l = LostCounter::default();
        assert_eq!(l.deltas(0, &[0, 5]), [(1, 5)]);
        assert_eq!(l.deltas(0, &[2, 5]), [(0, 2)]);
        assert_eq!(l.deltas(0, &[2, 5, 1]), [(2, 1)]);
        assert_eq!(l.deltas(1, &[3]), [(0, 3)]);
        assert!(l.deltas(1, &[3]).is_empty());
    }

    /// A folder path that does not exist yet, inside a fresh temporary folder that
    /// `tempfile` removes on drop (also when the test panics).
    struct Dir(PathBuf, #[allow(dead_code)] tempfile::TempDir);

    impl Dir {
        fn new(name: &str) -> Self {
            let tmp = tempfile::Builder::new()
                .prefix(&format!("embargo-events-{name}-"))
                .tempdir()
                .unwrap();
            Self(tmp.path().join(name), tmp)
        }
    }

    fn lines_of(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn rotation_caps_each_file_and_keeps_the_newest_ones() {
        let dir = Dir::new("rotate");
        let path = dir.0.join("sub/events.jsonl");
        // 10-byte lines (9 + newline), 35 bytes a file: 3 lines each.
        let mut f = RotatingFile::open(&path, 35, 2).unwrap();
        for i in 0..10 {
            f.write_line(&format!("line-{i:04}")).unwrap();
        }
        f.flush().unwrap();
        assert_eq!(lines_of(&path), ["line-0009"]);
        let one = RotatingFile::rotated(&path, 1);
        let two = RotatingFile::rotated(&path, 2);
        assert_eq!(lines_of(&one), ["line-0006", "line-0007", "line-0008"]);
        assert_eq!(lines_of(&two), ["line-0003", "line-0004", "line-0005"]);
        assert!(!RotatingFile::rotated(&path, 3).exists());
        for p in [&path, &one, &two] {
            assert!(std::fs::metadata(p).unwrap().len() <= 35);
        }
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o007, 0, "mode {mode:o}");
    }

    #[test]
    fn reopening_appends_and_counts_what_is_there() {
        let dir = Dir::new("reopen");
        let path = dir.0.join("events.jsonl");
        let mut f = RotatingFile::open(&path, 25, 1).unwrap();
        f.write_line("aaaaaaaaa").unwrap();
        f.flush().unwrap();
        drop(f);
        let mut f = RotatingFile::open(&path, 25, 1).unwrap();
        f.write_line("bbbbbbbbb").unwrap();
        // 20 bytes there: a third line would pass 25, so the file rotates first.
        f.write_line("ccccccccc").unwrap();
        f.flush().unwrap();
        assert_eq!(lines_of(&path), ["ccccccccc"]);
        assert_eq!(
            lines_of(&RotatingFile::rotated(&path, 1)),
            ["aaaaaaaaa", "bbbbbbbbb"]
        );
    }

    #[test]
    fn keep_zero_starts_over_and_a_smaller_keep_deletes_the_extra_files() {
        let dir = Dir::new("keep");
        let path = dir.0.join("events.jsonl");
        std::fs::create_dir_all(&dir.0).unwrap();
        for n in 1..=4 {
            std::fs::write(RotatingFile::rotated(&path, n), "old\n").unwrap();
        }
        let mut f = RotatingFile::open(&path, 10, 0).unwrap();
        for l in ["one", "two", "three"] {
            f.write_line(l).unwrap();
        }
        f.flush().unwrap();
        assert_eq!(lines_of(&path), ["three"]);
        for n in 1..=4 {
            assert!(!RotatingFile::rotated(&path, n).exists(), "{n}");
        }
    }

    #[test]
    fn a_line_longer_than_the_cap_gets_a_file_of_its_own() {
        let dir = Dir::new("long");
        let path = dir.0.join("events.jsonl");
        let mut f = RotatingFile::open(&path, 8, 3).unwrap();
        f.write_line("short").unwrap();
        f.write_line("a much longer line").unwrap();
        f.write_line("next").unwrap();
        f.flush().unwrap();
        assert_eq!(lines_of(&path), ["next"]);
        assert_eq!(
            lines_of(&RotatingFile::rotated(&path, 1)),
            ["a much longer line"]
        );
        assert_eq!(lines_of(&RotatingFile::rotated(&path, 2)), ["short"]);
    }

    fn settings(text: &str) -> Result<Config, crate::config::ConfigError> {
        crate::config::parse(
            Path::new("/etc/embargo/embargo.toml"),
            format!("enforce = [\"UK\"]\n{text}"),
        )
    }

    #[test]
    fn events_settings_have_documented_defaults_and_are_checked() {
        let c = settings("").unwrap();
        let e = &c.main.events;
        // On by default (issue 14): a file at the default path, the default budget.
        assert_eq!(e.output, EventsOutput::File);
        assert_eq!(e.limits(), embargo_abi::EventLimits::DEFAULT);
        assert_eq!((e.max_bytes, e.keep), (100 * 1024 * 1024, 5));
        let on = settings("[events]\noutput = \"file\"\n").unwrap();
        assert_eq!(on.main.events.limits(), embargo_abi::EventLimits::DEFAULT);
        // An `[events]` table without `output` keeps the default too.
        let c2 = settings("[events]\nrate_per_entity = 5\n").unwrap();
        assert_eq!(c2.main.events.output, EventsOutput::File);
        assert_eq!(
            log_path(&c, None),
            Path::new("/var/lib/embargo/events.jsonl")
        );
        assert_eq!(
            log_path(&c, Some(Path::new("/tmp/x.jsonl"))),
            Path::new("/tmp/x.jsonl")
        );

        let c = settings(
            "[events]\noutput = \"stdout\"\npath = \"log/ev.jsonl\"\nrate_per_entity = 10\nburst = 3\n",
        )
        .unwrap();
        assert_eq!(log_path(&c, None), Path::new("/etc/embargo/log/ev.jsonl"));
        assert_eq!(
            c.main.events.limits(),
            embargo_abi::EventLimits::per_second(10, 3)
        );
        // `output = "none"` turns them off: no sink, no events from the data plane.
        let c = settings("[events]\noutput = \"none\"\n").unwrap();
        assert_eq!(c.main.events.output, EventsOutput::None);
        assert!(!c.main.events.limits().enabled());
        assert!(
            Sink::open(&c.main.events, Path::new("/nonexistent/events.jsonl"))
                .unwrap()
                .is_none()
        );

        for (text, line, what) in [
            (
                "[events]\nrate_per_entity = 0\n",
                3,
                "rate_per_entity must be from 1",
            ),
            (
                "[events]\nburst = 2000000\n",
                3,
                "burst must be from 1 to 1000000",
            ),
            (
                "[events]\nmax_bytes = 100\n",
                3,
                "max_bytes must be from 4096",
            ),
            ("[events]\noutput = \"syslog\"\n", 3, "syslog"),
            ("[events]\nrotate = 3\n", 3, "rotate"),
        ] {
            let e = settings(text).err().unwrap().to_string();
            assert!(e.contains(&format!("embargo.toml:{line}:")), "{text}: {e}");
            assert!(e.contains(what), "{text}: {e}");
        }
    }

    #[test]
    fn the_documented_events_settings_are_the_defaults() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for p in ["config/default.toml", "config/examples/full.toml"] {
            let c = crate::config::load(&root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
            let (e, d) = (&c.main.events, EventsSettings::default());
            assert_eq!(
                (e.output, e.max_bytes, e.keep, e.rate_per_entity, e.burst),
                (d.output, d.max_bytes, d.keep, d.rate_per_entity, d.burst),
                "{p}"
            );
            assert_eq!(log_path(&c, None), Path::new(EventsSettings::DEFAULT_PATH));
        }
    }

    /// Events are on by default (issue 14), so a first start may find the log's folder
    /// missing: it is created (0750 less the umask, with its missing parents) and the log
    /// opened; a folder that cannot be created is refused saying which and what to do.
    #[test]
    fn a_missing_log_folder_is_created_or_refused_saying_what_to_do() {
        let dir = Dir::new("missing");
        let path = dir.0.join("lib/embargo/events.jsonl");
        let mut f = Sink::open(&EventsSettings::default(), &path)
            .unwrap()
            .expect("a file sink by default");
        f.write_lines(&["{}".to_owned()]).unwrap();
        assert_eq!(lines_of(&path), ["{}"]);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.0.join("lib/embargo"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o027, 0, "{mode:o}");

        // A regular file where a parent folder should be: cannot be created, even by root.
        std::fs::write(dir.0.join("file"), "").unwrap();
        let path = dir.0.join("file/embargo/events.jsonl");
        let e = Sink::open(&EventsSettings::default(), &path)
            .err()
            .unwrap()
            .to_string();
        let folder = dir.0.join("file/embargo");
        assert!(
            e.contains(&format!("cannot create its folder {}", folder.display())),
            "{e}"
        );
        assert!(e.contains("--events-log PATH"), "{e}");
        assert!(e.contains("output = \"none\""), "{e}");
    }

    /// Regression (issue 10): the events log was opened for appending through a symlink.
    #[test]
    fn a_symlink_at_the_log_path_is_refused_not_written_through() {
        let dir = Dir::new("symlink");
        std::fs::create_dir_all(&dir.0).unwrap();
        let victim = dir.0.join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let path = dir.0.join("events.jsonl");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let e = RotatingFile::open(&path, 4096, 1)
            .and_then(|mut f| {
                f.write_line("x")
                    .and_then(|()| f.flush())
                    .map_err(|source| EventsError::Open {
                        path: path.clone(),
                        source,
                    })
            })
            .unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    }

    /// Regression (issue 10): the events log's folder was used whoever could write in it.
    #[test]
    fn a_folder_others_can_write_in_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = Dir::new("open-folder");
        std::fs::create_dir_all(&dir.0).unwrap();
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
        let path = dir.0.join("events.jsonl");
        let e = RotatingFile::open(&path, 4096, 1).err().unwrap();
        assert!(e.to_string().contains("group or others can write"), "{e}");
        assert!(!path.exists());
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
        RotatingFile::open(&path, 4096, 1).unwrap();
    }

    #[test]
    fn an_unwritable_path_is_an_error_naming_it() {
        let e = RotatingFile::open(Path::new("/proc/embargo/events.jsonl"), 4096, 1)
            .err()
            .unwrap();
        assert!(e.to_string().contains("/proc/embargo/events.jsonl"), "{e}");
    }
}
