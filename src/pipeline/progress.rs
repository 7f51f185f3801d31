//! Progress while a depot evaluates: on a large depot evaluation takes
//! minutes, and `treekite pipeline` would be silent until the end.
//!
//! What is measured: most of the time goes to the targets' drvPaths, all
//! evaluated before Nix prints the first step, so the printed JSON cannot
//! tell how far evaluation is. nix/buildkite traces it instead when asked
//! (`TREEKITE_PROGRESS=1`): a `trace: treekite-progress DONE/TOTAL` line on
//! Nix's stderr about every 200th of the targets. Those lines are taken
//! out of Nix's stderr here; every other line passes through as it is.
//!
//! What is shown: nothing when it is all done within [`Timing::quiet`]
//! (2 s); after that, on a terminal, one live line (targets evaluated of the
//! total, elapsed time), cleared at the end; in a log (not a terminal, as on
//! an agent) a plain line at most every [`Timing::log_every`] (10 s), and
//! a last one at the end.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The variable that asks nix/buildkite for progress traces.
pub const ENV: &str = "TREEKITE_PROGRESS";

/// The traces' prefix, as Nix prints them.
const TRACE: &[u8] = b"trace: treekite-progress ";

/// When progress shows.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Nothing is shown before this much time has passed.
    pub quiet: Duration,
    /// In a log, at most one line per this much time.
    pub log_every: Duration,
}

impl Timing {
    pub const DEFAULT: Timing = Timing {
        quiet: Duration::from_secs(2),
        log_every: Duration::from_secs(10),
    };

    /// The default, or `TREEKITE_PROGRESS_TIMING=QUIET_MS,LOG_EVERY_MS`
    /// (for tests, which cannot wait seconds for a line).
    pub fn from_env() -> Timing {
        let parse = |text: &str| -> Option<Timing> {
            let (quiet, every) = text.split_once(',')?;
            Some(Timing {
                quiet: Duration::from_millis(quiet.trim().parse().ok()?),
                log_every: Duration::from_millis(every.trim().parse().ok()?),
            })
        };
        std::env::var("TREEKITE_PROGRESS_TIMING")
            .ok()
            .and_then(|text| parse(&text))
            .unwrap_or(Timing::DEFAULT)
    }
}

/// How far evaluation is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Count {
    done: usize,
    total: Option<usize>,
}

impl Count {
    fn describe(self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs();
        match self.total {
            Some(total) if self.done >= total => {
                format!("treekite: evaluated {total} targets; reading the steps ({secs} s)")
            }
            Some(total) => format!(
                "treekite: evaluating: {} of {total} targets ({secs} s)",
                self.done
            ),
            None => format!("treekite: evaluating the pipeline ({secs} s)"),
        }
    }
}

struct State {
    count: Count,
    /// The live line is on the terminal now.
    drawn: bool,
    last_log: Option<Instant>,
    finished: bool,
}

struct Shared {
    started: Instant,
    timing: Timing,
    terminal: bool,
    state: Mutex<State>,
    wake: Condvar,
}

/// Shows progress from Nix's stderr until [`Progress::finish`].
pub struct Progress {
    shared: Arc<Shared>,
    ticker: Option<JoinHandle<()>>,
}

impl Progress {
    pub fn start(timing: Timing) -> Progress {
        let terminal = std::io::stderr().is_terminal()
            && std::env::var("TERM").map_or(true, |term| term != "dumb");
        let shared = Arc::new(Shared {
            started: Instant::now(),
            timing,
            terminal,
            state: Mutex::new(State {
                count: Count::default(),
                drawn: false,
                last_log: None,
                finished: false,
            }),
            wake: Condvar::new(),
        });
        let ticking = Arc::clone(&shared);
        let ticker = std::thread::spawn(move || ticking.tick());
        Progress {
            shared,
            ticker: Some(ticker),
        }
    }

    /// Reads Nix's stderr to its end: progress traces are counted, every
    /// other line goes to our stderr.
    pub fn relay(&self, nix_stderr: impl std::io::Read) {
        let mut reader = std::io::BufReader::new(nix_stderr);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            match parse_trace(&line) {
                Some(count) => self.shared.update(count),
                None => self.shared.pass_on(&line),
            }
        }
    }

    /// Clears the live line; nothing is shown after this.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        {
            let mut state = self.shared.state.lock().expect("progress state");
            if state.finished {
                return;
            }
            state.finished = true;
            self.shared.clear(&mut state);
            // A log past the quiet time gets where it ended.
            let elapsed = self.shared.started.elapsed();
            if !self.shared.terminal && elapsed >= self.shared.timing.quiet {
                eprintln!("{}", state.count.describe(elapsed));
            }
        }
        self.shared.wake.notify_all();
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    /// Redraws (terminal) or logs (at most every `log_every`) until finished.
    fn tick(&self) {
        let period = if self.terminal {
            Duration::from_millis(200)
        } else {
            self.timing
                .log_every
                .clamp(Duration::from_millis(10), Duration::from_secs(1))
        };
        let mut state = self.state.lock().expect("progress state");
        while !state.finished {
            let elapsed = self.started.elapsed();
            if elapsed >= self.timing.quiet {
                if self.terminal {
                    self.draw(&mut state);
                } else if state
                    .last_log
                    .is_none_or(|last| last.elapsed() >= self.timing.log_every)
                {
                    eprintln!("{}", state.count.describe(elapsed));
                    state.last_log = Some(Instant::now());
                }
            }
            state = self
                .wake
                .wait_timeout(state, period)
                .expect("progress state")
                .0;
        }
    }

    fn update(&self, count: Count) {
        let mut state = self.state.lock().expect("progress state");
        state.count = count;
        if state.drawn {
            self.draw(&mut state);
        }
    }

    /// A line of Nix's own, with the live line out of its way.
    fn pass_on(&self, line: &[u8]) {
        let mut state = self.state.lock().expect("progress state");
        let redraw = state.drawn;
        self.clear(&mut state);
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(line);
        let _ = stderr.flush();
        drop(stderr);
        if redraw {
            self.draw(&mut state);
        }
    }

    fn draw(&self, state: &mut State) {
        let text = state.count.describe(self.started.elapsed());
        eprint!("\r\x1b[2K{text}");
        state.drawn = true;
    }

    fn clear(&self, state: &mut State) {
        if state.drawn {
            eprint!("\r\x1b[2K");
            state.drawn = false;
        }
    }
}

/// `trace: treekite-progress 26/5000` → 26 of 5000.
fn parse_trace(line: &[u8]) -> Option<Count> {
    let rest = line.strip_prefix(TRACE)?;
    let text = std::str::from_utf8(rest).ok()?.trim_end();
    let (done, total) = text.split_once('/')?;
    Some(Count {
        done: done.parse().ok()?,
        total: Some(total.parse().ok()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_are_told_from_other_lines() {
        assert_eq!(
            parse_trace(b"trace: treekite-progress 26/5000\n"),
            Some(Count {
                done: 26,
                total: Some(5000)
            })
        );
        assert_eq!(parse_trace(b"trace: treekite-progress x\n"), None);
        assert_eq!(parse_trace(b"trace: something else\n"), None);
        assert_eq!(parse_trace(b"error: treekite-progress 1/2\n"), None);
    }

    #[test]
    fn lines_say_how_far() {
        let at = Duration::from_secs(12);
        let count = |done, total| Count { done, total };
        assert_eq!(
            count(3500, Some(10000)).describe(at),
            "treekite: evaluating: 3500 of 10000 targets (12 s)"
        );
        assert_eq!(
            count(10000, Some(10000)).describe(at),
            "treekite: evaluated 10000 targets; reading the steps (12 s)"
        );
        assert_eq!(
            count(0, None).describe(at),
            "treekite: evaluating the pipeline (12 s)"
        );
    }
}
