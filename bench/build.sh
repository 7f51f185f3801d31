#!/usr/bin/env bash
# How much `treekite build` adds to Nix on the common case of a target step
# whose output is already built: `treekite build --drv D` against a bare
# `nix-store --realise D`, run alternately, medians compared.
#
# Usage: bench/build.sh [RUNS]      (RUNS defaults to 30, at least 20)
# Needs: cargo, Nix (nix-instantiate, nix-store), python3, /bin/sh.
set -euo pipefail

runs=${1:-30}
if (( runs < 20 )); then
  echo "bench/build.sh: use at least 20 runs (got $runs)" >&2
  exit 2
fi

# No binary cache here: without this Nix waits on an unreachable one.
export NIX_CONFIG=$'substituters =\n'

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
echo "building treekite (release)..." >&2
cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
treekite=$repo/target/release/treekite

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# treekite's default links go here, outside any work tree, gone afterwards.
export TREEKITE_GCROOTS=$work/gcroots

# A small target, unique to this run so it is really built once, here.
drv=$(nix-instantiate --expr "derivation {
  name = \"treekite-bench\";
  system = builtins.currentSystem;
  builder = \"/bin/sh\";
  args = [ \"-c\" \"echo bench > \$out\" ];
  nonce = \"$(date +%s%N)-$$\";
}" 2>/dev/null)
out=$("$treekite" build --drv "$drv" 2>/dev/null)
echo "target: $drv -> $out (built and rooted)" >&2

# For the `needsOutput` case: an out-link inside a git checkout, which
# costs treekite a `git` call or two to keep the link out of `git status`.
checkout=$work/checkout
git init -q "$checkout"

python3 - "$runs" "$treekite" "$drv" "$checkout" <<'PY'
import statistics
import subprocess
import sys
import time

runs, treekite, drv, checkout = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
commands = {
    "treekite build --drv D": [treekite, "build", "--drv", drv],
    "nix-store --realise D": ["nix-store", "--realise", drv],
    "  ... --out-link in git": [treekite, "build", "--drv", drv, "--out-link", f"{checkout}/result"],
}


def once(argv):
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


for argv in commands.values():  # warm-up: page cache, Nix's database
    once(argv)
times = {name: [] for name in commands}
for _ in range(runs):  # interleaved, so drift hits both alike
    for name, argv in commands.items():
        times[name].append(once(argv))

medians = {name: statistics.median(ts) for name, ts in times.items()}
for name, ts in times.items():
    print(f"{name:26} median {medians[name] * 1000:7.2f} ms"
          f"  (min {min(ts) * 1000:.2f}, max {max(ts) * 1000:.2f}, {runs} runs)")
tk, nix, linked = medians.values()
print(f"ratio treekite / nix-store: {tk / nix:.3f}  (goal <= 1.10)")
print(f"ratio with --out-link in a git checkout / nix-store: {linked / nix:.3f}")
PY
