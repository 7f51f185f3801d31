//! The command line: every subcommand and flag, parsed into the requests
//! the rest of the program works with. clap's types stop here (as in
//! ripgrep's split of low-level and high-level arguments): values are
//! parsed into domain types by value parsers, and what involves several
//! flags at once is checked when the arguments become a request.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::agent::drv::DrvPath;
use crate::agent::target::{AttrPath, TargetRef, Targets};
use crate::agent::{build, exec};
use crate::exit::{self, bad_input};
use crate::{pipeline, run, upload};

/// A parsed command line: one subcommand's request.
#[derive(Debug)]
pub enum Invocation {
    Build(build::Request),
    Exec(exec::Request),
    Pipeline(pipeline::Request),
    Upload(upload::Request),
    Run(run::Request),
}

/// Parses the process's arguments. `--help` and `--version` print and exit
/// here; a bad command line is a bad-input error (one line, exit 2).
pub fn parse() -> Result<Invocation> {
    let cli = Cli::try_parse().map_err(usage_error)?;
    cli.command.into_invocation()
}

/// Buildkite pipelines for readTree Nix monorepos, built without building anything.
#[derive(Debug, Parser)]
#[command(name = "treekite", version, after_help = exit::HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Realise targets and print one store path per target on stdout.
    ///
    /// This is the command behind generated target steps (`mkBuildCommand`).
    /// When a `.drv` has been garbage-collected since the pipeline was
    /// generated, the target is re-evaluated from its attribute path.
    #[command(after_help = exit::HELP)]
    Build(BuildArgs),

    /// Realise a script derivation and run it with ARGS (extra steps).
    #[command(after_help = exit::HELP)]
    Exec(ExecArgs),

    /// Evaluate a `mkPipeline` result and write the pipeline directory.
    #[command(after_help = exit::HELP)]
    Pipeline(PipelineArgs),

    /// Upload a phase's chunks with `buildkite-agent pipeline upload`.
    ///
    /// Chunks go up last first (… 10, 9, … 1): Buildkite inserts each upload
    /// right after the uploading step, so the build shows them in order.
    /// Each chunk's upload is recorded in the build's meta-data as started
    /// and as done; a retry that finds one started but not done asks
    /// Buildkite (`buildkite-agent step get`) whether its steps are in the
    /// build. So a retried upload job, even one killed mid-upload, puts each
    /// chunk in the build exactly once.
    #[command(after_help = exit::HELP)]
    Upload(UploadArgs),

    /// Run a generated pipeline on this machine, as Buildkite would.
    ///
    /// Each chunk is interpolated as the agent does at upload (`$$` gives
    /// `$`, `$NAME` and `${NAME…}` are substituted from the build's
    /// BUILDKITE_* variables and --env). Command steps run with `bash -e -c`
    /// in the repository root, up to --jobs at once, in `depends_on` and
    /// `wait` order, honouring `skip`, `branches`, `soft_fail`, groups and
    /// `block` steps (the run stops there unless --unblock). Phases run one
    /// after the other, each only when the one before passed. Everything is
    /// checked before the first step starts. Ctrl-C stops the running steps
    /// (exit status 130).
    #[command(after_help = exit::HELP)]
    Run(RunArgs),
}

/// Where a target comes from: its `.drv` and, for when that is gone, its
/// attribute path below `import ROOT {}`.
#[derive(Debug, Args)]
struct SourceArgs {
    /// Absolute path of the derivation in the Nix store. Repeat to build
    /// several targets in one step (one `--attr-path` each, in the same order).
    #[arg(long = "drv", value_name = "DRV", required = true)]
    drvs: Vec<DrvPath>,

    /// JSON list of attribute names locating the target in `import ROOT {}`;
    /// used only when DRV no longer exists.
    #[arg(long = "attr-path", value_name = "JSON")]
    attr_paths: Vec<AttrPath>,

    /// Repository root holding the depot's `default.nix` [default: .]
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct BuildArgs {
    #[command(flatten)]
    source: SourceArgs,

    /// Output of a multi-output derivation to print [default: `out` when
    /// present, else the only output].
    #[arg(long, value_name = "NAME")]
    output: Option<String>,

    /// Keep the result alive through a GC-root symlink exactly at PATH
    /// (excluded from git when inside a work tree). Without it the link
    /// lives outside the work tree, under $TREEKITE_GCROOTS or
    /// ${XDG_STATE_HOME:-$HOME/.local/state}/treekite/gcroots.
    #[arg(long, value_name = "PATH", conflicts_with = "no_out_link")]
    out_link: Option<PathBuf>,

    /// Make no GC-root link at all.
    #[arg(long)]
    no_out_link: bool,
}

#[derive(Debug, Args)]
struct ExecArgs {
    #[command(flatten)]
    source: SourceArgs,

    /// Arguments for the script.
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

#[derive(Debug, Args)]
struct PipelineArgs {
    /// Nix file to evaluate [default: ROOT/default.nix]
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        conflicts_with = "root"
    )]
    file: Option<PathBuf>,

    /// Repository root whose `default.nix` is evaluated [default: .]
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,

    /// Attribute holding a `mkPipeline` result, e.g. `ci.pipeline`.
    #[arg(short = 'A', long = "attr", value_name = "ATTR")]
    attr: String,

    /// The pipeline directory to write: the chunk files, `drvmap.json` and
    /// `phases.json`. It replaces the old one in one step, only when
    /// complete: a run killed at any moment leaves a complete set, old or
    /// new, and runs into the same DIR at the same time take turns (the
    /// last one's set stays).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    #[command(flatten)]
    nix_args: NixArgs,
}

/// `--arg NAME EXPR` and `--argstr NAME VALUE`, each occurrence one pair,
/// in command-line order (Nix takes the last value given for a name).
/// Derived arguments cannot group values by occurrence, so this one pair
/// of flags is declared by hand.
#[derive(Debug, Default)]
struct NixArgs(Vec<pipeline::NixArg>);

impl NixArgs {
    /// (id, is_string, help, value names)
    const FLAGS: [(&str, bool, &str, [&str; 2]); 2] = [
        (
            "arg",
            false,
            "Pass `--arg NAME EXPR` to the evaluation.",
            ["NAME", "EXPR"],
        ),
        (
            "argstr",
            true,
            "Pass `--argstr NAME VALUE` to the evaluation.",
            ["NAME", "VALUE"],
        ),
    ];
}

impl clap::Args for NixArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        Self::FLAGS.iter().fold(cmd, |cmd, (id, _, help, names)| {
            cmd.arg(
                clap::Arg::new(*id)
                    .long(*id)
                    .num_args(2)
                    .value_names(*names)
                    .action(clap::ArgAction::Append)
                    .help(*help),
            )
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for NixArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut placed: Vec<(usize, pipeline::NixArg)> = Vec::new();
        for (id, is_string, _, _) in Self::FLAGS {
            let (Some(occurrences), Some(indices)) = (
                matches.get_occurrences::<String>(id),
                matches.indices_of(id),
            ) else {
                continue;
            };
            let starts = indices.step_by(2);
            for (at, mut pair) in starts.zip(occurrences) {
                let (Some(name), Some(value)) = (pair.next(), pair.next()) else {
                    unreachable!("clap takes two values for --{id}");
                };
                let arg = pipeline::NixArg {
                    is_string,
                    name: name.clone(),
                    value: value.clone(),
                };
                placed.push((at, arg));
            }
        }
        placed.sort_by_key(|(at, _)| *at);
        Ok(NixArgs(placed.into_iter().map(|(_, arg)| arg).collect()))
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

#[derive(Debug, Args)]
struct UploadArgs {
    /// Directory written by `treekite pipeline`.
    #[arg(value_name = "DIR")]
    dir: PathBuf,

    /// Phase whose chunks to upload.
    #[arg(long, value_name = "PHASE")]
    phase: String,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Directory written by `treekite pipeline`.
    #[arg(value_name = "DIR")]
    dir: PathBuf,

    /// Phase to run, in the order given [default: every phase in DIR,
    /// in the order `treekite pipeline` generated them].
    #[arg(long = "phase", value_name = "PHASE")]
    phases: Vec<String>,

    /// Branch the build is for (step `branches` filters, BUILDKITE_BRANCH)
    /// [default: the checkout's current branch, else `main`].
    #[arg(long, value_name = "BRANCH", value_parser = non_empty_branch)]
    branch: Option<String>,

    /// Variable for interpolation and for the steps; `K` alone passes this
    /// shell's value. Interpolation sees only these and the build's
    /// BUILDKITE_* variables, not this shell's environment.
    #[arg(long = "env", value_name = "K=V")]
    env: Vec<run::EnvVar>,

    /// Steps to run at once.
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value = "1", value_parser = at_least_one_job)]
    jobs: NonZeroUsize,

    /// Continue through `block` and `input` steps instead of stopping there.
    #[arg(long)]
    unblock: bool,

    /// Repository root the steps run in [default: the git work tree
    /// holding the current directory, else the current directory].
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,

    /// Directory for the step logs, one file per step [default: a new
    /// directory under ${XDG_STATE_HOME:-$HOME/.local/state}/treekite/runs].
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
}

fn non_empty_branch(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("--branch must not be empty".to_owned());
    }
    Ok(text.to_owned())
}

fn at_least_one_job(text: &str) -> Result<NonZeroUsize, String> {
    let n: usize = text
        .parse()
        .map_err(|_| format!("-j/--jobs takes a whole number, not {text:?}"))?;
    NonZeroUsize::new(n).ok_or_else(|| "-j/--jobs must be at least 1".to_owned())
}

impl Command {
    fn into_invocation(self) -> Result<Invocation> {
        Ok(match self {
            Command::Build(args) => Invocation::Build(args.into_request()?),
            Command::Exec(args) => Invocation::Exec(args.into_request()?),
            Command::Pipeline(args) => Invocation::Pipeline(args.into_request()),
            Command::Upload(args) => Invocation::Upload(upload::Request {
                dir: args.dir,
                phase: args.phase,
            }),
            Command::Run(args) => Invocation::Run(args.into_request()),
        })
    }
}

impl SourceArgs {
    fn into_targets(self) -> Result<Targets> {
        let SourceArgs {
            drvs,
            attr_paths,
            root,
        } = self;
        if !attr_paths.is_empty() && attr_paths.len() != drvs.len() {
            return Err(bad_input(format!(
                "{} --drv but {} --attr-path; give one --attr-path per --drv, in the same order, or none",
                drvs.len(),
                attr_paths.len()
            )));
        }
        let mut attr_paths = attr_paths.into_iter();
        let list = drvs
            .into_iter()
            .map(|drv| TargetRef {
                drv,
                attr_path: attr_paths.next(),
            })
            .collect();
        Ok(Targets { list, root })
    }
}

impl BuildArgs {
    fn into_request(self) -> Result<build::Request> {
        if self.source.drvs.len() > 1 && self.out_link.is_some() {
            return Err(bad_input(
                "--out-link names one link, so it takes one --drv; drop it to keep several targets' links outside the work tree",
            ));
        }
        let link = match (self.out_link, self.no_out_link) {
            (_, true) => build::Link::None,
            (Some(path), false) => build::Link::At(path),
            (None, false) => build::Link::Default,
        };
        Ok(build::Request {
            targets: self.source.into_targets()?,
            output: self.output,
            link,
        })
    }
}

impl ExecArgs {
    fn into_request(self) -> Result<exec::Request> {
        if self.source.drvs.len() != 1 {
            return Err(bad_input(
                "treekite exec runs one script; pass exactly one --drv",
            ));
        }
        Ok(exec::Request {
            script: self.source.into_targets()?,
            args: self.args,
        })
    }
}

impl PipelineArgs {
    fn into_request(self) -> pipeline::Request {
        let source = match self.file {
            Some(file) => pipeline::Source::File(file),
            None => pipeline::Source::Root(self.root.unwrap_or_else(|| PathBuf::from("."))),
        };
        pipeline::Request {
            source,
            attr: self.attr,
            out: self.out,
            nix_args: self.nix_args.0,
        }
    }
}

impl RunArgs {
    fn into_request(self) -> run::Request {
        run::Request {
            dir: self.dir,
            phases: self.phases,
            branch: self.branch,
            env: self.env,
            jobs: self.jobs,
            unblock: self.unblock,
            root: self.root,
            log_dir: self.log_dir,
        }
    }
}

/// Clap's report of a bad command line, as the one `treekite: error:` line
/// that callers read last (clap's own ends with usage lines instead).
/// Help and version are printed, and the process ends, here.
fn usage_error(error: clap::Error) -> anyhow::Error {
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
    bad_input(format!("{message}; see --help"))
}
