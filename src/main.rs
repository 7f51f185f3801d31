mod build;
mod chunks;
mod cli;
mod drv;
mod exec;
mod exit;
mod gcroot;
mod gitexclude;
mod nix;
mod pipeline;
mod run;
mod source;
mod upload;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return cli::usage_error(error),
    };
    let result = match cli.command {
        Command::Build(args) => build::run(&args).map(|()| 0),
        Command::Exec(args) => exec::run(&args),
        Command::Pipeline(args) => pipeline::run(&args).map(|()| 0),
        Command::Upload(args) => upload::run(&args).map(|()| 0),
        Command::Run(args) => run::run(&args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("treekite: error: {}", exit::one_line(&error));
            ExitCode::from(exit::code_for(&error))
        }
    }
}
