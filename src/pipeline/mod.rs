//! `treekite pipeline`: evaluate a `mkPipeline` result once, add the
//! dependency edges the evaluator is too slow to find, keep within
//! Buildkite's job limits, and write the pipeline directory.
//!
//! With `--parent`, the [`crate::parent`] drvmap is found first and handed
//! to the depot as one more `--argstr`, so `mkPipeline` skips the targets
//! it lists unchanged.
//!
//! The stages, in order: [`eval`] runs Nix and reads its output as it is
//! printed; [`analyse`] ([`deps`]) finds which targets need which, from the
//! `.drv` files evaluation wrote; [`finish`] adds those edges and batches
//! targets ([`batch`]); the result goes to [`crate::pipeline_dir`], with
//! what [`explanation`] keeps for `treekite explain` and the summary
//! [`crate::explain`] writes from it.

mod batch;
mod deps;
mod eval;
mod explanation;
mod model;
mod progress;

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::exit::{ExitCode, bad_input};
use crate::{branches, explain, parent, pipeline_dir};
pub use model::{BUILD_PHASE, Chunks, EXTRA_STEP_KEY_PREFIX, PARENT_SKIPPED, dependency_key, jobs};
use model::{Dependencies, Pipeline, StepJson, Target};

/// What `treekite pipeline` was asked to do.
#[derive(Debug)]
pub struct Request {
    /// Where the depot is.
    pub source: Source,
    /// The attribute holding the `mkPipeline` result.
    pub attr: String,
    /// The pipeline directory to write.
    pub out: PathBuf,
    /// Arguments for the depot's top-level function, in the order given.
    pub nix_args: Vec<NixArg>,
    /// Show no progress while evaluating.
    pub quiet: bool,
    /// Where the parent drvmap comes from, if anywhere.
    pub parent: Option<parent::Source>,
    /// The depot's argument that receives the parent drvmap's path.
    pub parent_arg: String,
}

/// The depot argument a parent drvmap's path goes to by default, as in
/// `examples/default.nix`.
pub const DEFAULT_PARENT_ARG: &str = "parentDrvmap";

/// The Nix file to evaluate.
#[derive(Debug)]
pub enum Source {
    /// `-f FILE`.
    File(PathBuf),
    /// `--root DIR`: its `default.nix`.
    Root(PathBuf),
}

/// One `--arg NAME EXPR` or `--argstr NAME VALUE` for nix-instantiate.
#[derive(Debug, Clone)]
pub struct NixArg {
    /// The value is a string, not a Nix expression (`--argstr`).
    pub is_string: bool,
    pub name: String,
    pub value: String,
}

impl NixArg {
    /// The flags that pass it to `nix-instantiate`.
    pub fn flags(&self) -> [&str; 3] {
        let flag = if self.is_string { "--argstr" } else { "--arg" };
        [flag, &self.name, &self.value]
    }
}

impl Request {
    /// Where the depot's git checkout is: the root, or the file's directory.
    fn git_dir(&self) -> &Path {
        let dir = match &self.source {
            Source::Root(root) => root.as_path(),
            Source::File(file) => file.parent().unwrap_or(Path::new(".")),
        };
        if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        }
    }

    /// The argument passing `parent`'s drvmap to the depot, if it has one.
    fn parent_nix_arg(&self, parent: &parent::Parent) -> Result<Option<NixArg>> {
        let Some((file, _)) = parent.drvmap() else {
            return Ok(None);
        };
        let value = file.to_str().ok_or_else(|| {
            bad_input(format!(
                "the parent drvmap's path {} is not UTF-8; Nix takes --argstr as text",
                file.display()
            ))
        })?;
        Ok(Some(NixArg {
            is_string: true,
            name: self.parent_arg.clone(),
            value: value.to_owned(),
        }))
    }

    /// The Nix file to evaluate, checked to exist.
    fn nix_file(&self) -> Result<PathBuf> {
        match &self.source {
            Source::File(file) if !file.is_file() => Err(bad_input(format!(
                "-f {}: no such file; pass the Nix file holding the pipeline",
                file.display()
            ))),
            Source::File(file) => Ok(file.clone()),
            Source::Root(root) => {
                let file = root.join("default.nix");
                if !file.is_file() {
                    return Err(bad_input(format!(
                        "{} has no default.nix; run from the repository root or pass --root or -f",
                        root.display()
                    )));
                }
                Ok(file)
            }
        }
    }
}

pub fn run(request: &Request) -> Result<ExitCode> {
    pipeline_dir::check_out(&request.out)?;
    request.nix_file()?;
    // Kept to the end: a looked-up drvmap lives in a temporary directory
    // that goes with it, and it says which parent the pipeline has.
    let parent = parent::for_pipeline(request.parent.as_ref(), request.git_dir())?;
    let parent_arg = request.parent_nix_arg(&parent)?;
    let pipeline = eval::evaluate(request, parent_arg.as_ref())?;
    if let Some(batching) = &pipeline.batching {
        eprintln!("treekite: warning: {}", batching.line);
    }
    // What explains the pipeline is made while the chunks are written.
    let explained = std::thread::scope(|scope| {
        let explaining = scope.spawn(|| explained(request, &pipeline, &parent));
        pipeline_dir::write(&request.out, &pipeline.contents(), || {
            explaining.join().expect("explaining the pipeline panicked")
        })
    })?;
    for line in summary_lines(&pipeline) {
        eprintln!("treekite: {line}");
    }
    drop(parent);
    // The process ends next: freeing tens of thousands of small JSON values
    // one by one would only cost time.
    std::mem::forget((pipeline, explained));
    Ok(ExitCode::Success)
}

/// `explain.json` and `summary.md` for `pipeline`, generated against
/// `parent` for the build's branch.
fn explained(
    request: &Request,
    pipeline: &Pipeline,
    parent: &parent::Parent,
) -> Result<pipeline_dir::Explained> {
    let parent_map = parent.drvmap().map(|(_, map)| map);
    let branch = branches::build_branch(request.git_dir());
    let explanation = explanation::explanation(pipeline, parent.record(), parent_map, branch)?;
    let summary = explain::summary(&explanation, &pipeline.phases, &pipeline.chunks);
    Ok(pipeline_dir::Explained {
        summary,
        explanation,
    })
}

/// For each target (by index), the indices of the targets it needs.
pub type TargetDeps = Vec<Vec<usize>>;

/// The dependency analysis: which targets each target needs, and the graph
/// that says why (nothing at all when the pipeline turned `dependencies`
/// off).
fn analyse(dependencies: bool, targets: &[Target]) -> Result<Dependencies> {
    if dependencies {
        deps::nearest_targets(targets)
    } else {
        Ok(Dependencies {
            needs: vec![Vec::new(); targets.len()],
            graph: None,
        })
    }
}

/// Adds the edges found, then batches targets to fit the job limit; the
/// pipeline keeps both for `explain`.
fn finish(pipeline: &mut Pipeline, dependencies: Dependencies) -> Result<()> {
    deps::apply(pipeline, &dependencies.needs);
    pipeline.batching = batch::fit_job_limit(pipeline, &dependencies.needs)?;
    pipeline.dependencies = dependencies;
    Ok(())
}

/// One line per phase: steps, chunks, skipped.
fn summary_lines(pipeline: &Pipeline) -> Vec<String> {
    pipeline
        .phases
        .iter()
        .map(|phase| {
            let chunks = pipeline.chunks.get(phase).map_or(&[][..], Vec::as_slice);
            let steps: Vec<&StepJson> = chunks.iter().flatten().collect();
            let jobs: usize = steps.iter().map(|s| jobs(s)).sum();
            let skipped = steps
                .iter()
                .filter(|s| s.get("skip").is_some_and(|v| v != false))
                .count();
            format!(
                "{phase}: {} steps ({jobs} jobs) in {} chunk{}, {skipped} skipped",
                steps.len(),
                chunks.len(),
                if chunks.len() == 1 { "" } else { "s" }
            )
        })
        .collect()
}
