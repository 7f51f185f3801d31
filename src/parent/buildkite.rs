//! Buildkite: the job's environment, and the one REST API call that finds
//! the candidate commits' builds.
//!
//! The call is bounded in time as a whole ([`DEFAULT_BUDGET`], rate-limit
//! waits included), because pipeline generation waits for it. The token
//! only ever goes into the `Authorization` header: it is never formatted
//! into a message, and any text the API sends back has it blanked out.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Deserialize;

use super::Reason;
use crate::exit::bad_input;

/// Where the API is, unless `--api-url` or [`API_URL_ENV`] says otherwise.
pub const DEFAULT_API_URL: &str = "https://api.buildkite.com/v2";
/// The API's base URL, for tests and Buildkite-compatible servers.
pub const API_URL_ENV: &str = "TREEKITE_BUILDKITE_API_URL";
/// The token, unless `--token-file` names a file.
pub const TOKEN_ENV: &str = "BUILDKITE_API_TOKEN";
/// For tests only: the API call's time budget in seconds (fractions
/// allowed) instead of [`DEFAULT_BUDGET`].
pub const BUDGET_ENV: &str = "TREEKITE_BUILDKITE_API_TIMEOUT";
/// Every Buildkite job has it: the base branch of a non-PR build.
pub const DEFAULT_BRANCH_ENV: &str = "BUILDKITE_PIPELINE_DEFAULT_BRANCH";

/// The API call's time budget, rate-limit waits included.
const DEFAULT_BUDGET: Duration = Duration::from_secs(30);
/// A rate-limited call is retried this many times at most (within the budget).
const MAX_ATTEMPTS: usize = 4;

/// The build states a parent may be in: passed, or blocked at a prompt
/// after its build steps passed.
pub const USABLE_STATES: [&str; 2] = ["passed", "blocked"];

/// The Buildkite job's variables that the lookup reads.
#[derive(Debug, Default)]
pub struct BuildkiteEnv {
    org: Option<String>,
    pipeline: Option<String>,
    pub build_id: Option<String>,
    default_branch: Option<String>,
    pull_request: Option<String>,
    pull_request_base: Option<String>,
}

impl BuildkiteEnv {
    pub fn read() -> BuildkiteEnv {
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        BuildkiteEnv {
            org: var("BUILDKITE_ORGANIZATION_SLUG"),
            pipeline: var("BUILDKITE_PIPELINE_SLUG"),
            build_id: var("BUILDKITE_BUILD_ID"),
            default_branch: var(DEFAULT_BRANCH_ENV),
            pull_request: var("BUILDKITE_PULL_REQUEST"),
            pull_request_base: var("BUILDKITE_PULL_REQUEST_BASE_BRANCH"),
        }
    }

    /// The organization and pipeline slugs the API needs.
    pub fn slugs(&self) -> Result<(String, String), Reason> {
        let org = self
            .org
            .clone()
            .ok_or(Reason::NotOnBuildkite("BUILDKITE_ORGANIZATION_SLUG"))?;
        let pipeline = self
            .pipeline
            .clone()
            .ok_or(Reason::NotOnBuildkite("BUILDKITE_PIPELINE_SLUG"))?;
        Ok((org, pipeline))
    }

    /// A pull request's base branch, else the pipeline's default branch.
    /// Buildkite sets `BUILDKITE_PULL_REQUEST` to the word `false` outside
    /// pull requests.
    pub fn base_branch(&self) -> Option<String> {
        let is_pull_request = self.pull_request.as_deref().is_some_and(|pr| pr != "false");
        let pull_request_base = self.pull_request_base.clone().filter(|_| is_pull_request);
        pull_request_base.or_else(|| self.default_branch.clone())
    }
}

/// The API token. Its `Debug` does not show it.
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    /// From `--token-file`, else [`TOKEN_ENV`]. Surrounding whitespace (a
    /// file's newline) is not part of it.
    pub fn read(file: Option<&Path>) -> Result<Token, Reason> {
        let text = match file {
            Some(path) => std::fs::read_to_string(path).map_err(|error| Reason::TokenFile {
                path: path.to_owned(),
                error: error.to_string(),
            })?,
            None => std::env::var(TOKEN_ENV).unwrap_or_default(),
        };
        let token = text.trim();
        match (token.is_empty(), file) {
            (false, _) => Ok(Token(token.to_owned())),
            (true, Some(path)) => Err(Reason::TokenFile {
                path: path.to_owned(),
                error: "it is empty".to_owned(),
            }),
            (true, None) => Err(Reason::NoToken),
        }
    }

    /// `text` with the token blanked out, for text that came from elsewhere.
    fn redact(&self, text: &str) -> String {
        text.replace(&self.0, "[token]")
    }
}

/// `--api-url`, else [`API_URL_ENV`], else [`DEFAULT_API_URL`]; bad input
/// unless it is an http(s) URL.
pub fn api_url(flag: Option<String>) -> Result<String> {
    let (url, from) = match flag {
        Some(url) => (url, "--api-url".to_owned()),
        None => match std::env::var(API_URL_ENV).ok().filter(|v| !v.is_empty()) {
            Some(url) => (url, API_URL_ENV.to_owned()),
            None => return Ok(DEFAULT_API_URL.to_owned()),
        },
    };
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(bad_input(format!(
            "{from} {url:?} is not an http(s) URL; pass the REST API's base, e.g. {DEFAULT_API_URL}"
        )));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// A build, as the API lists it (only what the lookup uses).
#[derive(Debug, Clone, Deserialize)]
pub struct Build {
    /// The UUID, which `buildkite-agent artifact download --build` takes.
    pub id: String,
    pub number: u64,
    pub commit: String,
    pub state: String,
}

/// Why the API call gave no list of builds.
#[derive(Debug)]
pub enum ApiError {
    /// An answer other than 200 (and other than a rate limit within the
    /// budget), with the API's own message when it sent one.
    Status { code: u16, message: Option<String> },
    /// No answer within the budget.
    Timeout(Duration),
    /// Rate-limited for longer than the budget allows waiting.
    RateLimited { reset: u64 },
    /// No connection, TLS or protocol failure.
    Transport(String),
    /// An answer that is not a list of builds.
    Malformed(String),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Status { code, message } => {
                write!(f, "the Buildkite API answered HTTP {code}")?;
                if let Some(message) = message {
                    write!(f, " ({message})")?;
                }
                match code {
                    401 => f.write_str("; check the API token"),
                    403 => f.write_str("; the token needs the read_builds scope and access to this pipeline"),
                    404 => f.write_str("; check BUILDKITE_ORGANIZATION_SLUG, BUILDKITE_PIPELINE_SLUG and the token's access"),
                    _ => Ok(()),
                }
            }
            ApiError::Timeout(budget) => write!(
                f,
                "the Buildkite API did not answer within {:.1} s",
                budget.as_secs_f64()
            ),
            ApiError::RateLimited { reset } => write!(
                f,
                "the Buildkite API is rate-limiting this organization for another {reset} s"
            ),
            ApiError::Transport(error) => write!(f, "cannot reach the Buildkite API: {error}"),
            ApiError::Malformed(error) => {
                write!(
                    f,
                    "the Buildkite API's answer is not a list of builds: {error}"
                )
            }
        }
    }
}

/// One pipeline's builds endpoint, with the token to call it.
pub struct Api<'a> {
    pub url: &'a str,
    pub org: &'a str,
    pub pipeline: &'a str,
    pub token: &'a Token,
}

impl Api<'_> {
    /// The passed or blocked builds of `commits`, in one call (retried
    /// only after a rate-limit answer, within the budget).
    pub fn builds(&self, commits: &[String]) -> Result<Vec<Build>, ApiError> {
        let budget = budget();
        let deadline = Instant::now() + budget;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(concat!("treekite/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let endpoint = format!(
            "{}/organizations/{}/pipelines/{}/builds",
            self.url, self.org, self.pipeline
        );
        for _ in 0..MAX_ATTEMPTS {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut response = agent
                .get(&endpoint)
                .query_pairs(commits.iter().map(|c| ("commit[]", c.as_str())))
                .query_pairs(USABLE_STATES.map(|s| ("state[]", s)))
                .query("exclude_jobs", "true")
                .query("per_page", "100")
                .header("Authorization", &format!("Bearer {}", self.token.0))
                .header("Accept", "application/json")
                .config()
                .timeout_global(Some(left))
                .build()
                .call()
                .map_err(|error| self.transport(error, budget))?;
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string();
            let text = text.map_err(|error| self.transport(error, budget))?;
            match status {
                200 => return self.parse(&text),
                429 => {
                    let reset = rate_limit_reset(&response);
                    let wait = Duration::from_secs(reset.max(1));
                    if Instant::now() + wait >= deadline {
                        return Err(ApiError::RateLimited { reset });
                    }
                    std::thread::sleep(wait);
                }
                code => {
                    return Err(ApiError::Status {
                        code,
                        message: self.message(&text),
                    });
                }
            }
        }
        Err(ApiError::RateLimited { reset: 0 })
    }

    fn parse(&self, text: &str) -> Result<Vec<Build>, ApiError> {
        serde_json::from_str(text)
            .map_err(|error| ApiError::Malformed(self.redact_line(&error.to_string())))
    }

    /// The `message` of a JSON error answer, as one short line.
    fn message(&self, text: &str) -> Option<String> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        let message = value.get("message")?.as_str()?;
        Some(self.redact_line(message))
    }

    fn transport(&self, error: ureq::Error, budget: Duration) -> ApiError {
        match error {
            ureq::Error::Timeout(_) => ApiError::Timeout(budget),
            other => ApiError::Transport(self.redact_line(&other.to_string())),
        }
    }

    /// Outside text as one line of at most 200 characters, token blanked.
    fn redact_line(&self, text: &str) -> String {
        let line = self.token.redact(text).replace(['\n', '\r'], " ");
        match line.char_indices().nth(200) {
            Some((at, _)) => format!("{}…", &line[..at]),
            None => line,
        }
    }
}

/// Seconds until the rate limit resets, from `RateLimit-Reset` (absent or
/// unreadable: 1).
fn rate_limit_reset(response: &ureq::http::Response<ureq::Body>) -> u64 {
    response
        .headers()
        .get("RateLimit-Reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1)
}

/// [`DEFAULT_BUDGET`], or [`BUDGET_ENV`]'s seconds (for tests).
fn budget() -> Duration {
    std::env::var(BUDGET_ENV)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .unwrap_or(DEFAULT_BUDGET)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pull_request: Option<&str>) -> BuildkiteEnv {
        BuildkiteEnv {
            default_branch: Some("main".into()),
            pull_request: pull_request.map(Into::into),
            pull_request_base: Some("release".into()),
            ..BuildkiteEnv::default()
        }
    }

    #[test]
    fn the_base_branch_is_the_pull_requests_only_in_a_pull_request() {
        assert_eq!(env(Some("42")).base_branch().as_deref(), Some("release"));
        assert_eq!(env(Some("false")).base_branch().as_deref(), Some("main"));
        assert_eq!(env(None).base_branch().as_deref(), Some("main"));
        assert_eq!(BuildkiteEnv::default().base_branch(), None);
    }

    #[test]
    fn the_token_is_never_shown() {
        let token = Token("s3cret".into());
        assert_eq!(format!("{token:?}"), "Token(…)");
        let api = Api {
            url: "http://127.0.0.1:1",
            org: "o",
            pipeline: "p",
            token: &token,
        };
        let long = format!("bad s3cret\n{}", "x".repeat(300));
        let line = api.redact_line(&long);
        assert!(line.starts_with("bad [token] xx"), "{line}");
        assert!(!line.contains("s3cret") && !line.contains('\n'));
        assert_eq!(line.chars().count(), 201);
    }
}
