//! `treekite exec` against the real Nix store.

use std::path::Path;
use std::process::Output;

use crate::support::*;

/// Scripts for the tests; `$`-expansions are the script's own (Nix leaves
/// `$name` without braces alone).
const SCRIPTS: &str = r##"
  args = script "args" ''
    #!/bin/sh
    for arg in "$@"; do printf '<%s>\n' "$arg"; done
    exit 3
  '';
  killed = script "killed" ''
    #!/bin/sh
    kill -TERM $$
  '';
  where = script "where" ''
    #!/bin/sh
    pwd
    printf '%s\n' "$TREEKITE_TEST_VALUE"
    echo made > made-here
  '';
  inBin = binDir "in-bin" ''
    #!/bin/sh
    echo "from bin: $1"
  '';
  # As nixpkgs' wrapProgram leaves it: the program and a hidden original.
  wrapped = drv { name = "wrapped"; args = [ "-c" ''
    /bin/busybox mkdir -p $out/bin
    printf '#!/bin/sh\necho wrapped "$@"\n' > $out/bin/.tool-wrapped
    printf '#!/bin/sh\nexec %s/bin/.tool-wrapped "$@"\n' $out > $out/bin/tool
    /bin/busybox chmod 555 $out/bin/tool $out/bin/.tool-wrapped
  '' ]; };
  twoBins = drv { name = "two-bins";
    args = [ "-c" "/bin/busybox mkdir -p $out/bin && /bin/busybox touch $out/bin/a $out/bin/b" ]; };
  emptyDir = drv { name = "empty-dir"; args = [ "-c" "/bin/busybox mkdir -p $out/bin" ]; };
  noisy = drv { name = "noisy"; text = "#!/bin/sh\necho only-this\n";
    args = [ "-c" "echo builder-noise; printf '%s' \"$text\" > $out && /bin/busybox chmod 555 $out" ]; };
  broken = sh "broken" "echo broken-builder >&2; exit 1";
  multi = drv { name = "multi"; outputs = [ "bin" "doc" ];
    args = [ "-c" "echo > $bin; echo > $doc" ]; };
"##;

fn fixture() -> NixFixture {
    NixFixture::new(SCRIPTS)
}

impl NixFixture {
    /// `treekite exec ARGS` in `cwd`.
    fn exec(&self, cwd: &Path, args: &[&str]) -> Output {
        self.treekite()
            .arg("exec")
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap()
    }
}

/// Asserts that the script exited with `code` and printed `stdout`.
fn assert_ran(result: &Output, code: i32, stdout: &str) {
    assert_eq!(result.status.code(), Some(code), "{}", result.stderr_text());
    assert_eq!(result.stdout_text(), stdout);
}

#[test]
fn arguments_and_the_exit_code_pass_through() {
    let f = fixture();
    let drv = f.drv("args");
    let result = f.exec(
        f.depot.path(),
        &["--drv", &drv, "--", "a b", "", "$HOME", "--drv", "é\nx"],
    );
    assert_ran(&result, 3, "<a b>\n<>\n<$HOME>\n<--drv>\n<é\nx>\n");
}

#[test]
fn a_script_killed_by_a_signal_exits_128_plus_its_number_as_in_a_shell() {
    let f = fixture();
    let result = f.exec(f.depot.path(), &["--drv", &f.drv("killed")]);
    assert_ran(&result, 128 + 15, "");
}

#[test]
fn the_script_runs_in_the_current_directory_and_environment() {
    let f = fixture();
    let drv = f.drv("where");
    let cwd = tempfile::tempdir().unwrap();
    let result = f
        .treekite()
        .args(["exec", "--drv", &drv])
        .env("TREEKITE_TEST_VALUE", "from the caller")
        .current_dir(cwd.path())
        .output()
        .unwrap();
    let real_cwd = cwd.path().canonicalize().unwrap();
    assert_ran(
        &result,
        0,
        &format!("{}\nfrom the caller\n", real_cwd.display()),
    );
    assert_eq!(read(cwd.path().join("made-here")), "made\n");
}

#[test]
fn a_directory_output_runs_its_one_file_in_bin() {
    let f = fixture();
    let result = f.exec(f.depot.path(), &["--drv", &f.drv("inBin"), "--", "arg"]);
    assert_ran(&result, 0, "from bin: arg\n");
}

#[test]
fn hidden_files_in_bin_are_not_candidates() {
    let f = fixture();
    let result = f.exec(f.depot.path(), &["--drv", &f.drv("wrapped"), "--", "x"]);
    assert_ran(&result, 0, "wrapped x\n");
}

#[test]
fn nix_logs_go_to_stderr_and_stdout_is_the_scripts() {
    let f = fixture();
    let result = f.exec(f.depot.path(), &["--drv", &f.drv("noisy")]);
    assert_ran(&result, 0, "only-this\n");
    assert!(result.stderr_text().contains("builder-noise"));
}

#[test]
fn the_checkout_is_left_as_it_was_and_the_root_lives_outside() {
    let f = fixture();
    let drv = f.drv("inBin");
    let out = f.depot.out_path("depot.inBin");
    let checkout = Checkout::new();
    let exclude = checkout.exclude();
    let result = f.exec(checkout.path(), &["--drv", &drv, "--", "x"]);
    assert_ran(&result, 0, "from bin: x\n");
    checkout.assert_clean();
    assert_eq!(checkout.exclude(), exclude);
    let links = f.links();
    assert_eq!(links.len(), 1);
    assert_eq!(
        std::fs::read_link(&links[0]).unwrap().to_str().unwrap(),
        out
    );
    assert_eq!(roots_of(&out), links);
}

#[test]
fn a_gcroots_directory_inside_the_checkout_does_not_dirty_it() {
    let f = fixture();
    let drv = f.drv("inBin");
    let checkout = Checkout::new();
    let result = treekite()
        .gcroots(".gcroots")
        .args(["exec", "--drv", &drv])
        .current_dir(checkout.path())
        .output()
        .unwrap();
    assert_ran(&result, 0, "from bin: \n");
    assert_eq!(entries(&checkout.path().join(".gcroots")).len(), 1);
    checkout.assert_clean();
}

#[test]
fn a_deleted_script_drv_is_rebuilt_from_its_attr_path() {
    let f = fixture();
    let drv = f.drv("args");
    delete_from_store(&drv);
    let elsewhere = tempfile::tempdir().unwrap();
    let result = f.exec(
        elsewhere.path(),
        &[
            "--drv",
            &drv,
            "--attr-path",
            r#"["args"]"#,
            "--root",
            f.depot.path().to_str().unwrap(),
            "--",
            "z",
        ],
    );
    assert_ran(&result, 3, "<z>\n");
}

#[test]
fn a_script_that_fails_to_build_exits_1_and_runs_nothing() {
    let f = fixture();
    let drv = f.drv("broken");
    let result = f.exec(f.depot.path(), &["--drv", &drv]);
    assert_failed(&result, &[&drv]);
    assert!(result.stderr_text().contains("broken-builder"));
    assert!(f.links().is_empty(), "{:?}", f.links());
}

/// Known only once built, so Nix's log comes first; the verdict is still the
/// caller's to fix (a command that is not a script), hence exit 2.
#[test]
fn an_output_that_is_not_runnable_is_bad_input() {
    let f = fixture();
    for (attr, mention) in [
        ("twoBins", "has 2 files in bin/"),
        ("emptyDir", "neither an executable file"),
    ] {
        let result = f.exec(f.depot.path(), &["--drv", &f.drv(attr)]);
        assert_error(&result, 2, &[mention]);
    }
}

#[test]
fn a_script_with_several_outputs_and_no_out_is_bad_input() {
    let f = fixture();
    assert_bad_input(
        &f.exec(f.depot.path(), &["--drv", &f.drv("multi")]),
        &["bin, doc"],
    );
    assert!(f.links().is_empty());
}

#[test]
fn exec_takes_exactly_one_drv() {
    let f = fixture();
    let drv = f.drv("args");
    assert_bad_input(
        &f.exec(f.depot.path(), &["--drv", &drv, "--drv", &drv]),
        &["one --drv"],
    );
}

#[test]
fn exec_rejects_bad_input_like_build() {
    let f = fixture();
    let drv = f.drv("args");
    let exec = |args: &[&str]| f.exec(f.depot.path(), args);
    assert_bad_input(
        &exec(&["--drv", "/tmp/x.drv"]),
        &["not a path in the Nix store"],
    );
    assert_bad_input(
        &exec(&["--drv", &drv, "--attr-path", "args"]),
        &["--attr-path"],
    );
    delete_from_store(&drv);
    assert_bad_input(&exec(&["--drv", &drv]), &["--attr-path"]);
    assert_bad_input(
        &exec(&["--drv", &drv, "--attr-path", r#"["nope"]"#]),
        &["\"nope\""],
    );
    assert!(f.links().is_empty());
}
