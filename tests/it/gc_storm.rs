//! A garbage collector running all the time, as `min-free` makes it on a
//! busy agent: every path `treekite build` or `exec` reports must still be
//! there after one more collection. The collector loops in a Nix store of
//! its own (`NIX_STORE_DIR`, `NIX_STATE_DIR`), so it takes nothing the
//! other tests are using.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use tempfile::TempDir;

use crate::support::*;

/// A Nix store of its own, under a temporary directory.
struct Store {
    dir: TempDir,
}

impl Store {
    fn new() -> Store {
        require_nix();
        Store {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// `command` pointed at this store. Its builds run as this user, not
    /// as Nix's build users: this store's lock on them is its own, so a
    /// build here and one in the main store could both take one user, and
    /// Nix kills every process of a build user it takes.
    fn with_env<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command
            .env("NIX_CONFIG", format!("{NIX_CONFIG}build-users-group =\n"))
            .env("NIX_STORE_DIR", self.path("store"))
            .env("NIX_STATE_DIR", self.path("var"))
            .env("NIX_LOG_DIR", self.path("log"))
            .env("TREEKITE_GCROOTS", self.path("roots"))
    }

    fn nix(&self, program: &str) -> Command {
        let mut command = nix(program);
        self.with_env(&mut command);
        command
    }

    fn treekite(&self) -> Command {
        let mut command = treekite();
        self.with_env(&mut command);
        command
    }

    fn collect_garbage(&self) {
        stdout_of(self.nix("nix-store").arg("--gc"));
    }

    /// Collects garbage over and over until the returned storm is stopped.
    fn storm(&self) -> Storm {
        let stop = Arc::new(AtomicBool::new(false));
        let mut gc = self.nix("nix-store");
        gc.arg("--gc");
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut runs = 0;
            while !flag.load(Ordering::SeqCst) {
                let out = gc.output().unwrap();
                assert!(
                    out.status.success(),
                    "nix-store --gc: {}",
                    out.stderr_text()
                );
                runs += 1;
            }
            runs
        });
        Storm { stop, thread }
    }
}

struct Storm {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<usize>,
}

impl Storm {
    /// Stops the collector; how many collections ran.
    fn end(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("the collector thread panicked")
    }
}

/// A depot of `n` fresh targets `t0`…, each a builder that takes a moment
/// (so collections overlap the builds), and a script `s`.
fn depot(store: &Store, n: usize) -> PathBuf {
    let dir = store.path("depot");
    std::fs::create_dir_all(&dir).unwrap();
    let body = format!(
        r##"
  targets = builtins.listToAttrs (builtins.genList (i: {{
    name = "t${{toString i}}";
    value = sh "t${{toString i}}" "/bin/busybox sleep 0.1; echo ${{toString i}} > $out";
  }}) {n});
  s = script "s" "#!/bin/sh\necho ran";
"##
    );
    std::fs::write(dir.join("default.nix"), depot_nix(&body)).unwrap();
    dir
}

#[test]
fn a_collector_running_all_the_time_takes_nothing_treekite_reported() {
    const TARGETS: usize = 12;
    let store = Store::new();
    // One more target, for an extra step's `needsOutput` link.
    let depot = depot(&store, TARGETS + 1);
    let drv = |attr: &str| {
        stdout_of(store.nix("nix-instantiate").arg(&depot).args(["-A", attr]))
            .trim()
            .to_owned()
    };
    let attr_path = |i: usize| format!(r#"["targets","t{i}"]"#);
    let build = |i: usize| {
        let mut command = store.treekite();
        command
            .args(["build", "--drv", &drv(&format!("targets.t{i}"))])
            .args(["--attr-path", &attr_path(i), "--root"])
            .arg(&depot);
        command.output().unwrap()
    };

    let storm = store.storm();
    let mut printed = Vec::new();
    // Two at a time, as two agents on one machine would.
    for pair in (0..TARGETS).collect::<Vec<_>>().chunks(2) {
        let outputs: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = pair
                .iter()
                .map(|&i| scope.spawn(move || build(i)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for output in outputs {
            assert!(output.status.success(), "{}", output.stderr_text());
            printed.push(output.stdout_text().trim().to_owned());
        }
    }
    // What an extra step with `needsOutput` runs: the parent to ./result
    // in the checkout, then its script, by exec.
    let checkout = Checkout::new();
    let result = checkout.path().join("result");
    let needed = store
        .treekite()
        .args(["build", "--drv", &drv(&format!("targets.t{TARGETS}"))])
        .args(["--attr-path", &attr_path(TARGETS), "--root"])
        .arg(&depot)
        .arg("--out-link")
        .arg(&result)
        .output()
        .unwrap();
    assert!(needed.status.success(), "{}", needed.stderr_text());
    printed.push(needed.stdout_text().trim().to_owned());
    let exec = store
        .treekite()
        .args([
            "exec",
            "--drv",
            &drv("s"),
            "--attr-path",
            r#"["s"]"#,
            "--root",
        ])
        .arg(&depot)
        .output()
        .unwrap();
    let collections = storm.end();
    assert!(exec.status.success(), "{}", exec.stderr_text());
    assert_eq!(exec.stdout_text(), "ran\n");
    assert!(collections > 1, "the collector ran {collections} times");

    store.collect_garbage();
    for path in &printed {
        assert!(
            Path::new(path).exists(),
            "{path} was reported built, then collected"
        );
    }
    assert_eq!(printed.len(), TARGETS + 1);
    assert_eq!(
        std::fs::read_link(&result).unwrap(),
        Path::new(&printed[TARGETS])
    );
    checkout.assert_clean();
}

#[test]
fn a_collected_drv_made_again_is_rooted_until_it_is_built() {
    const TARGETS: usize = 6;
    let store = Store::new();
    let depot = depot(&store, TARGETS);
    // Every .drv is gone before the step runs, so each build goes through
    // the fallback, whose fresh .drv the storm would take if it could.
    let drvs: Vec<String> = (0..TARGETS)
        .map(|i| {
            stdout_of(
                store
                    .nix("nix-instantiate")
                    .arg(&depot)
                    .args(["-A", &format!("targets.t{i}")]),
            )
            .trim()
            .to_owned()
        })
        .collect();
    store.collect_garbage();
    assert!(drvs.iter().all(|drv| !Path::new(drv).exists()));

    let storm = store.storm();
    let mut printed = Vec::new();
    for (i, drv) in drvs.iter().enumerate() {
        let output = store
            .treekite()
            .args(["build", "--drv", drv, "--attr-path"])
            .arg(format!(r#"["targets","t{i}"]"#))
            .arg("--root")
            .arg(&depot)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", output.stderr_text());
        printed.push(output.stdout_text().trim().to_owned());
    }
    storm.end();
    store.collect_garbage();
    for path in &printed {
        assert!(
            Path::new(path).exists(),
            "{path} was reported built, then collected"
        );
    }
}
