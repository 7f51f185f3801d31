//! Evaluating the pipeline attribute: one `nix-instantiate --eval` in
//! read-write mode, so every `.drv` a step names is written to the store,
//! while nothing is built.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::model::{Pipeline, Settings, Step, Target, nix_json_text};
use crate::cli::PipelineArgs;
use crate::exit::bad_input;

/// What `nix-instantiate` printed for the pipeline attribute.
pub struct Evaluated {
    json: Vec<u8>,
    attr: String,
    file: PathBuf,
}

/// A pipeline's top level, its big fields left unparsed.
#[derive(Deserialize)]
struct Parts<'a> {
    #[serde(rename = "type")]
    kind: String,
    phases: Vec<String>,
    #[serde(borrow)]
    chunks: &'a RawValue,
    #[serde(borrow)]
    drvmap: &'a RawValue,
    #[serde(borrow)]
    targets: &'a RawValue,
    settings: Settings,
}

impl Evaluated {
    /// The pipeline, and `analyse` applied to its settings and targets.
    ///
    /// `analyse` (the dependency analysis, which reads thousands of `.drv`
    /// files) runs on its own thread while the steps are parsed. Whenever
    /// the quick way fails, the pipeline is read again the plain way, whose
    /// errors say what is wrong.
    pub fn read_with<D: Send>(
        &self,
        analyse: impl Fn(&Settings, &[Target]) -> Result<D> + Sync,
    ) -> Result<(Pipeline, D)> {
        let parts = match serde_json::from_slice::<Parts>(&self.json) {
            Ok(parts) if parts.kind == "treekite-pipeline" => parts,
            _ => return self.read_plainly(&analyse),
        };
        let (chunks, drvmap, analysed) = std::thread::scope(|scope| {
            let analysis = scope.spawn(|| {
                let targets: Vec<Target> = serde_json::from_str(parts.targets.get()).ok()?;
                let analysed = analyse(&parts.settings, &targets);
                Some(analysed.map(|d| (targets, d)))
            });
            let chunks = serde_json::from_str::<std::collections::BTreeMap<String, Vec<Vec<Step>>>>(parts.chunks.get()).ok();
            let drvmap = nix_json_text(parts.drvmap.get()).or_else(|| {
                let value = serde_json::from_str::<Value>(parts.drvmap.get()).ok()?;
                serde_json::to_string(&value).ok()
            });
            (chunks, drvmap, analysis.join().expect("the dependency analysis panicked"))
        });
        match (chunks, drvmap, analysed) {
            (Some(chunks), Some(drvmap), Some(analysed)) => {
                let (targets, d) = analysed?;
                let Parts { phases, settings, .. } = parts;
                Ok((Pipeline { phases, chunks, drvmap, targets, settings }, d))
            }
            _ => self.read_plainly(&analyse),
        }
    }

    /// Reads the whole pipeline as JSON first, then as a pipeline.
    fn read_plainly<D>(&self, analyse: impl Fn(&Settings, &[Target]) -> Result<D>) -> Result<(Pipeline, D)> {
        let pipeline = self.parse()?;
        let analysed = analyse(&pipeline.settings, &pipeline.targets)?;
        Ok((pipeline, analysed))
    }

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

/// Runs `nix-instantiate` on the pipeline attribute.
pub fn evaluate(args: &PipelineArgs) -> Result<Evaluated> {
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
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .context("running nix-instantiate (is Nix installed and on PATH?)")?;
    if !output.status.success() {
        bail!(
            "evaluating {} in {} failed; see Nix's error above (is the attribute there?)",
            args.attr,
            file.display()
        );
    }
    Ok(Evaluated { json: output.stdout, attr: args.attr.clone(), file })
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
