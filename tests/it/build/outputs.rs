//! What a build prints and links: one path per target, the output asked for.

use std::path::Path;

use super::{assert_prints, link_target};
use crate::support::*;

const HELLO: &str = r#"hello = sh "hello" "echo hello > $out";"#;

#[test]
fn single_output_prints_its_path_and_links_it_outside_the_tree() {
    let f = NixFixture::new(HELLO);
    let (drv, out) = f.target("hello");
    let result = f.build(&["--drv", &drv]);
    assert_prints(&result, &[&out]);
    assert_eq!(read(&out), "hello\n");
    let link = f.default_link(&drv, "out");
    assert_eq!(f.links(), vec![link.clone()]);
    assert_eq!(link_target(&link), out);
}

#[test]
fn builder_output_goes_to_stderr_not_stdout() {
    let f = NixFixture::new(r#"noisy = sh "noisy" "echo builder-says-hello; echo done > $out";"#);
    let (drv, out) = f.target("noisy");
    let result = f.build(&["--drv", &drv]);
    assert_prints(&result, &[&out]);
    assert!(result.stderr_text().contains("builder-says-hello"));
}

#[test]
fn an_already_built_target_prints_the_same_path_again() {
    let f = NixFixture::new(HELLO);
    let (drv, out) = f.target("hello");
    assert_prints(&f.build(&["--drv", &drv]), &[&out]);
    assert_prints(&f.build(&["--drv", &drv]), &[&out]);
    assert_eq!(f.links(), vec![f.default_link(&drv, "out")]);
}

const MULTI: &str = r#"
  multi = drv { name = "multi"; outputs = [ "out" "dev" ];
    args = [ "-c" "echo out > $out; echo dev > $dev" ]; };
  noOut = drv { name = "no-out"; outputs = [ "bin" "dev" ];
    args = [ "-c" "echo bin > $bin; echo dev > $dev" ]; };
  onlyBin = drv { name = "only-bin"; outputs = [ "bin" ];
    args = [ "-c" "echo bin > $bin" ]; };
"#;

#[test]
fn multi_output_prints_out_by_default() {
    let f = NixFixture::new(MULTI);
    let (drv, out) = f.target("multi.out");
    let result = f.build(&["--drv", &drv]);
    assert_prints(&result, &[&out]);
    assert_eq!(read(&out), "out\n");
    assert_eq!(link_target(&f.default_link(&drv, "out")), out);
}

#[test]
fn multi_output_prints_the_output_asked_for() {
    let f = NixFixture::new(MULTI);
    let (drv, dev) = f.target("multi.dev");
    let result = f.build(&["--drv", &drv, "--output", "dev"]);
    assert_prints(&result, &[&dev]);
    assert_eq!(read(&dev), "dev\n");
    // One link per output, so `out` and `dev` of one drv never collide.
    assert_eq!(f.links(), vec![f.default_link(&drv, "dev")]);
    assert_eq!(link_target(&f.default_link(&drv, "dev")), dev);
}

#[test]
fn the_only_output_is_used_when_it_is_not_out() {
    let f = NixFixture::new(MULTI);
    let (drv, bin) = f.target("onlyBin");
    assert_prints(&f.build(&["--drv", &drv]), &[&bin]);
    assert_eq!(read(&bin), "bin\n");
}

#[test]
fn several_outputs_and_no_out_is_bad_input_listing_them() {
    let f = NixFixture::new(MULTI);
    let (drv, bin) = f.target("noOut");
    assert_bad_input(&f.build(&["--drv", &drv]), &[&drv, "bin, dev", "--output"]);
    assert!(f.links().is_empty());
    assert!(
        !Path::new(&bin).exists(),
        "nothing may be built on bad input"
    );
}

#[test]
fn an_unknown_output_is_bad_input_listing_the_outputs() {
    let f = NixFixture::new(MULTI);
    let drv = f.drv("multi");
    assert_bad_input(
        &f.build(&["--drv", &drv, "--output", "doc"]),
        &["\"doc\"", "dev, out"],
    );
    assert!(f.links().is_empty());
}
