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
import tempfile
from pathlib import Path

from harness import ROOT, WHARF, compare, table, timed


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
    table(rows)


if __name__ == "__main__":
    main()
