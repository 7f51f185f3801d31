//! The example depot end to end, as the README's main command runs it:
//! `treekite pipeline`, then `treekite run`, in a git checkout of its own.

use std::path::{Path, PathBuf};

use assert_cmd::prelude::*;

use crate::support::*;

/// The log of the step whose label is `label` (logs are named by key, so
/// find the key in the pipeline first).
fn log_of(logs: &Path, pipeline: &Path, label: &str) -> String {
    let key = chunks(pipeline)
        .into_values()
        .flat_map(|mut steps| {
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
    let log: PathBuf = entries(logs)
        .into_iter()
        .find(|p| p.file_name().unwrap().to_str().unwrap().contains(&key))
        .unwrap_or_else(|| panic!("no log for {label:?} in {}", logs.display()));
    read(log)
}

/// `treekite pipeline` of the example depot at `depot` into `pipeline`,
/// GC roots in `gcroots`.
fn generate(depot: &Path, pipeline: &Path, gcroots: &Path) {
    treekite()
        .gcroots(gcroots)
        .args(["pipeline", "--root"])
        .arg(depot)
        .args(["-A", "ci.pipeline", "--out"])
        .arg(pipeline)
        .assert()
        .success();
}

#[test]
fn the_example_pipeline_runs_end_to_end_and_leaves_the_checkout_clean() {
    require_nix();
    let checkout = Checkout::new();
    checkout.copy_tracked(&["examples", "nix"]);
    checkout.commit_all("depot");
    let work = tempfile::tempdir().unwrap();
    let (pipeline, logs, gcroots) = (
        work.path().join("pipeline"),
        work.path().join("logs"),
        work.path().join("gcroots"),
    );
    let depot = checkout.path().join("examples");

    generate(&depot, &pipeline, &gcroots);
    let run = treekite()
        .gcroots(&gcroots)
        .arg("run")
        .arg(&pipeline)
        .arg("--root")
        .arg(&depot)
        .args(["--branch", "main", "--unblock", "--log-dir"])
        .arg(&logs)
        .assert()
        .success();
    let stdout = run.stdout_text();
    let stderr = run.stderr_text();

    // Every step ran; the lint's failure is soft, so the run passed.
    assert!(stdout.contains("8 steps in"), "{stdout}");
    assert!(
        stdout.contains("7 passed, 1 soft-failed, 0 failed, 0 skipped, 0 not run"),
        "{stdout}"
    );

    // Dependencies first: greeting, then shout, then hello, then its
    // extra steps; the release phase after the build phase.
    let finished: Vec<String> = progress(&stderr)
        .into_iter()
        .filter(|(event, _)| event == "passed" || event == "soft-failed")
        .map(|(_, label)| label)
        .collect();
    let at = |label: &str| {
        finished
            .iter()
            .position(|l| l == label)
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
    checkout.assert_clean();
}

#[test]
fn without_unblock_the_release_phase_stops_at_its_prompt() {
    require_nix();
    let work = tempfile::tempdir().unwrap();
    let (pipeline, gcroots) = (work.path().join("pipeline"), work.path().join("gcroots"));
    generate(&repo().join("examples"), &pipeline, &gcroots);
    let run = treekite()
        .gcroots(&gcroots)
        .arg("run")
        .arg(&pipeline)
        .args(["--phase", "release", "--branch", "main", "--log-dir"])
        .arg(work.path().join("logs"))
        .arg("--root")
        .arg(work.path())
        .assert()
        .success();
    let stdout = run.stdout_text();
    assert!(stdout.contains("blocked"), "{stdout}");
    assert!(stdout.contains("0 passed"), "{stdout}");
}
