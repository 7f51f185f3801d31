//! The data a `mkPipeline` result holds (see nix/buildkite).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// A Buildkite step, kept as JSON: treekite only adds edges and batches.
pub type Step = Value;

#[derive(Debug, Deserialize)]
pub struct Pipeline {
    /// Phases in upload order.
    pub phases: Vec<String>,
    /// Steps of each phase, already split into chunks.
    pub chunks: BTreeMap<String, Vec<Vec<Step>>>,
    pub drvmap: Value,
    /// One entry per target step (targets sharing a derivation share one).
    pub targets: Vec<Target>,
    pub settings: Settings,
}

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

/// Jobs Buildkite creates for a step: a group counts itself and its steps.
pub fn jobs(step: &Step) -> usize {
    match step.get("group") {
        Some(_) => 1 + step.get("steps").and_then(Value::as_array).map_or(0, Vec::len),
        None => 1,
    }
}

/// The `depends_on` keys of a step, in whichever form it was written.
pub fn depends_on_mut(step: &mut Step) -> Option<&mut Vec<Value>> {
    let object = step.as_object_mut()?;
    let entry = object.entry("depends_on").or_insert_with(|| Value::Array(Vec::new()));
    if let Value::String(key) = entry {
        *entry = Value::Array(vec![Value::String(std::mem::take(key))]);
    }
    entry.as_array_mut()
}

/// The key a `depends_on` entry names (`"key"` or `{"step": "key"}`).
pub fn dependency_key(entry: &Value) -> Option<&str> {
    entry.as_str().or_else(|| entry.get("step").and_then(Value::as_str))
}

/// Splits steps into chunks of at most `size` jobs, keeping order (the same
/// rule as nix/buildkite's `chunksOf`).
pub fn chunk(steps: Vec<Step>, size: usize) -> Vec<Vec<Step>> {
    let mut chunks: Vec<Vec<Step>> = Vec::new();
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
