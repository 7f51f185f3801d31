#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests (which also
# evaluate the Nix library's fixtures and build in the real Nix store),
# then clippy and rustdoc, which must be clean.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/env.sh
cargo test --locked "$@"
cargo clippy --locked --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --quiet
