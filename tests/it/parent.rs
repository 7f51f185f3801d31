//! `treekite parent` and `treekite pipeline --parent`: finding the parent
//! build in real git repositories (a base branch, feature branches, a
//! shallow clone, a branch with no common history), against a fake
//! Buildkite REST API on 127.0.0.1 and a fake `buildkite-agent` serving
//! artifacts per build; end to end, the example depot skips what did not
//! change.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use assert_cmd::prelude::*;
use serde_json::Value;
use tempfile::TempDir;

use crate::support::*;

/// A drvmap as `treekite pipeline` writes it, different per `tag`.
fn drvmap(tag: &str) -> String {
    format!(r#"{{"app": {{"drvPath": "/nix/store/{tag}-app.drv", "attrPath": ["app"]}}}}"#)
}

/// An origin repository:
///
/// ```text
/// main:     init - m1 - m2 - m3 - m4
/// feature:               \- f1 - f2
/// release:        \- r1               (from m1)
/// ```
struct History {
    origin: Checkout,
    init: String,
    m1: String,
    m2: String,
    m3: String,
    m4: String,
    r1: String,
}

impl History {
    fn new() -> History {
        let origin = Checkout::new();
        origin.git(&["branch", "-q", "-M", "main"]);
        let init = origin.head();
        let m1 = origin.commit_file("history.txt", "m1");
        origin.git(&["checkout", "-q", "-b", "release"]);
        let r1 = origin.commit_file("release.txt", "r1");
        origin.git(&["checkout", "-q", "main"]);
        let m2 = origin.commit_file("history.txt", "m2");
        origin.git(&["checkout", "-q", "-b", "feature"]);
        origin.commit_file("feature.txt", "f1");
        origin.commit_file("feature.txt", "f2");
        origin.git(&["checkout", "-q", "main"]);
        let m3 = origin.commit_file("history.txt", "m3");
        let m4 = origin.commit_file("history.txt", "m4");
        History {
            origin,
            init,
            m1,
            m2,
            m3,
            m4,
            r1,
        }
    }

    /// A clone with `branch` checked out (`git clone ARGS --branch BRANCH`).
    fn clone(&self, branch: &str, args: &[&str]) -> Checkout {
        let mut all = vec!["--branch", branch];
        all.extend_from_slice(args);
        Checkout::clone_of(&self.origin, &all)
    }
}

/// A job's working files: where `--out` goes.
struct Job {
    work: TempDir,
}

impl Job {
    fn new() -> Job {
        Job {
            work: tempfile::tempdir().unwrap(),
        }
    }

    fn out(&self) -> PathBuf {
        self.work.path().join("parent.json")
    }

    /// `treekite parent --out OUT ARGS` in `checkout`, as a job of `api`
    /// and `agent`.
    fn parent(&self, checkout: &Path, api: &FakeApi, agent: &FakeAgent, args: &[&str]) -> Command {
        let mut cmd = treekite();
        cmd.buildkite_job(api, agent)
            .current_dir(checkout)
            .args(["parent", "--out"])
            .arg(self.out())
            .args(args);
        cmd
    }
}

impl Buildkite {
    /// The API lists `builds` (number, commit, state), each `uuid-N`; the
    /// agent serves each one's `drvmap("N")` as `drvmap.json`.
    fn serving(builds: &[(u64, &str, &str)]) -> Buildkite {
        Buildkite::answering(vec![Answer::builds(&listed(builds))], builds)
    }

    /// The API gives `answers`; the agent serves the drvmaps of `builds`.
    fn answering(answers: Vec<Answer>, builds: &[(u64, &str, &str)]) -> Buildkite {
        let buildkite = Buildkite::new(answers);
        for (number, _, _) in builds {
            let tag = number.to_string();
            let uuid = format!("uuid-{number}");
            buildkite
                .agent
                .artifact(&uuid, "drvmap.json", &drvmap(&tag));
        }
        buildkite
    }

    /// `treekite parent ARGS` in `checkout`.
    fn lookup(&self, checkout: &Checkout, args: &[&str]) -> Lookup {
        let job = Job::new();
        let output = job
            .parent(checkout.path(), &self.api, &self.agent, args)
            .output()
            .unwrap();
        Lookup { job, output }
    }
}

/// What one `treekite parent` did.
struct Lookup {
    job: Job,
    output: Output,
}

impl Lookup {
    /// Asserts that it found build `number` at `commit` (`STATE, PLACE`
    /// after it), wrote that build's drvmap, printed nothing else, and
    /// showed no token.
    fn assert_found(&self, number: u64, commit: &str, state_and_place: &str) {
        let line = format!("build #{number} (uuid-{number}) at {commit}, {state_and_place}");
        assert_found(
            &self.output,
            &self.job.out(),
            &line,
            &drvmap(&number.to_string()),
        );
    }

    /// Asserts the "none found" contract (see [`assert_not_found`]).
    fn assert_not_found(&self, why: &str) -> String {
        assert_not_found(&self.output, &self.job.out(), why)
    }
}

/// Asserts that a lookup found `line` (after `treekite: parent: `), wrote
/// `map` to `out`, printed nothing else, and showed no token.
fn assert_found(output: &Output, out: &Path, line: &str, map: &str) {
    let stderr = output.stderr_text();
    assert!(output.status.success(), "stderr: {stderr}");
    assert_eq!(output.stdout_text(), "");
    assert_eq!(stderr, format!("treekite: parent: {line}\n"));
    assert_eq!(read(out), map);
    assert_no_token(output);
}

/// Asserts the "none found" contract: exit 0, nothing on stdout, FILE not
/// written, and exactly one stderr line saying why (holding `why`), then
/// that every target builds. Returns the line.
fn assert_not_found(output: &Output, out: &Path, why: &str) -> String {
    let stderr = output.stderr_text();
    assert!(output.status.success(), "stderr: {stderr}");
    assert_eq!(output.stdout_text(), "");
    assert!(!out.exists(), "{} was written", out.display());
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr}");
    let line = stderr.trim_end().to_owned();
    assert!(
        line.starts_with("treekite: parent: ") && line.ends_with("; building every target"),
        "{line}"
    );
    assert!(line.contains(why), "{line:?} should say {why:?}");
    assert_no_token(output);
    line
}

fn assert_no_token(output: &Output) {
    for text in [output.stdout_text(), output.stderr_text()] {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
    }
}

/// The commits each request asked for.
fn commits_asked(api: &FakeApi) -> Vec<Vec<String>> {
    api.requests()
        .iter()
        .map(|r| {
            r.values("commit[]")
                .into_iter()
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[test]
fn the_parent_is_the_build_at_the_merge_base() {
    let history = History::new();
    let clone = history.clone("feature", &[]);
    let buildkite = Buildkite::serving(&[(12, &history.m2, "passed"), (9, &history.m1, "passed")]);

    let lookup = buildkite.lookup(&clone, &[]);

    lookup.assert_found(12, &history.m2, "passed, merge base of HEAD and main");
    // One call, for the merge base and its two first-parent ancestors.
    assert_eq!(
        commits_asked(&buildkite.api),
        [[history.m2.as_str(), &history.m1, &history.init]]
    );
    // The agent downloads into a directory of its own, removed after.
    let calls = buildkite.agent.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let dir = calls[0]
        .strip_prefix("artifact download --build uuid-12 drvmap.json /")
        .unwrap_or_else(|| panic!("{calls:?}"));
    assert!(!Path::new(&format!("/{dir}")).exists());
}

#[test]
fn the_query_asks_for_exactly_the_candidate_commits_and_states() {
    let history = History::new();
    let clone = history.clone("feature", &[]);
    let buildkite = Buildkite::serving(&[]);

    let lookup = buildkite.lookup(&clone, &["--candidates", "2"]);

    lookup.assert_not_found(
        "no passed or blocked build of the merge base of HEAD and main or the commit before it",
    );
    let requests = buildkite.api.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/v2/organizations/org/pipelines/pipe/builds");
    let keys: Vec<&str> = request.query.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "commit[]",
            "commit[]",
            "state[]",
            "state[]",
            "exclude_jobs",
            "per_page"
        ]
    );
    assert_eq!(request.values("commit[]"), [&history.m2, &history.m1]);
    assert_eq!(request.values("state[]"), ["passed", "blocked"]);
    assert_eq!(request.values("exclude_jobs"), ["true"]);
    assert_eq!(request.values("per_page"), ["100"]);
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert!(buildkite.agent.calls().is_empty(), "nothing to download");
}

#[test]
fn a_missing_build_or_artifact_moves_on_to_the_next_candidate() {
    let history = History::new();
    let clone = history.clone("feature", &[]);

    // The merge base was never built: its parent's build is taken.
    let buildkite = Buildkite::serving(&[(4, &history.init, "passed")]);
    let lookup = buildkite.lookup(&clone, &[]);
    lookup.assert_found(
        4,
        &history.init,
        "passed, 2 commits before the merge base of HEAD and main",
    );

    // The merge base's build has no drvmap: the next candidate's is taken.
    let buildkite = Buildkite::answering(
        vec![Answer::builds(&listed(&[
            (5, &history.m1, "passed"),
            (6, &history.m2, "passed"),
        ]))],
        &[(5, &history.m1, "passed")],
    );
    let lookup = buildkite.lookup(&clone, &[]);
    lookup.assert_found(
        5,
        &history.m1,
        "passed, 1 commit before the merge base of HEAD and main",
    );
    assert_eq!(buildkite.agent.downloads(), ["uuid-6", "uuid-5"]);
}

#[test]
fn of_several_builds_of_one_commit_the_newest_wins_and_the_current_build_is_never_its_own_parent() {
    let history = History::new();
    let clone = history.clone("feature", &[]);
    // Listed out of order; the newest is a blocked build (a release
    // waiting for its prompt), the one after it is the current build.
    let mut builds = listed(&[
        (3, &history.m2, "passed"),
        (9, &history.m2, "blocked"),
        (5, &history.m2, "passed"),
    ]);
    builds.insert(2, build(11, CURRENT_BUILD, &history.m2, "passed"));
    let buildkite = Buildkite::answering(vec![Answer::builds(&builds)], &[]);
    // The artifact at a path with directories: the agent keeps it.
    for (uuid, tag) in [
        ("uuid-3", "3"),
        ("uuid-9", "9"),
        ("uuid-5", "5"),
        (CURRENT_BUILD, "11"),
    ] {
        buildkite
            .agent
            .artifact(uuid, "ci/out/drvmap.json", &drvmap(tag));
    }

    let lookup = buildkite.lookup(&clone, &["--artifact", "ci/out/drvmap.json"]);

    lookup.assert_found(9, &history.m2, "blocked, merge base of HEAD and main");
    assert_eq!(buildkite.agent.downloads(), ["uuid-9"]);
}

#[test]
fn on_the_base_branch_the_parent_is_a_build_of_heads_first_parent() {
    let history = History::new();
    let clone = history.clone("main", &[]);
    let buildkite = Buildkite::serving(&[(20, &history.m4, "passed"), (19, &history.m3, "passed")]);

    let lookup = buildkite.lookup(&clone, &[]);

    lookup.assert_found(19, &history.m3, "passed, HEAD~1 on main");
    assert_eq!(
        commits_asked(&buildkite.api),
        [[history.m3.as_str(), &history.m2, &history.m1]]
    );
}

#[test]
fn a_pull_request_compares_with_its_base_branch() {
    let history = History::new();
    let clone = history.clone("release", &[]);
    clone.git(&["checkout", "-q", "-b", "fix"]);
    clone.commit_file("fix.txt", "g1");
    let buildkite = Buildkite::serving(&[(30, &history.r1, "passed"), (31, &history.m1, "passed")]);
    let pull_request = |number: &str| {
        let job = Job::new();
        let output = job
            .parent(clone.path(), &buildkite.api, &buildkite.agent, &[])
            .env("BUILDKITE_PULL_REQUEST", number)
            .env("BUILDKITE_PULL_REQUEST_BASE_BRANCH", "release")
            .output()
            .unwrap();
        Lookup { job, output }
    };

    pull_request("17").assert_found(30, &history.r1, "passed, merge base of HEAD and release");
    // Not a pull request (`false`): the default branch, whose merge base
    // with HEAD is m1, which has one ancestor.
    pull_request("false").assert_found(31, &history.m1, "passed, merge base of HEAD and main");
    assert_eq!(
        commits_asked(&buildkite.api)[1],
        [history.m1.as_str(), &history.init]
    );
}

#[test]
fn a_shallow_clone_is_deepened_until_the_candidates_are_there() {
    let history = History::new();
    let buildkite = Buildkite::serving(&[(2, &history.init, "passed")]);
    // Depth 1: not even the merge base is there. Depth 3 (f2, f1, m2): the
    // merge base is, but its ancestors are cut off.
    for depth in ["1", "3"] {
        let clone = history.clone("feature", &["--depth", depth]);
        let shallow = clone.git(&["rev-parse", "--is-shallow-repository"]);
        assert_eq!(shallow.trim(), "true");

        let lookup = buildkite.lookup(&clone, &[]);

        let place = "passed, 2 commits before the merge base of HEAD and main";
        lookup.assert_found(2, &history.init, place);
    }
    let all = [history.m2.as_str(), &history.m1, &history.init];
    assert_eq!(commits_asked(&buildkite.api), [all, all]);
}

#[test]
fn a_branch_with_no_common_history_has_no_parent() {
    let history = History::new();
    let clone = history.clone("feature", &[]);
    clone.git(&["checkout", "-q", "--orphan", "lonely"]);
    clone.commit_file("lonely.txt", "alone");
    let buildkite = Buildkite::serving(&[]);

    let lookup = buildkite.lookup(&clone, &[]);

    lookup.assert_not_found("HEAD and main have no common history");
    assert!(buildkite.api.requests().is_empty());
}

#[test]
fn a_rate_limit_answer_is_waited_out_within_the_budget() {
    let history = History::new();
    let clone = history.clone("feature", &[]);
    let builds = [(12, history.m2.as_str(), "passed")];
    let rate_limited = |reset| {
        let answers = vec![
            Answer::RateLimited { reset },
            Answer::builds(&listed(&builds)),
        ];
        Buildkite::answering(answers, &builds)
    };

    // Reset in 1 s: waited for, then asked again.
    let buildkite = rate_limited(1);
    let lookup = buildkite.lookup(&clone, &[]);
    lookup.assert_found(12, &history.m2, "passed, merge base of HEAD and main");
    assert_eq!(buildkite.api.requests().len(), 2);

    // Reset in an hour: beyond the budget, so no wait and no second call.
    let buildkite = rate_limited(3600);
    let lookup = buildkite.lookup(&clone, &[]);
    lookup.assert_not_found("rate-limiting this organization for another 3600 s");
    assert_eq!(buildkite.api.requests().len(), 1);
}

/// A failure case: what the job lacks or what the API answers, and what
/// the one line must say.
struct Failure {
    name: &'static str,
    answers: Vec<Answer>,
    /// Changes to the job's command.
    job: fn(&mut Command, &Path),
    /// Artifacts of build uuid-12 (at the merge base), if any.
    artifact: Option<&'static str>,
    says: &'static str,
}

#[test]
fn every_failure_is_one_line_exit_zero_and_no_file() {
    let history = History::new();
    let clone = history.clone("feature", &[]);
    let builds = Answer::builds(&[build(12, "uuid-12", &history.m2, "passed")]);
    let json = |status: u16, body: &str| Answer::Json(status, body.to_owned());
    let unchanged: fn(&mut Command, &Path) = |_, _| {};
    let cases = [
        Failure {
            name: "no token",
            answers: vec![builds.clone()],
            job: |cmd, _| {
                cmd.env_remove("BUILDKITE_API_TOKEN");
            },
            artifact: None,
            says: "no Buildkite API token; set BUILDKITE_API_TOKEN or pass --token-file",
        },
        Failure {
            name: "an unreadable token file",
            answers: vec![builds.clone()],
            job: |cmd, dir| {
                cmd.arg("--token-file").arg(dir.join("no-such-token"));
            },
            artifact: None,
            says: "cannot use the token file",
        },
        Failure {
            name: "not on Buildkite",
            answers: vec![builds.clone()],
            job: |cmd, _| {
                cmd.env_remove("BUILDKITE_PIPELINE_SLUG");
            },
            artifact: None,
            says: "not on Buildkite (BUILDKITE_PIPELINE_SLUG is not set)",
        },
        Failure {
            name: "not a git checkout",
            answers: vec![builds.clone()],
            job: |cmd, dir| {
                cmd.current_dir(dir);
            },
            artifact: None,
            says: "is not in a git checkout",
        },
        Failure {
            name: "no such base branch",
            answers: vec![builds.clone()],
            job: |cmd, _| {
                cmd.args(["--base", "nope"]);
            },
            artifact: None,
            says: "git fetch origin nope failed: fatal: couldn't find remote ref refs/heads/nope",
        },
        Failure {
            name: "401, echoing the token",
            answers: vec![Answer::EchoAuth(401)],
            job: unchanged,
            artifact: None,
            says: "the Buildkite API answered HTTP 401 (Token rejected: Bearer [token]); check the API token",
        },
        Failure {
            name: "404",
            answers: vec![json(404, r#"{"message": "No pipeline found"}"#)],
            job: unchanged,
            artifact: None,
            says: "HTTP 404 (No pipeline found); check BUILDKITE_ORGANIZATION_SLUG",
        },
        Failure {
            name: "500",
            answers: vec![json(500, "<html>oops</html>")],
            job: unchanged,
            artifact: None,
            says: "the Buildkite API answered HTTP 500",
        },
        Failure {
            name: "a slow server",
            answers: vec![Answer::Hang],
            job: |cmd, _| {
                cmd.env("TREEKITE_BUILDKITE_API_TIMEOUT", "0.3");
            },
            artifact: None,
            says: "the Buildkite API did not answer within 0.3 s",
        },
        Failure {
            name: "malformed JSON",
            answers: vec![json(200, r#"[{"id": "uuid-12", "#)],
            job: unchanged,
            artifact: None,
            says: "the Buildkite API's answer is not a list of builds: EOF",
        },
        Failure {
            name: "JSON that is not builds",
            answers: vec![json(200, r#"{"builds": []}"#)],
            job: unchanged,
            artifact: None,
            says: "the Buildkite API's answer is not a list of builds: invalid type: map",
        },
        Failure {
            name: "no build",
            answers: vec![Answer::builds(&[build(
                13,
                "uuid-13",
                &history.m4,
                "passed",
            )])],
            job: unchanged,
            artifact: None,
            says: "no passed or blocked build of the merge base of HEAD and main or the 2 commits before it",
        },
        Failure {
            name: "no artifact",
            answers: vec![builds.clone()],
            job: unchanged,
            artifact: None,
            says: "no usable drvmap.json in build #12 (#12: `buildkite-agent artifact download` failed (exit status 1): fatal: failed to download artifacts: No artifacts found for downloading)",
        },
        Failure {
            name: "an artifact that is not a drvmap",
            answers: vec![builds.clone()],
            job: unchanged,
            artifact: Some(r#"{"app": "/nix/store/x-app.drv"}"#),
            says: "no usable drvmap.json in build #12 (#12: not a drvmap (label → { drvPath, … }): invalid type: string",
        },
        Failure {
            name: "an artifact that is not JSON",
            answers: vec![builds.clone()],
            job: unchanged,
            artifact: Some("<html>"),
            says: "(#12: not a drvmap (label → { drvPath, … }): expected value",
        },
    ];
    for case in cases {
        let Buildkite { api, agent } = Buildkite::answering(case.answers, &[]);
        if let Some(text) = case.artifact {
            agent.artifact("uuid-12", "drvmap.json", text);
        }
        let job = Job::new();
        let mut cmd = job.parent(clone.path(), &api, &agent, &[]);
        (case.job)(&mut cmd, job.work.path());
        let output = cmd.output().unwrap();
        println!("{}: {}", case.name, output.stderr_text());
        assert_not_found(&output, &job.out(), case.says);
    }
}

#[test]
fn bad_usage_is_exit_two() {
    let job = Job::new();
    let Buildkite { api, agent } = Buildkite::serving(&[]);
    let cases: [(&[&str], &[&str]); 4] = [
        (&["--candidates", "0"], &["--candidates", "1..=50"]),
        (
            &["--api-url", "ftp://example"],
            &["--api-url", "not an http(s) URL"],
        ),
        (&["--artifact", "*.json"], &["not an artifact path"]),
        (&["--base=-x"], &["not a branch name"]),
    ];
    for (args, mentions) in cases {
        let output = job
            .parent(job.work.path(), &api, &agent, args)
            .output()
            .unwrap();
        assert_bad_input(&output, mentions);
    }
    let output = treekite()
        .buildkite_job(&api, &agent)
        .args(["parent", "--out"])
        .arg(job.work.path())
        .output()
        .unwrap();
    assert_bad_input(&output, &["is a directory"]);
    let output = treekite()
        .buildkite_job(&api, &agent)
        .args(["parent", "--out"])
        .arg(job.work.path().join("missing/parent.json"))
        .output()
        .unwrap();
    assert_bad_input(&output, &["does not exist"]);
    assert!(api.requests().is_empty() && agent.calls().is_empty());
}

/// Each target step's label and `skip`.
fn target_skips(dir: &Path) -> Vec<(String, Value)> {
    let mut skips: Vec<(String, Value)> = chunks(dir)
        .into_values()
        .flatten()
        .filter(|step| {
            step["label"]
                .as_str()
                .is_some_and(|l| l.starts_with(":nix: "))
        })
        .map(|step| {
            (
                step["label"].as_str().unwrap().to_owned(),
                step["skip"].clone(),
            )
        })
        .collect();
    skips.sort_by(|a, b| a.0.cmp(&b.0));
    skips
}

/// Asserts that only the changed target builds.
fn assert_only_fmt_builds(dir: &Path) {
    let skips = target_skips(dir);
    let expected: Vec<(String, Value)> = [
        ":nix: apps/hello",
        ":nix: apps/tools:fmt",
        ":nix: libs/greeting",
        ":nix: libs/shout",
    ]
    .iter()
    .map(|label| {
        let skip = if label.ends_with(":fmt") {
            Value::Bool(false)
        } else {
            Value::from("Target has not changed.")
        };
        (label.to_string(), skip)
    })
    .collect();
    assert_eq!(skips, expected);
}

#[test]
fn pipeline_with_parent_buildkite_skips_every_unchanged_target() {
    require_nix();
    let example = ExampleBuild::new();
    let out = example.work.path().join("feature");

    let assert = example.feature_pipeline(&out).assert().success();

    let stderr = assert.stderr_text();
    let found = format!(
        "treekite: parent: build #1 (uuid-1) at {}, passed, merge base of HEAD and main\n",
        example.history.head()
    );
    assert!(stderr.starts_with(&found), "{stderr}");
    assert_eq!(assert.stdout_text(), "");
    assert_only_fmt_builds(&out);
    assert_eq!(example.buildkite.agent.downloads(), ["uuid-1"]);

    // Without a token there is no parent: one line says so, and the
    // pipeline builds every target.
    let assert = example
        .feature_pipeline(&out)
        .env_remove("BUILDKITE_API_TOKEN")
        .assert()
        .success();
    let stderr = assert.stderr_text();
    assert!(
        stderr.starts_with("treekite: parent: no Buildkite API token; ")
            && stderr
                .lines()
                .next()
                .unwrap()
                .ends_with("; building every target"),
        "{stderr}"
    );
    let skips = target_skips(&out);
    assert_eq!(skips.len(), 4);
    assert!(skips.iter().all(|(_, skip)| skip == false), "{skips:?}");
    // The summary says so too.
    let summary = read(out.join("summary.md"));
    assert!(
        summary.contains("**Parent:** no Buildkite API token; set BUILDKITE\\_API\\_TOKEN"),
        "{summary}"
    );
    assert!(summary.contains("; building every target\n"), "{summary}");
    assert!(
        summary.contains("**Targets:** 4 — 4 to build, 0 unchanged"),
        "{summary}"
    );
}

#[test]
fn pipeline_with_a_local_parent_file_skips_the_same_way() {
    require_nix();
    let example = ExampleBuild::new();
    let out = example.work.path().join("feature");

    // A relative path, from another directory: the depot still reads it.
    let assert = example_pipeline(&example.feature_depot(), &out)
        .not_on_buildkite()
        .current_dir(example.work.path())
        .args(["--parent", "base/drvmap.json"])
        .assert()
        .success();

    let local = std::fs::canonicalize(example.base_drvmap()).unwrap();
    let line = format!("treekite: parent: local drvmap {}\n", local.display());
    assert!(
        assert.stderr_text().starts_with(&line),
        "{}",
        assert.stderr_text()
    );
    assert_only_fmt_builds(&out);
}

#[test]
fn pipeline_parent_bad_usage_is_exit_two() {
    let depot = Depot::new();
    depot.write("default.nix", "{ ... }: { }");
    depot.write("not-a-drvmap.json", r#"{"steps": []}"#);
    let out = depot.path().join("out");
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["--parent", "missing.json"],
            &["--parent missing.json", "No such file"],
        ),
        (
            &["--parent", "not-a-drvmap.json"],
            &["--parent not-a-drvmap.json is not a drvmap"],
        ),
        (
            &["--base", "main"],
            &["--base only matters with --parent buildkite"],
        ),
        (
            &["--parent", "not-a-drvmap.json", "--candidates", "2"],
            &["--candidates only matters with --parent buildkite"],
        ),
        (
            &["--parent", "buildkite", "--argstr", "parentDrvmap", "x"],
            &["--parent passes `parentDrvmap`"],
        ),
    ];
    for (args, mentions) in cases {
        let output = example_pipeline(depot.path(), &out)
            .not_on_buildkite()
            .current_dir(depot.path())
            .args(args)
            .output()
            .unwrap();
        assert_bad_input(&output, mentions);
        assert!(!out.exists());
    }
}
