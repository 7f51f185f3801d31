//! Child processes: how they ended, and where their stdout may go.

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// How a child process ended: its exit code, or the signal that killed it.
/// Decoded here once; callers choose how to show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Code(i32),
    Signal(i32),
}

impl Ended {
    pub fn of(status: ExitStatus) -> Ended {
        match (status.code(), status.signal()) {
            (Some(code), _) => Ended::Code(code),
            (None, Some(signal)) => Ended::Signal(signal),
            // Unix gives one or the other; a stopped process is not ended.
            (None, None) => Ended::Code(-1),
        }
    }

    /// The status as a shell (and Buildkite) reports it: the code, or 128
    /// plus the signal's number.
    pub fn shell_status(self) -> i32 {
        match self {
            Ended::Code(code) => code,
            Ended::Signal(signal) => 128 + signal,
        }
    }

    /// "exit status 3" or "killed by signal 9", for messages.
    pub fn describe(self) -> String {
        match self {
            Ended::Code(code) => format!("exit status {code}"),
            Ended::Signal(signal) => format!("killed by signal {signal}"),
        }
    }
}

/// A handle on our stderr for a child's stdout: whatever Nix or the agent
/// prints goes to our log, never to our stdout, which holds only results.
pub fn stderr_handle() -> Result<Stdio> {
    use std::os::fd::AsFd;
    let fd = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating stderr")?;
    Ok(Stdio::from(fd))
}

/// Waits for `child` until `deadline`, and kills it then: `None` when it
/// had to be killed. For helpers that must not hold up the caller for long
/// (a hung `buildkite-agent` must not hang pipeline generation); std has no
/// wait with a timeout, so this polls.
pub fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            child.kill()?;
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let code = Ended::of(ExitStatus::from_raw(3 << 8));
        assert_eq!(code, Ended::Code(3));
        assert_eq!(
            (code.shell_status(), code.describe().as_str()),
            (3, "exit status 3")
        );
        let killed = Ended::of(ExitStatus::from_raw(9));
        assert_eq!(killed, Ended::Signal(9));
        assert_eq!(killed.shell_status(), 137);
        assert_eq!(killed.describe(), "killed by signal 9");
    }

    #[test]
    fn a_child_past_its_deadline_is_killed() {
        let mut quick = std::process::Command::new("true").spawn().unwrap();
        let far = Instant::now() + Duration::from_secs(60);
        assert!(wait_until(&mut quick, far).unwrap().unwrap().success());
        let mut slow = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        assert_eq!(wait_until(&mut slow, Instant::now()).unwrap(), None);
        assert!(slow.try_wait().unwrap().is_some(), "the child is reaped");
    }
}
