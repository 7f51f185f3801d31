//! Downloading a build's drvmap with `buildkite-agent artifact download`:
//! the agent already holds the job's credentials for artifacts, so the API
//! token needs no artifact scope. Each download goes to a fresh temporary
//! directory, which lives as long as the [`Downloaded`] value: for
//! `treekite pipeline`, through the evaluation that reads it.

use std::io::{Read, Seek};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::pipeline_dir::{Drvmap, parse_drvmap};
use crate::process::{Ended, wait_until};

pub const AGENT: &str = "buildkite-agent";

/// The time all downloads of one lookup may take together.
pub const BUDGET: Duration = Duration::from_secs(60);

/// A downloaded drvmap, checked.
#[derive(Debug)]
pub struct Downloaded {
    _dir: TempDir,
    pub path: PathBuf,
    /// What it holds, read once.
    pub map: Drvmap,
}

/// Why a download gave nothing.
pub enum Failure {
    /// The agent cannot be run at all: no other build will do better.
    Agent(String),
    /// This build gave no drvmap (one line saying why).
    Unusable(String),
}

/// Downloads `artifact` of the build `build_id` and checks that it is a
/// drvmap. The agent keeps the artifact's path below the directory it is
/// given, so the file is at `DIR/ARTIFACT`.
pub fn download(build_id: &str, artifact: &str, deadline: Instant) -> Result<Downloaded, Failure> {
    let unusable = |why: String| Failure::Unusable(why);
    let dir = tempfile::Builder::new()
        .prefix("treekite-parent-")
        .tempdir()
        .map_err(|e| unusable(format!("cannot create a temporary directory: {e}")))?;
    // The agent's log goes to a file, not a pipe: a chatty agent cannot
    // block on a full pipe while we wait for it, and only its last line is
    // shown, in our one line.
    let mut log = tempfile::tempfile()
        .map_err(|e| unusable(format!("cannot create a temporary file: {e}")))?;
    let log_handle = log
        .try_clone()
        .map_err(|e| unusable(format!("cannot duplicate a file handle: {e}")))?;
    let stderr_handle = log
        .try_clone()
        .map_err(|e| unusable(format!("cannot duplicate a file handle: {e}")))?;
    let mut child = Command::new(AGENT)
        .args(["artifact", "download", "--build", build_id, artifact])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(log_handle)
        .stderr(stderr_handle)
        .spawn()
        .map_err(|e| Failure::Agent(format!("{e} (is it on PATH?)")))?;
    let ended = wait_until(&mut child, deadline)
        .map_err(|e| unusable(format!("waiting for {AGENT}: {e}")))?;
    match ended {
        None => {
            return Err(unusable(format!(
                "downloads did not finish within {} s",
                BUDGET.as_secs()
            )));
        }
        Some(status) if !status.success() => {
            return Err(unusable(format!(
                "`{AGENT} artifact download` failed ({}): {}",
                Ended::of(status).describe(),
                last_line(&mut log)
            )));
        }
        Some(_) => {}
    }
    let path = dir.path().join(artifact);
    let text =
        std::fs::read(&path).map_err(|_| unusable(format!("{AGENT} downloaded no {artifact}")))?;
    let map = parse_drvmap(&text).map_err(unusable)?;
    Ok(Downloaded {
        _dir: dir,
        path,
        map,
    })
}

/// The last non-empty line of the agent's log, at most 200 characters.
fn last_line(log: &mut std::fs::File) -> String {
    let mut bytes = Vec::new();
    let _ = log.rewind().and_then(|()| log.read_to_end(&mut bytes));
    let text = String::from_utf8_lossy(&bytes);
    let line = text.lines().map(str::trim).rfind(|l| !l.is_empty());
    line.unwrap_or("no message").chars().take(200).collect()
}
