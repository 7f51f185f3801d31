//! `treekite build` against the real Nix store, one module per concern.

mod bad_input;
mod collected_drv;
mod failure;
mod gcroots;
mod out_links;
mod outputs;
mod several_targets;

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::*;

/// A depot body with one target, `t`.
const T: &str = r#"t = sh "t" "echo t > $out";"#;

/// The same with three, `a`, `b` and `c`.
const ABC: &str =
    r#"a = sh "a" "echo a > $out"; b = sh "b" "echo b > $out"; c = sh "c" "echo c > $out";"#;

impl NixFixture {
    /// `treekite build ARGS` run in the depot.
    fn build(&self, args: &[&str]) -> Output {
        self.treekite()
            .arg("build")
            .args(args)
            .current_dir(self.depot.path())
            .output()
            .unwrap()
    }

    /// `treekite build --drv DRV --out-link LINK` run in the depot.
    fn build_to(&self, drv: &str, link: &Path) -> Output {
        self.build(&["--drv", drv, "--out-link", arg(link)])
    }

    /// The `.drv` and output path of `depot.<attr>`.
    fn target(&self, attr: &str) -> (String, String) {
        (
            self.drv(attr),
            self.depot.out_path(&format!("depot.{attr}")),
        )
    }

    /// Where treekite puts the default link for `drv`'s output `output`.
    fn default_link(&self, drv: &str, output: &str) -> PathBuf {
        let stem = Path::new(drv)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .strip_suffix(".drv")
            .unwrap();
        let name = if output == "out" {
            stem.to_owned()
        } else {
            format!("{stem}-{output}")
        };
        self.gcroots.path().join(name)
    }
}

/// Asserts success with exactly `paths` on stdout, one per line.
fn assert_prints(output: &Output, paths: &[&str]) {
    let stderr = output.stderr_text();
    assert!(output.status.success(), "treekite build failed: {stderr}");
    let expected: String = paths.iter().map(|p| format!("{p}\n")).collect();
    assert_eq!(output.stdout_text(), expected, "stderr:\n{stderr}");
}

fn link_target(link: &Path) -> String {
    std::fs::read_link(link)
        .unwrap_or_else(|e| panic!("{} is no link: {e}", link.display()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// A path as the `&str` an argument list wants.
fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Lines of stderr that are treekite's "re-evaluated to a different drv" note.
fn differs_notes(output: &Output) -> Vec<String> {
    output
        .stderr_text()
        .lines()
        .filter(|l| l.starts_with("treekite: ") && l.contains("no longer exists"))
        .map(str::to_owned)
        .collect()
}
