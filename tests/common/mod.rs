//! Shared test helpers: real Nix, real store, a fresh depot per test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use tempfile::TempDir;

/// Environment every Nix call in the tests gets: no binary cache (there is
/// no network here; Nix would stall on it).
pub const NIX_CONFIG: &str = "substituters =\n";

/// Panics with a clear message when Nix is missing: Nix tests never skip.
pub fn require_nix() {
    let ok = Command::new("nix-instantiate").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(ok, "these tests need Nix (nix-instantiate on PATH); run `bash .ci/run` or `apt-get install nix-bin busybox-static`");
}

/// A string unique to this test process and call, to make derivations that
/// no other test (or earlier run) has built.
pub fn nonce() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{}-{}-{}", std::process::id(), nanos, NEXT.fetch_add(1, Ordering::Relaxed))
}

/// `treekite` from this build, with Nix quiet about caches and GC roots kept
/// in `gcroots` (outside any work tree).
pub fn treekite(gcroots: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("treekite").unwrap();
    cmd.env("NIX_CONFIG", NIX_CONFIG).env("TREEKITE_GCROOTS", gcroots);
    cmd
}

/// A command with the test Nix environment.
pub fn nix(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("NIX_CONFIG", NIX_CONFIG);
    cmd
}

/// Runs a command and returns its stdout, panicking with its stderr on failure.
pub fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A temporary directory holding a small depot: files written by the test.
pub struct Depot {
    pub dir: TempDir,
}

impl Depot {
    pub fn new() -> Depot {
        require_nix();
        Depot { dir: tempfile::tempdir().unwrap() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to `relative` (creating directories).
    pub fn write(&self, relative: &str, contents: &str) -> PathBuf {
        let path = self.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// `nix-instantiate` of a Nix expression evaluated in the depot
    /// (`depot` is bound to `import ./. {}`), giving the `.drv` path.
    pub fn instantiate(&self, expr: &str) -> String {
        let wrapped = format!("let depot = import {}/. {{}}; in {expr}", self.path().display());
        let out = stdout_of(nix("nix-instantiate").args(["--expr", &wrapped]).current_dir(self.path()));
        out.trim().to_owned()
    }
}

/// A derivation expression built with `/bin/sh` running `script` (which
/// must write `$out`). `nonce` makes it unique.
pub fn sh_drv(name: &str, script: &str) -> String {
    format!(
        "derivation {{ name = {name:?}; system = builtins.currentSystem; builder = \"/bin/sh\"; args = [ \"-c\" {script:?} ]; nonce = {:?}; }}",
        nonce()
    )
}

/// Deletes a store path (e.g. a `.drv`) as garbage collection would.
pub fn delete_from_store(path: &str) {
    let out = nix("nix-store").args(["--delete", path]).output().unwrap();
    assert!(out.status.success(), "nix-store --delete {path}: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!Path::new(path).exists(), "{path} still exists after nix-store --delete");
}
