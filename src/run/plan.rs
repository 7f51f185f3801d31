//! The plan of a local run: a pipeline directory's chunks, each read and
//! interpolated as the agent would upload it, turned into steps checked
//! for a shape treekite can run. Nothing here runs anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Map, Value};

use super::interpolate::{self, Env};
use crate::exit::bad_input;
use crate::pipeline_dir::PipelineDir;
use crate::step_fields::{self, branches, skip};

pub type StepId = usize;

/// The steps of the phases to run, in upload order.
#[derive(Debug, Default)]
pub struct Plan {
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
    Command(CommandStep),
    Wait { continue_on_failure: bool },
    Block,
    Input,
    Trigger,
    Group { children: Vec<StepId> },
}

#[derive(Debug)]
pub struct CommandStep {
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

/// Which phases of the directory to run: the ones asked for, in that
/// order (each once), or every phase there, in upload order.
pub fn choose_phases(dir: &PipelineDir, asked: &[String]) -> Result<Vec<String>> {
    if asked.is_empty() {
        return dir.phases();
    }
    let mut names: Vec<String> = Vec::new();
    for name in asked {
        dir.phase(name)?;
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    Ok(names)
}

/// Reads the chunks of `phases` (and the keys of the other phases in the
/// directory).
pub fn load(dir: &PipelineDir, phases: &[String], env: &Env) -> Result<Plan> {
    let mut plan = Plan::default();
    let mut unset = BTreeSet::new();
    for (index, name) in phases.iter().enumerate() {
        let mut phase = Phase {
            name: name.clone(),
            top: Vec::new(),
            all: Vec::new(),
        };
        for chunk in dir.phase(name)? {
            let (doc, names) = read_interpolated(&chunk.path, env)?;
            unset.extend(names);
            let first = plan.steps.len();
            let top = Loader {
                plan: &mut plan,
                phase: index,
                file: chunk.file_name(),
            }
            .document(doc)?;
            phase.top.extend(top);
            phase.all.extend(first..plan.steps.len());
        }
        plan.phases.push(phase);
    }
    let others = dir
        .chunks()
        .iter()
        .filter(|(name, _)| !phases.contains(name));
    for (name, chunks) in others {
        for chunk in chunks {
            for key in keys_of(&chunk.path, env) {
                plan.other_phase_keys.insert(key, name.clone());
            }
        }
    }
    if !unset.is_empty() {
        plan.warnings.push(unset_warning(unset));
    }
    Ok(plan)
}

fn unset_warning(unset: BTreeSet<String>) -> String {
    let names: Vec<String> = unset.into_iter().map(|n| format!("${n}")).collect();
    let (verb, becomes) = if names.len() == 1 {
        ("is", "it becomes")
    } else {
        ("are", "they become")
    };
    format!(
        "{} {verb} substituted at upload time but not set, so {becomes} empty; write `$$` where the shell \
         should see a `$`, or pass --env NAME=VALUE",
        names.join(", "),
    )
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
    plan: &'p mut Plan,
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
            Value::String(name) => {
                owned = string_step(name).map_err(bad)?;
                &owned
            }
            Value::Object(map) => unwrap_nested(map),
            other => return Err(bad(format!("a step must be an object, found {other}"))),
        };
        let kind_name = step_type(fields).ok_or_else(|| {
            bad("the agent cannot tell what kind of step this is (it needs command, commands, plugins, wait, block, input, trigger or group)".to_owned())
        })?;
        let common = Common::read(fields, file_env).map_err(bad)?;
        // A group comes before its own steps: it takes its place (its id)
        // with no children, and they are filled in once they have theirs.
        let kind = match kind_name {
            "group" if parent.is_some() => {
                return Err(bad(
                    "a group inside a group is refused at upload; groups cannot nest".to_owned(),
                ));
            }
            "group" => Kind::Group {
                children: Vec::new(),
            },
            other => self.kind(other, fields, &origin)?,
        };
        let id = self.plan.steps.len();
        self.plan.steps.push(Step {
            phase: self.phase,
            label: common
                .label
                .unwrap_or_else(|| default_label(&kind, common.key.as_deref())),
            origin: origin.clone(),
            kind,
            key: common.key,
            parent,
            depends_on: common.depends_on,
            allow_dependency_failure: common.allow_dependency_failure,
            skip: common.skip,
            branches: common.branches,
            env: common.env,
        });
        if kind_name == "group" {
            let ids = self.group(fields, path, id, file_env, &origin)?;
            if let Kind::Group { children } = &mut self.plan.steps[id].kind {
                *children = ids;
            }
        }
        if fields.contains_key("if") {
            self.warn(&origin, "`if` conditions are not evaluated by treekite run; the step runs as if it were true");
        }
        Ok(id)
    }

    /// The kind of a step that is not a group.
    fn kind(&mut self, name: &str, fields: &Map<String, Value>, origin: &str) -> Result<Kind> {
        Ok(match name {
            "command" => Kind::Command(self.command(fields, origin)?),
            "wait" => Kind::Wait {
                continue_on_failure: flag(fields, "continue_on_failure")
                    .map_err(|e| bad_input(format!("{origin}: {e}")))?,
            },
            "block" => Kind::Block,
            "input" => Kind::Input,
            "trigger" => {
                self.warn(origin, "trigger steps start another pipeline's build; treekite run reports them as skipped");
                Kind::Trigger
            }
            other => unreachable!("step_type gives no {other:?}"),
        })
    }

    /// Loads a group's steps; their ids.
    fn group(
        &mut self,
        fields: &Map<String, Value>,
        path: &str,
        id: StepId,
        file_env: &[(String, String)],
        origin: &str,
    ) -> Result<Vec<StepId>> {
        let children = match fields.get("steps") {
            Some(Value::Array(children)) if !children.is_empty() => children,
            Some(Value::Array(_)) => {
                return Err(bad_input(format!(
                    "{origin}: a group needs at least one step"
                )));
            }
            _ => {
                return Err(bad_input(format!(
                    "{origin}: a group needs `steps`, a list of at least one step"
                )));
            }
        };
        children
            .iter()
            .enumerate()
            .map(|(i, child)| self.step(child, &format!("{path}.steps[{i}]"), Some(id), file_env))
            .collect()
    }

    fn command(&mut self, fields: &Map<String, Value>, origin: &str) -> Result<CommandStep> {
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
        Ok(CommandStep {
            script,
            soft_fail: soft_fail(fields.get("soft_fail")).map_err(|e| bad(&e))?,
            timeout,
            cancel_on_build_failing: flag(fields, "cancel_on_build_failing")
                .map_err(|e| bad(&e))?,
        })
    }

    fn warn(&mut self, origin: &str, message: &str) {
        self.plan.warnings.push(format!("{origin}: {message}"));
    }
}

/// A string step (`"wait"`, …) as the fields it stands for.
fn string_step(name: &str) -> Result<Map<String, Value>, String> {
    match name {
        "wait" | "waiter" | "block" | "manual" | "input" => {
            Ok(Map::from_iter([(name.to_owned(), Value::Null)]))
        }
        other => Err(format!(
            "{other:?} is not a step; a string step is \"wait\", \"block\" or \"input\""
        )),
    }
}

/// The fields every kind of step may have.
struct Common {
    key: Option<String>,
    label: Option<String>,
    depends_on: Vec<Dependency>,
    allow_dependency_failure: bool,
    skip: Option<String>,
    branches: Option<Vec<String>>,
    env: Vec<(String, String)>,
}

impl Common {
    fn read(fields: &Map<String, Value>, file_env: &[(String, String)]) -> Result<Common, String> {
        let label = step_fields::label(fields).map(str::to_owned);
        let mut env = file_env.to_vec();
        if let Some(step_env) = fields.get("env") {
            let Value::Object(step_env) = step_env else {
                return Err("`env` must be an object".to_owned());
            };
            for (name, value) in env_pairs(step_env) {
                env.retain(|(n, _)| *n != name);
                env.push((name, value));
            }
        }
        Ok(Common {
            key: key_field(fields).map(str::to_owned),
            label,
            depends_on: depends_on(fields.get("depends_on"))?,
            allow_dependency_failure: flag(fields, "allow_dependency_failure")?,
            skip: skip(fields.get("skip"))?,
            branches: branches(fields.get("branches"))?,
            env,
        })
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
            Kind::Command(CommandStep {
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
