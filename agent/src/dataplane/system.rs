//! Facts about the running system: kernel version, interfaces, CPUs, capabilities; and the one
//! traffic-control change aya has no call for (removing a `clsact` qdisc).

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

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

/// The hardware type of interface `name` (`ARPHRD_*`, what `/sys/class/net/<name>/type` says),
/// asked of the kernel with `SIOCGIFHWADDR` on a socket of the caller's network namespace: the
/// right one under `nsenter --net`, where `/sys` still shows the namespace that mounted it.
/// `ENODEV` if there is no such interface.
pub fn arphrd(name: &str) -> io::Result<u16> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    }
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just returned by socket(2), owned by nothing else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `ifreq` is plain data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: a valid socket and a NUL-terminated name in an `ifreq` the call fills.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut ifr) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFHWADDR filled the hardware address member of the union.
    Ok(unsafe { ifr.ifr_ifru.ifru_hwaddr.sa_family })
}

/// The driver of interface `name` as ethtool reports it (`ETHTOOL_GDRVINFO`: `bonding`,
/// `bridge`, `veth`, `tun`, `802.1Q VLAN Driver`, ...), asked on a socket of the caller's
/// network namespace. `ENODEV` if there is no such interface; `EOPNOTSUPP` for a driver
/// without ethtool support.
pub fn driver(name: &str) -> io::Result<String> {
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;
    /// `struct ethtool_drvinfo` (`linux/ethtool.h`), 196 bytes.
    #[repr(C)]
    struct DrvInfo {
        cmd: u32,
        driver: [u8; 32],
        rest: [u8; 160],
    }
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    }
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just returned by socket(2), owned by nothing else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut info = DrvInfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        rest: [0; 160],
    };
    // SAFETY: `ifreq` is plain data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (&mut info as *mut DrvInfo).cast();
    // SAFETY: a valid socket, a NUL-terminated name, and `ifru_data` pointing at a
    // `struct ethtool_drvinfo` the call fills, alive for the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &mut ifr) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let len = info.driver.iter().position(|b| *b == 0).unwrap_or(32);
    Ok(String::from_utf8_lossy(&info.driver[..len]).into_owned())
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

/// `TC_H_CLSACT` (`linux/pkt_sched.h`): the parent of the `clsact` (and `ingress`) qdisc.
const TC_H_CLSACT: u32 = 0xFFFF_FFF1;
/// The `clsact` qdisc's own handle, `ffff:`.
const CLSACT_HANDLE: u32 = 0xFFFF_0000;
/// `TCA_KIND` (`linux/rtnetlink.h`): the qdisc kind attribute.
const TCA_KIND: u16 = 1;

/// Deletes interface `ifindex`'s `clsact` qdisc, and with it every filter on it, as
/// `tc qdisc del dev IF clsact` does. Fails with `EINVAL` if the qdisc there is not a `clsact`,
/// `ENOENT` if there is none. Works in the calling thread's network namespace.
pub fn qdisc_del_clsact(ifindex: u32) -> io::Result<()> {
    /// `struct tcmsg`.
    #[repr(C)]
    struct TcMsg {
        family: u8,
        _pad1: u8,
        _pad2: u16,
        ifindex: i32,
        handle: u32,
        parent: u32,
        info: u32,
    }
    /// RTM_DELQDISC with one attribute, TCA_KIND = "clsact".
    #[repr(C)]
    struct Request {
        header: libc::nlmsghdr,
        tcm: TcMsg,
        kind: libc::nlattr,
        name: [u8; 8],
    }
    let name = *b"clsact\0\0";
    let req = Request {
        header: libc::nlmsghdr {
            nlmsg_len: size_of::<Request>() as u32,
            nlmsg_type: libc::RTM_DELQDISC,
            nlmsg_flags: (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16,
            nlmsg_seq: 1,
            nlmsg_pid: 0,
        },
        tcm: TcMsg {
            family: libc::AF_UNSPEC as u8,
            _pad1: 0,
            _pad2: 0,
            ifindex: ifindex as i32,
            handle: CLSACT_HANDLE,
            parent: TC_H_CLSACT,
            info: 0,
        },
        kind: libc::nlattr {
            // The header and "clsact" with its NUL; the padding byte is not counted.
            nla_len: (size_of::<libc::nlattr>() + 7) as u16,
            nla_type: TCA_KIND,
        },
        name,
    };
    const _: () = assert!(size_of::<Request>() == 48);
    // SAFETY: plain socket creation; the fd is owned (and closed) by `sock` from here on.
    let sock = unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        OwnedFd::from_raw_fd(fd)
    };
    // SAFETY: `req` is a live, fully initialised #[repr(C)] value of the length given.
    let sent = unsafe {
        libc::send(
            sock.as_raw_fd(),
            (&raw const req).cast(),
            size_of::<Request>(),
            0,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    // The answer is one NLMSG_ERROR message: an error code, 0 for the acknowledgement.
    let mut buf = [0u8; 4096];
    // SAFETY: receives at most `buf.len()` bytes into `buf`.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    let header = size_of::<libc::nlmsghdr>();
    if n < header + 4 {
        return Err(io::Error::other("short netlink answer to RTM_DELQDISC"));
    }
    let kind = u16::from_ne_bytes([buf[4], buf[5]]);
    if kind != libc::NLMSG_ERROR as u16 {
        return Err(io::Error::other(format!(
            "unexpected netlink message type {kind} in answer to RTM_DELQDISC"
        )));
    }
    let code = i32::from_ne_bytes(buf[header..header + 4].try_into().expect("4 bytes"));
    if code == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(-code))
    }
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
    fn hardware_type_of_the_loopback_and_of_no_interface() {
        // `lo` exists in every network namespace, unprivileged.
        assert_eq!(arphrd("lo").unwrap(), embargo_abi::Link::ARPHRD_LOOPBACK);
        // The loopback has no ethtool driver info; a missing interface is ENODEV.
        assert!(driver("lo").is_err());
        assert_eq!(
            driver("embargo-none0").unwrap_err().raw_os_error(),
            Some(libc::ENODEV)
        );
        for name in ["embargo-none0", "", "sixteen-bytes-xx", "a\0b"] {
            let e = arphrd(name).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ENODEV), "{name:?}: {e}");
        }
    }

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
