//! What a person sees: a line per step as it starts and ends (with a live
//! spinner per running step when stderr is a terminal, plain lines when it
//! is not), and the summary table at the end on stdout. Every line goes
//! through [`printable`]: labels and logs cannot act on the terminal, and
//! each line stays one line.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::outcome::{Failure, Outcome, Record, Why};
use super::plan::{Kind, Plan, StepId};
use super::tail;
use crate::printable::printable;

/// How many lines of a failed step's log to show as it fails.
const TAIL_LINES: usize = 10;

pub struct Progress {
    live: Option<Live>,
}

struct Live {
    multi: MultiProgress,
    bars: HashMap<StepId, ProgressBar>,
    style: ProgressStyle,
}

impl Progress {
    /// Live spinners when stderr is a terminal that can show them.
    pub fn new() -> Progress {
        let capable =
            std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb");
        let live = capable.then(|| Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: HashMap::new(),
            style: ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                .expect("a valid template"),
        });
        Progress { live }
    }

    /// Prints a line on stderr, above the spinners if there are any.
    pub fn line(&self, text: &str) {
        let text = printable(text);
        match &self.live {
            // A failed write to the terminal is not worth stopping the run for.
            Some(live) => drop(live.multi.println(text)),
            None => eprintln!("{text}"),
        }
    }

    pub fn warn(&self, message: &str) {
        self.line(&format!("treekite: warning: {message}"));
    }

    pub fn phase(&mut self, name: &str, jobs: usize, skipped: usize) {
        let plural = if jobs == 1 { "" } else { "s" };
        let skipped = if skipped > 0 {
            format!(" ({skipped} skipped)")
        } else {
            String::new()
        };
        self.line(&format!("--- phase {name}: {jobs} step{plural}{skipped}"));
    }

    pub fn started(&mut self, plan: &Plan, id: StepId) {
        let label = display_label(plan, id);
        match &mut self.live {
            Some(live) => {
                let bar = live.multi.add(
                    ProgressBar::new_spinner()
                        .with_style(live.style.clone())
                        .with_message(label),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                live.bars.insert(id, bar);
            }
            None => self.line(&format!("{:>11}  {label}", "started")),
        }
    }

    pub fn finished(&mut self, plan: &Plan, id: StepId, record: &Record) {
        if let Some(bar) = self.live.as_mut().and_then(|live| live.bars.remove(&id)) {
            bar.finish_and_clear();
        }
        let mut line = format!(
            "{:>11}  {}",
            status(&record.outcome),
            display_label(plan, id)
        );
        let note = note(plan, record, &[]);
        if let Some(duration) = record.duration {
            let _ = write!(
                line,
                "  ({}{})",
                format_duration(duration),
                if note.is_empty() {
                    String::new()
                } else {
                    format!("; {note}")
                }
            );
        } else if !note.is_empty() {
            let _ = write!(line, "  ({note})");
        }
        self.line(&line);
        if matches!(record.outcome, Outcome::Failed(_))
            && let Some(log) = &record.log
        {
            for tail in tail::last_lines(log, TAIL_LINES) {
                self.line(&format!("{:>11}  | {tail}", ""));
            }
        }
    }
}

/// The summary table and totals, for stdout.
pub fn summary(plan: &Plan, results: &[Record], elapsed: Duration, log_dir: &Path) -> String {
    let rows: Vec<(StepId, &Record)> = results
        .iter()
        .enumerate()
        .filter(|(id, _)| plan.steps[*id].is_job())
        .collect();
    let labels: Vec<String> = rows
        .iter()
        .map(|(id, _)| display_label(plan, *id))
        .collect();
    let label_width = labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(4, 60);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<11}  {:>7}  {:<label_width$}  NOTE",
        "STATUS", "TIME", "STEP"
    );
    for ((_, record), label) in rows.iter().zip(&labels) {
        let time = record
            .duration
            .map_or_else(|| "-".to_owned(), format_duration);
        let note = note(plan, record, results);
        let log = match (&record.outcome, &record.log) {
            (Outcome::Failed(_) | Outcome::SoftFailed(_) | Outcome::Canceled(_), Some(log)) => {
                format!("  log: {}", log.display())
            }
            _ => String::new(),
        };
        let line = format!(
            "{:<11}  {time:>7}  {label:<label_width$}  {note}{log}",
            status(&record.outcome)
        );
        let _ = writeln!(out, "{}", printable(line.trim_end()));
    }
    let count = |pred: fn(&Outcome) -> bool| rows.iter().filter(|(_, r)| pred(&r.outcome)).count();
    let _ = write!(
        out,
        "{} step{} in {}: {} passed, {} soft-failed, {} failed, {} skipped, {} not run",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        format_duration(elapsed),
        count(|o| matches!(o, Outcome::Passed | Outcome::Unblocked)),
        count(|o| matches!(o, Outcome::SoftFailed(_))),
        count(|o| matches!(o, Outcome::Failed(_))),
        count(|o| matches!(o, Outcome::Skipped(_))),
        count(|o| matches!(o, Outcome::NotRun(_))),
    );
    let canceled = count(|o| matches!(o, Outcome::Canceled(_)));
    if canceled > 0 {
        let _ = write!(out, ", {canceled} canceled");
    }
    let blocked = count(|o| matches!(o, Outcome::Blocked));
    if blocked > 0 {
        let _ = write!(
            out,
            ", {blocked} blocked (--unblock continues past block steps)"
        );
    }
    let logs = format!("logs: {}", log_dir.display());
    let _ = writeln!(out, "\n{}", printable(&logs));
    out
}

fn status(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "passed",
        Outcome::Unblocked => "unblocked",
        Outcome::SoftFailed(_) => "soft-failed",
        Outcome::Failed(_) => "failed",
        Outcome::Canceled(_) => "canceled",
        Outcome::Skipped(_) => "skipped",
        Outcome::Blocked => "blocked",
        Outcome::NotRun(_) => "not run",
    }
}

/// Why a step ended as it did, in a few words. `results` (possibly empty,
/// while running) lets a "not run" name the step that actually failed.
fn note(plan: &Plan, record: &Record, results: &[Record]) -> String {
    let name = |id: StepId| format!("{:?}", display_label(plan, id));
    match &record.outcome {
        Outcome::Passed => String::new(),
        Outcome::Unblocked => "passed because of --unblock".to_owned(),
        Outcome::SoftFailed(code) => format!("exit {code}, allowed by soft_fail"),
        Outcome::Failed(Failure::Exit(code)) => format!("exit {code}"),
        Outcome::Failed(Failure::TimedOut(limit)) => {
            format!("timed out after {}", format_duration(*limit))
        }
        Outcome::Failed(Failure::Error(error)) => error.clone(),
        Outcome::Failed(Failure::InGroup) => "a step in the group failed".to_owned(),
        Outcome::Canceled(why) => (*why).to_owned(),
        Outcome::Skipped(reason) => reason.clone(),
        Outcome::Blocked => "a block step: run with --unblock to go past it".to_owned(),
        Outcome::NotRun(Why::DependencyFailed(dep)) => {
            let culprit = culprit(plan, *dep, results);
            if plan.steps[culprit].is_job() {
                format!("waits for {}, which did not pass", name(culprit))
            } else {
                "a step it waits for did not pass".to_owned()
            }
        }
        Outcome::NotRun(Why::Blocked(block)) => format!("waits for block step {}", name(*block)),
        Outcome::NotRun(Why::BuildFailing) => {
            "the build is failing (cancel_on_build_failing)".to_owned()
        }
        Outcome::NotRun(Why::Interrupted) => "interrupted".to_owned(),
        Outcome::NotRun(Why::PhaseStopped(reason)) => reason.clone(),
    }
}

/// Follows "not run because X did not pass" through waits and groups to a
/// step that failed itself.
fn culprit(plan: &Plan, mut id: StepId, results: &[Record]) -> StepId {
    for _ in 0..plan.steps.len() {
        let Some(record) = results.get(id) else {
            return id;
        };
        id = match (&record.outcome, &plan.steps[id].kind) {
            (Outcome::NotRun(Why::DependencyFailed(dep)), _) => *dep,
            (Outcome::Failed(Failure::InGroup), Kind::Group { children }) => {
                match children.iter().find(|&&c| {
                    results.get(c).is_some_and(|r| {
                        r.outcome.is_hard_failure()
                            || matches!(r.outcome, Outcome::NotRun(Why::DependencyFailed(_)))
                    })
                }) {
                    Some(&child) => child,
                    None => return id,
                }
            }
            _ => return id,
        };
    }
    id
}

/// A step's label, with its group's in front, escaped for the terminal
/// (so that its width is the width shown).
fn display_label(plan: &Plan, id: StepId) -> String {
    let step = &plan.steps[id];
    let label = match step.parent {
        Some(group) => format!("{} / {}", plan.steps[group].label, step.label),
        None => step.label.clone(),
    };
    printable(&label).into_owned()
}

pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::format_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(format_duration(Duration::from_millis(1234)), "1.2s");
        assert_eq!(format_duration(Duration::from_secs(62)), "1m02s");
        assert_eq!(
            format_duration(Duration::from_secs(3 * 3600 + 60 * 5)),
            "3h05m"
        );
    }
}
