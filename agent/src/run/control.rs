//! The control socket: one request line in, one JSON answer out, then the connection closes.
//! `embargo status`, `status --verify` and `plan` are its clients
//! ([`crate::observe::status`]); the agent serves it here. The one exception is `events`
//! (`embargo events --follow`): its answer is a stream of event lines, one JSON object each,
//! until the client goes away ([`crate::observe::follow`]).
//!
//! Invariants: client and server speak through the one [`Request`] enum, so a request the
//! client can send is one the server knows (the wire form is its word and a newline:
//! `status`, `table`, `verify`, `events` or `events ENTITY`); a request is read with a bound ([`MAX_CONTROL_REQUEST`]) and a
//! deadline ([`CONTROL_READ_TIMEOUT`]), an answer written within [`CONTROL_WRITE_TIMEOUT`], and at
//! most [`MAX_CONTROL_CONNECTIONS`] are served at once (a follower gives its place back once
//! subscribed: followers have their own cap); every error reaches the client as
//! `{"error": "..."}`. A follower never slows the agent: it reads from its own bounded queue
//! and is told how many events it lost; its stream ends when it closes its end, or when a
//! write to it takes longer than [`CONTROL_WRITE_TIMEOUT`]. The socket is created 0600 in a 0750 folder, never through a symlink.

use std::{
    os::unix::fs::DirBuilderExt as _,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{
        UnixListener,
        unix::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::OwnedSemaphorePermit,
};

use super::{RunError, Shared};
use crate::{
    dataplane::DataplaneError,
    observe::{
        follow::{LostNotice, Subscription},
        status::{self, EntityStatus, GroupStatus, InterfaceStatus, Status},
    },
    policy::plan::TableSnapshot,
};

/// What a client asks the agent over the control socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// The agent's [`Status`].
    Status,
    /// The loaded table, a [`TableSnapshot`] (`embargo plan` compares against it).
    Table,
    /// Attest the kernel maps now and repair any drift; answered with the
    /// [`Drift`](crate::dataplane::Drift) found.
    Verify,
    /// Follow the drop and monitor events (of every entity, or of the one named after the
    /// word): answered with a stream of lines, each an events-log record
    /// ([`crate::observe::events::Record`]) or a [`LostNotice`], until the client closes.
    Events,
}

impl Request {
    /// Every request, for tests and help.
    pub const ALL: [Request; 4] = [
        Request::Status,
        Request::Table,
        Request::Verify,
        Request::Events,
    ];

    /// The word on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Table => "table",
            Request::Verify => "verify",
            Request::Events => "events",
        }
    }

    /// The request line a client sends: the word and a newline.
    pub fn line(self) -> String {
        format!("{}\n", self.as_str())
    }

    /// The request a (trimmed) line names, if any.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == word)
    }

    /// The request line of `embargo events --follow [--entity ID]`.
    pub fn follow_line(entity: Option<&str>) -> String {
        match entity {
            Some(id) => format!("{} {id}\n", Request::Events.as_str()),
            None => Request::Events.line(),
        }
    }

    /// The request a (trimmed) line names and its argument: only `events` takes one (an
    /// entity id, a single word).
    pub fn parse_line(line: &str) -> Option<(Self, Option<&str>)> {
        let (word, arg) = match line.split_once(' ') {
            Some((w, a)) => (w, Some(a.trim())),
            None => (line, None),
        };
        match (Self::parse(word)?, arg) {
            (r, None) => Some((r, None)),
            (Request::Events, Some(a)) if !a.is_empty() && !a.contains(char::is_whitespace) => {
                Some((Request::Events, Some(a)))
            }
            _ => None,
        }
    }
}

/// Why a request line was not read; its text is the error answer the client gets.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(
        "no request line within {}",
        humantime::format_duration(CONTROL_READ_TIMEOUT)
    )]
    Timeout,
    #[error("reading the request: {0}")]
    Read(#[source] std::io::Error),
    #[error("the request is over {MAX_CONTROL_REQUEST} bytes without a newline")]
    TooLong,
}

/// Creates the control socket at `path` (its folder 0750, the socket 0600), replacing one a
/// killed agent left.
pub(super) fn bind_control(path: &Path) -> Result<UnixListener, RunError> {
    let err = |source| RunError::Socket {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(err)?;
    }
    // A socket left by a killed agent would make bind fail; nothing else lives at this path
    // (a symlink there is removed, not followed).
    if std::fs::symlink_metadata(path).is_ok() {
        std::fs::remove_file(path).map_err(err)?;
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    // Not through a symlink swapped in since the bind.
    crate::files::write::set_mode_nofollow(path, 0o600)
        .map_err(|e| err(std::io::Error::other(e)))?;
    Ok(listener)
}

/// Longest control request accepted, newline included (the requests are single words).
pub const MAX_CONTROL_REQUEST: usize = 1024;
/// A control client sends its request line within this long, or is disconnected.
pub const CONTROL_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A control client reads the whole answer within this long, or is disconnected.
pub const CONTROL_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Control connections served at the same time; more are closed at once.
pub const MAX_CONTROL_CONNECTIONS: usize = 16;

/// How often a follower is told of the events it lost when no event is sent to it.
pub const FOLLOW_NOTICE_INTERVAL: Duration = Duration::from_secs(1);

/// Reads one request line: at most [`MAX_CONTROL_REQUEST`] bytes within
/// [`CONTROL_READ_TIMEOUT`]. Never holds more than that, whatever the client sends.
async fn read_request<R: tokio::io::AsyncRead + Unpin>(read: R) -> Result<String, RequestError> {
    let mut reader = BufReader::new(read.take(MAX_CONTROL_REQUEST as u64));
    let mut line = Vec::with_capacity(64);
    match tokio::time::timeout(CONTROL_READ_TIMEOUT, reader.read_until(b'\n', &mut line)).await {
        Err(_) => Err(RequestError::Timeout),
        Ok(Err(e)) => Err(RequestError::Read(e)),
        Ok(Ok(_)) if line.last() != Some(&b'\n') && line.len() >= MAX_CONTROL_REQUEST => {
            Err(RequestError::TooLong)
        }
        Ok(Ok(_)) => Ok(String::from_utf8_lossy(&line).into_owned()),
    }
}

/// An error answer: `{"error": "..."}`.
fn error_answer(message: &str) -> String {
    format!(
        "{{\"error\":{}}}",
        serde_json::Value::String(message.to_owned())
    )
}

/// Serves one control connection: one request line, `answer`'s answer, close. A request that
/// is too long or too slow gets an error answer and the connection is closed.
#[cfg(test)]
async fn serve_control(stream: tokio::net::UnixStream, answer: impl FnOnce(&str) -> String) {
    let (mut read, write) = stream.into_split();
    let body = match read_request(&mut read).await {
        Ok(line) => answer(line.trim()),
        Err(e) => refused(&e),
    };
    write_answer(write, body).await;
}

fn refused(e: &RequestError) -> String {
    tracing::debug!("control socket: request refused: {e}");
    error_answer(&e.to_string())
}

/// Writes the whole answer within [`CONTROL_WRITE_TIMEOUT`] and closes.
async fn write_answer(mut write: OwnedWriteHalf, body: String) {
    let _ = tokio::time::timeout(CONTROL_WRITE_TIMEOUT, async {
        let _ = write.write_all(body.as_bytes()).await;
        let _ = write.shutdown().await;
    })
    .await;
}

/// Serves one control connection, holding `permit` until it is answered (a follower gives it
/// back once subscribed).
pub(super) async fn serve(
    stream: tokio::net::UnixStream,
    shared: Arc<Mutex<Shared>>,
    permit: OwnedSemaphorePermit,
) {
    let (mut read, write) = stream.into_split();
    let body = match read_request(&mut read).await {
        Ok(line) => match Request::parse_line(line.trim()) {
            Some((Request::Events, entity)) => match subscribe(&shared, entity) {
                Ok(sub) => {
                    drop(permit);
                    return follow(read, write, sub).await;
                }
                Err(message) => error_answer(&message),
            },
            Some((request, _)) => answer(request, &shared),
            None => error_answer(&format!("unknown request `{}`", line.trim())),
        },
        Err(e) => refused(&e),
    };
    write_answer(write, body).await;
    drop(permit);
}

/// Subscribes a follower of the events (of `entity` only, if given); the error answer's text
/// when it cannot follow.
fn subscribe(shared: &Mutex<Shared>, entity: Option<&str>) -> Result<Subscription, String> {
    let s = shared.lock().expect("not poisoned");
    if !s.events {
        return Err("this agent sends no events: its [events] output is \"none\"; set output = \"file\" (or \"stdout\") and restart it to follow them".to_owned());
    }
    if let Some(id) = entity
        && !s.policy.entities.iter().any(|e| e.id == id && !e.retired)
    {
        return Err(format!(
            "no entity `{id}` in the policy in force (`embargo status` lists them)"
        ));
    }
    s.followers
        .subscribe(entity.map(str::to_owned))
        .map_err(|e| e.to_string())
}

/// Most lines written to a follower in one write.
const FOLLOW_BATCH: usize = 256;

/// Streams a follower's lines to it until it closes its end (or stops reading for longer
/// than [`CONTROL_WRITE_TIMEOUT`]); events it lost are said in a [`LostNotice`] line before
/// the next line, or within [`FOLLOW_NOTICE_INTERVAL`].
async fn follow(mut read: OwnedReadHalf, mut write: OwnedWriteHalf, mut sub: Subscription) {
    let mut tick = tokio::time::interval(FOLLOW_NOTICE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ignored = [0u8; 256];
    loop {
        let mut lines: Vec<Arc<str>> = Vec::new();
        tokio::select! {
            line = sub.recv() => match line {
                Some(l) => {
                    lines.push(l);
                    while lines.len() < FOLLOW_BATCH {
                        match sub.try_recv() {
                            Some(l) => lines.push(l),
                            None => break,
                        }
                    }
                }
                None => break,
            },
            _ = tick.tick() => {}
            // The client sends nothing more: end of file (or an error) is its leaving.
            r = read.read(&mut ignored) => match r {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            },
        }
        let mut out = String::new();
        let lost = sub.take_lost();
        if lost > 0 {
            out.push_str(&serde_json::to_string(&LostNotice::new(lost)).unwrap_or_default());
            out.push('\n');
        }
        for l in &lines {
            out.push_str(l);
            out.push('\n');
        }
        if out.is_empty() {
            continue;
        }
        match tokio::time::timeout(CONTROL_WRITE_TIMEOUT, write.write_all(out.as_bytes())).await {
            Ok(Ok(())) => {}
            _ => break,
        }
    }
    tracing::debug!("control socket: an events follower left");
}

/// The answer to one control request (not `events`, which [`serve`] streams).
fn answer(request: Request, shared: &Mutex<Shared>) -> String {
    match request {
        Request::Status => {
            let snapshot = {
                let guard = shared.lock().expect("not poisoned");
                snapshot(&guard)
            };
            match snapshot {
                Ok(s) => serde_json::to_string(&s).unwrap_or_default(),
                Err(e) => error_answer(&e.to_string()),
            }
        }
        Request::Table => {
            let snapshot = TableSnapshot::of(&shared.lock().expect("not poisoned").compiled);
            serde_json::to_string(&snapshot).unwrap_or_default()
        }
        Request::Verify => match shared.lock().expect("not poisoned").attest() {
            Ok(drift) => serde_json::to_string(&drift).unwrap_or_default(),
            Err(e) => error_answer(&e.to_string()),
        },
        Request::Events => error_answer("`events` is answered with a stream"),
    }
}

fn snapshot(s: &Shared) -> Result<Status, DataplaneError> {
    let counters = s.dataplane.counters()?;
    let stats = s.dataplane.stats()?;
    let counted = counters
        .iter()
        .flat_map(|c| c.slots.iter().flatten())
        .map(|c| c.packets)
        .sum();
    let (outcomes, packets_seen) = status::outcomes(&stats, counted);
    let group_counters = s.dataplane.group_counters()?;
    let entities = s
        .policy
        .entities
        .iter()
        .zip(counters)
        .enumerate()
        .filter(|(_, (e, _))| !e.retired)
        .map(|(i, (e, mut c))| {
            if let Some(old) = s.carried.get(&e.id) {
                c.add(old);
            }
            let groups = s
                .policy
                .groups_of(i as u32)
                .filter_map(|(gi, g)| {
                    let mut gc = group_counters.get(gi as usize).copied().unwrap_or_default();
                    if let Some(old) = s
                        .carried_groups
                        .get(&crate::dataplane::state::group_carry_key(&e.id, &g.key))
                    {
                        gc.add(old);
                    }
                    // A group that left the policy is shown while it has counts (they are
                    // part of the entity's).
                    (!g.retired || gc != Default::default()).then_some((gi, g, gc))
                })
                .map(|(gi, g, gc)| GroupStatus {
                    index: gi,
                    evidence: g.label.clone(),
                    source: g.source.clone(),
                    counters: status::counter_rows(&gc),
                })
                .collect();
            (e, c, groups)
        })
        .map(|(e, c, groups)| EntityStatus {
            designations: s
                .compiled
                .entities
                .iter()
                .find(|x| x.id == e.id)
                .map(status::designation_lines)
                .unwrap_or_default(),
            id: e.id.clone(),
            name: e.name.clone(),
            action: format!("{:?}", e.action).to_lowercase(),
            direction: format!("{:?}", e.direction).to_lowercase(),
            prefixes_v4: e.prefixes_v4,
            prefixes_v6: e.prefixes_v6,
            counters: status::counter_rows(&c),
            groups,
        })
        .collect();
    let ls = s.dataplane.load_stats;
    Ok(Status {
        pid: std::process::id(),
        version: crate::build_info::LONG.to_owned(),
        config: s.config.clone(),
        interfaces: s
            .dataplane
            .attachments()
            .iter()
            .map(|a| InterfaceStatus {
                name: a.name.clone(),
                ifindex: a.ifindex,
                role: a.role.to_string(),
                mode: a.mode.to_string(),
                egress: a.egress,
            })
            .collect(),
        entities,
        outcomes,
        packets_seen,
        prefixes_v4: ls.v4_prefixes,
        prefixes_v6: ls.v6_prefixes,
        map_bytes: ls.map_bytes,
        digest: s.compiled.digest(),
        reloads: s.reloads.clone(),
        drift_entries: s.drift.total(),
        sources: s.sources.states(),
        delisted_by_list: s
            .compiled
            .report
            .messages(crate::policy::compile::FindingKind::DelistedByList),
        start: Some(s.start.clone()),
        next_change: s.compiled.next_change.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire form is each request's word and a newline, and the server reads back the
    /// request the client sent: the client and the server cannot disagree on a name.
    #[test]
    fn every_request_reads_back_as_itself() {
        let words: Vec<String> = Request::ALL.iter().map(|r| r.line()).collect();
        assert_eq!(words, ["status\n", "table\n", "verify\n", "events\n"]);
        for r in Request::ALL {
            assert_eq!(Request::parse(r.line().trim()), Some(r));
            assert_eq!(Request::parse_line(r.line().trim()), Some((r, None)));
        }
        assert_eq!(Request::parse("reload"), None);
        // Only `events` takes an argument: one entity id.
        let line = Request::follow_line(Some("acme"));
        assert_eq!(line, "events acme\n");
        assert_eq!(
            Request::parse_line(line.trim()),
            Some((Request::Events, Some("acme")))
        );
        assert_eq!(Request::follow_line(None), "events\n");
        for bad in ["status acme", "events a b", "reload x"] {
            assert_eq!(Request::parse_line(bad), None, "{bad}");
        }
    }

    /// A follower served over a socket pair; the client end.
    fn follower(
        f: &crate::observe::follow::Followers,
        entity: Option<&str>,
    ) -> tokio::net::UnixStream {
        let (client, server) = tokio::net::UnixStream::pair().unwrap();
        let sub = f.subscribe(entity.map(str::to_owned)).unwrap();
        let (read, write) = server.into_split();
        tokio::spawn(follow(read, write, sub));
        client
    }

    /// Reads one line (panics after 5 s).
    async fn line_of(r: &mut BufReader<tokio::net::UnixStream>) -> String {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(5), r.read_line(&mut line))
            .await
            .expect("a line within 5 s")
            .unwrap();
        line
    }

    #[tokio::test]
    async fn a_follower_gets_its_lines_and_leaving_unsubscribes_it() {
        let f = crate::observe::follow::Followers::default();
        let mut all = BufReader::new(follower(&f, None));
        let mut acme = BufReader::new(follower(&f, Some("acme")));
        f.publish([("other", "{\"n\":1}"), ("acme", "{\"n\":2}")]);
        assert_eq!(line_of(&mut all).await, "{\"n\":1}\n");
        assert_eq!(line_of(&mut all).await, "{\"n\":2}\n");
        assert_eq!(line_of(&mut acme).await, "{\"n\":2}\n");
        assert_eq!(f.count(), 2);
        // The client closes its end while no event flows: its subscription ends all the same.
        drop(all);
        let gone = async {
            while f.count() != 1 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), gone)
            .await
            .expect("the follower that left is removed");
    }

    /// A client that does not read: the publisher never waits, and once the client reads again
    /// it is told how many events it lost.
    #[tokio::test]
    async fn a_slow_follower_loses_events_and_is_told_how_many() {
        use crate::observe::follow::{FOLLOWER_QUEUE, LostNotice};
        let f = crate::observe::follow::Followers::default();
        let mut slow = BufReader::new(follower(&f, None));
        // Far more than the queue and the socket's buffers hold, each publish returning at once.
        let line = format!("{{\"pad\":\"{}\"}}", "x".repeat(1000));
        let n = FOLLOWER_QUEUE * 20;
        let started = std::time::Instant::now();
        for _ in 0..n {
            f.publish([("acme", line.as_str())]);
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "publishing waited"
        );
        let (mut events, mut lost) = (0u64, 0u64);
        while events + lost < n as u64 {
            let l = line_of(&mut slow).await;
            match serde_json::from_str::<LostNotice>(&l) {
                Ok(notice) => lost += notice.lost,
                Err(_) => {
                    assert_eq!(l.trim_end(), line);
                    events += 1;
                }
            }
        }
        assert_eq!(events + lost, n as u64);
        assert!(lost > 0 && events > 0, "events {events}, lost {lost}");
    }

    /// Serves one control connection whose answer echoes the request; the client end.
    fn control_pair() -> tokio::net::UnixStream {
        let (client, server) = tokio::net::UnixStream::pair().unwrap();
        tokio::spawn(serve_control(server, |r| format!("{{\"echo\":\"{r}\"}}")));
        client
    }

    /// Reads until the server closes (or `within` passes: then panics).
    async fn until_closed(client: &mut tokio::net::UnixStream, within: Duration) -> String {
        use tokio::io::AsyncReadExt as _;
        let mut got = Vec::new();
        let read = async {
            let mut buf = [0u8; 4096];
            loop {
                match client.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(within, read)
            .await
            .expect("the server closed the connection");
        String::from_utf8_lossy(&got).into_owned()
    }

    #[tokio::test]
    async fn control_requests_are_answered() {
        let mut c = control_pair();
        c.write_all(b"status\n").await.unwrap();
        let got = until_closed(&mut c, Duration::from_secs(5)).await;
        assert_eq!(got, "{\"echo\":\"status\"}");
    }

    /// 64 MiB without a newline: the server stops reading after MAX_CONTROL_REQUEST bytes and
    /// closes, so the client cannot even send it all (an unbounded reader takes it whole and
    /// holds it, 600 MB for 300 MiB).
    #[tokio::test]
    async fn an_oversized_control_request_is_refused_and_closed() {
        let mut c = control_pair();
        let big = vec![b'x'; 64 << 20];
        let sent = tokio::time::timeout(Duration::from_secs(20), c.write_all(&big))
            .await
            .expect("the write ends: refused or taken");
        assert!(
            sent.is_err(),
            "all 64 MiB were taken by the server: the request is not bounded"
        );
    }

    #[tokio::test]
    async fn a_control_request_without_newline_is_refused_after_the_read_timeout() {
        let mut c = control_pair();
        c.write_all(b"stat").await.unwrap();
        let started = std::time::Instant::now();
        let got = until_closed(&mut c, CONTROL_READ_TIMEOUT + Duration::from_secs(5)).await;
        assert!(started.elapsed() >= CONTROL_READ_TIMEOUT - Duration::from_millis(100));
        assert!(got.contains("no request line within"), "{got}");
        // One that says too much in time gets an answer that says so.
        let mut c = control_pair();
        c.write_all(&[b'y'; MAX_CONTROL_REQUEST + 10])
            .await
            .unwrap();
        let got = until_closed(&mut c, Duration::from_secs(5)).await;
        assert!(got.contains("over 1024 bytes"), "{got}");
    }
}
