//! The data-plane state file: what a restarted agent needs to reuse the maps a previous agent
//! pinned and apply its own policy to them as a diff.
//!
//! The maps live in bpffs (`<pin dir>/maps-<generation>/`), which holds no regular files; this
//! file lives in the state folder (`--state-dir`, default [`DEFAULT_STATE_DIR`], created 0700).
//! It is written atomically (a temporary file, fsync, rename) after every policy the agent
//! applies, and describes exactly what the pinned maps hold: the generation, each map's kernel
//! id and size, the entity indices and policies, each trie's prefix set, node bookkeeping and
//! content fingerprint, the interfaces' counter slots, and the TC egress attachments.
//!
//! A restarted agent trusts it only if everything agrees (see
//! [`crate::dataplane::Dataplane::reuse`]); anything else means a fresh generation.

use std::{
    collections::BTreeMap,
    io::Write as _,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::live::Bookkeeping;

/// Where the state file lives by default.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/embargo/state";
/// The state file's name in the state folder.
pub const FILE_NAME: &str = "dataplane.json";
/// Version of this file's format; a file of another version is not used.
pub const FORMAT_VERSION: u32 = 1;

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
        "the state file {path} is not valid (line {line}, column {column}): {source}; it is ignored and a fresh data-plane generation loaded"
    )]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
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

/// One trie: its mapped length, content fingerprint, prefixes and node bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrieState {
    /// Entries mapped (the trie's length).
    pub len: usize,
    /// [`crate::mapped::Mirrored::fingerprint`] of what was written.
    pub fingerprint: u64,
    /// `(network address in hex, length, entity index)`.
    pub prefixes: Vec<(String, u8, u32)>,
    pub bookkeeping: Bookkeeping,
}

impl TrieState {
    /// The prefixes as `(address, length, entity)`; `None` if an address is not hex.
    pub fn prefix_set(&self) -> Option<Vec<(u128, u8, u32)>> {
        self.prefixes
            .iter()
            .map(|(a, l, e)| u128::from_str_radix(a, 16).ok().map(|a| (a, *l, *e)))
            .collect()
    }
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

/// Packets and bytes `[direction][verdict]` of an entity, carried from earlier generations.
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
    pub v4: TrieState,
    pub v6: TrieState,
    pub slots: Vec<SlotState>,
    /// Counters of generations before this one, by entity id, so totals never go back.
    pub carried: BTreeMap<String, Carried>,
    pub netlink_filters: Vec<NetlinkFilter>,
}

/// The state file's path in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Reads the state file in `dir`; `Ok(None)` if there is none.
pub fn read(dir: &Path) -> Result<Option<State>, StateError> {
    let path = path(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StateError::Read { path, source }),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| StateError::Parse {
            path,
            line: source.line(),
            column: source.column(),
            source,
        })
}

/// Writes `state` to `dir` atomically: the old file or the new one, never a mix. Creates `dir`
/// (0700) if missing.
pub fn write(dir: &Path, state: &State) -> Result<(), StateError> {
    let path = path(dir);
    let err = |source| StateError::Write {
        path: path.clone(),
        source,
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let body = serde_json::to_vec(state).expect("the state serializes");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(&body).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(err)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
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
    let _ = std::fs::remove_file(dir.join(format!("{FILE_NAME}.tmp")));
    let _ = std::fs::remove_dir(dir);
    Ok(existed)
}

#[cfg(test)]
mod tests {
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
            v4: TrieState {
                len: 16,
                fingerprint: 42,
                prefixes: vec![("c0000200".into(), 24, 0)],
                bookkeeping: Bookkeeping {
                    free: vec![],
                    quarantine: vec![],
                    next_node: 0,
                    capacity: 0,
                    has_root: false,
                },
            },
            v6: TrieState {
                len: 16,
                fingerprint: 0,
                prefixes: vec![],
                bookkeeping: Bookkeeping {
                    free: vec![],
                    quarantine: vec![],
                    next_node: 0,
                    capacity: 0,
                    has_root: false,
                },
            },
            slots: vec![SlotState {
                slot: 0,
                ifindex: 3,
                flags: 1,
            }],
            carried: BTreeMap::new(),
            netlink_filters: vec![],
        }
    }

    #[test]
    fn round_trips_atomically_in_a_private_folder() {
        let dir = std::env::temp_dir().join(format!("embargo-state-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(read(&dir).unwrap(), None, "no file: no state");
        write(&dir, &sample()).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(read(&dir).unwrap(), Some(sample()));
        assert_eq!(
            sample().v4.prefix_set().unwrap(),
            vec![(0xc000_0200, 24, 0)]
        );
        assert!(!dir.join(format!("{FILE_NAME}.tmp")).exists());
        assert!(remove(&dir).unwrap());
        assert!(!dir.exists());
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_line_and_column() {
        let dir = std::env::temp_dir().join(format!("embargo-state-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(path(&dir), "{\"format\": 1,\n garbage").unwrap();
        let e = read(&dir).unwrap_err();
        assert!(matches!(e, StateError::Parse { line: 2, .. }), "{e}");
        assert!(e.to_string().contains("dataplane.json"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
