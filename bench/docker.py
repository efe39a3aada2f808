#!/usr/bin/env python3
"""wharf's container steps against the docker CLI, side by side in one run.

  chain-20   20 chained container steps (`true`, autoRemove) vs a shell loop of
             `docker run --rm IMAGE true` x20 (target: wharf at most 1.0x the loop)

Usage: bench/docker.py [--rounds N]   (after `cargo build --release` and scripts/test-images)
Each round runs both, alternating which goes first, after one warm-up of each.
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
IMAGE = "wharf-test/base:latest"


def timed(cmd, env=None, cwd=None):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd} failed")
    return elapsed, usage.ru_maxrss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    (ROOT / "target").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "target") as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, WHARF_HOME=str(tmp / "home"))
        dag = tmp / "containers.yaml"
        step = "  - name: s{i}\n    command: \"true\"\n    executor:\n      type: docker\n      config:\n        image: " + IMAGE + "\n        autoRemove: true\n"
        dag.write_text("steps:\n" + "".join(step.format(i=i) for i in range(20)))
        loop = ["sh", "-c", f"i=0; while [ $i -lt 20 ]; do docker run --rm {IMAGE} true; i=$((i+1)); done"]
        a = lambda: timed([str(WHARF), "run", str(dag)], env=env, cwd=tmp)
        b = lambda: timed(loop, env=env)
        a(), b()
        ta, tb, rss = [], [], []
        for i in range(args.rounds):
            for which in ((a, b) if i % 2 == 0 else (b, a)):
                t, r = which()
                (ta if which is a else tb).append(t)
                if which is a:
                    rss.append(r)
    fmt = lambda ts: f"{statistics.median(ts) * 1000:.0f} ms ({min(ts) * 1000:.0f}-{max(ts) * 1000:.0f})"
    print("| case | wharf | baseline | ratio | wharf peak RSS |")
    print("|---|---|---|---|---|")
    print(f"| 20 chained container steps | wharf run: {fmt(ta)} | `docker run --rm` x20: {fmt(tb)} | "
          f"{statistics.median(ta) / statistics.median(tb):.2f}x | {max(rss) / 1024:.1f} MiB |")


if __name__ == "__main__":
    main()
