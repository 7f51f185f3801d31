//! Dependencies between targets, from the derivation graph: each target
//! depends on the nearest targets its derivation needs, looking through any
//! number of derivations that are not targets (toolchains, intermediates).
//!
//! The evaluator is slow at graph work, so this reads the `.drv` files that
//! evaluation just wrote.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use anyhow::Result;
use serde_json::Value;

use super::TargetDeps;
use super::model::{Dependencies, Pipeline, Target, dependency_key, depends_on_mut, target_index};
use crate::agent::drv;
use crate::pipeline_dir::GraphRecord;

/// For each target (by index), the indices of the targets it needs nearest,
/// in target order, and the graph they were found in. Skipped targets are
/// never needed: they are unchanged, and so is everything below them.
pub fn nearest_targets(targets: &[Target]) -> Result<Dependencies> {
    let graph = Graph::read(targets.iter().map(|t| t.drv_path.as_str()))?;
    let needs = nearest_in(&graph, targets);
    Ok(Dependencies {
        needs,
        graph: Some(graph),
    })
}

fn nearest_in(graph: &Graph, targets: &[Target]) -> TargetDeps {
    // Node → target index; targets are the first nodes, in target order
    // (their drvPaths are distinct: targets sharing one share a step).
    let mut target_of: Vec<Option<usize>> = vec![None; graph.inputs.len()];
    for (i, target) in targets.iter().enumerate() {
        target_of[graph.ids[target.drv_path.as_str()]] = Some(i);
    }
    let mut nearest = Nearest {
        graph,
        target_of: &target_of,
        memo: vec![None; graph.inputs.len()],
    };
    targets
        .iter()
        .enumerate()
        .map(|(i, target)| {
            let node = graph.ids[target.drv_path.as_str()];
            let mut found: Vec<usize> = Vec::new();
            for &input in &graph.inputs[node] {
                found.extend(
                    nearest
                        .through(input)
                        .iter()
                        .copied()
                        .filter(|&j| j != i && !targets[j].skip),
                );
            }
            found.sort_unstable();
            found.dedup();
            found
        })
        .collect()
}

/// Adds each target step's edges to its `depends_on` (after any it has).
pub fn apply(pipeline: &mut Pipeline, target_deps: &TargetDeps) {
    let by_key: HashMap<&str, usize> = target_index(&pipeline.targets);
    let keys: Vec<String> = pipeline.targets.iter().map(|t| t.key.clone()).collect();
    for step in pipeline.chunks.values_mut().flatten().flatten() {
        let Some(&i) = step
            .get("key")
            .and_then(Value::as_str)
            .and_then(|k| by_key.get(k))
        else {
            continue;
        };
        if target_deps[i].is_empty() || pipeline.targets[i].skip {
            continue;
        }
        let Some(list) = depends_on_mut(step) else {
            continue;
        };
        let present: HashSet<String> = list
            .iter()
            .filter_map(dependency_key)
            .map(str::to_owned)
            .collect();
        for &j in &target_deps[i] {
            if !present.contains(&keys[j]) {
                list.push(Value::String(keys[j].clone()));
            }
        }
    }
}

/// The derivations the targets need, each a node numbered in the order it
/// was found (the roots first), with the nodes of its input derivations.
#[derive(Debug)]
pub struct Graph {
    ids: HashMap<String, usize>,
    /// Each node's `.drv` path.
    paths: Vec<String>,
    inputs: Vec<Vec<usize>>,
}

impl Graph {
    /// What `explain.json` keeps of it: each node's `.drv` file name and
    /// its inputs.
    pub fn record(&self) -> GraphRecord {
        GraphRecord {
            nodes: self
                .paths
                .iter()
                .map(|path| path.rsplit('/').next().unwrap_or(path).to_owned())
                .collect(),
            inputs: self.inputs.clone(),
        }
    }
}

impl Graph {
    /// Reads `.drv` files breadth-first from `roots`, each level's files
    /// parsed in parallel.
    fn read<'r>(roots: impl Iterator<Item = &'r str>) -> Result<Graph> {
        let mut graph = Graph {
            ids: HashMap::new(),
            paths: Vec::new(),
            inputs: Vec::new(),
        };
        let mut level: Vec<usize> = roots.map(|root| graph.intern(root)).collect();
        level.sort_unstable();
        level.dedup();
        while !level.is_empty() {
            let parsed = parse_all(
                &level
                    .iter()
                    .map(|&n| graph.paths[n].as_str())
                    .collect::<Vec<_>>(),
            )?;
            let mut next = Vec::new();
            for (node, inputs) in level.into_iter().zip(parsed) {
                let known = graph.inputs.len();
                let ids: Vec<usize> = inputs.iter().map(|input| graph.intern(input)).collect();
                next.extend(ids.iter().copied().filter(|&id| id >= known));
                graph.inputs[node] = ids;
            }
            level = next;
        }
        Ok(graph)
    }

    /// The node of `path`, new (and so unread) if it was not seen before.
    fn intern(&mut self, path: &str) -> usize {
        if let Some(&id) = self.ids.get(path) {
            return id;
        }
        let id = self.inputs.len();
        self.ids.insert(path.to_owned(), id);
        self.inputs.push(Vec::new());
        self.paths.push(path.to_owned());
        id
    }
}

fn parse_all(paths: &[&str]) -> Result<Vec<Vec<String>>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let per_thread = paths.len().div_ceil(threads).max(64);
    if paths.len() <= per_thread {
        return paths.iter().map(|p| drv::read_input_drvs(p)).collect();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(per_thread)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|p| drv::read_input_drvs(p))
                        .collect::<Result<Vec<_>>>()
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
    graph: &'a Graph,
    target_of: &'a [Option<usize>],
    memo: Vec<Option<Rc<[usize]>>>,
}

impl Nearest<'_> {
    /// Targets reached from `node`: itself when it is a target, else the
    /// nearest targets among its inputs. Iterative, as chains can be deep.
    fn through(&mut self, node: usize) -> Rc<[usize]> {
        if let Some(i) = self.target_of[node] {
            return Rc::from([i]);
        }
        let mut stack: Vec<usize> = vec![node];
        while let Some(&top) = stack.last() {
            if self.memo[top].is_some() {
                stack.pop();
                continue;
            }
            let inputs = &self.graph.inputs[top];
            let pending = stack.len();
            stack.extend(
                inputs
                    .iter()
                    .copied()
                    .filter(|&i| self.target_of[i].is_none() && self.memo[i].is_none()),
            );
            if stack.len() > pending {
                continue;
            }
            let mut found: Vec<usize> = Vec::new();
            for &i in inputs {
                match self.target_of[i] {
                    Some(t) => found.push(t),
                    None => found.extend_from_slice(
                        self.memo[i].as_deref().expect("inputs are walked first"),
                    ),
                }
            }
            found.sort_unstable();
            found.dedup();
            self.memo[top] = Some(found.into());
            stack.pop();
        }
        self.memo[node].clone().expect("walked")
    }
}
