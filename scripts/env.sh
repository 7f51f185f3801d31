# Sourced by the scripts: settings every Nix call here needs.
# There is no binary cache to ask (and asking an unreachable one stalls
# each Nix call for seconds).
export NIX_CONFIG="${NIX_CONFIG:-substituters =
}"
