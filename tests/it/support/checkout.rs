//! A git checkout, and the assertion that treekite's links stay out of
//! `git status` without touching anything tracked.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use super::{repo, stdout_of};

/// A git checkout with one commit (a tracked file and a `.gitignore` that
/// ignores something unrelated), for checking that builds leave it clean.
pub struct Checkout {
    pub dir: TempDir,
}

impl Checkout {
    pub const GITIGNORE: &str = "*.log\n";

    pub fn new() -> Checkout {
        let checkout = Checkout {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(checkout.path().join("README"), "hello\n").unwrap();
        std::fs::write(checkout.path().join(".gitignore"), Self::GITIGNORE).unwrap();
        checkout.git(&["init", "-q"]);
        checkout.commit_all("init");
        checkout
    }

    /// Commits everything in the work tree.
    pub fn commit_all(&self, message: &str) {
        self.git(&["add", "."]);
        self.git(&[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-q",
            "-m",
            message,
        ]);
    }

    /// A clone of `origin` (its `origin` remote), made with `git clone
    /// ARGS` over `file://`, so that `--depth` makes a shallow clone.
    pub fn clone_of(origin: &Checkout, args: &[&str]) -> Checkout {
        let checkout = Checkout {
            dir: tempfile::tempdir().unwrap(),
        };
        let url = format!("file://{}", origin.path().display());
        stdout_of(
            Command::new("git")
                .args(["clone", "-q"])
                .args(args)
                .arg(url)
                .arg(checkout.path()),
        );
        checkout
    }

    /// Writes `text` to `file` and commits it; returns the new commit.
    pub fn commit_file(&self, file: &str, text: &str) -> String {
        std::fs::write(self.path().join(file), text).unwrap();
        self.commit_all(&format!("{file}: {text}"));
        self.head()
    }

    /// The commit HEAD points at.
    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"]).trim().to_owned()
    }

    /// Copies this repository's tracked files under `dirs` into the
    /// checkout, as a fresh clone would have them.
    pub fn copy_tracked(&self, dirs: &[&str]) {
        let listed = stdout_of(
            Command::new("git")
                .arg("-C")
                .arg(repo())
                .args(["ls-files", "-z", "--"])
                .args(dirs),
        );
        for file in listed.split('\0').filter(|f| !f.is_empty()) {
            let target = self.path().join(file);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(repo().join(file), target).unwrap();
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn git(&self, args: &[&str]) -> String {
        stdout_of(Command::new("git").arg("-C").arg(self.path()).args(args))
    }

    /// What git shows: changed and untracked files, not ignored ones.
    pub fn status(&self) -> String {
        self.git(&[
            "status",
            "--porcelain",
            "--untracked-files=all",
            "--ignored=no",
        ])
    }

    /// `.git/info/exclude` as it is now.
    pub fn exclude(&self) -> String {
        std::fs::read_to_string(self.path().join(".git/info/exclude")).unwrap_or_default()
    }

    pub fn gitignore(&self) -> String {
        std::fs::read_to_string(self.path().join(".gitignore")).unwrap()
    }

    /// Asserts that git shows nothing (no change, nothing untracked) and
    /// that `.gitignore` is as committed.
    pub fn assert_clean(&self) {
        assert_eq!(self.status(), "", "git status of {}", self.path().display());
        assert_eq!(self.gitignore(), Self::GITIGNORE, ".gitignore was changed");
    }

    /// Asserts that the checkout is clean ([`Checkout::assert_clean`]) and
    /// that `.git/info/exclude` holds each of `patterns` (the links'
    /// anchored paths) exactly once.
    pub fn assert_excluded_once(&self, patterns: &[impl AsRef<str>]) {
        self.assert_clean();
        let exclude = self.exclude();
        for pattern in patterns.iter().map(AsRef::as_ref) {
            let times = exclude.lines().filter(|l| *l == pattern).count();
            assert_eq!(times, 1, "{pattern:?} in .git/info/exclude:\n{exclude}");
        }
    }
}
