//! What each step waits for, as Buildkite decides it:
//!
//! - explicit `depends_on` (with `allow_failure`, or the step's
//!   `allow_dependency_failure`);
//! - implicit ordering from `wait` and `block` steps: such a step waits for
//!   every step before it (back to the previous one), and every step after
//!   it waits for it. Inside a group this applies among the group's steps;
//! - a group's steps inherit its `depends_on` and its place after a wait,
//!   and the group itself finishes when all its steps have.
//!
//! `input` steps wait only for what they name explicitly, and nothing waits
//! for them implicitly. Steps that the branch filter leaves out of the build
//! are kept as nodes (reported as skipped) but never act as a barrier.
//!
//! Unknown keys, keys defined twice, dependencies on a later phase and
//! cycles are bad input, found before anything runs.

use std::collections::HashMap;

use anyhow::Result;

use super::plan::{Kind, Plan, StepId};
use crate::branches::Filter;
use crate::exit::bad_input;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub on: StepId,
    pub allow_failure: bool,
}

#[derive(Debug)]
pub struct Graph {
    /// What each step waits for.
    pub prereqs: Vec<Vec<Edge>>,
    /// The reverse: who waits for each step.
    pub dependents: Vec<Vec<StepId>>,
    /// Why a step is not in the build on this branch, if it is not.
    pub filtered: Vec<Option<String>>,
}

pub fn build(plan: &Plan, branch: &str) -> Result<(Graph, Vec<String>)> {
    let n = plan.steps.len();
    let mut graph = Graph {
        prereqs: vec![Vec::new(); n],
        dependents: vec![Vec::new(); n],
        filtered: vec![None; n],
    };
    let mut warnings = Vec::new();
    filter_branches(plan, branch, &mut graph.filtered)?;
    let keys = index_keys(plan)?;
    let mut explicit = vec![Vec::new(); n];
    for (id, step) in plan.steps.iter().enumerate() {
        for dependency in &step.depends_on {
            let allow_failure = dependency.allow_failure || step.allow_dependency_failure;
            match keys.get(dependency.key.as_str()) {
                Some(&on) if plan.steps[on].phase > step.phase => {
                    return Err(bad_input(format!(
                        "{} depends on {:?} from the later phase {}, which is uploaded only after this one finishes, so the step could never run",
                        step.describe(),
                        dependency.key,
                        plan.phases[plan.steps[on].phase].name
                    )));
                }
                Some(&on) => explicit[id].push(Edge { on, allow_failure }),
                None => match plan.other_phase_keys.get(&dependency.key) {
                    Some(phase) => warnings.push(format!(
                        "{} depends on {:?} from phase {phase}, which this run leaves out; treating it as passed",
                        step.describe(),
                        dependency.key
                    )),
                    None => {
                        return Err(bad_input(format!(
                            "{} depends on {:?}, but no step in the pipeline directory has that key; fix the key or the `depends_on`",
                            step.describe(),
                            dependency.key
                        )));
                    }
                },
            }
        }
    }
    for phase in &plan.phases {
        chain(plan, &phase.top, &[], &explicit, &mut graph);
    }
    for (id, prereqs) in graph.prereqs.iter().enumerate() {
        for edge in prereqs {
            graph.dependents[edge.on].push(id);
        }
    }
    find_cycle(plan, &graph)?;
    Ok((graph, warnings))
}

fn filter_branches(plan: &Plan, branch: &str, filtered: &mut [Option<String>]) -> Result<()> {
    for (id, step) in plan.steps.iter().enumerate() {
        if let Some(parent) = step.parent
            && let Some(reason) = filtered[parent].clone()
        {
            filtered[id] = Some(reason);
            continue;
        }
        if let Some(patterns) = &step.branches
            && !Filter::new(patterns, &step.origin)?.allows(branch)
        {
            filtered[id] = Some(format!(
                "branch {branch} does not match `branches: {}`",
                patterns.join(" ")
            ));
        }
    }
    Ok(())
}

fn index_keys(plan: &Plan) -> Result<HashMap<&str, StepId>> {
    let mut keys: HashMap<&str, StepId> = HashMap::new();
    for (id, step) in plan.steps.iter().enumerate() {
        let Some(key) = step.key.as_deref() else {
            continue;
        };
        if let Some(&first) = keys.get(key) {
            return Err(bad_input(format!(
                "key {key:?} is used by both {} and {}; Buildkite refuses a key it has already seen in the build",
                plan.steps[first].describe(),
                step.describe()
            )));
        }
        if let Some(phase) = plan.other_phase_keys.get(key) {
            return Err(bad_input(format!(
                "key {key:?} of {} is also used in phase {phase}; Buildkite refuses a key it has already seen in the build",
                step.describe()
            )));
        }
        keys.insert(key, id);
    }
    Ok(keys)
}

/// Adds the implicit and explicit edges of one list of steps (a phase's
/// top level, or a group's steps), each also getting `inherited`.
fn chain(
    plan: &Plan,
    items: &[StepId],
    inherited: &[Edge],
    explicit: &[Vec<Edge>],
    graph: &mut Graph,
) {
    let mut barrier: Option<StepId> = None;
    let mut since_barrier: Vec<StepId> = Vec::new();
    for &id in items {
        let step = &plan.steps[id];
        let mut edges: Vec<Edge> = inherited.to_vec();
        edges.extend(&explicit[id]);
        let present = graph.filtered[id].is_none();
        match &step.kind {
            Kind::Wait {
                continue_on_failure,
            } if present => {
                let allow_failure = *continue_on_failure;
                edges.extend(since_barrier.drain(..).map(|on| Edge { on, allow_failure }));
                edges.extend(barrier.map(|on| Edge { on, allow_failure }));
                barrier = Some(id);
            }
            Kind::Block if present => {
                edges.extend(since_barrier.drain(..).map(|on| Edge {
                    on,
                    allow_failure: false,
                }));
                edges.extend(barrier.map(|on| Edge {
                    on,
                    allow_failure: false,
                }));
                barrier = Some(id);
            }
            Kind::Input => {}
            _ => {
                edges.extend(barrier.map(|on| Edge {
                    on,
                    allow_failure: false,
                }));
                since_barrier.push(id);
            }
        }
        if let Kind::Group { children } = &step.kind {
            // The group's own dependencies hold back each of its steps; the
            // group is done when they all are (whatever their outcome: the
            // scheduler works out the group's result from theirs).
            chain(plan, children, &edges, explicit, graph);
            edges = children
                .iter()
                .map(|&on| Edge {
                    on,
                    allow_failure: true,
                })
                .collect();
        }
        edges.dedup();
        graph.prereqs[id] = edges;
    }
}

fn find_cycle(plan: &Plan, graph: &Graph) -> Result<()> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    let mut marks = vec![Mark::New; plan.steps.len()];
    for root in 0..plan.steps.len() {
        if marks[root] != Mark::New {
            continue;
        }
        let mut stack: Vec<(StepId, usize)> = vec![(root, 0)];
        marks[root] = Mark::OnStack;
        while let Some(&mut (id, ref mut next)) = stack.last_mut() {
            let Some(edge) = graph.prereqs[id].get(*next) else {
                marks[id] = Mark::Done;
                stack.pop();
                continue;
            };
            *next += 1;
            match marks[edge.on] {
                Mark::New => {
                    marks[edge.on] = Mark::OnStack;
                    stack.push((edge.on, 0));
                }
                Mark::OnStack => {
                    let start = stack
                        .iter()
                        .position(|&(s, _)| s == edge.on)
                        .expect("on the stack");
                    let mut names: Vec<String> =
                        stack[start..].iter().map(|&(s, _)| name(plan, s)).collect();
                    names.push(name(plan, edge.on));
                    return Err(bad_input(format!(
                        "dependency cycle: {} (each waits for the next), so none of them could ever start; {}",
                        names.join(" -> "),
                        plan.steps[edge.on].origin
                    )));
                }
                Mark::Done => {}
            }
        }
    }
    Ok(())
}

fn name(plan: &Plan, id: StepId) -> String {
    let step = &plan.steps[id];
    step.key
        .clone()
        .unwrap_or_else(|| format!("{:?}", step.label))
}
