//! Running one command step: `bash -e -c SCRIPT` (as the agent runs it) in
//! its own process group, output into a log file, and stopping it again.
//!
//! A step's process group is its own so that Ctrl-C at the terminal reaches
//! treekite alone; treekite then ends each running step's whole group
//! (the shell and everything it started), not just the shell. The group
//! outlives the shell when the step leaves background children (`sleep 37
//! &`): they are in it too, so signalling the group after the shell has
//! exited ends them. A child that calls `setsid` (a daemon) leaves the
//! group, and escapes this.
//!
//! treekite makes itself the "subreaper" of its steps: an orphaned
//! background child becomes treekite's child instead of init's, so
//! treekite reaps it once it ends and a group with only dead members is
//! seen as gone (where init does not reap, as in some containers, dead
//! orphans would otherwise keep a group alive forever).

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::plan::StepId;

/// How long a step's processes may take to end after SIGTERM before they
/// get SIGKILL (the Buildkite agent's default cancel grace period).
pub const KILL_GRACE: Duration = Duration::from_secs(10);

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

/// Whether any process is left in the group. Call [`reap_group`] first:
/// a dead process not yet reaped still counts.
pub fn group_exists(pgid: i32) -> bool {
    // SAFETY: as in `signal_group`; signal 0 only checks.
    let sent = unsafe { libc::killpg(pgid, 0) } == 0;
    sent || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Reaps the group's members that have ended and are treekite's children
/// (orphans adopted by [`adopt_orphans`]). Only once the group's shell has
/// been waited for: this must not take its exit status from `spawn`'s
/// waiting thread.
pub fn reap_group(pgid: i32) {
    reap(-pgid);
}

/// Reaps every child of treekite that has ended, once no step is running:
/// orphans that left their step's group (a `setsid` daemon) and ended.
pub fn reap_all() {
    reap(-1);
}

fn reap(which: libc::pid_t) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid only writes the status through the pointer.
        if unsafe { libc::waitpid(which, &mut status, libc::WNOHANG) } <= 0 {
            return;
        }
    }
}

/// Makes orphaned descendants of the steps treekite's children (Linux's
/// child subreaper), so that [`reap_group`] can reap them.
pub fn adopt_orphans() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_CHILD_SUBREAPER takes a plain integer. Should it fail,
    // treekite still works; dead orphans are then init's to reap.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
    }
}

/// How often SIGINT, SIGTERM or SIGHUP arrived: the first asks to stop the
/// steps (SIGTERM, then SIGKILL after a grace period), the second to kill
/// every step's processes at once. treekite itself never dies of them, so
/// it always gets to end what its steps started.
pub struct Interrupts(Arc<AtomicUsize>);

impl Interrupts {
    pub fn install() -> Result<Interrupts> {
        let count = Arc::new(AtomicUsize::new(0));
        for signal in [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ] {
            let count = Arc::clone(&count);
            // SAFETY: the handler only increments an atomic, which is
            // async-signal-safe.
            unsafe {
                signal_hook::low_level::register(signal, move || {
                    count.fetch_add(1, Ordering::SeqCst);
                })
            }
            .context("installing a signal handler")?;
        }
        Ok(Interrupts(count))
    }

    /// How many have arrived so far.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// Stop the run: end the running steps gracefully, start nothing.
    pub fn stop(&self) -> bool {
        self.count() >= 1
    }

    /// Asked again: kill every step's processes now.
    pub fn kill(&self) -> bool {
        self.count() >= 2
    }
}
