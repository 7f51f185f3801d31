//! `treekite run` against what a busy agent's steps do (issue 14): logs far
//! bigger than memory should hold, labels and output full of terminal
//! escapes, processes that outlive their step or ignore SIGTERM, and
//! Unicode that only looks like a variable name.

use std::process::Stdio;

use serde_json::json;

use super::{Fixture, alive, status_of};
use crate::support::*;

/// A failing step's log is shown by its tail, and only the tail is read:
/// 256 MiB of log (a hole, so it costs neither disk nor time to write)
/// leave treekite's peak memory far below the log's size.
#[test]
fn a_huge_failing_log_shows_its_last_lines_in_little_memory() {
    let f = Fixture::new();
    f.chunk(
        "build-chunk-1.json",
        json!([{
            "label": "huge",
            "key": "huge",
            "command": "dd if=/dev/null bs=1M seek=256 status=none; for i in $(seq 30); do echo \"line $$i\"; done; exit 3",
        }]),
    );
    let (output, peak_kib) = output_and_peak_rss(&mut f.run_command(&[]));
    assert_eq!(output.status.code(), Some(1), "{}", output.stderr_text());
    let logs = entries(&f.logs());
    assert_eq!(logs.len(), 1, "{logs:?}");
    let size = std::fs::metadata(&logs[0]).unwrap().len();
    assert!(size > 256 << 20, "the log is {size} bytes");

    let stderr = output.stderr_text();
    let shown: Vec<&str> = stderr
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("| "))
        .collect();
    let last: Vec<String> = (21..=30).map(|i| format!("line {i}")).collect();
    assert_eq!(shown, last, "{stderr}");
    assert!(
        peak_kib < 64 * 1024,
        "peak RSS {peak_kib} KiB for a {size}-byte log"
    );
}

/// Whether `text` holds a character a terminal acts on: a control
/// character (C0, DEL, C1) other than the line ends, or a bidi override.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| c != '\n' && (c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)))
        .collect()
}

/// Labels, group labels, skip reasons and a failed step's output reach
/// the person escaped: no escape sequence acts on the terminal, and every
/// progress line and summary row stays one line.
#[test]
fn labels_and_output_reach_the_terminal_escaped_one_line_each() {
    let f = Fixture::new();
    let clear_and_title = "\u{1b}[2J\u{1b}]0;owned\u{7}clear";
    f.chunk(
        "build-chunk-1.json",
        json!([
            {"label": clear_and_title, "key": "esc", "command": "true"},
            {"label": "two\nlines", "key": "nl",
             "command": "printf '\\033[31mred\\033[0m\\rback\\n'; exit 1"},
            {"group": "g\r\u{9b}31m", "key": "g", "steps": [
                {"label": "in\tgroup\u{202e}", "key": "in", "command": "true"},
            ]},
            {"label": "skipped", "key": "sk", "command": "true", "skip": "reason\n\u{1b}[Kmore"},
        ]),
    );
    let out = f.run(&[]).code(1);
    let (stdout, stderr) = (out.stdout_text(), out.stderr_text());
    assert_eq!(
        raw_controls(&stdout),
        Vec::<char>::new(),
        "stdout:\n{stdout}"
    );
    assert_eq!(
        raw_controls(&stderr),
        Vec::<char>::new(),
        "stderr:\n{stderr}"
    );

    for shown in [
        r"started  \u{1b}[2J\u{1b}]0;owned\u{7}clear",
        r"failed  two\nlines",
        r"| \u{1b}[31mred\u{1b}[0m\rback",
        r"passed  g\r\u{9b}31m / in\tgroup\u{202e}",
    ] {
        assert!(stderr.contains(shown), "{shown:?} in stderr:\n{stderr}");
    }
    // The header, one row per step, the totals and the log directory.
    assert_eq!(stdout.lines().count(), 1 + 4 + 2, "stdout:\n{stdout}");
    assert_eq!(status_of(&stdout, r"two\nlines"), "failed");
    assert!(stdout.contains(r"reason\n\u{1b}[Kmore"), "{stdout}");
}

/// A step's background child is stopped when the step ends, so nothing a
/// step started is left when the run is over.
#[test]
fn background_children_are_gone_when_the_run_ends() {
    let f = Fixture::new();
    f.chunk(
        "build-chunk-1.json",
        json!([{"label": "daemon", "key": "daemon", "command": "sleep 37 & echo $$! > bg.pid"}]),
    );
    let out = f.run(&[]).success();
    let background = f.pid("bg.pid");
    assert!(
        !alive(background),
        "the step's `sleep 37 &` outlived the run"
    );
    assert!(
        out.stderr_text()
            .contains("step \"daemon\" left processes running; stopping them"),
        "{}",
        out.stderr_text()
    );
}

/// A second Ctrl-C kills every step's process group at once, with what
/// ignores SIGTERM in it: the running step's shell and child, and the
/// background child of a step that already finished.
#[test]
fn a_second_interrupt_kills_what_ignores_sigterm() {
    let f = Fixture::new();
    f.chunk(
        "build-chunk-1.json",
        json!([
            // Each TERM-ignoring child writes its pid once it ignores TERM,
            // and its shell waits for that.
            {"label": "left", "key": "left", "command": concat!(
                "(trap '' TERM; echo $$BASHPID > left.pid; exec sleep 39) & ",
                "until [ -s left.pid ]; do sleep 0.01; done"
            )},
            {"label": "stubborn", "key": "stubborn", "command": concat!(
                "(trap '' TERM; echo $$BASHPID > child.pid; exec sleep 40) & child=$$!; ",
                "until [ -s child.pid ]; do sleep 0.01; done; ",
                "trap 'touch got-term' TERM; echo $$$$ > shell.pid; ",
                // `wait` returns when SIGTERM is trapped; the shell stays.
                "while kill -0 $$child; do wait || true; done"
            )},
        ]),
    );
    let child = f
        .run_command(&["-j", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pids = [f.pid("left.pid"), f.pid("child.pid"), f.pid("shell.pid")];
    let interrupt = || unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    interrupt();
    f.wait_for("got-term");
    assert!(pids.iter().all(|&pid| alive(pid)), "SIGTERM is ignored");
    interrupt();
    let output = child.wait_with_output().unwrap();
    for pid in pids {
        assert!(!alive(pid), "process {pid} outlived the run");
    }
    assert_eq!(output.status.code(), Some(130), "{}", output.stderr_text());
    assert!(
        output
            .stderr_text()
            .contains("interrupted again: killing every step's processes"),
        "{}",
        output.stderr_text()
    );
}

/// A variable name starts with a letter (Unicode categories L*), as in
/// Buildkite's interpolation; symbols and marks are not letters, so `$Ⓐ`
/// stays text and `${Ⓐ}` fails the upload.
#[test]
fn interpolation_takes_only_letters_for_names() {
    let f = Fixture::new();
    let pipeline = |command: &str| {
        json!({
            "env": {"Ⓐ": "symbol", "ͅ": "mark", "Ü": "letter"},
            "steps": [{"label": "names", "key": "names", "command": command}],
        })
        .to_string()
    };
    f.raw(
        "build-chunk-1.json",
        &pipeline("printf '%s\\n' '$Ⓐ' '$ͅ' '$Ü' > out"),
    );
    f.run(&[]).success();
    assert_eq!(f.read("out"), "$Ⓐ\n$ͅ\nletter\n");

    f.raw("build-chunk-1.json", &pipeline("echo ${Ⓐ} > out2"));
    let out = f.run(&[]);
    assert_bad_input(
        out.get_output(),
        &["expected a variable name to start with a letter, got 'Ⓐ'"],
    );
    assert!(!f.exists("out2"));
}
