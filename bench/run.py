#!/usr/bin/env python3
"""wharf side by side with the shell, the docker CLI and the raw Docker API, in one run.

Every comparison alternates wharf (A) and its baseline (B) in the same run, after one
warm-up of each, flipping which goes first each round; it reports medians, min-max, the
ratio A/B and wharf's peak RSS. The results go to BENCHMARKS.md (and stdout).

Usage:
  cargo build --release && scripts/test-images
  python3 bench/run.py [--rounds N] [--only CASE ...] [--out FILE]

Cases: local-200, local-1000, local-10000, local-1000-floor, spawn-floor-1000, raw-floor-1000,
local-1000-rawfloor, parallel-local-10000, logs-1000x10k, queue-api, queue-cli, ssh-20, one-step, validate-2000, validate-10000,
status-20k, history-20k, containers-20, rawapi-20, exec-50,
parallel-16, logs-200mb, swarm-20, swarm-parallel-16 (on a single-node swarm made for them
when the engine is in none, and left after), and `server` (idle RSS, the DAG list with 500 DAGs, a 200 MB
step log streamed to a client). Everything a case creates (WHARF_HOME, DAG files, containers)
is removed before the script ends.
"""
import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import queue as queue_bench
import ssh as ssh_bench
from harness import ROOT, WHARF, rawfloor, spawnfloor, timed, true_loop, true_steps

IMAGE = "wharf-test/base:latest"
LOG_BYTES = 200_000_000
# 80-byte lines of text.
LOG_CMD = f"yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678 | head -c {LOG_BYTES}"


class Case:
    def __init__(self, key, title, target, a, b=None, rss_limit=None, min_rounds=0):
        self.key, self.title, self.target = key, title, target
        self.a, self.b, self.rss_limit = a, b, rss_limit
        # Cases of a fraction of a second, whose ratio moves most with the machine's noise,
        # run at least this many rounds.
        self.min_rounds = min_rounds


def run_case(case, rounds):
    """Returns (A times, B times or None, A peak RSS in KiB)."""
    a_label, a = case.a
    if case.b is None:
        a()
        ta, rss = [], []
        for _ in range(rounds):
            t, r = a()
            ta.append(t)
            rss.append(r)
        return ta, None, max(rss)
    _, b = case.b
    a(), b()
    ta, tb, rss = [], [], []
    for i in range(rounds):
        order = [(a, ta), (b, tb)] if i % 2 == 0 else [(b, tb), (a, ta)]
        for thunk, out in order:
            t, r = thunk()
            out.append(t)
            if out is ta:
                rss.append(r)
    return ta, tb, max(rss)


def ms(ts):
    return f"{statistics.median(ts) * 1000:.1f} ms ({min(ts) * 1000:.1f}-{max(ts) * 1000:.1f})"


def machine():
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    docker = subprocess.run(
        ["docker", "version", "--format", "Docker Engine {{.Server.Version}} (API {{.Server.APIVersion}})"],
        capture_output=True, text=True,
    ).stdout.strip()
    driver = subprocess.run(
        ["docker", "info", "--format", "{{.Driver}}"], capture_output=True, text=True
    ).stdout.strip()
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return (
        f"{platform.system()} {platform.release()} {platform.machine()}, {cpu}, "
        f"{os.cpu_count()} cores{mem}; {docker}, storage driver {driver}; wharf {commit}"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = ap.parse_args()
    if not WHARF.exists():
        sys.exit("build first: cargo build --release")
    (ROOT / "target").mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=ROOT / "target", prefix="bench-"))
    label = f"wharf-bench-{os.getpid()}"
    try:
        rows = run_all(tmp, label, args)
        server = None
        if not args.only or "server" in args.only:
            print("server: running ...", file=sys.stderr)
            server = server_case(tmp, args.rounds)
    finally:
        leftovers = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True
        ).stdout.split()
        if leftovers:
            subprocess.run(["docker", "rm", "-f", *leftovers], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    write(rows, args, server)


def run_all(tmp, label, args):
    def home():
        """A fresh WHARF_HOME for one invocation (the 200 MB logs do not pile up)."""
        h = Path(tempfile.mkdtemp(dir=tmp, prefix="home-"))
        return dict(os.environ, WHARF_HOME=str(h), SHELL="/bin/sh")

    def wharf(*argv):
        def thunk():
            env = home()
            try:
                return timed([str(WHARF), *argv], env=env, cwd=tmp)
            finally:
                shutil.rmtree(env["WHARF_HOME"], ignore_errors=True)
        return thunk

    def wharf_logs(path, lines):
        """wharf run, then every line checked to be in the step logs."""
        def thunk():
            env = home()
            try:
                result = timed([str(WHARF), "run", path], env=env, cwd=tmp)
                found = sum(1 for f in Path(env["WHARF_HOME"], "logs").rglob("*.stdout")
                            for _ in f.open("rb"))
                if found != lines:
                    raise SystemExit(f"the logs hold {found} lines, not {lines}")
                return result
            finally:
                shutil.rmtree(env["WHARF_HOME"], ignore_errors=True)
        return thunk

    def floor(build, n):
        """A floor program (bench/spawnfloor or bench/rawfloor.c, built on first use)
        spawning n processes."""
        return lambda: timed([str(build()), str(n)])

    def shell(script):
        return lambda: timed(["sh", "-c", script])

    def dag(name, text):
        path = tmp / f"{name}.yaml"
        path.write_text(text)
        return str(path)

    lbl = f"--label {label}"
    container_step = (
        "  - name: s{i}\n    command: \"true\"\n    executor:\n      type: docker\n"
        "      config:\n        image: " + IMAGE + "\n        autoRemove: true\n"
    )
    def chain_file(path, n):
        lines = ["type: graph", "env:", "  - GREETING=hello", "steps:"]
        for i in range(n):
            lines += [f"  - name: step_{i}", f"    command: echo ${{GREETING}} {i}",
                      "    retryPolicy: {limit: 2, intervalSec: 1}"]
            if i:
                lines.append(f"    depends: [step_{i - 1}]")
        path.write_text("\n".join(lines) + "\n")
        return path

    big = chain_file(tmp / "big.yaml", 2000)
    huge = chain_file(tmp / "huge.yaml", 10_000)
    many_runs = store_with_runs(tmp, 20_000) if (not args.only or {"status-20k", "history-20k"} & set(args.only)) else None

    def in_store(*argv):
        return lambda: timed([str(WHARF), *argv], env=dict(os.environ, WHARF_HOME=str(many_runs)), cwd=tmp)

    sshd = ssh_bench.Sshd(tmp) if (not args.only or "ssh-20" in args.only) else None
    cases = [
        Case("local-200", "200 chained local steps `true`", "<= 1.2x",
             ("wharf run", wharf("run", dag("local", "steps:\n" + true_steps(200)))),
             ("shell loop of `sh -c true` x200", shell(true_loop(200))),
             rss_limit=20, min_rounds=31),
        Case("local-1000", "1000 chained local steps `true`", "<= 1.2x",
             ("wharf run", wharf("run", dag("local1k", "steps:\n" + true_steps(1000)))),
             ("shell loop of `sh -c true` x1000", shell(true_loop(1000))),
             min_rounds=15),
        Case("local-10000", "10 000 chained local steps `true`", "<= 1.2x, RSS < 30 MB",
             ("wharf run", wharf("run", dag("local10k", "steps:\n" + true_steps(10_000)))),
             ("shell loop of `sh -c true` x10000", shell(true_loop(10000))),
             rss_limit=30),
        Case("local-1000-floor", "1000 chained local steps `true` against the floor program spawning the same 1000 `sh -c true`: what wharf adds to a step", "report",
             ("wharf run", wharf("run", str(tmp / "local1k.yaml"))),
             ("bench/spawnfloor 1000", floor(spawnfloor, 1000)), min_rounds=15),
        Case("spawn-floor-1000", "the floor under a local step: `sh -c true` x1000 spawned with piped output and waited for by a one-thread tokio program (bench/spawnfloor), nothing else", "report",
             ("bench/spawnfloor 1000", floor(spawnfloor, 1000)),
             ("shell loop of `sh -c true` x1000", shell(true_loop(1000))),
             min_rounds=15),
        Case("raw-floor-1000", "the kernel's floor under a local step: `sh -c true` x1000 started as wharf starts a step (clone, a process group, piped output read through epoll, a pidfd) by a C program that does nothing else (bench/rawfloor.c)", "report",
             ("bench/rawfloor 1000", floor(rawfloor, 1000)),
             ("shell loop of `sh -c true` x1000", shell(true_loop(1000))),
             min_rounds=15),
        Case("local-1000-rawfloor", "1000 chained local steps `true` against the kernel's floor (bench/rawfloor.c): what wharf's own work costs a step", "report",
             ("wharf run", wharf("run", str(tmp / "local1k.yaml"))),
             ("bench/rawfloor 1000", floor(rawfloor, 1000)), min_rounds=15),
        Case("parallel-local-10000", "10 000 independent local steps `true`, `maxActiveSteps: 16`", "<= 1.3x, RSS < 60 MB",
             ("wharf run", wharf("run", dag("par10k", "type: graph\nmaxActiveSteps: 16\nsteps:\n" + true_steps(10_000)))),
             ("`sh -c true` x10000 via `xargs -P 16`", shell("seq 10000 | xargs -P 16 -I{} sh -c true")),
             rss_limit=60),
        Case("logs-1000x10k", "1000 chained local steps each printing 10 000 lines (`seq 10000`), all in the logs", "<= 1.2x",
             ("wharf run", wharf_logs(dag("loud1000", "steps:\n" + "".join(f"  - name: s{i}\n    command: seq 10000\n" for i in range(1000))), 10_000_000)),
             ("shell loop of `sh -c 'seq 10000'` > file x1000", shell(f"d=$(mktemp -d -p {tmp}); i=0; while [ $i -lt 1000 ]; do sh -c 'seq 10000' > $d/$i.stdout 2> $d/$i.stderr; i=$((i+1)); done; rm -rf $d"))),
        Case("subdag-parallel-100", "`parallel` over 100 items of a one-step local sub-DAG (`shell: sh`: the same `sh -c` calls), `maxConcurrent: 10`", "<= 2.0x",
             ("wharf run", wharf("run", dag("fanout", "steps:\n  - name: fan\n    call: one\n    parallel:\n      items: [" + ", ".join(str(i) for i in range(100)) + "]\n      maxConcurrent: 10\n---\nname: one\nshell: sh\nsteps:\n  - command: \"true\"\n"))),
             ("`sh -c true` x100 via `xargs -P 10`", shell("seq 100 | xargs -P 10 -I{} sh -c true"))),
        Case("subdag-one", "a step that calls a one-step sub-DAG", "overhead < 20 ms",
             ("wharf run (call)", wharf("run", dag("caller", "steps:\n  - name: go\n    call: one\n---\nname: one\nsteps:\n  - command: \"true\"\n"))),
             ("wharf run (the step itself)", wharf("run", dag("direct", "steps:\n  - command: \"true\"\n")))),
        Case("queue-api", "200 runs of a one-step DAG enqueued through the API (`maxActiveRuns: 4`), until all ended", "<= 1.5x",
             ("POST /dags/q/enqueue x200", queue_bench.api(tmp, 200)),
             ("`wharf run` x200 via `xargs -P 4`", queue_bench.xargs(tmp, 200))),
        Case("queue-cli", "200 runs of a one-step DAG enqueued with `wharf enqueue` in a shell loop (`maxActiveRuns: 4`), until all ended", "report",
             ("`wharf enqueue` x200", queue_bench.cli(tmp, 200)),
             ("`wharf run` x200 via `xargs -P 4`", queue_bench.xargs(tmp, 200))),
        Case("ssh-20", "20 chained ssh steps `true` on a real sshd on loopback (one connection per run)", "<= 1.0x",
             ("wharf run", wharf("run", dag("ssh", sshd.dag(20)) if sshd else "")),
             ("`ssh -i KEY host true` x20", shell(sshd.loop(20) if sshd else "true"))),
        Case("one-step", "`wharf run` of a one-step local DAG", "< 30 ms",
             ("wharf run", wharf("run", dag("one", "steps:\n  - name: only\n    command: \"true\"\n")))),
        Case("validate-2000", "`wharf validate` of a 2000-step file", "< 50 ms",
             ("wharf validate", wharf("validate", str(big)))),
        Case("validate-10000", "`wharf validate` of a 10 000-step file", "< 100 ms",
             ("wharf validate", wharf("validate", str(huge)))),
        Case("status-20k", "`wharf status` of a DAG with 20 000 runs in the store", "< 50 ms",
             ("wharf status", in_store("status", "one"))),
        Case("history-20k", "`wharf history` of a DAG with 20 000 runs in the store", "< 50 ms",
             ("wharf history", in_store("history", "one"))),
        Case("containers-20", "20 chained container steps (`true`, autoRemove)", "<= 0.8x",
             ("wharf run", wharf("run", dag("containers", "steps:\n" + "".join(container_step.format(i=i) for i in range(20))))),
             ("`docker run --rm` x20", shell(f"i=0; while [ $i -lt 20 ]; do docker run --rm {lbl} {IMAGE} true; i=$((i+1)); done"))),
        Case("rawapi-20", "20 chained container steps vs the raw API (the floor)", "report",
             ("wharf run", wharf("run", dag("containers-raw", "steps:\n" + "".join(container_step.format(i=i) for i in range(20))))),
             ("create/start/wait/remove x20 over the socket", lambda: timed([sys.executable, str(ROOT / "bench" / "rawapi.py"), IMAGE, "20"]))),
        Case("exec-50", "50 chained steps `true` in a DAG-level container", "<= 0.7x",
             ("wharf run", wharf("run", dag("shared", f"container:\n  image: {IMAGE}\nsteps:\n" + true_steps(50)))),
             ("start C, `docker exec C true` x50, remove C", shell(f"c=$(docker run -d {lbl} {IMAGE} sleep 3600); i=0; while [ $i -lt 50 ]; do docker exec $c true; i=$((i+1)); done; docker rm -f $c >/dev/null"))),
        Case("parallel-16", "16 parallel container steps (`type: graph`)", "<= 1.1x",
             ("wharf run", wharf("run", dag("parallel", "type: graph\nsteps:\n" + "".join(container_step.format(i=i) for i in range(16))))),
             ("16 `docker run --rm` via `xargs -P 16`", shell(f"seq 16 | xargs -P 16 -I{{}} docker run --rm {lbl} {IMAGE} true"))),
        Case("logs-200mb", "a container writing 200 MB to stdout", "bounded RSS < 50 MB",
             ("wharf run", wharf("run", dag("logs", f"steps:\n  - name: loud\n    command: [sh, -c, \"{LOG_CMD}\"]\n    executor:\n      type: docker\n      config:\n        image: {IMAGE}\n        autoRemove: true\n"))),
             ("`docker run -d` + `docker logs -f` > /dev/null", shell(f"c=$(docker run -d {lbl} {IMAGE} sh -c '{LOG_CMD}'); docker logs -f $c >/dev/null 2>&1; docker rm -f $c >/dev/null")),
             rss_limit=50),
    ]
    swarm_step = (
        "  - name: s{i}\n    command: \"true\"\n    executor:\n      type: docker\n"
        "      config:\n        image: " + IMAGE + "\n        backend: swarm\n"
    )
    job = (f"docker service create -q --mode replicated-job --restart-condition none "
           f"--label {label} --container-label {label} {IMAGE} true")
    swarm_cases = [
        Case("swarm-20", "20 chained container steps (`true`) as Swarm jobs", "<= 1.0x",
             ("wharf run", wharf("run", dag("swarm", "steps:\n" + "".join(swarm_step.format(i=i) for i in range(20))))),
             ("`docker service create --mode replicated-job` (waits for the job) + `docker service rm` x20",
              shell(f"i=0; while [ $i -lt 20 ]; do s=$({job}); docker service rm $s >/dev/null; i=$((i+1)); done"))),
        Case("swarm-parallel-16", "16 parallel container steps as Swarm jobs (`type: graph`)", "<= 1.1x",
             ("wharf run", wharf("run", dag("swarm-parallel", "type: graph\nsteps:\n" + "".join(swarm_step.format(i=i) for i in range(16))))),
             ("16 of those at once via `xargs -P 16`",
              shell(f"seq 16 | xargs -P 16 -I{{}} sh -c 's=$({job}); docker service rm $s >/dev/null'"))),
    ]
    rows = []
    try:
        run_cases(cases, args, rows)
        if not args.only or any(c.key in args.only for c in swarm_cases):
            with single_node_swarm(label):
                run_cases(swarm_cases, args, rows)
    finally:
        if sshd:
            sshd.stop()
    return rows


class single_node_swarm:
    """A swarm on the running engine for the Swarm cases: made when it is in none, left
    after (with the bridge network it made), and the jobs' leftovers removed."""

    def __init__(self, label):
        self.label, self.made, self.gwbridge = label, False, False

    def __enter__(self):
        out = subprocess.run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"],
                             capture_output=True, text=True).stdout.strip()
        self.gwbridge = bool(subprocess.run(["docker", "network", "ls", "-q", "--filter", "name=^docker_gwbridge$"],
                                            capture_output=True, text=True).stdout.strip())
        if out != "active":
            subprocess.run(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"],
                           capture_output=True, check=True)
            self.made = True
        return self

    def __exit__(self, *exc):
        services = subprocess.run(["docker", "service", "ls", "-q", "--filter", f"label={self.label}"],
                                  capture_output=True, text=True).stdout.split()
        if services:
            subprocess.run(["docker", "service", "rm", *services], capture_output=True)
        if self.made:
            subprocess.run(["docker", "swarm", "leave", "--force"], capture_output=True)
            if not self.gwbridge:
                subprocess.run(["docker", "network", "rm", "docker_gwbridge"], capture_output=True)
        return False


def store_with_runs(tmp, n):
    """A wharf home whose store holds `n` finished runs of the DAG `one` (one real run, the
    rest written directly: running them would take longer than the measure)."""
    home = tmp / "runs-home"
    one = tmp / "one.yaml"
    one.write_text("steps:\n  - name: a\n    command: echo a\n")
    subprocess.run([str(WHARF), "run", str(one)], env=dict(os.environ, WHARF_HOME=str(home)),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    import sqlite3
    db = sqlite3.connect(home / "wharf.db")
    now = int(time.time() * 1000)
    db.executemany(
        "INSERT INTO runs (dag, run_id, file, status, params, created_at, started_at, finished_at, log_dir, trigger)"
        " VALUES ('one', ?, ?, 'succeeded', '[]', ?, ?, ?, ?, 'schedule')",
        [(f"r{i}", str(one), now - i * 60_000, now - i * 60_000, now - i * 60_000 + 1500, str(home / "logs" / f"r{i}"))
         for i in range(1, n)],
    )
    db.commit()
    db.close()
    return home


def run_cases(cases, args, rows):
    for case in cases:
        if args.only and case.key not in args.only:
            continue
        rounds = max(args.rounds, case.min_rounds)
        print(f"{case.key}: running {rounds} rounds ...", file=sys.stderr)
        started = time.perf_counter()
        ta, tb, rss = run_case(case, rounds)
        rows.append((case, ta, tb, rss))
        print(f"{case.key}: done in {time.perf_counter() - started:.0f}s", file=sys.stderr)


def server_case(tmp, rounds):
    """`wharf server`: idle RSS, the DAG list page with 500 DAGs, a 200 MB log streamed."""
    import json
    import socket
    import urllib.request

    dags = tmp / "server-dags"
    dags.mkdir()
    for i in range(500):
        (dags / f"d{i}.yaml").write_text(
            f"description: DAG {i}\ntags: [t{i % 7}]\nschedule: \"*/5 * * * *\"\nsteps:\n  - name: a\n    command: echo {i}\n  - name: b\n    command: echo b\n"
        )
    (dags / "big.yaml").write_text(f"steps:\n  - name: loud\n    script: |\n      {LOG_CMD}\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tmp / "server-home"
    # 20 000 finished runs of those DAGs in the store (made directly: running them would
    # take longer than the measure).
    subprocess.run([str(WHARF), "history", "d0"], env=dict(os.environ, WHARF_HOME=str(home)),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import sqlite3
    db = sqlite3.connect(home / "wharf.db")
    now = int(time.time() * 1000)
    statuses = ["succeeded"] * 8 + ["failed", "aborted"]
    db.executemany(
        "INSERT INTO runs (dag, run_id, file, status, params, created_at, started_at, finished_at, log_dir, trigger)"
        " VALUES (?, ?, ?, ?, '[]', ?, ?, ?, ?, 'schedule')",
        [(f"d{i % 500}", f"r{i}", str(dags / f"d{i % 500}.yaml"), statuses[i % 10],
          now - i * 60_000, now - i * 60_000, now - i * 60_000 + 1500, str(home / "logs" / f"r{i}"))
         for i in range(20_000)],
    )
    db.commit()
    db.close()
    proc = subprocess.Popen(
        [str(WHARF), "server", "--port", str(port), "--dags", str(dags)],
        env=dict(os.environ, WHARF_HOME=str(home)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"

    def status_kib(field):
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
        return 0

    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/api/v2/health").read()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.5)
        idle = status_kib("VmRSS")

        def fetch(url):
            start = time.perf_counter()
            body = urllib.request.urlopen(url).read()
            return time.perf_counter() - start, len(body)

        fetch(base + "/")
        page = [fetch(base + "/")[0] for _ in range(rounds * 2)]
        fetch(base + "/dashboard")
        dashboard = [fetch(base + "/dashboard?period=30d")[0] for _ in range(rounds * 2)]
        fetch(base + "/runs")
        runs = [fetch(base + "/runs?status=failed&page=3")[0] for _ in range(rounds * 2)]
        req = urllib.request.Request(base + "/api/v2/dags/big/start", data=json.dumps({"dagRunId": "big"}).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req).read()
        for _ in range(600):
            d = json.loads(urllib.request.urlopen(base + "/api/v2/dag-runs/big/big").read())
            if d["dagRunDetails"]["statusLabel"] != "running":
                break
            time.sleep(0.1)
        streams = [fetch(base + "/dags/big/runs/big/steps/loud/events") for _ in range(rounds)]
        peak = status_kib("VmHWM")
    finally:
        proc.terminate()
        proc.wait()
    return idle, page, dashboard, runs, streams, peak


def write(rows, args, server=None):
    lines = [
        "# Benchmarks",
        "",
        f"Machine: {machine()}.",
        "",
        f"Each comparison alternates wharf and its baseline in one run ({args.rounds} rounds, or the case's minimum, after a warm-up of each,",
        "flipping which goes first). Times are medians with min-max; the ratio is wharf's median over the",
        "baseline's. Peak RSS is wharf's (the largest of its rounds). Reproduce a row with",
        "`cargo build --release && scripts/test-images && python3 bench/run.py --only CASE`.",
        "",
        "| case | target | wharf | baseline | ratio | wharf peak RSS | CASE |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, ta, tb, rss in rows:
        rss_mb = rss / 1024
        rss_text = f"{rss_mb:.1f} MiB" + (f" (limit {case.rss_limit} MB)" if case.rss_limit else "")
        if tb is None:
            lines.append(f"| {case.title} | {case.target} | {case.a[0]}: {ms(ta)} | - | - | {rss_text} | `{case.key}` |")
        else:
            ratio = statistics.median(ta) / statistics.median(tb)
            lines.append(
                f"| {case.title} | {case.target} | {case.a[0]}: {ms(ta)} | {case.b[0]}: {ms(tb)} | {ratio:.2f}x | {rss_text} | `{case.key}` |"
            )
    if server:
        idle, page, dashboard, runs, streams, peak = server
        size = streams[0][1]
        lines += [
            "",
            "`wharf server` (`CASE` `server`): a folder of 500 DAGs (two steps, a schedule each), 20 000 runs of them in the store, and one DAG",
            "whose step writes 200 MB to stdout.",
            "",
            "| measure | target | result |",
            "|---|---|---|",
            f"| idle RSS after start | < 30 MB | {idle / 1024:.1f} MiB |",
            f"| the DAG list page (`GET /`) with 500 DAGs | < 100 ms | {ms(page)} |",
            f"| the dashboard (`GET /dashboard?period=30d`), 500 DAGs, 20 000 runs | < 100 ms | {ms(dashboard)} |",
            f"| all runs (`GET /runs?status=failed&page=3`), 500 DAGs, 20 000 runs | < 100 ms | {ms(runs)} |",
            f"| a 200 MB step log streamed as Server-Sent Events ({size / 1e6:.0f} MB sent) | not held in memory | {ms([t for t, _ in streams])} |",
            f"| the server's peak RSS through all of it | - | {peak / 1024:.1f} MiB |",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.only:
        Path(args.out).write_text(text)
        print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
