//! Writing files without following symbolic links: the one home for atomic writes, appending
//! opens and the checks on the folders the agent writes into.
//!
//! Invariants, for every file the agent writes through this module:
//! * **No symlink is followed at the written name.** [`write_atomic`] (and [`write_new`], which
//!   never replaces an existing name) creates its temporary with
//!   `O_CREAT | O_EXCL | O_NOFOLLOW` under a random name in the target's folder (a name planted
//!   in advance is never opened, a collision picks another name) and `rename(2)`s it over the
//!   target, which replaces a symlink there rather than writing through it. [`open_append`]
//!   opens with `O_NOFOLLOW` and refuses anything but a regular file (a FIFO or device is
//!   refused without blocking: the open is non-blocking, then switched back).
//! * **Permissions are set on the open descriptor** (the creation mode, then `fchmod(2)` when
//!   the caller asks for an exact mode), never by path after the fact.
//! * **Old file or new file, never a mix**: the temporary is written in full and `fsync`ed
//!   before the rename, and the folder is `fsync`ed after it. On any error the temporary is
//!   removed and the target is unchanged.
//! * **Folders are checked before files are written into them** ([`check_dir`],
//!   [`ensure_dir`], [`ensure_private_dir`]): a folder must be owned by the agent's effective
//!   user (or root, who can change anything anyway) and not writable by group or others, so
//!   nobody else can plant, swap or remove names in it between a check and a use. The check
//!   is made on an open descriptor of the folder, and a folder this module tightens is
//!   `fchmod`ed through that same descriptor.
//!
//! What this module does not do: check the folder's ancestors (whoever can write in a parent
//! can replace the folder itself; the agent's folders live under root-owned ones), or hold the
//! folder open between the check and later writes by path (the check above is what makes that
//! safe).

use std::{
    fs::{File, OpenOptions, Permissions},
    io::{self, Write as _},
    os::{
        fd::AsRawFd as _,
        unix::fs::{
            DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
        },
    },
    path::{Path, PathBuf},
};

/// What went wrong, always with the path it happened at.
#[derive(Debug, thiserror::Error)]
pub enum SafeFsError {
    /// A system call on `path` failed.
    #[error("{}: {doing}: {source}", path.display())]
    Io {
        path: PathBuf,
        doing: &'static str,
        #[source]
        source: io::Error,
    },
    /// The name to be written is a symbolic link.
    #[error(
        "{} is a symbolic link; refusing to write through it: remove it (`rm {}`) and let the agent create the file",
        path.display(),
        path.display()
    )]
    Symlink { path: PathBuf },
    /// A new file was to be written where something already is.
    #[error("{} already exists", path.display())]
    Exists { path: PathBuf },
    /// The name to be appended to is not a regular file.
    #[error(
        "{} is a {kind}, not a regular file; refusing to write to it: remove it or choose another path",
        path.display()
    )]
    NotRegular { path: PathBuf, kind: &'static str },
    /// A folder to be written into is not a folder.
    #[error("the {what} {} is not a folder: remove it or choose another path", path.display())]
    NotAFolder { path: PathBuf, what: &'static str },
    /// A folder to be written into belongs to another user.
    #[error(
        "the {what} {} is owned by uid {owner}, not by this process's user (uid {euid}) or root: whoever owns it can replace or remove what is kept there; remove it (`rm -r {}`) so it is created anew, or give it to this user (`chown {euid} {}`) after checking its content; if uid {owner} is the agent's own user, run this command as that user",
        path.display(),
        path.display(),
        path.display()
    )]
    ForeignOwner {
        path: PathBuf,
        what: &'static str,
        owner: u32,
        euid: u32,
    },
    /// A folder to be written into lets group or others change its names.
    #[error(
        "the {what} {} has mode {mode:04o}: group or others can write in it and so replace or remove what the agent keeps there; `chmod go-w {}` (or remove it so the agent creates its own)",
        path.display(),
        path.display()
    )]
    WritableByOthers {
        path: PathBuf,
        what: &'static str,
        mode: u32,
    },
}

fn io_err<'a>(path: &'a Path, doing: &'static str) -> impl FnOnce(io::Error) -> SafeFsError + 'a {
    move |source| SafeFsError::Io {
        path: path.to_owned(),
        doing,
        source,
    }
}

/// The agent's effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The folder `path` is in (`.` for a bare name).
pub fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Opens folder `dir` (following a symlink to it) for checks through the descriptor.
fn open_dir(dir: &Path, what: &'static str) -> Result<File, SafeFsError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOTDIR) {
                SafeFsError::NotAFolder {
                    path: dir.to_owned(),
                    what,
                }
            } else {
                io_err(dir, "opening the folder")(e)
            }
        })
}

/// Checks an open folder: owned by the agent's user or root, not writable by group or others.
fn check_open_dir(f: &File, dir: &Path, what: &'static str) -> Result<(), SafeFsError> {
    let m = f.metadata().map_err(io_err(dir, "reading the folder"))?;
    // Writable by others first: a reader that accepts another owner still refuses that.
    if m.mode() & 0o022 != 0 {
        return Err(SafeFsError::WritableByOthers {
            path: dir.to_owned(),
            what,
            mode: m.mode() & 0o7777,
        });
    }
    let euid = euid();
    if m.uid() != euid && m.uid() != 0 {
        return Err(SafeFsError::ForeignOwner {
            path: dir.to_owned(),
            what,
            owner: m.uid(),
            euid,
        });
    }
    Ok(())
}

/// Checks that folder `dir` (the `what`, for messages: "audit log folder") exists, is owned by
/// the agent's effective user or root and is not writable by group or others.
pub fn check_dir(dir: &Path, what: &'static str) -> Result<(), SafeFsError> {
    check_open_dir(&open_dir(dir, what)?, dir, what)
}

/// Creates `dir` (and missing parents) with `mode` (less the umask) if it is missing, then
/// [`check_dir`]s it.
pub fn ensure_dir(dir: &Path, mode: u32, what: &'static str) -> Result<(), SafeFsError> {
    create_missing(dir, mode)?;
    check_dir(dir, what)
}

fn create_missing(dir: &Path, mode: u32) -> Result<(), SafeFsError> {
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
    {
        Ok(()) => Ok(()),
        // `recursive` fails on an existing non-folder: said by the check, with its name.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err(dir, "creating the folder")(e)),
    }
}

/// A folder only the agent may read: creates `dir` 0700 if missing; an existing one owned by
/// the agent's user is tightened to 0700, one owned by anybody else but root refused (root's
/// is checked as [`check_dir`] does: the agent cannot change it).
pub fn ensure_private_dir(dir: &Path, what: &'static str) -> Result<(), SafeFsError> {
    create_missing(dir, 0o700)?;
    let f = open_dir(dir, what)?;
    let m = f.metadata().map_err(io_err(dir, "reading the folder"))?;
    if m.uid() == euid() && m.mode() & 0o7777 != 0o700 {
        f.set_permissions(Permissions::from_mode(0o700))
            .map_err(io_err(dir, "setting the folder's mode to 0700"))?;
        return Ok(());
    }
    check_open_dir(&f, dir, what)
}

/// The permissions of a file [`write_atomic`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Exactly this mode (set with `fchmod`, the umask does not apply).
    Exact(u32),
    /// This mode less the umask, as a newly created file gets.
    Create(u32),
}

/// Writes `bytes` to `path` so a reader sees the old file or the new one, never a part (see
/// the module's invariants). `path` may be missing; a symlink at `path` is replaced, not
/// followed. The caller checks the folder first when others could write in it.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: Mode) -> Result<(), SafeFsError> {
    let dir = parent_of(path);
    let mut tmp = temporary(path, mode)?;
    fill(&mut tmp, path, bytes)?;
    tmp.persist(path)
        .map_err(|e| io_err(path, "renaming the temporary file over it")(e.error))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "syncing the folder"))?;
    Ok(())
}

/// An exclusive temporary next to `path` (`.<name>.<random>.tmp`, `O_CREAT | O_EXCL |
/// O_NOFOLLOW`), with `mode`; removed when dropped unless persisted.
fn temporary(path: &Path, mode: Mode) -> Result<tempfile::NamedTempFile, SafeFsError> {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let prefix = format!(".{name}.");
    let create_mode = match mode {
        Mode::Exact(_) => 0o600,
        Mode::Create(m) => m,
    };
    let tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .rand_bytes(12)
        .make_in(parent_of(path), |p| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(create_mode)
                .open(p)
        })
        .map_err(io_err(path, "creating a temporary file next to it"))?;
    // From here on, dropping `tmp` removes the temporary.
    if let Mode::Exact(m) = mode {
        tmp.as_file()
            .set_permissions(Permissions::from_mode(m))
            .map_err(io_err(path, "setting the temporary file's mode"))?;
    }
    Ok(tmp)
}

/// Writes `bytes` to the temporary and syncs it.
fn fill(tmp: &mut tempfile::NamedTempFile, path: &Path, bytes: &[u8]) -> Result<(), SafeFsError> {
    tmp.as_file_mut()
        .write_all(bytes)
        .map_err(io_err(path, "writing the temporary file"))?;
    tmp.as_file()
        .sync_all()
        .map_err(io_err(path, "syncing the temporary file"))
}

/// Writes `bytes` to a new file at `path` as [`write_atomic`] does, but never replaces
/// anything already there ([`SafeFsError::Exists`]): the temporary is renamed with
/// `RENAME_NOREPLACE`, so the file appears whole or not at all.
pub fn write_new(path: &Path, bytes: &[u8], mode: Mode) -> Result<(), SafeFsError> {
    let dir = parent_of(path);
    let mut tmp = temporary(path, mode)?;
    fill(&mut tmp, path, bytes)?;
    tmp.persist_noclobber(path).map_err(|e| {
        if e.error.kind() == io::ErrorKind::AlreadyExists {
            SafeFsError::Exists {
                path: path.to_owned(),
            }
        } else {
            io_err(path, "renaming the temporary file to it")(e.error)
        }
    })?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "syncing the folder"))?;
    Ok(())
}

/// Names of temporaries [`write_atomic`] leaves behind for `path` when the agent is killed
/// mid-write (for cleanup: `.<name>.<random>.tmp` in the same folder).
pub fn stale_temporaries(path: &Path) -> Vec<PathBuf> {
    let Some(name) = path.file_name() else {
        return Vec::new();
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(parent_of(path)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with(&prefix) && n.ends_with(".tmp")
        })
        .map(|e| e.path())
        .collect()
}

fn kind_of(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if ft.is_dir() {
        "folder"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_symlink() {
        "symbolic link"
    } else {
        "special file"
    }
}

/// Opens `path` for reading and appending, creating it with `mode` (less the umask) if
/// missing. Refuses a symlink at `path` and anything but a regular file. The caller checks the
/// folder first ([`ensure_dir`]).
pub fn open_append(path: &Path, mode: u32) -> Result<File, SafeFsError> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => SafeFsError::Symlink {
                path: path.to_owned(),
            },
            Some(libc::EISDIR) => SafeFsError::NotRegular {
                path: path.to_owned(),
                kind: "folder",
            },
            // A FIFO without a reader.
            Some(libc::ENXIO) => SafeFsError::NotRegular {
                path: path.to_owned(),
                kind: "FIFO",
            },
            _ => io_err(path, "opening for appending")(e),
        })?;
    let ft = file
        .metadata()
        .map_err(io_err(path, "reading the file's type"))?
        .file_type();
    if !ft.is_file() {
        return Err(SafeFsError::NotRegular {
            path: path.to_owned(),
            kind: kind_of(ft),
        });
    }
    // Blocking again (it changes nothing for a regular file, but says what is meant).
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor `file` owns; no memory is involved.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io_err(path, "making the file blocking")(
            io::Error::last_os_error(),
        ));
    }
    Ok(file)
}

/// Sets the mode of `path` without following a symlink there (`fchmodat` with
/// `AT_SYMLINK_NOFOLLOW`): for files that cannot be opened to `fchmod` them, such as a Unix
/// socket just bound. A symlink at `path` is an error and its target is left alone.
pub fn set_mode_nofollow(path: &Path, mode: u32) -> Result<(), SafeFsError> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| {
        io_err(path, "setting its mode")(io::Error::from(io::ErrorKind::InvalidInput))
    })?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let r = unsafe {
        libc::fchmodat(
            libc::AT_FDCWD,
            c.as_ptr(),
            mode as libc::mode_t,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(SafeFsError::Symlink {
            path: path.to_owned(),
        }),
        _ => Err(io_err(path, "setting its mode")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder (0700) under the temporary folder; `tempfile` removes it on drop
    /// (also when the test panics).
    struct Dir(PathBuf, #[allow(dead_code)] tempfile::TempDir);

    impl Dir {
        fn new(name: &str) -> Self {
            let tmp = tempfile::Builder::new()
                .prefix(&format!("embargo-safefs-{name}-"))
                .tempdir()
                .unwrap();
            // Private whatever tempfile's default: some tests depend on it.
            std::fs::set_permissions(tmp.path(), Permissions::from_mode(0o700)).unwrap();
            Self(tmp.path().to_owned(), tmp)
        }
    }

    fn mode_of(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn write_atomic_replaces_a_symlink_instead_of_writing_through_it() {
        let d = Dir::new("atomic-link");
        let victim = d.0.join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::fs::set_permissions(&victim, Permissions::from_mode(0o644)).unwrap();
        let target = d.0.join("target");
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        write_atomic(&target, b"new", Mode::Exact(0o600)).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(mode_of(&victim), 0o644);
        assert!(std::fs::symlink_metadata(&target).unwrap().is_file());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(mode_of(&target), 0o600);
        assert_eq!(
            std::fs::read_dir(&d.0).unwrap().count(),
            2,
            "no temporary left"
        );
    }

    #[test]
    fn write_atomic_sets_an_exact_mode_and_leaves_nothing_on_failure() {
        let d = Dir::new("atomic-mode");
        let target = d.0.join("f");
        write_atomic(&target, b"a", Mode::Exact(0o640)).unwrap();
        assert_eq!(mode_of(&target), 0o640);
        write_atomic(&target, b"b", Mode::Create(0o600)).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "b");
        // Renaming over a folder fails: the temporary is gone, the folder untouched.
        let sub = d.0.join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("x"), "x").unwrap();
        let e = write_atomic(&sub, b"c", Mode::Exact(0o600)).unwrap_err();
        assert!(e.to_string().contains("renaming"), "{e}");
        assert!(stale_temporaries(&sub).is_empty());
        assert!(sub.join("x").exists());
    }

    #[test]
    fn write_new_never_replaces_anything() {
        let d = Dir::new("new");
        let victim = d.0.join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let link = d.0.join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        for there in [&victim, &link] {
            let e = write_new(there, b"x", Mode::Create(0o644)).unwrap_err();
            assert!(matches!(e, SafeFsError::Exists { .. }), "{e}");
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        let new = d.0.join("new");
        write_new(&new, b"fresh", Mode::Exact(0o640)).unwrap();
        assert_eq!(std::fs::read_to_string(&new).unwrap(), "fresh");
        assert_eq!(mode_of(&new), 0o640);
        assert_eq!(
            std::fs::read_dir(&d.0).unwrap().count(),
            3,
            "no temporary left"
        );
    }

    #[test]
    fn open_append_refuses_symlinks_and_special_files() {
        let d = Dir::new("append");
        let victim = d.0.join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let link = d.0.join("log");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = open_append(&link, 0o640).unwrap_err();
        assert!(matches!(e, SafeFsError::Symlink { .. }), "{e}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        // A dangling one is not created through either.
        let dangling = d.0.join("dangling");
        std::os::unix::fs::symlink(d.0.join("nowhere"), &dangling).unwrap();
        assert!(open_append(&dangling, 0o640).is_err());
        assert!(!d.0.join("nowhere").exists());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        // A FIFO is refused without blocking.
        let fifo = d.0.join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = open_append(&fifo, 0o640).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        // A regular file is appended to.
        let log = d.0.join("real");
        let mut f = open_append(&log, 0o640).unwrap();
        f.write_all(b"a\n").unwrap();
        let mut f = open_append(&log, 0o640).unwrap();
        f.write_all(b"b\n").unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "a\nb\n");
    }

    #[test]
    fn set_mode_nofollow_changes_a_socket_and_never_a_symlinks_target() {
        let d = Dir::new("chmod");
        let sock = d.0.join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        set_mode_nofollow(&sock, 0o600).unwrap();
        assert_eq!(mode_of(&sock), 0o600);
        let victim = d.0.join("victim");
        std::fs::write(&victim, "").unwrap();
        std::fs::set_permissions(&victim, Permissions::from_mode(0o600)).unwrap();
        let link = d.0.join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = set_mode_nofollow(&link, 0o666).unwrap_err();
        assert!(matches!(e, SafeFsError::Symlink { .. }), "{e}");
        assert_eq!(mode_of(&victim), 0o600);
    }

    #[test]
    fn folders_writable_by_others_are_refused_and_private_ones_tightened() {
        let d = Dir::new("folders");
        let open = d.0.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, Permissions::from_mode(0o777)).unwrap();
        let e = check_dir(&open, "audit log folder").unwrap_err();
        assert!(
            matches!(e, SafeFsError::WritableByOthers { mode: 0o777, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("chmod go-w"), "{e}");
        std::fs::set_permissions(&open, Permissions::from_mode(0o775)).unwrap();
        assert!(ensure_dir(&open, 0o750, "events log folder").is_err());
        std::fs::set_permissions(&open, Permissions::from_mode(0o755)).unwrap();
        ensure_dir(&open, 0o750, "events log folder").unwrap();
        // The state folder is tightened instead.
        std::fs::set_permissions(&open, Permissions::from_mode(0o777)).unwrap();
        ensure_private_dir(&open, "state folder").unwrap();
        assert_eq!(mode_of(&open), 0o700);
        // Created where missing, with the mode asked for.
        let new = d.0.join("a/b");
        ensure_private_dir(&new, "state folder").unwrap();
        assert_eq!(mode_of(&new), 0o700);
        // Not a folder.
        let file = d.0.join("file");
        std::fs::write(&file, "").unwrap();
        let e = ensure_private_dir(&file, "state folder").unwrap_err();
        assert!(matches!(e, SafeFsError::NotAFolder { .. }), "{e}");
    }

    /// Needs root (chown); skipped otherwise.
    #[test]
    fn folders_owned_by_another_user_are_refused() {
        if euid() != 0 {
            eprintln!("skipped: needs root to chown");
            return;
        }
        let d = Dir::new("foreign");
        let f = d.0.join("f");
        std::fs::DirBuilder::new().mode(0o700).create(&f).unwrap();
        std::os::unix::fs::chown(&f, Some(65534), Some(65534)).unwrap();
        for e in [
            check_dir(&f, "pin folder").unwrap_err(),
            ensure_private_dir(&f, "state folder").unwrap_err(),
        ] {
            assert!(
                matches!(e, SafeFsError::ForeignOwner { owner: 65534, .. }),
                "{e}"
            );
            assert!(e.to_string().contains("chown 0"), "{e}");
        }
        assert_eq!(mode_of(&f), 0o700);
    }
}
