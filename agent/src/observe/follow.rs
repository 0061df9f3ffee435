//! Followers of the drop and monitor events: `embargo events --follow` clients of the control
//! socket, each with its own bounded queue of event lines.
//!
//! The events reader ([`super::events::Reader`]) publishes every line it writes to the
//! [`Followers`]; each follower's connection task ([`crate::run::control`]) takes lines from
//! its [`Subscription`] and writes them to its client.
//!
//! Invariants: publishing never waits: a line goes into each matching follower's queue
//! ([`FOLLOWER_QUEUE`] lines) or, when that queue is full, is counted as lost for that follower
//! only ([`Subscription::take_lost`]), so a slow client loses events and never slows the
//! reader, the agent or the other followers; a line is formatted once and shared by every
//! queue; at most [`MAX_FOLLOWERS`] follow at once; a follower is removed when its
//! [`Subscription`] drops (its client went away), whether or not events flow.

use std::{
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{events::Record, status::StatusError};
use crate::run::control::Request;

/// Lines queued per follower before its events are counted as lost.
pub const FOLLOWER_QUEUE: usize = 1024;
/// Followers served at once; one more is refused with an error answer.
pub const MAX_FOLLOWERS: usize = 8;

/// Why a follower was not subscribed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FollowError {
    #[error(
        "{MAX_FOLLOWERS} clients already follow the events; stop one (or read the events log) and try again"
    )]
    TooMany,
}

/// The line a follower gets, in the stream, after events it lost (instead of the events).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LostNotice {
    /// Events not sent to this follower since the last notice.
    pub lost: u64,
    pub notice: String,
}

impl LostNotice {
    pub fn new(lost: u64) -> Self {
        Self {
            lost,
            notice: format!(
                "{lost} events were not sent to this client: it read them too slowly (the agent never waits for a client)"
            ),
        }
    }
}

struct Slot {
    id: u64,
    /// Only this entity's events, if set.
    entity: Option<String>,
    tx: mpsc::Sender<Arc<str>>,
    lost: Arc<AtomicU64>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    slots: Vec<Slot>,
}

/// Everyone following the events; cheap to clone (one shared list).
#[derive(Clone, Default)]
pub struct Followers {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Followers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Followers")
            .field("count", &self.count())
            .finish()
    }
}

impl Followers {
    /// A new follower of every event, or of `entity`'s only.
    pub fn subscribe(&self, entity: Option<String>) -> Result<Subscription, FollowError> {
        let mut inner = self.inner.lock().expect("not poisoned");
        if inner.slots.len() >= MAX_FOLLOWERS {
            return Err(FollowError::TooMany);
        }
        let (tx, rx) = mpsc::channel(FOLLOWER_QUEUE);
        let lost = Arc::new(AtomicU64::new(0));
        let id = inner.next_id;
        inner.next_id += 1;
        inner.slots.push(Slot {
            id,
            entity,
            tx,
            lost: Arc::clone(&lost),
        });
        Ok(Subscription {
            id,
            followers: self.clone(),
            rx,
            lost,
        })
    }

    /// How many follow now.
    pub fn count(&self) -> usize {
        self.inner.lock().expect("not poisoned").slots.len()
    }

    /// Queues each `(entity, line)` for every follower it concerns; never waits. A line for
    /// a follower whose queue is full is counted as lost for that follower.
    pub fn publish<'a>(&self, lines: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let inner = self.inner.lock().expect("not poisoned");
        if inner.slots.is_empty() {
            return;
        }
        for (entity, line) in lines {
            let shared: Arc<str> = Arc::from(line);
            for slot in &inner.slots {
                if slot.entity.as_deref().is_some_and(|e| e != entity) {
                    continue;
                }
                match slot.tx.try_send(Arc::clone(&shared)) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        slot.lost.fetch_add(1, Ordering::Relaxed);
                    }
                    // Its subscription is being dropped and removes it.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
    }

    fn remove(&self, id: u64) {
        self.inner
            .lock()
            .expect("not poisoned")
            .slots
            .retain(|s| s.id != id);
    }
}

/// One follower's end: its queued lines and its lost count. Dropping it unsubscribes.
pub struct Subscription {
    id: u64,
    followers: Followers,
    rx: mpsc::Receiver<Arc<str>>,
    lost: Arc<AtomicU64>,
}

impl Subscription {
    /// The next queued line (waits for one).
    pub async fn recv(&mut self) -> Option<Arc<str>> {
        self.rx.recv().await
    }

    /// A queued line, if one is waiting (never waits).
    pub fn try_recv(&mut self) -> Option<Arc<str>> {
        self.rx.try_recv().ok()
    }

    /// Events lost since the last call (and resets the count).
    pub fn take_lost(&self) -> u64 {
        self.lost.swap(0, Ordering::Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.followers.remove(self.id);
    }
}

// ---------------------------------------------------------------------------------------------
// The client: `embargo events --follow`.

/// Longest line read from the stream (an event record is a few hundred bytes).
pub const MAX_FOLLOW_LINE: u64 = 64 * 1024;

/// One line of the stream, as the client reads it.
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    /// An event, as the events log writes it.
    Event(Box<Record>),
    /// Events this client lost.
    Lost(LostNotice),
}

/// Reads one stream line: the agent's error answer, a lost notice or an event record.
pub fn parse_line(socket: &Path, line: &str) -> Result<Line, StatusError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct AgentError {
        error: String,
    }
    if let Ok(e) = serde_json::from_str::<AgentError>(line) {
        return Err(StatusError::Agent {
            path: socket.to_owned(),
            message: e.error,
        });
    }
    if let Ok(n) = serde_json::from_str::<LostNotice>(line) {
        return Ok(Line::Lost(n));
    }
    serde_json::from_str::<Record>(line)
        .map(|r| Line::Event(Box::new(r)))
        .map_err(|e| StatusError::Protocol {
            path: socket.to_owned(),
            message: format!("{e} in `{line}`"),
        })
}

/// Follows the events of the agent at `socket` (of `entity` only, if given): calls `each`
/// with every line (as sent, without its newline) and what it says, until `each` returns
/// false (`Ok(true)`), or the agent closes the stream (`Ok(false)`: it stopped).
pub fn follow(
    socket: &Path,
    entity: Option<&str>,
    mut each: impl FnMut(&str, Line) -> bool,
) -> Result<bool, StatusError> {
    use std::io::{BufRead as _, Read as _, Write as _};
    let connect = |source| StatusError::Connect {
        path: socket.to_owned(),
        source,
    };
    let mut stream = std::os::unix::net::UnixStream::connect(socket).map_err(connect)?;
    stream
        .set_write_timeout(Some(std::time::Duration::from_secs(30)))
        .map_err(connect)?;
    stream
        .write_all(Request::follow_line(entity).as_bytes())
        .map_err(connect)?;
    let mut reader = std::io::BufReader::new(stream);
    let mut buf = Vec::with_capacity(1024);
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_FOLLOW_LINE)
            .read_until(b'\n', &mut buf)
            .map_err(connect)?;
        if n == 0 {
            return Ok(false);
        }
        if buf.last() != Some(&b'\n') {
            if n as u64 >= MAX_FOLLOW_LINE {
                return Err(StatusError::Protocol {
                    path: socket.to_owned(),
                    message: format!("a line over {MAX_FOLLOW_LINE} bytes"),
                });
            }
            // The end of the stream without a newline: the agent's error answer (it has
            // none), or the agent stopped in the middle of a line.
            return match parse_line(socket, &String::from_utf8_lossy(&buf)) {
                Err(e @ StatusError::Agent { .. }) => Err(e),
                _ => Ok(false),
            };
        }
        let text = String::from_utf8_lossy(&buf[..buf.len() - 1]);
        let line = parse_line(socket, &text)?;
        if !each(&text, line) {
            return Ok(true);
        }
    }
}

/// `ip:port`, `[ip]:port` for IPv6, or the address alone.
fn endpoint(addr: std::net::IpAddr, port: Option<u16>) -> String {
    match (addr, port) {
        (std::net::IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
        (a, Some(p)) => format!("{a}:{p}"),
        (a, None) => a.to_string(),
    }
}

/// The text line of a stream line: an event as `TIME VERDICT DIRECTION INTERFACE PROTOCOL
/// SOURCE -> DESTINATION entity ID (DESIGNATIONS) LENGTH bytes`, a lost notice as `# ...`.
pub fn render(line: &Line) -> String {
    match line {
        Line::Lost(n) => format!("# {}", n.notice),
        Line::Event(r) => {
            let designations: Vec<String> = r
                .designations
                .iter()
                .map(|d| format!("{} {}", d.authority, d.reference))
                .collect();
            format!(
                "{} {} {} {} {} {} -> {} entity {}{} {} bytes",
                r.time,
                r.verdict,
                r.direction,
                r.interface,
                r.protocol,
                endpoint(r.source, r.source_port),
                endpoint(r.destination, r.destination_port),
                r.entity,
                if designations.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", designations.join(", "))
                },
                r.length
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_follower_gets_its_entity_and_a_full_queue_counts_lost_events() {
        let f = Followers::default();
        let mut all = f.subscribe(None).unwrap();
        let mut acme = f.subscribe(Some("acme".into())).unwrap();
        f.publish([("acme", "a1"), ("other", "o1"), ("acme", "a2")]);
        for want in ["a1", "o1", "a2"] {
            assert_eq!(&*all.recv().await.unwrap(), want);
        }
        for want in ["a1", "a2"] {
            assert_eq!(&*acme.recv().await.unwrap(), want);
        }
        // `acme` reads nothing more; `all` keeps up. Past the queue, only `acme` loses.
        let lines: Vec<String> = (0..FOLLOWER_QUEUE + 10).map(|i| i.to_string()).collect();
        for l in &lines {
            f.publish([("acme", l.as_str())]);
            assert_eq!(&*all.recv().await.unwrap(), l.as_str());
        }
        assert_eq!(all.take_lost(), 0);
        assert_eq!(acme.take_lost(), 10);
        assert_eq!(acme.take_lost(), 0, "the count starts again");
        // What was queued is still there, oldest first.
        assert_eq!(&*acme.recv().await.unwrap(), "0");
    }

    #[tokio::test]
    async fn a_dropped_subscription_leaves_and_the_number_of_followers_is_capped() {
        let f = Followers::default();
        let subs: Vec<_> = (0..MAX_FOLLOWERS)
            .map(|_| f.subscribe(None).unwrap())
            .collect();
        assert_eq!(f.subscribe(None).err(), Some(FollowError::TooMany));
        drop(subs);
        // Gone without any event published.
        assert_eq!(f.count(), 0);
        let _one = f.subscribe(None).unwrap();
        assert_eq!(f.count(), 1);
    }

    #[test]
    fn stream_lines_read_back_and_render_as_text() {
        let socket = Path::new("/run/embargo/control.sock");
        let event = r#"{"time":"2026-01-01T00:00:00.000123Z","interface":"eth1","direction":"outbound","verdict":"dropped","family":"ipv4","source":"198.18.0.2","destination":"203.0.113.7","protocol":"udp","source_port":40000,"destination_port":53,"length":106,"entity":"acme","designations":[{"authority":"UK","reference":"CYB0114"}],"policy_digest":"ab12"}"#;
        let line = parse_line(socket, event).unwrap();
        assert_eq!(
            render(&line),
            "2026-01-01T00:00:00.000123Z dropped outbound eth1 udp 198.18.0.2:40000 -> 203.0.113.7:53 entity acme (UK CYB0114) 106 bytes"
        );
        let v6 = event
            .replace("198.18.0.2", "2001:db8::1")
            .replace(r#""destination_port":53"#, r#""destination_port":null"#)
            .replace(
                r#""designations":[{"authority":"UK","reference":"CYB0114"}]"#,
                r#""designations":[]"#,
            );
        assert!(
            render(&parse_line(socket, &v6).unwrap())
                .contains(" [2001:db8::1]:40000 -> 203.0.113.7 entity acme 106 bytes"),
        );
        let lost = serde_json::to_string(&LostNotice::new(7)).unwrap();
        assert_eq!(
            parse_line(socket, &lost).unwrap(),
            Line::Lost(LostNotice::new(7))
        );
        assert!(render(&Line::Lost(LostNotice::new(7))).starts_with("# 7 events were not sent"));
        let e = parse_line(socket, r#"{"error":"no entity `x`"}"#).unwrap_err();
        assert!(e.to_string().contains("answered: no entity `x`"), "{e}");
        let e = parse_line(socket, "{}").unwrap_err();
        assert!(e.to_string().contains("unreadable answer"), "{e}");
    }

    /// Regression: the agent's error answer (`{"error": ...}`, no newline, then the end of the
    /// stream) was taken for the agent stopping, so `--entity nobody` said "it stopped".
    #[test]
    fn the_agents_refusal_is_an_error_naming_it_and_the_end_of_the_stream_is_not() {
        use std::io::{BufRead as _, Write as _};
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("control.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            for answer in [
                r#"{"error":"no entity `nobody` in the policy in force"}"#.to_owned(),
                format!("{}\n", serde_json::to_string(&LostNotice::new(2)).unwrap()),
            ] {
                let (mut conn, _) = listener.accept().unwrap();
                let mut request = String::new();
                std::io::BufReader::new(&conn)
                    .read_line(&mut request)
                    .unwrap();
                conn.write_all(answer.as_bytes()).unwrap();
            }
        });
        let e = follow(&socket, Some("nobody"), |_, _| true).unwrap_err();
        assert!(e.to_string().contains("no entity `nobody`"), "{e}");
        let mut got = Vec::new();
        let stopped = follow(&socket, None, |_, l| {
            got.push(l);
            true
        });
        assert!(!stopped.unwrap(), "the agent closed the stream");
        assert_eq!(got, [Line::Lost(LostNotice::new(2))]);
        server.join().unwrap();
    }

    #[test]
    fn the_lost_notice_reads_back() {
        let n = LostNotice::new(3);
        let line = serde_json::to_string(&n).unwrap();
        assert!(
            line.starts_with(r#"{"lost":3,"notice":"3 events were not sent"#),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<LostNotice>(&line).unwrap(), n);
    }
}
