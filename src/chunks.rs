//! Finding the chunk files `treekite pipeline` writes: `<phase>-chunk-<n>.json`,
//! one `buildkite-agent pipeline upload` each, numbered from 1 per phase.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::exit::bad_input;

/// One chunk file.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub phase: String,
    pub number: u64,
    pub path: PathBuf,
}

impl Chunk {
    /// The file name, for messages.
    pub fn name(&self) -> String {
        self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }
}

/// Every chunk in `dir`, by phase name, each phase's chunks in ascending
/// numeric order (so 2 comes before 10).
pub fn by_phase(dir: &Path) -> Result<BTreeMap<String, Vec<Chunk>>> {
    check_dir(dir)?;
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut phases: BTreeMap<String, Vec<Chunk>> = BTreeMap::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let file_name = entry.file_name();
        let Some((phase, number)) = file_name.to_str().and_then(parse_name) else {
            continue;
        };
        let chunks = phases.entry(phase.to_owned()).or_default();
        if let Some(other) = chunks.iter().find(|c| c.number == number) {
            return Err(bad_input(format!(
                "{} and {} in {} are both chunk {number} of phase {phase}; remove one",
                other.name(),
                file_name.to_string_lossy(),
                dir.display()
            )));
        }
        chunks.push(Chunk {
            phase: phase.to_owned(),
            number,
            path: entry.path(),
        });
    }
    for chunks in phases.values_mut() {
        chunks.sort_by_key(|c| c.number);
    }
    Ok(phases)
}

/// The phases `treekite pipeline` generated, in upload order, from its
/// `phases.json` (absent in directories written by hand).
pub fn manifest(dir: &Path) -> Result<Option<Vec<String>>> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        phases: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        name: String,
    }
    let path = dir.join(PHASES_FILE);
    let Ok(text) = std::fs::read(&path) else {
        return Ok(None);
    };
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| {
        bad_input(format!(
            "{} is not what `treekite pipeline` writes ({e}); regenerate the directory",
            path.display()
        ))
    })?;
    Ok(Some(manifest.phases.into_iter().map(|p| p.name).collect()))
}

/// Where `treekite pipeline` lists its phases, empty ones included: an empty
/// phase has no chunk file, since Buildkite refuses an upload of no steps.
pub const PHASES_FILE: &str = "phases.json";

/// The chunks of one phase in ascending numeric order: none for a phase
/// generated empty, and bad input for a phase that is not there at all.
pub fn of_phase(dir: &Path, phase: &str) -> Result<Vec<Chunk>> {
    let mut phases = by_phase(dir)?;
    if let Some(chunks) = phases.remove(phase) {
        return Ok(chunks);
    }
    if manifest(dir)?.is_some_and(|names| names.iter().any(|n| n == phase)) {
        return Ok(Vec::new());
    }
    let present: Vec<&str> = phases.keys().map(String::as_str).collect();
    let hint = if present.is_empty() {
        "it holds no chunk files at all; write them with `treekite pipeline --out DIR`".to_owned()
    } else {
        format!("phases there: {}", present.join(", "))
    };
    Err(bad_input(format!(
        "no chunk file for phase `{phase}` in {} (expected {phase}-chunk-1.json, …); {hint}",
        dir.display()
    )))
}

fn check_dir(dir: &Path) -> Result<()> {
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

/// `build-chunk-12.json` → `("build", 12)`.
fn parse_name(name: &str) -> Option<(&str, u64)> {
    let stem = name.strip_suffix(".json")?;
    let (phase, digits) = stem.rsplit_once("-chunk-")?;
    if phase.is_empty() || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((phase, digits.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::parse_name;

    #[test]
    fn names() {
        assert_eq!(parse_name("build-chunk-1.json"), Some(("build", 1)));
        assert_eq!(
            parse_name("pre-release-chunk-10.json"),
            Some(("pre-release", 10))
        );
        assert_eq!(parse_name("build-chunk-.json"), None);
        assert_eq!(parse_name("build-chunk-1a.json"), None);
        assert_eq!(parse_name("-chunk-1.json"), None);
        assert_eq!(parse_name("drvmap.json"), None);
        assert_eq!(parse_name("build-chunk-1.json.tmp"), None);
    }
}
