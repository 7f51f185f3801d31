//! `treekite pipeline` on a fixture depot whose every builder fails: making
//! the pipeline must succeed, so it provably builds nothing.

mod control_characters;
mod deps;
mod dir_swap;
mod progress;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use assert_cmd::prelude::*;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::*;

/// The names of the fixture's `weird` subtargets (its weird/default.nix
/// spells them by hand).
const WEIRD_NAMES: [&str; 9] = [
    "a b",
    "x\"y",
    "$HOME",
    "${x}",
    "back\\slash",
    "back\\$dollar",
    "new\nline",
    "é",
    "it's",
];

/// The fixture depot.
fn depot() -> PathBuf {
    fixture("pipeline")
}

/// The `.drv` of an attribute of the fixture depot.
fn drv(attr: &str) -> String {
    instantiate([depot().as_os_str(), "-A".as_ref(), attr.as_ref()])
}

/// The `.drv` of `weird.<name>`: `-A` cannot spell every name, so the name
/// goes in as data.
fn weird_drv(name: &str) -> String {
    NixExpr::new("{ depotDir, name }: (import (/. + depotDir) { }).weird.${name}")
        .arg("depotDir", depot())
        .arg("name", name)
        .instantiate()
}

/// Runs `treekite pipeline` on the fixture with `extra` arguments, into a
/// fresh directory, and returns it.
fn generate(attr: &str, extra: &[&str]) -> TempDir {
    let out = tempfile::tempdir().unwrap();
    treekite_pipeline(&depot(), attr, out.path(), extra)
        .assert()
        .success();
    out
}

/// Asserts that `treekite pipeline -A ATTR ARGS` exits `code`, saying
/// `message` (anywhere on stderr: Nix's error comes before treekite's),
/// and makes no output directory.
fn assert_cannot_make(attr: &str, args: &[&str], code: i32, message: &str) {
    let out = tempfile::tempdir().unwrap();
    treekite_pipeline(&depot(), attr, &out.path().join("p"), args)
        .assert()
        .code(code)
        .stderr(predicates::str::contains(message));
    assert!(!out.path().join("p").exists());
}

/// The chunk files in a generated directory.
fn chunk_files(dir: &Path) -> Vec<PathBuf> {
    chunks(dir).keys().map(|f| dir.join(f)).collect()
}

/// `python3 bkcheck.py ARGS`: ../shared/buildkite/bkcheck.py checks files
/// together, as the uploads of one build.
fn bkcheck(args: &[&std::ffi::OsStr]) -> Output {
    Command::new("python3")
        .arg(repo().join("../shared/buildkite/bkcheck.py"))
        .args(args)
        .output()
        .unwrap()
}

/// Checks every chunk file in `dir` with bkcheck.
fn assert_bkcheck_accepts(dir: &Path) {
    let files = chunk_files(dir);
    let args: Vec<&std::ffi::OsStr> = files.iter().map(|f| f.as_os_str()).collect();
    let result = bkcheck(&args);
    assert!(
        result.status.success(),
        "bkcheck rejected {files:?}: {}{}",
        result.stdout_text(),
        result.stderr_text()
    );
}

fn steps(dir: &Path, file: &str) -> Vec<Value> {
    chunks(dir)
        .remove(file)
        .unwrap_or_else(|| panic!("no {file} in {}", dir.display()))
}

fn step_labelled<'a>(steps: &'a [Value], label: &str) -> &'a Value {
    steps
        .iter()
        .find(|s| s["label"] == label || s["group"] == label)
        .unwrap_or_else(|| panic!("no step labelled {label:?} in {steps:#?}"))
}

/// The `.drv`s a step's command builds (`--drv '…'`).
fn drvs_of(step: &Value) -> Vec<String> {
    let command = step["command"].as_str().unwrap_or_default();
    command
        .split("--drv '")
        .skip(1)
        .map(|rest| rest.split('\'').next().unwrap().to_owned())
        .collect()
}

/// The steps that build targets (a batch of them, when batched): labelled
/// `:nix: …`, with a `.drv` to build.
fn target_steps(steps: &[Value]) -> Vec<&Value> {
    steps
        .iter()
        .filter(|s| s["label"].as_str().is_some_and(|l| l.starts_with(":nix: ")))
        .filter(|s| !drvs_of(s).is_empty())
        .collect()
}

/// The jobs Buildkite counts for the steps of `files`: one a step, and one
/// for each step in a group.
fn jobs(files: &BTreeMap<String, Vec<Value>>) -> usize {
    files
        .values()
        .flatten()
        .map(|s| 1 + s["steps"].as_array().map_or(0, Vec::len))
        .sum()
}

#[test]
fn making_the_pipeline_builds_nothing() {
    let out = generate("pipeline", &[]);
    assert_eq!(
        chunks(out.path()).keys().collect::<Vec<_>>(),
        ["build-chunk-1.json", "release-chunk-1.json"]
    );
    // The builders all fail, so no output can exist; the .drv files must.
    for attr in [
        "tools",
        "app",
        "app.meta.ci.extraSteps.check.command",
        "app.meta.ci.extraSteps.deploy.command",
    ] {
        let drv = drv(attr);
        assert!(Path::new(&drv).exists());
        for output in outputs_of(&drv) {
            assert!(!Path::new(&output).exists(), "{output} was built");
        }
    }
}

#[test]
fn target_steps_are_tvl_shaped() {
    let out = generate("pipeline", &[]);
    let build = steps(out.path(), "build-chunk-1.json");
    let (tools, app) = (drv("tools"), drv("app"));
    assert_eq!(
        step_labelled(&build, ":nix: app"),
        &json!({
            "label": ":nix: app",
            "key": key_for_drv(&app),
            "command": format!("treekite build --drv '{app}' --attr-path '[\"app\"]'"),
            "env": { "READTREE_TARGET": "app" },
            "skip": false,
            "depends_on": [key_for_drv(&tools)],
            "timeout_in_minutes": 3,
            "priority": 2,
        })
    );
}

#[test]
fn extra_steps_run_their_script_in_the_step() {
    let out = generate("pipeline", &[]);
    let build = steps(out.path(), "build-chunk-1.json");
    let app = drv("app");
    let script = |name: &str| drv(&format!("app.meta.ci.extraSteps.{name}.command"));
    let path_of =
        |name: &str| format!("'[\"app\",\"meta\",\"ci\",\"extraSteps\",\"{name}\",\"command\"]'");
    let check = step_labelled(&build, ":gear: check (from app)");
    assert_eq!(
        check["command"],
        format!(
            "treekite build --drv '{app}' --attr-path '[\"app\"]' --out-link 'result' && treekite exec --drv '{}' --attr-path {}",
            script("check"),
            path_of("check")
        )
    );
    assert_eq!(check["depends_on"], json!([key_for_drv(&app)]));
    assert!(check["key"].as_str().unwrap().starts_with("extra-step-"));

    let lint = step_labelled(&build, ":gear: Lint (from app)");
    assert_eq!(lint["soft_fail"], true);
    assert_eq!(lint["branches"], "main release/*");
    assert_eq!(
        lint["command"],
        format!(
            "treekite exec --drv '{}' --attr-path {}",
            script("lint"),
            path_of("lint")
        )
    );

    // Each target's extra steps come right after it.
    let labels: Vec<&str> = build.iter().map(|s| s["label"].as_str().unwrap()).collect();
    let at = labels.iter().position(|l| *l == ":nix: app").unwrap();
    assert_eq!(
        labels[at..at + 4],
        [
            ":nix: app",
            ":gear: always (from app)",
            ":gear: check (from app)",
            ":gear: Lint (from app)"
        ]
    );
}

#[test]
fn a_prompt_makes_a_group_with_a_block() {
    let out = generate("pipeline", &[]);
    let release = steps(out.path(), "release-chunk-1.json");
    let app = drv("app");
    let group = step_labelled(&release, "deploy (from app)");
    let step_key = group["key"]
        .as_str()
        .unwrap()
        .strip_suffix("-group")
        .unwrap()
        .to_owned();
    assert_eq!(
        group,
        &json!({
            "group": "deploy (from app)",
            "key": format!("{step_key}-group"),
            "depends_on": [key_for_drv(&app)],
            "skip": false,
            "steps": [
                {
                    "block": ":radio_button: Run deploy? (from app)",
                    "key": format!("{step_key}-block"),
                    "prompt": "Deploy app?",
                },
                {
                    "label": ":gear: deploy (from app)",
                    "key": step_key,
                    "command": format!(
                        "treekite exec --drv '{}' --attr-path '[\"app\",\"meta\",\"ci\",\"extraSteps\",\"deploy\",\"command\"]'",
                        drv("app.meta.ci.extraSteps.deploy.command")
                    ),
                    "agents": { "queue": "deploy" },
                    "depends_on": [format!("{step_key}-block")],
                },
            ],
        })
    );
}

#[test]
fn active_phases_limit_what_is_generated() {
    let out = generate("pipeline", &["--arg", "activePhases", "[ \"release\" ]"]);
    let files = chunks(out.path());
    assert_eq!(files.keys().collect::<Vec<_>>(), ["release-chunk-1.json"]);
    // Without the build phase there is no parent step to wait for.
    let group = step_labelled(&files["release-chunk-1.json"], "deploy (from app)");
    assert_eq!(group["depends_on"], json!([]));
}

#[test]
fn an_unknown_phase_is_named() {
    assert_cannot_make(
        "unknownPhase",
        &[],
        1,
        "extra step 'ship' of tools: phase 'deploy' is not one of the pipeline's phases (build, release)",
    );
}

#[test]
fn unchanged_targets_are_skipped_unless_always_run() {
    let first = generate("pipeline", &[]);
    let drvmap = first.path().join("drvmap.json");
    let map = read_json(&drvmap);
    assert_eq!(
        map["app"],
        json!({ "drvPath": drv("app"), "attrPath": ["app"] })
    );
    assert_eq!(map["weird:a b"]["attrPath"], json!(["weird", "a b"]));
    assert!(
        map.get("broken").is_none(),
        "a broken target has no drvPath to record"
    );

    let second = generate(
        "pipeline",
        &["--argstr", "parentDrvmap", drvmap.to_str().unwrap()],
    );
    let build = steps(second.path(), "build-chunk-1.json");
    assert_eq!(
        step_labelled(&build, ":nix: app")["skip"],
        "Target has not changed."
    );
    assert_eq!(
        step_labelled(&build, ":gear: check (from app)")["skip"],
        "Parent target is skipped."
    );
    assert_eq!(
        step_labelled(&build, ":gear: always (from app)")["skip"],
        false
    );
    let release = steps(second.path(), "release-chunk-1.json");
    assert_eq!(
        step_labelled(&release, "deploy (from app)")["skip"],
        "Parent target is skipped."
    );
}

#[test]
fn targets_sharing_a_derivation_share_a_step() {
    let out = generate("pipeline", &[]);
    let build = steps(out.path(), "build-chunk-1.json");
    let tools = key_for_drv(&drv("tools"));
    let with_key: Vec<&Value> = build
        .iter()
        .filter(|s| s["key"] == tools.as_str())
        .collect();
    assert_eq!(with_key.len(), 1);
    assert_eq!(with_key[0]["label"], ":nix: alias, tools");
    let map = read_json(out.path().join("drvmap.json"));
    assert_eq!(map["alias"]["drvPath"], map["tools"]["drvPath"]);
}

#[test]
fn a_broken_target_is_skipped_without_evaluating_it() {
    let out = generate("pipeline", &[]);
    let build = steps(out.path(), "build-chunk-1.json");
    let broken = step_labelled(&build, ":nix: broken");
    assert_eq!(broken["skip"], "Target is marked broken.");
}

#[test]
fn chunks_hold_at_most_192_steps() {
    let out = generate("chunked", &[]);
    let files = chunks(out.path());
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["build-chunk-1.json", "build-chunk-2.json"]
    );
    assert_eq!(files["build-chunk-1.json"].len(), 192);
    assert_eq!(files["build-chunk-2.json"].len(), 1);
    assert_eq!(files["build-chunk-2.json"][0]["label"], ":nix: many/t192");
}

#[test]
fn every_generated_file_passes_bkcheck() {
    for (attr, extra) in [
        ("pipeline", vec![]),
        ("chunked", vec![]),
        ("pipeline", vec!["--arg", "activePhases", "[ \"release\" ]"]),
    ] {
        assert_bkcheck_accepts(generate(attr, &extra).path());
    }
}

/// A stand-in for treekite that records its arguments, NUL-separated.
fn recording_treekite(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    write_executable(
        &bin.join("treekite"),
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > \"$ARGV_FILE\"\n",
    );
    bin
}

#[test]
fn hostile_names_reach_treekite_intact() {
    let out = generate("pipeline", &[]);
    // What the agent would run: the files after upload-time interpolation.
    let uploaded = tempfile::tempdir().unwrap();
    let files = chunk_files(out.path());
    let mut args = vec!["--interpolate-out".as_ref(), uploaded.path().as_os_str()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let check = bkcheck(&args);
    assert!(check.status.success(), "{}", check.stdout_text());

    let build = steps(uploaded.path(), "build-chunk-1.json");
    let bin = recording_treekite(uploaded.path());
    let mut received = BTreeMap::new();
    for step in build
        .iter()
        .filter(|s| s["label"].as_str().unwrap().starts_with(":nix: weird:"))
    {
        let argv_file = uploaded.path().join("argv");
        let status = Command::new("bash")
            .args(["-e", "-c", step["command"].as_str().unwrap()])
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("ARGV_FILE", &argv_file)
            .env("HOME", "/home/somebody")
            .status()
            .unwrap();
        assert!(status.success());
        let argv = read(&argv_file);
        let argv: Vec<&str> = argv.trim_end_matches('\0').split('\0').collect();
        assert_eq!(
            [argv[0], argv[1], argv[3]],
            ["build", "--drv", "--attr-path"]
        );
        let attr_path: Vec<String> = serde_json::from_str(argv[4]).unwrap();
        assert_eq!(attr_path[0], "weird");
        received.insert(attr_path[1].clone(), argv[2].to_owned());
    }
    let mut names = WEIRD_NAMES.to_vec();
    names.sort();
    assert_eq!(received.keys().collect::<Vec<_>>(), names);
    for name in names {
        assert_eq!(received[name], weird_drv(name), "the .drv of {name:?}");
    }
}

#[test]
fn bad_input_leaves_the_output_untouched() {
    let out = tempfile::tempdir().unwrap();
    let pipeline = out.path().join("pipeline");
    std::fs::create_dir(&pipeline).unwrap();
    std::fs::write(pipeline.join("build-chunk-1.json"), "old").unwrap();
    let cases: [(&str, i32, &str); 3] = [
        ("noSuchAttr", 1, "evaluating noSuchAttr in"),
        ("notAPipeline", 2, "notAPipeline in"),
        ("broken", 1, "evaluating broken in"),
    ];
    for (attr, code, message) in cases {
        println!("case: {attr}");
        let output = treekite_pipeline(&depot(), attr, &pipeline, &[])
            .output()
            .unwrap();
        assert_error(&output, code, &[message]);
        assert_eq!(entries(&pipeline), [pipeline.join("build-chunk-1.json")]);
        assert_eq!(read(pipeline.join("build-chunk-1.json")), "old");
    }
    let leftovers = std::fs::read_dir(out.path()).unwrap().count();
    assert_eq!(leftovers, 1, "staging directories were left behind");
}

#[test]
fn not_a_pipeline_says_what_it_is() {
    assert_cannot_make(
        "notAPipeline",
        &[],
        2,
        "is not a pipeline (it evaluates to a set with hello); point -A at the result of nix/buildkite's mkPipeline",
    );
}

#[test]
fn an_extra_step_needing_a_target_skipped_by_its_metadata_says_so() {
    // The parents have no derivation; the pipeline must still be made.
    let out = generate("skippedParent", &[]);
    let build = steps(out.path(), "build-chunk-1.json");
    let smoke = step_labelled(&build, ":gear: smoke (from broken)");
    assert_eq!(smoke["skip"], "Parent target is skipped.");
    let report = step_labelled(&build, ":gear: report (from tools)");
    assert_eq!(report["skip"], false, "alwaysRun");
    assert_eq!(
        report["command"],
        "echo 'report needs the output of tools, which is not built: not today' >&2; exit 1"
    );
    assert_bkcheck_accepts(out.path());
}

#[test]
fn batching_keeps_to_the_job_limit_and_to_every_dependency() {
    // 7 jobs are not target builds (a skipped target, 3 extra steps, a
    // prompt's group of 3); the 11 targets need 3 steps (app differs in
    // priority and timeout, the weird ones are alike, tools alone).
    let out = generate("pipeline", &["--arg", "maxJobsPerBuild", "10"]);
    let files = chunks(out.path());
    let all: Vec<&Value> = files.values().flatten().collect();
    assert!(jobs(&files) <= 10, "{} jobs", jobs(&files));

    // Every built target is in exactly one step's command, once.
    let build = &files["build-chunk-1.json"];
    let batches = target_steps(build);
    let mut built: Vec<String> = batches.iter().flat_map(|s| drvs_of(s)).collect();
    built.sort();
    let mut expected = vec![drv("tools"), drv("app")];
    expected.extend(WEIRD_NAMES.map(weird_drv));
    expected.sort();
    assert_eq!(built, expected);

    // A batch comes after the batches it needs, and extra steps follow
    // the batch holding their parent.
    let keys: Vec<&str> = all.iter().filter_map(|s| s["key"].as_str()).collect();
    let batch_of = |drv: &str| {
        batches
            .iter()
            .find(|s| drvs_of(s).iter().any(|d| d == drv))
            .unwrap()["key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (tools, app) = (batch_of(&drv("tools")), batch_of(&drv("app")));
    if tools != app {
        let app_step = batches.iter().find(|s| s["key"] == app.as_str()).unwrap();
        assert!(
            app_step["depends_on"]
                .as_array()
                .unwrap()
                .contains(&json!(tools))
        );
    }
    assert_eq!(
        step_labelled(build, ":gear: check (from app)")["depends_on"],
        json!([app])
    );
    for step in &all {
        for dep in step["depends_on"].as_array().into_iter().flatten() {
            assert!(keys.contains(&dep.as_str().unwrap()), "{dep} names no step");
        }
    }
    assert_bkcheck_accepts(out.path());
}

#[test]
fn a_job_limit_batching_cannot_meet_is_an_error() {
    assert_cannot_make(
        "pipeline",
        &["--arg", "maxJobsPerBuild", "9"],
        2,
        "leaves 2 steps for the targets within maxJobsPerBuild (9), but batching needs 3",
    );
}

#[test]
fn batching_keeps_skipped_targets_apart_from_the_rest() {
    // A parent drvmap naming tools and every other weird target: skipped
    // and unskipped targets alternate in dependency order.
    let first = generate("pipeline", &[]);
    let Value::Object(full) = read_json(first.path().join("drvmap.json")) else {
        panic!("a drvmap is a set")
    };
    let mut weird: Vec<&String> = full.keys().filter(|k| k.starts_with("weird:")).collect();
    weird.sort();
    let unchanged: Vec<&String> = weird
        .into_iter()
        .step_by(2)
        .chain(full.keys().filter(|k| *k == "tools"))
        .collect();
    let parent: serde_json::Map<String, Value> = unchanged
        .iter()
        .map(|k| ((*k).clone(), full[k.as_str()].clone()))
        .collect();
    let parent_file = first.path().join("parent.json");
    std::fs::write(&parent_file, serde_json::to_string(&parent).unwrap()).unwrap();

    let out = generate(
        "pipeline",
        &[
            "--argstr",
            "parentDrvmap",
            parent_file.to_str().unwrap(),
            "--arg",
            "maxJobsPerBuild",
            "10",
        ],
    );
    let files = chunks(out.path());
    assert!(jobs(&files) <= 10, "{} jobs", jobs(&files));
    for step in target_steps(&files["build-chunk-1.json"]) {
        let targets: Vec<&str> = step["env"]["READTREE_TARGET"]
            .as_str()
            .unwrap()
            .split(',')
            .collect();
        let skipped = step["skip"] != false;
        for target in targets {
            let unescaped = target.replace("$$", "$");
            let named = unchanged
                .iter()
                .any(|k| **k == unescaped || (unescaped == "alias" && *k == "tools"));
            assert_eq!(named, skipped, "{target} in {step:#}");
        }
    }
    assert_bkcheck_accepts(out.path());
}
