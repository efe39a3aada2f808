"""Timing one command: its wall time and peak RSS.

The peak RSS comes from GNU time (`/usr/bin/time`, Debian's `time` package): the
`ru_maxrss` that `wait4` reports for a child of this Python process also counts the
pages of the forked Python before it ran `exec`, about 14 MB.
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Another build (an earlier commit's, to compare before and after) with WHARF_BIN=PATH.
WHARF = Path(os.environ.get("WHARF_BIN", ROOT / "target" / "release" / "wharf"))
GNU_TIME = "/usr/bin/time"


def timed(cmd, env=None, cwd=None):
    """Wall time (s) and peak RSS (KiB) of one command; exits if it fails."""
    if not os.access(GNU_TIME, os.X_OK):
        raise SystemExit("the benchmarks need GNU time: apt-get install time")
    with tempfile.NamedTemporaryFile("r") as rss:
        start = time.perf_counter()
        proc = subprocess.run(
            [GNU_TIME, "-f", "%M", "-o", rss.name, *cmd],
            env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{cmd} failed")
        kib = int(rss.read().strip().splitlines()[-1])
    return elapsed, kib


def true_steps(n):
    """The items of a `steps:` list: n steps `true`, named s0 to s(n-1)."""
    return "".join(f"  - name: s{i}\n    command: \"true\"\n" for i in range(n))


def true_loop(n):
    """The baseline of the local chains: `sh -c true` n times from a shell loop."""
    return f"i=0; while [ $i -lt {n} ]; do sh -c true; i=$((i+1)); done"


def write_chain(folder, n):
    """A DAG file of n chained local steps `true` in folder; its path."""
    dag = Path(folder) / "chain.yaml"
    dag.write_text("steps:\n" + true_steps(n))
    return dag


def spawnfloor():
    """bench/spawnfloor, the floor program under a local step: built on first use, outside
    wharf's workspace; its path."""
    exe = ROOT / "target" / "spawnfloor" / "release" / "spawnfloor"
    if not exe.exists():
        subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path",
                        str(ROOT / "bench" / "spawnfloor" / "Cargo.toml"),
                        "--target-dir", str(ROOT / "target" / "spawnfloor")], check=True)
    return exe


def rawfloor():
    """bench/rawfloor.c, the kernel's floor under a local step (no runtime, no other work):
    built on first use with the machine's C compiler; its path."""
    exe = ROOT / "target" / "rawfloor"
    source = ROOT / "bench" / "rawfloor.c"
    if not exe.exists() or exe.stat().st_mtime < source.stat().st_mtime:
        exe.parent.mkdir(exist_ok=True)
        subprocess.run(["cc", "-O2", "-o", str(exe), str(source)], check=True)
    return exe


def int_arg(i, default):
    """The i-th command-line argument as a number, or default."""
    return int(sys.argv[i]) if len(sys.argv) > i else default
