#!/usr/bin/env python3
"""wharf's container steps against the docker CLI, side by side in one run.

  chain-20   20 chained container steps (`true`, autoRemove) vs a shell loop of
             `docker run --rm IMAGE true` x20 (target: wharf at most 1.0x the loop)
  exec-50    50 chained steps `true` in a DAG-level container vs a shell script that
             starts a container, runs `docker exec C true` x50 and removes it (container
             start and removal on both sides; target: at most 1.0x)

Usage: bench/docker.py [--rounds N]   (after `cargo build --release` and scripts/test-images)
Each round runs both, alternating which goes first, after one warm-up of each.
"""
import argparse
import os
import tempfile
from pathlib import Path

from harness import ROOT, WHARF, compare, table, timed

IMAGE = "wharf-test/base:latest"


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
        shared = tmp / "shared.yaml"
        shared.write_text(f"container:\n  image: {IMAGE}\nsteps:\n" + "".join(f"  - name: s{i}\n    command: \"true\"\n" for i in range(50)))
        exec_loop = ["sh", "-c", f"c=$(docker run -d {IMAGE} sleep 3600); i=0; while [ $i -lt 50 ]; do docker exec $c true; i=$((i+1)); done; docker rm -f $c >/dev/null"]
        rows = [
            compare(
                "20 chained container steps",
                ("wharf run", lambda: timed([str(WHARF), "run", str(dag)], env=env, cwd=tmp)),
                ("`docker run --rm` x20", lambda: timed(loop, env=env)),
                args.rounds,
            ),
            compare(
                "50 exec steps in a DAG-level container",
                ("wharf run", lambda: timed([str(WHARF), "run", str(shared)], env=env, cwd=tmp)),
                ("`docker exec` x50", lambda: timed(exec_loop, env=env)),
                args.rounds,
            ),
        ]
    table(rows)


if __name__ == "__main__":
    main()
