//! Nix for the tests: the one way to evaluate and instantiate, the one Nix
//! string escaper, the step-key helper, and a fresh depot per test.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use tempfile::TempDir;

use super::{Texts, TreekiteCommand, entries, stdout_of, treekite};

/// Environment every Nix call in the tests gets: no binary cache (there is
/// no network here; Nix would stall on it).
pub const NIX_CONFIG: &str = "substituters =\n";

/// This repository (the crate's directory).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A path below `tests/fixtures`.
pub fn fixture(relative: &str) -> PathBuf {
    repo().join("tests/fixtures").join(relative)
}

/// Panics with a clear message when Nix is missing: Nix tests never skip.
pub fn require_nix() {
    static FOUND: OnceLock<bool> = OnceLock::new();
    let found = *FOUND.get_or_init(|| {
        Command::new("nix-instantiate")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    assert!(
        found,
        "these tests need Nix (nix-instantiate on PATH); run `bash .ci/run` or `apt-get install nix-bin busybox-static`"
    );
}

/// A Nix command (`nix-instantiate`, `nix-store`) with the test settings.
pub fn nix(program: &str) -> Command {
    require_nix();
    let mut cmd = Command::new(program);
    cmd.env("NIX_CONFIG", NIX_CONFIG);
    cmd
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

/// `nix-instantiate ARGS`: the `.drv` path it prints. (Nix prints `X.drv!dev`
/// when an expression selects an output other than the first; the path is
/// what comes before.)
pub fn instantiate<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> String {
    stdout_of(nix("nix-instantiate").args(args))
        .trim()
        .split('!')
        .next()
        .unwrap()
        .to_owned()
}

/// A Nix expression, usually a function whose arguments are given by
/// [`NixExpr::arg`] as `--argstr`: paths and names go in as data, never
/// pasted into Nix source.
pub struct NixExpr {
    expr: String,
    args: Vec<OsString>,
}

impl NixExpr {
    pub fn new(expr: impl Into<String>) -> NixExpr {
        NixExpr {
            expr: expr.into(),
            args: Vec::new(),
        }
    }

    /// Passes `name` as the string `value`.
    pub fn arg(mut self, name: &str, value: impl AsRef<OsStr>) -> NixExpr {
        self.args
            .extend(["--argstr".into(), name.into(), value.as_ref().to_owned()]);
        self
    }

    /// Lets evaluation write to the store (`--read-write-mode`).
    pub fn read_write(mut self) -> NixExpr {
        self.args.push("--read-write-mode".into());
        self
    }

    fn command(&self, flags: &[&str]) -> Command {
        let mut cmd = nix("nix-instantiate");
        cmd.args(flags)
            .arg("--expr")
            .arg(&self.expr)
            .args(&self.args);
        cmd
    }

    /// Evaluates strictly to JSON; the error is Nix's stderr.
    pub fn eval(&self) -> Result<Value, String> {
        let out = self
            .command(&["--eval", "--strict", "--json"])
            .output()
            .expect("running nix-instantiate");
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                panic!("bad JSON from Nix ({e}); stderr: {}", out.stderr_text())
            }))
        } else {
            Err(out.stderr_text())
        }
    }

    /// The value, which must evaluate.
    pub fn value(&self) -> Value {
        self.eval()
            .unwrap_or_else(|stderr| panic!("evaluating {} failed:\n{stderr}", self.expr))
    }

    /// The error text of an evaluation that must fail.
    pub fn error(&self) -> String {
        match self.eval() {
            Ok(value) => panic!("evaluating {} should fail, but gave {value}", self.expr),
            Err(stderr) => stderr,
        }
    }

    /// Instantiates the derivation the expression evaluates to.
    pub fn instantiate(&self) -> String {
        let mut args: Vec<OsString> = vec!["--expr".into(), self.expr.clone().into()];
        args.extend(self.args.iter().cloned());
        instantiate(args)
    }
}

/// The step key nix/buildkite gives a `.drv` (its `keyForDrv`): tests ask
/// the library rather than spell the formula out again.
pub fn key_for_drv(drv: &str) -> String {
    let key =
        NixExpr::new(r#"{ repo, drv }: (import (/. + repo + "/nix/buildkite") { }).keyForDrv drv"#)
            .arg("repo", repo())
            .arg("drv", drv)
            .value();
    key.as_str().unwrap().to_owned()
}

/// The output paths of a `.drv`, built or not.
pub fn outputs_of(drv: &str) -> Vec<String> {
    stdout_of(nix("nix-store").args(["--query", "--outputs", drv]))
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Deletes a store path (e.g. a `.drv`) as garbage collection would.
pub fn delete_from_store(path: &str) {
    let out = nix("nix-store").args(["--delete", path]).output().unwrap();
    assert!(
        out.status.success(),
        "nix-store --delete {path}: {}",
        out.stderr_text()
    );
    assert!(
        !Path::new(path).exists(),
        "{path} still exists after nix-store --delete"
    );
}

/// The GC roots Nix itself finds for `path` (`nix-store --query --roots`),
/// as the link paths it names.
pub fn roots_of(path: &str) -> Vec<PathBuf> {
    let out = stdout_of(nix("nix-store").args(["--query", "--roots", path]));
    out.lines()
        .filter_map(|line| line.split(" -> ").next())
        .map(PathBuf::from)
        .collect()
}

/// `treekite pipeline --root ROOT -A ATTR --out OUT ARGS`, which evaluates
/// with Nix.
pub fn treekite_pipeline(root: &Path, attr: &str, out: &Path, args: &[&str]) -> Command {
    require_nix();
    let mut cmd = treekite();
    cmd.args(["pipeline", "--root"])
        .arg(root)
        .args(["-A", attr, "--out"])
        .arg(out)
        .args(args);
    cmd
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

    /// A Nix expression evaluated in the depot, with `depot` bound to
    /// `import ./. {}`.
    fn expr(&self, expr: &str) -> NixExpr {
        NixExpr::new(format!(
            "{{ depotDir }}: let depot = import (/. + depotDir) {{ }}; in {expr}"
        ))
        .arg("depotDir", self.path())
    }

    /// The `.drv` path of `expr` (see [`Depot::expr`]).
    pub fn instantiate(&self, expr: &str) -> String {
        self.expr(expr).instantiate()
    }

    /// The store path of an output, from evaluation (nothing is built).
    pub fn out_path(&self, expr: &str) -> String {
        let path = self.expr(&format!("({expr}).outPath")).value();
        path.as_str().unwrap().to_owned()
    }
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

/// A [`Depot`] whose `default.nix` is [`depot_nix`] of a body, and a
/// directory for treekite's default GC roots: where `build` and `exec`
/// tests start.
pub struct NixFixture {
    pub depot: Depot,
    pub gcroots: TempDir,
}

impl NixFixture {
    pub fn new(body: &str) -> NixFixture {
        let depot = Depot::new();
        depot.write("default.nix", &depot_nix(body));
        NixFixture {
            depot,
            gcroots: tempfile::tempdir().unwrap(),
        }
    }

    /// [`treekite`] keeping its GC roots in the fixture.
    pub fn treekite(&self) -> Command {
        let mut cmd = treekite();
        cmd.gcroots(self.gcroots.path());
        cmd
    }

    /// The `.drv` of `depot.<attr>`.
    pub fn drv(&self, attr: &str) -> String {
        self.depot.instantiate(&format!("depot.{attr}"))
    }

    /// The links in the GC roots directory.
    pub fn links(&self) -> Vec<PathBuf> {
        entries(self.gcroots.path())
    }
}
