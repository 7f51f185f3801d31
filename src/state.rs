//! Where treekite keeps its own files on a machine (GC-root links, run
//! logs): the XDG state directory, by one rule.

use std::path::PathBuf;

/// `$XDG_STATE_HOME`, else `$HOME/.local/state`; always absolute. The XDG
/// spec says a relative `XDG_STATE_HOME` is invalid and to be ignored, and
/// a relative path would change meaning with the working directory (and
/// register nothing as a GC root: Nix resolves roots against its own
/// directory). `None` when neither gives an absolute path: callers say
/// what to set instead.
pub fn home() -> Option<PathBuf> {
    env_path("XDG_STATE_HOME")
        .filter(|dir| dir.is_absolute())
        .or_else(|| {
            env_path("HOME")
                .filter(|home| home.is_absolute())
                .map(|home| home.join(".local/state"))
        })
}

/// A variable's value as a path, when it is set and not empty.
pub fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}
