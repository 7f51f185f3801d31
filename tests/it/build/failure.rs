//! A build that fails: exit 1, nothing printed, no link left behind.

use std::path::{Path, PathBuf};

use crate::support::*;

/// Entries of Nix's `gcroots/auto` that register `link`.
fn registrations_of(link: &Path) -> Vec<PathBuf> {
    entries(Path::new("/nix/var/nix/gcroots/auto"))
        .into_iter()
        .filter(|entry| std::fs::read_link(entry).is_ok_and(|to| to == link))
        .collect()
}

#[test]
fn a_failing_builder_exits_1_with_nothing_on_stdout_and_no_link() {
    let f = NixFixture::new(r#"broken = sh "broken" "echo about-to-fail >&2; exit 7";"#);
    let (drv, out) = f.target("broken");
    let result = f.build(&["--drv", &drv]);
    assert_failed(&result, &[&drv]);
    assert!(
        result.stderr_text().contains("about-to-fail"),
        "Nix's log is shown"
    );
    assert!(
        f.links().is_empty(),
        "the link made before the build is removed: {:?}",
        f.links()
    );
    assert!(registrations_of(&f.default_link(&drv, "out")).is_empty());
    assert!(!Path::new(&out).exists());
}

#[test]
fn a_failing_build_to_an_out_link_in_a_checkout_leaves_it_as_it_was() {
    let f = NixFixture::new(r#"broken = sh "broken" "exit 1";"#);
    let drv = f.drv("broken");
    let checkout = Checkout::new();
    std::fs::write(checkout.path().join("untracked"), "x\n").unwrap();
    let status = checkout.status();
    let link = checkout.path().join("result");
    assert_failed(&f.build_to(&drv, &link), &[&drv]);
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "no link to a missing output is left"
    );
    assert_eq!(checkout.status(), status);
    assert_eq!(checkout.gitignore(), Checkout::GITIGNORE);
}

#[test]
fn one_failing_target_among_several_fails_the_step() {
    let f =
        NixFixture::new(r#"good = sh "good" "echo good > $out"; broken = sh "broken" "exit 1";"#);
    let (good, broken) = (f.drv("good"), f.drv("broken"));
    assert_failed(&f.build(&["--drv", &good, "--drv", &broken]), &[]);
    assert!(f.links().is_empty(), "{:?}", f.links());
}
