//! Replacing `--out`: a run killed between any two of its filesystem
//! changes, and runs into the same `--out` at the same time, leave `--out`
//! a complete set (the old one or the new one) and the next run succeeding.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use assert_cmd::prelude::*;

use super::{depot, treekite_pipeline};
use crate::support::*;

/// The test hook that kills `treekite pipeline` (SIGKILL) right after the
/// Nth filesystem change of its directory swap.
const KILL_AFTER: &str = "TREEKITE_TEST_KILL_DIR_SWAP_AFTER";

/// The arguments of the older pipeline in `--out`: the release phase only,
/// so that it differs from the new one in files and in contents.
const OLD_ARGS: &[&str] = &["--arg", "activePhases", "[ \"release\" ]"];

/// A directory's files by name, with their bytes (empty when the directory
/// is missing; a directory inside fails the test: a set holds files only).
type Set = BTreeMap<String, Vec<u8>>;

fn set_in(dir: &Path) -> Set {
    entries(dir)
        .into_iter()
        .map(|path| {
            assert!(!path.is_dir(), "{} in a pipeline directory", path.display());
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect()
}

fn write_set(dir: &Path, set: &Set) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in set {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// `treekite pipeline` of the fixture into `out`.
fn pipeline(out: &Path, args: &[&str]) -> Command {
    treekite_pipeline(&depot(), "pipeline", out, args)
}

/// The set `treekite pipeline ARGS` writes.
fn generated(args: &[&str]) -> Set {
    let dir = tempfile::tempdir().unwrap();
    pipeline(&dir.path().join("p"), args).assert().success();
    set_in(&dir.path().join("p"))
}

/// Asserts that `out`'s parent holds `out` and nothing else: no staging
/// directory, no old set, no lock file.
fn assert_alone(out: &Path) {
    let parent = out.parent().unwrap();
    assert_eq!(
        entries(parent),
        [out.to_owned()],
        "beside {}",
        out.display()
    );
}

#[test]
fn a_kill_at_any_point_leaves_a_complete_set_and_the_next_run_succeeds() {
    let (old, new) = (generated(OLD_ARGS), generated(&[]));
    assert_ne!(
        old.keys().collect::<Vec<_>>(),
        new.keys().collect::<Vec<_>>()
    );
    let mut seen = BTreeSet::new();
    // With an older set in `--out`, and with none (a first run).
    for start in [Some(&old), None] {
        for n in 1.. {
            let parent = tempfile::tempdir().unwrap();
            let out = parent.path().join("pipeline");
            if let Some(set) = start {
                write_set(&out, set);
            }
            // Killed after its nth change; then a run that starts by
            // cleaning up after that one is killed after its nth change.
            let mut completed = false;
            for attempt in ["first", "second"] {
                let output = pipeline(&out, &[])
                    .env(KILL_AFTER, n.to_string())
                    .output()
                    .unwrap();
                if output.status.success() {
                    completed |= attempt == "first";
                    continue;
                }
                assert_eq!(
                    output.status.signal(),
                    Some(9),
                    "{attempt} run, killed after change {n}: {}",
                    output.stderr_text()
                );
                let now = set_in(&out);
                let which = if now == new {
                    "new"
                } else if Some(&now) == start || (start.is_none() && !out.exists()) {
                    "old"
                } else {
                    panic!(
                        "{attempt} run killed after change {n} left {:?}",
                        now.keys()
                    )
                };
                seen.insert(which);
            }
            pipeline(&out, &[]).assert().success();
            assert_eq!(set_in(&out), new, "after the kills at change {n}");
            assert_alone(&out);
            if completed {
                break;
            }
        }
    }
    assert_eq!(
        seen,
        BTreeSet::from(["new", "old"]),
        "runs were killed both before and after the swap"
    );
}

#[test]
fn runs_into_one_out_at_the_same_time_all_succeed() {
    let new = generated(&[]);
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("pipeline");
    // A large old set takes a while to remove: that is when runs used to
    // collide on the name it was moved aside to.
    let mut old = generated(OLD_ARGS);
    old.extend((0..3000).map(|i| (format!("stale-{i}"), Vec::new())));
    write_set(&out, &old);

    let runs: Vec<_> = (0..6)
        .map(|_| {
            pipeline(&out, &[])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let output = run.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", output.stderr_text());
    }
    assert_eq!(set_in(&out), new);
    assert_alone(&out);
}
