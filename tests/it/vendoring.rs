//! treekite vendored in a depot the readTree way (issue 13): this checkout's
//! tracked files copied to `third_party/treekite` of the depot in
//! tests/fixtures/vendoring, with the junk a working checkout also has.
//! The depot's readTree must read only treekite's `default.nix`, so that
//! the depot's pipeline holds the depot's targets and nothing of ours.
//!
//! `package` (the binary, built with nixpkgs' `buildRustPackage`) cannot be
//! built here: there is no nixpkgs. It is evaluated against
//! tests/fixtures/stub-nixpkgs.nix, whose `buildRustPackage` returns the
//! arguments it got; the tests check those, and the source it would build.

use std::path::{Path, PathBuf};

use assert_cmd::prelude::*;
use serde_json::{Value, json};

use crate::support::*;

/// Where the depot keeps treekite.
const VENDORED: &str = "third_party/treekite";

/// The depot's own targets, and all its pipeline must hold.
const DEPOT_TARGETS: [&str; 2] = ["apps/one", "apps/two"];

/// The vendoring depot in a temporary directory.
fn vendoring_depot() -> Depot {
    let depot = Depot::new();
    copy_tracked("tests/fixtures/vendoring", depot.path());
    let treekite = depot.path().join(VENDORED);
    copy_tracked(".", &treekite);
    // What a working checkout has besides: build output holding a file
    // readTree would choke on, and a `result` link from `nix-build`.
    depot.write(
        &format!("{VENDORED}/target/default.nix"),
        "this is not Nix {",
    );
    std::os::unix::fs::symlink(treekite.join("target"), treekite.join("result")).unwrap();
    depot
}

/// Nix's value for `pkgs`: the stub nixpkgs, or nothing.
#[derive(Clone, Copy)]
enum Pkgs {
    Stub,
    Absent,
}

impl Pkgs {
    /// The Nix expression for it (paths as string literals).
    fn expr(self) -> String {
        match self {
            Pkgs::Stub => format!(
                "import {}",
                nix_str(&fixture("stub-nixpkgs.nix").to_string_lossy())
            ),
            Pkgs::Absent => "null".to_owned(),
        }
    }
}

/// `body` evaluated with `depot` bound to the vendoring depot's value for
/// `pkgs`, and `treekite` to the treekite node in it.
fn in_depot(depot: &Depot, pkgs: Pkgs, body: &str) -> NixExpr {
    NixExpr::new(format!(
        "{{ depotDir }}:
        let
          depot = import (/. + depotDir) {{ pkgs = {pkgs}; }};
          treekite = depot.{attr};
        in {body}",
        pkgs = pkgs.expr(),
        attr = VENDORED.replace('/', "."),
    ))
    .arg("depotDir", depot.path())
    .read_write()
}

/// The labels of the targets `readTree.gather` finds in the depot.
fn gathered(depot: &Depot, pkgs: Pkgs) -> Value {
    in_depot(depot, pkgs, "depot.ci.labels").value()
}

#[test]
fn the_depots_pipeline_holds_only_the_depots_targets() {
    let depot = vendoring_depot();
    let out = tempfile::tempdir().unwrap();
    let pipeline = out.path().join("pipeline");
    treekite()
        .gcroots(out.path().join("gcroots"))
        .args(["pipeline", "--root"])
        .arg(depot.path())
        .args(["-A", "ci.pipeline", "--out"])
        .arg(&pipeline)
        .args(["--arg", "pkgs", &Pkgs::Stub.expr()])
        .assert()
        .success();

    let mut labels: Vec<String> = chunks(&pipeline)
        .into_values()
        .flatten()
        .map(|step| step["label"].as_str().unwrap_or_default().to_owned())
        .collect();
    labels.sort();
    let wanted: Vec<String> = DEPOT_TARGETS.iter().map(|t| format!(":nix: {t}")).collect();
    assert_eq!(labels, wanted);
}

/// With nixpkgs given, `package` is a derivation; it is still not a target
/// of the depot (see the next test for opting in). The library's nodes know
/// where they sit in the depot.
#[test]
fn gather_finds_only_the_depots_targets_with_or_without_pkgs() {
    let depot = vendoring_depot();
    for pkgs in [Pkgs::Stub, Pkgs::Absent] {
        assert_eq!(gathered(&depot, pkgs), json!(DEPOT_TARGETS));
    }
    let treekite = in_depot(
        &depot,
        Pkgs::Stub,
        "{ package = treekite.package.type; buildkite = treekite.nix.buildkite.__readTree; }",
    )
    .value();
    assert_eq!(
        treekite,
        json!({
            "package": "derivation",
            "buildkite": ["third_party", "treekite", "nix", "buildkite"],
        })
    );
}

/// The README's way to have the depot's CI build `package`: a node of the
/// depot's own that is the package.
#[test]
fn a_depot_opts_in_to_building_package_with_a_node_of_its_own() {
    let depot = vendoring_depot();
    depot.write(
        "tools/treekite/default.nix",
        "{ depot, ... }: depot.third_party.treekite.package\n",
    );
    assert_eq!(
        gathered(&depot, Pkgs::Stub),
        json!(["apps/one", "apps/two", "tools/treekite"])
    );
}

/// What `.skip-subtree` guards against: without it the depot's readTree
/// imports treekite's examples, fixtures and build output, and fails.
#[test]
fn without_skip_subtree_the_depot_reads_treekites_own_files_and_fails() {
    let depot = vendoring_depot();
    std::fs::remove_file(depot.path().join(VENDORED).join(".skip-subtree")).unwrap();
    let error = in_depot(&depot, Pkgs::Absent, "depot.ci.labels").error();
    assert!(error.contains(&format!("/{VENDORED}/")), "{error}");
}

/// The arguments `package` gives `buildRustPackage`, checked with the stub.
#[test]
fn package_builds_the_crate_with_build_rust_package() {
    let depot = vendoring_depot();
    let args = in_depot(
        &depot,
        Pkgs::Stub,
        "let args = treekite.package.stubArgs; in {
           names = builtins.attrNames args;
           inherit (args) pname version doCheck;
           lockFile = toString args.cargoLock.lockFile;
           mainProgram = args.meta.mainProgram;
         }",
    )
    .value();
    let lock_file = depot.path().join(VENDORED).join("Cargo.lock");
    assert_eq!(
        args,
        json!({
            "names": ["cargoLock", "doCheck", "meta", "pname", "src", "version"],
            "pname": "treekite",
            "version": env!("CARGO_PKG_VERSION"),
            "doCheck": false,
            "lockFile": lock_file.to_str().unwrap(),
            "mainProgram": "treekite",
        })
    );
}

/// The store path of `package`'s source.
fn package_src(depot: &Depot) -> PathBuf {
    let src = in_depot(depot, Pkgs::Stub, "treekite.package.stubArgs.src").value();
    PathBuf::from(src.as_str().unwrap())
}

/// The files below `dir`, relative to it, sorted.
fn files_below(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(next) = todo.pop() {
        for path in entries(&next) {
            if path.is_dir() {
                todo.push(path);
            } else {
                files.push(
                    path.strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    files.sort();
    files
}

/// The source holds exactly the crate's files; editing anything else
/// (tests, docs, examples, build output) leaves it as it was, so the
/// package is not rebuilt, and editing `src/` changes it.
#[test]
fn package_source_is_cargo_toml_cargo_lock_and_src_only() {
    let depot = vendoring_depot();
    let src = package_src(&depot);
    let tracked = stdout_of(
        std::process::Command::new("git")
            .arg("-C")
            .arg(repo())
            .args(["ls-files", "--", "Cargo.toml", "Cargo.lock", "src"]),
    );
    let mut wanted: Vec<&str> = tracked.lines().collect();
    wanted.sort();
    assert_eq!(files_below(&src), wanted);

    let vendored = |file: &str| format!("{VENDORED}/{file}");
    for file in [
        "README.md",
        "tests/it/main.rs",
        "examples/default.nix",
        "target/debug/treekite",
    ] {
        depot.write(&vendored(file), "edited\n");
    }
    assert_eq!(package_src(&depot), src, "edits outside the crate");

    let main = depot.path().join(vendored("src/main.rs"));
    std::fs::write(&main, read(&main) + "// edited\n").unwrap();
    assert_ne!(package_src(&depot), src, "an edit in src/");
}

/// The one line of Nix's error that says what went wrong.
fn error_line(expr: NixExpr) -> String {
    let error = expr.error();
    let line = error.lines().find(|l| l.starts_with("error: "));
    line.unwrap_or_else(|| panic!("no error line: {error}"))
        .to_owned()
}

/// Without nixpkgs, `package` throws one line naming itself where the depot
/// has it (or plain `package` when treekite is its own depot), what to
/// pass, and the way without Nix.
#[test]
fn without_pkgs_package_says_what_to_pass() {
    let depot = vendoring_depot();
    let vendored = error_line(in_depot(&depot, Pkgs::Absent, "treekite.package"));
    let standalone = error_line(in_depot(
        &depot,
        Pkgs::Absent,
        &format!("(import (/. + depotDir + \"/{VENDORED}\") {{ }}).package"),
    ));
    for (line, attr) in [
        (vendored, "third_party.treekite.package"),
        (standalone, "package"),
    ] {
        let named = format!("error: treekite: {attr} builds the treekite binary");
        for wanted in [named.as_str(), "`pkgs`", "cargo install --locked"] {
            assert!(line.contains(wanted), "{line:?} should mention {wanted:?}");
        }
    }
}
