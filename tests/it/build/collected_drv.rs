//! A `.drv` that garbage collection took: rebuilt from its `--attr-path`.

use std::path::Path;
use std::process::Output;

use super::{T, assert_prints, differs_notes, link_target};
use crate::support::*;

/// The attribute names the spec promises to survive, each one a trap for
/// some layer of quoting: shell, JSON, Nix strings, Nix interpolation.
const ODD_NAMES: [&str; 7] = ["a b", "x\"y", "$HOME", "${x}", "a\\b", "new\nline", "é"];

/// A depot whose `default.nix` spells [`ODD_NAMES`] by hand (not through
/// the test's own escaping), once nested and once each at the top of `single`.
const ODD_DEPOT: &str = r##"
  # `$HOME` needs no escape in Nix; `\${x}` is a literal `${x}`.
  odd."a b"."x\"y"."$HOME"."\${x}"."a\\b"."new\nline"."é" = sh "deep" "echo deep > $out";
  single = {
    "a b" = sh "single" "echo 1 > $out";
    "x\"y" = sh "single" "echo 2 > $out";
    "$HOME" = sh "single" "echo 3 > $out";
    "\${x}" = sh "single" "echo 4 > $out";
    "a\\b" = sh "single" "echo 5 > $out";
    "new\nline" = sh "single" "echo 6 > $out";
    "é" = sh "single" "echo 7 > $out";
  };
"##;

/// Instantiates `depot.<names…>` (each name quoted by the tests' own
/// escaper), deletes its `.drv` and builds it again from `names` as the
/// attribute path. Returns treekite's output, the `.drv` and output path.
fn rebuild_deleted(f: &NixFixture, names: &[&str]) -> (Output, String, String) {
    let select: String = names.iter().map(|n| format!(".{}", nix_str(n))).collect();
    let expr = format!("depot{select}");
    let drv = f.depot.instantiate(&expr);
    let out = f.depot.out_path(&expr);
    delete_from_store(&drv);
    let attr_path = serde_json::to_string(names).unwrap();
    let result = f.build(&["--drv", &drv, "--attr-path", &attr_path]);
    (result, drv, out)
}

#[test]
fn a_deleted_drv_is_rebuilt_through_an_attr_path_of_odd_names() {
    let f = NixFixture::new(ODD_DEPOT);
    let names: Vec<&str> = std::iter::once("odd").chain(ODD_NAMES).collect();
    let (result, drv, out) = rebuild_deleted(&f, &names);
    assert_prints(&result, &[&out]);
    assert_eq!(read(&out), "deep\n");
    assert_eq!(
        differs_notes(&result),
        Vec::<String>::new(),
        "the depot did not change"
    );
    assert_eq!(link_target(&f.default_link(&drv, "out")), out);
}

#[test]
fn each_odd_name_alone_survives_the_round_trip() {
    let f = NixFixture::new(ODD_DEPOT);
    for (i, name) in ODD_NAMES.iter().enumerate() {
        let (result, _, out) = rebuild_deleted(&f, &["single", name]);
        assert_prints(&result, &[&out]);
        assert_eq!(read(&out), format!("{}\n", i + 1), "{name:?}");
    }
}

#[test]
fn root_defaults_to_the_current_directory_and_can_be_given() {
    let f = NixFixture::new(T);
    let (drv, out) = f.target("t");
    delete_from_store(&drv);
    let elsewhere = tempfile::tempdir().unwrap();
    let result = f
        .treekite()
        .args([
            "build",
            "--drv",
            &drv,
            "--attr-path",
            r#"["t"]"#,
            "--no-out-link",
            "--root",
        ])
        .arg(f.depot.path())
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert_prints(&result, &[&out]);
    // Unrooted (--no-out-link); the output goes first, as Nix keeps the
    // derivation of a valid output.
    delete_from_store(&out);
    delete_from_store(&drv);
    // `f.build` runs in the depot, with no --root.
    assert_prints(
        &f.build(&["--drv", &drv, "--attr-path", r#"["t"]"#]),
        &[&out],
    );
}

#[test]
fn a_changed_depot_is_noted_on_one_stderr_line_and_built_as_it_is_now() {
    let f = NixFixture::new(r#"t = sh "t" "echo before > $out";"#);
    let (old_drv, old_out) = f.target("t");
    delete_from_store(&old_drv);
    f.depot.write(
        "default.nix",
        &depot_nix(r#"t = sh "t" "echo after > $out";"#),
    );
    let (new_drv, new_out) = f.target("t");
    assert_ne!(old_drv, new_drv);
    let result = f.build(&["--drv", &old_drv, "--attr-path", r#"["t"]"#]);
    assert_prints(&result, &[&new_out]);
    assert_eq!(read(&new_out), "after\n");
    assert!(!Path::new(&old_out).exists());
    let notes = differs_notes(&result);
    assert_eq!(notes.len(), 1, "{}", result.stderr_text());
    assert!(
        notes[0].contains(&old_drv) && notes[0].contains(&new_drv),
        "{}",
        notes[0]
    );
}

#[test]
fn a_deleted_drv_without_attr_path_is_bad_input() {
    let f = NixFixture::new(T);
    let drv = f.drv("t");
    delete_from_store(&drv);
    assert_bad_input(&f.build(&["--drv", &drv]), &[&drv, "--attr-path"]);
    assert!(f.links().is_empty());
}

#[test]
fn a_deleted_drv_whose_attribute_is_gone_names_the_missing_name() {
    let f = NixFixture::new(r#"tools.t = sh "t" "echo t > $out"; text = "hello";"#);
    let drv = f.drv("tools.t");
    delete_from_store(&drv);
    let depot = f.depot.path().canonicalize().unwrap();
    let depot = depot.display().to_string();
    for (attr_path, mentions) in [
        (r#"["tools","gone"]"#, vec!["\"gone\"", "tools", &depot]),
        (r#"["nope","t"]"#, vec!["\"nope\""]),
        // A name holding a newline still gives one line, quoted as JSON.
        (r#"["tools","new\nline"]"#, vec![r#""new\nline""#]),
        (r#"["text","t"]"#, vec!["text", "string", "\"t\""]),
        (r#"["tools"]"#, vec!["tools", "not a derivation"]),
    ] {
        assert_bad_input(
            &f.build(&["--drv", &drv, "--attr-path", attr_path]),
            &mentions,
        );
    }
    assert!(f.links().is_empty());
}

#[test]
fn a_deleted_drv_whose_depot_fails_to_evaluate_exits_1() {
    let f = NixFixture::new(T);
    let drv = f.drv("t");
    delete_from_store(&drv);
    f.depot
        .write("default.nix", "{ ... }: { t = throw \"depot is broken\"; }");
    let result = f.build(&["--drv", &drv, "--attr-path", r#"["t"]"#]);
    assert_failed(&result, &["t"]);
    assert!(result.stderr_text().contains("depot is broken"));
    assert!(f.links().is_empty());
}
