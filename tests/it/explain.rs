//! `summary.md` and `treekite explain`: why each step runs, waits or is
//! skipped, read from what `treekite pipeline` kept. End to end on the
//! example depot's feature branch against a fake Buildkite parent; chains
//! of derivations and batches on the `deps` fixture; targets skipped by
//! their metadata, a phase generated alone, hostile labels and bad input
//! on the `pipeline` fixture.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use assert_cmd::prelude::*;
use serde_json::Value;
use tempfile::TempDir;

use crate::support::*;

/// `treekite explain DIR TARGET`.
fn explain(dir: &Path, target: &str) -> Output {
    treekite()
        .arg("explain")
        .arg(dir)
        .arg(target)
        .output()
        .unwrap()
}

/// What `treekite explain DIR TARGET` printed, which must succeed quietly.
fn explained(dir: &Path, target: &str) -> String {
    let output = explain(dir, target);
    assert!(
        output.status.success(),
        "explain {target}: {}",
        output.stderr_text()
    );
    assert_eq!(output.stderr_text(), "", "explain {target}");
    output.stdout_text()
}

/// The value of `name: value` in explain's output.
fn field<'a>(text: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name}: ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name}: in\n{text}"))
}

/// The indented lines under `name:` in explain's output.
fn items<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let header = format!("{name}:");
    text.lines()
        .skip_while(|line| *line != header)
        .skip(1)
        .map_while(|line| line.strip_prefix("  "))
        .collect()
}

/// Every step in a pipeline directory (group members too), by label.
fn steps_by_label(dir: &Path) -> BTreeMap<String, Value> {
    let mut steps = BTreeMap::new();
    for step in chunks(dir).into_values().flatten() {
        for inner in step["steps"].as_array().into_iter().flatten() {
            steps.insert(
                inner["label"].as_str().unwrap_or("").to_owned(),
                inner.clone(),
            );
        }
        let label = step["label"].as_str().or(step["group"].as_str()).unwrap();
        steps.insert(label.to_owned(), step);
    }
    steps
}

fn key_of(steps: &BTreeMap<String, Value>, label: &str) -> String {
    steps[label]["key"].as_str().unwrap().to_owned()
}

/// The drvPath a drvmap file gives `label`.
fn drv_in(drvmap: &Path, label: &str) -> String {
    read_json(drvmap)[label]["drvPath"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_feature_branch_summary_names_the_parent_and_explain_says_why() {
    require_nix();
    let example = ExampleBuild::new();
    let out = example.work.path().join("feature");
    example
        .feature_pipeline(&out)
        .env("BUILDKITE_BRANCH", "feature")
        .assert()
        .success();
    let commit = example.history.head();
    let steps = steps_by_label(&out);

    // The summary: the parent build and commit, the one changed target,
    // every other target (and its extra steps) skipped as unchanged, and
    // the release step left out on this branch.
    assert_eq!(
        read(out.join("summary.md")),
        format!(
            "#### treekite pipeline

**Parent:** build #1 (`uuid-1`) at `{commit}`, passed, merge base of HEAD and main

**Targets:** 4 — 1 to build, 3 unchanged, 0 skipped by `meta.ci.skip`, 0 broken

| phase | steps | jobs | chunks | skipped: unchanged | skipped: `meta.ci.skip` | skipped: broken | skipped: other | left out on `feature` |
| :-- | --: | --: | --: | --: | --: | --: | --: | --: |
| build | 6 | 6 | 1 | 5 | 0 | 0 | 0 | 0 |
| release | 1 | 3 | 1 | 1 | 0 | 0 | 0 | 1 |

**Changed targets** (1 to build):

- `apps/tools:fmt`

Why a step runs, waits or is skipped: `treekite explain <pipeline directory> <label or step key>`.
"
        )
    );

    // A skipped target: unchanged since the parent, with the same drvPath.
    let hello = explained(&out, "apps/hello");
    let hello_drv = drv_in(&out.join("drvmap.json"), "apps/hello");
    assert_eq!(field(&hello, "key"), key_of(&steps, ":nix: apps/hello"));
    assert_eq!(field(&hello, "phase"), "build");
    assert_eq!(field(&hello, "chunk"), "build-chunk-1.json");
    assert_eq!(
        field(&hello, "status"),
        format!(
            "skipped: unchanged since the parent build #1 (uuid-1) at {commit}: the same drvPath {hello_drv} for apps/hello"
        )
    );
    assert_eq!(
        items(&hello, "waits for"),
        [
            "(no target: treekite adds no edges to a skipped step, and a skipped target is never waited for)"
        ]
    );
    let smoke = key_of(&steps, ":gear: smoke test (from apps/hello)");
    assert!(
        items(&hello, "needed by")
            .contains(&format!(":gear: smoke test (from apps/hello) ({smoke})").as_str()),
        "{hello}"
    );

    // The changed target: the parent had another derivation.
    let fmt = explained(&out, "apps/tools:fmt");
    assert_eq!(
        field(&fmt, "status"),
        format!(
            "runs: changed since the parent build #1 (uuid-1) at {commit}: it had {} for apps/tools:fmt; now {}",
            drv_in(&example.base_drvmap(), "apps/tools:fmt"),
            drv_in(&out.join("drvmap.json"), "apps/tools:fmt"),
        )
    );
    assert_eq!(field(&fmt, "waits for"), "nothing");

    // An extra step, by key: skipped with its target, whose reason it gives.
    let text = explained(&out, &smoke);
    assert_eq!(field(&text, "step"), ":gear: smoke test (from apps/hello)");
    assert_eq!(
        field(&text, "status"),
        format!(
            "skipped: Parent target is skipped. (:nix: apps/hello: {})",
            field(&hello, "status")
        )
    );
    assert_eq!(
        items(&text, "waits for"),
        [format!(
            ":nix: apps/hello ({}): the target it belongs to",
            field(&hello, "key")
        )]
    );

    // The release step, behind a prompt, runs on main only.
    let deploy = key_of(&steps, ":gear: deploy (from apps/hello)");
    let text = explained(&out, &deploy);
    assert_eq!(
        field(&text, "status"),
        "left out of the build: branch feature does not match `branches: main`"
    );
    assert!(field(&text, "otherwise").starts_with("skipped: Parent target is skipped."));
    assert!(
        field(&text, "group").ends_with(&format!("({deploy}-group)")),
        "{text}"
    );

    // `treekite run` says where the summary is.
    let run = treekite()
        .arg("run")
        .arg(&out)
        .args(["--phase", "release", "--branch", "feature", "--root"])
        .arg(example.feature_depot())
        .arg("--log-dir")
        .arg(example.work.path().join("logs"))
        .assert()
        .success();
    let line = format!(
        "treekite: the pipeline's summary is {}; `treekite explain {} TARGET` says why a step runs, waits or is skipped",
        out.join("summary.md").display(),
        out.display()
    );
    assert!(run.stderr_text().contains(&line), "{}", run.stderr_text());
}

#[test]
fn explain_shows_the_derivations_behind_each_edge() {
    let deps = Deps::new();
    let out = deps.generate(&[]);
    let dir = out.path().join("p");
    let base = key_for_drv(&deps.drv("base"));
    let key = |attr: &str| key_for_drv(&deps.drv(attr));

    // Through a derivation that is not a target.
    let text = explained(&dir, "viaTool");
    assert_eq!(
        field(&text, "status"),
        "runs: no parent was asked for (no --parent), so every target builds"
    );
    assert_eq!(
        items(&text, "waits for"),
        [format!(
            "alias, base ({base}): viaTool ← intermediate.drv ← alias"
        )]
    );
    // Directly, twice.
    assert_eq!(
        items(&explained(&dir, "top"), "waits for"),
        [
            format!("d1 ({}): top ← d1", key("d1")),
            format!("d2 ({}): top ← d2", key("d2")),
        ]
    );
    // An explicit depends_on, marked as such.
    assert_eq!(
        items(&explained(&dir, "usesAlias"), "waits for"),
        [
            format!("alias, base ({base}): usesAlias ← alias"),
            "extra check (extra-check): an explicit depends_on (meta.ci.buildkiteExtraDeps)"
                .to_owned(),
        ]
    );
    // Two labels, one step, found by either label or by its key; every
    // step waiting for it is listed.
    let by_key = explained(&dir, &base);
    assert_eq!(explained(&dir, "base"), by_key);
    assert_eq!(field(&by_key, "target"), "alias, base");
    let mut needed_by = items(&by_key, "needed by");
    needed_by.sort_unstable();
    let mut expected: Vec<String> = ["d1", "d2", "usesAlias", "viaTool"]
        .map(|attr| format!(":nix: {attr} ({})", key(attr)))
        .to_vec();
    expected.sort_unstable();
    assert_eq!(needed_by, expected);

    // With the analysis off there is no chain to show, and explain says so.
    let off = deps.generate(&["--arg", "dependencies", "false"]);
    let text = explained(&off.path().join("p"), "viaTool");
    assert_eq!(
        items(&text, "waits for"),
        [
            "(dependency analysis was off: mkPipeline { dependencies = false; }, so only explicit depends_on)"
        ]
    );
}

#[test]
fn a_batched_target_names_its_batch() {
    let deps = Deps::new();
    let out = deps.generate_batched();
    let dir = out.path().join("p");
    // The step whose command builds //d1, and how many targets it builds.
    let d1 = deps.drv("d1");
    let step = chunks(&dir)
        .into_values()
        .flatten()
        .find(|s| s["command"].as_str().is_some_and(|c| c.contains(&d1)))
        .unwrap();
    let key = step["key"].as_str().unwrap();
    let others = step["command"].as_str().unwrap().matches("--drv ").count() - 1;

    let text = explained(&dir, "d1");
    let batch = field(&text, "batch");
    let plural = if others == 1 { "" } else { "s" };
    assert!(
        batch.starts_with(&format!(
            "{key} builds it with {others} other target{plural}: "
        )),
        "{batch}"
    );
    assert_eq!(field(&text, "key"), key);
    // The batch's key is a target's key: explaining it names the batch too.
    assert!(field(&explained(&dir, key), "batch").starts_with(key));
    let summary = read(dir.join("summary.md"));
    assert!(
        summary.contains("**Batching:** 10 jobs would exceed maxJobsPerBuild (5); built 9 targets in 3 steps of up to 3 targets each\n"),
        "{summary}"
    );
}

/// `treekite pipeline` of the `pipeline` fixture's `attr` into `OUT/p`.
fn fixture_pipeline(attr: &str, args: &[&str]) -> TempDir {
    let out = tempfile::tempdir().unwrap();
    treekite_pipeline(&fixture("pipeline"), attr, &out.path().join("p"), args)
        .assert()
        .success();
    out
}

#[test]
fn targets_skipped_by_their_metadata_say_which_metadata() {
    let out = fixture_pipeline("skippedParent", &[]);
    let dir = out.path().join("p");

    let broken = explained(&dir, "broken");
    assert_eq!(
        field(&broken, "status"),
        "skipped: marked broken (meta.broken); its derivation is never evaluated"
    );
    assert!(field(&broken, "key").starts_with("skipped-"));
    let tools = explained(&dir, "tools");
    assert_eq!(
        field(&tools, "status"),
        "skipped by meta.ci.skip: not today; its derivation is never evaluated"
    );
    // The broken target's extra step is skipped with it.
    let steps = steps_by_label(&dir);
    let smoke = explained(&dir, &key_of(&steps, ":gear: smoke (from broken)"));
    assert_eq!(
        field(&smoke, "status"),
        format!(
            "skipped: Parent target is skipped. (:nix: broken: {})",
            field(&broken, "status")
        )
    );
    let summary = read(dir.join("summary.md"));
    for line in [
        "**Targets:** 2 — 0 to build, 0 unchanged, 1 skipped by `meta.ci.skip`, 1 broken\n",
        "| build | 4 | 4 | 1 | 0 | 1 | 2 | 0 | 0 |\n",
        "**Changed targets:** none; no target builds.\n",
    ] {
        assert!(summary.contains(line), "{line} in\n{summary}");
    }
}

#[test]
fn an_extra_step_of_a_phase_generated_alone_waits_for_no_target() {
    let out = fixture_pipeline("pipeline", &["--arg", "activePhases", "[ \"release\" ]"]);
    let dir = out.path().join("p");
    let steps = steps_by_label(&dir);
    let text = explained(&dir, &key_of(&steps, ":gear: deploy (from app)"));
    assert_eq!(field(&text, "phase"), "release");
    assert!(
        items(&text, "waits for").contains(
            &"(not its target's step: that is in the build phase, which this pipeline did not generate (phases: release))"
        ),
        "{text}"
    );
    // Its target has no step here at all.
    assert_bad_input(
        &explain(&dir, "app"),
        &["it has no target steps: the build phase was not generated (phases: release)"],
    );
}

#[test]
fn labels_cannot_break_the_summary_or_the_terminal() {
    let names = ["a|b", "x`y", "*em*", "<b>", "new\nline\u{1b}[2J"];
    let json = serde_json::to_string(&names).unwrap();
    let out = fixture_pipeline("named", &["--argstr", "names", &json]);
    let dir = out.path().join("p");
    let summary = read(dir.join("summary.md"));
    for shown in [
        "- `named/a|b`\n",
        "- ``named/x`y``\n",
        "- `named/*em*`\n",
        "- `named/<b>`\n",
        "- `named/new\\nline\\u{1b}[2J`\n",
    ] {
        assert!(summary.contains(shown), "{shown:?} in\n{summary}");
    }
    let text = explained(&dir, "named/new\nline\u{1b}[2J");
    assert_eq!(field(&text, "target"), "named/new\\nline\\u{1b}[2J");
    assert!(!text.contains('\u{1b}'));
}

#[test]
fn bad_targets_and_directories_are_bad_input() {
    let out = fixture_pipeline("pipeline", &[]);
    let dir = out.path().join("p");

    let line = assert_bad_input(
        &explain(&dir, "apq"),
        &["no target labelled or step keyed `apq`"],
    );
    assert!(line.contains("closest: `app`"), "{line}");

    // A newer treekite's explain.json is refused, not misread.
    let file = dir.join("explain.json");
    let mut record = read_json(&file);
    record["version"] = Value::from(99);
    std::fs::write(&file, record.to_string()).unwrap();
    assert_bad_input(&explain(&dir, "app"), &["written by a newer treekite"]);

    // A directory from before explain.
    std::fs::remove_file(&file).unwrap();
    assert_bad_input(
        &explain(&dir, "app"),
        &["has no explain.json: it was written by a treekite without explain; regenerate it"],
    );
    assert_bad_input(
        &explain(&out.path().join("missing"), "app"),
        &["does not exist"],
    );
}
