//! `treekite upload`: hand a phase's chunks to `buildkite-agent pipeline upload`.
//!
//! Buildkite inserts each upload right after the step that uploads it, so the
//! chunks go up last first: chunk 1 ends up first in the build.
//!
//! A retried upload job must upload each chunk exactly once: Buildkite
//! refuses an upload holding a step key the build already has, so a chunk
//! uploaded twice would fail the job on every retry. The job can be killed
//! at any moment, even after the agent took a chunk and before treekite
//! noted it, so each chunk's progress is kept in the build's meta-data (one
//! key per chunk) and written on both sides of the upload:
//! - `started` before it. A retry that finds `started` cannot know whether
//!   the upload happened, so it asks Buildkite whether the chunk's first
//!   step key is in the build (`buildkite-agent step get --step KEY state`,
//!   which fails with a 404 for a key the build does not have), and
//!   uploads only when it is not;
//! - `done` after it, which a retry skips without asking.
//!
//! The agent keeps processing an upload after Buildkite accepts it, and a
//! killed job's agent may still be doing so when the retry asks. So when the
//! retry's own upload of a `started` chunk fails, treekite asks once more
//! before failing: if the steps are there now, the earlier upload made it.
//!
//! A chunk none of whose steps has a key (treekite always writes keys)
//! cannot be looked up: after `started` it goes up again, with a warning
//! (Buildkite accepts steps without keys twice).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};

use anyhow::{Context, Result, bail};
use nix_derivation::{HashAlgorithm, hash_bytes, nixbase32};
use serde_json::Value;

use crate::exit::{ExitCode, bad_input};
use crate::pipeline_dir::{Chunk, PipelineDir};
use crate::process::Ended;

const AGENT: &str = "buildkite-agent";

/// What `treekite upload` was asked to do.
#[derive(Debug)]
pub struct Request {
    /// The pipeline directory.
    pub dir: PathBuf,
    pub phase: String,
}

pub fn run(request: &Request) -> Result<ExitCode> {
    let dir = PipelineDir::open(&request.dir)?;
    let chunks = dir.phase(&request.phase)?;
    if chunks.is_empty() {
        eprintln!(
            "treekite: phase {} has no steps in this pipeline; nothing to upload",
            request.phase
        );
        return Ok(ExitCode::Success);
    }
    // Read every chunk before uploading any: a broken file must not leave
    // the build with half a phase.
    let uploads = chunks
        .iter()
        .map(Upload::read)
        .collect::<Result<Vec<_>>>()?;
    let total = uploads.len();
    for (done, upload) in uploads.iter().rev().enumerate() {
        upload.put_in_build().with_context(|| {
            format!(
                "uploading {} ({done} of {total} chunks of phase {} are in the build); \
                 retry the job to upload the rest",
                upload.name, request.phase
            )
        })?;
    }
    Ok(ExitCode::Success)
}

struct Upload<'a> {
    chunk: &'a Chunk,
    name: String,
    /// Meta-data key holding this chunk's [`Progress`].
    record: String,
    /// The key of the chunk's first step that has one, to look the chunk
    /// up in the build (Buildkite takes an upload whole or not at all).
    step_key: Option<String>,
}

/// How far a chunk got, as the build's meta-data records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    NotStarted,
    /// An upload began; whether it reached Buildkite is unknown.
    Started,
    Done,
}

impl Progress {
    /// The meta-data value; `NotStarted` is what a missing key reads as.
    fn value(self) -> &'static str {
        match self {
            Progress::NotStarted => "not-started",
            Progress::Started => "started",
            Progress::Done => "done",
        }
    }

    /// Anything unknown counts as `Started`: the build is then asked.
    fn of(value: &str) -> Progress {
        [Progress::NotStarted, Progress::Done]
            .into_iter()
            .find(|p| p.value() == value)
            .unwrap_or(Progress::Started)
    }
}

impl<'a> Upload<'a> {
    fn read(chunk: &'a Chunk) -> Result<Upload<'a>> {
        let text = std::fs::read(&chunk.path)
            .with_context(|| format!("reading {}", chunk.path.display()))?;
        let steps = serde_json::from_slice::<Value>(&text).map_err(|error| {
            bad_input(format!(
                "{} is not valid JSON ({error}); regenerate the directory with `treekite pipeline`",
                chunk.path.display()
            ))
        })?;
        Ok(Upload {
            chunk,
            name: chunk.file_name(),
            record: record_key(chunk, &text),
            step_key: first_step_key(&steps),
        })
    }

    /// Uploads the chunk unless the build has it, and records it as done.
    fn put_in_build(&self) -> Result<()> {
        let progress = read_progress(&self.record)?;
        match progress {
            Progress::Done => {
                eprintln!(
                    "treekite: {} was uploaded earlier in this build; skipping it",
                    self.name
                );
                return Ok(());
            }
            Progress::Started if self.found_in_build("an earlier attempt uploaded it")? => {
                return Ok(());
            }
            Progress::Started => {}
            Progress::NotStarted => write_progress(&self.record, Progress::Started)?,
        }
        if let Err(error) = pipeline_upload(&self.chunk.path) {
            // An earlier attempt's upload may have landed since we asked.
            let landed = progress == Progress::Started
                && self
                    .found_in_build("an earlier attempt's upload landed late")
                    .unwrap_or(false);
            return if landed { Ok(()) } else { Err(error) };
        }
        write_progress(&self.record, Progress::Done)?;
        eprintln!("treekite: uploaded {}", self.name);
        Ok(())
    }

    /// Whether the build has the chunk's steps; when it does, records the
    /// chunk as done, saying `why` it is there.
    fn found_in_build(&self, why: &str) -> Result<bool> {
        let Some(key) = &self.step_key else {
            eprintln!(
                "treekite: warning: cannot tell whether {} is in the build: none of its steps has a key",
                self.name
            );
            return Ok(false);
        };
        if !step_in_build(key)? {
            return Ok(false);
        }
        write_progress(&self.record, Progress::Done)?;
        eprintln!(
            "treekite: {} is in the build already ({why}); recorded it",
            self.name
        );
        Ok(true)
    }
}

/// The meta-data key for a chunk: its phase, number and a digest of its
/// text. A retried job regenerates the same text, so it finds the key; a
/// different pipeline uploaded in the same build (another phase layout,
/// another depot) does not collide with it.
fn record_key(chunk: &Chunk, text: &[u8]) -> String {
    let digest = hash_bytes(HashAlgorithm::Sha256, text);
    let digest = nixbase32::encode(digest.digest_as_bytes());
    format!("treekite-upload:{}:{digest}", chunk.name.stem())
}

/// The `key` of the first step that has one, groups' steps included. A
/// chunk is a `{"steps": […]}` pipeline or a bare list of steps.
fn first_step_key(chunk: &Value) -> Option<String> {
    let steps = chunk.get("steps").unwrap_or(chunk).as_array()?;
    steps
        .iter()
        .flat_map(|step| {
            let nested = step.get("steps").and_then(Value::as_array);
            std::iter::once(step).chain(nested.map(Vec::as_slice).unwrap_or_default())
        })
        .find_map(|step| step.get("key").and_then(Value::as_str))
        .map(str::to_owned)
}

fn read_progress(record: &str) -> Result<Progress> {
    let default = Progress::NotStarted.value();
    let output = agent_output(&["meta-data", "get", "--default", default, record])?;
    if !output.status.success() {
        bail!(
            "`{AGENT} meta-data get {record}` failed ({}){}",
            Ended::of(output.status).describe(),
            last_line(&output.stderr)
        );
    }
    Ok(Progress::of(String::from_utf8_lossy(&output.stdout).trim()))
}

fn write_progress(record: &str, progress: Progress) -> Result<()> {
    let status = agent(&["meta-data", "set", record, progress.value()])?;
    if !status.success() {
        bail!(
            "`{AGENT} meta-data set {record} {}` failed ({})",
            progress.value(),
            Ended::of(status).describe()
        );
    }
    Ok(())
}

/// Whether a step with `key` is in this build. The agent exits 0 with the
/// step's state when it is, and fails with `…/export: 404 Not Found` when
/// it is not; any other failure leaves the question open, which is an
/// error.
fn step_in_build(key: &str) -> Result<bool> {
    let output = agent_output(&["step", "get", "--step", key, "state"])?;
    if output.status.success() {
        return Ok(true);
    }
    if String::from_utf8_lossy(&output.stderr).contains(": 404 ") {
        return Ok(false);
    }
    bail!(
        "cannot tell whether step {key} is in the build: `{AGENT} step get --step {key} state` failed ({}){}",
        Ended::of(output.status).describe(),
        last_line(&output.stderr)
    )
}

fn pipeline_upload(file: &Path) -> Result<()> {
    let file = file.to_str().context("chunk paths must be UTF-8")?;
    let status = agent(&["pipeline", "upload", file])?;
    if !status.success() {
        bail!(
            "`{AGENT} pipeline upload {file}` failed ({})",
            Ended::of(status).describe()
        );
    }
    Ok(())
}

/// `: <the last line>` of what the agent said, for an error message.
fn last_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .map_or_else(String::new, |line| format!(": {}", line.trim()))
}

fn agent_command(args: &[&str]) -> Command {
    let mut command = Command::new(AGENT);
    command.args(args);
    command
}

fn spawn_context(args: &[&str]) -> String {
    format!(
        "running `{AGENT} {}` (treekite upload runs inside a Buildkite job, with the agent on PATH)",
        args.join(" ")
    )
}

/// Runs the agent with our stdout and stderr, so its messages show in the job log.
fn agent(args: &[&str]) -> Result<ExitStatus> {
    agent_command(args)
        .status()
        .with_context(|| spawn_context(args))
}

/// Runs the agent for an answer: what it prints is read, not shown.
fn agent_output(args: &[&str]) -> Result<Output> {
    agent_command(args)
        .output()
        .with_context(|| spawn_context(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_values_round_trip_and_unknown_ones_ask_the_build() {
        for progress in [Progress::NotStarted, Progress::Started, Progress::Done] {
            assert_eq!(Progress::of(progress.value()), progress);
        }
        assert_eq!(Progress::of("uploaded"), Progress::Started);
    }

    #[test]
    fn the_first_step_key_is_found_in_groups_and_lists() {
        let key = |json: &str| first_step_key(&serde_json::from_str(json).unwrap());
        assert_eq!(
            key(
                r#"{"steps": [{"wait": null}, {"group": "g", "steps": [{"key": "in-group"}]}, {"key": "later"}]}"#
            ),
            Some("in-group".into())
        );
        assert_eq!(key(r#"[{"command": "x"}, {"key": "k"}]"#), Some("k".into()));
        assert_eq!(key(r#"{"steps": [{"command": "x"}]}"#), None);
    }

    #[test]
    fn last_lines() {
        assert_eq!(
            last_line(b"warning\nfatal: 404 Not Found\n\n"),
            ": fatal: 404 Not Found"
        );
        assert_eq!(last_line(b""), "");
    }
}
