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
        Err(error) => return usage_error(error),
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

/// Clap's report of a bad command line, as the one `treekite: error:` line
/// that callers read last (clap's own ends with usage lines instead).
fn usage_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        error.exit();
    }
    let text = error.render().to_string();
    // Keep the message and any tip, drop the usage and "For more information".
    let parts: Vec<String> = text
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .filter(|line| !line.is_empty())
        .map(|line| {
            if line.starts_with("tip:") {
                format!("({line})")
            } else {
                line.to_owned()
            }
        })
        .collect();
    let message = parts.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    eprintln!("treekite: error: {message}; see --help");
    ExitCode::from(exit::BAD_INPUT)
}
