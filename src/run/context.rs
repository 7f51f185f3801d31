//! What a local run needs to know besides the pipeline: where steps run,
//! which branch and commit the build is for, the variables Buildkite would
//! give each job, and where the logs go.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context as _, Result};

use super::Request;
use super::interpolate::Env;
use super::plan::{Kind, Plan, Step, StepId};
use crate::exit::bad_input;
use crate::{branches, git, state};

/// A variable for interpolation and the steps (`--env K=V`, or `K` alone
/// for this environment's value of K).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

impl FromStr for EnvVar {
    type Err = String;

    fn from_str(item: &str) -> Result<EnvVar, String> {
        let (name, value) = match item.split_once('=') {
            Some((name, value)) => (name, value.to_owned()),
            None => (item, std::env::var(item).unwrap_or_default()),
        };
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "--env {item:?}: expected NAME=VALUE with NAME made of letters, digits and _"
            ));
        }
        Ok(EnvVar {
            name: name.to_owned(),
            value,
        })
    }
}

pub struct Context {
    /// Repository root: every step's working directory.
    pub root: PathBuf,
    pub branch: String,
    pub commit: String,
    pub jobs: usize,
    pub unblock: bool,
    /// `--log-dir`, or `None` for a new directory under the state directory.
    log_dir: Option<PathBuf>,
    /// Variables every job of the build has (`BUILDKITE_BRANCH`, …).
    build_vars: Vec<(String, String)>,
    /// `--env`, in the order given.
    extra_env: Vec<(String, String)>,
    /// Directory of this treekite, put first on each step's PATH so that
    /// generated `treekite build` commands call this very binary.
    exe_dir: Option<PathBuf>,
}

impl Context {
    pub fn new(request: &Request) -> Result<Context> {
        let root = root(request.root.as_deref())?;
        let branch = match &request.branch {
            Some(branch) => branch.clone(),
            None => git::current_branch(&root).unwrap_or_else(|| "main".to_owned()),
        };
        let commit =
            git::output(&root, &["rev-parse", "HEAD"]).unwrap_or_else(|| "HEAD".to_owned());
        let build_vars = build_vars(&root, &branch, &commit);
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_owned));
        Ok(Context {
            root,
            branch,
            commit,
            jobs: request.jobs.get(),
            unblock: request.unblock,
            log_dir: request.log_dir.clone(),
            build_vars,
            extra_env: request
                .env
                .iter()
                .map(|var| (var.name.clone(), var.value.clone()))
                .collect(),
            exe_dir,
        })
    }

    /// What the uploading job would interpolate with: the build's variables
    /// and `--env`. Not this shell's environment: an agent's differs from
    /// it, and a pipeline that needs the uploader's `$HOME` is a bug to show.
    pub fn interpolation_env(&self) -> Env {
        self.build_vars
            .iter()
            .chain(&self.extra_env)
            .cloned()
            .collect()
    }

    /// The environment of one step, lowest precedence first: this process's
    /// environment (as an agent passes its own on), the job's `BUILDKITE_*`
    /// variables, `--env`, the upload's and the step's `env`; then PATH
    /// with this treekite's directory in front.
    pub fn step_env(&self, plan: &Plan, id: StepId) -> Vec<(String, String)> {
        let step = &plan.steps[id];
        let mut env: Vec<(String, String)> = self.build_vars.clone();
        env.extend(job_vars(step, plan));
        env.extend(self.extra_env.iter().cloned());
        env.extend(step.env.iter().cloned());
        let mut merged: HashMap<String, String> = HashMap::new();
        for (name, value) in env {
            merged.insert(name, value);
        }
        let path = merged
            .get("PATH")
            .cloned()
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_default();
        if let Some(dir) = &self.exe_dir {
            let dir = dir.to_string_lossy();
            merged.insert(
                "PATH".to_owned(),
                if path.is_empty() {
                    dir.into_owned()
                } else {
                    format!("{dir}:{path}")
                },
            );
        }
        let mut env: Vec<(String, String)> = merged.into_iter().collect();
        env.sort();
        env
    }

    /// Creates the log directory; by default a new one per run, outside the
    /// work tree so that logs never show in `git status`.
    pub fn create_log_dir(&self) -> Result<PathBuf> {
        let dir = match &self.log_dir {
            Some(dir) => dir.clone(),
            None => state::home()
                .ok_or_else(|| {
                    bad_input(
                        "neither XDG_STATE_HOME nor HOME is an absolute path; pass --log-dir DIR",
                    )
                })?
                .join("treekite/runs")
                .join(format!("{}-{}", utc_stamp(), std::process::id())),
        };
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating log directory {}", dir.display()))?;
        Ok(dir)
    }
}

fn root(asked: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = asked {
        if !dir.is_dir() {
            return Err(bad_input(format!(
                "--root {} is not a directory",
                dir.display()
            )));
        }
        return dir
            .canonicalize()
            .with_context(|| format!("resolving {}", dir.display()));
    }
    let here = std::env::current_dir().context("finding the current directory")?;
    Ok(git::output(&here, &["rev-parse", "--show-toplevel"]).map_or(here, PathBuf::from))
}

fn build_vars(root: &Path, branch: &str, commit: &str) -> Vec<(String, String)> {
    let slug = root
        .file_name()
        .map_or_else(|| "local".to_owned(), |n| n.to_string_lossy().into_owned());
    [
        ("BUILDKITE", "true"),
        ("CI", "true"),
        (branches::BRANCH_ENV, branch),
        ("BUILDKITE_COMMIT", commit),
        ("BUILDKITE_BUILD_ID", &uuid()),
        ("BUILDKITE_BUILD_NUMBER", "1"),
        ("BUILDKITE_BUILD_CHECKOUT_PATH", &root.to_string_lossy()),
        ("BUILDKITE_PIPELINE_SLUG", &slug),
        ("BUILDKITE_ORGANIZATION_SLUG", "local"),
        ("BUILDKITE_SOURCE", "local"),
        ("BUILDKITE_TAG", ""),
        ("BUILDKITE_PULL_REQUEST", "false"),
        ("BUILDKITE_RETRY_COUNT", "0"),
        ("BUILDKITE_AGENT_NAME", "treekite-run"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The variables that differ per job.
fn job_vars(step: &Step, plan: &Plan) -> Vec<(String, String)> {
    let mut vars = vec![
        ("BUILDKITE_JOB_ID".to_owned(), uuid()),
        ("BUILDKITE_STEP_ID".to_owned(), uuid()),
        (
            "BUILDKITE_STEP_KEY".to_owned(),
            step.key.clone().unwrap_or_default(),
        ),
        ("BUILDKITE_LABEL".to_owned(), step.label.clone()),
    ];
    if let Kind::Command(command) = &step.kind {
        vars.push((
            "BUILDKITE_COMMAND".to_owned(),
            command.script.clone().unwrap_or_default(),
        ));
        let timeout = command
            .timeout
            .map_or_else(|| "false".to_owned(), |t| (t.as_secs() / 60).to_string());
        vars.push(("BUILDKITE_TIMEOUT".to_owned(), timeout));
    }
    if let Some(group) = step.parent.map(|p| &plan.steps[p]) {
        vars.push((
            "BUILDKITE_GROUP_KEY".to_owned(),
            group.key.clone().unwrap_or_default(),
        ));
        vars.push(("BUILDKITE_GROUP_LABEL".to_owned(), group.label.clone()));
    }
    vars
}

/// A random (version 4) UUID, as Buildkite's ids are.
fn uuid() -> String {
    let mut bytes = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        // Unique enough for ids nobody looks up.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = (nanos ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `20240131-235959` in UTC, for log directory names that sort by time.
fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_753), (2024, 1, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn env_items() {
        let var = |item: &str| item.parse::<EnvVar>().map(|v| (v.name, v.value));
        assert_eq!(var("A=b=c").unwrap(), ("A".to_owned(), "b=c".to_owned()));
        assert_eq!(var("A=").unwrap(), ("A".to_owned(), String::new()));
        assert!(var("=x").is_err());
        assert!(var("1A=x").is_err());
        assert!(var("A B=x").is_err());
    }

    #[test]
    fn uuids_look_like_uuids() {
        let id = uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }
}
