//! Reading `.drv` files: which outputs a derivation has and where they go.
//!
//! Output paths come from the derivation itself, never from what `nix-store`
//! prints, which differs between Nix versions and for multi-output
//! derivations.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use nix_derivation::{Derivation, StoreDir};

use crate::exit::bad_input;

/// The Nix store directory (`$NIX_STORE_DIR`, else `/nix/store`).
pub fn store_dir() -> String {
    std::env::var("NIX_STORE_DIR")
        .ok()
        .filter(|dir| !dir.is_empty())
        .unwrap_or_else(|| "/nix/store".to_owned())
}

/// A regular file's contents. It is opened without blocking and looked at
/// before it is read, so that a FIFO or a device named `*.drv` is refused
/// rather than waited on.
fn read_regular(path: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("opening {path}"))?;
    let meta = file.metadata().with_context(|| format!("reading {path}"))?;
    if !meta.is_file() {
        bail!("{path} is not a regular file");
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)
        .with_context(|| format!("reading {path}"))?;
    Ok(bytes)
}

/// The store directory as the `.drv` parser wants it, made once.
fn parsing_store() -> Result<&'static StoreDir> {
    static STORE: OnceLock<Result<StoreDir, String>> = OnceLock::new();
    STORE
        .get_or_init(|| StoreDir::new(store_dir()).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| anyhow::anyhow!("the Nix store directory {}: {e}", store_dir()))
}

/// A path naming a `.drv` directly in the Nix store (checked when parsed;
/// it may have been garbage-collected since).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrvPath(String);

impl DrvPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DrvPath {
    type Err = String;

    fn from_str(path: &str) -> Result<DrvPath, String> {
        let store = store_dir();
        let base = path
            .strip_prefix(&store)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|base| !base.is_empty() && !base.contains('/'));
        let Some(base) = base else {
            return Err(format!(
                "not a path in the Nix store {store}; pass the target's drvPath"
            ));
        };
        if !base.ends_with(".drv") {
            return Err(
                "not a derivation (no .drv suffix); pass the target's drvPath, not its output path"
                    .to_owned(),
            );
        }
        Ok(DrvPath(path.to_owned()))
    }
}

/// The input derivations of the `.drv` at `path`, for walking the graph.
pub fn read_input_drvs(path: &str) -> Result<Vec<String>> {
    Ok(Drv::read(path)?.input_drvs)
}

/// A parsed derivation: its path, its outputs and the derivations it needs.
pub struct Drv {
    pub path: String,
    /// Output name → store path, `None` for outputs only known after building
    /// (floating content-addressed).
    pub outputs: BTreeMap<String, Option<String>>,
    pub input_drvs: Vec<String>,
}

impl Drv {
    /// Reads and parses the `.drv` at `path`.
    pub fn read(path: &str) -> Result<Drv> {
        Drv::parse(path, &read_regular(path)?)
    }

    /// Reads the `.drv` a step names: anything but a valid derivation is
    /// the caller's mistake (bad input), not a failure of Nix.
    pub fn read_named(path: &str) -> Result<Drv> {
        let bytes = read_regular(path).map_err(|e| {
            bad_input(format!(
                "--drv {path} cannot be read as a derivation ({e:#}); pass the drvPath Nix wrote"
            ))
        })?;
        Drv::parse(path, &bytes).map_err(|e| {
            bad_input(format!(
                "--drv {path}: {e:#}; pass the drvPath Nix wrote, or regenerate the pipeline"
            ))
        })
    }

    /// Parses the contents of the `.drv` at `path`.
    pub fn parse(path: &str, bytes: &[u8]) -> Result<Drv> {
        let file_name = Path::new(path)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(path);
        let name = file_name
            .strip_suffix(".drv")
            .and_then(|n| n.split_once('-').map(|(_, name)| name))
            .unwrap_or(file_name);
        let store = parsing_store()?;
        let drv = Derivation::from_aterm_bytes_in(bytes, name, store.clone())
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("{path} is not a valid derivation"))?;
        let outputs = drv
            .outputs()
            .iter()
            .map(|(output, how)| {
                let known = how.path_in(store, drv.name(), output).ok().flatten();
                (output.clone(), known.map(|p| p.to_absolute_path_in(store)))
            })
            .collect();
        let input_drvs = drv
            .input_derivations()
            .keys()
            .map(|p| p.to_absolute_path_in(store))
            .collect();
        Ok(Drv {
            path: path.to_owned(),
            outputs,
            input_drvs,
        })
    }

    /// The output to use: `requested` when given, else `out`, else the only one.
    pub fn pick_output<'a>(&'a self, requested: Option<&'a str>) -> Result<&'a str> {
        let names: Vec<&str> = self.outputs.keys().map(String::as_str).collect();
        let picked = match requested {
            Some(name) if self.outputs.contains_key(name) => Some(name),
            Some(name) => {
                return Err(bad_input(format!(
                    "{} has no output {name:?}; its outputs are {}",
                    self.path,
                    names.join(", ")
                )));
            }
            None if self.outputs.contains_key("out") => Some("out"),
            None if names.len() == 1 => Some(names[0]),
            None => None,
        };
        picked.ok_or_else(|| {
            bad_input(format!(
                "{} has several outputs ({}) and none is `out`; choose one with --output",
                self.path,
                names.join(", ")
            ))
        })
    }

    /// The store path of `output`, known before building.
    pub fn output_path(&self, output: &str) -> Result<&str> {
        self.outputs.get(output).and_then(|p| p.as_deref()).ok_or_else(|| {
            bad_input(format!(
                "output {output:?} of {} is content-addressed and has no path before it is built; treekite cannot link it",
                self.path
            ))
        })
    }
}
