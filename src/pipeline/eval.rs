//! Evaluating the pipeline attribute: one `nix-instantiate --eval` in
//! read-write mode, so every `.drv` a step names is written to the store,
//! while nothing is built.

use std::fmt;
use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread::{Scope, ScopedJoinHandle};

use anyhow::{Context, Result, bail};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::model::{
    Analysis, Chunks, Dependencies, MKPIPELINE_VERSION, Pipeline, Shape, Target, nix_json_text,
};
use super::progress::{self, Progress, Timing};
use super::{NixArg, Request, analyse, finish};
use crate::exit::bad_input;

/// Evaluates the pipeline attribute and reads it, with the dependency
/// analysis ([`analyse`]) and then [`finish`] (edges and batching) applied.
///
/// The JSON is read as nix-instantiate prints it. Nix prints a set's
/// attributes in name order, so `analysis` comes first: the analysis,
/// which reads thousands of `.drv` files, runs on its own thread while Nix
/// is still printing (and evaluating) the steps, which this thread parses;
/// finishing runs on another as soon as the steps are in, while Nix prints
/// the drvmap. Whenever that quick way fails, the whole output is read
/// again the plain way, whose errors say what is wrong; a failed
/// evaluation is reported before anything else.
pub fn evaluate(request: &Request, parent: Option<&NixArg>) -> Result<Pipeline> {
    let file = request.nix_file()?;
    let progress = (!request.quiet).then(|| Progress::start(Timing::from_env()));
    let mut child = nix_instantiate(request, &file, parent, progress.is_some())?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let nix_stderr = child.stderr.take();
    // serde_json reads a reader byte by byte: the buffer goes outside, so
    // the copy is made a buffer at a time.
    let mut json = BufReader::with_capacity(
        1 << 16,
        Recording {
            inner: stdout,
            seen: Vec::with_capacity(1 << 20),
        },
    );
    let (streamed, drained) = std::thread::scope(|scope| {
        if let (Some(progress), Some(nix_stderr)) = (&progress, nix_stderr) {
            scope.spawn(move || progress.relay(nix_stderr));
        }
        let streamed = read_streaming(&mut json, scope);
        // Whatever the quick read left (all of it, if it gave up early).
        let drained = json.read_to_end(&mut Vec::new());
        (streamed, drained)
    });
    let status = child.wait().context("waiting for nix-instantiate")?;
    if let Some(progress) = progress {
        progress.finish();
    }
    if !status.success() {
        bail!(
            "evaluating {} in {} failed; see Nix's error above (is the attribute there?)",
            request.attr,
            file.display()
        );
    }
    drained.context("reading what nix-instantiate printed")?;
    match streamed {
        Some(result) => result,
        None => {
            let evaluated = Evaluated {
                json: json.into_inner().seen,
                attr: request.attr.clone(),
                file,
            };
            let mut pipeline = evaluated.parse()?;
            let deps = analyse(pipeline.settings.dependencies, &pipeline.targets)?;
            finish(&mut pipeline, deps)?;
            Ok(pipeline)
        }
    }
}

/// Starts `nix-instantiate --eval` of the attribute in read-write mode,
/// its stdout piped, and its stderr too when progress is shown (the
/// progress traces are taken out of it).
fn nix_instantiate(
    request: &Request,
    file: &std::path::Path,
    parent: Option<&NixArg>,
    progress: bool,
) -> Result<std::process::Child> {
    let mut command = Command::new("nix-instantiate");
    command
        .args(["--eval", "--strict", "--json", "--read-write-mode"])
        .arg(file)
        .args(["-A", &request.attr]);
    for arg in request.nix_args.iter().chain(parent) {
        command.args(arg.flags());
    }
    if progress {
        command.env(progress::ENV, "1").stderr(Stdio::piped());
    } else {
        command.stderr(Stdio::inherit());
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("running nix-instantiate (is Nix installed and on PATH?)")
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

/// The finished pipeline read from the stream; `None` when the quick read
/// failed (the caller then reads it the plain way).
fn read_streaming<'scope>(
    json: &mut impl Read,
    scope: &'scope Scope<'scope, '_>,
) -> Option<Result<Pipeline>> {
    let mut deserializer = serde_json::Deserializer::from_reader(json);
    let parts = TopLevel { scope }.deserialize(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    // Anything else is left to the plain read, which says what is wrong.
    if parts.kind.as_ref().and_then(Value::as_str) != Some("treekite-pipeline")
        || parts.version.as_ref().and_then(Value::as_u64) != Some(MKPIPELINE_VERSION)
    {
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
        Work::Analysing(handle, analysis) => {
            let chunks = parts.chunks?;
            handle
                .join()
                .expect("the dependency analysis panicked")
                .and_then(|analysed| finished(analysis, chunks, analysed))
        }
    };
    Some(finished.map(|mut pipeline| {
        pipeline.drvmap = drvmap;
        pipeline
    }))
}

/// The targets, back from the analysis, with what it found.
type Analysed = (Vec<Target>, Dependencies);

/// The pipeline from its parts (the drvmap comes last, from the stream),
/// finished.
fn finished(mut analysis: Analysis, chunks: Chunks, (targets, deps): Analysed) -> Result<Pipeline> {
    analysis.targets = targets;
    let mut pipeline = Pipeline::new(analysis, chunks, String::new());
    finish(&mut pipeline, deps)?;
    Ok(pipeline)
}

/// The work started while reading: the analysis alone (with the rest of
/// what it came with), or, once the steps are in too, finishing.
enum Work<'scope> {
    /// The analysis runs, holding the targets; the rest of `Analysis`
    /// waits here.
    Analysing(ScopedJoinHandle<'scope, Result<Analysed>>, Analysis),
    Finishing(ScopedJoinHandle<'scope, Result<Pipeline>>),
}

/// What the top level held, the work already running.
#[derive(Default)]
struct Parts<'scope> {
    kind: Option<Value>,
    version: Option<Value>,
    chunks: Option<Chunks>,
    drvmap: Option<Box<RawValue>>,
    work: Option<Work<'scope>>,
}

/// Reads the top-level set, starting work as soon as its input is read.
struct TopLevel<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
}

impl<'de, 'scope> DeserializeSeed<'de> for TopLevel<'scope, '_> {
    type Value = Parts<'scope>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, 'scope> Visitor<'de> for TopLevel<'scope, '_> {
    type Value = Parts<'scope>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a pipeline")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut parts = Parts::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "analysis" if parts.work.is_none() => {
                    let analysis: Analysis = map.next_value()?;
                    parts.work = Some(self.analyse(analysis));
                }
                "chunks" if parts.chunks.is_none() => {
                    let chunks: Chunks = map.next_value()?;
                    match parts.work.take() {
                        Some(Work::Analysing(handle, analysis)) => {
                            parts.work = Some(Work::Finishing(self.scope.spawn(move || {
                                let analysed =
                                    handle.join().expect("the dependency analysis panicked")?;
                                finished(analysis, chunks, analysed)
                            })));
                        }
                        other => {
                            parts.work = other;
                            parts.chunks = Some(chunks);
                        }
                    }
                }
                "type" => parts.kind = Some(map.next_value()?),
                "version" => parts.version = Some(map.next_value()?),
                "drvmap" => parts.drvmap = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(parts)
    }
}

impl<'scope> TopLevel<'scope, '_> {
    /// Starts the dependency analysis of `analysis`'s targets on a thread.
    fn analyse(&self, mut analysis: Analysis) -> Work<'scope> {
        let targets = std::mem::take(&mut analysis.targets);
        let dependencies = analysis.dependencies;
        let handle = self.scope.spawn(move || {
            let deps = analyse(dependencies, &targets)?;
            Ok((targets, deps))
        });
        Work::Analysing(handle, analysis)
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
        let version = value.get("version").and_then(Value::as_u64);
        if version != Some(MKPIPELINE_VERSION) {
            let found = version.map_or_else(|| "none".to_owned(), |v| v.to_string());
            return Err(bad_input(format!(
                "{} in {} is a mkPipeline result of version {found}, but this treekite reads version {MKPIPELINE_VERSION}; use nix/buildkite from the same treekite as the binary",
                self.attr,
                self.file.display()
            )));
        }
        let shape: Shape = serde_json::from_value(value).with_context(|| {
            format!(
                "{} looks like a pipeline but does not have mkPipeline's shape; is nix/buildkite from a matching treekite?",
                self.attr
            )
        })?;
        Ok(Pipeline::new(shape.analysis, shape.chunks, shape.drvmap))
    }
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
