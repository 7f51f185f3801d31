//! Command-line interface: every subcommand and flag, and nothing else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit status:
  0  success
  1  a build, an evaluation or a step failed
  2  bad input: a flag, a path or an attribute that does not make sense
     (found before anything is built or written; only `exec` learns that
     its script's output cannot be run after building it)
  130 `treekite run` was interrupted
  `treekite exec` exits with the status of the script it ran.";

/// Buildkite pipelines for readTree Nix monorepos, built without building anything.
#[derive(Debug, Parser)]
#[command(name = "treekite", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Realise targets and print one store path per target on stdout.
    ///
    /// This is the command behind generated target steps (`mkBuildCommand`).
    /// When a `.drv` has been garbage-collected since the pipeline was
    /// generated, the target is re-evaluated from its attribute path.
    #[command(after_help = EXIT_CODES)]
    Build(BuildArgs),

    /// Realise a script derivation and run it with ARGS (extra steps).
    #[command(after_help = EXIT_CODES)]
    Exec(ExecArgs),

    /// Evaluate a `mkPipeline` result and write its pipeline chunks.
    #[command(after_help = EXIT_CODES)]
    Pipeline(PipelineArgs),

    /// Upload a phase's chunks with `buildkite-agent pipeline upload`.
    ///
    /// Chunks go up last first (… 10, 9, … 1): Buildkite inserts each upload
    /// right after the uploading step, so the build shows them in order.
    /// Each uploaded chunk is recorded in the build's meta-data, so a retried
    /// upload job skips the chunks that are already in the build.
    #[command(after_help = EXIT_CODES)]
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
    #[command(after_help = EXIT_CODES)]
    Run(RunArgs),
}

/// Where a target comes from: its `.drv` and, for when that is gone, its
/// attribute path below `import ROOT {}`.
#[derive(Debug, Args)]
pub struct Source {
    /// Absolute path of the derivation in the Nix store. Repeat to build
    /// several targets in one step (one `--attr-path` each, in the same order).
    #[arg(long = "drv", value_name = "DRV", required = true)]
    pub drvs: Vec<String>,

    /// JSON list of attribute names locating the target in `import ROOT {}`;
    /// used only when DRV no longer exists.
    #[arg(long = "attr-path", value_name = "JSON")]
    pub attr_paths: Vec<String>,

    /// Repository root holding the depot's `default.nix` [default: .]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub source: Source,

    /// Output of a multi-output derivation to print [default: `out` when
    /// present, else the only output].
    #[arg(long, value_name = "NAME")]
    pub output: Option<String>,

    /// Keep the result alive through a GC-root symlink exactly at PATH
    /// (excluded from git when inside a work tree). Without it the link
    /// lives outside the work tree, under $TREEKITE_GCROOTS or
    /// ${XDG_STATE_HOME:-$HOME/.local/state}/treekite/gcroots.
    #[arg(long, value_name = "PATH", conflicts_with = "no_out_link")]
    pub out_link: Option<PathBuf>,

    /// Make no GC-root link at all.
    #[arg(long)]
    pub no_out_link: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub source: Source,

    /// Arguments for the script.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// Nix file to evaluate [default: ROOT/default.nix]
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        conflicts_with = "root"
    )]
    pub file: Option<PathBuf>,

    /// Repository root whose `default.nix` is evaluated [default: .]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Attribute holding a `mkPipeline` result, e.g. `ci.pipeline`.
    #[arg(short = 'A', long = "attr", value_name = "ATTR")]
    pub attr: String,

    /// Directory to write `<phase>-chunk-<n>.json` and `drvmap.json` into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Pass `--arg NAME EXPR` to the evaluation.
    #[arg(long = "arg", num_args = 2, value_names = ["NAME", "EXPR"], action = clap::ArgAction::Append)]
    pub args: Vec<String>,

    /// Pass `--argstr NAME VALUE` to the evaluation.
    #[arg(long = "argstr", num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append)]
    pub argstrs: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// Directory written by `treekite pipeline`.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Phase whose chunks to upload: DIR/PHASE-chunk-<n>.json.
    #[arg(long, value_name = "PHASE")]
    pub phase: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Directory written by `treekite pipeline`.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Phase to run, in the order given [default: every phase in DIR,
    /// `build` first, then `release`, then the others by name].
    #[arg(long = "phase", value_name = "PHASE")]
    pub phases: Vec<String>,

    /// Branch the build is for (step `branches` filters, BUILDKITE_BRANCH)
    /// [default: the checkout's current branch, else `main`].
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,

    /// Variable for interpolation and for the steps; `K` alone passes this
    /// shell's value. Interpolation sees only these and the build's
    /// BUILDKITE_* variables, not this shell's environment.
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,

    /// Steps to run at once.
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = 1)]
    pub jobs: usize,

    /// Continue through `block` and `input` steps instead of stopping there.
    #[arg(long)]
    pub unblock: bool,

    /// Repository root the steps run in [default: the git work tree
    /// holding the current directory, else the current directory].
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Directory for the step logs, one file per step [default: a new
    /// directory under ${XDG_STATE_HOME:-$HOME/.local/state}/treekite/runs].
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
}

/// Clap's report of a bad command line, as the one `treekite: error:` line
/// that callers read last (clap's own ends with usage lines instead).
pub fn usage_error(error: clap::Error) -> std::process::ExitCode {
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
    std::process::ExitCode::from(crate::exit::BAD_INPUT)
}
