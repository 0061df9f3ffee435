//! `BPF_PROG_TEST_RUN` on a raw XDP program fd: for code that runs packets on one thread while
//! another changes the data plane (so it cannot borrow aya's program), and for the bench.

use std::os::fd::RawFd;

/// The `test` member of `union bpf_attr` (uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// Runs XDP program `prog` on `frame` `repeat` times, received on `ifindex` (passed in an
/// `xdp_md` ctx); returns (XDP action, average ns per run as the kernel measured it).
pub fn xdp_test_run(
    prog: RawFd,
    frame: &[u8],
    repeat: u32,
    ifindex: u32,
) -> std::io::Result<(u32, u32)> {
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex.
    let ctx: [u32; 6] = [0, frame.len() as u32, 0, ifindex, 0, 0];
    let mut attr = TestRunAttr {
        prog_fd: prog as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat,
        ctx_size_in: size_of_val(&ctx) as u32,
        ctx_in: ctx.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: `attr` is a valid bpf_attr prefix whose pointers reference live buffers of the
    // sizes given; the kernel writes only retval, duration and the *_size_out fields.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            size_of::<TestRunAttr>() as u32,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((attr.retval, attr.duration))
}
