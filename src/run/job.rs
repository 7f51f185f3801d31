//! Running one command step: `bash -e -c SCRIPT` (as the agent runs it) in
//! its own process group, output into a log file, and stopping it again.
//!
//! A step's process group is its own so that Ctrl-C at the terminal reaches
//! treekite alone; treekite then ends each running step's whole group
//! (the shell and everything it started), not just the shell.

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Sender;
use std::time::Instant;

use anyhow::{Context, Result};

use super::plan::StepId;
use crate::exit::ExitCode;

/// What a step runs and where.
pub struct Spec<'a> {
    pub script: &'a str,
    pub dir: &'a Path,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
}

/// A step's process has ended (sent from the thread that waits for it).
pub struct Exit {
    pub id: StepId,
    pub status: io::Result<ExitStatus>,
    pub at: Instant,
}

/// Starts a step; its end arrives on `events`. Returns the process group.
pub fn spawn(id: StepId, spec: Spec<'_>, events: Sender<Exit>) -> Result<i32> {
    let log = File::create(&spec.log)
        .with_context(|| format!("creating log file {}", spec.log.display()))?;
    let mut child = Command::new("bash")
        .args(["-e", "-c", spec.script])
        .current_dir(spec.dir)
        .envs(spec.env)
        .stdin(Stdio::null())
        .stdout(
            log.try_clone()
                .context("sharing the log file between stdout and stderr")?,
        )
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting bash (is it installed?)")?;
    let pid = i32::try_from(child.id()).context("process id out of range")?;
    std::thread::spawn(move || {
        let status = child.wait();
        // The receiver only goes away when treekite is finishing anyway.
        let _ = events.send(Exit {
            id,
            status,
            at: Instant::now(),
        });
    });
    Ok(pid)
}

/// Sends `signal` to every process in the group.
pub fn signal_group(pgid: i32, signal: libc::c_int) {
    // SAFETY: killpg has no memory-safety preconditions; a group that is
    // already gone gives ESRCH, which is fine to ignore.
    unsafe {
        libc::killpg(pgid, signal);
    }
}

/// A flag raised by SIGINT, SIGTERM or SIGHUP. A second signal while the
/// steps are being stopped ends treekite at once.
pub fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register_conditional_shutdown(
            signal,
            i32::from(u8::from(ExitCode::Interrupted)),
            Arc::clone(&flag),
        )
        .context("installing a signal handler")?;
        signal_hook::flag::register(signal, Arc::clone(&flag))
            .context("installing a signal handler")?;
    }
    Ok(flag)
}
