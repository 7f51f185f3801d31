//! `treekite run` on hand-written pipeline directories. Steps leave marker
//! files in the root they run in; no test depends on timing.

mod busy_agent;

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::assert::Assert;
use assert_cmd::prelude::*;
use predicates::prelude::*;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::*;

struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let fixture = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(fixture.pipeline()).unwrap();
        std::fs::create_dir_all(fixture.root()).unwrap();
        fixture
    }

    fn pipeline(&self) -> PathBuf {
        self.dir.path().join("pipeline")
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// Writes `pipeline/NAME` holding `steps`.
    fn chunk(&self, name: &str, steps: Value) -> &Fixture {
        self.raw(name, &json!({ "steps": steps }).to_string())
    }

    fn raw(&self, name: &str, text: &str) -> &Fixture {
        std::fs::write(self.pipeline().join(name), text).unwrap();
        self
    }

    /// `treekite run` on the pipeline, in the root.
    fn treekite_run(&self) -> Command {
        let mut cmd = treekite();
        cmd.arg("run")
            .arg(self.pipeline())
            .arg("--root")
            .arg(self.root());
        cmd
    }

    /// [`Fixture::treekite_run`] with `args`, logs in the fixture, for
    /// branch `main` unless `args` name one.
    fn run_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.treekite_run();
        cmd.arg("--log-dir").arg(self.logs()).args(args);
        if !args.contains(&"--branch") {
            cmd.args(["--branch", "main"]);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Assert {
        self.run_command(args).assert()
    }

    fn exists(&self, relative: &str) -> bool {
        self.root().join(relative).exists()
    }

    fn read(&self, relative: &str) -> String {
        read(self.root().join(relative))
    }

    /// Lines the steps appended to `order`.
    fn order(&self) -> Vec<String> {
        read_lines(self.root().join("order"))
    }

    /// Waits (bounded) until a step has written `relative` (a marker, or a
    /// line ending in a newline), and returns its text.
    fn wait_for(&self, relative: &str) -> String {
        let path = self.root().join(relative);
        for _ in 0..400 {
            if let Ok(text) = std::fs::read_to_string(&path)
                && (text.is_empty() || text.ends_with('\n'))
            {
                return text;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("no step wrote {} within 10 s", path.display());
    }

    /// The process id a step wrote to `relative` (`echo $$! > relative`).
    fn pid(&self, relative: &str) -> i32 {
        let text = self.wait_for(relative);
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{relative} holds no pid: {text:?}"))
    }

    /// Forgets what the steps of an earlier run appended to `order`.
    fn clear_order(&self) {
        std::fs::remove_file(self.root().join("order")).unwrap();
    }
}

/// A command step labelled and keyed `name` that appends `name` to `order`.
fn step(name: &str) -> Value {
    json!({ "label": name, "key": name, "command": format!("echo {name} >> order") })
}

fn with(mut step: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        step[k] = v.clone();
    }
    step
}

/// The summary row of a step: its status word.
fn status_of(stdout: &str, label: &str) -> String {
    stdout
        .lines()
        .find(|line| {
            line.split_whitespace().nth(2) == Some(label)
                || line.split_whitespace().nth(3) == Some(label)
        })
        .unwrap_or_else(|| panic!("no summary row for {label} in:\n{stdout}"))
        .split("  ")
        .next()
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn runs_steps_in_dependency_order() {
    let f = Fixture::new();
    f.chunk(
        "build-chunk-1.json",
        json!([
            with(step("c"), json!({"depends_on": ["b"]})),
            with(
                step("b"),
                json!({"depends_on": [{"step": "a", "allow_failure": false}]})
            ),
            step("a"),
        ]),
    );
    let out = f.run(&["-j", "3"]).success();
    assert_eq!(f.order(), ["a", "b", "c"]);
    let text = out.stdout_text();
    assert!(text.contains("3 steps in"), "{text}");
    assert!(
        text.contains("3 passed, 0 soft-failed, 0 failed, 0 skipped, 0 not run"),
        "{text}"
    );
}

#[test]
fn chunks_run_in_numeric_order_and_phases_in_order() {
    let f = Fixture::new();
    f.chunk("build-chunk-10.json", json!([step("ten")]))
        .chunk("build-chunk-2.json", json!([step("two")]))
        .chunk("build-chunk-1.json", json!([step("one")]))
        .chunk("release-chunk-1.json", json!([step("release")]))
        .chunk("deploy-chunk-1.json", json!([step("deploy")]));
    f.run(&[]).success();
    assert_eq!(f.order(), ["one", "two", "ten", "release", "deploy"]);
}

#[test]
fn phases_can_be_chosen_and_a_failed_phase_stops_the_next() {
    let f = Fixture::new();
    f.chunk(
        "build-chunk-1.json",
        json!([with(step("b"), json!({"command": "exit 1"}))]),
    )
    .chunk("release-chunk-1.json", json!([step("r")]));
    let out = f.run(&[]).code(1);
    assert!(!f.exists("order"));
    assert_eq!(status_of(&out.stdout_text(), "r"), "not run");
    assert!(out.stdout_text().contains("phase build failed"));

    f.run(&["--phase", "release"]).success();
    assert_eq!(f.order(), ["r"]);
}

#[test]
fn steps_run_in_parallel_up_to_jobs() {
    let f = Fixture::new();
    // Each waits (bounded) for the other's flag: they pass only together.
    let meet = |me: &str, other: &str| {
        json!({"label": me, "command": format!(
            "touch {me}.flag; for i in $(seq 300); do [ -e {other}.flag ] && exit 0; sleep 0.05; done; exit 1"
        )})
    };
    f.chunk(
        "build-chunk-1.json",
        json!([meet("x", "y"), meet("y", "x")]),
    );
    f.run(&["-j", "2"]).success();
}

#[test]
fn one_job_runs_one_step_at_a_time() {
    let f = Fixture::new();
    let exclusive = |name: &str| json!({"label": name, "command": "mkdir running.lock && sleep 0.1 && rmdir running.lock && echo x >> order"});
    f.chunk(
        "build-chunk-1.json",
        json!([exclusive("a"), exclusive("b"), exclusive("c")]),
    );
    f.run(&["-j", "1"]).success();
    assert_eq!(f.order().len(), 3);
}

#[test]
fn skipped_steps_do_not_run_and_satisfy_dependents() {
    let f = Fixture::new();
    f.chunk(
        "build-chunk-1.json",
        json!([
            with(step("s1"), json!({"skip": true})),
            with(step("s2"), json!({"skip": "Target has not changed."})),
            with(step("after"), json!({"depends_on": ["s1", "s2"]})),
            with(step("kept"), json!({"skip": false})),
        ]),
    );
    let out = f.run(&[]).success();
    assert_eq!(f.order(), ["after", "kept"]);
    let text = out.stdout_text();
    assert_eq!(status_of(&text, "s1"), "skipped");
    assert!(text.contains("Target has not changed."), "{text}");
}

#[test]
fn branch_filters_follow_buildkite_patterns() {
    let f = Fixture::new();
    f.chunk(
        "build-chunk-1.json",
        json!([
            with(step("main_only"), json!({"branches": "main"})),
            with(
                step("features"),
                json!({"branches": "feature/* !feature/beta"})
            ),
            with(step("not_main"), json!({"branches": ["!main"]})),
            with(step("release"), json!({"branches": "release/*"})),
            with(step("after"), json!({"depends_on": "release"})),
        ]),
    );
    let out = f.run(&["--branch", "feature/alpha"]).success();
    assert_eq!(f.order(), ["features", "not_main", "after"]);
    assert_eq!(status_of(&out.stdout_text(), "release"), "skipped");
    assert!(
        out.stdout_text()
            .contains("branch feature/alpha does not match `branches: release/*`")
    );

    f.clear_order();
    f.run(&["--branch", "feature/beta"]).success();
    assert_eq!(f.order(), ["not_main", "after"]);

    f.clear_order();
    f.run(&["--branch", "main"]).success();
    assert_eq!(f.order(), ["main_only", "after"]);
}

#[test]
fn soft_failures_do_not_fail_the_run() {
    let f = Fixture::new();
    f.chunk(
        "build-chunk-1.json",
        json!([
            with(
                step("listed"),
                json!({"command": "exit 3", "soft_fail": [{"exit_status": 3}]})
            ),
            with(step("any"), json!({"command": "exit 7", "soft_fail": true})),
            with(
                step("star"),
                json!({"command": "exit 9", "soft_fail": [{"exit_status": "*"}]})
            ),
            with(
                step("after"),
                json!({"depends_on": ["listed", "any", "star"]})
            ),
        ]),
    );
    let out = f.run(&[]).success();
    assert_eq!(f.order(), ["after"]);
    let text = out.stdout_text();
    for label in ["listed", "any", "star"] {
        assert_eq!(status_of(&text, label), "soft-failed", "{text}");
    }
    assert!(text.contains("exit 3, allowed by soft_fail"), "{text}");
}

#[test]
fn an_unlisted_exit_status_is_a_hard_failure() {
    let f = Fixture::new();
    f.chunk(
        "build-chunk-1.json",
        json!([with(
            step("x"),
            json!({"command": "exit 3", "soft_fail": [{"exit_status": 4}]})
        )]),
    );
    let out = f.run(&[]).code(1);
    assert_eq!(status_of(&out.stdout_text(), "x"), "failed");
}

#[test]
fn a_failed_step_leaves_its_dependents_not_run() {
    let f = Fixture::new();
    f.chunk(
        "build-chunk-1.json",
        json!([
            with(
                step("broken"),
                json!({"command": "echo something went wrong; exit 4"})
            ),
            with(step("child"), json!({"depends_on": "broken"})),
            with(step("grandchild"), json!({"depends_on": "child"})),
            with(
                step("tolerant"),
                json!({"depends_on": [{"step": "broken", "allow_failure": true}]})
            ),
            with(
                step("lenient"),
                json!({"depends_on": "child", "allow_dependency_failure": true})
            ),
            step("independent"),
        ]),
    );
    let out = f.run(&[]).code(1);
    assert_eq!(f.order(), ["tolerant", "lenient", "independent"]);
    let text = out.stdout_text();
    assert_eq!(status_of(&text, "broken"), "failed");
    assert_eq!(status_of(&text, "child"), "not run");
    assert_eq!(status_of(&text, "grandchild"), "not run");
    assert!(
        text.contains("waits for \"broken\", which did not pass"),
        "{text}"
    );
    assert!(text.contains("exit 4"), "{text}");
    // The failure's output is shown as it happens.
    assert!(
        out.stderr_text().contains("| something went wrong"),
        "{}",
        out.stderr_text()
    );
}

#[test]
fn wait_steps_hold_back_everything_after_them() {
    let f = Fixture::new();
    f.chunk(
        "build-chunk-1.json",
        json!([
            with(
                step("slow"),
                json!({"command": "sleep 0.3; echo slow >> order"})
            ),
            step("fast"),
            "wait",
            with(
                step("after"),
                json!({"command": "test -e order && echo after >> order"})
            ),
        ]),
    );
    f.run(&["-j", "4"]).success();
    let order = f.order();
    assert_eq!(order.last().map(String::as_str), Some("after"), "{order:?}");
    assert_eq!(order.len(), 3);
}

#[test]
fn a_failure_before_a_wait_stops_what_follows_unless_continue_on_failure() {
    let f = Fixture::new();
    f.chunk(
        "build-chunk-1.json",
        json!([
            with(step("bad"), json!({"command": "exit 1"})),
            {"wait": null},
            step("stopped"),
            {"wait": "~", "continue_on_failure": true},
            step("continued"),
        ]),
    );
    let out = f.run(&[]).code(1);
    assert_eq!(f.order(), ["continued"]);
    assert_eq!(status_of(&out.stdout_text(), "stopped"), "not run");
}

#[test]
fn block_steps_stop_the_run_unless_unblocked() {
    let f = Fixture::new();
    f.chunk(
        "build-chunk-1.json",
        json!([
            step("before"),
            {"block": ":rocket: Release?", "key": "gate"},
            step("after"),
            with(step("needs_gate"), json!({"depends_on": "gate"})),
            {"input": "Notes", "key": "notes"},
            step("independent_of_input"),
        ]),
    )
    .chunk("release-chunk-1.json", json!([step("release")]));
    let out = f.run(&[]).success();
    assert_eq!(f.order(), ["before"]);
    let text = out.stdout_text();
    assert_eq!(status_of(&text, ":rocket:"), "blocked");
    assert_eq!(status_of(&text, "after"), "not run");
    assert!(
        text.contains("waits for block step \":rocket: Release?\""),
        "{text}"
    );
    assert!(text.contains("phase build stopped at block step"), "{text}");
    assert!(text.contains("--unblock"), "{text}");

    f.clear_order();
    let out = f.run(&["--unblock"]).success();
    assert_eq!(
        f.order(),
        [
            "before",
            "after",
            "needs_gate",
            "independent_of_input",
            "release"
        ]
    );
    assert_eq!(status_of(&out.stdout_text(), ":rocket:"), "unblocked");
}

#[test]
fn groups_finish_when_their_steps_do() {
    let f = Fixture::new();
    f.chunk(
        "build-chunk-1.json",
        json!([
            step("pre"),
            {"group": "tests", "key": "tests", "depends_on": "pre", "steps": [
                with(step("unit"), json!({"command": "test -e order && echo unit >> order"})),
                with(step("lint"), json!({"command": "sleep 0.2; echo lint >> order"})),
            ]},
            with(step("post"), json!({"depends_on": "tests"})),
        ]),
    );
    let out = f.run(&["-j", "4"]).success();
    let order = f.order();
    assert_eq!(order.first().map(String::as_str), Some("pre"), "{order:?}");
    assert_eq!(order.last().map(String::as_str), Some("post"), "{order:?}");
    assert_eq!(order.len(), 4);
    assert!(
        out.stdout_text().contains("tests / unit"),
        "group steps show their group"
    );
}

#[test]
fn a_failing_step_fails_its_group() {
    let f = Fixture::new();
    f.chunk(
        "build-chunk-1.json",
        json!([
            {"group": "g", "key": "g", "steps": [with(step("inner"), json!({"command": "exit 1"}))]},
            with(step("post"), json!({"depends_on": "g"})),
        ]),
    );
    let out = f.run(&[]).code(1);
    assert!(!f.exists("order"));
    assert_eq!(status_of(&out.stdout_text(), "post"), "not run");
}

#[test]
fn interpolation_is_applied_as_at_upload() {
    let f = Fixture::new();
    f.raw(
        "build-chunk-1.json",
        &json!({
            "env": {"FROM_PIPELINE": "pipe-${GREETING}"},
            "steps": [{
                "label": "interpolate ${GREETING}",
                "key": "interp",
                "commands": [
                    "printf '%s\\n' '$$NOT_EXPANDED' > out",
                    "printf '%s\\n' \"$GREETING\" >> out",
                    "printf '%s\\n' \"${MISSING:-fallback}\" >> out",
                    "printf '%s\\n' \"$$FROM_PIPELINE\" >> out",
                    "printf '%s\\n' '[$UNSET_ONE]' >> out",
                ],
            }],
        })
        .to_string(),
    );
    let out = f.run(&["--env", "GREETING=hello"]).success();
    assert_eq!(
        f.read("out"),
        "$NOT_EXPANDED\nhello\nfallback\npipe-hello\n[]\n"
    );
    assert!(
        out.stdout_text().contains("interpolate hello"),
        "labels are interpolated too"
    );
    assert!(
        out.stderr_text()
            .contains("$UNSET_ONE is substituted at upload time but not set"),
        "{}",
        out.stderr_text()
    );
}

#[test]
fn steps_see_buildkite_variables_and_their_env() {
    let f = Fixture::new();
    f.chunk(
        "build-chunk-1.json",
        json!([{
            "label": ":nix: vars",
            "key": "vars-step",
            "env": {"STEP_VAR": "from-step", "NUMBER": 3},
            "command": "env > vars; pwd > pwd; command -v treekite > which",
        }]),
    );
    f.run(&["--branch", "feature/x", "--env", "EXTRA=1"])
        .success();
    let vars = f.read("vars");
    for expected in [
        "BUILDKITE=true",
        "CI=true",
        "BUILDKITE_BRANCH=feature/x",
        "BUILDKITE_STEP_KEY=vars-step",
        "BUILDKITE_LABEL=:nix: vars",
        "BUILDKITE_BUILD_NUMBER=",
        "BUILDKITE_BUILD_ID=",
        "BUILDKITE_JOB_ID=",
        "BUILDKITE_COMMIT=",
        "STEP_VAR=from-step",
        "NUMBER=3",
        "EXTRA=1",
    ] {
        assert!(
            vars.lines().any(|l| l.starts_with(expected)),
            "missing {expected} in:\n{vars}"
        );
    }
    assert_eq!(
        Path::new(f.read("pwd").trim()),
        f.root().canonicalize().unwrap()
    );
    // Generated commands call `treekite`: this very binary comes first.
    let which = f.read("which");
    assert_eq!(
        Path::new(which.trim()),
        Path::new(env!("CARGO_BIN_EXE_treekite")),
        "PATH starts with treekite's directory"
    );
}

#[test]
fn each_step_has_a_log_and_the_summary_names_the_directory() {
    let f = Fixture::new();
    f.chunk(
        "build-chunk-1.json",
        json!([
            {"label": "talk", "key": "talk", "command": "echo to stdout; echo to stderr >&2"},
            {"label": "fail", "key": "fail", "command": "echo failing output; exit 2"},
        ]),
    );
    let out = f.run(&[]).code(1);
    let logs: Vec<PathBuf> = std::fs::read_dir(f.logs())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(logs.len(), 2, "{logs:?}");
    let talk = logs
        .iter()
        .find(|p| p.to_string_lossy().ends_with("talk.log"))
        .expect("a log named after the key");
    assert_eq!(
        std::fs::read_to_string(talk).unwrap(),
        "to stdout\nto stderr\n"
    );
    let text = out.stdout_text();
    assert!(text.starts_with("STATUS"), "{text}");
    assert!(
        text.contains(&format!("logs: {}", f.logs().display())),
        "{text}"
    );
    assert!(
        text.contains("fail.log"),
        "failed steps name their log: {text}"
    );
    // Plain progress lines when stderr is not a terminal.
    let progress = out.stderr_text();
    assert!(progress.contains("started  talk"), "{progress}");
    assert!(progress.contains("passed  talk"), "{progress}");
}

#[test]
fn logs_go_outside_the_work_tree_by_default() {
    let f = Fixture::new();
    f.chunk("build-chunk-1.json", json!([step("a")]));
    let state = f.dir.path().join("state");
    f.treekite_run()
        .env("XDG_STATE_HOME", &state)
        .assert()
        .success();
    let runs: Vec<_> = std::fs::read_dir(state.join("treekite/runs"))
        .unwrap()
        .collect();
    assert_eq!(runs.len(), 1);
    let entries: Vec<String> = std::fs::read_dir(f.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries,
        ["order"],
        "the root holds only what the step wrote"
    );
}

#[test]
fn dependencies_on_a_phase_left_out_are_treated_as_passed() {
    let f = Fixture::new();
    f.chunk("build-chunk-1.json", json!([step("built")])).chunk(
        "release-chunk-1.json",
        json!([with(step("ship"), json!({"depends_on": "built"}))]),
    );
    f.run(&[]).success();
    assert_eq!(f.order(), ["built", "ship"]);
    f.clear_order();
    f.run(&["--phase", "release"])
        .success()
        .stderr(predicate::str::contains(
            "from phase build, which this run leaves out",
        ));
    assert_eq!(f.order(), ["ship"]);
}

/// The chunk files of a pipeline directory: name and text.
type Chunks = Vec<(&'static str, String)>;

/// Bad input: one `treekite: error:` line, exit 2, and nothing ran. Each
/// case is a pipeline directory (`None`: there is none), the arguments and
/// what the error says; every directory that has chunks has a step that
/// would leave a `marker` file.
#[test]
fn bad_input_is_one_error_line_and_runs_nothing() {
    let marker = json!({"label": "marker", "command": "touch marker"});
    let chunk = |steps: Value| json!({ "steps": steps }).to_string();
    let first = |more: Value| {
        let mut steps = vec![marker.clone()];
        steps.extend(more.as_array().unwrap().iter().cloned());
        ("build-chunk-1.json", chunk(Value::Array(steps)))
    };
    let cases: Vec<(&str, Option<Chunks>, &[&str], &str)> = vec![
        ("a missing directory", None, &[], "does not exist"),
        (
            "an empty directory",
            Some(vec![]),
            &[],
            "holds no <phase>-chunk-<n>.json files",
        ),
        (
            "a missing phase",
            Some(vec![first(json!([]))]),
            &["--phase", "deploy"],
            "no chunk file for phase `deploy`",
        ),
        (
            "malformed JSON",
            Some(vec![
                first(json!([])),
                ("build-chunk-2.json", "{\"steps\": [".to_owned()),
            ]),
            &[],
            "build-chunk-2.json: not valid JSON",
        ),
        (
            "an unknown dependency",
            Some(vec![first(json!([with(
                step("x"),
                json!({"depends_on": "nope"})
            )]))]),
            &[],
            "depends on \"nope\", but no step in the pipeline directory has that key",
        ),
        (
            "a cycle",
            Some(vec![first(json!([
                with(step("a"), json!({"depends_on": "b"})),
                with(step("b"), json!({"depends_on": ["c"]})),
                with(step("c"), json!({"depends_on": "a"})),
            ]))]),
            &[],
            "dependency cycle: a -> b -> c -> a",
        ),
        (
            "a step depending on its own group (a cycle)",
            Some(vec![first(json!([
                {"group": "g", "key": "g", "steps": [with(step("x"), json!({"depends_on": "g"}))]}
            ]))]),
            &[],
            "dependency cycle",
        ),
        (
            "duplicate keys",
            Some(vec![
                first(json!([step("same")])),
                ("build-chunk-2.json", chunk(json!([step("same")]))),
            ]),
            &[],
            "key \"same\" is used by both",
        ),
        (
            "a failing interpolation",
            Some(vec![first(json!([
                {"command": "deploy ${TARGET?must be set}"}
            ]))]),
            &[],
            "steps[1].command: $TARGET: must be set",
        ),
        (
            "a step without a type",
            Some(vec![first(json!([{"label": "what am I"}]))]),
            &[],
            "steps[1]: the agent cannot tell what kind of step this is",
        ),
        (
            "a dependency on a later phase",
            Some(vec![
                first(json!([with(step("x"), json!({"depends_on": "r"}))])),
                ("release-chunk-1.json", chunk(json!([step("r")]))),
            ]),
            &[],
            "from the later phase release",
        ),
        (
            "a bad --env",
            Some(vec![first(json!([]))]),
            &["--env", "NOT VALID"],
            "--env \"NOT VALID\"",
        ),
        (
            "no jobs",
            Some(vec![first(json!([]))]),
            &["-j", "0"],
            "-j/--jobs must be at least 1",
        ),
    ];
    for (case, files, args, message) in cases {
        println!("case: {case}");
        let f = Fixture::new();
        match files {
            None => std::fs::remove_dir(f.pipeline()).unwrap(),
            Some(files) => {
                for (name, text) in files {
                    f.raw(name, &text);
                }
            }
        }
        let out = f.run(args);
        assert_bad_input(out.get_output(), &[message]);
        assert!(!f.exists("marker"), "{case}: nothing may run on bad input");
    }
}

#[test]
fn cancel_on_build_failing_stops_and_holds_back_steps() {
    let f = Fixture::new();
    f.chunk(
        "build-chunk-1.json",
        json!([
            with(step("long"), json!({"command": "touch long.started; sleep 60", "cancel_on_build_failing": true})),
            with(step("bad"), json!({"command": "for i in $(seq 200); do [ -e long.started ] && exit 1; sleep 0.05; done; exit 1"})),
            with(step("later"), json!({"cancel_on_build_failing": true, "depends_on": [{"step": "bad", "allow_failure": true}]})),
            with(step("regardless"), json!({"depends_on": [{"step": "bad", "allow_failure": true}]})),
        ]),
    );
    let out = f.run(&["-j", "2"]).code(1);
    let text = out.stdout_text();
    assert_eq!(status_of(&text, "long"), "canceled", "{text}");
    assert_eq!(status_of(&text, "later"), "not run", "{text}");
    assert_eq!(f.order(), ["regardless"]);
}

/// Whether a process is still there (a zombie waiting for its parent counts as gone).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().next())
            != Some("Z")
    })
}

#[test]
fn an_interrupt_stops_running_steps_and_their_children() {
    let f = Fixture::new();
    f.chunk(
        "build-chunk-1.json",
        json!([
            {"label": "sleeper", "command": "sleep 60 & echo $! > child; wait"},
            with(step("next"), json!({"depends_on": []})),
            "wait",
            step("after"),
        ]),
    );
    let child = f
        .run_command(&["-j", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let grandchild = f.pid("child");
    assert!(alive(grandchild));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(status_of(&text, "sleeper"), "canceled", "{text}");
    assert_eq!(status_of(&text, "after"), "not run", "{text}");
    assert!(!f.exists("order"), "nothing starts after an interrupt");
    for _ in 0..100 {
        if !alive(grandchild) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        !alive(grandchild),
        "the step's own children are stopped too"
    );
}
