//! The last-known-good copy of each source: `<cache_dir>/<name>.body`, its metadata
//! `<name>.meta.json` and, for signed sources, `<name>.minisig`. Written only after a body passed
//! every check, each file through [`write::write_atomic`] (the metadata last), in a folder owned
//! by the agent's user and not writable by group or others; read back
//! and checked again (URL, SHA-256, pin, signature) before use.

use std::{
    fs,
    path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    spec::SourceSpec,
    verify::{self, VerifyError},
};
use crate::files::write;

/// What is known about a cached body.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// The URL it was fetched from, with any password shown as `***` (the file must not hold
    /// a secret): a copy of another URL is not used.
    pub url: String,
    /// SHA-256 of the whole URL, password included, hex: how a copy is matched to the
    /// configured URL. Absent in copies written before it existed, which are matched by `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_sha256: Option<String>,
    /// The server's `ETag`, sent back as `If-None-Match`.
    #[serde(default)]
    pub etag: Option<String>,
    /// The server's `Last-Modified`, sent back as `If-Modified-Since`.
    #[serde(default)]
    pub last_modified: Option<String>,
    /// SHA-256 of the body, hex.
    pub sha256: String,
    /// When this body was downloaded.
    pub fetched_at: DateTime<Utc>,
    /// When the server last confirmed it (a 200 or a 304): the last successful fetch.
    pub checked_at: DateTime<Utc>,
    /// Prefixes it lists.
    pub entries: usize,
    /// What its parse left out (`on_bad_line = "skip"`, `type_column`); absent when nothing.
    #[serde(default, skip_serializing_if = "super::parse::Skipped::is_empty")]
    pub skipped: super::parse::Skipped,
}

impl Meta {
    /// The `url` and `url_sha256` fields for a copy fetched from `spec`'s URL.
    pub fn url_of(spec: &SourceSpec) -> (String, Option<String>) {
        (
            spec.shown_url(),
            Some(crate::files::digest::sha256_hex(
                spec.url.as_str().as_bytes(),
            )),
        )
    }

    /// Whether this copy was fetched from `spec`'s URL.
    pub fn is_from(&self, spec: &SourceSpec) -> bool {
        match &self.url_sha256 {
            Some(h) => *h == crate::files::digest::sha256_hex(spec.url.as_str().as_bytes()),
            None => self.url == spec.url.as_str(),
        }
    }
}

/// The files of one source's copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    pub body: PathBuf,
    pub meta: PathBuf,
    pub signature: PathBuf,
}

impl Paths {
    pub fn of(spec: &SourceSpec) -> Self {
        let at = |ext: &str| spec.cache_dir.join(format!("{}.{ext}", spec.name));
        Self {
            body: at("body"),
            meta: at("meta.json"),
            signature: at("minisig"),
        }
    }
}

/// A copy read back and checked.
#[derive(Clone, Debug)]
pub struct Cached {
    pub meta: Meta,
    pub body: String,
    pub paths: Paths,
}

/// Why a copy cannot be used (or written).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Nothing was ever stored for this source.
    #[error("no last-known-good copy at {} (never fetched successfully)", path.display())]
    Missing { path: PathBuf },
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written safely, or its folder is not safe to write in.
    #[error("{}: cannot write: {source}", path.display())]
    Unsafe {
        path: PathBuf,
        #[source]
        source: write::SafeFsError,
    },
    /// The metadata is not what this module writes.
    #[error("{}: not valid metadata ({message})", path.display())]
    BadMeta { path: PathBuf, message: String },
    /// The copy was fetched from another URL (the configuration changed since).
    #[error("{} was fetched from {cached}, not from {configured}", path.display())]
    OtherUrl {
        path: PathBuf,
        cached: String,
        configured: String,
    },
    /// The body does not match its metadata: damaged or half written.
    #[error("{}: its SHA-256 is {actual}, its metadata says {recorded}: the copy is damaged", path.display())]
    Damaged {
        path: PathBuf,
        actual: String,
        recorded: String,
    },
    /// The body is too large or not UTF-8.
    #[error("{}: {message}", path.display())]
    Unreadable { path: PathBuf, message: String },
    /// The copy fails the source's pin or signature (changed since it was stored).
    #[error("{}: {source}", path.display())]
    Verify {
        path: PathBuf,
        #[source]
        source: VerifyError,
    },
}

/// Largest metadata file read: it holds a URL, a digest and a few dates.
const MAX_META_BYTES: u64 = 64 * 1024;

/// Reads `spec`'s copy and checks it against the configuration.
pub fn load(spec: &SourceSpec) -> Result<Cached, CacheError> {
    let paths = Paths::of(spec);
    let meta_text = match read_capped(&paths.meta, MAX_META_BYTES) {
        Ok(t) => t,
        Err(CacheError::Missing { .. }) => {
            return Err(CacheError::Missing {
                path: paths.body.clone(),
            });
        }
        Err(e) => return Err(e),
    };
    let meta: Meta = serde_json::from_slice(&meta_text).map_err(|e| CacheError::BadMeta {
        path: paths.meta.clone(),
        message: e.to_string(),
    })?;
    if !meta.is_from(spec) {
        return Err(CacheError::OtherUrl {
            path: paths.body.clone(),
            cached: super::spec::redact_url(&meta.url),
            configured: spec.shown_url(),
        });
    }
    let body = read_capped(&paths.body, crate::config::MAX_FILE_BYTES)?;
    let actual = crate::files::digest::sha256_hex(&body);
    if actual != meta.sha256 {
        return Err(CacheError::Damaged {
            path: paths.body.clone(),
            actual,
            recorded: meta.sha256,
        });
    }
    let signature = if spec.minisign_key.is_some() {
        match read_capped(&paths.signature, verify::MAX_SIGNATURE_BYTES) {
            Ok(s) => Some(String::from_utf8_lossy(&s).into_owned()),
            Err(CacheError::Missing { .. }) => None,
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    verify::verify(spec, &body, signature.as_deref()).map_err(|source| CacheError::Verify {
        path: paths.body.clone(),
        source,
    })?;
    let body = String::from_utf8(body).map_err(|_| CacheError::Unreadable {
        path: paths.body.clone(),
        message: "not UTF-8 text".into(),
    })?;
    Ok(Cached { meta, body, paths })
}

/// Reads a file of the copy through [`crate::files::read::read_bytes`]: a regular file of at most
/// `max` bytes.
fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, CacheError> {
    use crate::files::read::InputError;
    crate::files::read::read_bytes(path, max).map_err(|e| match e {
        InputError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            CacheError::Missing {
                path: path.to_owned(),
            }
        }
        InputError::Io { source, .. } => CacheError::Read {
            path: path.to_owned(),
            source,
        },
        InputError::TooLarge { size, max, .. } => CacheError::Unreadable {
            path: path.to_owned(),
            message: format!("{size} bytes, over the {max}-byte limit"),
        },
        other => CacheError::Unreadable {
            path: path.to_owned(),
            message: other.to_string(),
        },
    })
}

/// Stores a checked body as the new last-known-good copy: body and signature first, the
/// metadata (which names the body's SHA-256) last.
pub fn store(
    spec: &SourceSpec,
    body: &[u8],
    signature: Option<&str>,
    meta: &Meta,
) -> Result<(), CacheError> {
    let paths = Paths::of(spec);
    // Whoever can write in the folder could replace the copy and its metadata together.
    write::ensure_dir(&spec.cache_dir, 0o755, "source cache folder").map_err(|source| {
        CacheError::Unsafe {
            path: spec.cache_dir.clone(),
            source,
        }
    })?;
    write_atomic(&paths.body, body)?;
    match signature {
        Some(sig) => write_atomic(&paths.signature, sig.as_bytes())?,
        None => match fs::remove_file(&paths.signature) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(CacheError::Write {
                    path: paths.signature,
                    source,
                });
            }
        },
    }
    store_meta(spec, meta)
}

/// Rewrites only the metadata (after a 304: the body is unchanged).
pub fn store_meta(spec: &SourceSpec, meta: &Meta) -> Result<(), CacheError> {
    let paths = Paths::of(spec);
    let mut text = serde_json::to_string_pretty(meta).expect("serializable");
    text.push('\n');
    write_atomic(&paths.meta, text.as_bytes())
}

/// Writes `bytes` to `path` so a reader sees the old file or the new one, never a part
/// ([`write::write_atomic`]: an exclusive temporary, fsync, rename over, fsync the folder;
/// never through a symlink), mode 0666 less the umask as before.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    write::write_atomic(path, bytes, write::Mode::Create(0o666)).map_err(|source| {
        CacheError::Unsafe {
            path: path.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{config, inputs::sources::spec};

    /// The cache folder (not created yet) inside a fresh temporary folder that `tempfile`
    /// removes on drop (also when the test panics).
    struct Dir(PathBuf, #[allow(dead_code)] tempfile::TempDir);

    fn setup(name: &str, extra: &str) -> (Dir, SourceSpec) {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("embargo-cache-{name}-"))
            .tempdir()
            .unwrap();
        let dir = tmp.path().join("cache");
        let text = format!(
            "enforce = [\"UK\"]\ncache_dir = \"{}\"\n[[sources]]\nname = \"feed\"\nurl = \"https://example.org/feed.txt\"\nformat = \"list\"\n{extra}",
            dir.display()
        );
        let c = config::parse(Path::new("m.toml"), text).unwrap();
        let s = spec::specs(&c).unwrap().remove(0);
        (Dir(dir, tmp), s)
    }

    fn meta(body: &[u8]) -> Meta {
        let now = Utc::now();
        Meta {
            url: "https://example.org/feed.txt".into(),
            url_sha256: None,
            etag: Some("\"v1\"".into()),
            last_modified: None,
            sha256: crate::files::digest::sha256_hex(body),
            fetched_at: now,
            checked_at: now,
            entries: 1,
            skipped: Default::default(),
        }
    }

    #[test]
    fn stored_copies_read_back_and_leave_no_temporary_files() {
        let (dir, s) = setup("roundtrip", "");
        assert!(matches!(load(&s), Err(CacheError::Missing { .. })));
        let body = b"192.0.2.0/24\n";
        let m = meta(body);
        store(&s, body, None, &m).unwrap();
        let c = load(&s).unwrap();
        assert_eq!(c.body.as_bytes(), body);
        assert_eq!(c.meta, m);
        let names: Vec<String> = fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| !n.contains(".tmp.")), "{names:?}");
    }

    #[test]
    fn damaged_or_foreign_copies_are_not_used() {
        let (_dir, s) = setup("damaged", "");
        let body = b"192.0.2.0/24\n";
        store(&s, body, None, &meta(body)).unwrap();
        let paths = Paths::of(&s);
        fs::write(&paths.body, b"192.0.2.0/24\n10.0.0.0/8\n").unwrap();
        let e = load(&s).unwrap_err();
        assert!(matches!(e, CacheError::Damaged { .. }), "{e}");
        store(&s, body, None, &meta(body)).unwrap();
        let mut m = meta(body);
        m.url = "https://elsewhere.example/feed.txt".into();
        store_meta(&s, &m).unwrap();
        let e = load(&s).unwrap_err();
        assert!(
            e.to_string()
                .contains("fetched from https://elsewhere.example/"),
            "{e}"
        );
        fs::write(&paths.meta, "{\"url\": 1}").unwrap();
        assert!(matches!(load(&s), Err(CacheError::BadMeta { .. })));
    }

    /// A body that is not a regular file (a FIFO, a link to `/dev/zero`) is refused at once,
    /// not read forever or waited on.
    #[test]
    fn a_copy_that_is_not_a_regular_file_is_refused_at_once() {
        let (_dir, s) = setup("special", "");
        let body = b"192.0.2.0/24\n";
        store(&s, body, None, &meta(body)).unwrap();
        let paths = Paths::of(&s);
        fs::remove_file(&paths.body).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &paths.body).unwrap();
        let e = load(&s).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        fs::remove_file(&paths.body).unwrap();
        let fifo = std::ffi::CString::new(paths.body.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let e = load(&s).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        fs::remove_file(&paths.body).unwrap();
        fs::remove_file(&paths.meta).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &paths.meta).unwrap();
        let e = load(&s).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn a_copy_that_fails_a_new_pin_is_not_used() {
        let (_dir, s) = setup("pin", &format!("sha256 = \"{}\"\n", "0".repeat(64)));
        let body = b"192.0.2.0/24\n";
        store(&s, body, None, &meta(body)).unwrap();
        let e = load(&s).unwrap_err();
        assert!(
            matches!(
                e,
                CacheError::Verify {
                    source: VerifyError::Pinned { .. },
                    ..
                }
            ),
            "{e}"
        );
    }
}
