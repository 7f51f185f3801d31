//! Asking git: the one place treekite runs it.

use std::path::Path;
use std::process::{Command, Stdio};

/// `git -C DIR …` with stdin closed and stdout captured.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    cmd
}

/// What `git -C DIR ARGS` prints, trimmed, or `None` when git is missing,
/// fails or prints nothing. Its stderr is dropped: callers say themselves
/// what a missing answer means.
pub fn output(dir: &Path, args: &[&str]) -> Option<String> {
    let output = command(dir)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (output.status.success() && !text.is_empty()).then(|| text.to_owned())
}

/// The branch checked out in `dir`; `None` on a detached HEAD or outside
/// a checkout.
pub fn current_branch(dir: &Path) -> Option<String> {
    output(dir, &["symbolic-ref", "--quiet", "--short", "HEAD"])
}
