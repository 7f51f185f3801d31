//! `treekite run`: execute a generated pipeline on this machine, as
//! Buildkite would run it.
//!
//! The flow: [`plan`] loads the chunks of the phases to run (interpolated
//! as at upload), [`graph`] works out what each step waits for, then the
//! [`schedule`] runs the steps ([`job`], and ends what they leave behind:
//! [`leftovers`]) in the [`context`] of a local build, and [`report`]
//! shows each [`outcome`] (a failed step with the [`tail`] of its log),
//! [`printable`](crate::printable) on a terminal.
//!
//! Everything that can be wrong with the input (the directory, the JSON,
//! interpolation, keys, dependencies, cycles, branch patterns) is checked
//! before the first step starts, so bad input runs nothing.

mod context;
mod graph;
mod interpolate;
mod job;
mod leftovers;
mod outcome;
mod plan;
mod report;
mod schedule;
mod tail;

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;

use crate::exit::ExitCode;
use crate::pipeline_dir::PipelineDir;
use context::Context;
pub use context::EnvVar;
use report::Progress;
use schedule::Scheduler;

/// What `treekite run` was asked to do.
#[derive(Debug)]
pub struct Request {
    /// The pipeline directory.
    pub dir: PathBuf,
    /// Phases to run, in this order; every phase when empty.
    pub phases: Vec<String>,
    /// The branch the build is for; the checkout's when `None`.
    pub branch: Option<String>,
    /// `--env`, in the order given.
    pub env: Vec<EnvVar>,
    pub jobs: NonZeroUsize,
    pub unblock: bool,
    /// The repository root the steps run in; found from the current
    /// directory when `None`.
    pub root: Option<PathBuf>,
    pub log_dir: Option<PathBuf>,
}

pub fn run(request: &Request) -> Result<ExitCode> {
    let context = Context::new(request)?;
    let dir = PipelineDir::open(&request.dir)?;
    let phases = plan::choose_phases(&dir, &request.phases)?;
    let mut plan = plan::load(&dir, &phases, &context.interpolation_env())?;
    let (graph, warnings) = graph::build(&plan, &context.branch)?;
    plan.warnings.extend(warnings);

    let log_dir = context.create_log_dir()?;
    let interrupts = job::Interrupts::install()?;
    job::adopt_orphans();
    let mut progress = Progress::new();
    for warning in &plan.warnings {
        progress.warn(warning);
    }
    progress.line(&format!(
        "treekite: running {} on branch {} at {} in {} ({} at once)",
        phases.join(", "),
        context.branch,
        short(&context.commit),
        context.root.display(),
        context.jobs
    ));
    if let Some(summary) = dir.summary() {
        progress.line(&format!(
            "treekite: the pipeline's summary is {}; `treekite explain {} TARGET` says why a step runs, waits or is skipped",
            summary.display(),
            request.dir.display()
        ));
    }

    let started = Instant::now();
    let scheduler = Scheduler::new(
        &plan,
        &graph,
        &context,
        &mut progress,
        log_dir.clone(),
        interrupts,
    );
    let (results, was_interrupted) = scheduler.run();
    print!(
        "{}",
        report::summary(&plan, &results, started.elapsed(), &log_dir)
    );

    let failed = results
        .iter()
        .zip(&plan.steps)
        .any(|(record, step)| record.outcome.fails_build(step));
    Ok(if was_interrupted {
        ExitCode::Interrupted
    } else if failed {
        ExitCode::Failed
    } else {
        ExitCode::Success
    })
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
