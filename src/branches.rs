//! Step-level branch filters, as Buildkite applies them: `branches` is a
//! list of patterns where `*` matches any run of characters (slashes too)
//! and a leading `!` excludes. A branch passes when it matches at least one
//! positive pattern (if there are any) and none of the negative ones; an
//! empty list lets every branch through.
//!
//! Shared by the local runner, which leaves filtered steps out, and by
//! `treekite pipeline` and `treekite explain`, which say why.

use std::path::Path;

use anyhow::Result;
use globset::{Glob, GlobMatcher};

use crate::exit::bad_input;
use crate::git;

/// The variable holding the branch a Buildkite build is for.
pub const BRANCH_ENV: &str = "BUILDKITE_BRANCH";

/// The branch this build is for: [`BRANCH_ENV`] on an agent, else the
/// branch checked out in `dir`; `None` when neither says.
pub fn build_branch(dir: &Path) -> Option<String> {
    std::env::var(BRANCH_ENV)
        .ok()
        .filter(|branch| !branch.is_empty())
        .or_else(|| git::current_branch(dir))
}

pub struct Filter {
    include: Vec<GlobMatcher>,
    exclude: Vec<GlobMatcher>,
}

impl Filter {
    /// Compiles `patterns`; `origin` names the step for the error message.
    pub fn new(patterns: &[String], origin: &str) -> Result<Filter> {
        let mut filter = Filter {
            include: Vec::new(),
            exclude: Vec::new(),
        };
        for pattern in patterns {
            let (list, text) = match pattern.strip_prefix('!') {
                Some(rest) => (&mut filter.exclude, rest),
                None => (&mut filter.include, pattern.as_str()),
            };
            list.push(matcher(text).map_err(|e| {
                bad_input(format!(
                    "{origin}: branch pattern {pattern:?} cannot be used: {e}"
                ))
            })?);
        }
        Ok(filter)
    }

    pub fn allows(&self, branch: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|m| m.is_match(branch)))
            && !self.exclude.iter().any(|m| m.is_match(branch))
    }
}

/// Only `*` is special in a Buildkite branch pattern, so every other
/// character (`?`, `[`, `{`, which branch names may contain) is escaped
/// before the glob is built.
fn matcher(pattern: &str) -> Result<GlobMatcher, globset::Error> {
    let glob: Vec<String> = pattern.split('*').map(globset::escape).collect();
    Ok(Glob::new(&glob.join("*"))?.compile_matcher())
}

#[cfg(test)]
mod tests {
    use super::Filter;

    fn allows(patterns: &str, branch: &str) -> bool {
        let patterns: Vec<String> = patterns.split_whitespace().map(str::to_owned).collect();
        Filter::new(&patterns, "test").unwrap().allows(branch)
    }

    #[test]
    fn buildkite_examples() {
        assert!(allows("main", "main"));
        assert!(!allows("main", "mainline"));
        assert!(allows("main features/*", "features/new-ui"));
        assert!(allows("features/*", "features/a/b"));
        assert!(!allows("main features/*", "fix/x"));
        assert!(allows("!production", "main"));
        assert!(!allows("!production", "production"));
        assert!(allows("main feature/* !feature/beta", "feature/alpha"));
        assert!(!allows("main feature/* !feature/beta", "feature/beta"));
        assert!(allows("*-stable", "2.0-stable"));
        assert!(allows("", "anything"));
    }

    #[test]
    fn only_star_is_special() {
        assert!(allows("fix-[1]", "fix-[1]"));
        assert!(!allows("fix-[1]", "fix-1"));
        assert!(allows("what?", "what?"));
        assert!(!allows("what?", "whats"));
        assert!(allows("{a,b}", "{a,b}"));
    }
}
