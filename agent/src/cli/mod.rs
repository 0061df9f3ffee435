//! The command line's library side: its arguments ([`args`]), its exit statuses ([`exit`]),
//! what it prints ([`output`]) and the body of each command that is more than a call into
//! another module ([`commands`], [`check`], [`import`], [`init`]). The `embargo` binary parses, dispatches and
//! exits, nothing else.

/// Prints to standard output through [`output`]: a closed pipe ends the printing quietly and
/// the command keeps its exit code.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::output::stdout(format_args!($($arg)*)) };
}

/// [`out!`] with a newline.
macro_rules! outln {
    () => { $crate::cli::output::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::output::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints to standard error; never panics.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::cli::output::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Reports an error through [`output::error`]: `error: MESSAGE` on standard error, or under
/// `--json` part of the JSON error object.
macro_rules! fail {
    ($($arg:tt)*) => { $crate::cli::output::error(format_args!($($arg)*)) };
}

pub mod args;
pub mod check;
pub mod commands;
pub mod exit;
pub mod import;
pub mod init;
pub mod output;
pub mod report;
