//! The state file's writer: a thread that encodes, writes and fsyncs the state file off the
//! reload's critical path, and unpins older generations once the file names a newer one.
//!
//! Under the agent's lock a reload only hands over a [`StateUpdate`]: the small head of the
//! state and each trie's prefix edits since the last update ([`PrefixLog`]), whose cost grows
//! with the change, not with the list. The thread keeps the full prefix sets itself, applies
//! the edits in order, and writes the latest state: updates that arrive while it writes are
//! merged and written once. What it writes is always a state the pinned maps held at some
//! point, never a mix of two reloads, because each update is taken whole under the lock.
//!
//! Ordering, so the file never claims what the pinned maps do not hold:
//! * the maps change first, the file after; if the agent dies in between, the file describes
//!   an older content of the same maps, which [`crate::dataplane::Dataplane::reuse`] detects
//!   (trie fingerprint, policy map) and refuses: a fresh generation is loaded;
//! * the pin folders of other generations ([`StateUpdate::retired`]) are removed only after a
//!   state naming a newer generation is on disk (fsynced and renamed); a failed write keeps
//!   them for the next one;
//! * [`Writer::flush`] waits for everything handed over so far to be on disk, and
//!   [`Writer::finish`] (also run on drop) writes what is pending and stops the thread: the
//!   agent calls it before exiting, so `--keep-attached` leaves the last state behind.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        mpsc::{self, Receiver, Sender},
    },
    thread::JoinHandle,
};

use super::State;
use crate::dataplane::trie::live::PrefixLog;

/// What changed in the state since the previous update, taken under the agent's lock
/// ([`crate::dataplane::Dataplane::state_update`]).
#[derive(Debug)]
pub struct StateUpdate {
    /// The state but its prefix sets (those of `head` are empty and ignored).
    pub head: State,
    pub v4: PrefixLog,
    pub v6: PrefixLog,
    /// Pin folders of older generations, to remove once a newer generation's state is written.
    pub retired: Vec<PathBuf>,
}

/// Why the state file was not written.
#[derive(Clone, Debug, thiserror::Error)]
pub enum WriterError {
    #[error("the state writer has stopped")]
    Stopped,
    #[error(transparent)]
    Write(Arc<super::StateError>),
}

enum Msg {
    Update(Box<StateUpdate>),
    /// Answer with the outcome of the last write once everything sent before is written.
    Flush(Sender<Result<(), WriterError>>),
}

/// The handle of the writer thread.
pub struct Writer {
    tx: Option<Sender<Msg>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread writing the state file in `dir`.
    pub fn start(dir: PathBuf) -> Self {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("embargo-state".into())
            .spawn(move || run(&dir, &rx))
            .expect("the state writer thread starts");
        Self {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    /// Hands `update` over; returns at once.
    pub fn send(&self, update: StateUpdate) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Update(Box::new(update)));
        }
    }

    /// Waits until everything sent so far is written; the outcome of the last write (`Ok` if
    /// there was nothing to write).
    pub fn flush(&self) -> Result<(), WriterError> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .as_ref()
            .and_then(|t| t.send(Msg::Flush(tx)).ok())
            .ok_or(WriterError::Stopped)?;
        rx.recv().map_err(|_| WriterError::Stopped)?
    }

    /// Writes what is pending and stops the thread; the outcome of the last write.
    pub fn finish(mut self) -> Result<(), WriterError> {
        let r = self.flush();
        self.stop();
        r
    }

    fn stop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread: merges what arrived, writes the latest state, unpins what it retires.
fn run(dir: &std::path::Path, rx: &Receiver<Msg>) {
    let mut state: Option<State> = None;
    let mut retired: Vec<PathBuf> = Vec::new();
    let mut last: Result<(), WriterError> = Ok(());
    while let Ok(first) = rx.recv() {
        let mut waiters = Vec::new();
        let mut dirty = false;
        for msg in std::iter::once(first).chain(rx.try_iter()) {
            match msg {
                Msg::Update(u) => {
                    let StateUpdate {
                        mut head,
                        v4,
                        v6,
                        retired: r,
                    } = *u;
                    let (mut p4, mut p6) = state
                        .take()
                        .map(|s| (s.v4.prefixes, s.v6.prefixes))
                        .unwrap_or_default();
                    v4.apply_to(&mut p4);
                    v6.apply_to(&mut p6);
                    head.v4.prefixes = p4;
                    head.v6.prefixes = p6;
                    state = Some(head);
                    for p in r {
                        if !retired.contains(&p) {
                            retired.push(p);
                        }
                    }
                    dirty = true;
                }
                Msg::Flush(w) => waiters.push(w),
            }
        }
        if dirty && let Some(st) = &state {
            last = super::write(dir, st).map_err(|e| WriterError::Write(Arc::new(e)));
            match &last {
                Ok(()) => {
                    let current = format!("maps-{}", st.generation);
                    retired.retain(|p| {
                        if p.file_name().is_some_and(|n| *n == *current) {
                            return false;
                        }
                        match std::fs::remove_dir_all(p) {
                            Ok(()) => {
                                tracing::info!(path = %p.display(), "unpinned the maps of an older generation");
                                false
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                            Err(e) => {
                                tracing::warn!(path = %p.display(), error = %e, "could not unpin the maps of an older generation");
                                false
                            }
                        }
                    });
                }
                Err(e) => {
                    tracing::error!(error = %e, "the state file could not be written; a restarted agent will load a fresh generation");
                }
            }
        }
        for w in waiters {
            let _ = w.send(last.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::dataplane::{state::TrieState, trie::live::Bookkeeping};

    fn trie(len: usize) -> TrieState {
        TrieState {
            len,
            fingerprint: len as u64,
            prefixes: BTreeMap::new(),
            bookkeeping: Bookkeeping {
                free: vec![],
                quarantine: vec![],
                capacity: 0,
                nodes: 0,
            },
        }
    }

    fn head(generation: &str, digest: &str) -> State {
        State {
            format: super::super::FORMAT_VERSION,
            layout: 1,
            generation: generation.into(),
            digest: digest.into(),
            maps: vec![],
            entity_ids: vec!["a".into()],
            policies: vec![(1, 3)],
            entity_capacity: 64,
            groups: vec![(0, "name:a".into())],
            group_capacity: 64,
            v4: trie(16),
            v6: trie(16),
            slots: vec![],
            carried: BTreeMap::new(),
            carried_groups: BTreeMap::new(),
            netlink_filters: vec![],
        }
    }

    #[test]
    fn writes_the_latest_state_from_edits_and_unpins_only_after() {
        let base_tmp = tempfile::Builder::new()
            .prefix("embargo-writer-")
            .tempdir()
            .unwrap();
        // A path in a fresh folder that does not exist yet.
        let base = base_tmp.path().join("t");
        let (dir, pins) = (base.join("state"), base.join("pins"));
        let old = pins.join("maps-g0");
        std::fs::create_dir_all(&old).unwrap();
        let w = Writer::start(dir.clone());
        let all: BTreeMap<(u128, u8), u32> = [((0x0a00_0000, 8), 0), ((0xc000_0200, 24), 0)].into();
        w.send(StateUpdate {
            head: head("g1", "d1"),
            v4: PrefixLog::All(all),
            v6: PrefixLog::All(BTreeMap::new()),
            retired: vec![old.clone(), pins.join("maps-g1")],
        });
        w.flush().unwrap();
        let st = crate::dataplane::state::read(&dir).unwrap().unwrap();
        assert_eq!((st.generation.as_str(), st.v4.prefixes.len()), ("g1", 2));
        assert!(!old.exists(), "unpinned once the file names g1");
        // A burst of edits: the file ends with all of them applied, in order.
        for (i, edits) in [
            vec![((0xc633_6400, 24), Some(1))],
            vec![((0x0a00_0000, 8), None), ((0xc633_6400, 24), Some(2))],
            vec![((0xcb00_7100, 24), Some(0))],
        ]
        .into_iter()
        .enumerate()
        {
            w.send(StateUpdate {
                head: head("g1", &format!("d{}", i + 2)),
                v4: PrefixLog::Edits(edits),
                v6: PrefixLog::Edits(vec![]),
                retired: vec![],
            });
        }
        w.finish().unwrap();
        let st = crate::dataplane::state::read(&dir).unwrap().unwrap();
        assert_eq!(st.digest, "d4");
        let want: BTreeMap<(u128, u8), u32> = [
            ((0xc000_0200, 24), 0),
            ((0xc633_6400, 24), 2),
            ((0xcb00_7100, 24), 0),
        ]
        .into();
        assert_eq!(st.v4.prefixes, want);
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_failed_write_keeps_the_old_generation_pinned() {
        let base_tmp = tempfile::Builder::new()
            .prefix("embargo-writer-bad-")
            .tempdir()
            .unwrap();
        // A path in a fresh folder that does not exist yet.
        let base = base_tmp.path().join("t");
        let old = base.join("pins/maps-g0");
        std::fs::create_dir_all(&old).unwrap();
        // The state "folder" is a file: every write fails.
        let dir = base.join("state");
        std::fs::write(&dir, "not a folder").unwrap();
        let w = Writer::start(dir);
        w.send(StateUpdate {
            head: head("g1", "d1"),
            v4: PrefixLog::All(BTreeMap::new()),
            v6: PrefixLog::All(BTreeMap::new()),
            retired: vec![old.clone()],
        });
        let e = w.finish().unwrap_err();
        assert!(e.to_string().contains("writing the state file"), "{e}");
        assert!(
            old.exists(),
            "still pinned: no state names a newer generation"
        );
        let _ = std::fs::remove_dir_all(&base);
    }
}
