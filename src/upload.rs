//! `treekite upload`: hand a phase's chunks to `buildkite-agent pipeline upload`.
//!
//! Buildkite inserts each upload right after the step that uploads it, so the
//! chunks go up last first: chunk 1 ends up first in the build.
//!
//! Retrying the upload job must not upload a chunk twice (Buildkite refuses a
//! second step with a key it has seen), so each uploaded chunk is recorded in
//! the build's meta-data and skipped when it is found there.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use anyhow::{Context, Result, bail};
use nix_derivation::{HashAlgorithm, hash_bytes, nixbase32};

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
        if meta_data_exists(&upload.marker)? {
            eprintln!(
                "treekite: {} was uploaded earlier in this build; skipping it",
                upload.name
            );
        } else {
            pipeline_upload(&upload.chunk.path).with_context(|| {
                format!(
                    "uploading {} ({done} of {total} chunks of phase {} are in the build); \
                     retry the job to upload the rest",
                    upload.name, request.phase
                )
            })?;
            meta_data_set(&upload.marker)?;
            eprintln!("treekite: uploaded {}", upload.name);
        }
    }
    Ok(ExitCode::Success)
}

struct Upload<'a> {
    chunk: &'a Chunk,
    name: String,
    /// Meta-data key recording that this chunk is in the build.
    marker: String,
}

impl<'a> Upload<'a> {
    fn read(chunk: &'a Chunk) -> Result<Upload<'a>> {
        let text = std::fs::read(&chunk.path)
            .with_context(|| format!("reading {}", chunk.path.display()))?;
        if let Err(error) = serde_json::from_slice::<serde_json::Value>(&text) {
            return Err(bad_input(format!(
                "{} is not valid JSON ({error}); regenerate the directory with `treekite pipeline`",
                chunk.path.display()
            )));
        }
        Ok(Upload {
            chunk,
            name: chunk.file_name(),
            marker: marker(chunk, &text),
        })
    }
}

/// The meta-data key for a chunk: its phase, number and a digest of its
/// text. A retried job regenerates the same text, so it finds the key; a
/// different pipeline uploaded in the same build (another phase layout,
/// another depot) does not collide with it.
fn marker(chunk: &Chunk, text: &[u8]) -> String {
    let digest = hash_bytes(HashAlgorithm::Sha256, text);
    let digest = nixbase32::encode(digest.digest_as_bytes());
    format!("treekite-uploaded:{}:{digest}", chunk.name.stem())
}

fn meta_data_exists(key: &str) -> Result<bool> {
    let status = agent(&["meta-data", "exists", key])?;
    // Documented: 0 when the key is set, 100 when it is not.
    match status.code() {
        Some(0) => Ok(true),
        Some(100) => Ok(false),
        _ => bail!(
            "`{AGENT} meta-data exists {key}` failed ({})",
            Ended::of(status).describe()
        ),
    }
}

fn meta_data_set(key: &str) -> Result<()> {
    let status = agent(&["meta-data", "set", key, "uploaded"])?;
    if !status.success() {
        bail!(
            "`{AGENT} meta-data set {key}` failed ({}); the chunk is uploaded but not recorded, so a retry would upload it again",
            Ended::of(status).describe()
        );
    }
    Ok(())
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

/// Runs the agent with our stdout and stderr, so its messages show in the job log.
fn agent(args: &[&str]) -> Result<ExitStatus> {
    Command::new(AGENT).args(args).status().with_context(|| {
        format!("running `{AGENT} {}` (treekite upload runs inside a Buildkite job, with the agent on PATH)", args.join(" "))
    })
}
