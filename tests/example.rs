//! The example depot end to end, as the README's main command runs it:
//! `treekite pipeline`, then `treekite run`, in a git checkout of its own.

mod common;

use std::path::{Path, PathBuf};

use common::{Checkout, NIX_CONFIG, require_nix};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Copies the tracked files under `dirs` (as a fresh clone would have them)
/// into `to`.
fn copy_tracked(dirs: &[&str], to: &Path) {
    let listed = std::process::Command::new("git")
        .arg("-C")
        .arg(repo())
        .args(["ls-files", "-z", "--"])
        .args(dirs)
        .output()
        .unwrap();
    assert!(listed.status.success());
    for file in String::from_utf8(listed.stdout)
        .unwrap()
        .split('\0')
        .filter(|f| !f.is_empty())
    {
        let target = to.join(file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(repo().join(file), target).unwrap();
    }
}

fn treekite(gcroots: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("treekite").unwrap();
    cmd.env("NIX_CONFIG", NIX_CONFIG)
        .env("TREEKITE_GCROOTS", gcroots);
    cmd
}

/// The log of the step whose label is `label` (logs are named by key, so
/// find the key in the pipeline first).
fn log_of(logs: &Path, pipeline: &Path, label: &str) -> String {
    let key = std::fs::read_dir(pipeline)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().contains("-chunk-"))
        .flat_map(|p| {
            let doc: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
            let mut steps = doc["steps"].as_array().unwrap().clone();
            let inner: Vec<_> = steps
                .iter()
                .flat_map(|s| s["steps"].as_array().cloned().unwrap_or_default())
                .collect();
            steps.extend(inner);
            steps
        })
        .find(|s| s["label"] == label)
        .unwrap_or_else(|| panic!("no step {label:?}"))["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let log: PathBuf = std::fs::read_dir(logs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().contains(&key))
        .unwrap_or_else(|| panic!("no log for {label:?} in {}", logs.display()));
    std::fs::read_to_string(log).unwrap()
}

#[test]
fn the_example_pipeline_runs_end_to_end_and_leaves_the_checkout_clean() {
    require_nix();
    let checkout = Checkout::new();
    copy_tracked(&["examples", "nix"], checkout.path());
    checkout.commit_all("depot");
    let work = tempfile::tempdir().unwrap();
    let (pipeline, logs, gcroots) = (
        work.path().join("pipeline"),
        work.path().join("logs"),
        work.path().join("gcroots"),
    );
    let depot = checkout.path().join("examples");

    treekite(&gcroots)
        .args(["pipeline", "--root"])
        .arg(&depot)
        .args(["-A", "ci.pipeline", "--out"])
        .arg(&pipeline)
        .assert()
        .success();
    let run = treekite(&gcroots)
        .arg("run")
        .arg(&pipeline)
        .arg("--root")
        .arg(&depot)
        .args(["--branch", "main", "--unblock", "--log-dir"])
        .arg(&logs)
        .assert()
        .success();
    let stdout = String::from_utf8(run.get_output().stdout.clone()).unwrap();
    let stderr = String::from_utf8(run.get_output().stderr.clone()).unwrap();

    // Every step ran; the lint's failure is soft, so the run passed.
    assert!(stdout.contains("8 steps in"), "{stdout}");
    assert!(
        stdout.contains("7 passed, 1 soft-failed, 0 failed, 0 skipped, 0 not run"),
        "{stdout}"
    );

    // Dependencies first: greeting, then shout, then hello, then its
    // extra steps; the release phase after the build phase.
    let finished: Vec<&str> = stderr
        .lines()
        .filter_map(|l| {
            l.trim_start()
                .strip_prefix("passed  ")
                .or_else(|| l.trim_start().strip_prefix("soft-failed  "))
        })
        .map(|l| l.split("  (").next().unwrap())
        .collect();
    let at = |label: &str| {
        finished
            .iter()
            .position(|l| *l == label)
            .unwrap_or_else(|| panic!("{label} did not finish: {stderr}"))
    };
    assert!(at(":nix: libs/greeting") < at(":nix: libs/shout"));
    assert!(at(":nix: libs/shout") < at(":nix: apps/hello"));
    assert!(at(":nix: apps/hello") < at(":gear: smoke test (from apps/hello)"));
    assert!(
        at(":gear: smoke test (from apps/hello)")
            < at("deploy (from apps/hello) / :gear: deploy (from apps/hello)")
    );
    assert_eq!(finished.len(), 7, "{finished:?}");

    // What the steps printed: the smoke test ran hello through ./result.
    let smoke = log_of(&logs, &pipeline, ":gear: smoke test (from apps/hello)");
    assert!(
        smoke.contains("smoke: running ./result/bin/hello\nHELLO, WORLD"),
        "{smoke}"
    );
    let lint = log_of(&logs, &pipeline, ":gear: lint (from apps/hello)");
    assert!(lint.contains("lint: hello has no manual page"), "{lint}");
    let hello = log_of(&logs, &pipeline, ":nix: apps/hello");
    assert!(
        hello.trim_end().ends_with("-hello"),
        "the build step prints its store path: {hello}"
    );
    assert!(
        log_of(&logs, &pipeline, ":gear: deploy (from apps/hello)")
            .contains("deploy: would ship hello now")
    );

    // ./result is there, and git does not show it (nor anything else).
    assert!(depot.join("result/bin/hello").exists());
    assert_eq!(checkout.status(), "");
    assert_eq!(checkout.gitignore(), Checkout::GITIGNORE);
}

#[test]
fn without_unblock_the_release_phase_stops_at_its_prompt() {
    require_nix();
    let work = tempfile::tempdir().unwrap();
    let (pipeline, gcroots) = (work.path().join("pipeline"), work.path().join("gcroots"));
    let depot = repo().join("examples");
    treekite(&gcroots)
        .args(["pipeline", "--root"])
        .arg(&depot)
        .args(["-A", "ci.pipeline", "--out"])
        .arg(&pipeline)
        .assert()
        .success();
    let run = treekite(&gcroots)
        .arg("run")
        .arg(&pipeline)
        .args(["--phase", "release", "--branch", "main", "--log-dir"])
        .arg(work.path().join("logs"))
        .arg("--root")
        .arg(work.path())
        .assert()
        .success();
    let stdout = String::from_utf8(run.get_output().stdout.clone()).unwrap();
    assert!(stdout.contains("blocked"), "{stdout}");
    assert!(stdout.contains("0 passed"), "{stdout}");
}
