//! Facts about the running system: kernel version, interfaces, CPUs.

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
    fn loopback_has_an_index() {
        assert!(ifindex("lo").is_some());
        assert!(ifindex("no-such-if0").is_none());
    }
}
