//! treekite's integration tests: one test crate, one module per subcommand
//! or Nix library, and the helpers they share in `support`. Nix tests use
//! real Nix and the real store; fixtures live in `tests/fixtures/`.

mod support;

mod build;
mod example;
mod exec;
mod explain;
mod gc_storm;
mod nix_buildkite;
mod parent;
mod pipeline;
mod readtree;
mod run;
mod upload;
mod vendoring;
