//! The pipeline directory: the contract between `treekite pipeline`, which
//! writes it, and `upload`, `run` and `explain`, which read it, often on
//! another machine and possibly with another treekite version. This module
//! owns it: every file name, the format version and its check, reading and
//! writing. Nothing else names a file in it.
//!
//! What it holds:
//! - `<phase>-chunk-<n>.json`: the steps of a phase, split into uploads of
//!   at most `chunkSize` jobs, numbered from 1; each a valid Buildkite
//!   pipeline file on its own, which the agent's YAML parser reads back
//!   unchanged ([`agent_json`]);
//! - `drvmap.json`: label → `{ drvPath, attrPath }` of every target (TVL's
//!   format), for a later build's `parentTargetMap`;
//! - `phases.json`: the format version and every phase in upload order,
//!   empty ones too (an empty phase has no chunk file, since Buildkite
//!   refuses an upload of no steps);
//! - `summary.md`: what a person reads about the pipeline (its parent,
//!   what each phase runs and skips, the changed targets), Markdown for a
//!   Buildkite annotation;
//! - `explain.json`: what `treekite explain` needs to say why a step runs,
//!   waits or is skipped ([`explain`]).
//!
//! A later build reads an earlier one's `drvmap.json` as its parent
//! ([`parse_drvmap`]).
//!
//! A new directory replaces `--out` only once complete, and neither a kill
//! nor a concurrent run can leave `--out` half written or in the way of
//! the next run ([`swap`]).

mod agent_json;
mod drvmap;
mod explain;
mod read;
mod swap;
mod write;

pub use drvmap::{Drvmap, parse_drvmap};
pub use explain::{Explanation, GraphRecord, MetaSkip, ParentRecord, SkippedTarget, TargetRecord};
pub use read::{Chunk, PipelineDir};
pub use write::{Contents, Explained, check_out, write};

/// The version of the directory's layout, recorded in `phases.json`. A
/// reader refuses a directory written in a newer format rather than
/// misreading it.
pub const FORMAT_VERSION: u64 = 1;

/// The drvmap of the pipeline's targets.
pub const DRVMAP_FILE: &str = "drvmap.json";

/// The manifest: format version and phases in order.
pub const MANIFEST_FILE: &str = "phases.json";

/// What a person reads: Markdown, posted as a Buildkite annotation.
pub const SUMMARY_FILE: &str = "summary.md";

/// What `treekite explain` reads.
pub const EXPLAIN_FILE: &str = "explain.json";

/// How chunk files are named, for messages about a whole phase.
pub const CHUNK_PATTERN: &str = "<phase>-chunk-<n>.json";

/// A chunk's place: its phase and number (from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkName {
    pub phase: String,
    pub number: u64,
}

impl ChunkName {
    /// `build-chunk-12`: the file name without `.json`; also what marks the
    /// chunk as uploaded in a build's meta-data.
    pub fn stem(&self) -> String {
        format!("{}-chunk-{}", self.phase, self.number)
    }

    /// `build-chunk-12.json`.
    pub fn file_name(&self) -> String {
        format!("{}.json", self.stem())
    }

    /// `build-chunk-12.json` → phase `build`, number 12; `None` for any
    /// other file.
    pub fn parse(file_name: &str) -> Option<ChunkName> {
        let stem = file_name.strip_suffix(".json")?;
        let (phase, digits) = stem.rsplit_once("-chunk-")?;
        if phase.is_empty() || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(ChunkName {
            phase: phase.to_owned(),
            number: digits.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ChunkName;

    #[test]
    fn chunk_names_round_trip() {
        let parsed = |name: &str| ChunkName::parse(name).map(|c| (c.phase, c.number));
        assert_eq!(parsed("build-chunk-1.json"), Some(("build".into(), 1)));
        assert_eq!(
            parsed("pre-release-chunk-10.json"),
            Some(("pre-release".into(), 10))
        );
        for other in [
            "build-chunk-.json",
            "build-chunk-1a.json",
            "-chunk-1.json",
            "drvmap.json",
            "build-chunk-1.json.tmp",
        ] {
            assert_eq!(parsed(other), None, "{other}");
        }
        let name = ChunkName {
            phase: "release".into(),
            number: 3,
        };
        assert_eq!(ChunkName::parse(&name.file_name()), Some(name));
    }
}
