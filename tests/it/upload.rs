//! `treekite upload` against a fake `buildkite-agent` that keeps a build's
//! state in files (meta-data, the step keys uploaded), refuses an upload
//! holding a key the build already has as Buildkite does, and can fail an
//! upload or kill treekite at a given call.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Command;

use assert_cmd::prelude::*;
use predicates::prelude::*;
use tempfile::TempDir;

use crate::support::*;

/// The fake agent. State in $FAKE_AGENT_STATE: `calls` (one line each),
/// `meta-data/<key>`, `keys` (the build's step keys), `uploads` (the names
/// of the files it took).
/// - `pipeline upload FILE` fails when FILE ends with $FAKE_AGENT_FAIL_ON,
///   and, as Buildkite does, when FILE holds a key the build already has.
///   With $FAKE_AGENT_PROCESSING set, a taken upload's keys stay pending
///   (unseen by `step get`) until the next upload: Buildkite processes an
///   upload after the agent hands it over.
/// - `step get --step KEY state` answers as the agent does: the state, or
///   a fatal error naming 404 for a key the build does not have.
/// - $FAKE_AGENT_KILL_PARENT=N:before kills its parent (treekite) with
///   SIGKILL instead of doing the Nth call, as if both were killed;
///   N:after does the call first, as an agent that outlives treekite.
/// - $FAKE_AGENT_BROKEN_META_DATA makes reading meta-data fail, and
///   $FAKE_AGENT_BROKEN_STEP_GET looking up steps.
const FAKE_AGENT: &str = r#"#!/bin/bash
state="$FAKE_AGENT_STATE"
printf '%s\n' "$*" >> "$state/calls"
call=$(wc -l < "$state/calls")
mkdir -p "$state/meta-data"
touch "$state/keys" "$state/pending"
kill_parent() {
  if [ "$FAKE_AGENT_KILL_PARENT" = "$call:$1" ]; then kill -9 "$PPID"; exit 137; fi
}
fatal() { echo "buildkite-agent: fatal: $*" >&2; }
act() {
  case "$1 $2" in
    "meta-data get")
      # meta-data get --default DEFAULT KEY
      [ -z "$FAKE_AGENT_BROKEN_META_DATA" ] || { fatal "failed to get meta-data: no access token"; return 1; }
      if [ -f "$state/meta-data/$5" ]; then cat "$state/meta-data/$5"; else printf '%s' "$4"; fi ;;
    "meta-data exists")
      [ -z "$FAKE_AGENT_BROKEN_META_DATA" ] || { fatal "no access token"; return 1; }
      [ -f "$state/meta-data/$3" ] || return 100 ;;
    "meta-data set")
      [ -n "$4" ] || { fatal "empty value"; return 1; }
      printf '%s' "$4" > "$state/meta-data/$3" ;;
    "pipeline upload")
      if [ -n "$FAKE_AGENT_FAIL_ON" ] && [[ "$3" == *"$FAKE_AGENT_FAIL_ON" ]]; then
        fatal "upload of $3 failed"; return 1
      fi
      cat "$state/pending" >> "$state/keys"; : > "$state/pending"
      keys=$(grep -o '"key": *"[^"]*"' "$3" | sed 's/.*"\([^"]*\)"$/\1/')
      for key in $keys; do
        if grep -qxF -- "$key" "$state/keys"; then
          fatal "Failed to upload and process pipeline: The key \"$key\" has already been used by another step in this build"
          return 1
        fi
      done
      if [ -n "$FAKE_AGENT_PROCESSING" ]; then into=pending; else into=keys; fi
      [ -z "$keys" ] || printf '%s\n' $keys >> "$state/$into"
      basename "$3" >> "$state/uploads" ;;
    "step get")
      # step get --step KEY state
      [ -z "$FAKE_AGENT_BROKEN_STEP_GET" ] || { fatal "failed to get step: POST https://agent.buildkite.com/v3/steps/$4/export: 503 Service Unavailable"; return 1; }
      grep -qxF -- "$4" "$state/keys" || {
        fatal "failed to get step: POST https://agent.buildkite.com/v3/steps/$4/export: 404 Not Found"
        return 1
      }
      echo waiting ;;
    *)
      echo "fake: unexpected call: $*" >&2; return 99 ;;
  esac
}
kill_parent before
act "$@"
status=$?
kill_parent after
exit $status
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
            .env_remove("FAKE_AGENT_PROCESSING")
            .env_remove("FAKE_AGENT_KILL_PARENT")
            .env_remove("FAKE_AGENT_BROKEN_META_DATA")
            .env_remove("FAKE_AGENT_BROKEN_STEP_GET")
            .args(["upload", "--phase", phase])
            .arg(self.path("pipeline"));
        cmd
    }

    /// The lines of a file the fake agent keeps.
    fn lines(&self, file: &str) -> Vec<String> {
        read_lines(self.path(&format!("state/{file}")))
    }

    /// `treekite upload --phase build`, which the fake agent kills at `at`
    /// (`FAKE_AGENT_KILL_PARENT`), with `env` besides; asserts the kill.
    fn upload_killed_at(&self, at: &str, env: &[(&str, &str)]) {
        let output = self
            .upload("build")
            .env("FAKE_AGENT_KILL_PARENT", at)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(
            output.status.signal(),
            Some(9),
            "treekite should be killed at {at}: {:?}, stderr:\n{}",
            output.status,
            output.stderr_text()
        );
    }

    /// Asserts that one more upload job succeeds and uploads nothing: the
    /// build has recorded every chunk.
    fn assert_all_recorded(&self, phase: &str) {
        let before = self.lines("uploads");
        self.upload(phase).assert().success();
        assert_eq!(self.lines("uploads"), before, "uploaded again");
    }

    /// The build's meta-data values, by key.
    fn meta_data(&self) -> Vec<String> {
        entries(&self.path("state/meta-data"))
            .iter()
            .map(read)
            .collect()
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
    // Read the record, note the start, upload, note it done.
    assert_eq!(
        shapes,
        ["get", "set", "upload", "set", "get", "set", "upload", "set"],
        "{calls:?}"
    );
    assert_eq!(build.meta_data(), ["done", "done"]);
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
    build.assert_all_recorded("build");
}

/// Kills treekite at every call it makes to the agent, before the agent
/// acts and after (between an upload and its record, too): the retried job
/// puts every chunk in the build exactly once, and succeeds.
#[test]
fn a_retry_after_a_kill_at_any_point_uploads_each_chunk_once() {
    // A whole run makes four calls per chunk (see
    // each_upload_is_recorded_in_meta_data).
    for call in 1..=8 {
        for when in ["before", "after"] {
            let at = format!("{call}:{when}");
            let build = Build::new();
            build.chunks("build", 2);
            build.upload_killed_at(&at, &[]);

            let retry = build.upload("build").output().unwrap();
            assert!(
                retry.status.success(),
                "the retry after a kill at {at} failed: {}",
                retry.stderr_text()
            );
            assert_eq!(
                build.lines("uploads"),
                names("build", [2, 1]),
                "kill at {at}"
            );
            build.assert_all_recorded("build");
        }
    }
}

/// The agent was killed with treekite but finished its upload, which
/// Buildkite had not processed yet when the retry asked for its steps: the
/// retry's own upload is refused, and the retry sees why.
#[test]
fn a_retry_finds_a_killed_jobs_upload_that_landed_late() {
    let build = Build::new();
    build.chunks("build", 2);
    build.upload_killed_at("3:after", &[("FAKE_AGENT_PROCESSING", "1")]);
    build
        .upload("build")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "build-chunk-2.json is in the build already (an earlier attempt's upload landed late)",
        ));
    let calls = build.lines("calls");
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("step get")).count(),
        2,
        "asked before uploading and after the refusal: {calls:?}"
    );
    assert_eq!(build.lines("uploads"), names("build", [2, 1]));
    build.assert_all_recorded("build");
}

/// When Buildkite cannot say whether an interrupted upload went up, the
/// retry fails rather than guess (and a later retry can still succeed).
#[test]
fn a_retry_that_cannot_ask_the_build_fails_and_uploads_nothing() {
    let build = Build::new();
    build.chunks("build", 1);
    build.upload_killed_at("3:after", &[]);
    let retry = build
        .upload("build")
        .env("FAKE_AGENT_BROKEN_STEP_GET", "1")
        .output()
        .unwrap();
    assert_failed(
        &retry,
        &[
            "uploading build-chunk-1.json",
            "cannot tell whether step build-1 is in the build",
            "503 Service Unavailable",
        ],
    );
    assert_eq!(build.lines("uploads"), names("build", [1]));
    build.assert_all_recorded("build");
}

/// A chunk without step keys cannot be looked up in the build: after a kill
/// it goes up again (Buildkite takes steps without keys twice), saying so.
#[test]
fn a_chunk_without_keys_is_uploaded_again_with_a_warning() {
    let build = Build::new();
    std::fs::write(
        build.path("pipeline/build-chunk-1.json"),
        r#"{"steps": [{"label": "no key", "command": "true"}]}"#,
    )
    .unwrap();
    build.upload_killed_at("3:after", &[]);
    build
        .upload("build")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "treekite: warning: cannot tell whether build-chunk-1.json is in the build: none of its steps has a key",
        ));
    assert_eq!(build.lines("uploads"), names("build", [1, 1]));
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
        .stderr(predicate::str::contains("meta-data get"));
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
            "running `buildkite-agent meta-data get",
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
