#!/usr/bin/env bash
# Installs what treekite's demo and tests need and is missing: Nix (Debian's
# nix-bin), busybox (the example's only build tool) and Python's jsonschema
# (for ../shared/buildkite/bkcheck.py). The Rust toolchain must be present.
# Safe to run again: it installs nothing that is already there.
set -euo pipefail

missing=()
command -v nix-instantiate >/dev/null || missing+=(nix-bin)
[ -x /bin/busybox ] || missing+=(busybox-static)
python3 -c 'import jsonschema' 2>/dev/null || missing+=(python3-jsonschema)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing ${missing[*]}; run this as root (or: sudo apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q "${missing[@]}" >&2
  # Debian's python3-jsonschema serves the system Python; a python3 earlier
  # on PATH (pyenv, a venv) needs its own copy.
  python3 -c 'import jsonschema' 2>/dev/null || python3 -m pip install -q jsonschema >&2
fi

command -v cargo >/dev/null || { echo "setup: cargo is missing; install Rust (https://rustup.rs)" >&2; exit 1; }
# The test command runs clippy too.
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy >&2 || {
  echo "setup: cargo clippy is missing; install it (rustup component add clippy)" >&2
  exit 1
}
