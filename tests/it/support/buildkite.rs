//! Buildkite for the tests, which cannot reach the real one: a fake REST
//! API on 127.0.0.1 that answers from a script and records what it was
//! asked, and a fake `buildkite-agent` that serves artifacts per build.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::{Value, json};
use tempfile::TempDir;

use super::{read_lines, write_executable};

/// The API token every test job has: it must never show in any output.
pub const TOKEN: &str = "bkua_TEST_TOKEN_must_never_show_0123456789";

/// The current build's UUID in every test job.
pub const CURRENT_BUILD: &str = "00000000-0000-0000-0000-00000000c0de";

/// What the fake API answers to one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// This status and body.
    Json(u16, String),
    /// 429 with `RateLimit-Reset: reset`.
    RateLimited { reset: u64 },
    /// No answer until the fake stops.
    Hang,
    /// This error status, with a message that quotes the request's
    /// `Authorization` header back (as a careless server might).
    EchoAuth(u16),
}

impl Answer {
    /// 200 with these builds.
    pub fn builds(builds: &[Value]) -> Answer {
        Answer::Json(200, Value::from(builds.to_vec()).to_string())
    }
}

/// A build as the API lists it.
pub fn build(number: u64, id: &str, commit: &str, state: &str) -> Value {
    json!({
        "id": id,
        "number": number,
        "commit": commit,
        "state": state,
        "branch": "main",
        "web_url": format!("https://buildkite.com/org/pipe/builds/{number}"),
    })
}

/// `builds` (number, commit, state) as the API lists them, `uuid-N` each.
pub fn listed(builds: &[(u64, &str, &str)]) -> Vec<Value> {
    builds
        .iter()
        .map(|(number, commit, state)| build(*number, &format!("uuid-{number}"), commit, state))
        .collect()
}

/// A fake Buildkite: the API and the agent.
pub struct Buildkite {
    pub api: FakeApi,
    pub agent: FakeAgent,
}

impl Buildkite {
    /// The API gives `answers`; the agent has no artifacts yet.
    pub fn new(answers: Vec<Answer>) -> Buildkite {
        Buildkite {
            api: FakeApi::start(answers),
            agent: FakeAgent::new(),
        }
    }
}

/// One request the fake API received.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub path: String,
    /// The query's pairs, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    pub authorization: Option<String>,
}

impl ApiRequest {
    /// The values of a query key, in order.
    pub fn values(&self, key: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The fake REST API: request n gets answer n (the last answer repeats).
/// Stopped, hanging requests dropped, when it is dropped.
pub struct FakeApi {
    pub url: String,
    server: Arc<tiny_http::Server>,
    handler: Option<JoinHandle<()>>,
    seen: Arc<Mutex<Vec<ApiRequest>>>,
}

impl FakeApi {
    pub fn start(answers: Vec<Answer>) -> FakeApi {
        assert!(!answers.is_empty(), "the fake API needs an answer");
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler = {
            let (server, seen) = (server.clone(), seen.clone());
            std::thread::spawn(move || serve(&server, &answers, &seen))
        };
        FakeApi {
            url: format!("http://127.0.0.1:{port}/v2"),
            server,
            handler: Some(handler),
            seen,
        }
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<ApiRequest> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(handler) = self.handler.take() {
            handler.join().unwrap();
        }
    }
}

fn serve(server: &tiny_http::Server, answers: &[Answer], seen: &Mutex<Vec<ApiRequest>>) {
    // Requests left unanswered (`Hang`) are dropped when serving stops.
    let mut hanging = Vec::new();
    while let Ok(request) = server.recv() {
        let recorded = record(&request);
        let n = {
            let mut seen = seen.lock().unwrap();
            seen.push(recorded.clone());
            seen.len() - 1
        };
        let respond = |status: u16, body: String, extra: Option<(&str, String)>| {
            let mut response = tiny_http::Response::from_string(body)
                .with_status_code(status)
                .with_header(header("Content-Type", "application/json"));
            if let Some((name, value)) = extra {
                response.add_header(header(name, &value));
            }
            response
        };
        let answer = &answers[n.min(answers.len() - 1)];
        let response = match answer {
            Answer::Json(status, body) => respond(*status, body.clone(), None),
            Answer::RateLimited { reset } => respond(
                429,
                r#"{"message": "You have exceeded your rate limit"}"#.to_owned(),
                Some(("RateLimit-Reset", reset.to_string())),
            ),
            Answer::EchoAuth(status) => {
                let auth = recorded.authorization.unwrap_or_default();
                let message = json!({ "message": format!("Token rejected: {auth}") });
                respond(*status, message.to_string(), None)
            }
            Answer::Hang => {
                hanging.push(request);
                continue;
            }
        };
        let _ = request.respond(response);
    }
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap()
}

fn record(request: &tiny_http::Request) -> ApiRequest {
    let (path, query) = request.url().split_once('?').unwrap_or((request.url(), ""));
    let query = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let authorization = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.to_string());
    ApiRequest {
        path: path.to_owned(),
        query,
        authorization,
    }
}

/// `%5B` → `[` and `+` → space, as a server reads a query string.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// The fake `buildkite-agent`: `artifact download --build UUID PATH DIR`
/// copies `artifacts/UUID/PATH` to `DIR/PATH` (the agent keeps the
/// artifact's path), or fails as the agent does when there is none.
/// Every call is recorded.
const FAKE_AGENT: &str = r#"#!/bin/sh
printf '%s\n' "$*" >> "$FAKE_AGENT_DIR/calls"
if [ "$1 $2 $3" != "artifact download --build" ] || [ $# -ne 6 ]; then
  echo "fake: unexpected call: $*" >&2; exit 99
fi
echo "Searching for artifacts: \"$5\"" >&2
from="$FAKE_AGENT_DIR/artifacts/$4/$5"
if [ ! -f "$from" ]; then
  echo "fatal: failed to download artifacts: No artifacts found for downloading" >&2; exit 1
fi
mkdir -p "$(dirname "$6/$5")" && cp "$from" "$6/$5"
"#;

pub struct FakeAgent {
    dir: TempDir,
}

impl FakeAgent {
    pub fn new() -> FakeAgent {
        let agent = FakeAgent {
            dir: tempfile::tempdir().unwrap(),
        };
        write_executable(&agent.bin().join("buildkite-agent"), FAKE_AGENT);
        agent
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// Makes `text` the artifact `path` of build `uuid`.
    pub fn artifact(&self, uuid: &str, path: &str, text: &str) {
        let file = self.dir.path().join("artifacts").join(uuid).join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }

    /// The agent's calls, one line of arguments each.
    pub fn calls(&self) -> Vec<String> {
        read_lines(self.dir.path().join("calls"))
    }

    /// The builds it was asked to download from, in order.
    pub fn downloads(&self) -> Vec<String> {
        self.calls()
            .iter()
            .filter_map(|call| call.split(' ').nth(3).map(str::to_owned))
            .collect()
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Every variable the parent lookup reads, the build's branch (which
/// `summary.md` reports), and proxies (which would send the fake API's
/// requests elsewhere).
const JOB_VARS: &[&str] = &[
    "BUILDKITE_BRANCH",
    "BUILDKITE_ORGANIZATION_SLUG",
    "BUILDKITE_PIPELINE_SLUG",
    "BUILDKITE_BUILD_ID",
    "BUILDKITE_PIPELINE_DEFAULT_BRANCH",
    "BUILDKITE_PULL_REQUEST",
    "BUILDKITE_PULL_REQUEST_BASE_BRANCH",
    "BUILDKITE_API_TOKEN",
    "TREEKITE_BUILDKITE_API_URL",
    "TREEKITE_BUILDKITE_API_TIMEOUT",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
];

/// Builder methods for a treekite command run as a Buildkite job would.
pub trait BuildkiteCommand {
    /// Nothing from this process's environment about Buildkite.
    fn not_on_buildkite(&mut self) -> &mut Self;

    /// A job of pipeline `org/pipe`, default branch `main`, build
    /// [`CURRENT_BUILD`], token [`TOKEN`], talking to `api`, with `agent`
    /// first on PATH. The API's time budget is short, so a test of a slow
    /// server stays quick.
    fn buildkite_job(&mut self, api: &FakeApi, agent: &FakeAgent) -> &mut Self;
}

impl BuildkiteCommand for Command {
    fn not_on_buildkite(&mut self) -> &mut Self {
        JOB_VARS.iter().fold(self, |cmd, var| cmd.env_remove(var))
    }

    fn buildkite_job(&mut self, api: &FakeApi, agent: &FakeAgent) -> &mut Self {
        let path = format!(
            "{}:{}",
            agent.bin().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        self.not_on_buildkite()
            .env("PATH", path)
            .env("FAKE_AGENT_DIR", agent.path())
            .env("BUILDKITE_ORGANIZATION_SLUG", "org")
            .env("BUILDKITE_PIPELINE_SLUG", "pipe")
            .env("BUILDKITE_BUILD_ID", CURRENT_BUILD)
            .env("BUILDKITE_PIPELINE_DEFAULT_BRANCH", "main")
            .env("BUILDKITE_PULL_REQUEST", "false")
            .env("BUILDKITE_API_TOKEN", TOKEN)
            .env("TREEKITE_BUILDKITE_API_URL", &api.url)
            .env("TREEKITE_BUILDKITE_API_TIMEOUT", "5")
    }
}
