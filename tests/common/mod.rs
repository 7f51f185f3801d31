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
    let ok = Command::new("nix-instantiate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "these tests need Nix (nix-instantiate on PATH); run `bash .ci/run` or `apt-get install nix-bin busybox-static`"
    );
}

/// A string unique to this test process and call, to make derivations that
/// no other test (or earlier run) has built.
pub fn nonce() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}-{}-{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `treekite` from this build, with Nix quiet about caches and GC roots kept
/// in `gcroots` (outside any work tree).
pub fn treekite(gcroots: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("treekite").unwrap();
    cmd.env("NIX_CONFIG", NIX_CONFIG)
        .env("TREEKITE_GCROOTS", gcroots);
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
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A temporary directory holding a small depot: files written by the test.
pub struct Depot {
    pub dir: TempDir,
}

impl Depot {
    pub fn new() -> Depot {
        require_nix();
        Depot {
            dir: tempfile::tempdir().unwrap(),
        }
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
        let wrapped = format!(
            "let depot = import {}/. {{}}; in {expr}",
            self.path().display()
        );
        let out = stdout_of(
            nix("nix-instantiate")
                .args(["--expr", &wrapped])
                .current_dir(self.path()),
        );
        // Nix prints `X.drv!dev` when an expression selects an output other
        // than the first; the path is what comes before.
        out.trim().split('!').next().unwrap().to_owned()
    }
}

/// A derivation expression built with `/bin/sh` running `script` (which
/// must write `$out`). `nonce` makes it unique. Strings go through
/// [`nix_str`]: Rust's `{:?}` would let `${…}` in a script be interpolated
/// by Nix.
pub fn sh_drv(name: &str, script: &str) -> String {
    format!(
        "derivation {{ name = {}; system = builtins.currentSystem; builder = \"/bin/sh\"; args = [ \"-c\" {} ]; nonce = {}; }}",
        nix_str(name),
        nix_str(script),
        nix_str(&nonce())
    )
}

/// Deletes a store path (e.g. a `.drv`) as garbage collection would.
pub fn delete_from_store(path: &str) {
    let out = nix("nix-store").args(["--delete", path]).output().unwrap();
    assert!(
        out.status.success(),
        "nix-store --delete {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !Path::new(path).exists(),
        "{path} still exists after nix-store --delete"
    );
}

/// A Rust string as a Nix string literal: every character that means
/// something inside `"…"` is escaped (`"`, `\`, `$` — so `${` stays
/// literal — and control characters), everything else is kept as is.
pub fn nix_str(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A depot `default.nix`: `{ ... }: let <helpers> in { <body> }`, where the
/// body may use
/// - `sh NAME SCRIPT`: a derivation whose `/bin/sh -c SCRIPT` writes `$out`,
/// - `drv ATTRS`: the same from a full attribute set (`outputs`, …),
/// - `script NAME TEXT`: an executable file holding TEXT,
/// - `binDir NAME TEXT`: a directory whose `bin/NAME` holds TEXT.
///
/// Every derivation carries one fresh nonce, so the depot builds for real.
pub fn depot_nix(body: &str) -> String {
    format!(
        r#"{{ ... }}:
let
  nonce = {nonce};
  drv = attrs: derivation ({{ system = builtins.currentSystem; builder = "/bin/sh"; inherit nonce; }} // attrs);
  sh = name: script: drv {{ inherit name; args = [ "-c" script ]; }};
  script = name: text: drv {{
    inherit name text;
    args = [ "-c" "printf '%s' \"$text\" > $out && /bin/busybox chmod 555 $out" ];
  }};
  binDir = name: text: drv {{
    inherit name text;
    args = [ "-c" "/bin/busybox mkdir -p $out/bin && printf '%s' \"$text\" > $out/bin/$name && /bin/busybox chmod 555 $out/bin/$name" ];
  }};
in
{{
{body}
}}
"#,
        nonce = nix_str(&nonce())
    )
}

/// The last line of a command's stderr (where treekite's error goes).
pub fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

/// Asserts treekite's bad-input contract: exit 2, nothing on stdout, one
/// stderr line `treekite: error: …` holding every string in `mentions`.
/// Returns that line.
pub fn assert_bad_input(output: &std::process::Output, mentions: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "exit status; stderr:\n{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "",
        "stdout must be empty; stderr:\n{stderr}"
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "one stderr line expected, got:\n{stderr}"
    );
    let line = last_line(&output.stderr);
    assert!(line.starts_with("treekite: error: "), "stderr: {stderr}");
    for wanted in mentions {
        assert!(line.contains(wanted), "{line:?} should mention {wanted:?}");
    }
    line
}

/// Asserts a build or evaluation failure: exit 1, nothing on stdout, last
/// stderr line `treekite: error: …` holding every string in `mentions`.
pub fn assert_failed(output: &std::process::Output, mentions: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "exit status; stderr:\n{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "",
        "stdout must be empty; stderr:\n{stderr}"
    );
    let line = last_line(&output.stderr);
    assert!(line.starts_with("treekite: error: "), "stderr: {stderr}");
    for wanted in mentions {
        assert!(line.contains(wanted), "{line:?} should mention {wanted:?}");
    }
    line
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

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn git(&self, args: &[&str]) -> String {
        stdout_of(Command::new("git").arg("-C").arg(self.path()).args(args))
    }

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
}

/// The GC roots Nix itself finds for `path` (`nix-store --query --roots`),
/// as the link paths it names.
pub fn roots_of(path: &str) -> Vec<String> {
    let out = stdout_of(nix("nix-store").args(["--query", "--roots", path]));
    out.lines()
        .filter_map(|line| line.split(" -> ").next())
        .map(str::to_owned)
        .collect()
}

/// Evaluates a Nix expression in the depot (with `depot` bound) to JSON text.
impl Depot {
    pub fn eval_json(&self, expr: &str) -> String {
        let wrapped = format!(
            "let depot = import {}/. {{}}; in {expr}",
            self.path().display()
        );
        let out = stdout_of(
            nix("nix-instantiate").args(["--eval", "--strict", "--json", "--expr", &wrapped]),
        );
        out.trim().to_owned()
    }

    /// The store path of an output, from evaluation (nothing is built).
    pub fn out_path(&self, expr: &str) -> String {
        serde_json::from_str(&self.eval_json(&format!("({expr}).outPath"))).unwrap()
    }
}

/// Like [`treekite`], as a `std::process::Command` (to spawn several at once).
pub fn treekite_std(gcroots: &Path) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("treekite"));
    cmd.env("NIX_CONFIG", NIX_CONFIG)
        .env("TREEKITE_GCROOTS", gcroots);
    cmd
}
