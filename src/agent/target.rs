//! What a step names (`--drv`, `--attr-path`, `--root`) turned into
//! derivations that exist, re-evaluating a target whose `.drv` was
//! garbage-collected.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Result;

use super::drv::{Drv, DrvPath};
use super::gcroot::NixRoots;
use super::nix;
use crate::exit::bad_input;

/// A target as a step names it.
#[derive(Debug, Clone)]
pub struct TargetRef {
    pub drv: DrvPath,
    /// Where the target is below `import ROOT {}`: used only when the
    /// `.drv` no longer exists.
    pub attr_path: Option<AttrPath>,
}

/// The targets of one step and the repository they come from.
#[derive(Debug, Clone)]
pub struct Targets {
    pub list: Vec<TargetRef>,
    /// Repository root holding the depot's `default.nix`; the current
    /// directory when `None`.
    pub root: Option<PathBuf>,
}

impl Targets {
    /// The derivations, in order, each read from the store, or made anew
    /// from its attribute path when it is missing or its index is in
    /// `again` (Nix lost it); a `.drv` made anew is rooted in `roots`. The
    /// root directory is checked before anything is evaluated.
    pub fn resolve(&self, roots: &mut NixRoots, again: &[usize]) -> Result<Vec<Drv>> {
        let root = root_dir(self.root.as_deref())?;
        self.list
            .iter()
            .enumerate()
            .map(|(i, target)| find(target, &root, roots, again.contains(&i)))
            .collect()
    }
}

/// An attribute path: names locating a target below `import ROOT {}`,
/// given on the command line as a JSON list of strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath(pub Vec<String>);

impl FromStr for AttrPath {
    type Err = String;

    /// Parses a JSON list of strings, e.g. `["tools","a b"]`.
    fn from_str(text: &str) -> Result<AttrPath, String> {
        const EXAMPLE: &str = r#"pass a JSON list of strings such as '["tools","foo"]'"#;
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON ({e}); {EXAMPLE}"))?;
        let names = value.as_array().and_then(|items| {
            items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        });
        let names = names.ok_or_else(|| format!("not a list of strings; {EXAMPLE} (JSON)"))?;
        // Nix strings end at a NUL: the name would be cut, and another
        // attribute built.
        if let Some(name) = names.iter().find(|name| name.contains('\0')) {
            return Err(format!(
                "the name {name:?} holds a NUL character, which no Nix attribute name can"
            ));
        }
        Ok(AttrPath(names))
    }
}

impl fmt::Display for AttrPath {
    /// The path as a reader would write it, quoting odd names.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("the top level");
        }
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            let plain = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-'".contains(c))
                && !name.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '\'');
            if plain {
                f.write_str(name)?;
            } else {
                f.write_str(&serde_json::to_string(name).map_err(|_| fmt::Error)?)?;
            }
        }
        Ok(())
    }
}

fn find(target: &TargetRef, root: &Path, roots: &mut NixRoots, again: bool) -> Result<Drv> {
    let path = target.drv.as_str();
    if !again && Path::new(path).exists() {
        match Drv::read_named(path) {
            Ok(drv) => return Ok(drv),
            // Collected while it was read: made again below.
            Err(_) if !Path::new(path).exists() && target.attr_path.is_some() => {}
            Err(error) => return Err(error),
        }
    }
    let Some(attr_path) = &target.attr_path else {
        return Err(bad_input(format!(
            "{path} does not exist (garbage-collected since the pipeline was made?) and no --attr-path was given to re-evaluate it; pass --attr-path or regenerate the pipeline"
        )));
    };
    if !root.join("default.nix").is_file() {
        return Err(bad_input(format!(
            "{path} does not exist and {} has no default.nix to re-evaluate {attr_path} from; pass the repository root with --root",
            root.display(),
        )));
    }
    let fresh = nix::instantiate_attr(root, attr_path, &roots.next())?;
    if fresh != path {
        eprintln!(
            "treekite: {path} no longer exists and {attr_path} now evaluates to {fresh}; building that"
        );
    }
    Drv::read(&fresh)
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

#[cfg(test)]
mod tests {
    use super::AttrPath;

    #[test]
    /// (Malformed paths are checked through the command line, in tests/.)
    fn attr_paths_parse_and_show() {
        let path: AttrPath = r#"["tools","a b","x"]"#.parse().unwrap();
        assert_eq!(path.to_string(), r#"tools."a b".x"#);
        assert_eq!(AttrPath(Vec::new()).to_string(), "the top level");
    }
}
