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

/// One output of one derivation, to realise.
pub struct Wanted<'a> {
    pub drv: &'a str,
    pub output: &'a str,
}

/// Realises `wanted` (all at once, so Nix builds them in parallel), each
/// output rooted by Nix under `root` (see [`super::gcroot`]), or not at
/// all when `root` is `None`.
pub fn realise(wanted: &[Wanted], root: Option<&Path>) -> Result<()> {
    let mut command = Command::new("nix-store");
    command.arg("--realise");
    for w in wanted {
        command.arg(format!("{}!{}", w.drv, w.output));
    }
    if let Some(root) = root {
        // `--indirect` is what Nix before 2.4 needs for a root outside
        // its gcroots directory; later versions accept and ignore it.
        command.arg("--add-root").arg(root).arg("--indirect");
    }
    let drvs: Vec<&str> = wanted.iter().map(|w| w.drv).collect();
    let status = command
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

/// Which of `paths` the store does not hold as valid paths (now).
pub fn invalid(paths: &[&str]) -> Result<Vec<String>> {
    let output = Command::new("nix-store")
        .args(["--check-validity", "--print-invalid"])
        .args(paths)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running nix-store (is Nix installed and on PATH?)")?;
    if !output.status.success() {
        bail!(
            "nix-store --check-validity failed ({})",
            Ended::of(output.status).describe()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// What an attribute path names below `import root {}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Selected {
    missing: Option<String>,
    at: Option<Vec<String>>,
    #[serde(rename = "type")]
    parent_type: Option<String>,
    not_derivation: Option<String>,
}

/// Evaluates `attr_path` below `import root {}` and instantiates it, giving
/// its (new) `.drv` path, which Nix roots at `drv_root` so that no garbage
/// collection can take it before it is built. Builds nothing.
pub fn instantiate_attr(root: &Path, attr_path: &AttrPath, drv_root: &Path) -> Result<String> {
    let output = select(root, attr_path)
        .arg("--add-root")
        .arg(drv_root)
        .arg("--indirect")
        .args(["--arg", "instantiate", "true"])
        .output()
        .context("running nix-instantiate (is Nix installed and on PATH?)")?;
    if !output.status.success() {
        bail!(
            "evaluating {attr_path} in {} failed; see Nix's error above",
            root.display()
        );
    }
    // Nix prints the root it made: the link to the .drv.
    let printed = String::from_utf8_lossy(&output.stdout);
    match printed.lines().next() {
        Some(link) => {
            let drv = std::fs::read_link(link.trim())
                .with_context(|| format!("reading the root {link} nix-instantiate made"))?;
            Ok(drv.to_string_lossy().into_owned())
        }
        // Nothing to instantiate: say what is there instead.
        None => Err(not_found(root, attr_path)),
    }
}

/// `nix-instantiate` of select.nix for `attr_path` below `import root {}`,
/// its stdout captured. Its stderr is ours: `output()` would capture it
/// too, hiding the evaluation error that our own message points to.
fn select(root: &Path, attr_path: &AttrPath) -> Command {
    let json = serde_json::to_string(&attr_path.0).expect("strings serialise");
    let mut command = Command::new("nix-instantiate");
    command
        .args(["--expr", SELECT_NIX])
        .arg("--argstr")
        .arg("root")
        .arg(root)
        .args(["--argstr", "attrPathJSON", &json])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

/// Why `attr_path` names no derivation below `import root {}`: evaluated
/// again, as data, for the message.
fn not_found(root: &Path, attr_path: &AttrPath) -> anyhow::Error {
    let answer = select(root, attr_path)
        .args(["--eval", "--strict", "--json"])
        .output()
        .context("running nix-instantiate (is Nix installed and on PATH?)")
        .and_then(|output| {
            serde_json::from_slice::<Selected>(&output.stdout)
                .context("reading nix-instantiate's answer")
        });
    let selected = match answer {
        Ok(selected) => selected,
        Err(error) => return error,
    };
    let shown = attr_path;
    if let Some(name) = selected.missing {
        let at = AttrPath(selected.at.unwrap_or_default());
        let parent_type = selected.parent_type.unwrap_or_default();
        let problem = if parent_type == "set" {
            format!("has no attribute {name:?}")
        } else {
            format!("is a {parent_type}, so it has no attribute {name:?}")
        };
        return bad_input(format!(
            "{at} in {} {problem} (looking up {shown}); check --attr-path and --root",
            root.display()
        ));
    }
    let kind = selected
        .not_derivation
        .unwrap_or_else(|| "value".to_owned());
    bad_input(format!(
        "{shown} in {} is a {kind}, not a derivation; check --attr-path",
        root.display()
    ))
}
