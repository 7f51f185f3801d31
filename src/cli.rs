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
use crate::{explain, parent, pipeline, pipeline_dir, run, upload};

/// A parsed command line: one subcommand's request.
#[derive(Debug)]
pub enum Invocation {
    Build(build::Request),
    Exec(exec::Request),
    Pipeline(pipeline::Request),
    Parent(parent::Request),
    Upload(upload::Request),
    Run(run::Request),
    Explain(explain::Request),
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
    ///
    /// With --parent, targets whose derivation is the same as in a parent
    /// drvmap are skipped: the depot gets the map's path as
    /// `--argstr parentDrvmap FILE` (see `treekite parent --help` for how
    /// `--parent buildkite` finds it). Without a parent every target builds.
    #[command(after_help = exit::HELP)]
    Pipeline(PipelineArgs),

    /// Find the parent build's drvmap on Buildkite and write it to FILE.
    ///
    /// The parent is the newest passed (or blocked) build of the merge base
    /// of HEAD and the base branch, else of one of its first-parent
    /// ancestors (on the base branch itself: of HEAD's first parent). The
    /// base branch is fetched from `origin`, deepening a shallow clone as
    /// needed; the builds come from one call to Buildkite's REST API (a
    /// token with the read_builds scope); the map is the build's
    /// `drvmap.json` artifact, downloaded with `buildkite-agent`.
    ///
    /// Not finding one is not an error: one line on stderr says why, FILE
    /// is left alone, and the exit status is 0, so the build goes on and
    /// builds every target. Uses BUILDKITE_ORGANIZATION_SLUG,
    /// BUILDKITE_PIPELINE_SLUG, BUILDKITE_BUILD_ID (never its own parent),
    /// BUILDKITE_PULL_REQUEST, BUILDKITE_PULL_REQUEST_BASE_BRANCH and
    /// BUILDKITE_PIPELINE_DEFAULT_BRANCH.
    #[command(after_help = exit::HELP)]
    Parent(ParentArgs),

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
    /// (SIGTERM to each one's process group, SIGKILL after 10 s or on a
    /// second Ctrl-C; exit status 130). Processes a step leaves running get
    /// SIGTERM as it ends, and the run waits for them to end.
    #[command(after_help = exit::HELP)]
    Run(RunArgs),

    /// Say why a target's or a step's step runs, waits or is skipped.
    ///
    /// Reads what `treekite pipeline` kept in DIR (nothing is evaluated):
    /// the step's key, phase, chunk file and batch; whether it runs or is
    /// skipped and exactly why (changed or unchanged since the parent
    /// build, new, `meta.ci.skip`, `meta.broken`, a branch filter, its
    /// target skipped); each step it waits for, with the chain of
    /// derivations behind a dependency between targets (`apps/hello ←
    /// toolchain.drv ← libs/greeting`) or the `depends_on` it was given;
    /// and the steps that wait for it. An unknown TARGET is bad input
    /// naming the closest labels.
    #[command(after_help = exit::HELP)]
    Explain(ExplainArgs),
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

    /// The pipeline directory to write: the chunk files, `drvmap.json`,
    /// `phases.json`, `summary.md` (Markdown for a Buildkite annotation:
    /// the parent, what each phase runs and skips, the changed targets)
    /// and `explain.json` (for `treekite explain`). It replaces the old
    /// one in one step, only when
    /// complete: a run killed at any moment leaves a complete set, old or
    /// new, and runs into the same DIR at the same time take turns (the
    /// last one's set stays).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    #[command(flatten)]
    nix_args: NixArgs,

    /// The parent drvmap: `buildkite` to look it up (as `treekite parent`
    /// does; none found means every target builds), or the path of a
    /// drvmap.json written by an earlier `treekite pipeline`.
    #[arg(long, value_name = "buildkite|PATH", value_parser = parent_flag)]
    parent: Option<ParentFlag>,

    /// The depot's argument that receives the parent drvmap's path
    /// [default: parentDrvmap].
    #[arg(long, value_name = "NAME", requires = "parent", value_parser = non_empty_name)]
    parent_arg: Option<String>,

    /// Show no progress while the depot evaluates. (By default, when it
    /// takes more than 2 s: on a terminal one live line, in a log a line
    /// at most every 10 s.)
    #[arg(short = 'q', long)]
    quiet: bool,

    #[command(flatten)]
    lookup: LookupArgs,
}

/// `--parent`'s value.
#[derive(Debug, Clone)]
enum ParentFlag {
    Buildkite,
    File(PathBuf),
}

/// How to look for the parent build: shared by `treekite parent` and
/// `treekite pipeline --parent buildkite`. Defaults are applied in
/// [`LookupArgs::into_lookup`], so a flag given is one the user typed.
#[derive(Debug, Args)]
#[command(next_help_heading = "Finding the parent build")]
struct LookupArgs {
    /// The branch to compare with [default: BUILDKITE_PULL_REQUEST_BASE_BRANCH
    /// in a pull request build, else BUILDKITE_PIPELINE_DEFAULT_BRANCH].
    #[arg(long, value_name = "BRANCH", value_parser = branch_name)]
    base: Option<String>,

    /// How many commits may have the parent: the merge base and its
    /// first-parent ancestors, 1 to 50 [default: 3].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=50))]
    candidates: Option<u16>,

    /// File holding the Buildkite API token (read_builds scope)
    /// [default: $BUILDKITE_API_TOKEN].
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,

    /// Buildkite's REST API [default: $TREEKITE_BUILDKITE_API_URL, else
    /// `https://api.buildkite.com/v2`].
    #[arg(long, value_name = "URL")]
    api_url: Option<String>,

    /// The drvmap's artifact path in the parent build [default: drvmap.json].
    #[arg(long, value_name = "PATH", value_parser = artifact_path)]
    artifact: Option<String>,
}

#[derive(Debug, Args)]
struct ParentArgs {
    /// File to write the parent's drvmap to (replaced whole, only when a
    /// parent is found).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,

    #[command(flatten)]
    lookup: LookupArgs,
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
struct ExplainArgs {
    /// Directory written by `treekite pipeline`.
    #[arg(value_name = "DIR")]
    dir: PathBuf,

    /// A target's label (`apps/hello`, `apps/tools:fmt`) or a step's key
    /// (`drv-…`, `extra-step-…`, a batch's key).
    #[arg(value_name = "TARGET")]
    target: String,
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

fn parent_flag(text: &str) -> Result<ParentFlag, String> {
    match text {
        "" => Err("--parent takes `buildkite` or the path of a drvmap.json".to_owned()),
        "buildkite" => Ok(ParentFlag::Buildkite),
        path => Ok(ParentFlag::File(PathBuf::from(path))),
    }
}

fn non_empty_name(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("the name must not be empty".to_owned());
    }
    Ok(text.to_owned())
}

/// A branch name as git allows it: not empty, not an option.
fn branch_name(text: &str) -> Result<String, String> {
    if text.trim().is_empty() || text.starts_with('-') {
        return Err(format!("{text:?} is not a branch name"));
    }
    Ok(text.to_owned())
}

/// An artifact path: relative, and one file (the agent would take a glob
/// for a pattern).
fn artifact_path(text: &str) -> Result<String, String> {
    let path = std::path::Path::new(text);
    if text.is_empty() || path.is_absolute() || text.contains(['*', '?', '[']) {
        return Err(format!(
            "{text:?} is not an artifact path; pass the relative path the drvmap was uploaded at, e.g. {}",
            pipeline_dir::DRVMAP_FILE
        ));
    }
    if path
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(format!("{text:?} leaves the download directory (..)"));
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
            Command::Pipeline(args) => Invocation::Pipeline(args.into_request()?),
            Command::Parent(args) => Invocation::Parent(parent::Request {
                lookup: args.lookup.into_lookup()?,
                out: args.out,
            }),
            Command::Upload(args) => Invocation::Upload(upload::Request {
                dir: args.dir,
                phase: args.phase,
            }),
            Command::Run(args) => Invocation::Run(args.into_request()),
            Command::Explain(args) => Invocation::Explain(explain::Request {
                dir: args.dir,
                target: args.target,
            }),
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
    fn into_request(self) -> Result<pipeline::Request> {
        let source = match self.file {
            Some(file) => pipeline::Source::File(file),
            None => pipeline::Source::Root(self.root.unwrap_or_else(|| PathBuf::from("."))),
        };
        let parent_arg = self
            .parent_arg
            .unwrap_or_else(|| pipeline::DEFAULT_PARENT_ARG.to_owned());
        let looks_up = matches!(self.parent, Some(ParentFlag::Buildkite));
        if let Some(flag) = self.lookup.given().filter(|_| !looks_up) {
            return Err(bad_input(format!(
                "{flag} only matters with --parent buildkite; add that or drop {flag}"
            )));
        }
        let parent = match self.parent {
            None => None,
            Some(ParentFlag::File(path)) => Some(parent::Source::File(path)),
            Some(ParentFlag::Buildkite) => {
                Some(parent::Source::Buildkite(self.lookup.into_lookup()?))
            }
        };
        if parent.is_some() && self.nix_args.0.iter().any(|arg| arg.name == parent_arg) {
            return Err(bad_input(format!(
                "--parent passes `{parent_arg}` to the depot itself; drop --arg/--argstr {parent_arg}"
            )));
        }
        Ok(pipeline::Request {
            source,
            attr: self.attr,
            out: self.out,
            nix_args: self.nix_args.0,
            parent,
            parent_arg,
            quiet: self.quiet,
        })
    }
}

impl LookupArgs {
    /// The first lookup flag given, for saying it has no effect.
    fn given(&self) -> Option<&'static str> {
        [
            ("--base", self.base.is_some()),
            ("--candidates", self.candidates.is_some()),
            ("--token-file", self.token_file.is_some()),
            ("--api-url", self.api_url.is_some()),
            ("--artifact", self.artifact.is_some()),
        ]
        .into_iter()
        .find_map(|(flag, given)| given.then_some(flag))
    }

    fn into_lookup(self) -> Result<parent::Lookup> {
        Ok(parent::Lookup {
            base: self.base,
            candidates: self
                .candidates
                .map_or(parent::DEFAULT_CANDIDATES, usize::from),
            token_file: self.token_file,
            api_url: parent::buildkite::api_url(self.api_url)?,
            artifact: self
                .artifact
                .unwrap_or_else(|| pipeline_dir::DRVMAP_FILE.to_owned()),
        })
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
