//! How treekite ends: the exit codes (one enum, mapped once in `main`, as
//! fd's `exit_codes.rs` does) and the error that means "bad input".

use std::fmt;

/// The exit codes, as `--help` lists them ([`HELP`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// 0: everything asked for was done.
    Success,
    /// 1: a build, an evaluation or a step failed.
    Failed,
    /// 2: bad input; found before anything was built or written.
    BadInput,
    /// 130: Ctrl-C (or SIGTERM, SIGHUP) stopped `treekite run`, as a shell
    /// reports SIGINT.
    Interrupted,
    /// `treekite exec` passes on the status of the script it ran.
    Script(u8),
}

/// The exit codes for `--help`: written here, beside the enum they describe.
pub const HELP: &str = "\
Exit status:
  0  success
  1  a build, an evaluation or a step failed
  2  bad input: a flag, a path or an attribute that does not make sense
     (found before anything is built or written; only `exec` learns that
     its script's output cannot be run after building it)
  130 `treekite run` was interrupted
  `treekite exec` exits with the status of the script it ran.";

impl ExitCode {
    /// The status an error ends the process with.
    pub fn of_error(error: &anyhow::Error) -> ExitCode {
        if error.chain().any(|cause| cause.is::<BadInput>()) {
            ExitCode::BadInput
        } else {
            ExitCode::Failed
        }
    }

    /// Whether this code means the command did what it was asked.
    pub fn is_success(self) -> bool {
        self == ExitCode::Success
    }
}

impl From<ExitCode> for u8 {
    fn from(code: ExitCode) -> u8 {
        match code {
            ExitCode::Success => 0,
            ExitCode::Failed => 1,
            ExitCode::BadInput => 2,
            ExitCode::Interrupted => 130,
            ExitCode::Script(status) => status,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> std::process::ExitCode {
        std::process::ExitCode::from(u8::from(code))
    }
}

/// An error in what the caller asked for (a flag, a path, an attribute), as
/// opposed to a failure of Nix or of a build. Reported with exit status 2.
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Builds a [`BadInput`] error from a message.
pub fn bad_input(message: impl Into<String>) -> anyhow::Error {
    BadInput(message.into()).into()
}

/// The error as one line, for `treekite: error: …`: callers parse the last
/// stderr line, so a message must never span several.
pub fn one_line(error: &anyhow::Error) -> String {
    format!("{error:#}").replace(['\n', '\r'], " ")
}
