//! Evaluating the pipeline attribute: one `nix-instantiate --eval` in
//! read-write mode, so every `.drv` a step names is written to the store,
//! while nothing is built.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufReader, Read};
use std::marker::PhantomData;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread::{Scope, ScopedJoinHandle};

use anyhow::{Context, Result, bail};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::model::{Analysis, Pipeline, Settings, Step, Target, nix_json_text};
use crate::cli::PipelineArgs;
use crate::exit::bad_input;

/// Evaluates the pipeline attribute and reads it, with `analyse` (the
/// dependency analysis, given `analysis.dependencies` and the targets)
/// applied to its targets.
///
/// The JSON is read as nix-instantiate prints it. Nix prints a set's
/// attributes in name order, and `analysis` comes first: `analyse`, which
/// reads thousands of `.drv` files, runs on its own thread while Nix is
/// still printing (and evaluating) the steps, and this thread parses them.
/// Whenever that quick way fails, the whole output is read again the plain
/// way, whose errors say what is wrong; a failed evaluation is reported
/// before anything else.
pub fn evaluate<D: Send>(
    args: &PipelineArgs,
    analyse: impl Fn(bool, &[Target]) -> Result<D> + Sync,
) -> Result<(Pipeline, D)> {
    let file = nix_file(args)?;
    let mut command = Command::new("nix-instantiate");
    command
        .args(["--eval", "--strict", "--json", "--read-write-mode"])
        .arg(&file)
        .args(["-A", &args.attr]);
    for pair in args.args.chunks(2) {
        command.arg("--arg").args(pair);
    }
    for pair in args.argstrs.chunks(2) {
        command.arg("--argstr").args(pair);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("running nix-instantiate (is Nix installed and on PATH?)")?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut json = Recording { inner: BufReader::with_capacity(1 << 16, stdout), seen: Vec::with_capacity(1 << 20) };
    let streamed = std::thread::scope(|scope| read_streaming(&mut json, scope, &analyse));
    // Whatever the quick read left (all of it, if it gave up early).
    let mut rest = Vec::new();
    let drained = json.read_to_end(&mut rest);
    let status = child.wait().context("waiting for nix-instantiate")?;
    if !status.success() {
        bail!(
            "evaluating {} in {} failed; see Nix's error above (is the attribute there?)",
            args.attr,
            file.display()
        );
    }
    drained.context("reading what nix-instantiate printed")?;
    match streamed {
        Some(result) => result,
        None => {
            let evaluated = Evaluated { json: json.seen, attr: args.attr.clone(), file };
            let pipeline = evaluated.parse()?;
            let analysed = analyse(pipeline.settings.dependencies, &pipeline.targets)?;
            Ok((pipeline, analysed))
        }
    }
}

/// A reader that keeps a copy of everything read through it.
struct Recording<R> {
    inner: R,
    seen: Vec<u8>,
}

impl<R: Read> Read for Recording<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// The pipeline and the analysis, read from the stream; `None` when the
/// quick read failed (the caller then reads it the plain way).
fn read_streaming<'scope, 'env, R: Read, D: Send + 'scope, F: Fn(bool, &[Target]) -> Result<D> + Sync>(
    json: &mut R,
    scope: &'scope Scope<'scope, 'env>,
    analyse: &'env F,
) -> Option<Result<(Pipeline, D)>> {
    let mut deserializer = serde_json::Deserializer::from_reader(json);
    let top = TopLevel { scope, analyse, marker: PhantomData }.deserialize(&mut deserializer);
    let parts = match top {
        Ok(parts) => parts,
        Err(_) => return None,
    };
    let analysed = parts.analysed?.join().expect("the dependency analysis panicked");
    if deserializer.end().is_err() {
        return None;
    }
    let (Some(phases), Some(chunks), Some(drvmap), Some(settings)) = (parts.phases, parts.chunks, parts.drvmap, parts.settings)
    else {
        return None;
    };
    if parts.kind.as_ref().and_then(Value::as_str) != Some("treekite-pipeline") {
        return None;
    }
    let drvmap = nix_json_text(drvmap.get()).or_else(|| {
        let value = serde_json::from_str::<Value>(drvmap.get()).ok()?;
        serde_json::to_string(&value).ok()
    })?;
    Some(analysed.map(|(targets, d)| (Pipeline { phases, chunks, drvmap, targets, settings }, d)))
}

/// What the top level held, the analysis already running.
struct Parts<'scope, D> {
    kind: Option<Value>,
    phases: Option<Vec<String>>,
    chunks: Option<BTreeMap<String, Vec<Vec<Step>>>>,
    drvmap: Option<Box<RawValue>>,
    settings: Option<Settings>,
    analysed: Option<ScopedJoinHandle<'scope, Result<(Vec<Target>, D)>>>,
}

/// Reads the top-level set, starting the analysis as soon as it is read.
struct TopLevel<'scope, 'env, F, D> {
    scope: &'scope Scope<'scope, 'env>,
    analyse: &'env F,
    marker: PhantomData<D>,
}

impl<'de, 'scope, 'env, F, D> DeserializeSeed<'de> for TopLevel<'scope, 'env, F, D>
where
    F: Fn(bool, &[Target]) -> Result<D> + Sync,
    D: Send + 'scope,
{
    type Value = Parts<'scope, D>;

    fn deserialize<De: serde::Deserializer<'de>>(self, deserializer: De) -> Result<Self::Value, De::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, 'scope, 'env, F, D> Visitor<'de> for TopLevel<'scope, 'env, F, D>
where
    F: Fn(bool, &[Target]) -> Result<D> + Sync,
    D: Send + 'scope,
{
    type Value = Parts<'scope, D>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a pipeline")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut parts = Parts { kind: None, phases: None, chunks: None, drvmap: None, settings: None, analysed: None };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "analysis" if parts.analysed.is_none() => {
                    let Analysis { dependencies, targets } = map.next_value()?;
                    let analyse = self.analyse;
                    parts.analysed = Some(self.scope.spawn(move || {
                        let d = analyse(dependencies, &targets)?;
                        Ok((targets, d))
                    }));
                }
                "type" => parts.kind = Some(map.next_value()?),
                "phases" => parts.phases = Some(map.next_value()?),
                "chunks" => parts.chunks = Some(map.next_value()?),
                "drvmap" => parts.drvmap = Some(map.next_value()?),
                "settings" => parts.settings = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(parts)
    }
}

/// What `nix-instantiate` printed for the pipeline attribute.
struct Evaluated {
    json: Vec<u8>,
    attr: String,
    file: PathBuf,
}

impl Evaluated {
    /// Reads the whole pipeline as JSON first, then as a pipeline.
    fn parse(&self) -> Result<Pipeline> {
        let value: Value = serde_json::from_slice(&self.json).context("reading the JSON nix-instantiate printed")?;
        if value.get("type").and_then(Value::as_str) != Some("treekite-pipeline") {
            return Err(bad_input(format!(
                "{} in {} is not a pipeline (it evaluates to {}); point -A at the result of nix/buildkite's mkPipeline",
                self.attr,
                self.file.display(),
                describe(&value)
            )));
        }
        serde_json::from_value(value).with_context(|| {
            format!(
                "{} looks like a pipeline but does not have mkPipeline's shape; is nix/buildkite from a matching treekite?",
                self.attr
            )
        })
    }
}

fn nix_file(args: &PipelineArgs) -> Result<PathBuf> {
    if let Some(file) = &args.file {
        if !file.is_file() {
            return Err(bad_input(format!("-f {}: no such file; pass the Nix file holding the pipeline", file.display())));
        }
        return Ok(file.clone());
    }
    let root = args.root.clone().unwrap_or_else(|| PathBuf::from("."));
    let file = root.join("default.nix");
    if !file.is_file() {
        return Err(bad_input(format!(
            "{} has no default.nix; run from the repository root or pass --root or -f",
            root.display()
        )));
    }
    Ok(file)
}

fn describe(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let keys: Vec<&str> = map.keys().take(5).map(String::as_str).collect();
            let more = if map.len() > keys.len() { ", …" } else { "" };
            format!("a set with {}{more}", keys.join(", "))
        }
        Value::Array(_) => "a list".to_owned(),
        Value::String(_) => "a string".to_owned(),
        Value::Number(_) => "a number".to_owned(),
        Value::Bool(_) => "a Boolean".to_owned(),
        Value::Null => "null".to_owned(),
    }
}
