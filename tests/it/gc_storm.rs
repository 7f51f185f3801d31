//! A garbage collector running all the time, as `min-free` makes it on a
//! busy agent: every path `treekite build` or `exec` reports must still be
//! there after one more collection. The collector loops in a Nix store of
//! its own (`NIX_STORE_DIR`, `NIX_STATE_DIR`), so it takes nothing the
//! other tests are using.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
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
        let store = Store {
            dir: tempfile::tempdir().unwrap(),
        };
        // Made by one Nix command first: two making it at once may fail.
        store.collect_garbage();
        store
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
        gc.arg("--gc").stdout(Stdio::null()).stderr(Stdio::null());
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut runs = 0;
            while !flag.load(Ordering::SeqCst) {
                // Nix 2.8's collector itself sometimes aborts under this
                // load ("terminate called without an active exception");
                // the next one starts at once.
                runs += usize::from(gc.status().unwrap().success());
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
/// (so collections overlap the builds), and a script `s`, in a store.
struct StormDepot<'s> {
    store: &'s Store,
    dir: PathBuf,
}

impl<'s> StormDepot<'s> {
    fn new(store: &'s Store, n: usize) -> StormDepot<'s> {
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
        StormDepot { store, dir }
    }

    /// A fresh .drv of `attr`, rooted by nothing.
    fn drv(&self, attr: &str) -> String {
        let mut instantiate = self.store.nix("nix-instantiate");
        instantiate.arg(&self.dir).args(["-A", attr]);
        stdout_of(&mut instantiate).trim().to_owned()
    }

    /// `treekite COMMAND --drv DRV` for `attr`, with its attribute path
    /// and root as generated steps pass them, and `extra` arguments.
    fn treekite(&self, command: &str, attr: &str, drv: &str, extra: &[&OsStr]) -> Output {
        let attr_path: Vec<&str> = attr.split('.').collect();
        self.store
            .treekite()
            .args([command, "--drv", drv, "--attr-path"])
            .arg(serde_json::to_string(&attr_path).unwrap())
            .arg("--root")
            .arg(&self.dir)
            .args(extra)
            .output()
            .unwrap()
    }

    /// `treekite build` of target `i`; the path it printed.
    fn build(&self, i: usize, drv: &str, extra: &[&OsStr]) -> String {
        let output = self.treekite("build", &format!("targets.t{i}"), drv, extra);
        assert!(output.status.success(), "{}", output.stderr_text());
        output.stdout_text().trim().to_owned()
    }
}

/// Asserts that each path still exists after one more collection.
fn assert_survive_collection(store: &Store, printed: &[String]) {
    store.collect_garbage();
    for path in printed {
        assert!(
            Path::new(path).exists(),
            "{path} was reported built, then collected"
        );
    }
}

#[test]
fn a_collector_running_all_the_time_takes_nothing_treekite_reported() {
    const TARGETS: usize = 12;
    let store = Store::new();
    // One more target, for an extra step's `needsOutput` link.
    let depot = StormDepot::new(&store, TARGETS + 1);
    let build = |i: usize| depot.build(i, &depot.drv(&format!("targets.t{i}")), &[]);

    let storm = store.storm();
    let mut printed = Vec::new();
    // Two at a time, as two agents on one machine would.
    for pair in (0..TARGETS).collect::<Vec<_>>().chunks(2) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = pair
                .iter()
                .map(|&i| scope.spawn(move || build(i)))
                .collect();
            printed.extend(handles.into_iter().map(|h| h.join().unwrap()));
        });
    }
    // What an extra step with `needsOutput` runs: the parent to ./result
    // in the checkout, then its script, by exec.
    let checkout = Checkout::new();
    let result = checkout.path().join("result");
    let parent = depot.drv(&format!("targets.t{TARGETS}"));
    let out_link = [OsStr::new("--out-link"), result.as_os_str()];
    printed.push(depot.build(TARGETS, &parent, &out_link));
    let exec = depot.treekite("exec", "s", &depot.drv("s"), &[]);
    let collections = storm.end();
    assert!(exec.status.success(), "{}", exec.stderr_text());
    assert_eq!(exec.stdout_text(), "ran\n");
    assert!(collections > 1, "the collector ran {collections} times");

    assert_survive_collection(&store, &printed);
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
    let depot = StormDepot::new(&store, TARGETS);
    // Every .drv is gone before the step runs, so each build goes through
    // the fallback, whose fresh .drv the storm would take if it could.
    let drvs: Vec<String> = (0..TARGETS)
        .map(|i| depot.drv(&format!("targets.t{i}")))
        .collect();
    store.collect_garbage();
    assert!(drvs.iter().all(|drv| !Path::new(drv).exists()));

    let storm = store.storm();
    let printed: Vec<String> = drvs
        .iter()
        .enumerate()
        .map(|(i, drv)| depot.build(i, drv, &[]))
        .collect();
    storm.end();
    assert_survive_collection(&store, &printed);
}
