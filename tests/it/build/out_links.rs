//! `--out-link`, and links that land in a git checkout: they are listed in
//! `.git/info/exclude` once, and the checkout stays clean.

use std::path::PathBuf;
use std::process::Stdio;

use super::{T, assert_prints, link_target};
use crate::support::*;

/// Runs `treekite build --drv DRV --out-link LINK` for every link in
/// `links` at the same time; each must print `out`.
fn build_at_once(f: &NixFixture, drv: &str, links: &[PathBuf], out: &str) {
    let children: Vec<_> = links
        .iter()
        .map(|link| {
            f.treekite()
                .args(["build", "--drv", drv, "--out-link"])
                .arg(link)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        assert_prints(&child.wait_with_output().unwrap(), &[out]);
    }
}

#[test]
fn default_links_that_land_in_a_checkout_are_excluded_too() {
    let f = NixFixture::new(T);
    let (drv, out) = f.target("t");
    let checkout = Checkout::new();
    // A directory that does not exist yet, inside the work tree.
    let roots = checkout.path().join(".cache/gcroots");
    let result = treekite()
        .gcroots(&roots)
        .args(["build", "--drv", &drv])
        .output()
        .unwrap();
    assert_prints(&result, &[&out]);
    let name = f.default_link(&drv, "out");
    let name = name.file_name().unwrap().to_str().unwrap();
    checkout.assert_excluded_once(&[format!("/.cache/gcroots/{name}")]);
    assert_eq!(link_target(&roots.join(name)), out);
}

#[test]
fn an_out_link_in_a_checkout_is_excluded_once_and_never_dirties_it() {
    let f = NixFixture::new(T);
    let (drv, out) = f.target("t");
    let checkout = Checkout::new();
    checkout.assert_clean();
    let link = checkout.path().join("result");
    for _ in 0..3 {
        assert_prints(&f.build_to(&drv, &link), &[&out]);
        checkout.assert_excluded_once(&["/result"]);
    }
    assert_eq!(link_target(&link), out);
    let canonical = checkout.path().canonicalize().unwrap().join("result");
    assert_eq!(roots_of(&out), [canonical]);
    assert!(f.links().is_empty(), "--out-link replaces the default link");
}

#[test]
fn a_relative_out_link_in_a_subdirectory_is_excluded_by_its_own_path() {
    let f = NixFixture::new(T);
    let (drv, out) = f.target("t");
    let checkout = Checkout::new();
    std::fs::create_dir(checkout.path().join("odd [dir]")).unwrap();
    let result = f
        .treekite()
        .args(["build", "--drv", &drv, "--out-link", "odd [dir]/result*"])
        .current_dir(checkout.path())
        .output()
        .unwrap();
    assert_prints(&result, &[&out]);
    assert_eq!(link_target(&checkout.path().join("odd [dir]/result*")), out);
    checkout.assert_excluded_once(&["/odd \\[dir]/result\\*"]);
}

#[test]
fn an_out_link_git_already_ignores_is_not_added_to_the_exclude_file() {
    let f = NixFixture::new(T);
    let (drv, out) = f.target("t");
    let checkout = Checkout::new();
    let before = checkout.exclude();
    let link = checkout.path().join("build.log");
    assert_prints(&f.build_to(&drv, &link), &[&out]);
    checkout.assert_clean();
    assert_eq!(checkout.exclude(), before);
}

#[test]
fn an_out_link_outside_any_checkout_is_made_exactly_there() {
    let f = NixFixture::new(T);
    let (drv, out) = f.target("t");
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("my link");
    assert_prints(&f.build_to(&drv, &link), &[&out]);
    assert_eq!(entries(dir.path()), vec![link.clone()]);
    assert_eq!(link_target(&link), out);
    let canonical = dir.path().canonicalize().unwrap().join("my link");
    assert_eq!(roots_of(&out), [canonical]);
}

#[test]
fn a_rerun_to_the_same_out_link_replaces_it() {
    let f =
        NixFixture::new(r#"one = sh "one" "echo one > $out"; two = sh "two" "echo two > $out";"#);
    let (one, one_out) = f.target("one");
    let (two, two_out) = f.target("two");
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("result");
    assert_prints(&f.build_to(&one, &link), &[&one_out]);
    assert_prints(&f.build_to(&two, &link), &[&two_out]);
    assert_eq!(link_target(&link), two_out);
    assert_eq!(
        entries(dir.path()),
        vec![link],
        "no temporary links left behind"
    );
}

#[test]
fn concurrent_builds_to_one_out_link_all_succeed() {
    let f = NixFixture::new(r#"slow = sh "slow" "/bin/busybox sleep 1; echo slow > $out";"#);
    let (drv, out) = f.target("slow");
    let checkout = Checkout::new();
    let link = checkout.path().join("result");
    build_at_once(&f, &drv, &vec![link.clone(); 6], &out);
    assert_eq!(link_target(&link), out);
    assert_eq!(read(&out), "slow\n");
    checkout.assert_excluded_once(&["/result"]);
    assert_eq!(
        entries(checkout.path()).len(),
        4,
        "only .git, .gitignore, README and the link"
    );
}

#[test]
fn concurrent_builds_to_different_out_links_each_exclude_theirs_once() {
    let f = NixFixture::new(T);
    let (drv, out) = f.target("t");
    let checkout = Checkout::new();
    let links: Vec<PathBuf> = (0..8)
        .map(|i| checkout.path().join(format!("result-{i}")))
        .collect();
    build_at_once(&f, &drv, &links, &out);
    let patterns: Vec<String> = (0..8).map(|i| format!("/result-{i}")).collect();
    checkout.assert_excluded_once(&patterns);
}

/// Links in a checkout that no exclude line can hide, or that git would
/// show anyway: refused before anything is built or written, the
/// checkout as it was.
#[test]
fn a_link_git_would_show_anyway_is_bad_input_and_changes_nothing() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let f = NixFixture::new(T);
    let (drv, out) = f.target("t");
    let checkout = Checkout::new();
    // A tracked symlink, and a .gitignore re-including another name.
    std::os::unix::fs::symlink("README", checkout.path().join("tracked")).unwrap();
    std::fs::write(checkout.path().join(".gitignore"), "*.log\n!/negated\n").unwrap();
    checkout.commit_all("a tracked link and a negation");
    let exclude = checkout.exclude();
    let cases: [(&OsStr, &str); 5] = [
        (OsStr::new("cr\r"), "carriage return"),
        (OsStr::new("new\nline"), "newline"),
        (OsStr::from_bytes(b"latin-\xe9"), "not UTF-8"),
        (OsStr::new("tracked"), "tracks"),
        (OsStr::new("negated"), ".gitignore"),
    ];
    for (name, why) in cases {
        let link = checkout.path().join(name);
        let output = f
            .treekite()
            .args(["build", "--drv", &drv, "--out-link"])
            .arg(&link)
            .output()
            .unwrap();
        assert_bad_input(&output, &[why]);
        assert_eq!(checkout.status(), "", "{name:?} left the checkout clean");
        assert_eq!(checkout.exclude(), exclude, "nothing added for {name:?}");
    }
    assert_eq!(link_target(&checkout.path().join("tracked")), "README");
    assert!(!std::path::Path::new(&out).exists(), "nothing was built");
}
