//! The commits whose builds may be the parent, from git: the merge base of
//! HEAD and the base branch (or HEAD's first parent, on the base branch
//! itself) and its first-parent ancestors.
//!
//! Buildkite agents often clone shallowly, so the merge base, or the
//! ancestors after it, may not be there yet: the history is deepened,
//! doubling each time, until they are or the clone is complete. Git is run
//! without a terminal to ask for credentials on.

use std::fmt;
use std::path::Path;
use std::process::Stdio;

use super::Reason;
use crate::git;

/// The first `git fetch --deepen` of a shallow clone; each next one doubles.
const FIRST_DEEPEN: u32 = 32;
/// No deepening beyond this many commits in one fetch: past it the merge
/// base is too far away to be worth it.
const MAX_DEEPEN: u32 = 4096;

/// Where the candidates start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// At the merge base of HEAD and the base branch.
    MergeBase,
    /// At HEAD's first parent: HEAD is on the base branch.
    HeadParent,
}

impl Anchor {
    /// The commit `back` first-parent steps before the anchor, in words:
    /// `merge base of HEAD and main`, `2 commits before the merge base of
    /// HEAD and main`, `HEAD~1 on main`.
    pub fn describe(self, f: &mut fmt::Formatter<'_>, back: usize, base: &str) -> fmt::Result {
        match (self, back) {
            (Anchor::MergeBase, 0) => write!(f, "merge base of HEAD and {base}"),
            (Anchor::MergeBase, 1) => {
                write!(f, "1 commit before the merge base of HEAD and {base}")
            }
            (Anchor::MergeBase, n) => {
                write!(f, "{n} commits before the merge base of HEAD and {base}")
            }
            (Anchor::HeadParent, n) => write!(f, "HEAD~{} on {base}", n + 1),
        }
    }
}

/// The candidate commits, the anchor first, each the first parent of the
/// one before.
#[derive(Debug)]
pub struct Candidates {
    pub anchor: Anchor,
    pub commits: Vec<String>,
}

/// Up to `count` candidates for HEAD in `dir` against `base` on `origin`.
pub fn candidates(dir: &Path, base: &str, count: usize) -> Result<Candidates, Reason> {
    let head = rev_parse(dir, "HEAD").ok_or_else(|| {
        Reason::NotGit(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned()))
    })?;
    fetch(dir, base, None)?;
    let mut deepen = FIRST_DEEPEN;
    loop {
        let found = find(dir, &head, base, count);
        let complete = matches!(&found, Ok((_, true)));
        if complete || !is_shallow(dir) || deepen > MAX_DEEPEN {
            return found.map(|(candidates, _)| candidates);
        }
        fetch(dir, base, Some(deepen))?;
        deepen *= 2;
    }
}

/// The candidates in the history fetched so far, and whether they are all
/// there (`count` of them, or the history really ends).
fn find(dir: &Path, head: &str, base: &str, count: usize) -> Result<(Candidates, bool), Reason> {
    let no_merge_base = || Reason::NoMergeBase {
        base: base.to_owned(),
        shallow: is_shallow(dir),
    };
    let tip = rev_parse(dir, "FETCH_HEAD").ok_or_else(no_merge_base)?;
    let merge_base = git::output(dir, &["merge-base", &tip, head]).ok_or_else(no_merge_base)?;
    let (anchor, start) = if merge_base == head {
        let parent =
            rev_parse(dir, &format!("{head}^1")).ok_or_else(|| Reason::NoParentCommit {
                base: base.to_owned(),
            })?;
        (Anchor::HeadParent, parent)
    } else {
        (Anchor::MergeBase, merge_base)
    };
    let max_count = format!("--max-count={count}");
    let listed =
        git::output(dir, &["rev-list", "--first-parent", &max_count, &start]).unwrap_or_default();
    let commits: Vec<String> = listed.lines().map(str::to_owned).collect();
    let cut_short = commits
        .last()
        .is_some_and(|last| shallow_boundary(dir).iter().any(|c| c == last));
    let complete = commits.len() == count || !cut_short;
    Ok((Candidates { anchor, commits }, complete))
}

/// The full name of a commit, or `None` when there is none.
fn rev_parse(dir: &Path, rev: &str) -> Option<String> {
    git::output(
        dir,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )
}

fn is_shallow(dir: &Path) -> bool {
    git::output(dir, &["rev-parse", "--is-shallow-repository"]).as_deref() == Some("true")
}

/// The commits a shallow clone has without their parents.
fn shallow_boundary(dir: &Path) -> Vec<String> {
    let Some(file) = git::output(dir, &["rev-parse", "--git-path", "shallow"]) else {
        return Vec::new();
    };
    std::fs::read_to_string(dir.join(file))
        .map(|text| text.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// `git fetch origin refs/heads/BASE` (deepening the clone by `deepen`
/// commits), which sets FETCH_HEAD to the base branch's tip. The branch is
/// named in full, so a branch name cannot be taken for an option or a tag.
fn fetch(dir: &Path, base: &str, deepen: Option<u32>) -> Result<(), Reason> {
    let mut command = git::command(dir);
    command
        .args(["fetch", "--quiet", "--no-tags", "--no-recurse-submodules"])
        .args(deepen.map(|n| format!("--deepen={n}")))
        .args(["origin", &format!("refs/heads/{base}")])
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let failed = |detail: String| Reason::Fetch {
        base: base.to_owned(),
        detail,
    };
    let output = command
        .output()
        .map_err(|error| failed(format!("cannot run git: {error}")))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().map(str::trim).rfind(|l| !l.is_empty());
    Err(failed(last.unwrap_or("no message").to_owned()))
}
