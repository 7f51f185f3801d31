//! Turning `--drv`/`--attr-path`/`--root` into derivations that exist,
//! re-evaluating a target whose `.drv` was garbage-collected.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::cli::Source;
use crate::drv::{self, Drv};
use crate::exit::bad_input;
use crate::nix;

/// The derivations named by `source`, in order, each read from the store.
/// Everything the caller passed is checked before anything is evaluated.
pub fn resolve(source: &Source) -> Result<Vec<Drv>> {
    for path in &source.drvs {
        drv::check_path(path)?;
    }
    let attr_paths = parse_attr_paths(source)?;
    let root = root_dir(source.root.as_deref())?;
    source
        .drvs
        .iter()
        .enumerate()
        .map(|(i, path)| find(path, attr_paths.get(i), &root))
        .collect()
}

fn find(path: &str, attr_path: Option<&Vec<String>>, root: &Path) -> Result<Drv> {
    if Path::new(path).exists() {
        return Drv::read(path);
    }
    let Some(attr_path) = attr_path else {
        return Err(bad_input(format!(
            "{path} does not exist (garbage-collected since the pipeline was made?) and no --attr-path was given to re-evaluate it; pass --attr-path or regenerate the pipeline"
        )));
    };
    if !root.join("default.nix").is_file() {
        return Err(bad_input(format!(
            "{path} does not exist and {} has no default.nix to re-evaluate {} from; pass the repository root with --root",
            root.display(),
            nix::show_attr_path(attr_path)
        )));
    }
    let fresh = nix::instantiate_attr(root, attr_path)?;
    if fresh != path {
        eprintln!(
            "treekite: {path} no longer exists and {} now evaluates to {fresh}; building that",
            nix::show_attr_path(attr_path)
        );
    }
    Drv::read(&fresh)
}

fn parse_attr_paths(source: &Source) -> Result<Vec<Vec<String>>> {
    if !source.attr_paths.is_empty() && source.attr_paths.len() != source.drvs.len() {
        return Err(bad_input(format!(
            "{} --drv but {} --attr-path; give one --attr-path per --drv, in the same order, or none",
            source.drvs.len(),
            source.attr_paths.len()
        )));
    }
    source
        .attr_paths
        .iter()
        .map(|text| parse_attr_path(text))
        .collect()
}

/// Parses a JSON list of strings, e.g. `["tools","a b"]`.
pub fn parse_attr_path(text: &str) -> Result<Vec<String>> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        bad_input(format!("--attr-path {text:?} is not JSON ({e}); pass a JSON list of strings such as '[\"tools\",\"foo\"]'"))
    })?;
    let names = value.as_array().and_then(|items| {
        items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
    });
    names.ok_or_else(|| {
        bad_input(format!(
            "--attr-path {text:?} is not a list of strings; pass a JSON list such as '[\"tools\",\"foo\"]'"
        ))
    })
}

fn root_dir(root: Option<&Path>) -> Result<PathBuf> {
    let Some(root) = root else {
        return Ok(std::env::current_dir()?);
    };
    root.canonicalize()
        .ok()
        .filter(|dir| dir.is_dir())
        .ok_or_else(|| {
            bad_input(format!(
                "--root {} is not a directory; pass the repository root",
                root.display()
            ))
        })
}
