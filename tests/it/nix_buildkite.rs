//! nix/buildkite's functions, evaluated with real Nix on targets made in
//! the test (their builders fail: evaluation must never build them).

use serde_json::json;

use crate::support::*;

/// `body`, to evaluate strictly to JSON, with `buildkite` (the library) and
/// `target name attrs` (a failing derivation at `__readTree = [ name ]`,
/// with `attrs` merged in) in scope.
fn eval(body: &str) -> NixExpr {
    NixExpr::new(format!(
        "{{ repo }}:
        let
          buildkite = import (/. + repo + \"/nix/buildkite\") {{ }};
          drv = name: derivation {{ inherit name; system = builtins.currentSystem; builder = \"/bin/sh\"; args = [ \"-c\" \"exit 1\" ]; }};
          target = name: attrs: drv name // {{ __readTree = [ name ]; }} // attrs;
          pipeline = args: buildkite.mkPipeline ({{ headBranch = \"main\"; }} // args);
          buildSteps = args: builtins.concatLists (pipeline args).chunks.build;
        in {body}"
    ))
    .arg("repo", repo())
    .read_write()
}

fn drv_path(name: &str) -> String {
    let path = eval(&format!("(drv \"{name}\").drvPath")).value();
    path.as_str().unwrap().to_owned()
}

/// The one test that spells out the step-key formula: `drv-` and the first
/// 32 characters of the `.drv`'s file name (its hash). Every other test
/// asks `keyForDrv` or finds steps by label.
#[test]
fn key_for_drv_is_drv_and_the_hash_of_the_drv_path() {
    assert_eq!(
        eval(r#"buildkite.keyForDrv "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-k.drv""#).value(),
        "drv-0123456789abcdfghijklmnpqrsvwxyz"
    );
}

#[test]
fn key_for_drv_takes_a_derivation_or_its_path() {
    let path = drv_path("k");
    assert_eq!(
        eval("buildkite.keyForDrv (drv \"k\")").value(),
        key_for_drv(&path)
    );
    assert!(
        eval("buildkite.keyForDrv 42")
            .error()
            .contains("keyForDrv: expected a derivation or a .drv path, got a int")
    );
}

#[test]
fn build_commands_quote_for_the_shell_and_the_upload() {
    let cmd = eval(
        r#"buildkite.mkBuildCommand { attrPath = [ "a" "it's" "$x" "\\$y" ]; drvPath = "/nix/store/x.drv"; outLink = "res ult"; }"#,
    )
    .value();
    assert_eq!(
        cmd,
        r#"treekite build --drv '/nix/store/x.drv' --attr-path '["a","it'\''s","$$x","\\$$y"]' --out-link 'res ult'"#
    );
    // An odd run of backslashes before a `$` is kept apart from it, as the
    // agent would otherwise read `\$` as an escape.
    let odd = eval(
        r#"buildkite.mkBuildCommand { attrPath = null; drvPath = "/nix/store/x.drv"; outLink = "a\\$b"; treekite = "/opt/bin/treekite"; }"#,
    )
    .value();
    assert_eq!(
        odd,
        r"/opt/bin/treekite build --drv '/nix/store/x.drv' --out-link 'a\''$$b'"
    );
}

#[test]
fn step_fields_follow_target_metadata() {
    let steps = eval(
        r#"map (s: { inherit (s) label skip; timeout = s.timeout_in_minutes or null; cancel = s.cancel_on_build_failing or null; extra = s.extra or null; queue = s.agents.queue or null; }) (buildSteps {
          cancelOnBuildFailing = true;
          defaultStepOverrides = { agents.queue = "nix"; };
          drvTargets = [
            (target "t1" { meta.timeout = 1; })
            (target "t60" { meta.timeout = 60; })
            (target "t61" { meta.timeout = 61; meta.ci.buildkiteExtraStepArgs = { extra = true; agents.queue = "big"; }; })
            (target "skipped" { meta.ci.skip = true; })
            (target "because" { meta.ci.skip = "flaky, see #12"; })
            (target "long" { meta.ci.skip = builtins.concatStringsSep "" (builtins.genList (_: "x") 71); })
          ];
        })"#,
    )
    .value();
    assert_eq!(
        steps,
        json!([
            { "label": ":nix: t1", "skip": false, "timeout": 1, "cancel": true, "extra": null, "queue": "nix" },
            { "label": ":nix: t60", "skip": false, "timeout": 1, "cancel": true, "extra": null, "queue": "nix" },
            { "label": ":nix: t61", "skip": false, "timeout": 2, "cancel": true, "extra": true, "queue": "big" },
            { "label": ":nix: skipped", "skip": "Target is marked meta.ci.skip.", "timeout": null, "cancel": true, "extra": null, "queue": "nix" },
            { "label": ":nix: because", "skip": "flaky, see #12", "timeout": null, "cancel": true, "extra": null, "queue": "nix" },
            { "label": ":nix: long", "skip": "Target is marked meta.ci.skip.", "timeout": null, "cancel": true, "extra": null, "queue": "nix" },
        ])
    );
}

#[test]
fn additional_and_post_build_steps_go_to_their_phases() {
    let pipeline = eval(
        r#"let p = pipeline {
          drvTargets = [ (target "t" { }) ];
          additionalSteps = [ { label = "fmt"; command = "fmt"; } ];
          postBuildSteps = [ { label = "report"; command = "report"; } ];
        }; in { phases = p.phases; build = map (s: s.label) (builtins.concatLists p.chunks.build); release = map (s: s.label) (builtins.concatLists p.chunks.release); }"#,
    )
    .value();
    assert_eq!(
        pipeline,
        json!({ "phases": ["build", "release"], "build": [":nix: t", "fmt"], "release": ["report"] })
    );
}

#[test]
fn parent_override_builds_the_overridden_parent() {
    let step = eval(
        r#"builtins.elemAt (buildSteps {
          drvTargets = [ (target "t" { meta.ci.extraSteps.e = {
            command = drv "script";
            needsOutput = true;
            parentOverride = _: drv "other";
          }; }) ];
        }) 1"#,
    )
    .value();
    let other = drv_path("other");
    let command = step["command"].as_str().unwrap();
    assert!(
        command.starts_with(&format!(
            "treekite build --drv '{other}' --out-link 'result' && treekite exec --drv "
        )),
        "{command}"
    );
    // The override cannot be re-created from an attribute path, and the
    // parent's own step builds something else: nothing to wait for.
    assert_eq!(step["depends_on"], json!([]));
}

#[test]
fn extra_step_mistakes_are_named() {
    let prompt_in_build = eval(
        r#"buildSteps { drvTargets = [ (target "t" { meta.ci.extraSteps.e = { command = drv "s"; prompt = "Sure?"; }; }) ]; }"#,
    )
    .error();
    assert!(prompt_in_build.contains("extra step 'e' of t: a step with `prompt` waits for a person, so it cannot be in the build phase"), "{prompt_in_build}");
    let not_a_drv = eval(
        r#"buildSteps { drvTargets = [ (target "t" { meta.ci.extraSteps.e = { command = "echo hi"; }; }) ]; }"#,
    )
    .error();
    assert!(
        not_a_drv.contains("extra step 'e' of t: `command` must be a derivation"),
        "{not_a_drv}"
    );
}

#[test]
fn the_pipeline_is_plain_data() {
    // Everything converts to JSON: no derivation, function or path in it.
    let value = eval(
        r#"builtins.fromJSON (builtins.toJSON (pipeline { drvTargets = [ (target "t" { }) ]; }))"#,
    )
    .value();
    assert_eq!(value["type"], "treekite-pipeline");
    assert_eq!(
        value["settings"],
        json!({ "chunkSize": 192, "dependencies": true, "maxJobsPerBuild": 4000, "treekite": "treekite" })
    );
}
