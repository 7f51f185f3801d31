//! treekite: Buildkite pipelines for readTree Nix monorepos.
//!
//! The flow, in modules: [`pipeline`] evaluates a depot's `mkPipeline`
//! result (against a [`parent`] build's drvmap) and writes the
//! [`pipeline_dir`]; [`upload`] sends it to Buildkite
//! and [`run`](mod@run) runs it here; [`explain`] says why each step runs,
//! waits or is skipped; on the agent, the steps call the [`agent`]
//! side (`treekite build`, `treekite exec`). [`cli`] turns the command line
//! into one request for one of them; [`exit`] says how treekite ends.

mod agent;
mod branches;
mod cli;
mod exit;
mod explain;
mod git;
mod parent;
mod pipeline;
mod pipeline_dir;
mod printable;
mod process;
mod run;
mod state;
mod step_fields;
mod upload;

use anyhow::Result;

use crate::cli::Invocation;
use crate::exit::ExitCode;

fn main() -> std::process::ExitCode {
    match cli::parse().and_then(run) {
        Ok(code) => code.into(),
        Err(error) => {
            eprintln!("treekite: error: {}", exit::one_line(&error));
            ExitCode::of_error(&error).into()
        }
    }
}

fn run(invocation: Invocation) -> Result<ExitCode> {
    match invocation {
        Invocation::Build(request) => agent::build::run(&request),
        Invocation::Exec(request) => agent::exec::run(&request),
        Invocation::Pipeline(request) => pipeline::run(&request),
        Invocation::Parent(request) => parent::run(&request),
        Invocation::Upload(request) => upload::run(&request),
        Invocation::Run(request) => run::run(&request),
        Invocation::Explain(request) => explain::run(&request),
    }
}
