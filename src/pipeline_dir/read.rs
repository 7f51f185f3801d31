//! Reading a pipeline directory: its chunk files by phase and its
//! manifest, checked before anything is uploaded or run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;

use super::{CHUNK_PATTERN, ChunkName, Explanation, FORMAT_VERSION, MANIFEST_FILE, SUMMARY_FILE};
use crate::exit::bad_input;

/// One chunk file.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub name: ChunkName,
    pub path: PathBuf,
}

impl Chunk {
    /// The file's name as it is on disk, for messages.
    pub fn file_name(&self) -> String {
        self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// Its steps, as written (not interpolated); bad input when it is not
    /// a pipeline file.
    pub fn steps(&self) -> Result<Vec<Value>> {
        let text = std::fs::read(&self.path)
            .with_context(|| format!("reading {}", self.path.display()))?;
        let mut doc: Value = serde_json::from_slice(&text).map_err(|e| {
            bad_input(format!(
                "{}: not valid JSON ({e}); regenerate the directory",
                self.path.display()
            ))
        })?;
        match doc.get_mut("steps").map(Value::take) {
            Some(Value::Array(steps)) => Ok(steps),
            _ => Err(bad_input(format!(
                "{}: expected {{\"steps\": [...]}}; regenerate the directory",
                self.path.display()
            ))),
        }
    }
}

/// A pipeline directory, listed and checked.
#[derive(Debug)]
pub struct PipelineDir {
    path: PathBuf,
    /// Chunk files by phase, each phase's in ascending numeric order (so 2
    /// comes before 10).
    chunks: BTreeMap<String, Vec<Chunk>>,
    /// The phases in upload order, from the manifest; `None` for a
    /// directory written by hand, which has none.
    manifest: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Manifest {
    /// Absent in directories written before the version was recorded,
    /// which are version 1.
    #[serde(default = "first_version")]
    version: u64,
    phases: Vec<ManifestPhase>,
}

#[derive(Deserialize)]
struct ManifestPhase {
    name: String,
}

fn first_version() -> u64 {
    1
}

impl PipelineDir {
    /// Lists `path`; bad input when it is not a directory, holds two files
    /// for one chunk, or has a manifest this treekite cannot read.
    pub fn open(path: &Path) -> Result<PipelineDir> {
        check_is_dir(path)?;
        Ok(PipelineDir {
            path: path.to_owned(),
            chunks: list_chunks(path)?,
            manifest: read_manifest(path)?,
        })
    }

    /// Every chunk file by phase.
    pub fn chunks(&self) -> &BTreeMap<String, Vec<Chunk>> {
        &self.chunks
    }

    /// Its `explain.json` (see [`Explanation::read`]).
    pub fn explanation(&self) -> Result<Explanation> {
        Explanation::read(&self.path)
    }

    /// Its `summary.md`, when it has one.
    pub fn summary(&self) -> Option<PathBuf> {
        Some(self.path.join(SUMMARY_FILE)).filter(|path| path.is_file())
    }

    /// The chunks of one phase in ascending numeric order: none for a phase
    /// generated empty, and bad input for a phase that is not there at all.
    pub fn phase(&self, phase: &str) -> Result<&[Chunk]> {
        if let Some(chunks) = self.chunks.get(phase) {
            return Ok(chunks);
        }
        if self
            .manifest
            .as_ref()
            .is_some_and(|names| names.iter().any(|n| n == phase))
        {
            return Ok(&[]);
        }
        let present: Vec<&str> = self.chunks.keys().map(String::as_str).collect();
        let hint = if present.is_empty() {
            "it holds no chunk files at all; write them with `treekite pipeline --out DIR`"
                .to_owned()
        } else {
            format!("phases there: {}", present.join(", "))
        };
        let first = ChunkName {
            phase: phase.to_owned(),
            number: 1,
        };
        Err(bad_input(format!(
            "no chunk file for phase `{phase}` in {} (expected {}, …); {hint}",
            self.path.display(),
            first.file_name()
        )))
    }

    /// Every phase, in upload order: the manifest's, or for a directory
    /// without one `build` first, then `release`, then the others by name.
    pub fn phases(&self) -> Result<Vec<String>> {
        if let Some(names) = &self.manifest {
            return Ok(names.clone());
        }
        if self.chunks.is_empty() {
            return Err(bad_input(format!(
                "{} holds no {CHUNK_PATTERN} files; write them with `treekite pipeline --out DIR`",
                self.path.display()
            )));
        }
        let mut names: Vec<String> = self.chunks.keys().cloned().collect();
        names.sort_by_key(|name| (name != "build", name != "release"));
        Ok(names)
    }
}

fn check_is_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Err(bad_input(format!(
            "pipeline directory {} does not exist; write it with `treekite pipeline --out DIR`",
            dir.display()
        )));
    }
    if !dir.is_dir() {
        return Err(bad_input(format!(
            "{} is not a directory; pass the directory `treekite pipeline --out` wrote",
            dir.display()
        )));
    }
    Ok(())
}

fn list_chunks(dir: &Path) -> Result<BTreeMap<String, Vec<Chunk>>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut phases: BTreeMap<String, Vec<Chunk>> = BTreeMap::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().and_then(ChunkName::parse) else {
            continue;
        };
        let chunks = phases.entry(name.phase.clone()).or_default();
        if let Some(other) = chunks.iter().find(|c| c.name.number == name.number) {
            return Err(bad_input(format!(
                "{} and {} in {} are both chunk {} of phase {}; remove one",
                other.file_name(),
                file_name.to_string_lossy(),
                dir.display(),
                name.number,
                name.phase
            )));
        }
        chunks.push(Chunk {
            name,
            path: entry.path(),
        });
    }
    for chunks in phases.values_mut() {
        chunks.sort_by_key(|c| c.name.number);
    }
    Ok(phases)
}

fn read_manifest(dir: &Path) -> Result<Option<Vec<String>>> {
    let path = dir.join(MANIFEST_FILE);
    let Ok(text) = std::fs::read(&path) else {
        return Ok(None);
    };
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| {
        bad_input(format!(
            "{} is not what `treekite pipeline` writes ({e}); regenerate the directory",
            path.display()
        ))
    })?;
    if manifest.version > FORMAT_VERSION {
        return Err(bad_input(format!(
            "{} was written by a newer treekite (directory format {}, this one reads up to {FORMAT_VERSION}); use the same treekite version for `treekite pipeline` and the steps",
            dir.display(),
            manifest.version
        )));
    }
    Ok(Some(
        manifest
            .phases
            .into_iter()
            .map(|phase| phase.name)
            .collect(),
    ))
}
