"""What the benchmarks share: timing a command (wall time and peak RSS) and comparing two
commands in alternating rounds after a warm-up."""
import os
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHARF = ROOT / "target" / "release" / "wharf"


def timed(cmd, env=None, cwd=None):
    """Wall time (s) and peak RSS (KiB) of one command; exits if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd} failed")
    return elapsed, usage.ru_maxrss


def compare(name, a, b, rounds):
    """a, b: (label, thunk) pairs, thunk returning (seconds, KiB). One warm-up each, then
    `rounds` rounds, alternating which goes first. Returns a result row."""
    a[1](), b[1]()
    ta, tb, rss = [], [], []
    for i in range(rounds):
        order = [(a, ta), (b, tb)] if i % 2 == 0 else [(b, tb), (a, ta)]
        for (_, thunk), out in order:
            t, r = thunk()
            out.append(t)
            if out is ta:
                rss.append(r)
    return name, a[0], ta, b[0], tb, max(rss)


def fmt(ts):
    return f"{statistics.median(ts) * 1000:.1f} ms ({min(ts) * 1000:.1f}-{max(ts) * 1000:.1f})"


def table(rows):
    """Prints result rows as a Markdown table with the ratio wharf/baseline."""
    print("| case | wharf | baseline | ratio | wharf peak RSS |")
    print("|---|---|---|---|---|")
    for name, la, ta, lb, tb, rss in rows:
        ratio = statistics.median(ta) / statistics.median(tb)
        print(f"| {name} | {la}: {fmt(ta)} | {lb}: {fmt(tb)} | {ratio:.2f}x | {rss / 1024:.1f} MiB |")
