//! Writing the pipeline directory: everything goes to a directory beside
//! `--out` first and replaces it only when complete, so a failure never
//! leaves half a pipeline behind.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::model::{Pipeline, Step, jobs};
use crate::chunks::PHASES_FILE;
use crate::exit::bad_input;

/// Fails early (before evaluating) when `--out` cannot become a directory.
pub fn check_out_dir(out: &Path) -> Result<()> {
    if out.exists() && !out.is_dir() {
        return Err(bad_input(format!(
            "--out {} exists and is not a directory; pass a directory",
            out.display()
        )));
    }
    Ok(())
}

pub fn write(out: &Path, pipeline: &Pipeline) -> Result<()> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = out
        .file_name()
        .context("--out names no directory")?
        .to_string_lossy()
        .into_owned();
    let staging = parent.join(format!(".{name}.treekite-{}", std::process::id()));
    let result = write_files(&staging, pipeline).and_then(|()| replace_dir(&staging, out));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

fn write_files(dir: &Path, pipeline: &Pipeline) -> Result<()> {
    std::fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    for phase in &pipeline.phases {
        for (i, chunk) in phase_chunks(pipeline, phase).iter().enumerate() {
            let path = dir.join(format!("{phase}-chunk-{}.json", i + 1));
            write_chunk(&path, chunk).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    std::fs::write(dir.join("drvmap.json"), &pipeline.drvmap).context("writing drvmap.json")?;
    std::fs::write(dir.join(PHASES_FILE), phases_manifest(pipeline)).context("writing phases.json")
}

/// The phases in upload order with their chunk counts (see
/// [`chunks::PHASES_FILE`]).
fn phases_manifest(pipeline: &Pipeline) -> Vec<u8> {
    let phases: Vec<serde_json::Value> = pipeline
        .phases
        .iter()
        .map(|phase| serde_json::json!({ "name": phase, "chunks": phase_chunks(pipeline, phase).len() }))
        .collect();
    serde_json::to_vec(&serde_json::json!({ "phases": phases })).expect("JSON values serialise")
}

fn phase_chunks<'a>(pipeline: &'a Pipeline, phase: &str) -> &'a [Vec<Step>] {
    pipeline.chunks.get(phase).map_or(&[], Vec::as_slice)
}

/// One step per line: readable, and diffs between builds stay small.
fn write_chunk(path: &Path, steps: &[Step]) -> Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    file.write_all(b"{\"steps\": [\n")?;
    for (i, step) in steps.iter().enumerate() {
        serde_json::to_writer(&mut file, step)?;
        file.write_all(if i + 1 < steps.len() { b",\n" } else { b"\n" })?;
    }
    file.write_all(b"]}\n")?;
    file.flush()?;
    Ok(())
}

fn replace_dir(staging: &Path, out: &Path) -> Result<()> {
    if out.exists() {
        let old = staging.with_extension("old");
        std::fs::rename(out, &old)
            .with_context(|| format!("moving the old {} aside", out.display()))?;
        std::fs::rename(staging, out)
            .with_context(|| format!("moving the new pipeline to {}", out.display()))?;
        std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))
    } else {
        std::fs::rename(staging, out)
            .with_context(|| format!("moving the new pipeline to {}", out.display()))
    }
}

/// One line per phase: steps, chunks, skipped.
pub fn summary(pipeline: &Pipeline) -> Vec<String> {
    pipeline
        .phases
        .iter()
        .map(|phase| {
            let chunks = phase_chunks(pipeline, phase);
            let steps: Vec<&Step> = chunks.iter().flatten().collect();
            let jobs: usize = steps.iter().map(|s| jobs(s)).sum();
            let skipped = steps
                .iter()
                .filter(|s| s.get("skip").is_some_and(|v| v != false))
                .count();
            format!(
                "{phase}: {} steps ({jobs} jobs) in {} chunk{}, {skipped} skipped",
                steps.len(),
                chunks.len(),
                if chunks.len() == 1 { "" } else { "s" }
            )
        })
        .collect()
}
