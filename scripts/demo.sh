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

echo "--- treekite explain: why apps/hello's step runs and what it waits for"
"$treekite" explain "$out" apps/hello

echo "--- treekite run: every step, in dependency order, as the agent would"
# --unblock answers the release phase's prompt; the branch is main so the
# deploy step (branches = [ "main" ]) runs too.
"$treekite" run "$out" --root examples --branch main --unblock

echo "--- treekite pipeline --parent: against the pipeline just run, every target is unchanged"
"$treekite" pipeline --root examples -A ci.pipeline --out "$out.next" --parent "$out/drvmap.json"
cat "$out.next/summary.md"

echo "--- treekite explain: why apps/hello's step is skipped now"
"$treekite" explain "$out.next" apps/hello | grep '^status:'

echo "--- git status --porcelain (empty: the run left the checkout clean)"
git status --porcelain
