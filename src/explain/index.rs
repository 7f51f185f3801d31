//! A generated pipeline laid out for questions: every step (group members
//! too) with its phase and chunk file, found by key; the steps that name
//! each key in `depends_on`; and, from `explain.json`, which target or
//! metadata-skipped target each target step is, and why a step is
//! skipped or left out.

use std::collections::HashMap;

use serde_json::Value;

use crate::branches::Filter;
use crate::pipeline::{EXTRA_STEP_KEY_PREFIX, PARENT_SKIPPED, dependency_key};
use crate::pipeline_dir::{ChunkName, Explanation, MetaSkip};
use crate::step_fields;

/// A step and where it is.
pub struct Placed<'a> {
    pub phase: &'a str,
    pub chunk: ChunkName,
    pub step: &'a Value,
    /// The group step holding it, if any (by index).
    pub group: Option<usize>,
}

impl<'a> Placed<'a> {
    pub fn key(&self) -> Option<&'a str> {
        self.step.get("key").and_then(Value::as_str)
    }

    /// The label Buildkite shows (a group's name for a group).
    pub fn label(&self) -> &'a str {
        self.step
            .as_object()
            .and_then(step_fields::label)
            .unwrap_or("(no label)")
    }

    /// The keys in its `depends_on`.
    pub fn depends_on(&self) -> Vec<&'a str> {
        match self.step.get("depends_on") {
            Some(Value::Array(entries)) => entries.iter().filter_map(dependency_key).collect(),
            Some(one) => dependency_key(one).into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// Why it is skipped (its own `skip`), if it is.
    pub fn skip(&self) -> Option<String> {
        step_fields::skip(self.step.get("skip")).unwrap_or_else(Some)
    }

    /// Its branch patterns, if it has any (unreadable ones count as none:
    /// Buildkite would refuse the upload, not filter).
    pub fn branches(&self) -> Option<Vec<String>> {
        step_fields::branches(self.step.get("branches"))
            .ok()
            .flatten()
    }

    pub fn is_extra_step(&self) -> bool {
        self.key()
            .is_some_and(|key| key.starts_with(EXTRA_STEP_KEY_PREFIX))
    }
}

/// Why a skipped step is skipped, in kinds `summary.md` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipKind {
    /// Its target did not change since the parent.
    Unchanged,
    /// `meta.ci.skip`.
    CiSkip,
    /// `meta.broken`.
    Broken,
    /// Anything else (a step's own `skip`).
    Other,
}

impl From<MetaSkip> for SkipKind {
    fn from(kind: MetaSkip) -> SkipKind {
        match kind {
            MetaSkip::Broken => SkipKind::Broken,
            MetaSkip::Skip => SkipKind::CiSkip,
        }
    }
}

/// A step's branch filter against the build's branch.
pub enum Branching {
    /// No `branches`.
    Unfiltered,
    /// The branch matches the patterns.
    Runs(Vec<String>),
    /// It does not: Buildkite leaves the step out of the build.
    LeftOut(Vec<String>),
    /// The branch is not known.
    Unknown(Vec<String>),
}

/// What a step is to `explain.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Target step `i` (or the batch whose first target `i` is).
    Target(usize),
    /// Metadata-skipped target `i`.
    Skipped(usize),
}

pub struct Index<'a> {
    pub record: &'a Explanation,
    /// Every phase generated, in order.
    pub phases: &'a [String],
    /// Every step, group members right after their group.
    pub steps: Vec<Placed<'a>>,
    by_key: HashMap<&'a str, usize>,
    needed_by: HashMap<&'a str, Vec<usize>>,
    targets: HashMap<&'a str, usize>,
    meta_skipped: HashMap<&'a str, usize>,
    /// How many chunk files each phase has.
    chunk_counts: HashMap<&'a str, usize>,
}

impl<'a> Index<'a> {
    /// `chunks`: each chunk file's name and steps, in phase and number order.
    pub fn new(
        record: &'a Explanation,
        phases: &'a [String],
        chunks: impl IntoIterator<Item = (ChunkName, &'a [Value])>,
    ) -> Index<'a> {
        let mut index = Index {
            record,
            phases,
            steps: Vec::new(),
            by_key: HashMap::new(),
            needed_by: HashMap::new(),
            targets: HashMap::new(),
            meta_skipped: HashMap::new(),
            chunk_counts: HashMap::new(),
        };
        for (name, steps) in chunks {
            let phase = phases
                .iter()
                .find(|p| **p == name.phase)
                .map_or("(unlisted phase)", String::as_str);
            *index.chunk_counts.entry(phase).or_default() += 1;
            for step in steps {
                index.place(phase, &name, step, None);
            }
        }
        for (i, target) in record.targets.iter().enumerate() {
            index.targets.insert(&target.key, i);
        }
        for (i, skipped) in record.skipped.iter().enumerate() {
            index.meta_skipped.insert(&skipped.key, i);
        }
        index
    }

    fn place(&mut self, phase: &'a str, chunk: &ChunkName, step: &'a Value, group: Option<usize>) {
        let at = self.steps.len();
        self.steps.push(Placed {
            phase,
            chunk: chunk.clone(),
            step,
            group,
        });
        if let Some(key) = step.get("key").and_then(Value::as_str) {
            self.by_key.entry(key).or_insert(at);
        }
        for key in self.steps[at].depends_on() {
            self.needed_by.entry(key).or_default().push(at);
        }
        for inner in step
            .get("steps")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.place(phase, chunk, inner, Some(at));
        }
    }

    /// The steps of the group at `at` (none for another step): they come
    /// right after it.
    pub fn members(&self, at: usize) -> impl Iterator<Item = usize> + '_ {
        (at + 1..self.steps.len()).take_while(move |&i| self.steps[i].group == Some(at))
    }

    /// The step with `key`.
    pub fn step(&self, key: &str) -> Option<usize> {
        self.by_key.get(key).copied()
    }

    /// The steps whose `depends_on` names `key`.
    pub fn needed_by(&self, key: &str) -> &[usize] {
        self.needed_by.get(key).map_or(&[], Vec::as_slice)
    }

    /// The target (or metadata-skipped target) a step key belongs to.
    pub fn owner(&self, key: &str) -> Option<Owner> {
        match self.targets.get(key) {
            Some(&i) => Some(Owner::Target(i)),
            None => self.meta_skipped(key).map(Owner::Skipped),
        }
    }

    pub fn chunk_count(&self, phase: &str) -> usize {
        self.chunk_counts.get(phase).copied().unwrap_or(0)
    }

    /// The key of the step that builds target `i`: its batch's when it
    /// was batched.
    pub fn step_key_of(&self, target: usize) -> &'a str {
        let record = self.record;
        let first = record.targets[target].batch.unwrap_or(target);
        &record.targets[first].key
    }

    /// Why the step at `at` is skipped, or `None` when it is not. A step
    /// skipped because the target it belongs to is counts as that target.
    pub fn skip_kind(&self, at: usize) -> Option<SkipKind> {
        let placed = &self.steps[at];
        let reason = placed.skip()?;
        if let Some(kind) = placed.key().and_then(|key| self.owner_skip(key)) {
            return Some(kind);
        }
        if reason == PARENT_SKIPPED
            && let Some(kind) = placed
                .depends_on()
                .into_iter()
                .find_map(|key| self.owner_skip(key))
        {
            return Some(kind);
        }
        Some(SkipKind::Other)
    }

    /// Why the target (or metadata-skipped target) owning `key` is skipped.
    fn owner_skip(&self, key: &str) -> Option<SkipKind> {
        let skipped = |i: usize| SkipKind::from(self.record.skipped[i].kind);
        match self.owner(key)? {
            Owner::Target(i) if self.record.targets[i].skip => Some(
                self.meta_skipped(&self.record.targets[i].key)
                    .map_or(SkipKind::Unchanged, skipped),
            ),
            Owner::Target(_) => None,
            Owner::Skipped(i) => Some(skipped(i)),
        }
    }

    /// The metadata-skipped entry with `key`.
    pub fn meta_skipped(&self, key: &str) -> Option<usize> {
        self.meta_skipped.get(key).copied()
    }

    /// The step's branch filter against the build's branch. A group with
    /// no filter of its own is left out when each of its steps is.
    pub fn branching(&self, at: usize) -> Branching {
        let placed = &self.steps[at];
        if let Some(patterns) = placed.branches() {
            return self.against_branch(patterns, placed);
        }
        let members: Vec<Branching> = self.members(at).map(|i| self.branching(i)).collect();
        if !members.is_empty() && members.iter().all(|b| matches!(b, Branching::LeftOut(_))) {
            let Some(Branching::LeftOut(patterns)) = members.into_iter().next() else {
                unreachable!("every member is left out")
            };
            return Branching::LeftOut(patterns);
        }
        match members
            .into_iter()
            .find(|b| matches!(b, Branching::Unknown(_)))
        {
            Some(unknown) => unknown,
            None => Branching::Unfiltered,
        }
    }

    fn against_branch(&self, patterns: Vec<String>, placed: &Placed) -> Branching {
        let Some(branch) = &self.record.branch else {
            return Branching::Unknown(patterns);
        };
        match Filter::new(&patterns, placed.label()) {
            Ok(filter) if filter.allows(branch) => Branching::Runs(patterns),
            Ok(_) => Branching::LeftOut(patterns),
            Err(_) => Branching::Unfiltered,
        }
    }
}
