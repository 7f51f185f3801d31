//! GC-root symlinks: a link to a store path that Nix's garbage collector
//! respects, wherever the link lives.
//!
//! Nix learns about a link through an *indirect root*, a symlink under
//! `$NIX_STATE_DIR/gcroots` pointing to the link. A root only protects a
//! path that is valid when the collector looks at it, and a collector that
//! is already running has looked: a link made before the build (to a path
//! not yet built), or after it, can lose the output to a collection that
//! overlaps. Only Nix can tell a running collector about a new root (its
//! temporary roots go to the collector itself), so the output is rooted by
//! Nix: `nix-store --realise --add-root` makes [`NixRoots`] while its build
//! still holds the output. treekite then makes its own link where the
//! caller wants it, pointing at a path that is valid by now, registers it
//! (the same file `nix-store --add-root` makes), and only then drops Nix's
//! link: from before the build until the end, something roots the output.

use std::io;
use std::os::unix::fs::{OpenOptionsExt, symlink};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix_derivation::{HashAlgorithm, hash_bytes, nixbase32};

use super::gitexclude;
use crate::exit::bad_input;
use crate::state::{self, env_path};

/// Where links go when the caller names none: outside any work tree.
///
/// The result is absolute: Nix resolves the indirect-root registration
/// against its own directory, so a relative link path would register
/// nothing (and Nix would delete the registration as stale).
pub fn default_dir() -> Result<PathBuf> {
    if let Some(dir) = env_path("TREEKITE_GCROOTS") {
        return std::path::absolute(&dir)
            .with_context(|| format!("making TREEKITE_GCROOTS={} absolute", dir.display()));
    }
    let state = state::home().context(
        "no TREEKITE_GCROOTS, nor an absolute XDG_STATE_HOME or HOME; set TREEKITE_GCROOTS",
    )?;
    Ok(state.join("treekite/gcroots"))
}

/// The default link name for `output` of `drv_path`: its hash and name, so
/// one derivation always maps to one link.
pub fn default_name(drv_path: &str, output: &str) -> String {
    let base = drv_path.rsplit('/').next().unwrap_or(drv_path);
    let stem = base.strip_suffix(".drv").unwrap_or(base);
    if output == "out" {
        stem.to_owned()
    } else {
        format!("{stem}-{output}")
    }
}

/// Absolute form of a link path whose directory must already exist.
pub fn absolute_link(link: &Path) -> Result<PathBuf> {
    let name = link.file_name().ok_or_else(|| {
        bad_input(format!(
            "--out-link {} does not name a file",
            link.display()
        ))
    })?;
    let parent = match link.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = parent.canonicalize().map_err(|_| {
        bad_input(format!(
            "directory {} of --out-link does not exist; create it first",
            parent.display()
        ))
    })?;
    if !dir.is_dir() {
        return Err(bad_input(format!(
            "{} (directory of --out-link) is not a directory",
            dir.display()
        )));
    }
    let link = dir.join(name);
    // Only a previous link is ours to replace. Anything else is the user's:
    // renaming over a file loses it, and a directory would make the build
    // fail only after its name went into .git/info/exclude, hiding it.
    if let Ok(meta) = std::fs::symlink_metadata(&link)
        && !meta.file_type().is_symlink()
    {
        let what = if meta.is_dir() {
            "is a directory"
        } else {
            "exists and is not a symlink"
        };
        return Err(bad_input(format!(
            "--out-link {} {what}; treekite replaces only symlinks (earlier results), so name a path that is free or a link",
            link.display()
        )));
    }
    Ok(link)
}

/// Gets the place of `link` (absolute) ready before anything is built:
/// its directory made, and the link kept out of `git status` before it
/// exists when it lands in a work tree.
pub fn prepare(link: &Path) -> Result<()> {
    let dir = link.parent().context("a link path has a directory")?;
    // Made before asking git about it: git cannot look into a directory
    // that does not exist yet, so the link would go unexcluded.
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating {} for GC-root links", dir.display()))?;
    gitexclude::hide(link)
}

/// Points `link` (absolute, [`prepare`]d) at `target`, a valid store path,
/// atomically, and registers it as an indirect GC root. Concurrent calls
/// for one link all succeed.
pub fn place(link: &Path, target: &str) -> Result<()> {
    replace_symlink(link, Path::new(target))
        .with_context(|| format!("making GC-root link {}", link.display()))?;
    register(link)
}

/// Removes a link with its registration.
fn remove(link: &Path) {
    let _ = std::fs::remove_file(link);
    for dir in registration_dirs() {
        let entry = dir.join(registration_name(link));
        if std::fs::read_link(&entry).is_ok_and(|to| to == link) {
            let _ = std::fs::remove_file(entry);
        }
    }
}

fn register(link: &Path) -> Result<()> {
    let name = registration_name(link);
    let mut last_error = None;
    for dir in registration_dirs() {
        let entry = dir.join(&name);
        if std::fs::read_link(&entry).is_ok_and(|to| to == link) {
            return Ok(());
        }
        match replace_symlink(&entry, link) {
            Ok(()) => return Ok(()),
            Err(e) => last_error = Some((entry, e)),
        }
    }
    let (entry, error) = last_error.expect("at least one registration directory");
    Err(error).with_context(|| {
        format!(
            "registering {} as a GC root at {} (is the Nix state directory writable for this user?)",
            link.display(),
            entry.display()
        )
    })
}

/// Root-owned installs let us write to `gcroots/auto` (where Nix itself
/// puts indirect roots); daemon installs give each user `per-user/$USER`.
fn registration_dirs() -> Vec<PathBuf> {
    let state = env_path("NIX_STATE_DIR").unwrap_or_else(|| PathBuf::from("/nix/var/nix"));
    let mut dirs = vec![state.join("gcroots/auto")];
    if let Some(user) = std::env::var_os("USER").filter(|u| !u.is_empty()) {
        dirs.push(state.join("gcroots/per-user").join(user));
    }
    dirs
}

/// Nix names an indirect root after the base-32 SHA-1 of the link's path.
fn registration_name(link: &Path) -> String {
    let hash = hash_bytes(HashAlgorithm::Sha1, link.as_os_str().as_encoded_bytes());
    nixbase32::encode(hash.digest_as_bytes())
}

/// Makes `link` point at `target`, replacing whatever is there in one
/// rename so readers never see it missing.
fn replace_symlink(link: &Path, target: &Path) -> io::Result<()> {
    let dir = link.parent().unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
    }
    // Not named after the link: a link name near the 255-byte limit (a
    // long derivation name) would make the temporary name too long.
    let temp = dir.join(format!(".treekite-{}-{}.tmp", std::process::id(), unique()));
    symlink(target, &temp)?;
    std::fs::rename(&temp, link).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}

/// Holds Nix's garbage-collector lock shared, as Nix's own clients do to
/// keep a collection from starting; waits while one runs (it holds the
/// lock exclusively from its first look at the roots to its last
/// deletion). `None` when this user cannot open the lock (a daemon's
/// store, whose collections run in the daemon): then only Nix's roots
/// protect the outputs.
pub fn hold_off_collection() -> Option<std::fs::File> {
    let state = env_path("NIX_STATE_DIR").unwrap_or_else(|| PathBuf::from("/nix/var/nix"));
    // Made as Nix makes it when no collection has run yet, if we may.
    let path = state.join("gc.lock");
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .or_else(|_| std::fs::File::open(&path))
        .ok()?;
    lock.lock_shared().ok()?;
    Some(lock)
}

/// Roots that Nix makes for a build (outputs, a re-evaluated `.drv`) in a
/// directory of their own, outside any work tree, until treekite's links
/// have taken over. Dropping it removes them.
pub struct NixRoots {
    dir: PathBuf,
    made: u64,
}

impl NixRoots {
    pub fn new() -> Result<NixRoots> {
        let base = std::env::temp_dir();
        let dir = base.join(format!(
            "treekite-roots-{}-{}-{}",
            std::process::id(),
            unique(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        std::fs::create_dir(&dir)
            .with_context(|| format!("creating {} for the build's GC roots", dir.display()))?;
        Ok(NixRoots { dir, made: 0 })
    }

    /// A fresh path for `--add-root` (Nix adds `-2`, `-3`… for later
    /// derivations and `-OUTPUT` for outputs other than `out`).
    pub fn next(&mut self) -> PathBuf {
        self.made += 1;
        self.dir.join(format!("root{}", self.made))
    }
}

impl Drop for NixRoots {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                remove(&entry.path());
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
