#!/usr/bin/env python3
"""wharf's engine against the shell, side by side in one run.

Cases (targets from the engine's issue):
  chain-200   200 chained local steps `true`  vs  `sh -c true` 200 times in a shell loop
              (target: wharf at most 1.5x the loop; peak RSS under 20 MB)
  one-step    `wharf run` of a one-step DAG (target: under 30 ms)

Usage: bench/engine.py [--rounds N]   (after `cargo build --release`)
Each round runs A then B (alternating which goes first), after one warm-up of each.
Prints medians, min-max, the ratio and peak RSS, as a Markdown table.
"""
import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHARF = ROOT / "target" / "release" / "wharf"


def timed(cmd, env=None, cwd=None):
    """Wall time (s) and peak RSS (KiB) of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{cmd} exited {code}")
    return elapsed, usage.ru_maxrss


def compare(name, a, b, rounds):
    """a, b: (label, thunk) pairs; returns a result row."""
    a[1](), b[1]()  # warm-up
    ta, tb, rss = [], [], []
    for i in range(rounds):
        order = [(a, ta), (b, tb)] if i % 2 == 0 else [(b, tb), (a, ta)]
        for (label, thunk), out in order:
            t, r = thunk()
            out.append(t)
            if out is ta:
                rss.append(r)
    return name, a[0], ta, b[0], tb, max(rss)


def fmt(ts):
    return f"{statistics.median(ts) * 1000:.1f} ms ({min(ts) * 1000:.1f}-{max(ts) * 1000:.1f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    (ROOT / "target").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "target") as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, WHARF_HOME=str(tmp / "home"), SHELL="/bin/sh")
        chain = tmp / "chain.yaml"
        chain.write_text("steps:\n" + "".join(f"  - name: s{i}\n    command: \"true\"\n" for i in range(200)))
        one = tmp / "one.yaml"
        one.write_text("steps:\n  - name: only\n    command: \"true\"\n")
        loop = ["sh", "-c", "i=0; while [ $i -lt 200 ]; do sh -c true; i=$((i+1)); done"]
        rows = [
            compare(
                "200 chained local steps",
                ("wharf run", lambda: timed([str(WHARF), "run", str(chain)], env=env, cwd=tmp)),
                ("shell loop of `sh -c true` x200", lambda: timed(loop, env=env)),
                args.rounds,
            ),
            compare(
                "one-step DAG",
                ("wharf run", lambda: timed([str(WHARF), "run", str(one)], env=env, cwd=tmp)),
                ("`sh -c true`", lambda: timed(["sh", "-c", "true"], env=env)),
                args.rounds,
            ),
        ]
    print("| case | wharf | baseline | ratio | wharf peak RSS |")
    print("|---|---|---|---|---|")
    for name, la, ta, lb, tb, rss in rows:
        ratio = statistics.median(ta) / statistics.median(tb)
        print(f"| {name} | {la}: {fmt(ta)} | {lb}: {fmt(tb)} | {ratio:.2f}x | {rss / 1024:.1f} MiB |")


if __name__ == "__main__":
    main()
