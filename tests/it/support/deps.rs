//! The `tests/fixtures/deps` depot: targets that need each other, some
//! through derivations that are not targets (a toolchain chain, an
//! intermediate), and builders that succeed, so its pipeline can be run.

use std::path::PathBuf;
use std::process::Command;

use assert_cmd::prelude::*;
use tempfile::TempDir;

use super::{fixture, instantiate, nonce, treekite_pipeline};

/// The depot in a state of its own: `nonce` makes every derivation new.
pub struct Deps {
    nonce: String,
}

impl Deps {
    /// Where the fixture is.
    pub fn depot() -> PathBuf {
        fixture("deps")
    }

    pub fn new() -> Deps {
        Deps { nonce: nonce() }
    }

    /// `treekite pipeline` of the depot in this state with `extra`
    /// arguments, into `p` in `out`.
    pub fn pipeline(&self, out: &TempDir, extra: &[&str]) -> Command {
        let mut args = vec!["--argstr", "nonce", &self.nonce];
        args.extend(extra);
        treekite_pipeline(&Deps::depot(), "pipeline", &out.path().join("p"), &args)
    }

    pub fn generate(&self, extra: &[&str]) -> TempDir {
        let out = tempfile::tempdir().unwrap();
        self.pipeline(&out, extra).assert().success();
        out
    }

    /// The pipeline under a limit of 5 jobs: batched.
    pub fn generate_batched(&self) -> TempDir {
        let out = tempfile::tempdir().unwrap();
        self.pipeline(&out, &["--arg", "maxJobsPerBuild", "5"])
            .assert()
            .success()
            .stderr(predicates::str::contains("treekite: warning: 10 jobs would exceed maxJobsPerBuild (5); built 9 targets in 3 steps of up to 3 targets each"));
        out
    }

    /// The `.drv` of `attr` in this depot state.
    pub fn drv(&self, attr: &str) -> String {
        instantiate([
            Deps::depot().as_os_str(),
            "-A".as_ref(),
            attr.as_ref(),
            "--argstr".as_ref(),
            "nonce".as_ref(),
            self.nonce.as_ref(),
        ])
    }
}
