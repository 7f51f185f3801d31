//! What `treekite explain` prints about one target or step: where its
//! step is, whether it runs and exactly why, what it waits for (with the
//! derivations behind each edge) and what waits for it.
//!
//! Plain text, one `name: value` line per fact and an indented line per
//! item of a list; everything taken from the pipeline goes through
//! [`printable`], so a label cannot act on the terminal.

use std::collections::HashSet;
use std::fmt::Write as _;

use super::chain;
use super::index::{Branching, Index, Owner};
use crate::pipeline::{BUILD_PHASE, PARENT_SKIPPED};
use crate::pipeline_dir::{MetaSkip, ParentRecord, SkippedTarget};
use crate::printable::printable;

/// Steps listed under `needed by:` at most; the rest are counted.
const NEEDED_BY_SHOWN: usize = 20;

/// Other targets of a batch named at most; the rest are counted.
const BATCH_SHOWN: usize = 5;

/// What was asked about.
#[derive(Debug, Clone, Copy)]
pub enum Subject {
    /// A target step (by its index in `explain.json`).
    Target(usize),
    /// A target skipped by its metadata.
    Skipped(usize),
    /// Any other step (by its index in the [`Index`]).
    Step(usize),
}

pub fn report(index: &Index, subject: Subject) -> String {
    let mut out = Report::default();
    match subject {
        Subject::Target(i) => target(&mut out, index, i),
        Subject::Skipped(i) => meta_skipped(&mut out, index, i),
        Subject::Step(at) => step(&mut out, index, at),
    }
    out.text
}

/// The text being written.
#[derive(Default)]
struct Report {
    text: String,
}

impl Report {
    fn field(&mut self, name: &str, value: impl AsRef<str>) {
        writeln!(self.text, "{name}: {}", value.as_ref()).unwrap();
    }

    /// `name:` and one indented line per item, or `name: NONE` when
    /// there is none.
    fn list(&mut self, name: &str, items: &[String], none: &str) {
        if items.is_empty() {
            return self.field(name, none);
        }
        writeln!(self.text, "{name}:").unwrap();
        for item in items {
            writeln!(self.text, "  {item}").unwrap();
        }
    }
}

fn show(text: &str) -> String {
    printable(text).into_owned()
}

fn target(out: &mut Report, index: &Index, i: usize) {
    let record = index.record;
    let target = &record.targets[i];
    out.field("target", show(&target.labels.join(", ")));
    out.field("derivation", show(&target.drv));
    let key = index.step_key_of(i);
    place(out, index, key);
    if record.batching.is_some() {
        out.field("batch", batch(index, i));
    }
    out.field("parent", show(&record.parent.to_string()));
    let status = target_status(index, i);
    match index.step(key) {
        Some(at) => step_status(out, index, at, status),
        None => out.field("status", status),
    }
    out.list("waits for", &target_waits_for(index, i), "nothing");
    needed_by(out, index, key);
}

fn meta_skipped(out: &mut Report, index: &Index, i: usize) {
    let skipped = &index.record.skipped[i];
    out.field("target", show(&skipped.label));
    place(out, index, &skipped.key);
    let status = meta_status(index, skipped);
    let at = index.step(&skipped.key);
    match at {
        Some(at) => step_status(out, index, at, status),
        None => out.field("status", status),
    }
    let waits = at.map(|at| step_waits_for(index, at)).unwrap_or_default();
    out.list("waits for", &waits, "nothing");
    needed_by(out, index, &skipped.key);
}

fn step(out: &mut Report, index: &Index, at: usize) {
    let placed = &index.steps[at];
    out.field("step", show(placed.label()));
    let key = placed.key().unwrap_or_default();
    place(out, index, key);
    if let Some(group) = placed.group {
        let group = &index.steps[group];
        let key = group.key().unwrap_or("no key");
        out.field("group", format!("{} ({})", show(group.label()), show(key)));
    }
    let status = other_status(index, at);
    step_status(out, index, at, status);
    let mut waits = step_waits_for(index, at);
    let waits_for_target = dependencies(index, at)
        .into_iter()
        .any(|key| index.owner(key).is_some());
    if placed.is_extra_step() && !waits_for_target && !index.phases.iter().any(|p| p == BUILD_PHASE)
    {
        waits.push(format!(
            "(not its target's step: that is in the build phase, which this pipeline did not generate (phases: {}))",
            show(&index.phases.join(", "))
        ));
    }
    out.list("waits for", &waits, "nothing");
    needed_by(out, index, key);
}

/// `key:`, `phase:` and `chunk:` of the step with `key`.
fn place(out: &mut Report, index: &Index, key: &str) {
    out.field("key", show(key));
    match index.step(key) {
        Some(at) => {
            let placed = &index.steps[at];
            out.field("phase", show(placed.phase));
            out.field("chunk", show(&placed.chunk.file_name()));
        }
        None => out.field("phase", "none: no chunk file holds this step"),
    }
}

/// `status:` (and `branches:`, or what it would be if not left out) of
/// the step at `at`, whose status without branch filters is `status`.
fn step_status(out: &mut Report, index: &Index, at: usize, status: String) {
    let branch = index.record.branch.as_deref().map(show).unwrap_or_default();
    let (status, more) = match index.branching(at) {
        Branching::Unfiltered => (status, None),
        Branching::Runs(patterns) => {
            let matches = format!("{}: branch {branch} matches", show(&patterns.join(" ")));
            (status, Some(("branches", matches)))
        }
        Branching::LeftOut(patterns) => (
            format!(
                "left out of the build: branch {branch} does not match `branches: {}`",
                show(&patterns.join(" "))
            ),
            Some(("otherwise", status)),
        ),
        Branching::Unknown(patterns) => {
            let only = format!(
                "{}: runs only on matching branches (the build's branch was not known when the pipeline was made)",
                show(&patterns.join(" "))
            );
            (status, Some(("branches", only)))
        }
    };
    out.field("status", status);
    if let Some((name, value)) = more {
        out.field(name, value);
    }
}

/// Whether target step `i` runs, and exactly why.
fn target_status(index: &Index, i: usize) -> String {
    let record = index.record;
    let target = &record.targets[i];
    if let Some(m) = index.meta_skipped(&target.key) {
        return meta_status(index, &record.skipped[m]);
    }
    let status = match &target.parent {
        Some(had) => compared(index, i, had),
        None if target.skip => "skipped: unchanged: the parentTargetMap the depot gave mkPipeline has the same derivation (treekite was not given the parent with --parent, so it cannot say which build that was)".to_owned(),
        None => match &record.parent {
            ParentRecord::NotFound { reason } => format!(
                "runs: there is no parent build ({}), so every target builds",
                show(reason)
            ),
            ParentRecord::NotAsked => {
                "runs: no parent was asked for (no --parent), so every target builds".to_owned()
            }
            _ => "runs".to_owned(),
        },
    };
    let own = index
        .step(index.step_key_of(i))
        .and_then(|at| index.steps[at].skip());
    match own {
        Some(reason) if !target.skip => {
            format!("skipped: {} (the step's own `skip`)", show(&reason))
        }
        _ => status,
    }
}

/// A target's status against the parent drvmap, which had `had` for its
/// labels.
fn compared(index: &Index, i: usize, had: &[Option<String>]) -> String {
    let target = &index.record.targets[i];
    let parent = parent_phrase(&index.record.parent);
    // The labels under which the parent had this very derivation.
    let same: Vec<String> = target
        .labels
        .iter()
        .zip(had)
        .filter(|(_, had)| had.as_ref() == Some(&target.drv))
        .map(|(label, _)| show(label))
        .collect();
    if target.skip {
        return if same.is_empty() {
            format!(
                "skipped: unchanged: the parentTargetMap the depot gave mkPipeline has the same derivation, but {parent} does not (does the depot pass the parent drvmap as it is?)"
            )
        } else {
            format!(
                "skipped: unchanged since {parent}: the same drvPath {} for {}",
                show(&target.drv),
                same.join(", ")
            )
        };
    }
    if !same.is_empty() {
        return format!(
            "runs, although {parent} had the same derivation for {}: mkPipeline did not skip it (does the depot pass the parent drvmap as mkPipeline's parentTargetMap?)",
            same.join(", ")
        );
    }
    if had.iter().all(Option::is_none) {
        return format!(
            "runs: new since {parent}, whose drvmap has no {}",
            show(&target.labels.join(" or "))
        );
    }
    let differences: Vec<String> = target
        .labels
        .iter()
        .zip(had)
        .filter_map(|(label, had)| Some(format!("{} for {}", show(had.as_ref()?), show(label))))
        .collect();
    format!(
        "runs: changed since {parent}: it had {}; now {}",
        differences.join(", "),
        show(&target.drv)
    )
}

/// `the parent build #N (UUID)` or `the parent drvmap FILE`.
fn parent_phrase(parent: &ParentRecord) -> String {
    match parent {
        ParentRecord::Found {
            number, id, commit, ..
        } => format!(
            "the parent build #{number} ({}) at {}",
            show(id),
            show(commit)
        ),
        ParentRecord::File { path } => format!("the parent drvmap {}", show(path)),
        ParentRecord::NotAsked | ParentRecord::NotFound { .. } => "the parent".to_owned(),
    }
}

/// Why a target is skipped by its metadata. Its derivation is never
/// evaluated, unless its `meta.ci.skip` is a value mkPipeline's skip
/// treats as a skip but its evaluation does not (an empty string): then
/// it is a target step too, with a drvPath.
fn meta_status(index: &Index, skipped: &SkippedTarget) -> String {
    let why = match (skipped.kind, &skipped.reason) {
        (MetaSkip::Broken, _) => "skipped: marked broken (meta.broken)".to_owned(),
        (MetaSkip::Skip, Some(reason)) if !reason.is_empty() => {
            format!("skipped by meta.ci.skip: {}", show(reason))
        }
        (MetaSkip::Skip, _) => "skipped by meta.ci.skip".to_owned(),
    };
    match index.owner(&skipped.key) {
        Some(Owner::Target(_)) => why,
        _ => format!("{why}; its derivation is never evaluated"),
    }
}

/// The status of a step that is not a target's: its `skip` (or its
/// group's), with its target's reason when that is why.
fn other_status(index: &Index, at: usize) -> String {
    let placed = &index.steps[at];
    let skip = placed
        .skip()
        .or_else(|| placed.group.and_then(|g| index.steps[g].skip()));
    let Some(reason) = skip else {
        if let Some(prompt) = placed.step.get("prompt").and_then(|p| p.as_str())
            && placed.step.get("block").is_some()
        {
            return format!("waits for a person to unblock it: {}", show(prompt));
        }
        return "runs".to_owned();
    };
    if reason == PARENT_SKIPPED {
        let because =
            dependencies(index, at)
                .into_iter()
                .find_map(|key| match index.owner(key)? {
                    Owner::Target(i) => Some((key, target_status(index, i))),
                    Owner::Skipped(i) => Some((key, meta_status(index, &index.record.skipped[i]))),
                });
        if let Some((key, status)) = because {
            return format!(
                "skipped: {} ({}: {status})",
                show(&reason),
                name_of(index, key)
            );
        }
    }
    format!("skipped: {}", show(&reason))
}

/// The keys a step waits for: its group's `depends_on`, then its own.
fn dependencies<'a>(index: &'a Index, at: usize) -> Vec<&'a str> {
    let placed = &index.steps[at];
    let mut keys: Vec<&str> = placed
        .group
        .map(|g| index.steps[g].depends_on())
        .unwrap_or_default();
    keys.extend(placed.depends_on());
    keys
}

/// What a step that is not a target's waits for, and why.
fn step_waits_for(index: &Index, at: usize) -> Vec<String> {
    let extra = index.steps[at].is_extra_step();
    dependencies(index, at)
        .into_iter()
        .map(|key| {
            let why = match (index.owner(key), index.step(key)) {
                (Some(_), _) if extra => "the target it belongs to",
                (_, Some(dep)) if index.steps[dep].step.get("block").is_some() => {
                    "a block step: someone must unblock it"
                }
                _ => "an explicit depends_on",
            };
            format!("{} ({}): {why}", name_of(index, key), show(key))
        })
        .collect()
}

/// What target step `i` waits for: each target its derivation needs, with
/// the chain of derivations behind the edge, then the rest of its step's
/// `depends_on`.
fn target_waits_for(index: &Index, i: usize) -> Vec<String> {
    let record = index.record;
    let target = &record.targets[i];
    let key = index.step_key_of(i);
    let mut lines = Vec::new();
    if !record.dependencies {
        lines.push(
            "(dependency analysis was off: mkPipeline { dependencies = false; }, so only explicit depends_on)"
                .to_owned(),
        );
    } else if target.skip {
        lines.push(
            "(no target: treekite adds no edges to a skipped step, and a skipped target is never waited for)"
                .to_owned(),
        );
    }
    let chains = record
        .graph
        .as_ref()
        .map(|graph| chain::chains(graph, record.targets.len(), i, &target.needs));
    let mut explained: HashSet<&str> = HashSet::new();
    for (n, &j) in target.needs.iter().enumerate() {
        let why = match (&record.graph, chains.as_ref().and_then(|c| c[n].as_ref())) {
            (Some(graph), Some(chain)) => chain::describe(record, graph, chain),
            _ => "(no chain found in the derivation graph)".to_owned(),
        };
        let dep_key = index.step_key_of(j);
        explained.insert(dep_key);
        let labels = show(&record.targets[j].labels.join(", "));
        lines.push(if dep_key == key {
            format!(
                "{labels}: in the same batch step, which Nix builds in order: {}",
                show(&why)
            )
        } else {
            format!("{labels} ({}): {}", show(dep_key), show(&why))
        });
    }
    let others = batch_edges(index, i);
    let mut for_others = 0;
    let batched = target.batch.is_some_and(|first| {
        record
            .targets
            .iter()
            .filter(|t| t.batch == Some(first))
            .count()
            > 1
    });
    for dep in index
        .step(key)
        .map(|at| index.steps[at].depends_on())
        .unwrap_or_default()
    {
        if explained.contains(dep) {
            continue;
        }
        if others.contains(dep) {
            for_others += 1;
            continue;
        }
        let whose = if batched {
            " of a target in its batch"
        } else {
            ""
        };
        lines.push(format!(
            "{} ({}): an explicit depends_on (meta.ci.buildkiteExtraDeps{whose})",
            name_of(index, dep),
            show(dep)
        ));
    }
    if for_others > 0 {
        lines.push(format!(
            "and {for_others} step{} the other targets in its batch need",
            if for_others == 1 { "" } else { "s" }
        ));
    }
    lines
}

/// The steps the other targets of target `i`'s batch wait for.
fn batch_edges<'a>(index: &'a Index, i: usize) -> HashSet<&'a str> {
    let record = index.record;
    let Some(first) = record.targets[i].batch else {
        return HashSet::new();
    };
    record
        .targets
        .iter()
        .enumerate()
        .filter(|(m, t)| *m != i && t.batch == Some(first))
        .flat_map(|(_, t)| &t.needs)
        .map(|&j| index.step_key_of(j))
        .collect()
}

/// `batch:`: the batch step and the other targets it builds.
fn batch(index: &Index, i: usize) -> String {
    let record = index.record;
    let key = index.step_key_of(i);
    let first = record.targets[i].batch.unwrap_or(i);
    // One entry per target step: the labels of one derivation together.
    let others: Vec<String> = record
        .targets
        .iter()
        .enumerate()
        .filter(|(m, t)| *m != i && t.batch == Some(first))
        .map(|(_, t)| t.labels.join(" / "))
        .collect();
    if others.is_empty() {
        return format!("none: its step ({}) builds it alone", show(key));
    }
    let mut shown: Vec<String> = others.iter().take(BATCH_SHOWN).map(|l| show(l)).collect();
    if others.len() > BATCH_SHOWN {
        shown.push(format!("and {} more", others.len() - BATCH_SHOWN));
    }
    format!(
        "{} builds it with {} other target{}: {}",
        show(key),
        others.len(),
        if others.len() == 1 { "" } else { "s" },
        shown.join(", ")
    )
}

/// `needed by:`: the steps whose `depends_on` names `key`.
fn needed_by(out: &mut Report, index: &Index, key: &str) {
    let steps = index.needed_by(key);
    let mut items: Vec<String> = steps
        .iter()
        .take(NEEDED_BY_SHOWN)
        .map(|&at| {
            let placed = &index.steps[at];
            format!(
                "{} ({})",
                show(placed.label()),
                show(placed.key().unwrap_or("no key"))
            )
        })
        .collect();
    if steps.len() > NEEDED_BY_SHOWN {
        items.push(format!("… and {} more", steps.len() - NEEDED_BY_SHOWN));
    }
    out.list("needed by", &items, "nothing");
}

/// The name a person knows a step by: its label, else its target's.
fn name_of(index: &Index, key: &str) -> String {
    if let Some(at) = index.step(key) {
        return show(index.steps[at].label());
    }
    match index.owner(key) {
        Some(Owner::Target(i)) => show(&index.record.targets[i].labels.join(", ")),
        Some(Owner::Skipped(i)) => show(&index.record.skipped[i].label),
        None => "(no step in this pipeline)".to_owned(),
    }
}
