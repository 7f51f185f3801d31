//! Processes a step left behind: its background children, still in its
//! process group after its shell exited (`sleep 37 &`, a server a test
//! forgot to stop). They must not outlive the run, so they get SIGTERM as
//! the step ends and SIGKILL if they are still there after the grace
//! period; the run waits for them before it ends.

use std::time::Instant;

use super::job::{self, KILL_GRACE};
use super::plan::StepId;

/// The process groups of finished steps that still have processes.
#[derive(Default)]
pub struct Leftovers {
    groups: Vec<Group>,
}

struct Group {
    step: StepId,
    pgid: i32,
    /// When the group got SIGTERM.
    termed: Instant,
    killed: bool,
}

impl Leftovers {
    /// Called once a step's shell has been waited for: whether its group
    /// still has processes, which are then stopped. `stopping` is when the
    /// group already got SIGTERM, and whether SIGKILL, if the step was
    /// being stopped.
    pub fn after_step(
        &mut self,
        step: StepId,
        pgid: i32,
        stopping: Option<(Instant, bool)>,
    ) -> bool {
        job::reap_group(pgid);
        if !job::group_exists(pgid) {
            return false;
        }
        let (termed, killed) = stopping.unwrap_or_else(|| {
            job::signal_group(pgid, libc::SIGTERM);
            (Instant::now(), false)
        });
        self.groups.push(Group {
            step,
            pgid,
            termed,
            killed,
        });
        true
    }

    /// Forgets the groups that are gone, and sends SIGKILL to those still
    /// there a grace period after SIGTERM. Returns the steps whose
    /// processes got it.
    pub fn check(&mut self) -> Vec<StepId> {
        let mut killed = Vec::new();
        self.groups.retain_mut(|group| {
            job::reap_group(group.pgid);
            if !job::group_exists(group.pgid) {
                return false;
            }
            if !group.killed && group.termed.elapsed() >= KILL_GRACE {
                job::signal_group(group.pgid, libc::SIGKILL);
                group.killed = true;
                killed.push(group.step);
            }
            true
        });
        killed
    }

    /// SIGKILL to every group now.
    pub fn kill_all(&mut self) {
        for group in self.groups.iter_mut().filter(|g| !g.killed) {
            job::signal_group(group.pgid, libc::SIGKILL);
            group.killed = true;
        }
    }

    /// The steps whose processes are still there, as of the last check.
    pub fn steps(&self) -> Vec<StepId> {
        self.groups.iter().map(|g| g.step).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}
