//! Putting a new pipeline directory where `--out` is, so that whatever
//! happens to `treekite pipeline` (a kill at any moment, other runs into
//! the same `--out` at the same time) `--out` is always a complete set, the
//! old one or the new one, and the next run succeeds.
//!
//! Why it is done this way:
//! - Linux cannot rename a directory over one that holds files, and moving
//!   the old one aside first leaves a moment with no `--out` at all (and,
//!   after a kill there, a directory in the way of every later run).
//!   `renameat2(RENAME_EXCHANGE)` swaps the staged directory and `--out` in
//!   one step; the old set is then at the staging name and is removed from
//!   there.
//! - A kill still leaves a staging directory behind: part of a new set
//!   before the swap, part of the old one after it. Every staging name
//!   starts with `.<out>.treekite-`, and each run removes what it finds
//!   under that prefix before it writes.
//! - That clean-up must not remove the staging directory of a run writing
//!   at the same moment, so writing, swapping and cleaning up happen under
//!   a lock: `flock` on the directory that holds `--out`. The kernel drops
//!   the lock when its holder dies, however it dies, so a kill never leaves
//!   it held, and locking the directory itself leaves no lock file beside
//!   `--out` (in a checkout, one more file for `git status`). Evaluation,
//!   the slow part, runs outside the lock, so concurrent runs queue only to
//!   write, and the last to write wins.
//! - On a filesystem without `RENAME_EXCHANGE` (NFS, ZFS before 2.2, and
//!   every system but Linux) the swap is two renames, with the old set
//!   aside at `.<out>.treekite-old` in between. A kill there leaves no
//!   `--out` until the next run, which first puts the old set back.
//!
//! For tests only: `TREEKITE_TEST_KILL_DIR_SWAP_AFTER=N` makes the process
//! kill itself (SIGKILL) right after the Nth filesystem change made here
//! (creating the staging directory, each file written, each rename, each
//! file or directory removed), so that a test can stop it between any two
//! of them.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The test hook described in the module documentation.
const KILL_AFTER_VAR: &str = "TREEKITE_TEST_KILL_DIR_SWAP_AFTER";

/// Replaces the directory `out` with one that `fill` writes, under the
/// lock, so that `out` only ever holds a complete set.
pub fn replace(out: &Path, fill: impl FnOnce(&mut Staging) -> Result<()>) -> Result<()> {
    let place = Place::of(out)?;
    let mut changes = Changes::from_env();
    fs::create_dir_all(&place.parent)
        .with_context(|| format!("creating {}", place.parent.display()))?;
    let _lock = place.lock()?;
    place.recover(&mut changes)?;
    place.remove_leftovers(&mut changes)?;
    let mut staging = Staging {
        dir: place.sibling(&std::process::id().to_string()),
        changes: &mut changes,
    };
    let written = staging.create().and_then(|()| fill(&mut staging));
    let Staging { dir, changes } = staging;
    let swapped = written.and_then(|()| place.swap_in(&dir, changes));
    match swapped {
        Ok(Some(old)) => {
            if let Err(error) = remove_tree(&old, changes) {
                eprintln!(
                    "treekite: warning: could not remove the previous pipeline at {} ({error}); the next run removes it",
                    old.display()
                );
            }
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(error) => {
            let _ = remove_tree(&dir, changes);
            Err(error)
        }
    }
}

/// The directory the new set is written to, beside `--out`.
pub struct Staging<'a> {
    dir: PathBuf,
    changes: &'a mut Changes,
}

impl Staging<'_> {
    fn create(&mut self) -> Result<()> {
        fs::create_dir(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        self.changes.made();
        Ok(())
    }

    /// Writes the file `name` through a buffer, with `write`.
    pub fn write_file(
        &mut self,
        name: &str,
        write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
    ) -> Result<()> {
        let path = self.dir.join(name);
        let written = File::create(&path).and_then(|file| {
            let mut buffered = BufWriter::new(file);
            write(&mut buffered)?;
            buffered.flush()
        });
        written.with_context(|| format!("writing {}", path.display()))?;
        self.changes.made();
        Ok(())
    }
}

/// Where `--out` is, and the names beside it this module uses.
struct Place {
    out: PathBuf,
    parent: PathBuf,
    /// `.<name of out>.treekite-`: the start of every name beside `--out`
    /// that belongs to this module.
    prefix: OsString,
}

impl Place {
    fn of(out: &Path) -> Result<Place> {
        let name = out
            .file_name()
            .with_context(|| format!("--out {} names no directory", out.display()))?;
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut prefix = OsString::from(".");
        prefix.push(name);
        prefix.push(".treekite-");
        Ok(Place {
            out: out.to_owned(),
            parent,
            prefix,
        })
    }

    /// `.<out>.treekite-<suffix>`: a staging directory, or the old set
    /// moved aside (suffix `old`).
    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self.prefix.clone();
        name.push(suffix);
        self.parent.join(name)
    }

    fn aside(&self) -> PathBuf {
        self.sibling("old")
    }

    /// Takes the lock, waiting (and saying so) while another run holds it.
    /// Where the filesystem cannot lock, it warns and goes on: the swap is
    /// still atomic, only runs at the same time may then fail.
    fn lock(&self) -> Result<File> {
        let dir = File::open(&self.parent)
            .with_context(|| format!("opening {} to lock it", self.parent.display()))?;
        let locked = match dir.try_lock() {
            Err(fs::TryLockError::WouldBlock) => {
                eprintln!(
                    "treekite: waiting for another `treekite pipeline` writing into {}",
                    self.parent.display()
                );
                dir.lock()
            }
            Err(fs::TryLockError::Error(error)) => Err(error),
            Ok(()) => Ok(()),
        };
        if let Err(error) = locked {
            eprintln!(
                "treekite: warning: cannot lock {} ({error}); runs writing --out there at the same time may fail",
                self.parent.display()
            );
        }
        Ok(dir)
    }

    /// Puts back the old set that a kill between the two renames of the
    /// fallback swap left aside with no `--out`.
    fn recover(&self, changes: &mut Changes) -> Result<()> {
        let aside = self.aside();
        if exists(&self.out)? || !exists(&aside)? {
            return Ok(());
        }
        fs::rename(&aside, &self.out)
            .with_context(|| format!("putting the previous pipeline {} back", aside.display()))?;
        changes.made();
        Ok(())
    }

    /// Removes what killed runs left beside `--out`: staging directories,
    /// and old sets not yet removed.
    fn remove_leftovers(&self, changes: &mut Changes) -> Result<()> {
        let start = self.prefix.as_bytes();
        let entries = fs::read_dir(&self.parent)
            .with_context(|| format!("reading {}", self.parent.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", self.parent.display()))?;
            if entry.file_name().as_bytes().starts_with(start) {
                let path = entry.path();
                remove_tree(&path, changes).with_context(|| {
                    format!("removing {}, left by an earlier run", path.display())
                })?;
            }
        }
        Ok(())
    }

    /// Moves the complete `staging` to `out`; returns where the old set now
    /// is, if there was one.
    fn swap_in(&self, staging: &Path, changes: &mut Changes) -> Result<Option<PathBuf>> {
        let context = || format!("moving the new pipeline to {}", self.out.display());
        if !exists(&self.out)? {
            fs::rename(staging, &self.out).with_context(context)?;
            changes.made();
            return Ok(None);
        }
        match exchange(staging, &self.out) {
            Ok(()) => {
                changes.made();
                Ok(Some(staging.to_owned()))
            }
            Err(error) if exchange_unsupported(&error) => self
                .swap_by_renames(staging, changes)
                .with_context(context)
                .map(Some),
            Err(error) => Err(error).with_context(context),
        }
    }

    /// The swap where the filesystem cannot exchange: the old set aside,
    /// then the new one in its place.
    fn swap_by_renames(&self, staging: &Path, changes: &mut Changes) -> io::Result<PathBuf> {
        let aside = self.aside();
        fs::rename(&self.out, &aside)?;
        changes.made();
        if let Err(error) = fs::rename(staging, &self.out) {
            let _ = fs::rename(&aside, &self.out);
            return Err(error);
        }
        changes.made();
        Ok(aside)
    }
}

/// Whether `path` is there (a dangling link counts).
fn exists(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error).with_context(|| format!("looking at {}", path.display())),
    }
}

/// Swaps two paths in one step.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::ffi::CString;
    let a = CString::new(a.as_os_str().as_bytes())?;
    let b = CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both are NUL-terminated strings that outlive the call.
    let status = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// What `renameat2` says when the kernel or the filesystem cannot exchange.
fn exchange_unsupported(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::Unsupported
        || matches!(
            error.raw_os_error(),
            Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
        )
}

/// Removes a file, a link (not what it points to) or a directory tree,
/// counting each removal; what is already gone is no error.
fn remove_tree(path: &Path, changes: &mut Changes) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        meta => meta?,
    };
    let removed = if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            remove_tree(&entry?.path(), changes)?;
        }
        fs::remove_dir(path)
    } else {
        fs::remove_file(path)
    };
    match removed {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        other => other?,
    }
    changes.made();
    Ok(())
}

/// Counts the filesystem changes made here, for the test hook.
struct Changes {
    made: u64,
    kill_after: Option<u64>,
}

impl Changes {
    fn from_env() -> Changes {
        Changes {
            made: 0,
            kill_after: std::env::var(KILL_AFTER_VAR)
                .ok()
                .and_then(|n| n.parse().ok()),
        }
    }

    fn made(&mut self) {
        self.made += 1;
        if self.kill_after == Some(self.made) {
            // SAFETY: raising a signal in our own process has no
            // preconditions; SIGKILL ends it here.
            unsafe {
                libc::raise(libc::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uncounted() -> Changes {
        Changes {
            made: 0,
            kill_after: None,
        }
    }

    fn set(dir: &Path, name: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("set"), name).unwrap();
    }

    fn set_in(dir: &Path) -> String {
        fs::read_to_string(dir.join("set")).unwrap()
    }

    /// The swap for filesystems that cannot exchange, and the recovery
    /// after a kill between its two renames.
    #[test]
    fn the_fallback_swap_and_its_recovery() {
        let tmp = tempfile::tempdir().unwrap();
        let place = Place::of(&tmp.path().join("out")).unwrap();
        set(&place.out, "old");
        let staging = place.sibling("1");
        set(&staging, "new");
        let aside = place.swap_by_renames(&staging, &mut uncounted()).unwrap();
        assert_eq!(
            (set_in(&place.out), set_in(&aside)),
            ("new".into(), "old".into())
        );

        // Killed between the renames: the old set is aside, `out` missing.
        fs::rename(&place.out, place.sibling("2")).unwrap();
        place.recover(&mut uncounted()).unwrap();
        assert_eq!(set_in(&place.out), "old");
        assert!(!aside.exists());
    }

    #[test]
    fn leftovers_are_removed_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let place = Place::of(&tmp.path().join("out")).unwrap();
        for kept in ["out", ".out.treekite", ".other.treekite-1", ".out.old"] {
            set(&tmp.path().join(kept), kept);
        }
        for gone in [".out.treekite-12", ".out.treekite-old"] {
            set(&tmp.path().join(gone).join("deeper"), gone);
        }
        std::os::unix::fs::symlink("/", tmp.path().join(".out.treekite-link")).unwrap();
        place.remove_leftovers(&mut uncounted()).unwrap();
        let mut left: Vec<String> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [".other.treekite-1", ".out.old", ".out.treekite", "out"]
        );
    }
}
