//! Why each step of a generated pipeline runs, waits or is skipped:
//! `treekite explain DIR TARGET` for one target or step, and the
//! [`summary`](mod@summary) `treekite pipeline` writes as `summary.md`.
//!
//! Both read what `treekite pipeline` kept ([`crate::pipeline_dir`]'s
//! `explain.json` and the chunk files), so nothing is evaluated again and
//! a directory downloaded from a build explains that build: the parent it
//! was compared with, each target's derivation and the parent's, the
//! derivation graph behind each `depends_on` edge, the batches, and the
//! targets skipped by their metadata. The [`index`] lays the pipeline out
//! for these questions; [`report`] answers one; [`chain`] finds the
//! derivations behind an edge.

mod chain;
mod index;
mod report;
mod summary;

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::Value;

use crate::exit::{ExitCode, bad_input};
use crate::pipeline::BUILD_PHASE;
use crate::pipeline_dir::{ChunkName, PipelineDir};
use crate::printable::printable;
use index::{Index, Owner};
use report::Subject;
pub use summary::summary;

/// What `treekite explain` was asked.
#[derive(Debug)]
pub struct Request {
    /// The pipeline directory.
    pub dir: PathBuf,
    /// A target's label, or a step's key.
    pub target: String,
}

/// How many close labels an unknown TARGET's error suggests.
const SUGGESTIONS: usize = 3;

pub fn run(request: &Request) -> Result<ExitCode> {
    let dir = PipelineDir::open(&request.dir)?;
    let record = dir.explanation()?;
    let phases = dir.phases()?;
    let mut chunks: Vec<(ChunkName, Vec<Value>)> = Vec::new();
    for phase in &phases {
        for chunk in dir.phase(phase)? {
            chunks.push((chunk.name.clone(), chunk.steps()?));
        }
    }
    let index = Index::new(
        &record,
        &phases,
        chunks
            .iter()
            .map(|(name, steps)| (name.clone(), steps.as_slice())),
    );
    let subject = find(&index, &request.target)
        .ok_or_else(|| unknown(&index, &request.target, &request.dir))?;
    print!("{}", report::report(&index, subject));
    Ok(ExitCode::Success)
}

/// The target labelled `wanted`, else the step keyed `wanted`.
fn find(index: &Index, wanted: &str) -> Option<Subject> {
    let record = index.record;
    if let Some(i) = record
        .targets
        .iter()
        .position(|t| t.labels.iter().any(|l| l == wanted))
    {
        return Some(Subject::Target(i));
    }
    if let Some(i) = record.skipped.iter().position(|s| s.label == wanted) {
        return Some(Subject::Skipped(i));
    }
    match index.owner(wanted) {
        Some(Owner::Target(i)) => Some(Subject::Target(i)),
        Some(Owner::Skipped(i)) => Some(Subject::Skipped(i)),
        None => index.step(wanted).map(Subject::Step),
    }
}

/// The error for a TARGET that is neither a label nor a key: bad input,
/// naming the closest labels (and keys a person gave steps; generated
/// keys are hashes, which no one types from memory).
fn unknown(index: &Index, wanted: &str, dir: &Path) -> anyhow::Error {
    let record = index.record;
    let labels = record
        .targets
        .iter()
        .flat_map(|t| &t.labels)
        .chain(record.skipped.iter().map(|s| &s.label));
    let named = index
        .steps
        .iter()
        .filter(|placed| placed.group.is_none() && !placed.is_extra_step())
        .filter_map(|placed| placed.key())
        .filter(|key| index.owner(key).is_none());
    let candidates: Vec<&str> = labels.map(String::as_str).chain(named).collect();
    let closest = closest(wanted, &candidates);
    let hint = if !index.phases.iter().any(|p| p == BUILD_PHASE) {
        format!(
            "it has no target steps: the build phase was not generated (phases: {}); pass an extra step's key",
            printable(&index.phases.join(", "))
        )
    } else if closest.is_empty() {
        "it has no targets".to_owned()
    } else {
        let shown: Vec<String> = closest
            .iter()
            .map(|c| format!("`{}`", printable(c)))
            .collect();
        format!("closest: {}", shown.join(", "))
    };
    bad_input(format!(
        "no target labelled or step keyed `{}` in {}; {hint}",
        printable(wanted),
        dir.display()
    ))
}

/// The [`SUGGESTIONS`] candidates most like `wanted`.
fn closest<'a>(wanted: &str, candidates: &[&'a str]) -> Vec<&'a str> {
    let mut scored: Vec<(f64, &str)> = candidates
        .iter()
        .map(|&c| (strsim::normalized_damerau_levenshtein(wanted, c), c))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(SUGGESTIONS)
        .map(|(_, c)| c)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn the_closest_labels_come_first() {
        let labels = [
            "apps/hello",
            "apps/tools:fmt",
            "libs/greeting",
            "libs/shout",
        ];
        assert_eq!(
            closest("apps/helo", &labels),
            ["apps/hello", "apps/tools:fmt", "libs/shout"]
        );
        assert_eq!(closest("libs/shuot", &labels)[0], "libs/shout");
        assert!(closest("x", &[]).is_empty());
    }
}
