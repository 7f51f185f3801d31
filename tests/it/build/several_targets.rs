//! Several `--drv`s in one step: one path each, in order.

use std::path::Path;

use super::{ABC, arg, assert_prints, differs_notes};
use crate::support::*;

#[test]
fn several_drvs_print_one_path_each_in_the_order_given() {
    let f = NixFixture::new(ABC);
    let [(a, a_out), (b, b_out), (c, c_out)] = ["a", "b", "c"].map(|t| f.target(t));
    assert_prints(
        &f.build(&["--drv", &c, "--drv", &a, "--drv", &b]),
        &[&c_out, &a_out, &b_out],
    );
    let mut links = vec![
        f.default_link(&a, "out"),
        f.default_link(&b, "out"),
        f.default_link(&c, "out"),
    ];
    links.sort();
    assert_eq!(f.links(), links);
}

#[test]
fn several_drvs_use_their_own_attr_path_when_gone() {
    let f = NixFixture::new(ABC);
    let [(a, a_out), (b, b_out), (c, c_out)] = ["a", "b", "c"].map(|t| f.target(t));
    delete_from_store(&b);
    let result = f.build(&[
        "--drv",
        &c,
        "--attr-path",
        r#"["c"]"#,
        "--drv",
        &b,
        "--attr-path",
        r#"["b"]"#,
        "--drv",
        &a,
        "--attr-path",
        r#"["a"]"#,
    ]);
    assert_prints(&result, &[&c_out, &b_out, &a_out]);
    assert!(Path::new(&b).exists(), "{b} was instantiated again");
    assert_eq!(differs_notes(&result), Vec::<String>::new());
}

#[test]
fn out_link_with_several_drvs_is_bad_input() {
    let f = NixFixture::new(ABC);
    let (a, b) = (f.drv("a"), f.drv("b"));
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("result");
    assert_bad_input(
        &f.build(&["--drv", &a, "--drv", &b, "--out-link", arg(&link)]),
        &["--out-link"],
    );
    assert!(entries(dir.path()).is_empty());
    assert!(f.links().is_empty());
}

#[test]
fn attr_paths_not_matching_the_drvs_one_to_one_are_bad_input() {
    let f = NixFixture::new(ABC);
    let (a, b) = (f.drv("a"), f.drv("b"));
    assert_bad_input(
        &f.build(&["--drv", &a, "--drv", &b, "--attr-path", r#"["a"]"#]),
        &["--attr-path"],
    );
    assert!(f.links().is_empty());
}
