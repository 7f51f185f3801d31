//! Staying within Buildkite's jobs-per-build limit: when a pipeline would
//! create more jobs than `maxJobsPerBuild`, several targets are built by one
//! step (`treekite build --drv A … --drv B …`).
//!
//! Targets are batched in dependency order, so every batch only depends on
//! earlier batches: no cycles, and every edge between targets is kept as an
//! edge between their batches (or disappears inside one, where Nix itself
//! orders the builds).

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use serde_json::{Map, Value};

use super::model::{Pipeline, Step, chunk, dependency_key, depends_on_mut, jobs};
use crate::exit::bad_input;

/// Batches target steps when needed; returns the warning to show if it did.
pub fn fit_job_limit(pipeline: &mut Pipeline, target_deps: &[Vec<usize>]) -> Result<Option<String>> {
    let limit = pipeline.settings.max_jobs_per_build;
    let total: usize = pipeline.chunks.values().flatten().flatten().map(jobs).sum();
    if total <= limit {
        return Ok(None);
    }
    let targets = pipeline.targets.len();
    let others = total - targets;
    if others >= limit {
        return Err(bad_input(format!(
            "the pipeline has {others} jobs besides its {targets} target builds, more than maxJobsPerBuild ({limit}); batching targets cannot help: raise maxJobsPerBuild or split the pipeline"
        )));
    }
    let steps_allowed = limit - others;
    let order = dependency_order(target_deps);
    let batches = plan(pipeline, &order, steps_allowed);
    let count = batches.len();
    let largest = batches.iter().map(Vec::len).max().unwrap_or(0);
    rewrite(pipeline, &batches);
    Ok(Some(format!(
        "{total} jobs would exceed maxJobsPerBuild ({limit}); built {targets} targets in {count} steps of up to {largest} targets each"
    )))
}

/// Targets in an order where each comes after the targets it needs (stable:
/// ties keep pipeline order).
fn dependency_order(target_deps: &[Vec<usize>]) -> Vec<usize> {
    let n = target_deps.len();
    let mut waiting: Vec<usize> = target_deps.iter().map(Vec::len).collect();
    let mut needed_by: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, deps) in target_deps.iter().enumerate() {
        for &d in deps {
            needed_by[d].push(i);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &j in &needed_by[i] {
            waiting[j] -= 1;
            if waiting[j] == 0 {
                ready.insert(j);
            }
        }
    }
    order
}

/// Groups of targets (indices), each becoming one step: consecutive in
/// dependency order, at most `size` each, and only targets whose steps
/// differ in nothing but what batching merges.
fn plan(pipeline: &Pipeline, order: &[usize], steps_allowed: usize) -> Vec<Vec<usize>> {
    let steps = target_steps(pipeline);
    let shapes: Vec<Value> = (0..pipeline.targets.len()).map(|i| shape(steps[&i])).collect();
    let mut size = order.len().div_ceil(steps_allowed.max(1));
    loop {
        let mut batches: Vec<Vec<usize>> = Vec::new();
        for &i in order {
            match batches.last_mut() {
                Some(last) if last.len() < size && shapes[last[0]] == shapes[i] => last.push(i),
                _ => batches.push(vec![i]),
            }
        }
        if batches.len() <= steps_allowed || size >= order.len() {
            return batches;
        }
        size += 1;
    }
}

fn target_steps(pipeline: &Pipeline) -> HashMap<usize, &Step> {
    let by_key: HashMap<&str, usize> =
        pipeline.targets.iter().enumerate().map(|(i, t)| (t.key.as_str(), i)).collect();
    pipeline
        .chunks
        .values()
        .flatten()
        .flatten()
        .filter_map(|step| {
            let i = *by_key.get(step.get("key")?.as_str()?)?;
            Some((i, step))
        })
        .collect()
}

/// What must be equal for two target steps to share one: everything but the
/// fields a batch combines. Skipped and unskipped targets never mix.
fn shape(step: &Step) -> Value {
    let mut rest = step.as_object().cloned().unwrap_or_default();
    for merged in ["label", "key", "command", "env", "depends_on", "timeout_in_minutes"] {
        rest.remove(merged);
    }
    if rest.get("skip").is_some_and(|s| s != false) {
        rest.insert("skip".to_owned(), Value::Bool(true));
    }
    Value::Object(rest)
}

/// Replaces the build phase's target steps by batch steps and points every
/// `depends_on` at the batches.
fn rewrite(pipeline: &mut Pipeline, batches: &[Vec<usize>]) {
    let keys: Vec<String> = pipeline.targets.iter().map(|t| t.key.clone()).collect();
    let mut batch_key: HashMap<String, String> = HashMap::new();
    for batch in batches {
        for &i in batch {
            batch_key.insert(keys[i].clone(), keys[batch[0]].clone());
        }
    }
    let steps_by_target: HashMap<usize, Step> =
        target_steps(pipeline).into_iter().map(|(i, s)| (i, s.clone())).collect();
    let merged: HashMap<String, Step> = batches
        .iter()
        .map(|batch| {
            let members: Vec<&Step> = batch.iter().map(|i| &steps_by_target[i]).collect();
            let args: Vec<&str> = batch.iter().map(|&i| pipeline.targets[i].build_args.as_str()).collect();
            (keys[batch[0]].clone(), merge(&members, &args, &pipeline.settings.treekite))
        })
        .collect();

    let chunk_size = pipeline.settings.chunk_size;
    let build = pipeline.chunks.get_mut("build").map(std::mem::take).unwrap_or_default();
    let steps: Vec<Step> = build
        .into_iter()
        .flatten()
        .filter_map(|step| match step.get("key").and_then(Value::as_str) {
            Some(key) if batch_key.contains_key(key) => merged.get(key).cloned(),
            _ => Some(step),
        })
        .collect();
    pipeline.chunks.insert("build".to_owned(), chunk(steps, chunk_size));
    for step in pipeline.chunks.values_mut().flatten().flatten() {
        redirect(step, &batch_key);
    }
}

/// One step building all `members` (in order), labelled with all of them.
fn merge(members: &[&Step], build_args: &[&str], treekite: &str) -> Step {
    let first = members[0].as_object().cloned().unwrap_or_default();
    let mut step = first.clone();
    let labels: Vec<&str> = members
        .iter()
        .filter_map(|m| m.get("label")?.as_str())
        .map(|l| l.strip_prefix(":nix: ").unwrap_or(l))
        .collect();
    step.insert("label".into(), Value::String(format!(":nix: {}", short_list(&labels))));
    step.insert("command".into(), Value::String(format!("{treekite} build {}", build_args.join(" "))));
    let targets: Vec<&str> = members
        .iter()
        .filter_map(|m| m.pointer("/env/READTREE_TARGET")?.as_str())
        .collect();
    let mut env = first.get("env").and_then(Value::as_object).cloned().unwrap_or_else(Map::new);
    env.insert("READTREE_TARGET".into(), Value::String(targets.join(",")));
    step.insert("env".into(), Value::Object(env));
    let mut deps: Vec<Value> = Vec::new();
    let mut seen = HashSet::new();
    for m in members {
        for d in m.get("depends_on").and_then(Value::as_array).into_iter().flatten() {
            if seen.insert(dependency_key(d).unwrap_or_default().to_owned()) {
                deps.push(d.clone());
            }
        }
    }
    step.insert("depends_on".into(), Value::Array(deps));
    let timeouts: Option<Vec<u64>> =
        members.iter().map(|m| m.get("timeout_in_minutes").and_then(Value::as_u64)).collect();
    match timeouts {
        Some(t) => step.insert("timeout_in_minutes".into(), Value::from(t.iter().sum::<u64>())),
        None => step.remove("timeout_in_minutes"),
    };
    Value::Object(step)
}

fn short_list(labels: &[&str]) -> String {
    const SHOWN: usize = 3;
    if labels.len() <= SHOWN {
        labels.join(", ")
    } else {
        format!("{} and {} more", labels[..SHOWN].join(", "), labels.len() - SHOWN)
    }
}

/// Points a step's (and its group's steps') dependencies at batches, without
/// duplicates or a dependency on itself.
fn redirect(step: &mut Step, batch_key: &HashMap<String, String>) {
    let own = step.get("key").and_then(Value::as_str).map(str::to_owned);
    if let Some(inner) = step.get_mut("steps").and_then(Value::as_array_mut) {
        inner.iter_mut().for_each(|s| redirect(s, batch_key));
    }
    if step.get("depends_on").is_none() {
        return;
    }
    let Some(list) = depends_on_mut(step) else { return };
    let mut seen = HashSet::new();
    let mut redirected = Vec::with_capacity(list.len());
    for entry in list.drain(..) {
        let Some(key) = dependency_key(&entry).map(str::to_owned) else {
            redirected.push(entry);
            continue;
        };
        let target = batch_key.get(&key).cloned().unwrap_or(key);
        if Some(&target) == own.as_ref() || !seen.insert(target.clone()) {
            continue;
        }
        redirected.push(match entry {
            Value::Object(mut o) => {
                o.insert("step".into(), Value::String(target));
                Value::Object(o)
            }
            _ => Value::String(target),
        });
    }
    *list = redirected;
}
