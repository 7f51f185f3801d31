//! Running the steps: each starts once everything it waits for has finished
//! (see `graph`), up to `-j` at once, lowest upload position first. Phases
//! run one after the other, each only when the one before finished with
//! no hard failure and nothing blocked, as the `wait` before a phase's
//! upload step would have it.
//!
//! Nothing a step started outlives the run: Ctrl-C sends SIGTERM to every
//! running step's process group (SIGKILL after a grace period), a second
//! Ctrl-C sends SIGKILL at once, and the processes a finished step left
//! behind are ended too ([`Leftovers`]), before the run returns.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use super::context::Context;
use super::graph::Graph;
use super::job::{self, Exit, Interrupts, KILL_GRACE};
use super::leftovers::Leftovers;
use super::outcome::{Effect, Failure, Outcome, Record, Why};
use super::plan::{Kind, Plan, StepId};
use super::report::Progress;
use crate::process::Ended;

/// How often the loop looks at the clock and the Ctrl-C flag.
const POLL: Duration = Duration::from_millis(100);

#[derive(Clone, Copy)]
enum StopReason {
    Interrupted,
    BuildFailing,
    TimedOut,
}

struct Running {
    pgid: i32,
    started: Instant,
    log: PathBuf,
    deadline: Option<Instant>,
    /// Why and when SIGTERM was sent, and whether SIGKILL followed.
    stopping: Option<(StopReason, Instant, bool)>,
}

pub struct Scheduler<'a> {
    plan: &'a Plan,
    graph: &'a Graph,
    context: &'a Context,
    progress: &'a mut Progress,
    log_dir: PathBuf,
    interrupts: Interrupts,
    /// Whether the interruption was acted on: SIGTERM, then SIGKILL.
    stopped: bool,
    killed: bool,
    results: Vec<Option<Record>>,
    phase: usize,
    remaining: Vec<usize>,
    to_settle: BTreeSet<StepId>,
    ready: BTreeSet<StepId>,
    running: HashMap<StepId, Running>,
    leftovers: Leftovers,
    build_failing: bool,
    started_jobs: usize,
    events: (Sender<Exit>, Receiver<Exit>),
}

impl<'a> Scheduler<'a> {
    pub fn new(
        plan: &'a Plan,
        graph: &'a Graph,
        context: &'a Context,
        progress: &'a mut Progress,
        log_dir: PathBuf,
        interrupts: Interrupts,
    ) -> Scheduler<'a> {
        let n = plan.steps.len();
        Scheduler {
            plan,
            graph,
            context,
            progress,
            log_dir,
            interrupts,
            stopped: false,
            killed: false,
            results: vec![None; n],
            phase: 0,
            remaining: vec![0; n],
            to_settle: BTreeSet::new(),
            ready: BTreeSet::new(),
            running: HashMap::new(),
            leftovers: Leftovers::default(),
            build_failing: false,
            started_jobs: 0,
            events: mpsc::channel(),
        }
    }

    /// Runs every phase, then waits for what the steps left behind; returns
    /// each step's record and whether Ctrl-C stopped the run.
    pub fn run(mut self) -> (Vec<Record>, bool) {
        let mut stopped: Option<String> = None;
        for (index, phase) in self.plan.phases.iter().enumerate() {
            self.phase = index;
            if let Some(reason) = &stopped {
                for &id in &phase.all {
                    self.results[id] = Some(Record::of(Outcome::NotRun(Why::PhaseStopped(
                        reason.clone(),
                    ))));
                }
                continue;
            }
            let jobs = phase
                .all
                .iter()
                .filter(|&&id| self.plan.steps[id].is_job())
                .count();
            let skipped = self.start_phase();
            self.progress.phase(&phase.name, jobs, skipped);
            self.drive();
            stopped = self.verdict();
        }
        self.wait_for_leftovers();
        let interrupted = self.interrupts.stop();
        let results = self
            .results
            .into_iter()
            .map(|r| r.expect("every step has an outcome"))
            .collect();
        (results, interrupted)
    }

    /// Settles what needs no running and queues what can start; returns
    /// how many of the phase's jobs are skipped.
    fn start_phase(&mut self) -> usize {
        let phase = &self.plan.phases[self.phase];
        // Skipped and filtered steps are settled at once, as Buildkite shows
        // them skipped as soon as they are uploaded. Nothing waits on them
        // yet, so there is nothing to propagate; and there may be thousands
        // ("Target has not changed"), so they are counted, not each shown.
        let mut skipped = 0;
        for &id in &phase.all {
            if let Some(reason) = self.skip_reason(id) {
                skipped += usize::from(self.plan.steps[id].is_job());
                self.results[id] = Some(Record::of(Outcome::Skipped(reason)));
            }
        }
        for &id in &phase.all {
            if self.results[id].is_some() {
                continue;
            }
            let waiting = self.graph.prereqs[id]
                .iter()
                .filter(|e| self.results[e.on].is_none())
                .count();
            self.remaining[id] = waiting;
            if waiting == 0 {
                self.to_settle.insert(id);
            }
        }
        skipped
    }

    fn skip_reason(&self, id: StepId) -> Option<String> {
        let step = &self.plan.steps[id];
        if let Some(reason) = &self.graph.filtered[id] {
            return Some(reason.clone());
        }
        if matches!(step.kind, Kind::Group { .. }) {
            return None; // a group's `skip` is applied to its steps
        }
        step.skip
            .clone()
            .or_else(|| step.parent.and_then(|p| self.plan.steps[p].skip.clone()))
    }

    /// Settles, starts and waits until the phase has nothing left to do.
    fn drive(&mut self) {
        loop {
            while let Some(id) = self.to_settle.pop_first() {
                self.settle(id);
            }
            if self.interrupts.stop() {
                self.interrupted();
            } else {
                while self.running.len() < self.context.jobs {
                    let Some(id) = self.ready.pop_first() else {
                        break;
                    };
                    self.start(id);
                }
            }
            if self.running.is_empty() && self.to_settle.is_empty() {
                if self.ready.is_empty() || self.interrupts.stop() {
                    break;
                }
                continue;
            }
            match self.events.1.recv_timeout(POLL) {
                Ok(exit) => self.exited(exit),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => unreachable!("the scheduler holds a sender"),
            }
            self.check_deadlines();
            self.check_leftovers();
        }
        // Only an interruption leaves steps behind: they never start.
        let phase = &self.plan.phases[self.phase];
        for &id in &phase.all {
            if self.results[id].is_none() {
                self.results[id] = Some(Record::of(Outcome::NotRun(Why::Interrupted)));
            }
        }
        self.ready.clear();
    }

    /// Decides a step whose prerequisites have all finished.
    fn settle(&mut self, id: StepId) {
        let step = &self.plan.steps[id];
        if self.interrupts.stop() {
            return; // left for the sweep at the end of `drive`
        }
        if let Kind::Group { children } = &step.kind {
            let outcome = self.group_outcome(children);
            return self.finish(id, Record::of(outcome));
        }
        let mut stuck = None;
        for edge in &self.graph.prereqs[id] {
            let done = self.results[edge.on]
                .as_ref()
                .expect("settled after its prerequisites");
            match done.outcome.effect(edge.on) {
                Effect::Satisfied => {}
                Effect::Broken if edge.allow_failure => {}
                Effect::Broken => {
                    return self.finish(
                        id,
                        Record::of(Outcome::NotRun(Why::DependencyFailed(edge.on))),
                    );
                }
                Effect::Stuck(block) => stuck = stuck.or(Some(block)),
            }
        }
        if let Some(block) = stuck {
            return self.finish(id, Record::of(Outcome::NotRun(Why::Blocked(block))));
        }
        let outcome = match &step.kind {
            Kind::Wait { .. } => Outcome::Passed,
            Kind::Block | Kind::Input if self.context.unblock => Outcome::Unblocked,
            Kind::Block | Kind::Input => Outcome::Blocked,
            Kind::Trigger => Outcome::Skipped("trigger steps are not run locally".to_owned()),
            Kind::Command(command) if command.script.is_none() => {
                Outcome::Skipped("only plugins, which treekite run does not run".to_owned())
            }
            Kind::Command(command) if command.cancel_on_build_failing && self.build_failing => {
                Outcome::NotRun(Why::BuildFailing)
            }
            Kind::Command(_) => {
                self.ready.insert(id);
                return;
            }
            Kind::Group { .. } => unreachable!("handled above"),
        };
        self.finish(id, Record::of(outcome));
    }

    fn group_outcome(&self, children: &[StepId]) -> Outcome {
        let mut stuck = None;
        for &child in children {
            match self.results[child]
                .as_ref()
                .expect("group settles after its steps")
                .outcome
                .effect(child)
            {
                Effect::Satisfied => {}
                Effect::Broken => return Outcome::Failed(Failure::InGroup),
                Effect::Stuck(block) => stuck = stuck.or(Some(block)),
            }
        }
        stuck.map_or(Outcome::Passed, |block| {
            Outcome::NotRun(Why::Blocked(block))
        })
    }

    fn start(&mut self, id: StepId) {
        let step = &self.plan.steps[id];
        let Kind::Command(command) = &step.kind else {
            unreachable!("only command steps get ready")
        };
        let script = command
            .script
            .as_deref()
            .expect("steps without a script are skipped");
        self.started_jobs += 1;
        let log = self.log_dir.join(format!(
            "{:03}-{}.log",
            self.started_jobs,
            slug(step.key.as_deref().unwrap_or(&step.label))
        ));
        let spec = job::Spec {
            script,
            dir: &self.context.root,
            env: self.context.step_env(self.plan, id),
            log: log.clone(),
        };
        let started = Instant::now();
        match job::spawn(id, spec, self.events.0.clone()) {
            Ok(pgid) => {
                self.progress.started(self.plan, id);
                let deadline = command.timeout.map(|t| started + t);
                self.running.insert(
                    id,
                    Running {
                        pgid,
                        started,
                        log,
                        deadline,
                        stopping: None,
                    },
                );
            }
            Err(error) => {
                let outcome = Outcome::Failed(Failure::Error(format!("{error:#}")));
                self.finish(
                    id,
                    Record {
                        outcome,
                        duration: None,
                        log: None,
                    },
                );
            }
        }
    }

    fn exited(&mut self, exit: Exit) {
        let Some(run) = self.running.remove(&exit.id) else {
            return;
        };
        let Kind::Command(command) = &self.plan.steps[exit.id].kind else {
            unreachable!()
        };
        let outcome = match (run.stopping, exit.status) {
            (Some((StopReason::Interrupted, ..)), _) => Outcome::Canceled("interrupted"),
            (Some((StopReason::BuildFailing, ..)), _) => {
                Outcome::Canceled("the build is failing (cancel_on_build_failing)")
            }
            (Some((StopReason::TimedOut, ..)), _) => {
                Outcome::Failed(Failure::TimedOut(command.timeout.unwrap_or_default()))
            }
            (None, Err(error)) => {
                Outcome::Failed(Failure::Error(format!("waiting for the step: {error}")))
            }
            (None, Ok(status)) => match i64::from(Ended::of(status).shell_status()) {
                0 => Outcome::Passed,
                code if command.soft_fail.allows(code) => Outcome::SoftFailed(code),
                code => Outcome::Failed(Failure::Exit(code)),
            },
        };
        let duration = exit.at.saturating_duration_since(run.started);
        let stopping = run.stopping.map(|(_, sent, killed)| (sent, killed));
        let left = self.leftovers.after_step(exit.id, run.pgid, stopping);
        self.finish(
            exit.id,
            Record {
                outcome,
                duration: Some(duration),
                log: Some(run.log),
            },
        );
        if left && stopping.is_none() {
            self.progress.warn(&format!(
                "step {:?} left processes running; stopping them",
                self.plan.steps[exit.id].label
            ));
        }
    }

    fn finish(&mut self, id: StepId, record: Record) {
        if self.plan.steps[id].is_job() {
            self.progress.finished(self.plan, id, &record);
        }
        let failed = record.outcome.fails_build(&self.plan.steps[id]);
        self.results[id] = Some(record);
        if failed && !self.build_failing {
            self.build_failing = true;
            self.cancel_on_build_failing();
        }
        for &dependent in &self.graph.dependents[id] {
            if self.plan.steps[dependent].phase != self.phase || self.results[dependent].is_some() {
                continue;
            }
            self.remaining[dependent] -= 1;
            if self.remaining[dependent] == 0 {
                self.to_settle.insert(dependent);
            }
        }
    }

    fn cancel_on_build_failing(&mut self) {
        let plan = self.plan;
        let cancel = |id: &StepId| matches!(&plan.steps[*id].kind, Kind::Command(c) if c.cancel_on_build_failing);
        for (_, run) in self.running.iter_mut().filter(|(id, _)| cancel(id)) {
            stop(run, StopReason::BuildFailing);
        }
    }

    /// Acts on Ctrl-C (or SIGTERM, SIGHUP): the first stops every running
    /// step gracefully, the second kills every step's processes, running
    /// or left behind.
    fn interrupted(&mut self) {
        if !self.stopped {
            self.stopped = true;
            if !self.interrupts.kill() && !self.running.is_empty() {
                self.progress.line(&format!(
                    "treekite: interrupted: stopping {} running step{} (Ctrl-C again kills them)",
                    self.running.len(),
                    if self.running.len() == 1 { "" } else { "s" }
                ));
            }
            for run in self.running.values_mut() {
                stop(run, StopReason::Interrupted);
            }
        }
        if self.interrupts.kill() && !self.killed {
            self.killed = true;
            self.progress
                .line("treekite: interrupted again: killing every step's processes (SIGKILL)");
            for run in self.running.values_mut() {
                kill(run);
            }
            self.leftovers.kill_all();
        }
    }

    /// Timeouts, and SIGKILL for steps that outlived their grace period.
    fn check_deadlines(&mut self) {
        let now = Instant::now();
        for run in self.running.values_mut() {
            if run.deadline.is_some_and(|d| now >= d) {
                stop(run, StopReason::TimedOut);
            }
            if let Some((_, sent, false)) = run.stopping
                && now.duration_since(sent) >= KILL_GRACE
            {
                kill(run);
            }
        }
    }

    /// SIGKILL for what finished steps left behind and ignored SIGTERM.
    fn check_leftovers(&mut self) {
        for step in self.leftovers.check() {
            self.progress.warn(&format!(
                "the processes step {:?} left ignored SIGTERM for {}s: killed them (SIGKILL)",
                self.plan.steps[step].label,
                KILL_GRACE.as_secs()
            ));
        }
    }

    /// Waits until every process the steps left behind has ended: SIGKILL
    /// a grace period after SIGTERM, or at once on Ctrl-C. Gives up, saying
    /// so, on processes that outlive SIGKILL (stuck in the kernel).
    fn wait_for_leftovers(&mut self) {
        let seen = self.interrupts.count();
        let since = Instant::now();
        let mut announced = false;
        loop {
            if !self.killed && (self.interrupts.count() > seen || self.interrupts.kill()) {
                self.killed = true;
                if !self.leftovers.is_empty() {
                    self.progress.line(
                        "treekite: interrupted: killing the processes steps left behind (SIGKILL)",
                    );
                }
                self.leftovers.kill_all();
            }
            self.check_leftovers();
            if self.leftovers.is_empty() {
                break;
            }
            if since.elapsed() >= 2 * KILL_GRACE {
                self.progress.warn(&format!(
                    "processes left by {} are still there after SIGKILL; giving up on them",
                    self.leftover_labels()
                ));
                break;
            }
            if !announced && since.elapsed() >= POLL {
                announced = true;
                self.progress.line(&format!(
                    "treekite: waiting for the processes left by {} to end (Ctrl-C kills them)",
                    self.leftover_labels()
                ));
            }
            std::thread::sleep(POLL);
        }
        job::reap_all();
    }

    /// The labels of the steps whose processes are still there.
    fn leftover_labels(&self) -> String {
        let labels: Vec<String> = (self.leftovers.steps().iter())
            .map(|&step| format!("{:?}", self.plan.steps[step].label))
            .collect();
        labels.join(", ")
    }

    /// Why the next phases cannot run, if they cannot.
    fn verdict(&self) -> Option<String> {
        let phase = &self.plan.phases[self.phase];
        if self.interrupts.stop() {
            return Some("interrupted".to_owned());
        }
        let outcomes = || {
            phase
                .all
                .iter()
                .map(|&id| (id, &self.results[id].as_ref().expect("settled").outcome))
        };
        if outcomes().any(|(id, o)| o.fails_build(&self.plan.steps[id])) {
            return Some(format!("phase {} failed", phase.name));
        }
        outcomes()
            .find_map(|(id, o)| match o.effect(id) {
                Effect::Stuck(block) => Some(block),
                _ => None,
            })
            .map(|block| {
                format!(
                    "phase {} stopped at block step {:?}",
                    phase.name, self.plan.steps[block].label
                )
            })
    }
}

/// Sends SIGTERM to a running step's group, once.
fn stop(run: &mut Running, reason: StopReason) {
    if run.stopping.is_none() {
        job::signal_group(run.pgid, libc::SIGTERM);
        run.stopping = Some((reason, Instant::now(), false));
    }
}

/// Sends SIGKILL to a running step's group, once it was stopped.
fn kill(run: &mut Running) {
    if let Some((_, _, killed @ false)) = &mut run.stopping {
        job::signal_group(run.pgid, libc::SIGKILL);
        *killed = true;
    }
}

/// A file-name-safe form of a step's key or label.
fn slug(text: &str) -> String {
    let slug: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let slug = slug.trim_matches('-');
    let slug: String = slug.chars().take(60).collect();
    if slug.is_empty() {
        "step".to_owned()
    } else {
        slug
    }
}
