//! How failures map to exit codes (documented in `--help`).

use std::fmt;

/// Exit status for a failed build, evaluation or step.
pub const FAILED: u8 = 1;
/// Exit status for bad input: nothing was built or written.
pub const BAD_INPUT: u8 = 2;

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

/// The exit status an error should produce.
pub fn code_for(error: &anyhow::Error) -> u8 {
    if error.chain().any(|cause| cause.is::<BadInput>()) {
        BAD_INPUT
    } else {
        FAILED
    }
}

/// The error as one line, for `treekite: error: …`: callers parse the last
/// stderr line, so a message must never span several.
pub fn one_line(error: &anyhow::Error) -> String {
    format!("{error:#}").replace(['\n', '\r'], " ")
}
