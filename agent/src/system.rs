//! Facts about the running system: kernel version, interfaces, CPUs, capabilities.

use std::ffi::CString;

/// The kernel release string (`uname -r`), if readable.
pub fn kernel_release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Whether release `found` (e.g. `6.1.0-18-amd64`) is older than `(major, minor)`.
pub fn version_less(found: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = found
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().unwrap_or(0));
    let a = parts.next().unwrap_or(0);
    let b = parts.next().unwrap_or(0);
    (a, b) < (major, minor)
}

/// The ifindex of interface `name`, or `None` if there is none.
pub fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated string; the call only reads it.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// The name of interface `ifindex`, or `None` if there is none.
pub fn ifname(ifindex: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes the call may write (NUL included).
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success the call wrote a NUL-terminated name into `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// `CAP_SYS_ADMIN`'s number (`linux/capability.h`).
pub const CAP_SYS_ADMIN: u32 = 21;
/// `CAP_PERFMON`'s number (Linux 5.8+).
pub const CAP_PERFMON: u32 = 38;

/// Whether this process has capability `cap` (a `CAP_*` number) in its effective set, from
/// `/proc/self/status`; `None` if that cannot be read.
pub fn has_capability(cap: u32) -> Option<bool> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    effective_caps(&status).map(|set| cap < 64 && set & (1 << cap) != 0)
}

/// The `CapEff:` bit set of a `/proc/<pid>/status` text.
fn effective_caps(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Number of possible CPUs (the size of per-CPU map values).
pub fn possible_cpus() -> usize {
    aya::util::nr_cpus().unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_kernel_versions() {
        assert!(version_less("4.19.0-21-amd64", (5, 10)));
        assert!(version_less("5.4.0", (5, 10)));
        assert!(!version_less("5.10.0", (5, 10)));
        assert!(!version_less("6.18.44-fc-v669", (5, 10)));
    }

    #[test]
    fn reads_the_effective_capability_set() {
        let status = "Name:\tembargo\nCapInh:\t0000000000000000\nCapEff:\t000000c000001000\n";
        let set = effective_caps(status).unwrap();
        // CAP_NET_ADMIN (12), CAP_PERFMON (38), CAP_BPF (39).
        assert_eq!(set, (1 << 12) | (1 << CAP_PERFMON) | (1 << 39));
        assert_eq!(set & (1 << CAP_SYS_ADMIN), 0);
        assert_eq!(effective_caps("Name:\tx\n"), None);
        assert!(has_capability(CAP_PERFMON).is_some());
    }

    #[test]
    fn loopback_has_an_index() {
        assert!(ifindex("lo").is_some());
        assert!(ifindex("no-such-if0").is_none());
    }
}
