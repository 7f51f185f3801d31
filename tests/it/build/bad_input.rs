//! Bad input: exit 2, one `treekite: error:` line, nothing built or linked.

use std::path::Path;

use super::{T, arg, assert_prints};
use crate::support::*;

#[test]
fn a_drv_outside_the_store_is_bad_input() {
    let f = NixFixture::new(T);
    let fake = f
        .depot
        .write("fake.drv", "Derive([],[],[],\"\",\"\",[],[])");
    assert_bad_input(
        &f.build(&["--drv", arg(&fake)]),
        &["not a path in the Nix store"],
    );
    assert_bad_input(&f.build(&["--drv", "relative.drv"]), &["relative.drv"]);
    assert!(f.links().is_empty());
}

#[test]
fn a_store_path_that_is_not_a_drv_is_bad_input() {
    let f = NixFixture::new(T);
    let (drv, out) = f.target("t");
    assert_prints(&f.build(&["--drv", &drv, "--no-out-link"]), &[&out]);
    assert_bad_input(&f.build(&["--drv", &out]), &["not a derivation"]);
    assert_bad_input(
        &f.build(&["--drv", &format!("{drv}/x.drv")]),
        &["not a path in the Nix store"],
    );
    assert!(f.links().is_empty());
}

#[test]
fn a_malformed_attr_path_is_bad_input_even_when_the_drv_exists() {
    let f = NixFixture::new(T);
    let (drv, out) = f.target("t");
    for bad in [
        "t",
        "[t]",
        r#"{"t":1}"#,
        r#""t""#,
        r#"["t",1]"#,
        r#"[["t"]]"#,
        "",
    ] {
        let line = assert_bad_input(
            &f.build(&["--drv", &drv, "--attr-path", bad]),
            &["--attr-path"],
        );
        assert!(line.contains("JSON"), "{line}");
    }
    assert!(f.links().is_empty());
    assert!(!Path::new(&out).exists());
}

#[test]
fn a_missing_root_is_bad_input() {
    let f = NixFixture::new(T);
    let drv = f.drv("t");
    let build_from = |root: &Path| {
        f.build(&[
            "--drv",
            &drv,
            "--attr-path",
            r#"["t"]"#,
            "--root",
            arg(root),
        ])
    };
    let missing = f.depot.path().join("no such dir");
    assert_bad_input(&build_from(&missing), &["--root", "no such dir"]);
    // A root without default.nix when the drv is gone.
    let empty = tempfile::tempdir().unwrap();
    delete_from_store(&drv);
    assert_bad_input(&build_from(empty.path()), &["default.nix", "--root"]);
    assert!(f.links().is_empty());
}

#[test]
fn an_out_link_in_a_missing_directory_is_bad_input() {
    let f = NixFixture::new(T);
    let (drv, out) = f.target("t");
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("missing/result");
    assert_bad_input(&f.build_to(&drv, &link), &["missing", "does not exist"]);
    assert!(
        entries(dir.path()).is_empty(),
        "the directory is not created"
    );
    assert!(f.links().is_empty());
    assert!(!Path::new(&out).exists());
}

#[test]
fn an_out_link_onto_a_directory_or_file_is_bad_input_and_hides_nothing() {
    let f = NixFixture::new(T);
    let (drv, out) = f.target("t");
    let checkout = Checkout::new();
    std::fs::create_dir(checkout.path().join("build")).unwrap();
    std::fs::write(checkout.path().join("build/notes"), "mine\n").unwrap();
    std::fs::write(checkout.path().join("draft"), "mine\n").unwrap();
    let status = checkout.status();
    assert_eq!(status, "?? build/notes\n?? draft\n");
    let exclude = checkout.exclude();
    for (name, mention) in [("build", "is a directory"), ("draft", "is not a symlink")] {
        let link = checkout.path().join(name);
        let result = f.build_to(&drv, &link);
        assert_bad_input(&result, &[name, mention]);
    }
    assert_eq!(
        checkout.status(),
        status,
        "the user's files stay visible to git"
    );
    assert_eq!(checkout.exclude(), exclude);
    assert_eq!(read(checkout.path().join("draft")), "mine\n");
    assert!(!Path::new(&out).exists());
}

#[test]
fn a_command_line_clap_rejects_is_bad_input_on_one_line() {
    let f = NixFixture::new(T);
    let drv = f.drv("t");
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("result");
    let link = arg(&link);
    let conflicting = f.build(&["--drv", &drv, "--out-link", link, "--no-out-link"]);
    assert_bad_input(&conflicting, &["--out-link", "--no-out-link", "--help"]);
    assert!(entries(dir.path()).is_empty());
    assert_bad_input(&f.build(&["--out-link", link]), &["--drv"]);
    assert_bad_input(&f.build(&["--drv", &drv, "--dr"]), &["'--dr'", "tip"]);
}

/// Files named like a derivation in the store that are not one: refused
/// as bad input (the step names a wrong path), a FIFO without waiting on
/// it. They live in a store directory of the test's own (`NIX_STORE_DIR`).
#[test]
fn a_store_file_that_is_no_derivation_is_bad_input_and_never_waited_on() {
    let f = NixFixture::new(T);
    let real = std::fs::read(f.drv("t")).unwrap();
    let store = tempfile::tempdir().unwrap();
    let name = |what: &str| store.path().join(format!("{}-{what}.drv", "0".repeat(32)));
    std::fs::create_dir(name("directory")).unwrap();
    std::fs::write(name("truncated"), &real[..real.len() / 2]).unwrap();
    std::fs::write(name("garbage"), b"\x00\x01 not an ATerm").unwrap();
    std::fs::write(name("empty"), b"").unwrap();
    stdout_of(std::process::Command::new("mkfifo").arg(name("fifo")));
    for what in ["directory", "truncated", "garbage", "empty", "fifo"] {
        let drv = name(what);
        let mut build = f.treekite();
        build
            .env("NIX_STORE_DIR", store.path())
            .args(["build", "--drv", arg(&drv)]);
        let output = assert_cmd::Command::from_std(build)
            .timeout(std::time::Duration::from_secs(20))
            .output()
            .unwrap();
        assert_bad_input(&output, &[arg(&drv)]);
    }
    assert!(f.links().is_empty());
}

#[test]
fn a_nul_in_an_attribute_name_is_bad_input() {
    let f = NixFixture::new(T);
    let (drv, out) = f.target("t");
    delete_from_store(&drv);
    // Nix would cut "t\0x" to "t" and build another attribute.
    let output = f.build(&["--drv", &drv, "--attr-path", r#"["t\u0000x"]"#]);
    assert_bad_input(&output, &["--attr-path", "NUL"]);
    assert!(!Path::new(&out).exists());
}
