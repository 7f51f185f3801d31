//! `treekite build` against the real Nix store.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use tempfile::TempDir;

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

/// A fresh depot plus a directory for treekite's default GC roots.
struct Fixture {
    depot: Depot,
    gcroots: TempDir,
}

impl Fixture {
    fn new(body: &str) -> Fixture {
        let depot = Depot::new();
        depot.write("default.nix", &depot_nix(body));
        Fixture {
            depot,
            gcroots: tempfile::tempdir().unwrap(),
        }
    }

    /// `treekite build ARGS` run in the depot.
    fn build(&self, args: &[&str]) -> Output {
        treekite(self.gcroots.path())
            .arg("build")
            .args(args)
            .current_dir(self.depot.path())
            .output()
            .unwrap()
    }

    /// The `.drv` and output path of `depot.<attr>`.
    fn target(&self, attr: &str) -> (String, String) {
        let expr = format!("depot.{attr}");
        (self.depot.instantiate(&expr), self.depot.out_path(&expr))
    }

    /// Where treekite puts the default link for `drv`'s output `output`.
    fn default_link(&self, drv: &str, output: &str) -> PathBuf {
        let stem = Path::new(drv)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .strip_suffix(".drv")
            .unwrap();
        let name = if output == "out" {
            stem.to_owned()
        } else {
            format!("{stem}-{output}")
        };
        self.gcroots.path().join(name)
    }

    fn links(&self) -> Vec<PathBuf> {
        entries(self.gcroots.path())
    }
}

/// Asserts success with exactly `paths` on stdout, one per line.
fn assert_prints(output: &Output, paths: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "treekite build failed: {stderr}");
    let expected: String = paths.iter().map(|p| format!("{p}\n")).collect();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        expected,
        "stderr:\n{stderr}"
    );
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn link_target(link: &Path) -> String {
    std::fs::read_link(link)
        .unwrap_or_else(|e| panic!("{} is no link: {e}", link.display()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// A Nix select expression for `names` below `depot`, spelled with quoted
/// attribute names.
fn select(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!(".{}", nix_str(n)))
        .collect::<Vec<_>>()
        .concat()
}

fn json(names: &[&str]) -> String {
    serde_json::to_string(names).unwrap()
}

/// Lines of stderr that are treekite's "re-evaluated to a different drv" note.
fn differs_notes(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| l.starts_with("treekite: ") && l.contains("no longer exists"))
        .map(str::to_owned)
        .collect()
}

// --- outputs ---------------------------------------------------------------

#[test]
fn single_output_prints_its_path_and_links_it_outside_the_tree() {
    let f = Fixture::new(r#"hello = sh "hello" "echo hello > $out";"#);
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
    let f = Fixture::new(r#"noisy = sh "noisy" "echo builder-says-hello; echo done > $out";"#);
    let (drv, out) = f.target("noisy");
    let result = f.build(&["--drv", &drv]);
    assert_prints(&result, &[&out]);
    assert!(String::from_utf8_lossy(&result.stderr).contains("builder-says-hello"));
}

#[test]
fn an_already_built_target_prints_the_same_path_again() {
    let f = Fixture::new(r#"hello = sh "hello" "echo hello > $out";"#);
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
    let f = Fixture::new(MULTI);
    let (drv, out) = f.target("multi.out");
    let result = f.build(&["--drv", &drv]);
    assert_prints(&result, &[&out]);
    assert_eq!(read(&out), "out\n");
    assert_eq!(link_target(&f.default_link(&drv, "out")), out);
}

#[test]
fn multi_output_prints_the_output_asked_for() {
    let f = Fixture::new(MULTI);
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
    let f = Fixture::new(MULTI);
    let (drv, bin) = f.target("onlyBin");
    assert_prints(&f.build(&["--drv", &drv]), &[&bin]);
    assert_eq!(read(&bin), "bin\n");
}

#[test]
fn several_outputs_and_no_out_is_bad_input_listing_them() {
    let f = Fixture::new(MULTI);
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
    let f = Fixture::new(MULTI);
    let (drv, _) = f.target("multi");
    assert_bad_input(
        &f.build(&["--drv", &drv, "--output", "doc"]),
        &["\"doc\"", "dev, out"],
    );
    assert!(f.links().is_empty());
}

// --- failure ---------------------------------------------------------------

#[test]
fn a_failing_builder_exits_1_with_nothing_on_stdout_and_no_link() {
    let f = Fixture::new(r#"broken = sh "broken" "echo about-to-fail >&2; exit 7";"#);
    let (drv, out) = f.target("broken");
    let result = f.build(&["--drv", &drv]);
    assert_failed(&result, &[&drv]);
    assert!(
        String::from_utf8_lossy(&result.stderr).contains("about-to-fail"),
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
    let f = Fixture::new(r#"broken = sh "broken" "exit 1";"#);
    let (drv, _) = f.target("broken");
    let checkout = Checkout::new();
    std::fs::write(checkout.path().join("untracked"), "x\n").unwrap();
    let status = checkout.status();
    let link = checkout.path().join("result");
    assert_failed(
        &f.build(&["--drv", &drv, "--out-link", link.to_str().unwrap()]),
        &[&drv],
    );
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "no link to a missing output is left"
    );
    assert_eq!(checkout.status(), status);
    assert_eq!(checkout.gitignore(), Checkout::GITIGNORE);
}

#[test]
fn one_failing_target_among_several_fails_the_step() {
    let f = Fixture::new(r#"good = sh "good" "echo good > $out"; broken = sh "broken" "exit 1";"#);
    let (good, _) = f.target("good");
    let (broken, _) = f.target("broken");
    assert_failed(&f.build(&["--drv", &good, "--drv", &broken]), &[]);
    assert!(f.links().is_empty(), "{:?}", f.links());
}

/// Entries of Nix's `gcroots/auto` that register `link`.
fn registrations_of(link: &Path) -> Vec<PathBuf> {
    entries(Path::new("/nix/var/nix/gcroots/auto"))
        .into_iter()
        .filter(|entry| std::fs::read_link(entry).is_ok_and(|to| to == link))
        .collect()
}

// --- GC roots --------------------------------------------------------------

#[test]
fn the_default_link_is_a_gc_root_that_protects_the_output() {
    let f = Fixture::new(r#"kept = sh "kept" "echo kept > $out";"#);
    let (drv, out) = f.target("kept");
    assert_prints(&f.build(&["--drv", &drv]), &[&out]);
    let link = f.default_link(&drv, "out");
    assert_eq!(roots_of(&out), vec![link.to_str().unwrap().to_owned()]);
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
    let f = Fixture::new(&format!(r#"long = sh "{name}" "echo long > $out";"#));
    let (drv, out) = f.target("long");
    assert_prints(&f.build(&["--drv", &drv]), &[&out]);
    assert_eq!(link_target(&f.default_link(&drv, "out")), out);
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("r".repeat(255));
    let result = f.build(&["--drv", &drv, "--out-link", link.to_str().unwrap()]);
    assert_prints(&result, &[&out]);
    assert_eq!(link_target(&link), out);
}

#[test]
fn no_out_link_makes_no_link() {
    let f = Fixture::new(r#"loose = sh "loose" "echo loose > $out";"#);
    let (drv, out) = f.target("loose");
    assert_prints(&f.build(&["--drv", &drv, "--no-out-link"]), &[&out]);
    assert!(f.links().is_empty());
    assert_eq!(roots_of(&out), Vec::<String>::new());
}

#[test]
fn default_links_live_under_xdg_state_home_then_home() {
    let f = Fixture::new(r#"t = sh "t" "echo t > $out";"#);
    let (drv, out) = f.target("t");
    let name = f.default_link(&drv, "out").file_name().unwrap().to_owned();

    let state = tempfile::tempdir().unwrap();
    let result = treekite(f.gcroots.path())
        .env_remove("TREEKITE_GCROOTS")
        .env("XDG_STATE_HOME", state.path())
        .args(["build", "--drv", &drv])
        .output()
        .unwrap();
    assert_prints(&result, &[&out]);
    let link = state.path().join("treekite/gcroots").join(&name);
    assert_eq!(link_target(&link), out);

    let home = tempfile::tempdir().unwrap();
    let result = treekite(f.gcroots.path())
        .env_remove("TREEKITE_GCROOTS")
        .env_remove("XDG_STATE_HOME")
        .env("HOME", home.path())
        .args(["build", "--drv", &drv])
        .output()
        .unwrap();
    assert_prints(&result, &[&out]);
    let link = home
        .path()
        .join(".local/state/treekite/gcroots")
        .join(&name);
    assert_eq!(link_target(&link), out);
    assert!(roots_of(&out).contains(&link.to_str().unwrap().to_owned()));
}

#[test]
fn a_relative_gcroots_directory_still_gives_a_root_nix_finds() {
    let f = Fixture::new(r#"t = sh "t" "echo t > $out";"#);
    let (drv, out) = f.target("t");
    let cwd = tempfile::tempdir().unwrap();
    let result = treekite(f.gcroots.path())
        .env("TREEKITE_GCROOTS", "roots")
        .args(["build", "--drv", &drv])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert_prints(&result, &[&out]);
    let link = cwd
        .path()
        .canonicalize()
        .unwrap()
        .join("roots")
        .join(f.default_link(&drv, "out").file_name().unwrap());
    assert_eq!(link_target(&link), out);
    assert_eq!(roots_of(&out), vec![link.to_str().unwrap().to_owned()]);
}

#[test]
fn a_relative_xdg_state_home_is_ignored_as_the_xdg_spec_says() {
    let f = Fixture::new(r#"t = sh "t" "echo t > $out";"#);
    let (drv, out) = f.target("t");
    let cwd = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let result = treekite(f.gcroots.path())
        .env_remove("TREEKITE_GCROOTS")
        .env("XDG_STATE_HOME", "state")
        .env("HOME", home.path())
        .args(["build", "--drv", &drv])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert_prints(&result, &[&out]);
    assert!(entries(cwd.path()).is_empty());
    let name = f.default_link(&drv, "out").file_name().unwrap().to_owned();
    let link = home.path().join(".local/state/treekite/gcroots").join(name);
    assert_eq!(link_target(&link), out);
}

// --- out-links and git -----------------------------------------------------

#[test]
fn default_links_that_land_in_a_checkout_are_excluded_too() {
    let f = Fixture::new(r#"t = sh "t" "echo t > $out";"#);
    let (drv, out) = f.target("t");
    let checkout = Checkout::new();
    // A directory that does not exist yet, inside the work tree.
    let roots = checkout.path().join(".cache/gcroots");
    let result = treekite(&roots)
        .args(["build", "--drv", &drv])
        .output()
        .unwrap();
    assert_prints(&result, &[&out]);
    assert_eq!(checkout.status(), "");
    assert_eq!(
        link_target(&roots.join(f.default_link(&drv, "out").file_name().unwrap())),
        out
    );
}

#[test]
fn an_out_link_in_a_checkout_is_excluded_once_and_never_dirties_it() {
    let f = Fixture::new(r#"t = sh "t" "echo t > $out";"#);
    let (drv, out) = f.target("t");
    let checkout = Checkout::new();
    assert_eq!(checkout.status(), "");
    let link = checkout.path().join("result");
    for _ in 0..3 {
        assert_prints(
            &f.build(&["--drv", &drv, "--out-link", link.to_str().unwrap()]),
            &[&out],
        );
        assert_eq!(checkout.status(), "");
    }
    assert_eq!(link_target(&link), out);
    assert_eq!(
        checkout
            .exclude()
            .lines()
            .filter(|l| *l == "/result")
            .count(),
        1,
        "{}",
        checkout.exclude()
    );
    assert_eq!(checkout.gitignore(), Checkout::GITIGNORE);
    let canonical = checkout.path().canonicalize().unwrap().join("result");
    assert_eq!(roots_of(&out), vec![canonical.to_str().unwrap().to_owned()]);
    assert!(f.links().is_empty(), "--out-link replaces the default link");
}

#[test]
fn a_relative_out_link_in_a_subdirectory_is_excluded_by_its_own_path() {
    let f = Fixture::new(r#"t = sh "t" "echo t > $out";"#);
    let (drv, out) = f.target("t");
    let checkout = Checkout::new();
    std::fs::create_dir(checkout.path().join("odd [dir]")).unwrap();
    let result = treekite(f.gcroots.path())
        .args(["build", "--drv", &drv, "--out-link", "odd [dir]/result*"])
        .current_dir(checkout.path())
        .output()
        .unwrap();
    assert_prints(&result, &[&out]);
    assert_eq!(link_target(&checkout.path().join("odd [dir]/result*")), out);
    assert_eq!(checkout.status(), "");
    assert!(
        checkout
            .exclude()
            .lines()
            .any(|l| l == "/odd \\[dir]/result\\*"),
        "{}",
        checkout.exclude()
    );
}

#[test]
fn an_out_link_git_already_ignores_is_not_added_to_the_exclude_file() {
    let f = Fixture::new(r#"t = sh "t" "echo t > $out";"#);
    let (drv, out) = f.target("t");
    let checkout = Checkout::new();
    let before = checkout.exclude();
    let link = checkout.path().join("build.log");
    assert_prints(
        &f.build(&["--drv", &drv, "--out-link", link.to_str().unwrap()]),
        &[&out],
    );
    assert_eq!(checkout.status(), "");
    assert_eq!(checkout.exclude(), before);
}

#[test]
fn an_out_link_outside_any_checkout_is_made_exactly_there() {
    let f = Fixture::new(r#"t = sh "t" "echo t > $out";"#);
    let (drv, out) = f.target("t");
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("my link");
    assert_prints(
        &f.build(&["--drv", &drv, "--out-link", link.to_str().unwrap()]),
        &[&out],
    );
    assert_eq!(entries(dir.path()), vec![link.clone()]);
    assert_eq!(link_target(&link), out);
    let canonical = dir.path().canonicalize().unwrap().join("my link");
    assert_eq!(roots_of(&out), vec![canonical.to_str().unwrap().to_owned()]);
}

#[test]
fn a_rerun_to_the_same_out_link_replaces_it() {
    let f = Fixture::new(r#"one = sh "one" "echo one > $out"; two = sh "two" "echo two > $out";"#);
    let (one, one_out) = f.target("one");
    let (two, two_out) = f.target("two");
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("result");
    assert_prints(
        &f.build(&["--drv", &one, "--out-link", link.to_str().unwrap()]),
        &[&one_out],
    );
    assert_prints(
        &f.build(&["--drv", &two, "--out-link", link.to_str().unwrap()]),
        &[&two_out],
    );
    assert_eq!(link_target(&link), two_out);
    assert_eq!(
        entries(dir.path()),
        vec![link],
        "no temporary links left behind"
    );
}

#[test]
fn concurrent_builds_to_one_out_link_all_succeed() {
    let f = Fixture::new(r#"slow = sh "slow" "/bin/busybox sleep 1; echo slow > $out";"#);
    let (drv, out) = f.target("slow");
    let checkout = Checkout::new();
    let link = checkout.path().join("result");
    let children: Vec<_> = (0..6)
        .map(|_| {
            treekite_std(f.gcroots.path())
                .args(["build", "--drv", &drv, "--out-link"])
                .arg(&link)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        assert_prints(&child.wait_with_output().unwrap(), &[&out]);
    }
    assert_eq!(link_target(&link), out);
    assert_eq!(read(&out), "slow\n");
    assert_eq!(checkout.status(), "");
    assert_eq!(
        checkout
            .exclude()
            .lines()
            .filter(|l| *l == "/result")
            .count(),
        1,
        "{}",
        checkout.exclude()
    );
    assert_eq!(
        entries(checkout.path()).len(),
        4,
        "only .git, .gitignore, README and the link"
    );
}

#[test]
fn concurrent_builds_to_different_out_links_each_exclude_theirs_once() {
    let f = Fixture::new(r#"t = sh "t" "echo t > $out";"#);
    let (drv, out) = f.target("t");
    let checkout = Checkout::new();
    let links: Vec<PathBuf> = (0..8)
        .map(|i| checkout.path().join(format!("result-{i}")))
        .collect();
    let children: Vec<_> = links
        .iter()
        .map(|link| {
            treekite_std(f.gcroots.path())
                .args(["build", "--drv", &drv, "--out-link"])
                .arg(link)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        assert_prints(&child.wait_with_output().unwrap(), &[&out]);
    }
    assert_eq!(checkout.status(), "");
    let exclude = checkout.exclude();
    for i in 0..8 {
        let pattern = format!("/result-{i}");
        assert_eq!(
            exclude.lines().filter(|l| *l == pattern).count(),
            1,
            "{exclude}"
        );
    }
}

// --- several targets -------------------------------------------------------

#[test]
fn several_drvs_print_one_path_each_in_the_order_given() {
    let f = Fixture::new(
        r#"a = sh "a" "echo a > $out"; b = sh "b" "echo b > $out"; c = sh "c" "echo c > $out";"#,
    );
    let (a, a_out) = f.target("a");
    let (b, b_out) = f.target("b");
    let (c, c_out) = f.target("c");
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
    let f = Fixture::new(
        r#"a = sh "a" "echo a > $out"; b = sh "b" "echo b > $out"; c = sh "c" "echo c > $out";"#,
    );
    let (a, a_out) = f.target("a");
    let (b, b_out) = f.target("b");
    let (c, c_out) = f.target("c");
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
    let f = Fixture::new(r#"a = sh "a" "echo a > $out"; b = sh "b" "echo b > $out";"#);
    let (a, _) = f.target("a");
    let (b, _) = f.target("b");
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("result");
    assert_bad_input(
        &f.build(&[
            "--drv",
            &a,
            "--drv",
            &b,
            "--out-link",
            link.to_str().unwrap(),
        ]),
        &["--out-link"],
    );
    assert!(entries(dir.path()).is_empty());
    assert!(f.links().is_empty());
}

#[test]
fn attr_paths_not_matching_the_drvs_one_to_one_are_bad_input() {
    let f = Fixture::new(r#"a = sh "a" "echo a > $out"; b = sh "b" "echo b > $out";"#);
    let (a, _) = f.target("a");
    let (b, _) = f.target("b");
    assert_bad_input(
        &f.build(&["--drv", &a, "--drv", &b, "--attr-path", r#"["a"]"#]),
        &["--attr-path"],
    );
    assert!(f.links().is_empty());
}

// --- a .drv that is gone ---------------------------------------------------

#[test]
fn a_deleted_drv_is_rebuilt_through_an_attr_path_of_odd_names() {
    let f = Fixture::new(ODD_DEPOT);
    let names: Vec<&str> = std::iter::once("odd").chain(ODD_NAMES).collect();
    let expr = format!("depot{}", select(&names));
    let drv = f.depot.instantiate(&expr);
    let out = f.depot.out_path(&expr);
    delete_from_store(&drv);
    let result = f.build(&["--drv", &drv, "--attr-path", &json(&names)]);
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
    let f = Fixture::new(ODD_DEPOT);
    for (i, name) in ODD_NAMES.iter().enumerate() {
        let names = ["single", name];
        let expr = format!("depot{}", select(&names));
        let drv = f.depot.instantiate(&expr);
        let out = f.depot.out_path(&expr);
        delete_from_store(&drv);
        assert_prints(
            &f.build(&["--drv", &drv, "--attr-path", &json(&names)]),
            &[&out],
        );
        assert_eq!(read(&out), format!("{}\n", i + 1), "{name:?}");
    }
}

#[test]
fn root_defaults_to_the_current_directory_and_can_be_given() {
    let f = Fixture::new(r#"t = sh "t" "echo t > $out";"#);
    let (drv, out) = f.target("t");
    delete_from_store(&drv);
    let elsewhere = tempfile::tempdir().unwrap();
    let result = treekite(f.gcroots.path())
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
    let f = Fixture::new(r#"t = sh "t" "echo before > $out";"#);
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
    assert_eq!(
        notes.len(),
        1,
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(
        notes[0].contains(&old_drv) && notes[0].contains(&new_drv),
        "{}",
        notes[0]
    );
}

#[test]
fn a_deleted_drv_without_attr_path_is_bad_input() {
    let f = Fixture::new(r#"t = sh "t" "echo t > $out";"#);
    let (drv, _) = f.target("t");
    delete_from_store(&drv);
    assert_bad_input(&f.build(&["--drv", &drv]), &[&drv, "--attr-path"]);
    assert!(f.links().is_empty());
}

#[test]
fn a_deleted_drv_whose_attribute_is_gone_names_the_missing_name() {
    let f = Fixture::new(r#"tools.t = sh "t" "echo t > $out"; text = "hello";"#);
    let (drv, _) = f.target("tools.t");
    delete_from_store(&drv);
    let line = assert_bad_input(
        &f.build(&["--drv", &drv, "--attr-path", r#"["tools","gone"]"#]),
        &["\"gone\"", "tools"],
    );
    assert!(
        line.contains(&f.depot.path().canonicalize().unwrap().display().to_string()),
        "{line}"
    );
    assert_bad_input(
        &f.build(&["--drv", &drv, "--attr-path", r#"["nope","t"]"#]),
        &["\"nope\""],
    );
    // A name holding a newline still gives one line, quoted as JSON.
    assert_bad_input(
        &f.build(&["--drv", &drv, "--attr-path", r#"["tools","new\nline"]"#]),
        &[r#""new\nline""#],
    );
    assert_bad_input(
        &f.build(&["--drv", &drv, "--attr-path", r#"["text","t"]"#]),
        &["text", "string", "\"t\""],
    );
    assert_bad_input(
        &f.build(&["--drv", &drv, "--attr-path", r#"["tools"]"#]),
        &["tools", "not a derivation"],
    );
    assert!(f.links().is_empty());
}

#[test]
fn a_deleted_drv_whose_depot_fails_to_evaluate_exits_1() {
    let f = Fixture::new(r#"t = sh "t" "echo t > $out";"#);
    let (drv, _) = f.target("t");
    delete_from_store(&drv);
    f.depot
        .write("default.nix", "{ ... }: { t = throw \"depot is broken\"; }");
    let result = f.build(&["--drv", &drv, "--attr-path", r#"["t"]"#]);
    assert_failed(&result, &["t"]);
    assert!(String::from_utf8_lossy(&result.stderr).contains("depot is broken"));
    assert!(f.links().is_empty());
}

// --- bad input ---------------------------------------------------------------

#[test]
fn a_drv_outside_the_store_is_bad_input() {
    let f = Fixture::new(r#"t = sh "t" "echo t > $out";"#);
    let fake = f
        .depot
        .write("fake.drv", "Derive([],[],[],\"\",\"\",[],[])");
    assert_bad_input(
        &f.build(&["--drv", fake.to_str().unwrap()]),
        &["not a path in the Nix store"],
    );
    assert_bad_input(&f.build(&["--drv", "relative.drv"]), &["relative.drv"]);
    assert!(f.links().is_empty());
}

#[test]
fn a_store_path_that_is_not_a_drv_is_bad_input() {
    let f = Fixture::new(r#"t = sh "t" "echo t > $out";"#);
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
    let f = Fixture::new(r#"t = sh "t" "echo t > $out";"#);
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
    let f = Fixture::new(r#"t = sh "t" "echo t > $out";"#);
    let (drv, _) = f.target("t");
    let missing = f.depot.path().join("no such dir");
    let result = f.build(&[
        "--drv",
        &drv,
        "--attr-path",
        r#"["t"]"#,
        "--root",
        missing.to_str().unwrap(),
    ]);
    assert_bad_input(&result, &["--root", "no such dir"]);
    // A root without default.nix when the drv is gone.
    let empty = tempfile::tempdir().unwrap();
    delete_from_store(&drv);
    let result = f.build(&[
        "--drv",
        &drv,
        "--attr-path",
        r#"["t"]"#,
        "--root",
        empty.path().to_str().unwrap(),
    ]);
    assert_bad_input(&result, &["default.nix", "--root"]);
    assert!(f.links().is_empty());
}

#[test]
fn an_out_link_in_a_missing_directory_is_bad_input() {
    let f = Fixture::new(r#"t = sh "t" "echo t > $out";"#);
    let (drv, out) = f.target("t");
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("missing/result");
    assert_bad_input(
        &f.build(&["--drv", &drv, "--out-link", link.to_str().unwrap()]),
        &["missing", "does not exist"],
    );
    assert!(
        entries(dir.path()).is_empty(),
        "the directory is not created"
    );
    assert!(f.links().is_empty());
    assert!(!Path::new(&out).exists());
}

#[test]
fn an_out_link_onto_a_directory_or_file_is_bad_input_and_hides_nothing() {
    let f = Fixture::new(r#"t = sh "t" "echo t > $out";"#);
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
        let result = f.build(&["--drv", &drv, "--out-link", link.to_str().unwrap()]);
        assert_bad_input(&result, &[name, mention]);
    }
    assert_eq!(
        checkout.status(),
        status,
        "the user's files stay visible to git"
    );
    assert_eq!(checkout.exclude(), exclude);
    assert_eq!(
        std::fs::read_to_string(checkout.path().join("draft")).unwrap(),
        "mine\n"
    );
    assert!(!Path::new(&out).exists());
}

#[test]
fn a_command_line_clap_rejects_is_bad_input_on_one_line() {
    let f = Fixture::new(r#"t = sh "t" "echo t > $out";"#);
    let (drv, _) = f.target("t");
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("result");
    let link = link.to_str().unwrap();
    let conflicting = f.build(&["--drv", &drv, "--out-link", link, "--no-out-link"]);
    assert_bad_input(&conflicting, &["--out-link", "--no-out-link", "--help"]);
    assert!(entries(dir.path()).is_empty());
    assert_bad_input(&f.build(&["--out-link", link]), &["--drv"]);
    assert_bad_input(&f.build(&["--drv", &drv, "--dr"]), &["'--dr'", "tip"]);
}
