//! `depends_on` from the derivation graph, and batching under Buildkite's
//! jobs-per-build limit, on a small depot whose builds succeed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{NIX_CONFIG, nix, nonce, require_nix, stdout_of};
use serde_json::Value;
use tempfile::TempDir;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/deps")
}

fn treekite() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("treekite").unwrap();
    cmd.env("NIX_CONFIG", NIX_CONFIG);
    cmd
}

/// A depot state of its own: `nonce` makes every derivation new.
struct Deps {
    nonce: String,
}

impl Deps {
    fn new() -> Deps {
        require_nix();
        Deps { nonce: nonce() }
    }

    fn generate(&self, extra: &[&str]) -> TempDir {
        let out = tempfile::tempdir().unwrap();
        treekite()
            .args(["pipeline", "--root"])
            .arg(fixture())
            .args(["-A", "pipeline", "--out"])
            .arg(out.path().join("p"))
            .args(["--argstr", "nonce", &self.nonce])
            .args(extra)
            .assert()
            .success();
        out
    }

    fn key(&self, attr: &str) -> String {
        let drv = stdout_of(nix("nix-instantiate").arg(fixture()).args([
            "-A",
            attr,
            "--argstr",
            "nonce",
            &self.nonce,
        ]));
        let base = drv.trim().rsplit('/').next().unwrap().to_owned();
        format!("drv-{}", &base[..32])
    }
}

fn build_steps(out: &TempDir) -> Vec<Value> {
    let dir = out.path().join("p");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("build-chunk-")
        })
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            let doc: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
            doc["steps"].as_array().unwrap().clone()
        })
        .collect()
}

/// label → depends_on keys.
fn edges(steps: &[Value]) -> BTreeMap<String, Vec<String>> {
    steps
        .iter()
        .filter(|s| s.get("depends_on").is_some())
        .map(|s| {
            let deps = s["depends_on"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_owned())
                .collect();
            (
                s["label"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches(":nix: ")
                    .to_owned(),
                deps,
            )
        })
        .collect()
}

#[test]
fn targets_depend_on_the_nearest_targets_they_need() {
    let deps = Deps::new();
    let out = deps.generate(&[]);
    let k = |attr: &str| deps.key(attr);
    let expected: BTreeMap<String, Vec<String>> = [
        ("alias, base", vec![]),
        ("d1", vec![k("base")]),
        ("d2", vec![k("base")]),
        ("leaf", vec![]),
        ("pkgs:sub", vec![]),
        // The diamond: only the nearest targets, not //base below them.
        ("top", vec![k("d1"), k("d2")]),
        // A subtarget is a target like any other.
        ("user", vec![k("pkgs.sub")]),
        // //alias and //base are one step, so one edge; the extra dep stays.
        ("usesAlias", vec!["extra-check".to_owned(), k("base")]),
        // Through the non-target intermediate and toolchain.
        ("viaTool", vec![k("base")]),
    ]
    .into_iter()
    .map(|(label, keys)| (label.to_owned(), keys))
    .collect();
    assert_eq!(edges(&build_steps(&out)), expected);
}

#[test]
fn unchanged_targets_are_not_waited_for() {
    let deps = Deps::new();
    let first = deps.generate(&[]);
    // A drvmap in which only //base (and its alias) are unchanged.
    let drvmap: Value =
        serde_json::from_str(&std::fs::read_to_string(first.path().join("p/drvmap.json")).unwrap())
            .unwrap();
    let partial = serde_json::json!({ "base": drvmap["base"], "alias": drvmap["alias"] });
    let file = first.path().join("partial.json");
    std::fs::write(&file, partial.to_string()).unwrap();

    let second = deps.generate(&["--argstr", "parentDrvmap", file.to_str().unwrap()]);
    let steps = build_steps(&second);
    let by_label = edges(&steps);
    assert_eq!(by_label["d1"], Vec::<String>::new());
    assert_eq!(by_label["viaTool"], Vec::<String>::new());
    assert_eq!(by_label["usesAlias"], ["extra-check"]);
    assert_eq!(by_label["top"], [deps.key("d1"), deps.key("d2")]);
    let base = steps
        .iter()
        .find(|s| s["label"] == ":nix: alias, base")
        .unwrap();
    assert_eq!(base["skip"], "Target has not changed.");
}

#[test]
fn dependencies_can_be_turned_off() {
    let deps = Deps::new();
    let out = deps.generate(&["--arg", "dependencies", "false"]);
    for (label, keys) in edges(&build_steps(&out)) {
        let expected: &[&str] = if label == "usesAlias" {
            &["extra-check"]
        } else {
            &[]
        };
        assert_eq!(keys, expected, "{label}");
    }
}

/// The batch (step key) each target's key ended up in.
fn batch_of(steps: &[Value], deps: &Deps, attrs: &[&str]) -> BTreeMap<String, String> {
    attrs
        .iter()
        .map(|attr| {
            let drv_key = deps.key(attr);
            let hash = drv_key.trim_start_matches("drv-");
            let step = steps
                .iter()
                .find(|s| s["command"].as_str().unwrap().contains(hash))
                .unwrap_or_else(|| panic!("no step builds {attr}"));
            (attr.to_string(), step["key"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[test]
fn batching_keeps_every_dependency() {
    let deps = Deps::new();
    let out = treekite_batched(&deps);
    let steps = build_steps(&out);
    assert!(
        steps.len() <= 5,
        "{} steps for a limit of 5 jobs",
        steps.len()
    );
    assert_eq!(steps.last().unwrap()["key"], "extra-check");
    let attrs = [
        "base",
        "d1",
        "d2",
        "top",
        "leaf",
        "pkgs.sub",
        "user",
        "usesAlias",
        "viaTool",
    ];
    let batch = batch_of(&steps, &deps, &attrs);
    // Every edge between targets is an edge between batches (or inside one).
    let needs = [
        ("d1", "base"),
        ("d2", "base"),
        ("top", "d1"),
        ("top", "d2"),
        ("user", "pkgs.sub"),
        ("usesAlias", "base"),
        ("viaTool", "base"),
    ];
    let step_deps: BTreeMap<String, BTreeSet<String>> = steps
        .iter()
        .map(|s| {
            let keys = s["depends_on"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| d.as_str().unwrap().to_owned())
                .collect();
            (s["key"].as_str().unwrap().to_owned(), keys)
        })
        .collect();
    for (needer, needed) in needs {
        let (a, b) = (&batch[needer], &batch[needed]);
        assert!(
            a == b || step_deps[a].contains(b),
            "{needer} ({a}) does not wait for {needed} ({b}): {step_deps:#?}"
        );
    }
    for (key, keys) in &step_deps {
        assert!(!keys.contains(key), "{key} depends on itself");
    }
}

fn treekite_batched(deps: &Deps) -> TempDir {
    let out = tempfile::tempdir().unwrap();
    treekite()
        .args(["pipeline", "--root"])
        .arg(fixture())
        .args(["-A", "pipeline", "--out"])
        .arg(out.path().join("p"))
        .args(["--argstr", "nonce", &deps.nonce, "--arg", "maxJobsPerBuild", "5"])
        .assert()
        .success()
        .stderr(predicates::str::contains("treekite: warning: 10 jobs would exceed maxJobsPerBuild (5); built 9 targets in 3 steps of up to 3 targets each"));
    out
}

/// The batched pipeline really runs: every batch starts only after the
/// batches it needs have passed, even with two steps at once.
#[test]
fn a_batched_pipeline_runs_in_dependency_order() {
    let deps = Deps::new();
    let out = treekite_batched(&deps);
    let run = treekite()
        .arg("run")
        .arg(out.path().join("p"))
        .args(["-j", "2", "--branch", "main", "--log-dir"])
        .arg(out.path().join("logs"))
        .arg("--root")
        .arg(fixture())
        .assert()
        .success();
    let stderr = String::from_utf8(run.get_output().stderr.clone()).unwrap();
    let events: Vec<(String, String)> = stderr
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let (event, rest) = line.split_once("  ")?;
            Some((event.to_owned(), rest.split("  (").next()?.to_owned()))
        })
        .filter(|(event, _)| event == "started" || event == "passed")
        .collect();
    let when = |event: &str, label: &str| {
        events
            .iter()
            .position(|(e, l)| e == event && l == label)
            .unwrap_or_else(|| panic!("no {event} {label}: {stderr}"))
    };
    let steps = build_steps(&out);
    let label_of: BTreeMap<String, String> = steps
        .iter()
        .map(|s| {
            (
                s["key"].as_str().unwrap().to_owned(),
                s["label"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut checked = 0;
    for step in &steps {
        for dep in step["depends_on"].as_array().into_iter().flatten() {
            let needer = step["label"].as_str().unwrap();
            let needed = &label_of[dep.as_str().unwrap()];
            assert!(
                when("passed", needed) < when("started", needer),
                "{needer} started before {needed} passed:\n{stderr}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 3, "too few edges to prove anything: {steps:#?}");
    // Every target was built, each by its batch.
    for attr in ["base", "top", "user", "viaTool"] {
        let out_path = stdout_of(
            nix("nix-store").args(["--query", "--outputs"]).arg(
                stdout_of(nix("nix-instantiate").arg(fixture()).args([
                    "-A",
                    attr,
                    "--argstr",
                    "nonce",
                    &deps.nonce,
                ]))
                .trim(),
            ),
        );
        assert!(Path::new(out_path.trim()).exists(), "{attr} was not built");
    }
}
