//! The data a `mkPipeline` result holds (see nix/buildkite).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::TargetDeps;
use super::deps::Graph;
use crate::pipeline_dir::{Contents, SkippedTarget};

/// The `version` of the `mkPipeline` result this treekite reads: the
/// contract between nix/buildkite and `treekite pipeline`.
pub const MKPIPELINE_VERSION: u64 = 1;

/// The phase nix/buildkite puts target steps in.
pub const BUILD_PHASE: &str = "build";

/// How nix/buildkite begins an extra step's key (`extra-step-<sha1>`), so
/// that `treekite explain` can tell extra steps from other steps.
pub const EXTRA_STEP_KEY_PREFIX: &str = "extra-step-";

/// The `skip` nix/buildkite gives an extra step because its parent
/// target's step is skipped (its own `skip` reads otherwise).
pub const PARENT_SKIPPED: &str = "Parent target is skipped.";

/// A Buildkite step, kept as JSON: treekite only adds edges and batches.
pub type StepJson = Value;

/// Steps of each phase, already split into chunks.
pub type Chunks = BTreeMap<String, Vec<Vec<StepJson>>>;

/// An evaluated `mkPipeline` result.
#[derive(Debug)]
pub struct Pipeline {
    /// Phases in upload order.
    pub phases: Vec<String>,
    pub chunks: Chunks,
    /// The drvmap as JSON text, written out as it is.
    pub drvmap: String,
    /// One entry per target step (targets sharing a derivation share one).
    pub targets: Vec<Target>,
    /// The target steps skipped by their metadata.
    pub skipped: Vec<SkippedTarget>,
    pub settings: Settings,
    /// What the dependency analysis found (nothing until finished).
    pub dependencies: Dependencies,
    /// How targets were batched, if they were.
    pub batching: Option<Batching>,
}

impl Pipeline {
    /// The pipeline from what `mkPipeline` printed: its analysis (phases,
    /// settings, targets), its steps and its drvmap.
    pub fn new(analysis: Analysis, chunks: Chunks, drvmap: String) -> Pipeline {
        let Analysis {
            phases,
            settings,
            targets,
            skipped,
            ..
        } = analysis;
        Pipeline {
            phases,
            chunks,
            drvmap,
            targets,
            skipped,
            settings,
            dependencies: Dependencies::default(),
            batching: None,
        }
    }

    /// What the pipeline directory gets (besides what explains it).
    pub fn contents(&self) -> Contents<'_> {
        Contents {
            phases: &self.phases,
            chunks: &self.chunks,
            drvmap: &self.drvmap,
        }
    }
}

/// What the dependency analysis found.
#[derive(Debug, Default)]
pub struct Dependencies {
    /// For each target (by index), the indices of the targets it needs.
    pub needs: TargetDeps,
    /// The derivation graph it read; `None` when it did not run.
    pub graph: Option<Graph>,
}

/// Targets built several to a step, to stay within `maxJobsPerBuild`.
#[derive(Debug)]
pub struct Batching {
    /// For each target, the first target of its batch, whose key the
    /// batch's step has.
    pub leader: Vec<usize>,
    /// What happened, in one line (a warning on stderr, a line in
    /// `summary.md`).
    pub line: String,
}

/// Target index by step key.
pub fn target_index(targets: &[Target]) -> std::collections::HashMap<&str, usize> {
    targets
        .iter()
        .enumerate()
        .map(|(i, t)| (t.key.as_str(), i))
        .collect()
}

/// A pipeline as `mkPipeline` lays it out, for reading it the plain way
/// (its top-level `phases` and `settings` are those in `analysis`).
#[derive(Deserialize)]
pub struct Shape {
    pub chunks: Chunks,
    #[serde(deserialize_with = "json_text")]
    pub drvmap: String,
    pub analysis: Analysis,
}

/// What `treekite pipeline` reads first: whether to find dependencies
/// (the targets' `.drv` files are read while the rest is parsed), the
/// phases, the settings, and the targets.
#[derive(Debug, Deserialize)]
pub struct Analysis {
    pub dependencies: bool,
    pub phases: Vec<String>,
    pub settings: Settings,
    pub targets: Vec<Target>,
    /// Absent from an older nix/buildkite, which did not list them.
    #[serde(default)]
    pub skipped: Vec<SkippedTarget>,
}

/// A target step, from `[ key drvPath skip buildArgs ]` (or a set with
/// those names).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub key: String,
    pub drv_path: String,
    pub skip: bool,
    /// `--drv … --attr-path …`, quoted for the shell and the upload.
    pub build_args: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub dependencies: bool,
    pub max_jobs_per_build: usize,
    pub chunk_size: usize,
    /// How steps call treekite, ready for the upload.
    pub treekite: String,
}

/// Any JSON value, as compact text.
fn json_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let value = Value::deserialize(deserializer)?;
    serde_json::to_string(&value).map_err(serde::de::Error::custom)
}

/// The text Nix printed for a value, if it is exactly what `json_text`
/// would make of it: Nix writes a backspace and a form feed as `\u0008`
/// and `\u000c`, serde_json as `\b` and `\f`; everything else is the same
/// (compact, keys sorted bytewise, other escapes alike).
pub fn nix_json_text(raw: &str) -> Option<String> {
    (!raw.contains("\\u0008") && !raw.contains("\\u000c")).then(|| raw.to_owned())
}

/// Jobs Buildkite creates for a step: a group counts itself and its steps.
pub fn jobs(step: &StepJson) -> usize {
    match step.get("group") {
        Some(_) => {
            1 + step
                .get("steps")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        }
        None => 1,
    }
}

/// The `depends_on` keys of a step, in whichever form it was written.
pub fn depends_on_mut(step: &mut StepJson) -> Option<&mut Vec<Value>> {
    let object = step.as_object_mut()?;
    let entry = object
        .entry("depends_on")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::String(key) = entry {
        *entry = Value::Array(vec![Value::String(std::mem::take(key))]);
    }
    entry.as_array_mut()
}

/// The key a `depends_on` entry names (`"key"` or `{"step": "key"}`).
pub fn dependency_key(entry: &Value) -> Option<&str> {
    entry
        .as_str()
        .or_else(|| entry.get("step").and_then(Value::as_str))
}

/// Splits steps into chunks of at most `size` jobs, keeping order (the same
/// rule as nix/buildkite's `chunksOf`).
pub fn chunk(steps: Vec<StepJson>, size: usize) -> Vec<Vec<StepJson>> {
    let mut chunks: Vec<Vec<StepJson>> = Vec::new();
    let mut jobs_in_last = 0;
    for step in steps {
        let jobs = jobs(&step);
        match chunks.last_mut() {
            Some(last) if jobs_in_last + jobs <= size => last.push(step),
            _ => {
                chunks.push(vec![step]);
                jobs_in_last = 0;
            }
        }
        jobs_in_last += jobs;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nix's text is kept exactly when serde_json would print the same.
    #[test]
    fn nix_json_text_is_kept_only_when_serde_json_agrees() {
        for raw in [
            r#"{"a":{"attrPath":["a","x\"y\\z\nw"],"drvPath":"/nix/store/x-a.drv"}}"#,
            r#"{"é \u0001":[]}"#,
        ] {
            let again =
                serde_json::to_string(&serde_json::from_str::<Value>(raw).unwrap()).unwrap();
            assert_eq!(nix_json_text(raw).as_deref(), Some(again.as_str()));
        }
        for raw in [r#"{"a\u0008":1}"#, r#"{"a\u000c":1}"#] {
            assert_eq!(nix_json_text(raw), None);
        }
    }
}
