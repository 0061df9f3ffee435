//! Outside input: the one way every file from outside the agent is read, and the one way a
//! place in its text is named.
//!
//! * [`read_bytes`] and [`read_text`] open the path without blocking (a FIFO does not hang the
//!   open), check on the opened descriptor that it is a regular file (a FIFO, a device such as
//!   `/dev/zero`, a socket or a folder is refused), and read at most the cap through
//!   `Read::take(cap + 1)`, so the cap holds even for a file that grows while it is read.
//!   [`read_text`] also drops a UTF-8 byte-order mark and refuses what is not UTF-8, naming the
//!   line of the first bad byte.
//! * [`LineIndex`] is built once per text in one pass and then answers "which line and column is
//!   byte N" in logarithmic time, so a parser that names the place of each of its items stays
//!   linear in the size of the text (counting newlines from the start for every item does not).
//!
//! Everything here is pure over its arguments except the two readers; parsers keep taking
//! `&str` and call [`strip_bom`] themselves, so they behave the same when handed text directly.

use std::{
    fs::File,
    io::{self, Read},
    os::unix::fs::{FileTypeExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

/// The UTF-8 byte-order mark some editors put at the start of a file.
pub const BOM: char = '\u{feff}';

/// Why an input file was not read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// It could not be opened, or a read failed.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// It is not a regular file (`kind` says what it is: "a FIFO", "a character device"...).
    #[error("{}: it is {kind}, not a regular file", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    /// It holds more than the cap; `size` is what was seen (its length, or the bytes read
    /// before the cap stopped the read).
    #[error("{}: the file is {size} bytes, over the {max}-byte limit", path.display())]
    TooLarge { path: PathBuf, size: u64, max: u64 },
    /// It is not UTF-8 text: the first bad byte is on `line`.
    #[error("{}: line {line} is not UTF-8 text", path.display())]
    NotUtf8 { path: PathBuf, line: usize },
}

impl InputError {
    /// The file it is about.
    pub fn path(&self) -> &Path {
        match self {
            InputError::Io { path, .. }
            | InputError::NotRegular { path, .. }
            | InputError::TooLarge { path, .. }
            | InputError::NotUtf8 { path, .. } => path,
        }
    }
}

/// What a file that is not a regular one is, in words.
fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// Reads the regular file at `path`, at most `cap` bytes; anything else is refused.
pub fn read_bytes(path: &Path, cap: u64) -> Result<Vec<u8>, InputError> {
    let io_err = |source| InputError::Io {
        path: path.to_owned(),
        source,
    };
    // O_NONBLOCK: opening a FIFO for reading would wait for a writer. It changes nothing for
    // a regular file, the only kind read.
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if !meta.file_type().is_file() {
        return Err(InputError::NotRegular {
            path: path.to_owned(),
            kind: kind_of(meta.file_type()),
        });
    }
    let too_large = |size| InputError::TooLarge {
        path: path.to_owned(),
        size,
        max: cap,
    };
    if meta.len() > cap {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > cap {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Reads the regular file at `path` as UTF-8 text, at most `cap` bytes, without a leading
/// byte-order mark.
pub fn read_text(path: &Path, cap: u64) -> Result<String, InputError> {
    text_of(path, read_bytes(path, cap)?)
}

/// As [`read_text`], with the SHA-256 ([`super::digest::sha256_hex`]) of the bytes read (the
/// byte-order mark included): the digest names exactly the content the text came from.
pub fn read_text_hashed(path: &Path, cap: u64) -> Result<(String, String), InputError> {
    let bytes = read_bytes(path, cap)?;
    let sha256 = super::digest::sha256_hex(&bytes);
    Ok((text_of(path, bytes)?, sha256))
}

/// `bytes` read from `path` as UTF-8 text without a leading byte-order mark.
fn text_of(path: &Path, bytes: Vec<u8>) -> Result<String, InputError> {
    let mut text = String::from_utf8(bytes).map_err(|e| {
        let bad = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..bad].iter().filter(|&&b| b == b'\n').count() + 1;
        InputError::NotUtf8 {
            path: path.to_owned(),
            line,
        }
    })?;
    if text.starts_with(BOM) {
        text.drain(..BOM.len_utf8());
    }
    Ok(text)
}

/// `text` without a leading byte-order mark.
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix(BOM).unwrap_or(text)
}

/// Bytes per block of [`LineIndex`]'s character counts.
const BLOCK: usize = 256;

/// Where the lines of a text start, built in one pass: line and column of a byte offset in
/// O(log lines) (plus at most one block of bytes for the column).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineIndex {
    /// Byte offset where each line starts; `starts[0] == 0`.
    starts: Vec<usize>,
    /// UTF-8 continuation bytes in `text[..k * BLOCK]`, for each block `k`: columns count
    /// characters, not bytes.
    continuations: Vec<usize>,
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

impl LineIndex {
    /// Indexes `text` (one pass).
    pub fn new(text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        let mut continuations = Vec::with_capacity(bytes.len() / BLOCK + 1);
        let mut seen = 0;
        for (k, block) in bytes.chunks(BLOCK).enumerate() {
            continuations.push(seen);
            for (i, &b) in block.iter().enumerate() {
                if b == b'\n' {
                    starts.push(k * BLOCK + i + 1);
                }
                seen += usize::from(is_continuation(b));
            }
        }
        continuations.push(seen);
        Self {
            starts,
            continuations,
        }
    }

    /// 1-based line of byte `offset` (the number of newlines before it, plus one); an offset
    /// past the end is the last line.
    pub fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).max(1)
    }

    /// Continuation bytes in `text[..offset]`.
    fn continuations_before(&self, text: &str, offset: usize) -> usize {
        let k = offset / BLOCK;
        let from = k * BLOCK;
        self.continuations[k.min(self.continuations.len() - 1)]
            + text.as_bytes()[from.min(offset)..offset]
                .iter()
                .filter(|&&b| is_continuation(b))
                .count()
    }

    /// 1-based line and column (in characters) of byte `offset` of `text`, the text this index
    /// was built from. An offset past the end is the end.
    pub fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let line = self.line(offset);
        let start = self.starts[line - 1];
        let chars = (offset - start)
            - (self.continuations_before(text, offset) - self.continuations_before(text, start));
        (line, chars + 1)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use proptest::prelude::*;

    use super::*;

    /// The definition: newlines before the offset, characters since the last one.
    fn naive(text: &str, offset: usize) -> (usize, usize) {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    proptest! {
        #[test]
        fn line_index_agrees_with_counting_from_the_start(
            text in "[a\n\u{e9}\u{4e2d}\u{1f600}x]{0,700}",
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..20),
        ) {
            let index = LineIndex::new(&text);
            let mut offsets: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
            offsets.push(text.len());
            for p in picks {
                let o = *p.get(&offsets);
                prop_assert_eq!(index.line_col(&text, o), naive(&text, o), "offset {}", o);
                prop_assert_eq!(index.line(o), naive(&text, o).0);
            }
        }
    }

    /// A path `name` (not created) in a fresh folder that `tempfile` removes when the
    /// returned guard drops, also when the test panics.
    fn temp(name: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::Builder::new()
            .prefix("embargo-input-")
            .tempdir()
            .unwrap();
        let p = dir.path().join(name);
        (dir, p)
    }

    #[test]
    fn a_bom_is_dropped_and_the_text_kept() {
        let (_dir, p) = temp("bom");
        std::fs::write(&p, "\u{feff}192.0.2.1\n").unwrap();
        assert_eq!(read_text(&p, 100).unwrap(), "192.0.2.1\n");
        assert_eq!(strip_bom("\u{feff}x"), "x");
        assert_eq!(strip_bom("x\u{feff}"), "x\u{feff}");
    }

    #[test]
    fn what_is_not_a_regular_file_is_refused_without_reading_it() {
        // A character device that never ends.
        let e = read_text(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(
            matches!(e, InputError::NotRegular { kind, .. } if kind == "a character device"),
            "{e}"
        );
        // A folder.
        let e = read_bytes(&std::env::temp_dir(), 1024).unwrap_err();
        assert!(matches!(e, InputError::NotRegular { .. }), "{e}");
        // A FIFO with no writer: refused at once instead of waiting forever.
        let (_dir, p) = temp("fifo");
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_text(&p, 1024).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
    }

    #[test]
    fn the_cap_holds_and_bad_utf8_names_its_line() {
        let (_dir, p) = temp("cap");
        std::fs::write(&p, "0123456789").unwrap();
        assert_eq!(read_bytes(&p, 10).unwrap().len(), 10);
        let e = read_bytes(&p, 9).unwrap_err();
        assert!(
            matches!(
                e,
                InputError::TooLarge {
                    size: 10,
                    max: 9,
                    ..
                }
            ),
            "{e}"
        );
        let mut f = File::create(&p).unwrap();
        f.write_all(b"ok\nok\nbad \xff\n").unwrap();
        let e = read_text(&p, 100).unwrap_err();
        assert!(matches!(e, InputError::NotUtf8 { line: 3, .. }), "{e}");
    }
}
