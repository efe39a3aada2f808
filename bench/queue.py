"""Runs enqueued on a queue of 4 places, each one local step, until all have ended.

Two ways to enqueue, as users do: `wharf enqueue` once per run from a shell loop, and
`POST /api/v2/dags/{name}/enqueue` from one HTTP client to `wharf server` (started before
the clock runs, stopped after). Each thunk returns (wall seconds, peak RSS KiB of the
`wharf` processes it could see: the server's for the API, 0 for the CLI loop).
"""
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from harness import WHARF, timed

QUEUED_DAG = "maxActiveRuns: 4\nsteps:\n  - name: one\n    command: \"true\"\n"
FREE_DAG = "steps:\n  - name: one\n    command: \"true\"\n"


def _home(tmp):
    h = Path(tempfile.mkdtemp(dir=tmp, prefix="home-"))
    return h, dict(os.environ, WHARF_HOME=str(h), SHELL="/bin/sh")


def cli(tmp, n):
    dag = tmp / "q.yaml"
    dag.write_text(QUEUED_DAG)
    script = (
        f"i=0; while [ $i -lt {n} ]; do {WHARF} enqueue {dag} >/dev/null 2>&1; i=$((i+1)); done; "
        f"while [ -n \"$({WHARF} history q --status queued,running -n 1 2>/dev/null)\" ]; do sleep 0.01; done"
    )

    def thunk():
        home, env = _home(tmp)
        try:
            t, _ = timed(["sh", "-c", script], env=env, cwd=tmp)
            ended = subprocess.run([str(WHARF), "history", "q", "--status", "succeeded", "-n", str(n + 1)],
                                   env=env, capture_output=True, text=True).stdout.count("\n")
            if ended != n:
                raise SystemExit(f"queue-cli: {ended} of {n} runs succeeded")
            return t, 0
        finally:
            shutil.rmtree(home, ignore_errors=True)

    return thunk


def api(tmp, n):
    dags = tmp / "queue-dags"
    dags.mkdir(exist_ok=True)
    (dags / "q.yaml").write_text(QUEUED_DAG)

    def thunk():
        home, env = _home(tmp)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen([str(WHARF), "server", "--port", str(port), "--dags", str(dags)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            conn = None
            for _ in range(200):
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port)
                    conn.request("GET", "/api/v2/health")
                    conn.getresponse().read()
                    break
                except OSError:
                    time.sleep(0.02)

            def call(method, path, body=None):
                conn.request(method, path, body=json.dumps(body) if body is not None else None,
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                if r.status != 200:
                    raise SystemExit(f"queue-api: {method} {path}: {r.status} {data[:200]!r}")
                return json.loads(data)

            start = time.perf_counter()
            for _ in range(n):
                call("POST", "/api/v2/dags/q/enqueue", {})
            while True:
                s = call("GET", "/api/v2/queues")["summary"]
                if s["totalRunning"] == 0 and s["totalQueued"] == 0:
                    break
                time.sleep(0.01)
            elapsed = time.perf_counter() - start
            ok = sum(1 for r in call("GET", "/api/v2/dag-runs/q")["dagRuns"] if r["statusLabel"] == "succeeded")
            if ok != n:
                raise SystemExit(f"queue-api: {ok} of {n} runs succeeded")
            peak = 0
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM"):
                    peak = int(line.split()[1])
            return elapsed, peak
        finally:
            proc.terminate()
            proc.wait()
            shutil.rmtree(home, ignore_errors=True)

    return thunk


def xargs(tmp, n, parallel=4):
    dag = tmp / "free.yaml"
    dag.write_text(FREE_DAG)

    def thunk():
        home, env = _home(tmp)
        try:
            return timed(["sh", "-c", f"seq {n} | xargs -P {parallel} -I{{}} {WHARF} run {dag}"], env=env, cwd=tmp)
        finally:
            shutil.rmtree(home, ignore_errors=True)

    return thunk
