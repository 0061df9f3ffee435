//! The exit statuses of the `embargo` command, and the one mapping from an error to its status.
//!
//! Invariants: every number the command exits with is written here and nowhere else (the
//! tests and the documentation match them: 0, 1, 3 for drift, 4 for ageing evidence under
//! `check --strict`, 64 for a refused configuration or
//! a missing option, 65 for input that cannot be imported, 73 for output that cannot be created,
//! 74 for standard output that cannot be written). An error's status depends on the error's
//! kind only ([`ExitStatus`]), never on the command that met it.

use std::process::ExitCode;

use crate::{
    config::ConfigError,
    inputs::{import::ImportError, lists::ListError},
    run::RunError,
};

/// What the `embargo` command exits with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: done.
    Success,
    /// 1: the command failed (an agent unreachable, a broken audit chain, a fetch failed...).
    Failure,
    /// 3: `embargo status --verify` found drift in the kernel maps (and it was repaired).
    Drift,
    /// 4: `embargo check --strict` found ageing evidence: an enforced entity with no current
    /// prefixes, or evidence that stops counting within `--expiring`. (Like 3, a finding, not
    /// a failure; 2 is what the argument parser exits with for a command line it refuses.)
    Ageing,
    /// 64 (EX_USAGE, as linkerd uses): the configuration or a list was refused, or the command
    /// line misses something.
    Usage,
    /// 65 (EX_DATAERR): input that cannot be imported whole.
    DataErr,
    /// 73 (EX_CANTCREAT): the output cannot be written where asked.
    CantCreate,
    /// 74 (EX_IOERR): standard output cannot be written (for another reason than a closed pipe).
    Io,
}

impl Exit {
    /// The process exit status.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Drift => 3,
            Exit::Ageing => 4,
            Exit::Usage => 64,
            Exit::DataErr => 65,
            Exit::CantCreate => 73,
            Exit::Io => 74,
        }
    }

    /// `Success` when `ok`, else `Failure`.
    pub const fn ok_or_failure(ok: bool) -> Self {
        if ok { Exit::Success } else { Exit::Failure }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

/// The exit status an error ends a command with.
pub trait ExitStatus {
    fn exit(&self) -> Exit;
}

impl ExitStatus for ConfigError {
    fn exit(&self) -> Exit {
        Exit::Usage
    }
}

/// A sanctions list `embargo import` refused.
impl ExitStatus for ListError {
    fn exit(&self) -> Exit {
        Exit::Usage
    }
}

impl ExitStatus for ImportError {
    fn exit(&self) -> Exit {
        match self {
            ImportError::Usage(_) => Exit::Usage,
            ImportError::Output { .. } => Exit::CantCreate,
            ImportError::Read(_) | ImportError::Invalid { .. } => Exit::DataErr,
        }
    }
}

/// An export that names an entity it cannot export is a usage error.
impl ExitStatus for crate::policy::export::ExportError {
    fn exit(&self) -> Exit {
        use crate::policy::export::ExportError;
        match self {
            ExportError::Write(_) => Exit::Io,
            _ => Exit::Usage,
        }
    }
}

impl ExitStatus for RunError {
    fn exit(&self) -> Exit {
        match self {
            RunError::Config(e) => e.exit(),
            _ => Exit::Failure,
        }
    }
}

/// The exit status of an error, through [`ExitStatus`].
pub fn exit_code(error: &impl ExitStatus) -> Exit {
    error.exit()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers scripts and the CLI tests rely on.
    #[test]
    fn exit_codes_are_the_documented_numbers() {
        let codes: Vec<u8> = [
            Exit::Success,
            Exit::Failure,
            Exit::Drift,
            Exit::Ageing,
            Exit::Usage,
            Exit::DataErr,
            Exit::CantCreate,
            Exit::Io,
        ]
        .map(Exit::code)
        .into();
        assert_eq!(codes, [0, 1, 3, 4, 64, 65, 73, 74]);
        assert_eq!(exit_code(&ImportError::Usage("x".into())), Exit::Usage);
        assert_eq!(
            exit_code(&ImportError::invalid("f:1", "bad")),
            Exit::DataErr
        );
        assert_eq!(
            exit_code(&ImportError::Output {
                path: "o".into(),
                message: "exists".into()
            }),
            Exit::CantCreate
        );
        assert_eq!(exit_code(&RunError::NoInterfaces), Exit::Failure);
    }
}
