//! `explain.json`: what `treekite explain` needs beyond the chunk files,
//! kept by `treekite pipeline` so that nothing is evaluated twice.
//!
//! The chunk files already say what each step is, skips and waits for;
//! what they cannot say is *why*: which parent the targets were compared
//! with (and what it had for each label), which targets each target needs
//! and through which derivations, which batch a target ended in, and the
//! targets skipped by their metadata (which have no derivation). That is
//! this file.
//!
//! It stays small enough for 10,000 targets: one entry per target step
//! (key, labels, drvPath, the targets it needs), and the derivation graph
//! the dependency analysis read (each `.drv` once, by name, with the
//! numbers of its inputs), from which `explain` finds the chain behind an
//! edge when asked, instead of storing one per edge.
//!
//! It carries the directory's [`FORMAT_VERSION`]: added to the directory
//! without changing what older readers of the other files see, and refused
//! when a newer treekite wrote it.

use std::fmt;
use std::io::Write;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{EXPLAIN_FILE, FORMAT_VERSION};
use crate::exit::bad_input;

/// The contents of `explain.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Explanation {
    /// The directory format it was written in.
    pub version: u64,
    /// The branch the pipeline was made for (`BUILDKITE_BRANCH`, else the
    /// checkout's), for steps with `branches`; `None` when unknown.
    pub branch: Option<String>,
    /// What the targets were compared with.
    pub parent: ParentRecord,
    /// Whether `depends_on` edges were found (`mkPipeline { dependencies }`).
    pub dependencies: bool,
    /// One per target step, in pipeline order: the `analysis.targets` of
    /// `mkPipeline`.
    pub targets: Vec<TargetRecord>,
    /// The target steps skipped by their metadata, which have no drvPath.
    pub skipped: Vec<SkippedTarget>,
    /// The line saying how targets were batched, when they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batching: Option<String>,
    /// The derivation graph the dependency analysis read (none when it was
    /// off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<GraphRecord>,
}

/// A target step: one derivation, one or more labels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetRecord {
    pub key: String,
    /// Every label whose derivation this is (targets sharing a derivation
    /// share a step).
    pub labels: Vec<String>,
    pub drv: String,
    /// Whether the step is skipped; unless the target is also in
    /// [`Explanation::skipped`], because it did not change.
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip: bool,
    /// The targets (indices into [`Explanation::targets`]) whose steps this
    /// one waits for, found in the derivation graph.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<usize>,
    /// The target whose step became the batch holding this one (itself
    /// for the first of a batch); `None` when targets were not batched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    /// The parent drvmap's drvPath for each label (in `labels`' order,
    /// `None` where it has no such label); `None` when no parent drvmap
    /// was known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Vec<Option<String>>>,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// A target step skipped by the target's metadata, from `mkPipeline`'s
/// `analysis.skipped` (`[ key label kind reason ]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SkippedTarget {
    pub key: String,
    pub label: String,
    pub kind: MetaSkip,
    /// `meta.ci.skip`'s text, when it is one.
    pub reason: Option<String>,
}

/// Which metadata skipped a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetaSkip {
    /// `meta.broken = true`.
    Broken,
    /// `meta.ci.skip`.
    Skip,
}

/// The derivations the dependency analysis read: node `i` for `i` below
/// the number of target steps is target `i`'s `.drv`.
#[derive(Debug, Serialize, Deserialize)]
pub struct GraphRecord {
    /// Each `.drv` file's name (`<hash>-<name>.drv`).
    pub nodes: Vec<String>,
    /// For each node, the nodes of its input derivations.
    pub inputs: Vec<Vec<usize>>,
}

/// The parent a pipeline was generated against (see `crate::parent`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ParentRecord {
    /// No `--parent`.
    NotAsked,
    /// `--parent FILE`.
    File { path: String },
    /// `--parent buildkite` found a build.
    Found {
        number: u64,
        id: String,
        commit: String,
        state: String,
        /// The base branch it was found on.
        base: String,
        /// Which commit it is, in words: `merge base of HEAD and main`.
        place: String,
    },
    /// `--parent buildkite` found none, for this reason.
    NotFound { reason: String },
}

impl ParentRecord {
    /// One line saying what the pipeline was compared with; `quote` shows
    /// a name (a UUID, a commit, a path) and `text` other words from
    /// outside, for wherever the line goes.
    pub fn line(&self, quote: impl Fn(&str) -> String, text: impl Fn(&str) -> String) -> String {
        match self {
            ParentRecord::NotAsked => {
                "none asked for (no --parent); building every target".to_owned()
            }
            ParentRecord::File { path } => format!("local drvmap {}", quote(path)),
            ParentRecord::Found {
                number,
                id,
                commit,
                state,
                place,
                ..
            } => format!(
                "build #{number} ({}) at {}, {}, {}",
                quote(id),
                quote(commit),
                text(state),
                text(place)
            ),
            ParentRecord::NotFound { reason } => format!("{}; building every target", text(reason)),
        }
    }
}

impl fmt::Display for ParentRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line(str::to_owned, str::to_owned))
    }
}

impl Explanation {
    /// Writes it as compact JSON.
    pub fn write(&self, file: &mut impl Write) -> std::io::Result<()> {
        serde_json::to_writer(file, self).map_err(std::io::Error::from)
    }

    /// Reads `dir`'s `explain.json`: bad input when it is missing (an older
    /// treekite wrote the directory), unreadable or newer than this
    /// treekite.
    pub fn read(dir: &Path) -> Result<Explanation> {
        let path = dir.join(EXPLAIN_FILE);
        let text = std::fs::read(&path).map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                bad_input(format!(
                    "{} has no {EXPLAIN_FILE}: it was written by a treekite without explain; regenerate it with `treekite pipeline`",
                    dir.display()
                ))
            } else {
                bad_input(format!("cannot read {}: {error}", path.display()))
            }
        })?;
        #[derive(Deserialize)]
        struct Version {
            version: u64,
        }
        let regenerate = |error: serde_json::Error| {
            bad_input(format!(
                "{} is not what `treekite pipeline` writes ({error}); regenerate the directory",
                path.display()
            ))
        };
        let Version { version } = serde_json::from_slice(&text).map_err(regenerate)?;
        if version > FORMAT_VERSION {
            return Err(bad_input(format!(
                "{} was written by a newer treekite (directory format {version}, this one reads up to {FORMAT_VERSION}); use the same treekite version for `treekite pipeline` and `treekite explain`",
                path.display()
            )));
        }
        serde_json::from_slice(&text).map_err(regenerate)
    }
}
