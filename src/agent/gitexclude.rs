//! Keeping links out of `git status`: a link inside a work tree that git
//! would show is listed in the repository's `.git/info/exclude`, never in
//! `.gitignore` (which is tracked, so editing it dirties the checkout).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};

use crate::exit::bad_input;
use crate::git;

/// Makes sure git does not show `path` (absolute, its directory existing).
/// Does nothing outside a git work tree or when git already ignores it.
///
/// Bad input, with nothing written, when no exclude line can hide exactly
/// this path (a newline, a trailing carriage return, which git strips, or
/// bytes that are not UTF-8), when git tracks the path (replacing it would
/// dirty the checkout), or when a `.gitignore` re-includes it with a `!`
/// pattern (which beats `.git/info/exclude`).
pub fn hide(path: &Path) -> Result<()> {
    let dir = path.parent().context("a link path has a directory")?;
    if !inside_work_tree(dir) {
        return Ok(());
    }
    let Some(repo) = Repo::find(dir)? else {
        return Ok(());
    };
    let relative = path.strip_prefix(&repo.top).with_context(|| {
        format!(
            "{} is not below the work tree {}",
            path.display(),
            repo.top.display()
        )
    })?;
    if repo.tracks(path)? {
        return Err(bad_input(format!(
            "{} is a file git tracks in {}; a link there would change it and dirty the checkout, so choose a path git does not track",
            path.display(),
            repo.top.display()
        )));
    }
    let pattern = anchored_pattern(relative);
    // A re-run finds the line it added before: no need to ask git again.
    if let Ok(pattern) = &pattern
        && has_line(&repo.exclude_file, pattern)
    {
        return Ok(());
    }
    if repo.ignores(path)? {
        return Ok(());
    }
    let pattern = pattern.map_err(|why| {
        bad_input(format!(
            "{:?} is inside the git work tree {}, and {why}, so it cannot be kept out of `git status`; choose another name",
            path,
            repo.top.display()
        ))
    })?;
    let added = add_line(&repo.exclude_file, &pattern)
        .with_context(|| format!("adding {pattern:?} to {}", repo.exclude_file.display()))?;
    if !repo.ignores(path)? {
        if added {
            remove_line(&repo.exclude_file, &pattern).with_context(|| {
                format!("removing {pattern:?} from {}", repo.exclude_file.display())
            })?;
        }
        return Err(bad_input(format!(
            "{} would show in `git status`: a `!` pattern in a .gitignore re-includes it, and .gitignore beats .git/info/exclude; choose a path it does not re-include",
            path.display()
        )));
    }
    Ok(())
}

/// A cheap test before running git: is there a `.git` above `dir`?
fn inside_work_tree(dir: &Path) -> bool {
    dir.ancestors().any(|d| d.join(".git").exists())
}

struct Repo {
    top: PathBuf,
    exclude_file: PathBuf,
}

impl Repo {
    fn find(dir: &Path) -> Result<Option<Repo>> {
        let output = git::command(dir)
            .args(["rev-parse", "--show-toplevel", "--git-path", "info/exclude"])
            .stderr(Stdio::null())
            .output()
            .context("running git rev-parse (is git installed?)")?;
        if !output.status.success() {
            return Ok(None); // a bare repository or a .git we cannot use
        }
        let text = String::from_utf8(output.stdout).context("git printed a non-UTF-8 path")?;
        let mut lines = text.lines();
        let (Some(top), Some(exclude)) = (lines.next(), lines.next()) else {
            bail!(
                "unexpected output from git rev-parse in {}: {text:?}",
                dir.display()
            );
        };
        let top = PathBuf::from(top).canonicalize()?;
        let exclude_file = dir.join(exclude); // relative paths are relative to `dir`
        Ok(Some(Repo { top, exclude_file }))
    }

    /// Whether git tracks `path` (it is in the index).
    fn tracks(&self, path: &Path) -> Result<bool> {
        let status = git::command(&self.top)
            .args(["ls-files", "--error-unmatch", "--"])
            .arg(path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running git ls-files")?;
        Ok(status.success())
    }

    fn ignores(&self, path: &Path) -> Result<bool> {
        let status = git::command(&self.top)
            .args(["check-ignore", "-q", "--no-index", "--"])
            .arg(path)
            .stderr(Stdio::null())
            .status()
            .context("running git check-ignore")?;
        Ok(status.success())
    }
}

/// A gitignore line matching exactly `relative` from the top of the tree,
/// or why there is none.
fn anchored_pattern(relative: &Path) -> Result<String, &'static str> {
    let text = relative.to_str().ok_or("its name is not UTF-8")?;
    if text.contains('\n') {
        return Err("its name holds a newline, which ends a line of .git/info/exclude");
    }
    if text.ends_with('\r') {
        return Err("its name ends with a carriage return, which git drops from the end of a line");
    }
    let mut pattern = String::from("/");
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    if pattern.ends_with(' ') {
        pattern.insert(pattern.len() - 1, '\\');
    }
    Ok(pattern)
}

/// Whether `file` holds `line` (a missing or unreadable file holds nothing).
fn has_line(file: &Path, line: &str) -> bool {
    // Split on `\n` alone: `lines()` would also take a `\r` off the end.
    std::fs::read_to_string(file).is_ok_and(|contents| contents.split('\n').any(|l| l == line))
}

/// Appends `line` to `file` unless it is there, holding a lock so that many
/// steps doing this at once add it once. Whether it was added.
fn add_line(file: &Path, line: &str) -> Result<bool> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let (mut handle, contents) = locked(file)?;
    if contents.split('\n').any(|existing| existing == line) {
        return Ok(false);
    }
    let separator = if contents.is_empty() || contents.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    handle.seek(SeekFrom::End(0))?;
    handle.write_all(format!("{separator}{line}\n").as_bytes())?;
    Ok(true)
}

/// Takes back a line [`add_line`] added, under the same lock.
fn remove_line(file: &Path, line: &str) -> Result<()> {
    let (mut handle, contents) = locked(file)?;
    let kept: String = contents
        .split_inclusive('\n')
        .filter(|existing| existing.strip_suffix('\n').unwrap_or(existing) != line)
        .collect();
    handle.seek(SeekFrom::Start(0))?;
    handle.set_len(0)?;
    handle.write_all(kept.as_bytes())?;
    Ok(())
}

/// `file` opened for reading and writing (made if missing) under an
/// exclusive lock, with what it holds.
fn locked(file: &Path) -> Result<(std::fs::File, String)> {
    let mut handle = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(file)?;
    handle.lock()?;
    let mut contents = String::new();
    handle.read_to_string(&mut contents)?;
    Ok((handle, contents))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_anchored_and_escaped() {
        assert_eq!(anchored_pattern(Path::new("result")).unwrap(), "/result");
        assert_eq!(
            anchored_pattern(Path::new("a b/[x]*?")).unwrap(),
            "/a b/\\[x]\\*\\?"
        );
        assert_eq!(anchored_pattern(Path::new("trail ")).unwrap(), "/trail\\ ");
        assert!(anchored_pattern(Path::new("new\nline")).is_err());
        assert!(anchored_pattern(Path::new("cr\r")).is_err());
        assert_eq!(anchored_pattern(Path::new("c\rr")).unwrap(), "/c\rr");
    }
}
