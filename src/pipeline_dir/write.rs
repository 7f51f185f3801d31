//! Writing the pipeline directory: everything goes to a directory beside
//! `--out` first and replaces it only when complete, so a failure never
//! leaves half a pipeline behind.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

use super::{ChunkName, DRVMAP_FILE, FORMAT_VERSION, MANIFEST_FILE};
use crate::exit::bad_input;

/// What goes into a pipeline directory.
pub struct Contents<'a> {
    /// Phases in upload order, empty ones included.
    pub phases: &'a [String],
    /// Steps of each phase, split into chunks (a phase may be absent:
    /// it has no steps).
    pub chunks: &'a BTreeMap<String, Vec<Vec<Value>>>,
    /// The drvmap as JSON text, written as it is.
    pub drvmap: &'a str,
}

impl Contents<'_> {
    fn phase_chunks(&self, phase: &str) -> &[Vec<Value>] {
        self.chunks.get(phase).map_or(&[], Vec::as_slice)
    }
}

/// Fails early (before evaluating) when `out` cannot become a directory.
pub fn check_out(out: &Path) -> Result<()> {
    if out.exists() && !out.is_dir() {
        return Err(bad_input(format!(
            "--out {} exists and is not a directory; pass a directory",
            out.display()
        )));
    }
    Ok(())
}

/// Writes `contents` as the directory `out`, replacing what was there.
pub fn write(out: &Path, contents: &Contents) -> Result<()> {
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
    let result = write_files(&staging, contents).and_then(|()| replace_dir(&staging, out));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

fn write_files(dir: &Path, contents: &Contents) -> Result<()> {
    std::fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    for phase in contents.phases {
        for (i, chunk) in contents.phase_chunks(phase).iter().enumerate() {
            let name = ChunkName {
                phase: phase.clone(),
                number: i as u64 + 1,
            };
            let path = dir.join(name.file_name());
            write_chunk(&path, chunk).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    std::fs::write(dir.join(DRVMAP_FILE), contents.drvmap)
        .with_context(|| format!("writing {DRVMAP_FILE}"))?;
    std::fs::write(dir.join(MANIFEST_FILE), manifest(contents))
        .with_context(|| format!("writing {MANIFEST_FILE}"))
}

/// The format version and the phases in upload order with their chunk
/// counts.
fn manifest(contents: &Contents) -> Vec<u8> {
    let phases: Vec<Value> = contents
        .phases
        .iter()
        .map(|phase| serde_json::json!({ "name": phase, "chunks": contents.phase_chunks(phase).len() }))
        .collect();
    serde_json::to_vec(&serde_json::json!({ "version": FORMAT_VERSION, "phases": phases }))
        .expect("JSON values serialise")
}

/// One step per line: readable, and diffs between builds stay small.
fn write_chunk(path: &Path, steps: &[Value]) -> Result<()> {
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
