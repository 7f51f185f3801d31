//! Evaluating the pipeline attribute: one `nix-instantiate --eval` in
//! read-write mode, so every `.drv` a step names is written to the store,
//! while nothing is built.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::model::Pipeline;
use crate::cli::PipelineArgs;
use crate::exit::bad_input;

pub fn evaluate(args: &PipelineArgs) -> Result<Pipeline> {
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
    let value: Value = serde_json::from_slice(&output.stdout)
        .context("reading the JSON nix-instantiate printed")?;
    if value.get("type").and_then(Value::as_str) != Some("treekite-pipeline") {
        return Err(bad_input(format!(
            "{} in {} is not a pipeline (it evaluates to {}); point -A at the result of nix/buildkite's mkPipeline",
            args.attr,
            file.display(),
            describe(&value)
        )));
    }
    serde_json::from_value(value).with_context(|| {
        format!("{} looks like a pipeline but does not have mkPipeline's shape; is nix/buildkite from a matching treekite?", args.attr)
    })
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
