//! What the `embargo` command line prints goes through here, so a closed pipe never panics.
//!
//! `println!` panics when standard output is a pipe whose reader has gone (`embargo status
//! --verify | head -1`): exit 101 and a panic message instead of the command's documented exit
//! code. The choice made here, rather than restoring the default SIGPIPE action (which would
//! kill the process with status 141 and could also kill `embargo run` on a closed socket or
//! stderr): a write that fails with `EPIPE` marks standard output closed, later printing is
//! skipped, and the command finishes and exits with the code it documents (3 for drift, 64 for
//! a refused configuration, 0 otherwise). Any other write error (a full disk behind `>`) is
//! reported on stderr and exits [`EXIT_IO`]. Standard error never panics: a failed write to it
//! is ignored (there is nowhere left to say so).

use std::{
    fmt,
    io::{self, Write as _},
    sync::atomic::{AtomicBool, Ordering},
};

/// Exit status when standard output cannot be written for another reason than a closed pipe
/// (sysexits' EX_IOERR).
pub const EXIT_IO: i32 = super::exit::Exit::Io.code() as i32;

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether a write found standard output closed (its reader went away).
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Writes to standard output; see the module docs for what a failure does.
pub fn stdout(args: fmt::Arguments<'_>) {
    if stdout_closed() {
        return;
    }
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        failed(e);
    }
}

/// Writes `bytes` to standard output and flushes: `Ok` also when the reader has gone (the
/// output is dropped quietly), the error otherwise.
pub fn stdout_bytes(bytes: &[u8]) -> io::Result<()> {
    if stdout_closed() {
        return Ok(());
    }
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        r => r,
    }
}

/// Flushes standard output (before the process exits: what is still buffered is written, or
/// dropped quietly if the reader has gone).
pub fn flush() {
    if stdout_closed() {
        return;
    }
    if let Err(e) = io::stdout().lock().flush() {
        failed(e);
    }
}

/// Writes to standard error, ignoring failures.
pub fn stderr(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

fn failed(e: io::Error) {
    if e.kind() == io::ErrorKind::BrokenPipe {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        return;
    }
    stderr(format_args!("error: writing to standard output: {e}\n"));
    std::process::exit(EXIT_IO);
}
