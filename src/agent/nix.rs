//! Calling Nix: `nix-store --realise` and the attribute-path fallback.
//!
//! Nix writes progress and logs to stderr; whatever it prints on stdout is
//! sent to our stderr too, so that treekite's stdout holds only store paths.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::target::AttrPath;
use crate::exit::bad_input;
use crate::process::{Ended, stderr_handle};

const SELECT_NIX: &str = include_str!("select.nix");

/// Realises `drvs` (all at once, so Nix builds them in parallel).
pub fn realise(drvs: &[&str]) -> Result<()> {
    let status = Command::new("nix-store")
        .arg("--realise")
        .args(drvs)
        .stdin(Stdio::null())
        .stdout(stderr_handle()?)
        .status()
        .context("running nix-store (is Nix installed and on PATH?)")?;
    if !status.success() {
        let what = if drvs.len() == 1 {
            drvs[0].to_owned()
        } else {
            format!("{} derivations", drvs.len())
        };
        bail!(
            "building {what} failed ({}); see Nix's log above",
            Ended::of(status).describe()
        );
    }
    Ok(())
}

/// What an attribute path names below `import root {}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Selected {
    drv_path: Option<String>,
    missing: Option<String>,
    at: Option<Vec<String>>,
    #[serde(rename = "type")]
    parent_type: Option<String>,
    not_derivation: Option<String>,
}

/// Evaluates `attr_path` below `import root {}` and instantiates it, giving
/// its (new) `.drv` path. Builds nothing.
pub fn instantiate_attr(root: &Path, attr_path: &AttrPath) -> Result<String> {
    let json = serde_json::to_string(&attr_path.0)?;
    let shown = attr_path;
    let output = Command::new("nix-instantiate")
        .args([
            "--eval",
            "--strict",
            "--json",
            "--read-write-mode",
            "--expr",
            SELECT_NIX,
        ])
        .arg("--argstr")
        .arg("root")
        .arg(root)
        .args(["--argstr", "attrPathJSON", &json])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // `output()` would capture stderr too, hiding the evaluation error
        // that our own message points the reader to.
        .stderr(Stdio::inherit())
        .output()
        .context("running nix-instantiate (is Nix installed and on PATH?)")?;
    if !output.status.success() {
        bail!(
            "evaluating {shown} in {} failed; see Nix's error above",
            root.display()
        );
    }
    let selected: Selected =
        serde_json::from_slice(&output.stdout).context("reading nix-instantiate's answer")?;
    if let Some(name) = selected.missing {
        let at = AttrPath(selected.at.unwrap_or_default());
        let parent_type = selected.parent_type.unwrap_or_default();
        let problem = if parent_type == "set" {
            format!("has no attribute {name:?}")
        } else {
            format!("is a {parent_type}, so it has no attribute {name:?}")
        };
        return Err(bad_input(format!(
            "{at} in {} {problem} (looking up {shown}); check --attr-path and --root",
            root.display()
        )));
    }
    if let Some(kind) = selected.not_derivation {
        return Err(bad_input(format!(
            "{shown} in {} is a {kind}, not a derivation; check --attr-path",
            root.display()
        )));
    }
    selected.drv_path.context("nix-instantiate gave no drvPath")
}
