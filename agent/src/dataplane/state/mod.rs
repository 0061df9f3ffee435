//! The data-plane state file: what a restarted agent needs to reuse the maps a previous agent
//! pinned and apply its own policy to them as a diff.
//!
//! Format 4 (issue 13): the tries are compact tries; each trie's bookkeeping is its free and
//! quarantined space (extents of nodes) and node count instead of the stride trie's node lists.
//! A file of format 3 is refused cleanly like one of format 2, below (the maps it describes
//! have another layout anyway).
//!
//! Format 3 (issue 14): trie records carry evidence group indices, and the head lists the
//! groups (entity index and key, by group index), the group table's capacity and the groups'
//! carried counters. A file of format 2 is refused cleanly (its trie records hold entity
//! indices, which this agent would read as group indices): [`decode`] says which format it
//! found and the agent loads a fresh generation (whose maps, of layout 3, differ anyway).
//!
//! The maps live in bpffs (`<pin dir>/maps-<generation>/`), which holds no regular files; this
//! file lives in the state folder (`--state-dir`, default [`DEFAULT_STATE_DIR`], created 0700).
//! It describes exactly what the pinned maps held when it was written: the generation, each
//! map's kernel id and size, the entity indices and policies, each trie's prefix set, node
//! bookkeeping and content fingerprint, the interfaces' counter slots, and the TC egress
//! attachments. It is written atomically ([`crate::files::write::write_atomic`]: an exclusive
//! temporary file, fsync, rename, fsync of the folder; the folder kept 0700 and the agent's own)
//! by a writer thread ([`writer`]), off the reload's critical path, after the policies the agent
//! applies: each write holds the latest state, so a burst of reloads is one write.
//!
//! A restarted agent trusts it only if everything agrees (see
//! [`crate::dataplane::Dataplane::reuse`]); anything else means a fresh generation. A file that
//! lags behind the maps (the agent was killed between a reload and its write) is such a case:
//! the trie fingerprint or the policy map no longer matches it.
//!
//! # Encoding (format [`FORMAT_VERSION`], file [`FILE_NAME`])
//!
//! All integers little-endian:
//!
//! | bytes | what |
//! | --- | --- |
//! | 8 | magic `EMBSTATE` |
//! | 4 | format version (`u32`) |
//! | 4 | head length H (`u32`) |
//! | H | the head: [`State`] as JSON, without the prefix sets |
//! | 8 | IPv4 prefix count N4 (`u64`) |
//! | 9 x N4 | IPv4 records: network address (`u32`), length (`u8`), group index (`u32`) |
//! | 8 | IPv6 prefix count N6 (`u64`) |
//! | 21 x N6 | IPv6 records: network address (`u128`), length (`u8`), group index (`u32`) |
//! | 4 | CRC-32 (IEEE) of every byte before it |
//!
//! Records are in ascending `(address, length)` order, each once. At 1M IPv4 and 200k IPv6
//! prefixes that is 13 MB where format 1 (JSON, every prefix a hex string) took 28 MB
//! (BENCHMARKS.md, "Reload cost with the restart state file"). [`read`] checks
//! the checksum before anything else, then the magic, version, lengths, order and ranges: a
//! truncated or corrupt file is an error ([`StateError::Corrupt`]), and the agent loads a fresh
//! generation. A `dataplane.json` of format 1 is not read (an error saying so, then a fresh
//! generation) and is removed by the next write.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{dataplane::trie::live::Bookkeeping, files::write};

/// Where the state file lives by default.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/embargo/state";
/// The state file's name in the state folder.
pub const FILE_NAME: &str = "dataplane.state";
/// The file format 1 wrote (JSON): not read any more, removed by the next write.
pub const OLD_FILE_NAME: &str = "dataplane.json";
/// Version of this file's format; a file of another version is not used.
pub const FORMAT_VERSION: u32 = 4;
/// The file's first bytes.
const MAGIC: &[u8; 8] = b"EMBSTATE";
/// Bytes of an IPv4 and an IPv6 prefix record.
const V4_RECORD: usize = 9;
const V6_RECORD: usize = 21;

pub mod writer;

pub use writer::{StateUpdate, Writer, WriterError};

/// Errors reading or writing the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("reading the state file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the state file {path} is not valid (its head, line {line}, column {column}): {source}; it is ignored and a fresh data-plane generation loaded"
    )]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the state file {path} is not valid: {reason}; it is ignored and a fresh data-plane generation loaded"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{path} is a state file of format 1, this agent reads format {FORMAT_VERSION}; it is ignored and a fresh data-plane generation loaded"
    )]
    OldFormat {
        path: PathBuf,
        /// The netlink egress filters it names (none if it cannot be read), so the agent still
        /// takes them over and `embargo detach` still removes them.
        netlink_filters: Vec<NetlinkFilter>,
    },
    /// The state folder is not safe to use, or the file could not be written safely.
    #[error("{doing} the state file {path}: {source}")]
    Unsafe {
        path: PathBuf,
        doing: &'static str,
        #[source]
        source: write::SafeFsError,
    },
    #[error("writing the state file {path}: {source}; check the --state-dir folder")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One pinned map, as the kernel described it when the state was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapRecord {
    pub name: String,
    /// The kernel's map id: the pinned map must be this very map.
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

/// A trie's prefix set: `(network address, length) -> group index`, as
/// [`crate::dataplane::trie::live::LiveTrie`] keeps it.
pub type PrefixSet = BTreeMap<(u128, u8), u32>;

/// One trie: its mapped length, content fingerprint, prefixes and space bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrieState {
    /// Entries mapped (the trie's length).
    pub len: usize,
    /// [`crate::dataplane::trie::mapped::Mirrored::fingerprint`] of what was written.
    pub fingerprint: u64,
    /// The prefix set: in the file's binary records, not in its JSON head.
    #[serde(skip)]
    pub prefixes: PrefixSet,
    pub bookkeeping: Bookkeeping,
}

/// An interface's counter slot and role-map flags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotState {
    pub slot: u32,
    pub ifindex: u32,
    pub flags: u8,
}

/// A TC egress attachment made with netlink (a `cls_bpf` filter), which no pin describes: its
/// priority and handle, so the next agent can replace its program in place, and whether the
/// agent added the `clsact` qdisc. TCX links are pinned instead (`tc-<interface>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetlinkFilter {
    pub interface: String,
    pub priority: u16,
    /// The filter handle, `major << 16 | minor`.
    pub handle: u32,
    pub added_clsact: bool,
}

/// Packets and bytes `[direction][verdict]` of an entity or group, carried from earlier
/// generations.
pub type Carried = [[(u64, u64); 2]; 2];

/// The state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// [`FORMAT_VERSION`].
    pub format: u32,
    /// [`embargo_abi::LAYOUT_VERSION`] of the agent that created the maps.
    pub layout: u32,
    /// The data-plane generation whose maps are pinned at `<pin dir>/maps-<generation>`.
    pub generation: String,
    /// Digest of the policy last applied.
    pub digest: String,
    pub maps: Vec<MapRecord>,
    /// Entity ids by data-plane index ([`crate::policy::EntityIndex`]).
    pub entity_ids: Vec<String>,
    /// Policy-map values by entity index: `(action, directions)`.
    pub policies: Vec<(u8, u8)>,
    pub entity_capacity: u32,
    /// Evidence groups by data-plane index: `(entity index, key)`
    /// ([`crate::policy::EntityIndex`]); the group table holds each one's entity index.
    pub groups: Vec<(u32, String)>,
    pub group_capacity: u32,
    pub v4: TrieState,
    pub v6: TrieState,
    pub slots: Vec<SlotState>,
    /// Counters of generations before this one, by entity id, so totals never go back.
    pub carried: BTreeMap<String, Carried>,
    /// Counters of generations before this one, by group ([`group_carry_key`]).
    pub carried_groups: BTreeMap<String, Carried>,
    pub netlink_filters: Vec<NetlinkFilter>,
}

/// The key of a group's carried counters: its entity's id and its key.
pub fn group_carry_key(entity_id: &str, key: &str) -> String {
    format!("{entity_id}/{key}")
}

/// Largest state file read (a FIFO or a device there is refused whatever its size): far over
/// what the guard's most prefixes take (5,000,000 IPv6 records of 21 bytes).
const MAX_READ_BYTES: u64 = 1 << 30;

/// The state file's path in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Reads the state file in `dir`; `Ok(None)` if there is none. Refused when group or others
/// can write in `dir` ([`StateError::Unsafe`]).
pub fn read(dir: &Path) -> Result<Option<State>, StateError> {
    use crate::files::read::{InputError, read_bytes};
    let path = path(dir);
    // A file in a folder anybody could write in may have been planted: not trusted. Another
    // owner is accepted for reading (root running `embargo detach` on the folder of an agent
    // running as its own user); writing refuses it.
    match write::check_dir(dir, "state folder") {
        Ok(()) | Err(write::SafeFsError::ForeignOwner { .. }) => {}
        Err(write::SafeFsError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return Ok(None);
        }
        Err(source) => {
            return Err(StateError::Unsafe {
                path,
                doing: "reading",
                source,
            });
        }
    }
    let bytes = match read_bytes(&path, MAX_READ_BYTES) {
        Ok(b) => b,
        Err(InputError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            let old = dir.join(OLD_FILE_NAME);
            return match read_bytes(&old, MAX_READ_BYTES) {
                Ok(text) => {
                    /// The one part of a format 1 file still used.
                    #[derive(Deserialize)]
                    struct Old {
                        netlink_filters: Vec<NetlinkFilter>,
                    }
                    let netlink_filters = serde_json::from_slice::<Old>(&text)
                        .map(|o| o.netlink_filters)
                        .unwrap_or_default();
                    Err(StateError::OldFormat {
                        path: old,
                        netlink_filters,
                    })
                }
                Err(_) => Ok(None),
            };
        }
        Err(InputError::Io { source, .. }) => return Err(StateError::Read { path, source }),
        // Not a regular file, or larger than any state file the agent writes: ignored like a
        // damaged one.
        Err(e) => {
            return Err(StateError::Corrupt {
                reason: e.to_string(),
                path,
            });
        }
    };
    decode(&path, &bytes).map(Some)
}

/// Writes `prefixes` as records of `width` address bytes.
fn encode_prefixes(out: &mut Vec<u8>, prefixes: &PrefixSet, width: usize) {
    out.extend_from_slice(&(prefixes.len() as u64).to_le_bytes());
    out.reserve(prefixes.len() * (width + 5));
    for (&(addr, len), &entity) in prefixes {
        out.extend_from_slice(&addr.to_le_bytes()[..width]);
        out.push(len);
        out.extend_from_slice(&entity.to_le_bytes());
    }
}

/// The file's bytes for `state` (see the module's header).
pub fn encode(state: &State) -> Vec<u8> {
    let head = serde_json::to_vec(state).expect("the state serializes");
    let mut out = Vec::with_capacity(
        40 + head.len() + state.v4.prefixes.len() * V4_RECORD + state.v6.prefixes.len() * V6_RECORD,
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(&head);
    encode_prefixes(&mut out, &state.v4.prefixes, 4);
    encode_prefixes(&mut out, &state.v6.prefixes, 16);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Reads the file's bytes (`path` names it in errors); see the module's header.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<State, StateError> {
    let corrupt = |reason: String| StateError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let Some((body, crc)) = bytes.split_last_chunk::<4>() else {
        return Err(corrupt(format!("{} bytes, too short", bytes.len())));
    };
    if crc32fast::hash(body) != u32::from_le_bytes(*crc) {
        return Err(corrupt(
            "its checksum does not match (truncated or damaged)".into(),
        ));
    }
    let mut r = Reader { bytes: body, at: 0 };
    if r.take(8).map_err(|e| corrupt(e.to_string()))? != MAGIC {
        return Err(corrupt("it does not start with EMBSTATE".into()));
    }
    let format = u32::from_le_bytes(r.array().map_err(|e| corrupt(e.to_string()))?);
    if format != FORMAT_VERSION {
        return Err(corrupt(format!(
            "it has format {format}, this agent reads {FORMAT_VERSION}"
        )));
    }
    let head_len = u32::from_le_bytes(r.array().map_err(|e| corrupt(e.to_string()))?) as usize;
    let head = r.take(head_len).map_err(|e| corrupt(e.to_string()))?;
    let mut state: State = serde_json::from_slice(head).map_err(|source| StateError::Parse {
        path: path.to_owned(),
        line: source.line(),
        column: source.column(),
        source,
    })?;
    state.v4.prefixes =
        decode_prefixes(&mut r, 4, 32, "IPv4").map_err(|e| corrupt(e.to_string()))?;
    state.v6.prefixes =
        decode_prefixes(&mut r, 16, 128, "IPv6").map_err(|e| corrupt(e.to_string()))?;
    if r.at != body.len() {
        return Err(corrupt(format!(
            "{} bytes after the IPv6 prefixes",
            body.len() - r.at
        )));
    }
    Ok(state)
}

/// What is wrong in the file's binary part (the reason of a [`StateError::Corrupt`]).
#[derive(Debug, thiserror::Error)]
enum Malformed {
    #[error("it ends at byte {len} inside a field")]
    Truncated { len: usize },
    #[error("{count} {family} prefixes cannot be")]
    Count { count: u64, family: &'static str },
    #[error("an {family} prefix of length {len}")]
    PrefixLength { family: &'static str, len: u8 },
    #[error("the {family} prefixes are not in order")]
    Order { family: &'static str },
}

/// A cursor over the file's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or(Malformed::Truncated {
                len: self.bytes.len(),
            })?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
}

fn decode_prefixes(
    r: &mut Reader<'_>,
    width: usize,
    bits: u8,
    family: &'static str,
) -> Result<PrefixSet, Malformed> {
    let count = u64::from_le_bytes(r.array()?);
    let record = width + 5;
    let len = usize::try_from(count)
        .ok()
        .and_then(|c| c.checked_mul(record))
        .ok_or(Malformed::Count { count, family })?;
    let records = r.take(len)?;
    let mut out = Vec::with_capacity(records.len() / record);
    for rec in records.chunks_exact(record) {
        let mut addr = [0u8; 16];
        addr[..width].copy_from_slice(&rec[..width]);
        let key = (u128::from_le_bytes(addr), rec[width]);
        let entity = u32::from_le_bytes(rec[width + 1..].try_into().expect("4 bytes"));
        if key.1 > bits {
            return Err(Malformed::PrefixLength { family, len: key.1 });
        }
        if out.last().is_some_and(|(last, _)| *last >= key) {
            return Err(Malformed::Order { family });
        }
        out.push((key, entity));
    }
    Ok(out.into_iter().collect())
}

/// Writes `state` to `dir` atomically: the old file or the new one, never a mix. Creates `dir`
/// (0700) if missing, and removes a file of format 1 there.
pub fn write(dir: &Path, state: &State) -> Result<(), StateError> {
    write_bytes(dir, &encode(state))
}

/// Writes encoded state (see [`encode`]) to `dir` atomically, as [`write`] does. The folder is
/// created 0700, an existing one of the agent's user tightened to 0700 and one of another user
/// refused ([`write::ensure_private_dir`]); the file is written 0600 through
/// [`write::write_atomic`] (never through a symlink).
pub fn write_bytes(dir: &Path, body: &[u8]) -> Result<(), StateError> {
    let path = path(dir);
    let unsafe_err = |source| StateError::Unsafe {
        path: path.clone(),
        doing: "writing",
        source,
    };
    write::ensure_private_dir(dir, "state folder").map_err(unsafe_err)?;
    write::write_atomic(&path, body, write::Mode::Exact(0o600)).map_err(unsafe_err)?;
    let _ = std::fs::remove_file(dir.join(OLD_FILE_NAME));
    Ok(())
}

/// Removes the state file in `dir` (and the folder if that leaves it empty). Returns whether
/// there was one.
pub fn remove(dir: &Path) -> Result<bool, StateError> {
    let path = path(dir);
    let existed = match std::fs::remove_file(&path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(source) => return Err(StateError::Write { path, source }),
    };
    // Temporaries of writes that were killed midway; the fixed name of older versions.
    for tmp in write::stale_temporaries(&path) {
        let _ = std::fs::remove_file(tmp);
    }
    let _ = std::fs::remove_file(dir.join(format!("{FILE_NAME}.tmp")));
    let old = std::fs::remove_file(dir.join(OLD_FILE_NAME)).is_ok();
    let _ = std::fs::remove_dir(dir);
    Ok(existed || old)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};

    use super::*;

    fn sample() -> State {
        State {
            format: FORMAT_VERSION,
            layout: embargo_abi::LAYOUT_VERSION,
            generation: "g1".into(),
            digest: "d".into(),
            maps: vec![MapRecord {
                name: "EMB_V4".into(),
                id: 7,
                key_size: 4,
                value_size: 64,
                max_entries: 1,
            }],
            entity_ids: vec!["a".into()],
            policies: vec![(1, 3)],
            entity_capacity: 64,
            groups: vec![(0, "name:a".into()), (0, "source:s#0".into())],
            group_capacity: 64,
            v4: TrieState {
                len: 16,
                fingerprint: 42,
                prefixes: [
                    ((0xc000_0200, 24), 0),
                    ((0xc633_6400, 24), 1),
                    ((u128::from(u32::MAX), 32), 1),
                ]
                .into_iter()
                .collect(),
                bookkeeping: Bookkeeping {
                    free: vec![],
                    quarantine: vec![],
                    capacity: 0,
                    nodes: 0,
                },
            },
            v6: TrieState {
                len: 16,
                fingerprint: 0,
                prefixes: [((0x2001_0db8 << 96, 32), 0), ((u128::MAX, 128), 1)]
                    .into_iter()
                    .collect(),
                bookkeeping: Bookkeeping {
                    free: vec![],
                    quarantine: vec![],
                    capacity: 0,
                    nodes: 0,
                },
            },
            slots: vec![SlotState {
                slot: 0,
                ifindex: 3,
                flags: 1,
            }],
            carried: BTreeMap::new(),
            carried_groups: BTreeMap::new(),
            netlink_filters: vec![],
        }
    }

    #[test]
    fn round_trips_atomically_in_a_private_folder() {
        let dir_tmp = tempfile::Builder::new()
            .prefix("embargo-state-test-")
            .tempdir()
            .unwrap();
        // A path in a fresh folder that does not exist yet.
        let dir = dir_tmp.path().join("t");
        assert_eq!(read(&dir).unwrap(), None, "no file: no state");
        write(&dir, &sample()).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let back = read(&dir).unwrap().unwrap();
        assert_eq!(back, sample());
        assert_eq!(back.v4.prefixes.len(), 3);
        assert_eq!(back.v6.prefixes[&(u128::MAX, 128)], 1);
        assert!(!dir.join(format!("{FILE_NAME}.tmp")).exists());
        assert!(remove(&dir).unwrap());
        assert!(!dir.exists());
    }

    #[test]
    fn records_are_fixed_width_and_little_endian() {
        let bytes = encode(&sample());
        let head = serde_json::to_vec(&sample()).unwrap();
        assert_eq!(bytes.len(), 16 + head.len() + 8 + 3 * 9 + 8 + 2 * 21 + 4);
        assert_eq!(&bytes[..8], b"EMBSTATE");
        assert_eq!(bytes[8..12], FORMAT_VERSION.to_le_bytes());
        let v4 = 16 + head.len();
        assert_eq!(bytes[v4..v4 + 8], 3u64.to_le_bytes());
        // 192.0.2.0/24 -> entity 0 comes first.
        assert_eq!(bytes[v4 + 8..v4 + 17], [0, 2, 0, 0xc0, 24, 0, 0, 0, 0]);
        assert!(
            !String::from_utf8_lossy(&head).contains("c0000200"),
            "no prefix in the JSON head"
        );
    }

    #[test]
    fn a_truncated_or_damaged_file_is_an_error_naming_it() {
        let path = Path::new("/state/dataplane.state");
        let good = encode(&sample());
        assert_eq!(decode(path, &good).unwrap(), sample());
        let mut bad: Vec<(String, Vec<u8>)> = [0, 3, 4, 20, good.len() / 2, good.len() - 1]
            .into_iter()
            .map(|n| (format!("cut to {n} bytes"), good[..n].to_vec()))
            .collect();
        for at in [0, 9, 20, good.len() - 30, good.len() - 2] {
            let mut b = good.clone();
            b[at] ^= 0x10;
            bad.push((format!("byte {at} flipped"), b));
        }
        bad.push((
            "format 1 text".into(),
            b"{\"format\": 1, \"layout\"".to_vec(),
        ));
        let mut extra = good[..good.len() - 4].to_vec();
        extra.push(0);
        let crc = crc32fast::hash(&extra);
        extra.extend_from_slice(&crc.to_le_bytes());
        bad.push(("a byte too many, checksum recomputed".into(), extra));
        for (case, bytes) in bad {
            let e = decode(path, &bytes).unwrap_err();
            assert!(matches!(e, StateError::Corrupt { .. }), "{case}: {e}");
            let msg = e.to_string();
            assert!(
                msg.contains("dataplane.state") && msg.contains("is not valid"),
                "{case}: {msg}"
            );
            assert!(msg.contains("fresh data-plane generation"), "{case}: {msg}");
        }
    }

    /// Re-encodes `state` with its IPv4 records swapped and a valid checksum.
    fn with_records_swapped(state: &State) -> Vec<u8> {
        let mut b = encode(state);
        let v4 = 16 + serde_json::to_vec(state).unwrap().len() + 8;
        let (first, second) = (b[v4..v4 + 9].to_vec(), b[v4 + 9..v4 + 18].to_vec());
        b[v4..v4 + 9].copy_from_slice(&second);
        b[v4 + 9..v4 + 18].copy_from_slice(&first);
        let n = b.len() - 4;
        let crc = crc32fast::hash(&b[..n]);
        b[n..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    #[test]
    fn checksummed_nonsense_is_still_refused() {
        let path = Path::new("/state/dataplane.state");
        let e = decode(path, &with_records_swapped(&sample())).unwrap_err();
        assert!(e.to_string().contains("not in order"), "{e}");
        let mut s = sample();
        s.v4.prefixes.insert((0, 33), 0);
        let e = decode(path, &encode(&s)).unwrap_err();
        assert!(e.to_string().contains("length 33"), "{e}");
        // Format 2 (trie records holding entity indices, issue 14 made them group indices)
        // and format 1 are refused, saying which: the agent then loads a fresh generation.
        for old in [1u32, 2, 3] {
            let mut s = sample();
            s.format = old;
            let mut b = encode(&s);
            b[8..12].copy_from_slice(&old.to_le_bytes());
            let n = b.len() - 4;
            let crc = crc32fast::hash(&b[..n]);
            b[n..].copy_from_slice(&crc.to_le_bytes());
            let e = decode(path, &b).unwrap_err();
            assert!(
                e.to_string()
                    .contains(&format!("format {old}, this agent reads {FORMAT_VERSION}")),
                "{e}"
            );
            assert!(e.to_string().contains("fresh data-plane generation"), "{e}");
        }
    }

    #[test]
    fn a_bad_head_is_an_error_naming_line_and_column() {
        let head = b"{\"format\": 2,\n garbage";
        let mut b = b"EMBSTATE".to_vec();
        b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        b.extend_from_slice(&(head.len() as u32).to_le_bytes());
        b.extend_from_slice(head);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        let e = decode(Path::new("/state/dataplane.state"), &b).unwrap_err();
        assert!(matches!(e, StateError::Parse { line: 2, .. }), "{e}");
        assert!(e.to_string().contains("dataplane.state"), "{e}");
    }

    #[test]
    fn a_format_1_file_is_named_and_replaced_by_the_next_write() {
        let dir_tmp = tempfile::Builder::new()
            .prefix("embargo-state-old-")
            .tempdir()
            .unwrap();
        // A path in a fresh folder that does not exist yet.
        let dir = dir_tmp.path().join("t");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(OLD_FILE_NAME),
            "{\"format\": 1, \"v4\": {}, \"netlink_filters\": [{\"interface\": \"eth0\", \"priority\": 1, \"handle\": 65537, \"added_clsact\": true}]}",
        )
        .unwrap();
        let e = read(&dir).unwrap_err();
        let StateError::OldFormat {
            netlink_filters, ..
        } = &e
        else {
            panic!("{e}")
        };
        assert_eq!(netlink_filters[0].interface, "eth0");
        assert!(e.to_string().contains("dataplane.json"), "{e}");
        write(&dir, &sample()).unwrap();
        assert!(!dir.join(OLD_FILE_NAME).exists());
        assert_eq!(read(&dir).unwrap(), Some(sample()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Regression (issue 10): the temporary was `dataplane.state.tmp`, opened with
    /// `O_CREAT|O_TRUNC` through any symlink planted there.
    #[test]
    fn a_symlink_at_the_old_temporary_name_is_not_written_through() {
        let base_tmp = tempfile::Builder::new()
            .prefix("embargo-state-link-")
            .tempdir()
            .unwrap();
        // A path in a fresh folder that does not exist yet.
        let base = base_tmp.path().join("t");
        let dir = base.join("state");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .unwrap();
        let victim = base.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(format!("{FILE_NAME}.tmp"))).unwrap();
        write(&dir, &sample()).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644);
        assert_eq!(read(&dir).unwrap(), Some(sample()));
        // A symlink at the state file itself is replaced, not followed.
        std::fs::remove_file(path(&dir)).unwrap();
        std::os::unix::fs::symlink(&victim, path(&dir)).unwrap();
        write(&dir, &sample()).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(std::fs::symlink_metadata(path(&dir)).unwrap().is_file());
        assert!(remove(&dir).unwrap());
        let _ = std::fs::remove_dir_all(&base);
    }

    /// Regression (issue 10): an existing state folder was used as it was found.
    #[test]
    fn an_open_state_folder_is_tightened_and_not_read_before() {
        let dir_tmp = tempfile::Builder::new()
            .prefix("embargo-state-open-")
            .tempdir()
            .unwrap();
        // A path in a fresh folder that does not exist yet.
        let dir = dir_tmp.path().join("t");
        std::fs::create_dir_all(&dir).unwrap();
        write(&dir, &sample()).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        // Anybody could have planted this file: not trusted.
        let e = read(&dir).unwrap_err();
        assert!(e.to_string().contains("chmod go-w"), "{e}");
        write(&dir, &sample()).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700, "tightened by the write");
        assert_eq!(read(&dir).unwrap(), Some(sample()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Needs root (chown); skipped otherwise.
    #[test]
    fn a_state_folder_owned_by_another_user_is_refused() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root to chown");
            return;
        }
        let dir_tmp = tempfile::Builder::new()
            .prefix("embargo-state-foreign-")
            .tempdir()
            .unwrap();
        // A path in a fresh folder that does not exist yet.
        let dir = dir_tmp.path().join("t");
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let e = write(&dir, &sample()).unwrap_err();
        assert!(e.to_string().contains("owned by uid 65534"), "{e}");
        assert!(!path(&dir).exists());
        // Root reading the folder of an agent that runs as its own user (`embargo detach`).
        assert_eq!(read(&dir).unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
