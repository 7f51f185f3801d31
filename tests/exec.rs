//! `treekite exec` against the real Nix store.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;
use tempfile::TempDir;

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

struct Fixture {
    depot: Depot,
    gcroots: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let depot = Depot::new();
        depot.write("default.nix", &depot_nix(SCRIPTS));
        Fixture {
            depot,
            gcroots: tempfile::tempdir().unwrap(),
        }
    }

    fn drv(&self, attr: &str) -> String {
        self.depot.instantiate(&format!("depot.{attr}"))
    }

    /// `treekite exec ARGS` in `cwd`.
    fn exec(&self, cwd: &Path, args: &[&str]) -> Output {
        treekite(self.gcroots.path())
            .arg("exec")
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap()
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn arguments_and_the_exit_code_pass_through() {
    let f = Fixture::new();
    let drv = f.drv("args");
    let result = f.exec(
        f.depot.path(),
        &["--drv", &drv, "--", "a b", "", "$HOME", "--drv", "é\nx"],
    );
    assert_eq!(
        result.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(stdout(&result), "<a b>\n<>\n<$HOME>\n<--drv>\n<é\nx>\n");
}

#[test]
fn a_script_killed_by_a_signal_exits_128_plus_its_number_as_in_a_shell() {
    let f = Fixture::new();
    let result = f.exec(f.depot.path(), &["--drv", &f.drv("killed")]);
    assert_eq!(
        result.status.code(),
        Some(128 + 15),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
}

#[test]
fn the_script_runs_in_the_current_directory_and_environment() {
    let f = Fixture::new();
    let drv = f.drv("where");
    let cwd = tempfile::tempdir().unwrap();
    let result = treekite(f.gcroots.path())
        .args(["exec", "--drv", &drv])
        .env("TREEKITE_TEST_VALUE", "from the caller")
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let real_cwd = cwd.path().canonicalize().unwrap();
    assert_eq!(
        stdout(&result),
        format!("{}\nfrom the caller\n", real_cwd.display())
    );
    assert_eq!(
        std::fs::read_to_string(cwd.path().join("made-here")).unwrap(),
        "made\n"
    );
}

#[test]
fn a_directory_output_runs_its_one_file_in_bin() {
    let f = Fixture::new();
    let drv = f.drv("inBin");
    let result = f.exec(f.depot.path(), &["--drv", &drv, "--", "arg"]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(stdout(&result), "from bin: arg\n");
}

#[test]
fn hidden_files_in_bin_are_not_candidates() {
    let f = Fixture::new();
    let drv = f.drv("wrapped");
    let result = f.exec(f.depot.path(), &["--drv", &drv, "--", "x"]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(stdout(&result), "wrapped x\n");
}

#[test]
fn nix_logs_go_to_stderr_and_stdout_is_the_scripts() {
    let f = Fixture::new();
    let drv = f.drv("noisy");
    let result = f.exec(f.depot.path(), &["--drv", &drv]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(stdout(&result), "only-this\n");
    assert!(String::from_utf8_lossy(&result.stderr).contains("builder-noise"));
}

#[test]
fn the_checkout_is_left_as_it_was_and_the_root_lives_outside() {
    let f = Fixture::new();
    let drv = f.drv("inBin");
    let out = f.depot.out_path("depot.inBin");
    let checkout = Checkout::new();
    let exclude = checkout.exclude();
    let result = f.exec(checkout.path(), &["--drv", &drv, "--", "x"]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(checkout.status(), "");
    assert_eq!(checkout.exclude(), exclude);
    assert_eq!(checkout.gitignore(), Checkout::GITIGNORE);
    let links = entries(f.gcroots.path());
    assert_eq!(links.len(), 1);
    assert_eq!(
        std::fs::read_link(&links[0]).unwrap().to_str().unwrap(),
        out
    );
    assert_eq!(roots_of(&out), vec![links[0].to_str().unwrap().to_owned()]);
}

#[test]
fn a_gcroots_directory_inside_the_checkout_does_not_dirty_it() {
    let f = Fixture::new();
    let drv = f.drv("inBin");
    let checkout = Checkout::new();
    let result = treekite(f.gcroots.path())
        .env("TREEKITE_GCROOTS", ".gcroots")
        .args(["exec", "--drv", &drv])
        .current_dir(checkout.path())
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(entries(&checkout.path().join(".gcroots")).len(), 1);
    assert_eq!(checkout.status(), "");
}

#[test]
fn a_deleted_script_drv_is_rebuilt_from_its_attr_path() {
    let f = Fixture::new();
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
    assert_eq!(
        result.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(stdout(&result), "<z>\n");
}

#[test]
fn a_script_that_fails_to_build_exits_1_and_runs_nothing() {
    let f = Fixture::new();
    let drv = f.drv("broken");
    let result = f.exec(f.depot.path(), &["--drv", &drv]);
    assert_failed(&result, &[&drv]);
    assert!(String::from_utf8_lossy(&result.stderr).contains("broken-builder"));
    assert!(
        entries(f.gcroots.path()).is_empty(),
        "{:?}",
        entries(f.gcroots.path())
    );
}

/// Known only once built, so Nix's log comes first; the verdict is still the
/// caller's to fix (a command that is not a script), hence exit 2.
#[test]
fn an_output_that_is_not_runnable_is_bad_input() {
    let f = Fixture::new();
    for (attr, mention) in [
        ("twoBins", "has 2 files in bin/"),
        ("emptyDir", "neither an executable file"),
    ] {
        let result = f.exec(f.depot.path(), &["--drv", &f.drv(attr)]);
        assert_eq!(
            result.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&result.stderr)
        );
        assert_eq!(stdout(&result), "");
        let line = last_line(&result.stderr);
        assert!(
            line.starts_with("treekite: error: ") && line.contains(mention),
            "{line}"
        );
    }
}

#[test]
fn a_script_with_several_outputs_and_no_out_is_bad_input() {
    let f = Fixture::new();
    assert_bad_input(
        &f.exec(f.depot.path(), &["--drv", &f.drv("multi")]),
        &["bin, doc"],
    );
    assert!(entries(f.gcroots.path()).is_empty());
}

#[test]
fn exec_takes_exactly_one_drv() {
    let f = Fixture::new();
    let drv = f.drv("args");
    assert_bad_input(
        &f.exec(f.depot.path(), &["--drv", &drv, "--drv", &drv]),
        &["one --drv"],
    );
}

#[test]
fn exec_rejects_bad_input_like_build() {
    let f = Fixture::new();
    let drv = f.drv("args");
    assert_bad_input(
        &f.exec(f.depot.path(), &["--drv", "/tmp/x.drv"]),
        &["not a path in the Nix store"],
    );
    assert_bad_input(
        &f.exec(f.depot.path(), &["--drv", &drv, "--attr-path", "args"]),
        &["--attr-path"],
    );
    delete_from_store(&drv);
    assert_bad_input(&f.exec(f.depot.path(), &["--drv", &drv]), &["--attr-path"]);
    assert_bad_input(
        &f.exec(
            f.depot.path(),
            &["--drv", &drv, "--attr-path", r#"["nope"]"#],
        ),
        &["\"nope\""],
    );
    assert!(entries(f.gcroots.path()).is_empty());
}
