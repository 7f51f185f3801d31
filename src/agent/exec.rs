//! `treekite exec`: realise a script derivation and run it (extra steps).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use super::build;
use super::target::Targets;
use crate::exit::{ExitCode, bad_input};
use crate::process::Ended;

/// What `treekite exec` was asked to do.
#[derive(Debug)]
pub struct Request {
    /// Exactly one target: the script (checked by the command line).
    pub script: Targets,
    /// Arguments for the script.
    pub args: Vec<String>,
}

pub fn run(request: &Request) -> Result<ExitCode> {
    // Built as `treekite build` builds a target. The root stays after the
    // script ends: steps on one agent reuse it, and it lives outside the
    // work tree, so the checkout is untouched.
    let script = build::build(&build::Request {
        targets: request.script.clone(),
        output: None,
        link: build::Link::Default,
    })?;
    let program = executable(Path::new(&script[0]))?;
    let status = Command::new(&program)
        .args(&request.args)
        .status()
        .with_context(|| format!("running {}", program.display()))?;
    // The script's status as ours; a signal becomes 128 + its number, as
    // in a shell.
    let status = Ended::of(status).shell_status();
    Ok(ExitCode::Script(u8::try_from(status).unwrap_or(u8::MAX)))
}

/// The file to run: the output itself, or the one file in its `bin/`.
fn executable(output: &Path) -> Result<PathBuf> {
    if output.is_file() {
        return Ok(output.to_owned());
    }
    let bin = output.join("bin");
    // Hidden files are never the entry point: nixpkgs' wrapProgram leaves
    // the wrapped original as `bin/.NAME-wrapped` beside `bin/NAME`.
    let visible = |path: &PathBuf| {
        path.file_name()
            .is_some_and(|n| !n.as_encoded_bytes().starts_with(b"."))
    };
    let entries: Vec<PathBuf> = std::fs::read_dir(&bin)
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|path| visible(path) && path.is_file())
                .collect()
        })
        .unwrap_or_default();
    match entries.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(bad_input(format!(
            "{} is neither an executable file nor a directory with a file in bin/; make the step's command a script derivation",
            output.display()
        ))),
        _ => Err(bad_input(format!(
            "{} has {} files in bin/, so treekite cannot tell which to run; make the command a derivation with one",
            output.display(),
            entries.len()
        ))),
    }
}
