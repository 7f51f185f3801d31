//! Writing the pipeline directory: what goes in each file. Where the files
//! go first, and how they replace `--out` only when complete, so that
//! neither a failure nor a kill leaves half a pipeline behind, is
//! [`swap`]'s.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use super::{
    ChunkName, DRVMAP_FILE, EXPLAIN_FILE, Explanation, FORMAT_VERSION, MANIFEST_FILE, SUMMARY_FILE,
    agent_json, swap,
};
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

/// What the directory says about why each step runs, waits or is skipped.
pub struct Explained {
    /// `summary.md`'s Markdown.
    pub summary: String,
    /// What `explain.json` holds.
    pub explanation: Explanation,
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

/// Writes `contents` as the directory `out`, replacing what was there
/// only once the new set is complete ([`swap`]). `explained` is asked
/// for its files once the chunks are written, so it can be made (on
/// another thread) while they are; it is returned.
pub fn write(
    out: &Path,
    contents: &Contents,
    explained: impl FnOnce() -> Result<Explained>,
) -> Result<Explained> {
    let mut done = None;
    swap::replace(out, |staging| {
        for phase in contents.phases {
            for (i, chunk) in contents.phase_chunks(phase).iter().enumerate() {
                let name = ChunkName {
                    phase: phase.clone(),
                    number: i as u64 + 1,
                };
                staging.write_file(&name.file_name(), |file| write_chunk(file, chunk))?;
            }
        }
        staging.write_file(DRVMAP_FILE, |file| {
            file.write_all(contents.drvmap.as_bytes())
        })?;
        let explained = done.insert(explained()?);
        staging.write_file(EXPLAIN_FILE, |file| explained.explanation.write(file))?;
        staging.write_file(SUMMARY_FILE, |file| {
            file.write_all(explained.summary.as_bytes())
        })?;
        staging.write_file(MANIFEST_FILE, |file| file.write_all(&manifest(contents)))
    })?;
    Ok(done.expect("written"))
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

/// One step per line: readable, and diffs between builds stay small. The
/// agent reads the file as YAML, so strings go through [`agent_json`].
fn write_chunk(file: &mut impl Write, steps: &[Value]) -> std::io::Result<()> {
    file.write_all(b"{\"steps\": [\n")?;
    for (i, step) in steps.iter().enumerate() {
        agent_json::write(file, step)?;
        file.write_all(if i + 1 < steps.len() { b",\n" } else { b"\n" })?;
    }
    file.write_all(b"]}\n")
}
