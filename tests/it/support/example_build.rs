//! The example depot with a history: `main` was built on Buildkite (a
//! fake one), and a clone works on a feature branch where one target
//! changed. Where `--parent buildkite`, `summary.md` and `treekite
//! explain` are tried end to end.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::prelude::*;
use tempfile::TempDir;

use super::{Answer, Buildkite, BuildkiteCommand, Checkout, listed, read, treekite_pipeline};

/// The example depot in a checkout whose `main` was built: that build's
/// `drvmap.json`, from a real `treekite pipeline`, is an artifact of the
/// API's only build, #1 (`uuid-1`). A clone works on `feature`, where
/// `apps/tools:fmt` changed.
pub struct ExampleBuild {
    pub history: Checkout,
    pub work: TempDir,
    pub buildkite: Buildkite,
    pub clone: Checkout,
}

impl ExampleBuild {
    pub fn new() -> ExampleBuild {
        let history = Checkout::new();
        history.git(&["branch", "-q", "-M", "main"]);
        history.copy_tracked(&["examples", "nix"]);
        history.commit_all("the example depot");
        let work = tempfile::tempdir().unwrap();
        let base = work.path().join("base");
        example_pipeline(&history.path().join("examples"), &base)
            .not_on_buildkite()
            .assert()
            .success();
        let built = listed(&[(1, &history.head(), "passed")]);
        let buildkite = Buildkite::new(vec![Answer::builds(&built)]);
        let drvmap = read(base.join("drvmap.json"));
        buildkite.agent.artifact("uuid-1", "drvmap.json", &drvmap);

        let clone = Checkout::clone_of(&history, &[]);
        clone.git(&["checkout", "-q", "-b", "feature"]);
        let tools = "examples/apps/tools/default.nix";
        let text = read(clone.path().join(tools)).replace("a formatter", "a better formatter");
        clone.commit_file(tools, &text);
        ExampleBuild {
            history,
            work,
            buildkite,
            clone,
        }
    }

    /// The base build's drvmap.
    pub fn base_drvmap(&self) -> PathBuf {
        self.work.path().join("base/drvmap.json")
    }

    /// The example depot on the feature branch.
    pub fn feature_depot(&self) -> PathBuf {
        self.clone.path().join("examples")
    }

    /// `treekite pipeline --parent buildkite` of the feature branch into
    /// `out`, as a job of the fake Buildkite.
    pub fn feature_pipeline(&self, out: &Path) -> Command {
        let mut cmd = example_pipeline(&self.feature_depot(), out);
        cmd.buildkite_job(&self.buildkite.api, &self.buildkite.agent)
            .args(["--parent", "buildkite"]);
        cmd
    }
}

/// `treekite pipeline --root DEPOT -A ci.pipeline --out OUT`: an example
/// depot's pipeline.
pub fn example_pipeline(depot: &Path, out: &Path) -> Command {
    treekite_pipeline(depot, "ci.pipeline", out, &[])
}
