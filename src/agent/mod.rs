//! The agent side: what generated steps run. `treekite build` realises
//! targets and prints their store paths; `treekite exec` realises an extra
//! step's script and runs it. Both find their derivation from what the
//! step names ([`target`]), read it ([`drv`]), root its output before
//! building it ([`gcroot`], kept out of `git status` by [`gitexclude`])
//! and call Nix ([`nix`]).

pub mod build;
pub mod drv;
pub mod exec;
mod gcroot;
mod gitexclude;
mod nix;
pub mod target;

/// The command line of a step building targets: `TREEKITE build ARGS…`,
/// where TREEKITE is how steps call treekite and each ARGS is one target's
/// `--drv … --attr-path …`, all already quoted for the shell and the
/// upload. nix/buildkite writes the same line for one target; batching
/// writes it here for several.
pub fn build_command(treekite: &str, build_args: &[&str]) -> String {
    format!("{treekite} build {}", build_args.join(" "))
}
