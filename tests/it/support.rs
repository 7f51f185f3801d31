//! What every test module shares, defined once: running treekite, the
//! assertions on its output contract, files, and (in the submodules) Nix
//! and git. Real Nix and the real store: no test skips when Nix is
//! missing, it fails saying so.

mod buildkite;
mod checkout;
mod deps;
mod example_build;
mod nix;

pub use buildkite::*;
pub use checkout::Checkout;
pub use deps::Deps;
pub use example_build::{ExampleBuild, example_pipeline};
pub use nix::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use assert_cmd::assert::Assert;
use serde_json::Value;

/// `treekite` from this build, with the tests' Nix settings. A plain
/// `std::process::Command`, so it can be spawned as well as run;
/// `assert_cmd::prelude::*` gives it `.assert()`.
pub fn treekite() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_treekite"));
    cmd.env("NIX_CONFIG", NIX_CONFIG);
    cmd
}

/// Builder methods for a [`treekite`] command.
pub trait TreekiteCommand {
    /// Keeps treekite's default GC roots in `dir` (`TREEKITE_GCROOTS`),
    /// outside any work tree unless the test wants it there.
    fn gcroots(&mut self, dir: impl AsRef<Path>) -> &mut Self;
}

impl TreekiteCommand for Command {
    fn gcroots(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.env("TREEKITE_GCROOTS", dir.as_ref())
    }
}

/// The text a finished command wrote (lossy UTF-8), from an `Output` or an
/// assert_cmd `Assert`.
pub trait Texts {
    fn stdout_text(&self) -> String;
    fn stderr_text(&self) -> String;
}

impl Texts for Output {
    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

impl Texts for Assert {
    fn stdout_text(&self) -> String {
        self.get_output().stdout_text()
    }

    fn stderr_text(&self) -> String {
        self.get_output().stderr_text()
    }
}

/// Runs a command and returns its stdout, panicking with its stderr on failure.
pub fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        out.stderr_text()
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command to the end, like `Command::output`, and also returns
/// its peak resident memory in KiB: the largest of the command's and of
/// every descendant it waited for (`wait4`'s `ru_maxrss`). Measured by the
/// kernel for that process alone, so tests running beside it do not count.
#[expect(clippy::zombie_processes, reason = "wait4 below reaps the child")]
pub fn output_and_peak_rss(cmd: &mut Command) -> (Output, u64) {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.unwrap().read_to_end(&mut bytes).unwrap();
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let mut status = 0;
    // SAFETY: plain out-parameters for wait4; `child` is not waited for
    // again (std does not wait for a dropped `Child`).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = i32::try_from(child.id()).unwrap();
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    let output = Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    (output, u64::try_from(usage.ru_maxrss).unwrap())
}

/// Asserts treekite's error contract: exit `code`, nothing on stdout, and
/// a last stderr line `treekite: error: …` holding every string in
/// `mentions`. Returns that line.
pub fn assert_error(output: &Output, code: i32, mentions: &[&str]) -> String {
    let stderr = output.stderr_text();
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit status; stderr:\n{stderr}"
    );
    assert_eq!(
        output.stdout_text(),
        "",
        "stdout must be empty; stderr:\n{stderr}"
    );
    let line = stderr.lines().last().unwrap_or_default().to_owned();
    assert!(line.starts_with("treekite: error: "), "stderr: {stderr}");
    for wanted in mentions {
        assert!(line.contains(wanted), "{line:?} should mention {wanted:?}");
    }
    line
}

/// Asserts treekite's bad-input contract: exit 2, nothing on stdout, and
/// stderr one line `treekite: error: …` holding every string in
/// `mentions`. Returns that line.
pub fn assert_bad_input(output: &Output, mentions: &[&str]) -> String {
    let stderr = output.stderr_text();
    assert_eq!(
        stderr.lines().count(),
        1,
        "one stderr line expected, got:\n{stderr}"
    );
    assert_error(output, 2, mentions)
}

/// Asserts a build or evaluation failure: exit 1, nothing on stdout, and a
/// last stderr line `treekite: error: …` holding every string in `mentions`
/// (Nix's log may come before it).
pub fn assert_failed(output: &Output, mentions: &[&str]) -> String {
    assert_error(output, 1, mentions)
}

/// The paths in `dir` (none when it does not exist), sorted.
pub fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(read) => read.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    found.sort();
    found
}

/// A file's text, panicking with its path when it cannot be read.
pub fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A file's lines; none when it does not exist.
pub fn read_lines(path: impl AsRef<Path>) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

pub fn read_json(path: impl AsRef<Path>) -> Value {
    let path = path.as_ref();
    serde_json::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Copies the files git tracks below `dir` of this repository (`"."` for
/// all of them) into `to`, as a fresh clone would have them there: build
/// output and other untracked files stay behind.
pub fn copy_tracked(dir: &str, to: &Path) {
    let from = repo().join(dir);
    let listed = stdout_of(
        Command::new("git")
            .arg("-C")
            .arg(&from)
            .args(["ls-files", "-z"]),
    );
    for file in listed.split('\0').filter(|f| !f.is_empty()) {
        let target = to.join(file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(from.join(file), &target)
            .unwrap_or_else(|e| panic!("copying {dir}/{file} to {}: {e}", target.display()));
    }
}

/// Writes an executable file (a stand-in program), creating its directory.
pub fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The steps of every `<phase>-chunk-<n>.json` in a pipeline directory, by
/// file name.
pub fn chunks(dir: &Path) -> BTreeMap<String, Vec<Value>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.contains("-chunk-"))
        .map(|name| {
            let steps = read_json(dir.join(&name))["steps"]
                .as_array()
                .unwrap_or_else(|| panic!("{name} has no steps"))
                .clone();
            (name, steps)
        })
        .collect()
}

/// The progress lines `treekite run` writes to stderr when it is not a
/// terminal (`started  LABEL`, `passed  LABEL  (…)`), as (event, label).
pub fn progress(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter_map(|line| {
            let (event, rest) = line.trim_start().split_once("  ")?;
            Some((event.to_owned(), rest.split("  (").next()?.to_owned()))
        })
        .collect()
}
