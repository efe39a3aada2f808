#!/usr/bin/env python3
"""Two builds of wharf side by side: `wharf run` of the same chain of N local steps
(`true`), each build in turn, alternating which goes first, a fresh WHARF_HOME each time.
Prints each build's median (min-max) and the ratio of the second to the first: a change's
effect measured in one run, with the machine's drift shared by both.

Usage: bench/versus.py OLD_WHARF NEW_WHARF [N] [ROUNDS]   (default 1000 steps, 15 rounds)
"""
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from harness import int_arg, timed, write_chain


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    builds = [Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()]
    n, rounds = int_arg(3, 1000), int_arg(4, 15)
    tmp = Path(tempfile.mkdtemp(prefix="wharf-versus-"))
    try:
        dag = write_chain(tmp, n)

        def run(build):
            home = tmp / "home"
            shutil.rmtree(home, ignore_errors=True)
            env = dict(os.environ, SHELL="/bin/sh", WHARF_HOME=str(home))
            return timed([str(build), "run", str(dag)], env=env, cwd=tmp)[0] * 1000

        times = {b: [] for b in builds}
        for b in builds:
            run(b)
        for r in range(rounds):
            for b in (builds if r % 2 == 0 else builds[::-1]):
                times[b].append(run(b))
        medians = [statistics.median(times[b]) for b in builds]
        for b, m in zip(builds, medians):
            print(f"{b}: {m:.1f} ms ({min(times[b]):.1f}-{max(times[b]):.1f})")
        print(f"{n} chained steps, {rounds} rounds: second/first {medians[1] / medians[0]:.3f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
