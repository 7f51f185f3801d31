//! Dependencies between targets, from the derivation graph: each target
//! depends on the nearest targets its derivation needs, looking through any
//! number of derivations that are not targets (toolchains, intermediates).
//!
//! The evaluator is slow at graph work, so this reads the `.drv` files that
//! evaluation just wrote.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::Result;
use serde_json::Value;

use super::model::{Pipeline, Target, dependency_key, depends_on_mut};
use crate::drv::Drv;

/// For each target (by index), the indices of the targets it needs nearest,
/// in target order. Skipped targets are never needed: they are unchanged,
/// and so is everything below them.
pub fn nearest_targets(targets: &[Target]) -> Result<Vec<Vec<usize>>> {
    let index: HashMap<&str, usize> =
        targets.iter().enumerate().map(|(i, t)| (t.drv_path.as_str(), i)).collect();
    let graph = read_graph(targets.iter().map(|t| t.drv_path.clone()).collect())?;
    let mut nearest = Nearest { graph: &graph, index: &index, memo: HashMap::new() };
    Ok(targets
        .iter()
        .enumerate()
        .map(|(i, target)| {
            let mut found: Vec<usize> = graph[&target.drv_path]
                .iter()
                .flat_map(|input| nearest.through(input).iter().copied().collect::<Vec<_>>())
                .filter(|&j| j != i && !targets[j].skip)
                .collect();
            found.sort_unstable();
            found.dedup();
            found
        })
        .collect())
}

/// Adds each target step's edges to its `depends_on` (after any it has).
pub fn apply(pipeline: &mut Pipeline, target_deps: &[Vec<usize>]) {
    let by_key: HashMap<&str, usize> =
        pipeline.targets.iter().enumerate().map(|(i, t)| (t.key.as_str(), i)).collect();
    let keys: Vec<String> = pipeline.targets.iter().map(|t| t.key.clone()).collect();
    for step in pipeline.chunks.values_mut().flatten().flatten() {
        let Some(&i) = step.get("key").and_then(Value::as_str).and_then(|k| by_key.get(k)) else { continue };
        if target_deps[i].is_empty() || pipeline.targets[i].skip {
            continue;
        }
        let Some(list) = depends_on_mut(step) else { continue };
        let present: HashSet<String> = list.iter().filter_map(dependency_key).map(str::to_owned).collect();
        for &j in &target_deps[i] {
            if !present.contains(&keys[j]) {
                list.push(Value::String(keys[j].clone()));
            }
        }
    }
}

/// `.drv` path → input `.drv` paths, for everything the targets need.
/// Read breadth-first, each level's files parsed in parallel.
fn read_graph(roots: Vec<String>) -> Result<HashMap<String, Vec<String>>> {
    let mut graph: HashMap<String, Vec<String>> = HashMap::new();
    let mut level: Vec<String> = roots;
    level.sort_unstable();
    level.dedup();
    while !level.is_empty() {
        let parsed = parse_all(&level)?;
        let mut next = Vec::new();
        for (path, inputs) in level.into_iter().zip(parsed) {
            next.extend(inputs.iter().filter(|i| !graph.contains_key(*i)).cloned());
            graph.insert(path, inputs);
        }
        next.sort_unstable();
        next.dedup();
        next.retain(|p| !graph.contains_key(p));
        level = next;
    }
    Ok(graph)
}

fn parse_all(paths: &[String]) -> Result<Vec<Vec<String>>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let per_thread = paths.len().div_ceil(threads).max(64);
    std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(per_thread)
            .map(|part| {
                scope.spawn(move || {
                    part.iter().map(|p| Drv::read(p).map(|d| d.input_drvs)).collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(paths.len());
        for handle in handles {
            all.extend(handle.join().expect("a .drv reader panicked")?);
        }
        Ok(all)
    })
}

/// The nearest targets below each derivation, remembered per derivation so
/// shared toolchains are walked once.
struct Nearest<'a> {
    graph: &'a HashMap<String, Vec<String>>,
    index: &'a HashMap<&'a str, usize>,
    memo: HashMap<&'a str, Arc<[usize]>>,
}

impl<'a> Nearest<'a> {
    /// Targets reached from `drv`: itself when it is a target, else the
    /// nearest targets among its inputs. Iterative, as chains can be deep.
    fn through(&mut self, drv: &'a str) -> Arc<[usize]> {
        if let Some(&i) = self.index.get(drv) {
            return Arc::from([i]);
        }
        let mut stack: Vec<&'a str> = vec![drv];
        while let Some(&top) = stack.last() {
            if self.memo.contains_key(top) {
                stack.pop();
                continue;
            }
            let inputs = &self.graph[top];
            let pending: Vec<&'a str> = inputs
                .iter()
                .map(String::as_str)
                .filter(|i| !self.index.contains_key(i) && !self.memo.contains_key(i))
                .collect();
            if !pending.is_empty() {
                stack.extend(pending);
                continue;
            }
            let mut found: Vec<usize> = inputs
                .iter()
                .flat_map(|i| match self.index.get(i.as_str()) {
                    Some(&t) => vec![t],
                    None => self.memo[i.as_str()].to_vec(),
                })
                .collect();
            found.sort_unstable();
            found.dedup();
            self.memo.insert(top, found.into());
            stack.pop();
        }
        self.memo[drv].clone()
    }
}
