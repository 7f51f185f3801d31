//! `treekite pipeline`: evaluate a `mkPipeline` result once, add the
//! dependency edges the evaluator is too slow to find, keep within
//! Buildkite's job limits, and write the chunks.

mod batch;
mod deps;
mod eval;
mod model;
mod write;

use anyhow::Result;

use crate::cli::PipelineArgs;

pub fn run(args: &PipelineArgs) -> Result<()> {
    write::check_out_dir(&args.out)?;
    let (pipeline, warning) = eval::evaluate(
        args,
        |dependencies, targets| {
            if dependencies {
                deps::nearest_targets(targets)
            } else {
                Ok(vec![Vec::new(); targets.len()])
            }
        },
        |pipeline, target_deps| {
            deps::apply(pipeline, &target_deps);
            batch::fit_job_limit(pipeline, &target_deps)
        },
    )?;
    if let Some(warning) = warning {
        eprintln!("treekite: warning: {warning}");
    }
    write::write(&args.out, &pipeline)?;
    for line in write::summary(&pipeline) {
        eprintln!("treekite: {line}");
    }
    // The process ends next: freeing tens of thousands of small JSON values
    // one by one would only cost time.
    std::mem::forget(pipeline);
    Ok(())
}
