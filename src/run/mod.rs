//! `treekite run`: execute a generated pipeline on this machine, as
//! Buildkite would run it.
//!
//! Everything that can be wrong with the input (the directory, the JSON,
//! interpolation, keys, dependencies, cycles, branch patterns) is checked
//! before the first step starts, so bad input runs nothing.

mod branches;
mod graph;
mod interpolate;
mod job;
mod pipeline;
mod report;
mod schedule;
mod settings;

use std::time::Instant;

use anyhow::Result;

use crate::cli::RunArgs;
use crate::exit;
use report::Progress;
use schedule::Scheduler;
use settings::Settings;

/// Exit status when Ctrl-C (or SIGTERM) stopped the run, as a shell reports SIGINT.
const INTERRUPTED: u8 = 130;

pub fn run(args: &RunArgs) -> Result<u8> {
    let settings = Settings::from_args(args)?;
    let (phases, chunks) = pipeline::choose_phases(&args.dir, &args.phases)?;
    let mut pipeline = pipeline::load(&phases, chunks, &settings.interpolation_env())?;
    let (graph, warnings) = graph::build(&pipeline, &settings.branch)?;
    pipeline.warnings.extend(warnings);

    let log_dir = settings.create_log_dir()?;
    let interrupted = job::interrupt_flag()?;
    let mut progress = Progress::new();
    for warning in &pipeline.warnings {
        progress.warn(warning);
    }
    progress.line(&format!(
        "treekite: running {} on branch {} at {} in {} ({} at once)",
        phases.join(", "),
        settings.branch,
        short(&settings.commit),
        settings.root.display(),
        settings.jobs
    ));

    let started = Instant::now();
    let scheduler = Scheduler::new(
        &pipeline,
        &graph,
        &settings,
        &mut progress,
        log_dir.clone(),
        interrupted,
    );
    let (results, was_interrupted) = scheduler.run();
    print!(
        "{}",
        report::summary(&pipeline, &results, started.elapsed(), &log_dir)
    );

    let failed = results
        .iter()
        .zip(&pipeline.steps)
        .any(|(r, step)| step.is_job() && r.outcome.is_hard_failure());
    Ok(if was_interrupted {
        INTERRUPTED
    } else if failed {
        exit::FAILED
    } else {
        0
    })
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
