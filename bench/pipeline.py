#!/usr/bin/env python3
"""Benchmarks `treekite pipeline` against evaluating the targets alone.

    bench/pipeline.py [--sizes 1000,5000,10000] [--runs 5] [--seed 1] ...

For each size N it writes a synthetic depot (bench/gen-depot.py N SEED) and
times, in the same depot and the same read-write mode:

- baseline: `nix-instantiate --eval --strict --json --read-write-mode
  -A ci.drvPaths` (the targets' drvPaths, nothing else);
- treekite: `treekite pipeline -A ci.pipeline --out DIR` end to end
  (evaluation, .drv graph, batching, writing the chunk files).

Each is measured in two store states, in turn (A B A B ..., the order
swapped every run):

- cold: the depot's .drv files are not in the store yet (each run passes a
  new `salt`, which changes every derivation), so evaluation writes them;
- warm: the same salt again, so they are all there already.

Wall time and peak RSS come from the operating system's accounting of the
finished process (os.wait4): the peak is that of the largest single process
among the command and the children it waited for (nix-instantiate under
treekite). Medians of --runs runs are printed, and the median of the
per-run ratios treekite / baseline. Every builder in the depot fails, so a
build would fail the run; "built" counts new `tkbench-` outputs in the
store after each run (it must stay 0).

Finally bkcheck (../shared/buildkite/bkcheck.py) checks all the chunk files
of the largest size's last pipeline together.

Needs: python3, Nix (nix-instantiate), cargo (to build treekite in release
mode unless --treekite is given). Each cold run adds the depot's .drv files
to the store (about 1.7 per target); nothing is garbage-collected.
"""

import argparse
import glob
import os
import secrets
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def store_dir():
    return os.environ.get("NIX_STORE_DIR") or "/nix/store"


def built_outputs():
    """Store entries of the bench depot that are not .drv files: outputs."""
    with os.scandir(store_dir()) as entries:
        return sum(1 for e in entries if "-tkbench-" in e.name and not e.name.endswith(".drv"))


def run(argv, cwd, stdout_path):
    """Runs argv; returns (wall seconds, peak RSS in KiB, exit status)."""
    with open(stdout_path, "wb") as out, open(stdout_path + ".err", "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss, proc.returncode


class Measure:
    def __init__(self, name, argv, cwd, out):
        self.name, self.argv, self.cwd, self.out = name, argv, cwd, out
        self.results = {}  # state -> [(wall, rss, built)]

    def once(self, salt, state=None):
        before = built_outputs()
        wall, rss, code = run(self.argv + ["--argstr", "salt", salt], self.cwd, self.out)
        # What a run wrote goes to disk now, not during the next run.
        os.sync()
        built = built_outputs() - before
        if code != 0:
            with open(self.out + ".err", errors="replace") as f:
                tail = f.read()[-2000:]
            sys.exit(f"bench: {self.name} failed (exit {code}) with salt {salt}:\n{tail}")
        if state:
            self.results.setdefault(state, []).append((wall, rss, built))
        return wall


def fmt_mib(kib):
    return f"{kib / 1024:.0f} MiB"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,5000,10000", help="comma-separated target counts")
    parser.add_argument("--runs", type=int, default=5, help="counted runs per size, state and command (default 5)")
    parser.add_argument("--seed", default="1", help="depot seed: its structure and derivations (default 1)")
    parser.add_argument("--toolchains", type=int, default=1, help="toolchain chains in the depot (default 1, shared)")
    parser.add_argument("--work", default="/tmp/treekite-bench", help="where depots and pipelines go")
    parser.add_argument("--treekite", help="treekite binary (default: build this repository in release mode)")
    parser.add_argument("--bkcheck", help="bkcheck.py (default: ../shared/buildkite/bkcheck.py, looked for above the repository)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if not sizes or args.runs < 1:
        parser.error("give at least one size and one run")

    os.environ["NIX_CONFIG"] = "substituters =\n" + os.environ.get("NIX_CONFIG", "")
    treekite = args.treekite
    if not treekite:
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=REPO, check=True)
        treekite = os.path.join(REPO, "target", "release", "treekite")
    treekite = os.path.abspath(treekite)
    token = secrets.token_hex(4)  # new salts on every invocation: cold means cold
    os.makedirs(args.work, exist_ok=True)
    print(f"bench: treekite {treekite}, seed {args.seed}, {args.toolchains} toolchain chain(s), "
          f"{args.runs} runs, salts bench-{token}-*, {os.cpu_count()} CPUs", file=sys.stderr)

    rows = []
    last_out = None
    for n in sizes:
        depot = os.path.join(args.work, f"depot-{n}")
        out = os.path.join(args.work, f"pipeline-{n}")
        subprocess.run([sys.executable, os.path.join(HERE, "gen-depot.py"), str(n), args.seed, depot,
                        "--toolchains", str(args.toolchains), "--treekite", REPO], check=True)
        base = Measure("drvPaths alone", ["nix-instantiate", "--eval", "--strict", "--json", "--read-write-mode",
                                          "-A", "ci.drvPaths"], depot, os.path.join(args.work, f"drvpaths-{n}.json"))
        tk = Measure("treekite pipeline", [treekite, "pipeline", "--root", ".", "-A", "ci.pipeline", "--out", out],
                     depot, os.path.join(args.work, f"treekite-{n}.log"))
        # Warm-up: the depot's files in the page cache, Nix's and treekite's
        # binaries loaded; not counted.
        base.once(f"bench-{token}-{n}-warmup")
        tk.once(f"bench-{token}-{n}-warmup")
        for r in range(args.runs):
            pair = [(base, f"bench-{token}-{n}-{r}-base"), (tk, f"bench-{token}-{n}-{r}-treekite")]
            if r % 2:
                pair.reverse()
            for state in ("cold", "warm"):
                for measure, salt in pair:
                    measure.once(salt, state)
            print(f"bench: {n} targets, run {r + 1}/{args.runs}: "
                  + ", ".join(f"{m.name} {s} {m.results[s][-1][0]:.2f} s" for s in ("cold", "warm") for m in (base, tk)),
                  file=sys.stderr)
        with open(tk.out + ".err", errors="replace") as f:
            summary = [line.strip() for line in f if line.startswith("treekite:")]
        for state in ("cold", "warm"):
            b, t = base.results[state], tk.results[state]
            rows.append({
                "n": n, "state": state,
                "base_wall": statistics.median(x[0] for x in b), "base_rss": statistics.median(x[1] for x in b),
                "tk_wall": statistics.median(x[0] for x in t), "tk_rss": max(x[1] for x in t),
                "ratio": statistics.median(tx[0] / bx[0] for tx, bx in zip(t, b)),
                "built": sum(x[2] for x in b) + sum(x[2] for x in t),
            })
        rows[-1]["summary"] = summary
        last_out = out

    print()
    print(f"treekite pipeline vs evaluating the targets' drvPaths alone ({os.cpu_count()} CPUs, "
          f"medians of {args.runs} runs, seed {args.seed}, {args.toolchains} toolchain chain(s))")
    print()
    print("| targets | .drv files | drvPaths alone | treekite pipeline | ratio | peak RSS (max) | derivations built |")
    print("|--------:|------------|---------------:|------------------:|------:|---------------:|------------------:|")
    for row in rows:
        print(f"| {row['n']:,} | {'written (cold)' if row['state'] == 'cold' else 'present (warm)'} "
              f"| {row['base_wall']:.2f} s | {row['tk_wall']:.2f} s | {row['ratio']:.2f}x "
              f"| {fmt_mib(row['tk_rss'])} | {row['built']} |")
    print()
    print("ratio: median over runs of treekite / drvPaths alone, each pair run back to back;")
    print("peak RSS: the largest process (treekite or its nix-instantiate), worst run; "
          "drvPaths alone peaks at " + ", ".join(f"{fmt_mib(r['base_rss'])} ({r['n']:,}, {r['state']})" for r in rows) + ".")
    for line in rows[-1].get("summary", []):
        print(f"{sizes[-1]:,} targets: {line}")

    bkcheck = args.bkcheck or next(
        (p for p in (os.path.join(REPO, "..", "shared", "buildkite", "bkcheck.py"),
                     os.path.join(REPO, "..", "..", "shared", "buildkite", "bkcheck.py")) if os.path.isfile(p)), None)
    if not bkcheck:
        print("bkcheck: not found (pass --bkcheck PATH)")
        return 1
    files = sorted(glob.glob(os.path.join(last_out, "*-chunk-*.json")))
    check = subprocess.run([sys.executable, bkcheck] + files, capture_output=True, text=True)
    verdict = "passes" if check.returncode == 0 else f"FAILS (exit {check.returncode})"
    print(f"bkcheck on the {sizes[-1]:,}-target pipeline ({len(files)} chunk files checked together): {verdict}")
    for line in (check.stdout + check.stderr).strip().splitlines()[-5:]:
        print(f"  {line}")
    return 0 if check.returncode == 0 and all(r["built"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
