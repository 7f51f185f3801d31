#!/usr/bin/env bash
# The main job, end to end: generate the example depot's pipeline and run
# it here with `treekite run`, as Buildkite would run it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/env.sh

cargo build --release --locked --quiet
treekite=$PWD/target/release/treekite
out=${TMPDIR:-/tmp}/treekite-example-pipeline

echo "--- treekite pipeline: the example depot's pipeline (nothing is built yet)"
"$treekite" pipeline --root examples -A ci.pipeline --out "$out"
ls "$out"

echo "--- treekite run: every step, in dependency order, as the agent would"
# --unblock answers the release phase's prompt; the branch is main so the
# deploy step (branches = [ "main" ]) runs too.
"$treekite" run "$out" --root examples --branch main --unblock

echo "--- git status --porcelain (empty: the run left the checkout clean)"
git status --porcelain
