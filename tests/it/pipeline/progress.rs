//! Progress while the depot evaluates: counted from nix/buildkite's traces,
//! shown only when evaluation takes a while, never mixed up with Nix's own
//! lines.

use super::{depot, treekite_pipeline};
use crate::support::*;

/// `treekite pipeline -A chatty` (193 targets, and a trace of the depot's
/// own), shown in a log with `timing` (`QUIET_MS,LOG_EVERY_MS`, or the
/// default when `None`); its stderr.
fn stderr_with(timing: Option<&str>, args: &[&str]) -> String {
    let out = tempfile::tempdir().unwrap();
    let mut command = treekite_pipeline(&depot(), "chatty", &out.path().join("p"), args);
    if let Some(timing) = timing {
        command.env("TREEKITE_PROGRESS_TIMING", timing);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", output.stderr_text());
    output.stderr_text()
}

fn progress_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|line| line.starts_with("treekite: evaluat"))
        .collect()
}

#[test]
fn a_log_gets_plain_lines_counting_the_targets() {
    let stderr = stderr_with(Some("0,0"), &[]);
    let lines = progress_lines(&stderr);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" of 193 targets") || l.contains("evaluated 193 targets")),
        "{stderr}"
    );
    assert!(
        !stderr.contains("treekite-progress"),
        "traces are not shown: {stderr}"
    );
    assert!(
        stderr.contains("trace: a word from the depot"),
        "Nix's own lines pass: {stderr}"
    );
    assert!(!stderr.contains('\r'), "no live line in a log: {stderr:?}");
}

#[test]
fn quick_or_quiet_evaluation_shows_no_progress() {
    for stderr in [
        stderr_with(None, &[]),
        stderr_with(Some("0,0"), &["--quiet"]),
    ] {
        assert_eq!(progress_lines(&stderr), Vec::<&str>::new(), "{stderr}");
        assert!(!stderr.contains("treekite-progress"), "{stderr}");
        assert!(stderr.contains("trace: a word from the depot"), "{stderr}");
    }
}
