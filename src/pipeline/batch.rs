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

use super::TargetDeps;
use super::model::{
    BUILD_PHASE, Batching, Pipeline, StepJson, chunk, dependency_key, jobs, target_index,
};
use crate::agent;
use crate::exit::bad_input;

/// Batches target steps when needed; says how if it did.
pub fn fit_job_limit(
    pipeline: &mut Pipeline,
    target_deps: &TargetDeps,
) -> Result<Option<Batching>> {
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
    // Skipped targets run nothing and nothing waits for them, so they are
    // batched apart: among the others in dependency order they would cut
    // every run of alike steps short (a build against a parent drvmap
    // skips most targets, scattered through that order).
    let (skipped, active): (Vec<usize>, Vec<usize>) = dependency_order(target_deps)
        .into_iter()
        .partition(|&i| pipeline.targets[i].skip);
    let (batches, merged) = {
        let steps = target_steps(pipeline);
        let batches = plan(&steps, &[&active, &skipped], steps_allowed);
        let merged = merge_batches(pipeline, &steps, &batches);
        (batches, merged)
    };
    let count = batches.len();
    if count > steps_allowed {
        return Err(bad_input(format!(
            "the pipeline has {others} jobs besides its {targets} target builds, which leaves {steps_allowed} steps for the targets within maxJobsPerBuild ({limit}), but batching needs {count}: targets whose steps differ in more than label, key, command, env, depends_on and timeout (e.g. skip, priority, agents) cannot share a step; raise maxJobsPerBuild or make those steps alike"
        )));
    }
    let largest = batches.iter().map(Vec::len).max().unwrap_or(0);
    rewrite(pipeline, &batches, merged);
    let mut leader = vec![0; targets];
    for batch in &batches {
        for &i in batch {
            leader[i] = batch[0];
        }
    }
    Ok(Some(Batching {
        leader,
        line: format!(
            "{total} jobs would exceed maxJobsPerBuild ({limit}); built {targets} targets in {count} steps of up to {largest} targets each"
        ),
    }))
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
    let mut ready: std::collections::BTreeSet<usize> =
        (0..n).filter(|&i| waiting[i] == 0).collect();
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
/// one of `orders` (each a dependency order), at most `size` each, and only
/// targets whose steps differ in nothing but what batching merges.
fn plan(steps: &[&StepJson], orders: &[&[usize]], steps_allowed: usize) -> Vec<Vec<usize>> {
    let targets: usize = orders.iter().map(|order| order.len()).sum();
    let longest = orders.iter().map(|order| order.len()).max().unwrap_or(0);
    let mut size = targets.div_ceil(steps_allowed.max(1));
    loop {
        let mut batches: Vec<Vec<usize>> = Vec::new();
        for order in orders {
            let mut these: Vec<Vec<usize>> = Vec::new();
            for &i in order.iter() {
                match these.last_mut() {
                    Some(last) if last.len() < size && same_shape(steps[last[0]], steps[i]) => {
                        last.push(i)
                    }
                    _ => these.push(vec![i]),
                }
            }
            batches.append(&mut these);
        }
        if batches.len() <= steps_allowed || size >= longest {
            return batches;
        }
        size += 1;
    }
}

/// Each target's step (by target index), found by key; the last step with
/// a target's key is the one.
fn target_steps(pipeline: &Pipeline) -> Vec<&StepJson> {
    let by_key: HashMap<&str, usize> = target_index(&pipeline.targets);
    let mut steps: Vec<Option<&StepJson>> = vec![None; pipeline.targets.len()];
    for step in pipeline.chunks.values().flatten().flatten() {
        if let Some(&i) = step
            .get("key")
            .and_then(Value::as_str)
            .and_then(|k| by_key.get(k))
        {
            steps[i] = Some(step);
        }
    }
    steps
        .into_iter()
        .enumerate()
        .map(|(i, step)| {
            step.unwrap_or_else(|| panic!("target {} has no step", pipeline.targets[i].key))
        })
        .collect()
}

/// The fields a batch combines from its members' steps.
const MERGED: [&str; 6] = [
    "label",
    "key",
    "command",
    "env",
    "depends_on",
    "timeout_in_minutes",
];

/// Whether two target steps can share one: equal in everything but the
/// fields a batch combines. Skipped and unskipped targets never mix (any
/// skip reason counts as `true`).
fn same_shape(a: &StepJson, b: &StepJson) -> bool {
    fn kept(step: &StepJson) -> impl Iterator<Item = (&String, &Value)> {
        step.as_object()
            .into_iter()
            .flatten()
            .filter(|(field, _)| !MERGED.contains(&field.as_str()))
    }
    let normal = |field: &str, value: &Value| field == "skip" && value != false;
    let mut a = kept(a);
    let mut b = kept(b);
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some((fa, va)), Some((fb, vb))) => {
                if fa != fb
                    || !(if normal(fa, va) || normal(fb, vb) {
                        normal(fa, va) && normal(fb, vb)
                    } else {
                        va == vb
                    })
                {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Each batch's step, in batch order.
fn merge_batches(
    pipeline: &Pipeline,
    steps: &[&StepJson],
    batches: &[Vec<usize>],
) -> Vec<StepJson> {
    batches
        .iter()
        .map(|batch| {
            let members: Vec<&StepJson> = batch.iter().map(|&i| steps[i]).collect();
            let args: Vec<&str> = batch
                .iter()
                .map(|&i| pipeline.targets[i].build_args.as_str())
                .collect();
            merge(&members, &args, &pipeline.settings.treekite)
        })
        .collect()
}

/// Replaces the build phase's target steps by batch steps and points every
/// `depends_on` at the batches.
fn rewrite(pipeline: &mut Pipeline, batches: &[Vec<usize>], merged: Vec<StepJson>) {
    let Pipeline {
        targets,
        chunks,
        settings,
        ..
    } = pipeline;
    let mut batch_key: HashMap<&str, &str> = HashMap::new();
    for batch in batches {
        for &i in batch {
            batch_key.insert(&targets[i].key, &targets[batch[0]].key);
        }
    }
    // The step of a batch's first target becomes the batch; the other
    // targets' steps go. (A key on several steps gives copies of the batch.)
    let mut merged: HashMap<&str, StepJson> = batches
        .iter()
        .zip(merged)
        .map(|(batch, step)| (targets[batch[0]].key.as_str(), step))
        .collect();
    let mut placed: HashMap<&str, usize> = HashMap::new();
    let build = chunks.remove(BUILD_PHASE).unwrap_or_default();
    let mut steps: Vec<StepJson> = Vec::with_capacity(merged.len());
    for step in build.into_iter().flatten() {
        let Some((&key, _)) = step
            .get("key")
            .and_then(Value::as_str)
            .and_then(|k| batch_key.get_key_value(k))
        else {
            steps.push(step);
            continue;
        };
        if let Some(batch) = merged.remove(key) {
            placed.insert(key, steps.len());
            steps.push(batch);
        } else if let Some(&at) = placed.get(key) {
            steps.push(steps[at].clone());
        }
    }
    chunks.insert(BUILD_PHASE.to_owned(), chunk(steps, settings.chunk_size));
    for step in chunks.values_mut().flatten().flatten() {
        redirect(step, &batch_key);
    }
}

/// One step building all `members` (in order), labelled with all of them.
fn merge(members: &[&StepJson], build_args: &[&str], treekite: &str) -> StepJson {
    const REPLACED: [&str; 4] = ["label", "command", "env", "depends_on"];
    let first = members[0].as_object();
    let mut step: Map<String, Value> = first
        .into_iter()
        .flatten()
        .filter(|(field, _)| !REPLACED.contains(&field.as_str()))
        .map(|(field, value)| (field.clone(), value.clone()))
        .collect();
    let labels: Vec<&str> = members
        .iter()
        .filter_map(|m| m.get("label")?.as_str())
        .map(|l| l.strip_prefix(":nix: ").unwrap_or(l))
        .collect();
    step.insert(
        "label".into(),
        Value::String(format!(":nix: {}", short_list(&labels))),
    );
    step.insert(
        "command".into(),
        Value::String(agent::build_command(treekite, build_args)),
    );
    let targets: Vec<&str> = members
        .iter()
        .filter_map(|m| m.pointer("/env/READTREE_TARGET")?.as_str())
        .collect();
    let mut env = first
        .and_then(|f| f.get("env"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_else(Map::new);
    env.insert("READTREE_TARGET".into(), Value::String(targets.join(",")));
    step.insert("env".into(), Value::Object(env));
    let mut deps: Vec<Value> = Vec::new();
    let mut seen = HashSet::new();
    for m in members {
        for d in m
            .get("depends_on")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if seen.insert(dependency_key(d).unwrap_or_default()) {
                deps.push(d.clone());
            }
        }
    }
    step.insert("depends_on".into(), Value::Array(deps));
    let timeouts: Option<Vec<u64>> = members
        .iter()
        .map(|m| m.get("timeout_in_minutes").and_then(Value::as_u64))
        .collect();
    match timeouts {
        Some(t) => step.insert(
            "timeout_in_minutes".into(),
            Value::from(t.iter().sum::<u64>()),
        ),
        None => step.remove("timeout_in_minutes"),
    };
    Value::Object(step)
}

fn short_list(labels: &[&str]) -> String {
    const SHOWN: usize = 3;
    if labels.len() <= SHOWN {
        labels.join(", ")
    } else {
        format!(
            "{} and {} more",
            labels[..SHOWN].join(", "),
            labels.len() - SHOWN
        )
    }
}

/// Points a step's (and its group's steps') dependencies at batches, without
/// duplicates or a dependency on itself.
fn redirect(step: &mut StepJson, batch_key: &HashMap<&str, &str>) {
    if let Some(inner) = step.get_mut("steps").and_then(Value::as_array_mut) {
        inner.iter_mut().for_each(|s| redirect(s, batch_key));
    }
    let Some(object) = step.as_object_mut() else {
        return;
    };
    // Taken out while the step's own key is read, then put back in place.
    let Some(mut list) = object.get_mut("depends_on").map(std::mem::take) else {
        return;
    };
    if let Value::String(key) = &mut list {
        list = Value::Array(vec![Value::String(std::mem::take(key))]);
    }
    if let Value::Array(entries) = &mut list {
        let own = object.get("key").and_then(Value::as_str);
        let mut seen: Vec<String> = Vec::with_capacity(entries.len());
        let mut redirected = Vec::with_capacity(entries.len());
        for entry in entries.drain(..) {
            let Some(key) = dependency_key(&entry) else {
                redirected.push(entry);
                continue;
            };
            let target = batch_key.get(key).copied().unwrap_or(key);
            if Some(target) == own || seen.iter().any(|s| s == target) {
                continue;
            }
            let target = target.to_owned();
            seen.push(target.clone());
            redirected.push(match entry {
                Value::Object(mut o) => {
                    o.insert("step".into(), Value::String(target));
                    Value::Object(o)
                }
                _ => Value::String(target),
            });
        }
        *entries = redirected;
    }
    if let Some(slot) = object.get_mut("depends_on") {
        *slot = list;
    }
}
