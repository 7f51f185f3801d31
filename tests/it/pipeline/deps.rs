//! `depends_on` from the derivation graph, and batching under Buildkite's
//! jobs-per-build limit, on a small depot whose builds succeed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use assert_cmd::prelude::*;
use serde_json::Value;
use tempfile::TempDir;

use crate::support::*;

/// The steps of the build phase, in order.
fn build_steps(out: &TempDir) -> Vec<Value> {
    chunks(&out.path().join("p"))
        .into_iter()
        .filter(|(name, _)| name.starts_with("build-chunk-"))
        .flat_map(|(_, steps)| steps)
        .collect()
}

/// A step's label without the `:nix: ` of target steps.
fn label(step: &Value) -> String {
    step["label"]
        .as_str()
        .unwrap()
        .trim_start_matches(":nix: ")
        .to_owned()
}

/// label → the labels of the steps it depends on, for the steps that have
/// `depends_on`: a key that names no step fails the test.
fn edges(steps: &[Value]) -> BTreeMap<String, Vec<String>> {
    let label_of: BTreeMap<&str, String> = steps
        .iter()
        .map(|s| (s["key"].as_str().unwrap(), label(s)))
        .collect();
    steps
        .iter()
        .filter(|s| s.get("depends_on").is_some())
        .map(|s| {
            let deps = s["depends_on"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let key = d.as_str().unwrap();
                    label_of
                        .get(key)
                        .unwrap_or_else(|| panic!("{} depends on {key}, no step's key", label(s)))
                        .clone()
                })
                .collect();
            (label(s), deps)
        })
        .collect()
}

/// The step holding //base, which //alias names too.
const BASE: &str = "alias, base";

#[test]
fn targets_depend_on_the_nearest_targets_they_need() {
    let deps = Deps::new();
    let out = deps.generate(&[]);
    let expected: BTreeMap<String, Vec<String>> = [
        (BASE, vec![]),
        ("d1", vec![BASE]),
        ("d2", vec![BASE]),
        ("leaf", vec![]),
        ("pkgs:sub", vec![]),
        // The diamond: only the nearest targets, not //base below them.
        ("top", vec!["d1", "d2"]),
        // A subtarget is a target like any other.
        ("user", vec!["pkgs:sub"]),
        // //alias and //base are one step, so one edge; the extra dep stays.
        ("usesAlias", vec!["extra check", BASE]),
        // Through the non-target intermediate and toolchain.
        ("viaTool", vec![BASE]),
    ]
    .into_iter()
    .map(|(label, needs)| {
        (
            label.to_owned(),
            needs.into_iter().map(str::to_owned).collect(),
        )
    })
    .collect();
    assert_eq!(edges(&build_steps(&out)), expected);
}

#[test]
fn unchanged_targets_are_not_waited_for() {
    let deps = Deps::new();
    let first = deps.generate(&[]);
    // A drvmap in which only //base (and its alias) are unchanged.
    let drvmap = read_json(first.path().join("p/drvmap.json"));
    let partial = serde_json::json!({ "base": drvmap["base"], "alias": drvmap["alias"] });
    let file = first.path().join("partial.json");
    std::fs::write(&file, partial.to_string()).unwrap();

    let second = deps.generate(&["--argstr", "parentDrvmap", file.to_str().unwrap()]);
    let steps = build_steps(&second);
    let by_label = edges(&steps);
    assert_eq!(by_label["d1"], Vec::<String>::new());
    assert_eq!(by_label["viaTool"], Vec::<String>::new());
    assert_eq!(by_label["usesAlias"], ["extra check"]);
    assert_eq!(by_label["top"], ["d1", "d2"]);
    let base = steps
        .iter()
        .find(|s| s["label"] == format!(":nix: {BASE}"))
        .unwrap();
    assert_eq!(base["skip"], "Target has not changed.");
}

#[test]
fn dependencies_can_be_turned_off() {
    let deps = Deps::new();
    let out = deps.generate(&["--arg", "dependencies", "false"]);
    for (label, needs) in edges(&build_steps(&out)) {
        let expected: &[&str] = if label == "usesAlias" {
            &["extra check"]
        } else {
            &[]
        };
        assert_eq!(needs, expected, "{label}");
    }
}

/// The batch (step key) each target's `.drv` ended up in.
fn batch_of(steps: &[Value], deps: &Deps, attrs: &[&str]) -> BTreeMap<String, String> {
    attrs
        .iter()
        .map(|attr| {
            let drv = deps.drv(attr);
            let step = steps
                .iter()
                .find(|s| s["command"].as_str().unwrap().contains(&drv))
                .unwrap_or_else(|| panic!("no step builds {attr}"));
            (attr.to_string(), step["key"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[test]
fn batching_keeps_every_dependency() {
    let deps = Deps::new();
    let out = deps.generate_batched();
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

/// The batched pipeline really runs: every batch starts only after the
/// batches it needs have passed, even with two steps at once.
#[test]
fn a_batched_pipeline_runs_in_dependency_order() {
    let deps = Deps::new();
    let out = deps.generate_batched();
    let run = treekite()
        .arg("run")
        .arg(out.path().join("p"))
        .args(["-j", "2", "--branch", "main", "--log-dir"])
        .arg(out.path().join("logs"))
        .arg("--root")
        .arg(Deps::depot())
        .assert()
        .success();
    let stderr = run.stderr_text();
    let events = progress(&stderr);
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
        for output in outputs_of(&deps.drv(attr)) {
            assert!(Path::new(&output).exists(), "{attr} was not built");
        }
    }
}
