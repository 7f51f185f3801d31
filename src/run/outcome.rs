//! How each step of a local run ended, or why it never started: what the
//! scheduler decides and the report shows.

use std::path::PathBuf;
use std::time::Duration;

use super::plan::{Step, StepId};

/// How a step ended (or why it never started).
#[derive(Debug, Clone)]
pub enum Outcome {
    Passed,
    /// A block or input step passed because of `--unblock`.
    Unblocked,
    SoftFailed(i64),
    Failed(Failure),
    /// Stopped while running: by Ctrl-C, or `cancel_on_build_failing`.
    Canceled(&'static str),
    Skipped(String),
    /// A block or input step, waiting for a person.
    Blocked,
    NotRun(Why),
}

#[derive(Debug, Clone)]
pub enum Failure {
    Exit(i64),
    TimedOut(Duration),
    Error(String),
    /// A group with a failed step.
    InGroup,
}

#[derive(Debug, Clone)]
pub enum Why {
    DependencyFailed(StepId),
    /// Waits, directly or not, for this block step.
    Blocked(StepId),
    BuildFailing,
    Interrupted,
    PhaseStopped(String),
}

/// What an outcome means for the steps that wait for it.
pub enum Effect {
    Satisfied,
    Broken,
    /// Waiting on a block step, forever in a local run.
    Stuck(StepId),
}

impl Outcome {
    pub fn effect(&self, id: StepId) -> Effect {
        match self {
            Outcome::Passed | Outcome::Unblocked | Outcome::SoftFailed(_) | Outcome::Skipped(_) => {
                Effect::Satisfied
            }
            Outcome::Blocked => Effect::Stuck(id),
            Outcome::NotRun(Why::Blocked(block)) => Effect::Stuck(*block),
            Outcome::Failed(_) | Outcome::Canceled(_) | Outcome::NotRun(_) => Effect::Broken,
        }
    }

    /// A failure that fails the build (and the run's exit status).
    pub fn is_hard_failure(&self) -> bool {
        matches!(self, Outcome::Failed(_) | Outcome::Canceled(_))
    }

    /// Whether this outcome of `step` fails the build: a hard failure of a
    /// job (a group fails through its steps, which are counted already).
    pub fn fails_build(&self, step: &Step) -> bool {
        step.is_job() && self.is_hard_failure()
    }
}

#[derive(Debug, Clone)]
pub struct Record {
    pub outcome: Outcome,
    pub duration: Option<Duration>,
    pub log: Option<PathBuf>,
}

impl Record {
    /// A record for a step that did not run (no duration, no log).
    pub fn of(outcome: Outcome) -> Record {
        Record {
            outcome,
            duration: None,
            log: None,
        }
    }
}
