//! `treekite upload` against a fake `buildkite-agent` that records its calls,
//! keeps meta-data in a file and can be told to fail one upload.

use std::path::PathBuf;
use std::process::Command;

use assert_cmd::prelude::*;
use predicates::prelude::*;
use tempfile::TempDir;

use crate::support::*;

/// The fake agent. `pipeline upload FILE` fails when FILE ends with
/// $FAKE_AGENT_FAIL_ON; meta-data lives in $FAKE_AGENT_STATE/meta-data.
const FAKE_AGENT: &str = r#"#!/bin/bash
printf '%s\n' "$*" >> "$FAKE_AGENT_STATE/calls"
store="$FAKE_AGENT_STATE/meta-data"
touch "$store"
case "$1 $2" in
  "meta-data exists")
    if [ -n "$FAKE_AGENT_BROKEN_META_DATA" ]; then echo "fake: no access token" >&2; exit 1; fi
    grep -qxF -- "$3" "$store" && exit 0 || exit 100 ;;
  "meta-data set")
    [ -n "$4" ] || { echo "fake: empty value" >&2; exit 1; }
    printf '%s\n' "$3" >> "$store"; exit 0 ;;
  "pipeline upload")
    if [ -n "$FAKE_AGENT_FAIL_ON" ] && [[ "$3" == *"$FAKE_AGENT_FAIL_ON" ]]; then
      echo "fake: upload of $3 failed" >&2; exit 1
    fi
    printf '%s\n' "$(basename "$3")" >> "$FAKE_AGENT_STATE/uploads"; exit 0 ;;
esac
echo "fake: unexpected call: $*" >&2
exit 99
"#;

struct Build {
    dir: TempDir,
}

impl Build {
    fn new() -> Build {
        let build = Build {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(build.path("state")).unwrap();
        std::fs::create_dir_all(build.path("pipeline")).unwrap();
        write_executable(&build.path("bin/buildkite-agent"), FAKE_AGENT);
        build
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes `build-chunk-1.json` … `build-chunk-N.json` (and a drvmap).
    fn chunks(&self, phase: &str, count: usize) {
        for n in 1..=count {
            let chunk = format!(
                r#"{{"steps": [{{"label": "step {n}", "key": "{phase}-{n}", "command": "true"}}]}}"#
            );
            std::fs::write(
                self.path(&format!("pipeline/{phase}-chunk-{n}.json")),
                chunk,
            )
            .unwrap();
        }
        std::fs::write(self.path("pipeline/drvmap.json"), "{}").unwrap();
    }

    /// `treekite upload --phase PHASE` of the pipeline directory, with the
    /// fake agent first on PATH.
    fn upload(&self, phase: &str) -> Command {
        let mut cmd = treekite();
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("PATH", path)
            .env("FAKE_AGENT_STATE", self.path("state"))
            .env_remove("FAKE_AGENT_FAIL_ON")
            .env_remove("FAKE_AGENT_BROKEN_META_DATA")
            .args(["upload", "--phase", phase])
            .arg(self.path("pipeline"));
        cmd
    }

    /// The lines of a file the fake agent keeps.
    fn lines(&self, file: &str) -> Vec<String> {
        read_lines(self.path(&format!("state/{file}")))
    }
}

fn names(phase: &str, numbers: impl IntoIterator<Item = usize>) -> Vec<String> {
    numbers
        .into_iter()
        .map(|n| format!("{phase}-chunk-{n}.json"))
        .collect()
}

#[test]
fn uploads_in_descending_numeric_order() {
    let build = Build::new();
    build.chunks("build", 12);
    build.chunks("release", 2);
    build.upload("build").assert().success();
    // 12 before 10 before 9 before 2: numeric, not by name.
    assert_eq!(build.lines("uploads"), names("build", (1..=12).rev()));
    let uploads: Vec<String> = build
        .lines("calls")
        .into_iter()
        .filter(|c| c.starts_with("pipeline upload "))
        .collect();
    assert_eq!(uploads.len(), 12);
    assert!(
        uploads[0].ends_with("/pipeline/build-chunk-12.json"),
        "{uploads:?}"
    );
}

#[test]
fn each_upload_is_recorded_in_meta_data() {
    let build = Build::new();
    build.chunks("build", 2);
    build.upload("build").assert().success();
    let calls = build.lines("calls");
    let shapes: Vec<&str> = calls
        .iter()
        .map(|c| c.splitn(3, ' ').take(2).last().unwrap())
        .collect();
    assert_eq!(
        shapes,
        ["exists", "upload", "set", "exists", "upload", "set"],
        "{calls:?}"
    );
    assert_eq!(build.lines("meta-data").len(), 2);
    assert!(
        calls[0].contains("build-chunk-2"),
        "the key names the chunk: {calls:?}"
    );
}

#[test]
fn a_retry_after_a_failure_uploads_each_chunk_once() {
    let build = Build::new();
    build.chunks("build", 12);
    build
        .upload("build")
        .env("FAKE_AGENT_FAIL_ON", "/build-chunk-5.json")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "treekite: error: uploading build-chunk-5.json",
        ))
        .stderr(predicate::str::contains("retry"));
    assert_eq!(build.lines("uploads"), names("build", (6..=12).rev()));

    // The retried job: the same directory, the same build's meta-data.
    build
        .upload("build")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "build-chunk-12.json was uploaded earlier in this build",
        ));
    assert_eq!(build.lines("uploads"), names("build", (1..=12).rev()));

    // And a third run has nothing left to do.
    build.upload("build").assert().success();
    assert_eq!(build.lines("uploads").len(), 12);
}

#[test]
fn a_phase_without_chunks_is_bad_input() {
    let build = Build::new();
    build.chunks("build", 3);
    assert_bad_input(
        &build.upload("release").output().unwrap(),
        &["no chunk file for phase `release`", "phases there: build"],
    );
    assert!(
        build.lines("calls").is_empty(),
        "the agent must not be called"
    );
}

#[test]
fn a_missing_directory_is_bad_input() {
    let build = Build::new();
    std::fs::remove_dir(build.path("pipeline")).unwrap();
    assert_bad_input(
        &build.upload("build").output().unwrap(),
        &["does not exist"],
    );
    assert!(build.lines("calls").is_empty());
}

#[test]
fn a_malformed_chunk_uploads_nothing() {
    let build = Build::new();
    build.chunks("build", 3);
    std::fs::write(build.path("pipeline/build-chunk-2.json"), "{\"steps\": [").unwrap();
    assert_bad_input(
        &build.upload("build").output().unwrap(),
        &["build-chunk-2.json is not valid JSON"],
    );
    assert!(
        build.lines("uploads").is_empty(),
        "no chunk may go up when one is broken"
    );
}

#[test]
fn meta_data_failures_stop_the_upload() {
    let build = Build::new();
    build.chunks("build", 2);
    build
        .upload("build")
        .env("FAKE_AGENT_BROKEN_META_DATA", "1")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("meta-data exists"));
    assert!(build.lines("uploads").is_empty());
}

#[test]
fn a_missing_agent_is_reported() {
    let build = Build::new();
    build.chunks("build", 1);
    treekite()
        .env("PATH", build.path("empty-bin"))
        .args(["upload", "--phase", "build"])
        .arg(build.path("pipeline"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "running `buildkite-agent meta-data exists",
        ))
        .stderr(predicate::str::contains("agent on PATH"));
}

/// `treekite pipeline` lists an empty phase in phases.json and writes no
/// chunk for it (Buildkite refuses an empty upload): uploading it is a no-op,
/// while a phase it does not list is still an error.
#[test]
fn a_phase_generated_empty_uploads_nothing() {
    let build = Build::new();
    build.chunks("build", 1);
    std::fs::write(
        build.path("pipeline/phases.json"),
        r#"{"phases":[{"name":"build","chunks":1},{"name":"release","chunks":0}]}"#,
    )
    .unwrap();
    build
        .upload("release")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "phase release has no steps in this pipeline; nothing to upload",
        ));
    assert!(build.lines("uploads").is_empty());
    assert_bad_input(
        &build.upload("deploy").output().unwrap(),
        &["no chunk file for phase `deploy`"],
    );
}
