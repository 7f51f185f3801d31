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

/// Evaluates the pipeline attribute and reads it; `analyse` (the
/// dependency analysis, given `analysis.dependencies` and the targets) and
/// then `finish` (which adds edges and batches) are applied to it.
///
/// The JSON is read as nix-instantiate prints it. Nix prints a set's
/// attributes in name order, so `analysis` comes first: `analyse`, which
/// reads thousands of `.drv` files, runs on its own thread while Nix is
/// still printing (and evaluating) the steps, which this thread parses;
/// `finish` runs on another as soon as the steps are in, while Nix prints
/// the drvmap. Whenever that quick way fails, the whole output is read
/// again the plain way, whose errors say what is wrong; a failed
/// evaluation is reported before anything else.
pub fn evaluate<D: Send, X: Send>(
    args: &PipelineArgs,
    analyse: impl Fn(bool, &[Target]) -> Result<D> + Sync,
    finish: impl Fn(&mut Pipeline, D) -> Result<X> + Sync,
) -> Result<(Pipeline, X)> {
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
    // serde_json reads a reader byte by byte: the buffer goes outside, so
    // the copy is made a buffer at a time.
    let mut json = BufReader::with_capacity(
        1 << 16,
        Recording {
            inner: stdout,
            seen: Vec::with_capacity(1 << 20),
        },
    );
    let streamed = std::thread::scope(|scope| read_streaming(&mut json, scope, &analyse, &finish));
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
            let evaluated = Evaluated {
                json: json.into_inner().seen,
                attr: args.attr.clone(),
                file,
            };
            let mut pipeline = evaluated.parse()?;
            let analysed = analyse(pipeline.settings.dependencies, &pipeline.targets)?;
            let finished = finish(&mut pipeline, analysed)?;
            Ok((pipeline, finished))
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

type Chunks = BTreeMap<String, Vec<Vec<Step>>>;

/// The finished pipeline read from the stream; `None` when the quick read
/// failed (the caller then reads it the plain way).
fn read_streaming<'scope, 'env, R, D, X, A, F>(
    json: &mut R,
    scope: &'scope Scope<'scope, 'env>,
    analyse: &'env A,
    finish: &'env F,
) -> Option<Result<(Pipeline, X)>>
where
    R: Read,
    D: Send + 'scope,
    X: Send + 'scope,
    A: Fn(bool, &[Target]) -> Result<D> + Sync,
    F: Fn(&mut Pipeline, D) -> Result<X> + Sync,
{
    let mut deserializer = serde_json::Deserializer::from_reader(json);
    let seed = TopLevel {
        scope,
        analyse,
        finish,
        marker: PhantomData,
    };
    let parts = seed.deserialize(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    if parts.kind.as_ref().and_then(Value::as_str) != Some("treekite-pipeline") {
        return None;
    }
    let raw = parts.drvmap?;
    let drvmap = nix_json_text(raw.get()).or_else(|| {
        let value = serde_json::from_str::<Value>(raw.get()).ok()?;
        serde_json::to_string(&value).ok()
    })?;
    let finished = match parts.work? {
        Work::Finishing(handle) => handle.join().expect("finishing the pipeline panicked"),
        // Steps before the analysis (not Nix's order): finish here.
        Work::Analysing(handle, phases, settings) => {
            let chunks = parts.chunks?;
            handle
                .join()
                .expect("the dependency analysis panicked")
                .and_then(|(targets, analysed)| {
                    assemble(phases, chunks, targets, settings, analysed, finish)
                })
        }
    };
    Some(finished.map(|(mut pipeline, finished)| {
        pipeline.drvmap = drvmap;
        (pipeline, finished)
    }))
}

/// The pipeline from its parts (the drvmap comes last, from the stream),
/// with `finish` applied.
fn assemble<D, X>(
    phases: Vec<String>,
    chunks: Chunks,
    targets: Vec<Target>,
    settings: Settings,
    analysed: D,
    finish: &impl Fn(&mut Pipeline, D) -> Result<X>,
) -> Result<(Pipeline, X)> {
    let mut pipeline = Pipeline {
        phases,
        chunks,
        drvmap: String::new(),
        targets,
        settings,
    };
    let finished = finish(&mut pipeline, analysed)?;
    Ok((pipeline, finished))
}

/// The work started while reading: the analysis alone (with the phases
/// and settings it came with), or, once the steps are in too, finishing.
enum Work<'scope, D, X> {
    Analysing(
        ScopedJoinHandle<'scope, Result<(Vec<Target>, D)>>,
        Vec<String>,
        Settings,
    ),
    Finishing(ScopedJoinHandle<'scope, Result<(Pipeline, X)>>),
}

/// What the top level held, the work already running.
struct Parts<'scope, D, X> {
    kind: Option<Value>,
    chunks: Option<Chunks>,
    drvmap: Option<Box<RawValue>>,
    work: Option<Work<'scope, D, X>>,
}

/// Reads the top-level set, starting work as soon as its input is read.
struct TopLevel<'scope, 'env, A, F, D, X> {
    scope: &'scope Scope<'scope, 'env>,
    analyse: &'env A,
    finish: &'env F,
    marker: PhantomData<(D, X)>,
}

impl<'de, 'scope, 'env, A, F, D, X> DeserializeSeed<'de> for TopLevel<'scope, 'env, A, F, D, X>
where
    D: Send + 'scope,
    X: Send + 'scope,
    A: Fn(bool, &[Target]) -> Result<D> + Sync,
    F: Fn(&mut Pipeline, D) -> Result<X> + Sync,
{
    type Value = Parts<'scope, D, X>;

    fn deserialize<De: serde::Deserializer<'de>>(
        self,
        deserializer: De,
    ) -> Result<Self::Value, De::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, 'scope, 'env, A, F, D, X> Visitor<'de> for TopLevel<'scope, 'env, A, F, D, X>
where
    D: Send + 'scope,
    X: Send + 'scope,
    A: Fn(bool, &[Target]) -> Result<D> + Sync,
    F: Fn(&mut Pipeline, D) -> Result<X> + Sync,
{
    type Value = Parts<'scope, D, X>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a pipeline")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut parts = Parts {
            kind: None,
            chunks: None,
            drvmap: None,
            work: None,
        };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "analysis" if parts.work.is_none() => {
                    let Analysis {
                        dependencies,
                        phases,
                        settings,
                        targets,
                    } = map.next_value()?;
                    let analyse = self.analyse;
                    let handle = self.scope.spawn(move || {
                        let analysed = analyse(dependencies, &targets)?;
                        Ok((targets, analysed))
                    });
                    parts.work = Some(Work::Analysing(handle, phases, settings));
                }
                "chunks" if parts.chunks.is_none() => {
                    let chunks: Chunks = map.next_value()?;
                    match parts.work.take() {
                        Some(Work::Analysing(handle, phases, settings)) => {
                            let finish = self.finish;
                            parts.work = Some(Work::Finishing(self.scope.spawn(move || {
                                let (targets, analysed) =
                                    handle.join().expect("the dependency analysis panicked")?;
                                assemble(phases, chunks, targets, settings, analysed, finish)
                            })));
                        }
                        other => {
                            parts.work = other;
                            parts.chunks = Some(chunks);
                        }
                    }
                }
                "type" => parts.kind = Some(map.next_value()?),
                "drvmap" => parts.drvmap = Some(map.next_value()?),
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
        let value: Value = serde_json::from_slice(&self.json)
            .context("reading the JSON nix-instantiate printed")?;
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
            return Err(bad_input(format!(
                "-f {}: no such file; pass the Nix file holding the pipeline",
                file.display()
            )));
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
