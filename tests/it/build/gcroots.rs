//! The default links are GC roots: where they live, and that Nix sees them.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{T, assert_prints, link_target};
use crate::support::*;

/// `treekite build --drv DRV` left to find its default GC roots directory:
/// `TREEKITE_GCROOTS` unset.
fn build_with_default_roots(drv: &str) -> Command {
    let mut cmd = treekite();
    cmd.env_remove("TREEKITE_GCROOTS")
        .args(["build", "--drv", drv]);
    cmd
}

/// The `t` target, built once: its `.drv`, output and default link name.
fn t(f: &NixFixture) -> (String, String, PathBuf) {
    let (drv, out) = f.target("t");
    let name = PathBuf::from(f.default_link(&drv, "out").file_name().unwrap());
    (drv, out, name)
}

#[test]
fn the_default_link_is_a_gc_root_that_protects_the_output() {
    let f = NixFixture::new(r#"kept = sh "kept" "echo kept > $out";"#);
    let (drv, out) = f.target("kept");
    assert_prints(&f.build(&["--drv", &drv]), &[&out]);
    let link = f.default_link(&drv, "out");
    assert_eq!(roots_of(&out), [link.as_path()]);
    let delete = nix("nix-store").args(["--delete", &out]).output().unwrap();
    assert!(
        !delete.status.success(),
        "nix-store --delete must refuse a rooted path"
    );
    assert!(Path::new(&out).exists());
    // And it is that link, nothing else, that kept it.
    std::fs::remove_file(&link).unwrap();
    delete_from_store(&out);
}

#[test]
fn links_may_have_names_as_long_as_the_file_system_allows() {
    // 207 characters: the longest name a .drv can have (211 with ".drv").
    let name = "x".repeat(207);
    let f = NixFixture::new(&format!(r#"long = sh "{name}" "echo long > $out";"#));
    let (drv, out) = f.target("long");
    assert_prints(&f.build(&["--drv", &drv]), &[&out]);
    assert_eq!(link_target(&f.default_link(&drv, "out")), out);
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("r".repeat(255));
    let result = f.build_to(&drv, &link);
    assert_prints(&result, &[&out]);
    assert_eq!(link_target(&link), out);
}

#[test]
fn no_out_link_makes_no_link() {
    let f = NixFixture::new(r#"loose = sh "loose" "echo loose > $out";"#);
    let (drv, out) = f.target("loose");
    assert_prints(&f.build(&["--drv", &drv, "--no-out-link"]), &[&out]);
    assert!(f.links().is_empty());
    assert_eq!(roots_of(&out), Vec::<PathBuf>::new());
}

#[test]
fn default_links_live_under_xdg_state_home_then_home() {
    let f = NixFixture::new(T);
    let (drv, out, name) = t(&f);

    let (state, home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // (the variable set, the one removed, where the link must be)
    for (set, unset, dir) in [
        (
            ("XDG_STATE_HOME", state.path()),
            None,
            state.path().join("treekite/gcroots"),
        ),
        (
            ("HOME", home.path()),
            Some("XDG_STATE_HOME"),
            home.path().join(".local/state/treekite/gcroots"),
        ),
    ] {
        let mut cmd = build_with_default_roots(&drv);
        cmd.env(set.0, set.1);
        if let Some(unset) = unset {
            cmd.env_remove(unset);
        }
        assert_prints(&cmd.output().unwrap(), &[&out]);
        let link = dir.join(&name);
        assert_eq!(link_target(&link), out);
        assert!(roots_of(&out).contains(&link), "{}", link.display());
    }
}

#[test]
fn a_relative_gcroots_directory_still_gives_a_root_nix_finds() {
    let f = NixFixture::new(T);
    let (drv, out, name) = t(&f);
    let cwd = tempfile::tempdir().unwrap();
    let result = treekite()
        .gcroots("roots")
        .args(["build", "--drv", &drv])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert_prints(&result, &[&out]);
    let link = cwd.path().canonicalize().unwrap().join("roots").join(name);
    assert_eq!(link_target(&link), out);
    assert_eq!(roots_of(&out), [link]);
}

#[test]
fn a_relative_xdg_state_home_is_ignored_as_the_xdg_spec_says() {
    let f = NixFixture::new(T);
    let (drv, out, name) = t(&f);
    let cwd = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let result = build_with_default_roots(&drv)
        .env("XDG_STATE_HOME", "state")
        .env("HOME", home.path())
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert_prints(&result, &[&out]);
    assert!(entries(cwd.path()).is_empty());
    let link = home.path().join(".local/state/treekite/gcroots").join(name);
    assert_eq!(link_target(&link), out);
}
