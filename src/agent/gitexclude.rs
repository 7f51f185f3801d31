//! Keeping links out of `git status`: a link inside a work tree that git
//! would show is listed in the repository's `.git/info/exclude`, never in
//! `.gitignore` (which is tracked, so editing it dirties the checkout).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};

use crate::git;

/// Makes sure git does not show `path` (absolute, its directory existing).
/// Does nothing outside a git work tree or when git already ignores it.
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
    let pattern = pattern?;
    add_line(&repo.exclude_file, &pattern)
        .with_context(|| format!("adding {pattern:?} to {}", repo.exclude_file.display()))
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

/// A gitignore line matching exactly `relative` from the top of the tree.
fn anchored_pattern(relative: &Path) -> Result<String> {
    let text = relative.to_str().context("the link path is not UTF-8")?;
    if text.contains('\n') {
        bail!("the link path {text:?} holds a newline, which .git/info/exclude cannot express");
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
    std::fs::read_to_string(file).is_ok_and(|contents| contents.lines().any(|l| l == line))
}

/// Appends `line` to `file` unless it is there, holding a lock so that many
/// steps doing this at once add it once.
fn add_line(file: &Path, line: &str) -> Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut handle = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(file)?;
    handle.lock()?;
    let mut contents = String::new();
    handle.read_to_string(&mut contents)?;
    if contents.lines().any(|existing| existing == line) {
        return Ok(());
    }
    handle.seek(SeekFrom::End(0))?;
    let separator = if contents.is_empty() || contents.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    handle.write_all(format!("{separator}{line}\n").as_bytes())?;
    Ok(())
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
    }
}
