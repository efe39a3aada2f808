#!/usr/bin/env python3
"""Where the time of a chained local step goes, phase by phase, from the kernel's own
tracepoints (`perf record`, run as root): the shell loop, the kernel's floor
(bench/rawfloor.c), the floor program (bench/spawnfloor) and `wharf run` each spawn N
`sh -c true` one after the other, and
for each step it takes the median of

  fork -> exec       the child from its creation until its program is loaded (a
                     posix_spawn child first resets every signal's handler)
  exec -> exit       the program itself
  exit -> woken      from the child's exit until the parent's wait (epoll_wait, wait4)
                     returns
  woken -> next      from then until the next child's creation: the parent's own work
                     between two steps (for wharf: the step's end, the next step's start)

Usage: bench/phases.py [N] [ROUNDS]   (default 1000 steps, 3 rounds; WHARF_BIN for
another build). Tracing adds a few microseconds to each phase alike.
"""
import os
import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from harness import WHARF, int_arg, rawfloor, spawnfloor, true_loop, write_chain

EVENTS = ["sched:sched_process_fork", "sched:sched_process_exec", "sched:sched_process_exit",
          "syscalls:sys_exit_epoll_wait", "syscalls:sys_exit_wait4"]
LINE = re.compile(r"\s*(\d+)/(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)")


def trace(argv, env, data):
    subprocess.run(["perf", "record", "-q", "-o", data, *sum((["-e", e] for e in EVENTS), []),
                    "--", *argv], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = subprocess.run(["perf", "script", "-i", data, "-F", "pid,tid,time,event,trace"],
                         capture_output=True, text=True, check=True).stdout
    return [(int(m[1]), int(m[2]), float(m[3]), m[4], m[5])
            for m in map(LINE.match, out.splitlines()) if m]


def phases(events):
    """Per step (a child of the traced process that ran a program): each phase in us."""
    parent = events[0][0]
    execs = {pid: t for pid, _, t, e, _ in events if e.endswith("exec")}
    out = {"fork -> exec": [], "exec -> exit": [], "exit -> woken": [], "woken -> next": []}
    exited = woken = None
    for pid, tid, t, e, f in events:
        if e.endswith("fork") and pid == parent:
            child = int(re.search(r"child_pid=(\d+)", f)[1])
            if woken is not None:
                out["woken -> next"].append(t - woken)
            forked, exited, woken = (t, child), None, None
        elif e.endswith("exec") and pid != parent and pid in execs:
            out["fork -> exec"].append(t - forked[0])
        elif e.endswith("exit") and pid != parent and pid in execs and exited is None:
            out["exec -> exit"].append(t - execs[pid])
            exited = t
        elif e.startswith("syscalls") and tid == parent and exited is not None \
                and woken is None and not f.rstrip().endswith("0x0"):
            woken = t
            out["exit -> woken"].append(t - exited)
    return {k: [v * 1e6 for v in vs] for k, vs in out.items()}


def main():
    n, rounds = int_arg(1, 1000), int_arg(2, 3)
    tmp = Path(tempfile.mkdtemp(prefix="wharf-phases-"))
    try:
        dag = write_chain(tmp, n)
        env = dict(os.environ, SHELL="/bin/sh")
        cases = {
            "shell loop": (["sh", "-c", true_loop(n)], env),
            "kernel's floor (bench/rawfloor.c)": ([str(rawfloor()), str(n)], env),
            "floor (bench/spawnfloor)": ([str(spawnfloor()), str(n)], env),
            "wharf run": ([str(WHARF), "run", str(dag)], dict(env, WHARF_HOME=str(tmp / "home"))),
        }
        results = {name: {} for name in cases}
        for _ in range(rounds):
            for name, (argv, case_env) in cases.items():
                shutil.rmtree(tmp / "home", ignore_errors=True)
                for phase, values in phases(trace(argv, case_env, str(tmp / "perf.data"))).items():
                    results[name].setdefault(phase, []).extend(values)
        names = list(next(iter(results.values())))
        print(f"{n} chained `sh -c true`, {rounds} rounds: median us per step\n")
        print("| | " + " | ".join(names) + " | sum |")
        print("|---|" + "---|" * (len(names) + 1))
        for name, by_phase in results.items():
            medians = [statistics.median(by_phase[p]) if by_phase[p] else 0.0 for p in names]
            print(f"| {name} | " + " | ".join(f"{m:.0f}" for m in medians) + f" | {sum(medians):.0f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
