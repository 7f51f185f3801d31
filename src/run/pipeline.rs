//! Loading a pipeline directory into steps: each chunk read, interpolated
//! as the agent would upload it, and every step checked for a shape
//! treekite can run. Nothing here runs anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Map, Value};

use super::interpolate::{self, Env};
use crate::chunks::{self, Chunk};
use crate::exit::bad_input;

pub type StepId = usize;

/// Chunk files by phase name, as `chunks::by_phase` finds them.
pub type ChunksByPhase = BTreeMap<String, Vec<Chunk>>;

/// The steps of the phases to run, in upload order.
#[derive(Debug, Default)]
pub struct Pipeline {
    pub phases: Vec<Phase>,
    /// Every step of every phase (groups' steps included), in upload order.
    pub steps: Vec<Step>,
    /// Keys defined by phases in DIR that this run leaves out.
    pub other_phase_keys: BTreeMap<String, String>,
    /// Things treekite runs differently from Buildkite, to tell the user.
    pub warnings: Vec<String>,
}

#[derive(Debug)]
pub struct Phase {
    pub name: String,
    /// Top-level steps of all its chunks, chunk 1 first.
    pub top: Vec<StepId>,
    /// Every step of the phase (including those inside groups).
    pub all: Vec<StepId>,
}

#[derive(Debug)]
pub struct Step {
    pub phase: usize,
    /// Where the step is written, for messages: `build-chunk-1.json: steps[3]`.
    pub origin: String,
    pub kind: Kind,
    pub key: Option<String>,
    pub label: String,
    pub parent: Option<StepId>,
    pub depends_on: Vec<Dependency>,
    pub allow_dependency_failure: bool,
    /// Why the step is skipped (`skip: true` or a reason).
    pub skip: Option<String>,
    /// Branch patterns from `branches`, split on whitespace.
    pub branches: Option<Vec<String>>,
    /// The upload's `env` then the step's own (the step's win).
    pub env: Vec<(String, String)>,
}

#[derive(Debug)]
pub enum Kind {
    Command(Command),
    Wait { continue_on_failure: bool },
    Block,
    Input,
    Trigger,
    Group { children: Vec<StepId> },
}

#[derive(Debug)]
pub struct Command {
    /// The script for `bash -e -c`; `None` for a step with only plugins.
    pub script: Option<String>,
    pub soft_fail: SoftFail,
    pub timeout: Option<Duration>,
    pub cancel_on_build_failing: bool,
}

#[derive(Debug, PartialEq)]
pub enum SoftFail {
    Never,
    Always,
    ExitStatuses(Vec<i64>),
}

impl SoftFail {
    pub fn allows(&self, status: i64) -> bool {
        match self {
            SoftFail::Never => false,
            SoftFail::Always => true,
            SoftFail::ExitStatuses(list) => list.contains(&status),
        }
    }
}

#[derive(Debug)]
pub struct Dependency {
    pub key: String,
    pub allow_failure: bool,
}

impl Step {
    /// `build-chunk-1.json: steps[3] ":nix: foo"` for messages.
    pub fn describe(&self) -> String {
        if self.label.is_empty() {
            self.origin.clone()
        } else {
            format!("{} {:?}", self.origin, self.label)
        }
    }

    /// Steps a person cares about in progress and summary (not waits or groups).
    pub fn is_job(&self) -> bool {
        !matches!(self.kind, Kind::Wait { .. } | Kind::Group { .. })
    }
}

/// Which phases of `dir` to run: the ones asked for, in that order, or
/// every phase there: in `treekite pipeline`'s order when it left its
/// manifest, else `build` first, then `release`, then the others by name.
pub fn choose_phases(dir: &Path, asked: &[String]) -> Result<(Vec<String>, ChunksByPhase)> {
    let available = chunks::by_phase(dir)?;
    if asked.is_empty()
        && let Some(names) = chunks::manifest(dir)?
    {
        return Ok((names, available));
    }
    if asked.is_empty() {
        if available.is_empty() {
            return Err(bad_input(format!(
                "{} holds no <phase>-chunk-<n>.json files; write them with `treekite pipeline --out DIR`",
                dir.display()
            )));
        }
        let mut names: Vec<String> = available.keys().cloned().collect();
        names.sort_by_key(|name| {
            (
                !matches!(name.as_str(), "build"),
                !matches!(name.as_str(), "release"),
            )
        });
        return Ok((names, available));
    }
    let mut names: Vec<String> = Vec::new();
    for name in asked {
        if !available.contains_key(name) {
            // Reuse the one wording for a phase that is not there.
            chunks::of_phase(dir, name)?;
        }
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    Ok((names, available))
}

/// Reads the chunks of `phases` (and the keys of the other phases in DIR).
pub fn load(phases: &[String], mut chunks: ChunksByPhase, env: &Env) -> Result<Pipeline> {
    let mut pipeline = Pipeline::default();
    let mut unset = BTreeSet::new();
    for (index, name) in phases.iter().enumerate() {
        let files = chunks.remove(name).unwrap_or_default();
        let mut phase = Phase {
            name: name.clone(),
            top: Vec::new(),
            all: Vec::new(),
        };
        for chunk in &files {
            let (doc, names) = read_interpolated(&chunk.path, env)?;
            unset.extend(names);
            let first = pipeline.steps.len();
            let top = Loader {
                pipeline: &mut pipeline,
                phase: index,
                file: chunk.name(),
            }
            .document(doc)?;
            phase.top.extend(top);
            phase.all.extend(first..pipeline.steps.len());
        }
        pipeline.phases.push(phase);
    }
    for chunk in chunks.values().flatten() {
        for key in keys_of(&chunk.path, env) {
            pipeline.other_phase_keys.insert(key, chunk.phase.clone());
        }
    }
    if !unset.is_empty() {
        let names: Vec<String> = unset.into_iter().map(|n| format!("${n}")).collect();
        pipeline.warnings.push(format!(
            "{} {} substituted at upload time but not set, so {} empty; write `$$` where the shell \
             should see a `$`, or pass --env NAME=VALUE",
            names.join(", "),
            if names.len() == 1 { "is" } else { "are" },
            if names.len() == 1 {
                "it becomes"
            } else {
                "they become"
            },
        ));
    }
    Ok(pipeline)
}

fn read_interpolated(path: &Path, env: &Env) -> Result<(Value, BTreeSet<String>)> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: Value = serde_json::from_slice(&text)
        .map_err(|e| bad_input(format!("{}: not valid JSON: {e}", path.display())))?;
    // Each upload sees the uploader's variables plus its own `env` block.
    let mut env = env.clone();
    interpolate::document(doc, &mut env).map_err(|message| {
        bad_input(format!(
            "{}: the upload would fail: {message}",
            path.display()
        ))
    })
}

/// Step keys of a chunk this run does not execute (best effort: a file
/// that does not parse simply contributes none).
fn keys_of(path: &Path, env: &Env) -> Vec<String> {
    fn collect(steps: &[Value], out: &mut Vec<String>) {
        for step in steps {
            if let Some(key) = step_key(step) {
                out.push(key.to_owned());
            }
            if let Some(children) = step.get("steps").and_then(Value::as_array) {
                collect(children, out);
            }
        }
    }
    let mut keys = Vec::new();
    if let Ok((doc, _)) = read_interpolated(path, env) {
        collect(steps_of(&doc).unwrap_or(&[]), &mut keys);
    }
    keys
}

fn steps_of(doc: &Value) -> Option<&[Value]> {
    match doc {
        Value::Array(steps) => Some(steps),
        Value::Object(map) => map
            .get("steps")
            .and_then(Value::as_array)
            .map(Vec::as_slice),
        _ => None,
    }
}

fn step_key(step: &Value) -> Option<&str> {
    step.as_object().map(unwrap_nested).and_then(key_field)
}

/// `key`, or its aliases `identifier` and `id`.
fn key_field(fields: &Map<String, Value>) -> Option<&str> {
    ["key", "identifier", "id"]
        .iter()
        .find_map(|f| fields.get(*f).and_then(Value::as_str))
}

/// Turns one interpolated chunk into steps.
struct Loader<'p> {
    pipeline: &'p mut Pipeline,
    phase: usize,
    file: String,
}

impl Loader<'_> {
    fn document(&mut self, doc: Value) -> Result<Vec<StepId>> {
        let file_env: Vec<(String, String)> = match doc.get("env") {
            Some(Value::Object(env)) => env_pairs(env),
            _ => Vec::new(),
        };
        let Some(steps) = steps_of(&doc) else {
            return Err(bad_input(format!(
                "{}: expected {{\"steps\": [...]}}; is this a pipeline chunk?",
                self.file
            )));
        };
        let mut top = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            top.push(self.step(step, &format!("steps[{i}]"), None, &file_env)?);
        }
        Ok(top)
    }

    fn step(
        &mut self,
        raw: &Value,
        path: &str,
        parent: Option<StepId>,
        file_env: &[(String, String)],
    ) -> Result<StepId> {
        let origin = format!("{}: {path}", self.file);
        let bad = |what: String| bad_input(format!("{origin}: {what}"));
        let owned;
        let fields: &Map<String, Value> = match raw {
            Value::String(name) => match name.as_str() {
                "wait" | "waiter" | "block" | "manual" | "input" => {
                    owned = Map::from_iter([(name.clone(), Value::Null)]);
                    &owned
                }
                other => {
                    return Err(bad(format!(
                        "{other:?} is not a step; a string step is \"wait\", \"block\" or \"input\""
                    )));
                }
            },
            Value::Object(map) => unwrap_nested(map),
            other => return Err(bad(format!("a step must be an object, found {other}"))),
        };
        let kind_name = step_type(fields).ok_or_else(|| {
            bad("the agent cannot tell what kind of step this is (it needs command, commands, plugins, wait, block, input, trigger or group)".to_owned())
        })?;
        let id = self.pipeline.steps.len();
        let label = ["label", "name", "group", "block", "input", "trigger"]
            .iter()
            .find_map(|f| {
                fields
                    .get(*f)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            })
            .map(str::to_owned);
        let mut env = file_env.to_vec();
        if let Some(step_env) = fields.get("env") {
            let Value::Object(step_env) = step_env else {
                return Err(bad("`env` must be an object".to_owned()));
            };
            for (name, value) in env_pairs(step_env) {
                env.retain(|(n, _)| *n != name);
                env.push((name, value));
            }
        }
        // The step takes its place (its id) before its kind is worked out,
        // so that a group comes before its own steps; kind and label are
        // filled in below.
        let step = Step {
            phase: self.phase,
            origin: origin.clone(),
            kind: Kind::Wait {
                continue_on_failure: false,
            },
            key: key_field(fields).map(str::to_owned),
            label: String::new(),
            parent,
            depends_on: depends_on(fields.get("depends_on")).map_err(bad)?,
            allow_dependency_failure: flag(fields, "allow_dependency_failure").map_err(bad)?,
            skip: skip(fields.get("skip")).map_err(bad)?,
            branches: branches(fields.get("branches")).map_err(bad)?,
            env,
        };
        self.pipeline.steps.push(step);
        let kind = match kind_name {
            "command" => Kind::Command(self.command(fields, &origin)?),
            "wait" => Kind::Wait {
                continue_on_failure: flag(fields, "continue_on_failure").map_err(bad)?,
            },
            "block" => Kind::Block,
            "input" => Kind::Input,
            "trigger" => {
                self.warn(&origin, "trigger steps start another pipeline's build; treekite run reports them as skipped");
                Kind::Trigger
            }
            _ => {
                if parent.is_some() {
                    return Err(bad(
                        "a group inside a group is refused at upload; groups cannot nest"
                            .to_owned(),
                    ));
                }
                let Some(Value::Array(children)) = fields.get("steps") else {
                    return Err(bad(
                        "a group needs `steps`, a list of at least one step".to_owned()
                    ));
                };
                if children.is_empty() {
                    return Err(bad("a group needs at least one step".to_owned()));
                }
                let mut ids = Vec::new();
                for (i, child) in children.iter().enumerate() {
                    ids.push(self.step(
                        child,
                        &format!("{path}.steps[{i}]"),
                        Some(id),
                        file_env,
                    )?);
                }
                Kind::Group { children: ids }
            }
        };
        if fields.contains_key("if") {
            self.warn(&origin, "`if` conditions are not evaluated by treekite run; the step runs as if it were true");
        }
        let label =
            label.unwrap_or_else(|| default_label(&kind, self.pipeline.steps[id].key.as_deref()));
        let step = &mut self.pipeline.steps[id];
        step.kind = kind;
        step.label = label;
        Ok(id)
    }

    fn command(&mut self, fields: &Map<String, Value>, origin: &str) -> Result<Command> {
        let bad = |what: &str| bad_input(format!("{origin}: {what}"));
        let script = match fields.get("command").or_else(|| fields.get("commands")) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(lines)) => Some(
                lines
                    .iter()
                    .map(|l| {
                        l.as_str()
                            .ok_or_else(|| bad("`commands` must be a list of strings"))
                    })
                    .collect::<Result<Vec<_>>>()?
                    .join("\n"),
            ),
            Some(_) => return Err(bad("`command` must be a string or a list of strings")),
        };
        if fields.contains_key("plugins") {
            self.warn(
                origin,
                "plugins are not run by treekite run; only the step's command runs",
            );
        }
        for field in ["parallelism", "matrix"] {
            if fields.contains_key(field) {
                self.warn(
                    origin,
                    &format!("`{field}` is not supported by treekite run; the step runs once"),
                );
            }
        }
        let timeout = match fields.get("timeout_in_minutes") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(minutes) if minutes > 0 => Some(Duration::from_secs(minutes * 60)),
                _ => {
                    return Err(bad(
                        "`timeout_in_minutes` must be a whole number of minutes, at least 1",
                    ));
                }
            },
        };
        Ok(Command {
            script,
            soft_fail: soft_fail(fields.get("soft_fail")).map_err(|e| bad(&e))?,
            timeout,
            cancel_on_build_failing: flag(fields, "cancel_on_build_failing")
                .map_err(|e| bad(&e))?,
        })
    }

    fn warn(&mut self, origin: &str, message: &str) {
        self.pipeline.warnings.push(format!("{origin}: {message}"));
    }
}

/// `{"command": {...}}`-style steps: the one field holds the step itself.
fn unwrap_nested(map: &Map<String, Value>) -> &Map<String, Value> {
    if map.len() == 1 {
        let (name, value) = map.iter().next().expect("one entry");
        if let Value::Object(inner) = value
            && matches!(
                name.as_str(),
                "command"
                    | "commands"
                    | "script"
                    | "wait"
                    | "waiter"
                    | "block"
                    | "input"
                    | "trigger"
            )
        {
            return inner;
        }
    }
    map
}

/// The kind of step, inferred the way the agent infers it.
fn step_type(fields: &Map<String, Value>) -> Option<&'static str> {
    if let Some(t) = fields.get("type") {
        return match t.as_str()? {
            "command" | "script" | "commands" => Some("command"),
            "wait" | "waiter" => Some("wait"),
            "block" | "manual" => Some("block"),
            "input" => Some("input"),
            "trigger" => Some("trigger"),
            "group" => Some("group"),
            _ => None,
        };
    }
    const BY_FIELD: &[(&[&str], &str)] = &[
        (&["command", "commands", "plugins"], "command"),
        (&["wait", "waiter"], "wait"),
        (&["block"], "block"),
        (&["input"], "input"),
        (&["manual"], "block"),
        (&["trigger"], "trigger"),
        (&["group"], "group"),
    ];
    BY_FIELD
        .iter()
        .find(|(names, _)| names.iter().any(|n| fields.contains_key(*n)))
        .map(|(_, kind)| *kind)
}

fn default_label(kind: &Kind, key: Option<&str>) -> String {
    let first_line = |s: &str| {
        s.lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(60)
            .collect::<String>()
    };
    match (kind, key) {
        (_, Some(key)) => key.to_owned(),
        (
            Kind::Command(Command {
                script: Some(script),
                ..
            }),
            None,
        ) => first_line(script),
        (Kind::Wait { .. }, None) => "wait".to_owned(),
        (Kind::Block, None) => "block".to_owned(),
        (Kind::Input, None) => "input".to_owned(),
        _ => String::new(),
    }
}

fn env_pairs(env: &Map<String, Value>) -> Vec<(String, String)> {
    env.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), interpolate::scalar_text(v)))
        .collect()
}

/// A boolean field, which Buildkite also accepts as "true"/"false".
fn flag(fields: &Map<String, Value>, name: &str) -> Result<bool, String> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(v) => boolish(v).ok_or_else(|| format!("`{name}` must be true or false, found {v}")),
    }
}

fn boolish(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

fn depends_on(value: Option<&Value>) -> Result<Vec<Dependency>, String> {
    let entry = |v: &Value| -> Result<Dependency, String> {
        match v {
            Value::String(key) => Ok(Dependency {
                key: key.clone(),
                allow_failure: false,
            }),
            Value::Object(map) => {
                let key = map
                    .get("step")
                    .and_then(Value::as_str)
                    .ok_or("a `depends_on` entry names no `step`")?;
                let allow_failure = match map.get("allow_failure") {
                    None | Some(Value::Null) => false,
                    Some(v) => boolish(v).ok_or("`allow_failure` must be true or false")?,
                };
                Ok(Dependency {
                    key: key.to_owned(),
                    allow_failure,
                })
            }
            other => Err(format!(
                "`depends_on` entries are keys or {{\"step\": KEY}}, found {other}"
            )),
        }
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => list.iter().map(entry).collect(),
        Some(one) => Ok(vec![entry(one)?]),
    }
}

fn skip(value: Option<&Value>) -> Result<Option<String>, String> {
    match value {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(None),
        Some(Value::Bool(true)) => Ok(Some("skip: true".to_owned())),
        Some(Value::String(s)) if s.is_empty() || s == "false" => Ok(None),
        Some(Value::String(s)) if s == "true" => Ok(Some("skip: true".to_owned())),
        Some(Value::String(reason)) => Ok(Some(reason.clone())),
        Some(other) => Err(format!(
            "`skip` must be true, false or a reason, found {other}"
        )),
    }
}

fn soft_fail(value: Option<&Value>) -> Result<SoftFail, String> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(SoftFail::Never);
    };
    if let Some(b) = boolish(value) {
        return Ok(if b { SoftFail::Always } else { SoftFail::Never });
    }
    let wrong = || {
        format!(
            "`soft_fail` must be true, false or a list of {{\"exit_status\": N or \"*\"}}, found {value}"
        )
    };
    let Value::Array(list) = value else {
        return Err(wrong());
    };
    let mut statuses = Vec::new();
    for entry in list {
        match entry.get("exit_status") {
            Some(Value::String(s)) if s == "*" => return Ok(SoftFail::Always),
            Some(Value::Number(n)) if n.is_i64() => statuses.push(n.as_i64().expect("checked")),
            Some(Value::String(s)) if s.parse::<i64>().is_ok() => {
                statuses.push(s.parse().expect("checked"))
            }
            _ => return Err(wrong()),
        }
    }
    Ok(SoftFail::ExitStatuses(statuses))
}

fn branches(value: Option<&Value>) -> Result<Option<Vec<String>>, String> {
    let split = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(split(s))),
        Some(Value::Array(list)) => {
            let mut patterns = Vec::new();
            for item in list {
                let s = item
                    .as_str()
                    .ok_or_else(|| format!("`branches` entries must be strings, found {item}"))?;
                patterns.extend(split(s));
            }
            Ok(Some(patterns))
        }
        Some(other) => Err(format!(
            "`branches` must be a string or a list of strings, found {other}"
        )),
    }
}
