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
//!
//! Errors under `--json` ([`set_json`]): every command that takes `--json` reports its errors
//! through [`error`] (the `fail!` macro); without `--json` that prints `error: MESSAGE` as it
//! always has. With it, nothing is written to standard error while the command runs: its errors
//! and its other lines (notes, warnings) are kept, and [`finish`], called once by `main` with the
//! exit status, writes them as ONE JSON line on standard error, `{"error": "<the first error's
//! message>", "exit_code": N, "errors": [every error's message], "notes": [the other lines]}`,
//! when the command failed (an error was reported, or the status is neither 0 nor a finding,
//! 3 or 4). When it did not fail, the kept lines are written as text, as without `--json`.

use std::{
    fmt,
    io::{self, Write as _},
    sync::atomic::{AtomicBool, Ordering},
};

/// Exit status when standard output cannot be written for another reason than a closed pipe
/// (sysexits' EX_IOERR).
pub const EXIT_IO: i32 = super::exit::Exit::Io.code() as i32;

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Whether the command runs with `--json` ([`set_json`]).
static JSON: AtomicBool = AtomicBool::new(false);

/// What a command under `--json` reported on standard error, kept for [`finish`].
#[derive(Default)]
struct Kept {
    errors: Vec<String>,
    notes: Vec<String>,
}

static KEPT: std::sync::Mutex<Kept> = std::sync::Mutex::new(Kept {
    errors: Vec::new(),
    notes: Vec::new(),
});

/// Errors (and the other standard error lines) become one JSON object at [`finish`]: set by
/// `main` before the command runs when it was given `--json`.
pub fn set_json(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

/// Whether errors are reported as JSON ([`set_json`]).
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Reports an error: `error: MESSAGE` on standard error, or, under `--json`, kept for the
/// JSON object [`finish`] writes.
pub fn error(args: fmt::Arguments<'_>) {
    if json() {
        kept().errors.push(args.to_string());
    } else {
        stderr(format_args!("error: {args}\n"));
    }
}

fn kept() -> std::sync::MutexGuard<'static, Kept> {
    KEPT.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The JSON error object of a command that exits with `exit_code` after reporting `errors`
/// (and `notes`); `None` when it did not fail (see the module docs).
pub fn error_object(errors: &[String], notes: &[String], exit_code: u8) -> Option<String> {
    if errors.is_empty() && matches!(exit_code, 0 | 3 | 4) {
        return None;
    }
    let first = errors
        .first()
        .cloned()
        .unwrap_or_else(|| format!("the command failed with exit status {exit_code}"));
    let v = serde_json::json!({
        "error": first,
        "exit_code": exit_code,
        "errors": errors,
        "notes": notes,
    });
    Some(v.to_string())
}

/// Ends a command that exits with `exit_code`: under `--json`, writes what it kept on standard
/// error (the JSON error object when it failed, else its lines as text).
pub fn finish(exit_code: u8) {
    if !json() {
        return;
    }
    let Kept { errors, notes } = std::mem::take(&mut *kept());
    match error_object(&errors, &notes, exit_code) {
        Some(line) => stderr_line(&line),
        None => {
            for n in notes {
                stderr_line(&n);
            }
        }
    }
}

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

/// Writes to standard error, ignoring failures; under `--json`, kept for [`finish`] instead
/// (without its trailing newline).
pub fn stderr(args: fmt::Arguments<'_>) {
    if json() {
        let text = args.to_string();
        kept()
            .notes
            .push(text.strip_suffix('\n').unwrap_or(&text).to_owned());
        return;
    }
    let _ = io::stderr().lock().write_fmt(args);
}

/// Writes one line to standard error now, also under `--json` (a JSON line of its own, such
/// as an import's summary).
pub fn stderr_line(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

fn failed(e: io::Error) {
    if e.kind() == io::ErrorKind::BrokenPipe {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        return;
    }
    error(format_args!("writing to standard output: {e}"));
    finish(EXIT_IO as u8);
    std::process::exit(EXIT_IO);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failure is one JSON object with the first error and the status; a success or a
    /// finding (3, 4) without an error is none.
    #[test]
    fn the_error_object_names_the_first_error_and_the_exit_code() {
        let line = error_object(&["a: bad".into(), "b".into()], &["note".into()], 64).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["error"], "a: bad");
        assert_eq!(v["exit_code"], 64);
        assert_eq!(v["errors"], serde_json::json!(["a: bad", "b"]));
        assert_eq!(v["notes"], serde_json::json!(["note"]));
        assert!(!line.contains('\n'));
        for code in [0, 3, 4] {
            assert_eq!(error_object(&[], &["x".into()], code), None);
        }
        let v: serde_json::Value =
            serde_json::from_str(&error_object(&[], &[], 1).unwrap()).unwrap();
        assert_eq!(v["exit_code"], 1);
    }
}
