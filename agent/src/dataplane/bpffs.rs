//! The bpf file system under the pin folder: found where it is, or mounted the way systemd does.
//!
//! Pins (links, a generation's maps) live only on a bpf file system. systemd and Cilium mount one
//! at `/sys/fs/bpf` at boot, but a fresh machine or container may have none, and `ip netns exec`
//! remounts `/sys` without it. [`ensure`] looks at the file system the pin folder lives (or would
//! live) on:
//!
//! * bpffs already: nothing to do ([`Mount::Found`]);
//! * the folder is `/sys/fs/bpf` or under it: bpffs is mounted at `/sys/fs/bpf` (the folder
//!   created if missing, `mode=0700` as systemd mounts it) and checked again ([`Mount::Mounted`]);
//! * anywhere else: refused, with what to do. The agent never mounts anywhere but `/sys/fs/bpf`
//!   and never mounts over a bpffs.
//!
//! A bpffs mounted inside a mount namespace other than the init process's (`ip netns exec`,
//! `unshare -m`) is that namespace's alone: it, and every pin in it, is gone when the namespace
//! is, which with `ip netns exec` is when the agent exits. [`PinFs::ephemeral`] says so, and the
//! agent logs it once at start and shows it in `embargo status`.

use std::{
    ffi::CString,
    io,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// Where the agent mounts bpffs when the pin folder's file system is not one.
pub const MOUNT_POINT: &str = "/sys/fs/bpf";

/// `statfs(2)`'s `f_type` of a bpf file system (`BPF_FS_MAGIC` in `linux/magic.h`).
const BPF_FS_MAGIC: u32 = 0xcafe_4a11;

/// How the pin folder came to be on bpffs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mount {
    /// It already was (mounted by systemd, Cilium, a DaemonSet's hostPath, the operator).
    Found,
    /// The agent mounted bpffs at [`MOUNT_POINT`].
    Mounted,
}

/// Whether the agent's mount namespace is the init process's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Namespace {
    /// The same as PID 1's: a bpffs mounted here is the machine's.
    Initial,
    /// A private one (`ip netns exec`, `unshare -m`, a container's).
    Private,
    /// `/proc/1/ns/mnt` could not be read (no privilege to look).
    Unknown,
}

/// The bpf file system the pins live on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinFs {
    /// The pin folder.
    pub pin_dir: PathBuf,
    pub mount: Mount,
    pub namespace: Namespace,
}

impl PinFs {
    /// Pins end with the agent's mount namespace rather than outliving every agent: the agent
    /// mounted bpffs itself, in a namespace that is not the init process's.
    pub fn ephemeral(&self) -> bool {
        self.mount == Mount::Mounted && self.namespace != Namespace::Initial
    }

    /// One line for logs and `embargo status`.
    pub fn describe(&self) -> String {
        match (self.mount, self.ephemeral()) {
            (Mount::Found, _) => format!("pinned in {} (bpffs)", self.pin_dir.display()),
            (Mount::Mounted, false) => format!(
                "pinned in {} (the agent mounted bpffs at {MOUNT_POINT})",
                self.pin_dir.display()
            ),
            (Mount::Mounted, true) => format!(
                "pinned in {} (the agent mounted bpffs at {MOUNT_POINT} in {}: the pins last \
                 only as long as that namespace, with `ip netns exec` only as long as the agent; \
                 mount bpffs in the host's namespace first for enforcement that outlives the \
                 agent)",
                self.pin_dir.display(),
                match self.namespace {
                    Namespace::Private => "a private mount namespace",
                    _ => "what may be a private mount namespace (/proc/1/ns/mnt is unreadable)",
                }
            ),
        }
    }
}

/// Why the pin folder cannot be on bpffs.
#[derive(Debug, thiserror::Error)]
pub enum BpffsError {
    /// The folder is outside `/sys/fs/bpf` and not on a bpffs.
    #[error(
        "the pin folder {dir} is not on a bpf file system (its file system is {fs_type:#x}): \
         use a folder under {MOUNT_POINT} (the agent mounts bpffs there if needed), mount one \
         there first (`mount -t bpf bpf {mount}`), or run with --no-pin"
    )]
    NotBpffs {
        dir: PathBuf,
        mount: PathBuf,
        fs_type: u64,
    },
    /// Looking at the folder's file system failed.
    #[error("reading the file system of {path}: {source}")]
    Statfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Mounting bpffs at `/sys/fs/bpf` failed.
    #[error(
        "bpffs is not mounted at {MOUNT_POINT} and the agent cannot mount it: {source}; {advice}"
    )]
    Mount {
        #[source]
        source: io::Error,
        /// What to add or change, for this errno.
        advice: &'static str,
    },
}

/// What to do when mounting bpffs fails with `e`.
fn advice(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM) => {
            "mounting needs CAP_SYS_ADMIN, which the agent does not have (and need not): mount \
             bpffs before it starts (`mount -t bpf bpf /sys/fs/bpf`, or systemd's \
             sys-fs-bpf.mount, which systemd mounts at boot), or add CAP_SYS_ADMIN to the unit's \
             CapabilityBoundingSet= and AmbientCapabilities=; in Kubernetes mount the host's \
             /sys/fs/bpf into the pod as a hostPath volume (deploy/kubernetes/daemonset.yaml does); \
             or run with --no-pin (enforcement then ends with the agent)"
        }
        Some(libc::EROFS) => {
            "/sys is read-only here (a container?): mount the host's /sys/fs/bpf into it (a \
             hostPath volume in Kubernetes, `-v /sys/fs/bpf:/sys/fs/bpf` for podman/docker), or run \
             with --no-pin (enforcement then ends with the agent)"
        }
        Some(libc::ENODEV) => {
            "this kernel has no bpf file system (CONFIG_BPF_SYSCALL): run with --no-pin"
        }
        _ => {
            "mount it by hand (`mount -t bpf bpf /sys/fs/bpf`) and start again, or run with --no-pin"
        }
    }
}

/// The file system type of `path`.
fn fs_type(path: &Path) -> io::Result<u64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: a NUL-terminated path and a buffer of the right type; statfs fills it on success.
    if unsafe { libc::statfs(c.as_ptr(), buf.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statfs returned 0, so the buffer is initialised.
    let st = unsafe { buf.assume_init() };
    // `f_type`'s integer type differs by architecture (i64 on x86_64); the magic is 32 bits.
    #[allow(clippy::unnecessary_cast)]
    Ok(st.f_type as u64 & 0xffff_ffff)
}

/// The nearest folder of `dir` (itself or an ancestor) that exists.
fn nearest_existing(dir: &Path) -> &Path {
    dir.ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.symlink_metadata().is_ok())
        .unwrap_or(Path::new("/"))
}

/// Whether this process's mount namespace is the init process's.
pub fn namespace() -> Namespace {
    match (
        std::fs::read_link("/proc/self/ns/mnt"),
        std::fs::read_link("/proc/1/ns/mnt"),
    ) {
        (Ok(own), Ok(init)) if own == init => Namespace::Initial,
        (Ok(_), Ok(_)) => Namespace::Private,
        _ => Namespace::Unknown,
    }
}

/// Makes sure `pin_dir` is (or will be, once created) on a bpf file system; see the module
/// header. Mounting needs CAP_SYS_ADMIN, and is done only where none is.
pub fn ensure(pin_dir: &Path) -> Result<PinFs, BpffsError> {
    let existing = nearest_existing(pin_dir);
    let found = fs_type(existing).map_err(|source| BpffsError::Statfs {
        path: existing.to_owned(),
        source,
    })?;
    let pin_fs = |mount| PinFs {
        pin_dir: pin_dir.to_owned(),
        mount,
        namespace: namespace(),
    };
    if found == u64::from(BPF_FS_MAGIC) {
        return Ok(pin_fs(Mount::Found));
    }
    let mount_point = Path::new(MOUNT_POINT);
    if !pin_dir.starts_with(mount_point) {
        return Err(BpffsError::NotBpffs {
            dir: pin_dir.to_owned(),
            mount: existing.to_owned(),
            fs_type: found,
        });
    }
    mount_bpffs(mount_point).map_err(|source| BpffsError::Mount {
        advice: advice(&source),
        source,
    })?;
    // Mounted: the pin folder's file system must now be the new bpffs.
    let existing = nearest_existing(pin_dir);
    let now = fs_type(existing).map_err(|source| BpffsError::Statfs {
        path: existing.to_owned(),
        source,
    })?;
    if now != u64::from(BPF_FS_MAGIC) {
        return Err(BpffsError::NotBpffs {
            dir: pin_dir.to_owned(),
            mount: existing.to_owned(),
            fs_type: now,
        });
    }
    Ok(pin_fs(Mount::Mounted))
}

/// `mount -t bpf bpf <at> -o mode=0700`, creating `at` first if it is missing.
fn mount_bpffs(at: &Path) -> io::Result<()> {
    match std::fs::create_dir(at) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let target = CString::new(at.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: NUL-terminated strings that outlive the call; no flags; `data` is a string of
    // bpffs mount options.
    let r = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            c"mode=0700".as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_outside_sys_fs_bpf_on_another_file_system_is_refused_with_what_to_do() {
        let dir_tmp = tempfile::Builder::new()
            .prefix("embargo-bpffs-test-")
            .tempdir()
            .unwrap();
        // A path in a fresh folder that does not exist yet.
        let dir = dir_tmp.path().join("t");
        let err = ensure(&dir.join("pins")).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, BpffsError::NotBpffs { .. }), "{text}");
        assert!(text.contains("--no-pin"), "{text}");
        assert!(text.contains(MOUNT_POINT), "{text}");
    }

    #[test]
    fn only_a_mount_the_agent_made_outside_the_init_namespace_is_ephemeral() {
        let pin = |mount, namespace| PinFs {
            pin_dir: PathBuf::from("/sys/fs/bpf/embargo"),
            mount,
            namespace,
        };
        assert!(!pin(Mount::Found, Namespace::Private).ephemeral());
        assert!(!pin(Mount::Mounted, Namespace::Initial).ephemeral());
        assert!(pin(Mount::Mounted, Namespace::Private).ephemeral());
        assert!(pin(Mount::Mounted, Namespace::Unknown).ephemeral());
        assert!(
            pin(Mount::Mounted, Namespace::Private)
                .describe()
                .contains("private mount namespace")
        );
    }

    #[test]
    fn the_nearest_existing_folder_is_found() {
        assert_eq!(
            nearest_existing(Path::new("/proc/self/no/such")),
            Path::new("/proc/self")
        );
        assert_eq!(
            nearest_existing(Path::new("/no-such-root-folder")),
            Path::new("/")
        );
    }
}
