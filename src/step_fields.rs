//! Fields of a Buildkite step read the way the agent reads them, for
//! everything that looks at a generated pipeline after it was written:
//! the local runner ([`run`](mod@crate::run)) and `treekite explain`
//! ([`crate::explain`]) must agree on a step's label, when it is skipped
//! and which branches it runs on.

use serde_json::{Map, Value};

/// The label Buildkite shows for a step: the first of its label fields
/// that is set and not empty (a group's or block's name for those).
pub fn label(step: &Map<String, Value>) -> Option<&str> {
    ["label", "name", "group", "block", "input", "trigger"]
        .iter()
        .find_map(|field| {
            step.get(*field)
                .and_then(Value::as_str)
                .filter(|label| !label.is_empty())
        })
}

/// `skip`: `None` when the step runs, else the reason Buildkite shows
/// (`skip: true` for a bare `true`).
pub fn skip(value: Option<&Value>) -> Result<Option<String>, String> {
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

/// `branches`: the patterns (a string split on whitespace, or a list of
/// such strings); `None` when the step has no branch filter.
pub fn branches(value: Option<&Value>) -> Result<Option<Vec<String>>, String> {
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
