//! Finding the parent build: the earlier Buildkite build whose
//! `drvmap.json` this build compares with, so that targets whose derivation
//! did not change are skipped (`mkPipeline`'s `parentTargetMap`).
//!
//! Why it works the way it does:
//! - **The merge base, not the branch's last build.** What a branch changed
//!   is what differs from where it left its base branch, so the parent is a
//!   build of the merge base of HEAD and the base branch (the pull
//!   request's base, else the pipeline's default branch). Its first-parent
//!   ancestors are fallbacks: the merge base's own build may be missing
//!   (skipped, failed, not yet run), and a slightly older parent only means
//!   a few more targets run. On the base branch itself the merge base is
//!   HEAD, so the comparison is with HEAD's first parent. HEAD comes from
//!   git, never from `BUILDKITE_COMMIT`, which may be the word `HEAD`.
//! - **Only passed or blocked builds.** A failed build's drvmap lists
//!   targets it never built; skipping them would hide the failure.
//! - **One API call, bounded in time.** All candidate commits go into one
//!   query; a slow or rate-limited API costs at most [`buildkite`]'s budget.
//! - **Never fatal.** Without a parent every target is built, which is
//!   always right, only slower. So every problem (not on Buildkite, no
//!   token, no merge base, an API error, no build, no artifact, a file that
//!   is not a drvmap) is a [`Reason`]: one line on stderr, and the build
//!   goes on. Only a bad command line stops it.
//! - **The result is a value.** [`Parent`] says what was found (build,
//!   commit, state, base branch) or why nothing was, for whatever reports
//!   on the pipeline later.

mod artifact;
pub mod buildkite;
mod history;

use std::fmt;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::exit::{ExitCode, bad_input};
use crate::pipeline_dir::{self, Drvmap, ParentRecord};
use artifact::Downloaded;
use buildkite::{Api, Build, BuildkiteEnv, Token};
use history::Anchor;

/// How many candidate commits are searched by default: the merge base and
/// its two first-parent ancestors.
pub const DEFAULT_CANDIDATES: usize = 3;

/// How many builds are tried for an artifact at most.
const MAX_DOWNLOADS: usize = 5;

/// What `treekite parent` was asked to do.
#[derive(Debug)]
pub struct Request {
    pub lookup: Lookup,
    /// Where to write the parent's drvmap (only when one is found).
    pub out: PathBuf,
}

/// How to look for the parent build.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The base branch; `None`: from the Buildkite environment.
    pub base: Option<String>,
    /// How many commits, from the merge base back, may have the parent.
    pub candidates: usize,
    /// A file holding the API token; `None`: `BUILDKITE_API_TOKEN`.
    pub token_file: Option<PathBuf>,
    /// The REST API's base URL.
    pub api_url: String,
    /// The drvmap's artifact path in the parent build.
    pub artifact: String,
}

/// Where `treekite pipeline --parent` takes the parent drvmap from.
#[derive(Debug)]
pub enum Source {
    /// `--parent buildkite`: look it up.
    Buildkite(Lookup),
    /// `--parent PATH`: a local file.
    File(PathBuf),
}

/// The parent a pipeline was generated against, and how it was found.
#[derive(Debug)]
pub enum Parent {
    /// No `--parent` was given.
    NotAsked,
    /// A local drvmap (absolute path), and what it holds.
    File(PathBuf, Drvmap),
    /// The lookup found a build with a drvmap.
    Found(Found),
    /// The lookup found none, for this reason.
    NotFound(Reason),
}

impl Parent {
    /// The drvmap file to hand to the depot (while `self` lives), and
    /// what it holds.
    pub fn drvmap(&self) -> Option<(&Path, &Drvmap)> {
        match self {
            Parent::File(path, map) => Some((path, map)),
            Parent::Found(found) => Some((&found.drvmap.path, &found.drvmap.map)),
            Parent::NotAsked | Parent::NotFound(_) => None,
        }
    }
}

impl Parent {
    /// What the pipeline directory keeps of it, for `summary.md` and
    /// `treekite explain`.
    pub fn record(&self) -> ParentRecord {
        match self {
            Parent::NotAsked => ParentRecord::NotAsked,
            Parent::File(path, _) => ParentRecord::File {
                path: path.display().to_string(),
            },
            Parent::Found(found) => found.record(),
            Parent::NotFound(reason) => ParentRecord::NotFound {
                reason: reason.to_string(),
            },
        }
    }
}

impl fmt::Display for Parent {
    /// One line saying what the pipeline was compared with (the record's).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.record().fmt(f)
    }
}

/// A parent build whose drvmap was downloaded and checked.
#[derive(Debug)]
pub struct Found {
    pub build: Build,
    /// The base branch it was found on.
    pub base: String,
    /// Which candidate commit it is a build of.
    pub anchor: Anchor,
    /// How many first-parent steps before the anchor its commit is.
    pub back: usize,
    /// Its drvmap, in a directory removed when this is dropped.
    drvmap: Downloaded,
}

impl Found {
    /// The build, and its commit's place in words (`merge base of HEAD and
    /// BASE`).
    fn record(&self) -> ParentRecord {
        /// The place, as [`Anchor::describe`] writes it.
        struct Place<'a>(&'a Found);
        impl fmt::Display for Place<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.anchor.describe(f, self.0.back, &self.0.base)
            }
        }
        let Build {
            number,
            id,
            commit,
            state,
        } = &self.build;
        ParentRecord::Found {
            number: *number,
            id: id.clone(),
            commit: commit.clone(),
            state: state.clone(),
            base: self.base.clone(),
            place: Place(self).to_string(),
        }
    }
}

/// Why no parent was found: each is one line, the cause and what to do.
#[derive(Debug)]
pub enum Reason {
    /// A variable every Buildkite job has is missing.
    NotOnBuildkite(&'static str),
    /// Neither `--base` nor the environment names a base branch.
    NoBaseBranch,
    NoToken,
    TokenFile {
        path: PathBuf,
        error: String,
    },
    NotGit(PathBuf),
    Fetch {
        base: String,
        detail: String,
    },
    NoMergeBase {
        base: String,
        shallow: bool,
    },
    /// HEAD is on the base branch and is its first commit.
    NoParentCommit {
        base: String,
    },
    Api(buildkite::ApiError),
    NoBuild {
        base: String,
        anchor: Anchor,
        commits: usize,
    },
    NoAgent(String),
    /// Builds were found, but none gave a drvmap: (build number, why).
    NoUsableArtifact {
        artifact: String,
        tried: Vec<(u64, String)>,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NotOnBuildkite(var) => write!(f, "not on Buildkite ({var} is not set)"),
            Reason::NoBaseBranch => write!(
                f,
                "no base branch to compare with ({} is not set); pass --base BRANCH",
                buildkite::DEFAULT_BRANCH_ENV
            ),
            Reason::NoToken => write!(
                f,
                "no Buildkite API token; set {} or pass --token-file (a token with the read_builds scope)",
                buildkite::TOKEN_ENV
            ),
            Reason::TokenFile { path, error } => {
                write!(f, "cannot use the token file {}: {error}", path.display())
            }
            Reason::NotGit(dir) => write!(
                f,
                "{} is not in a git checkout (git rev-parse HEAD failed)",
                dir.display()
            ),
            Reason::Fetch { base, detail } => write!(f, "git fetch origin {base} failed: {detail}"),
            Reason::NoMergeBase { base, shallow } => write!(
                f,
                "HEAD and {base} have no common history{}",
                if *shallow {
                    " in the fetched part of this shallow clone"
                } else {
                    ""
                }
            ),
            Reason::NoParentCommit { base } => {
                write!(f, "HEAD is on {base} and has no parent commit")
            }
            Reason::Api(error) => error.fmt(f),
            Reason::NoBuild {
                base,
                anchor,
                commits,
            } => {
                f.write_str("no passed or blocked build of ")?;
                if *anchor == Anchor::MergeBase {
                    f.write_str("the ")?;
                }
                anchor.describe(f, 0, base)?;
                match commits {
                    1 => Ok(()),
                    2 => write!(f, " or the commit before it"),
                    n => write!(f, " or the {} commits before it", n - 1),
                }
            }
            Reason::NoAgent(error) => write!(f, "cannot run {}: {error}", artifact::AGENT),
            Reason::NoUsableArtifact { artifact, tried } => {
                let numbers: Vec<String> = tried.iter().map(|(n, _)| format!("#{n}")).collect();
                let whys: Vec<String> = tried
                    .iter()
                    .map(|(n, why)| format!("#{n}: {why}"))
                    .collect();
                write!(
                    f,
                    "no usable {artifact} in build{} {} ({})",
                    if tried.len() == 1 { "" } else { "s" },
                    numbers.join(", "),
                    whys.join("; ")
                )
            }
        }
    }
}

/// `treekite parent`: look the parent up and write its drvmap to `--out`.
pub fn run(request: &Request) -> Result<ExitCode> {
    check_out_file(&request.out)?;
    if let Parent::Found(found) = announce(find(&request.lookup, Path::new("."))) {
        write_atomically(&request.out, &found.drvmap.path)?;
    }
    Ok(ExitCode::Success)
}

/// `treekite pipeline --parent`: the parent, its line already printed.
/// A local file that is not a drvmap is bad input; everything the lookup
/// meets is not.
pub fn for_pipeline(source: Option<&Source>, git_dir: &Path) -> Result<Parent> {
    let parent = match source {
        None => return Ok(Parent::NotAsked),
        Some(Source::File(path)) => {
            let (path, map) = local_drvmap(path)?;
            Parent::File(path, map)
        }
        Some(Source::Buildkite(lookup)) => find(lookup, git_dir),
    };
    Ok(announce(parent))
}

/// Prints the parent's one line on stderr.
fn announce(parent: Parent) -> Parent {
    eprintln!("treekite: parent: {parent}");
    parent
}

fn find(lookup: &Lookup, git_dir: &Path) -> Parent {
    match lookup_parent(lookup, git_dir) {
        Ok(found) => Parent::Found(found),
        Err(reason) => Parent::NotFound(reason),
    }
}

/// The flow: environment, token, history, one API call, downloads.
fn lookup_parent(lookup: &Lookup, git_dir: &Path) -> Result<Found, Reason> {
    let env = BuildkiteEnv::read();
    let (org, pipeline) = env.slugs()?;
    let base = match &lookup.base {
        Some(base) => base.clone(),
        None => env.base_branch().ok_or(Reason::NoBaseBranch)?,
    };
    let token = Token::read(lookup.token_file.as_deref())?;
    let candidates = history::candidates(git_dir, &base, lookup.candidates)?;
    let api = Api {
        url: &lookup.api_url,
        org: &org,
        pipeline: &pipeline,
        token: &token,
    };
    let builds = api.builds(&candidates.commits).map_err(Reason::Api)?;
    let ordered = order(builds, &candidates.commits, env.build_id.as_deref());
    if ordered.is_empty() {
        return Err(Reason::NoBuild {
            base,
            anchor: candidates.anchor,
            commits: candidates.commits.len(),
        });
    }
    let (back, build, drvmap) = first_usable(ordered, &lookup.artifact)?;
    Ok(Found {
        build,
        base,
        anchor: candidates.anchor,
        back,
        drvmap,
    })
}

/// The builds worth trying, best first: of the candidate commits only (by
/// their place among them, the merge base first), passed or blocked, not
/// the current build, newest first on one commit; at most
/// [`MAX_DOWNLOADS`]. Each comes with its commit's place.
fn order(builds: Vec<Build>, commits: &[String], current: Option<&str>) -> Vec<(usize, Build)> {
    let mut placed: Vec<(usize, Build)> = builds
        .into_iter()
        .filter(|build| Some(build.id.as_str()) != current)
        .filter(|build| buildkite::USABLE_STATES.contains(&build.state.as_str()))
        .filter_map(|build| {
            let place = commits
                .iter()
                .position(|c| c.eq_ignore_ascii_case(&build.commit))?;
            Some((place, build))
        })
        .collect();
    placed.sort_by_key(|(place, build)| (*place, std::cmp::Reverse(build.number)));
    placed.truncate(MAX_DOWNLOADS);
    placed
}

/// Downloads each build's artifact in turn; the first drvmap wins.
fn first_usable(
    ordered: Vec<(usize, Build)>,
    artifact: &str,
) -> Result<(usize, Build, Downloaded), Reason> {
    let deadline = Instant::now() + artifact::BUDGET;
    let mut tried = Vec::new();
    for (place, build) in ordered {
        match artifact::download(&build.id, artifact, deadline) {
            Ok(drvmap) => return Ok((place, build, drvmap)),
            Err(artifact::Failure::Agent(error)) => return Err(Reason::NoAgent(error)),
            Err(artifact::Failure::Unusable(why)) => tried.push((build.number, why)),
        }
    }
    Err(Reason::NoUsableArtifact {
        artifact: artifact.to_owned(),
        tried,
    })
}

/// A local `--parent PATH`, read as a drvmap, with its absolute path (the
/// depot reads it with `builtins.readFile`, which needs one).
fn local_drvmap(path: &Path) -> Result<(PathBuf, Drvmap)> {
    let text = std::fs::read(path).map_err(|error| {
        bad_input(format!(
            "--parent {}: {error}; pass `buildkite` or the drvmap.json of an earlier `treekite pipeline`",
            path.display()
        ))
    })?;
    let map = pipeline_dir::parse_drvmap(&text).map_err(|why| {
        bad_input(format!(
            "--parent {} is {why}; pass the drvmap.json of an earlier `treekite pipeline`",
            path.display()
        ))
    })?;
    let path =
        std::fs::canonicalize(path).with_context(|| format!("resolving {}", path.display()))?;
    Ok((path, map))
}

/// Fails early (before any lookup) when `--out` cannot be written.
fn check_out_file(out: &Path) -> Result<()> {
    if out.is_dir() {
        return Err(bad_input(format!(
            "--out {} is a directory; pass the file to write the drvmap to",
            out.display()
        )));
    }
    let dir = out_dir(out);
    if !dir.is_dir() {
        return Err(bad_input(format!(
            "--out {}: the directory {} does not exist; create it first",
            out.display(),
            dir.display()
        )));
    }
    Ok(())
}

fn out_dir(out: &Path) -> &Path {
    match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Copies `from` to `out` through a temporary file beside it, so `out` is
/// the old file or the whole new one, never half.
fn write_atomically(out: &Path, from: &Path) -> Result<()> {
    let text = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    let mut file = tempfile::NamedTempFile::new_in(out_dir(out))
        .with_context(|| format!("creating a file beside {}", out.display()))?;
    // A drvmap is no secret: readable as any file written here would be
    // (a temporary file starts private).
    let readable = std::fs::Permissions::from_mode(0o644);
    file.write_all(&text)
        .and_then(|()| file.as_file().set_permissions(readable))
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("writing {}", out.display()))?;
    file.persist(out)
        .with_context(|| format!("moving the drvmap to {}", out.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(number: u64, commit: &str, state: &str) -> Build {
        Build {
            id: format!("uuid-{number}"),
            number,
            commit: commit.to_owned(),
            state: state.to_owned(),
        }
    }

    #[test]
    fn builds_are_tried_by_commit_then_newest_first() {
        let commits = ["aaa".to_owned(), "bbb".to_owned(), "ccc".to_owned()];
        let builds = vec![
            build(1, "ccc", "passed"),
            build(4, "bbb", "passed"),
            build(9, "bbb", "blocked"),
            build(7, "aaa", "failed"),
            build(8, "AAA", "passed"),
            build(10, "aaa", "passed"),
            build(11, "ddd", "passed"),
        ];
        let order = order(builds, &commits, Some("uuid-10"));
        let got: Vec<(usize, u64)> = order.iter().map(|(p, b)| (*p, b.number)).collect();
        assert_eq!(got, [(0, 8), (1, 9), (1, 4), (2, 1)]);
    }

    #[test]
    fn at_most_five_builds_are_tried() {
        let commits = ["aaa".to_owned()];
        let builds = (1..=8).map(|n| build(n, "aaa", "passed")).collect();
        let numbers: Vec<u64> = order(builds, &commits, None)
            .into_iter()
            .map(|(_, b)| b.number)
            .collect();
        assert_eq!(numbers, [8, 7, 6, 5, 4]);
    }

    #[test]
    fn reasons_are_one_line_each() {
        let reasons = [
            Reason::NoBuild {
                base: "main".into(),
                anchor: Anchor::MergeBase,
                commits: 3,
            },
            Reason::NoBuild {
                base: "main".into(),
                anchor: Anchor::HeadParent,
                commits: 1,
            },
            Reason::NoUsableArtifact {
                artifact: "drvmap.json".into(),
                tried: vec![(7, "no artifact".into()), (6, "not a drvmap".into())],
            },
        ];
        let lines: Vec<String> = reasons.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "no passed or blocked build of the merge base of HEAD and main or the 2 commits before it",
                "no passed or blocked build of HEAD~1 on main",
                "no usable drvmap.json in builds #7, #6 (#7: no artifact; #6: not a drvmap)",
            ]
        );
    }
}
