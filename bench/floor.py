#!/usr/bin/env python3
"""What the Docker engine itself takes per container step and per exec, over the raw API:
the floor under the container cases of bench/run.py. Prints the median of each phase.

  container: create, start, wait (until not running), remove, for `true` in IMAGE; and,
             apart from the sum, when the container's `die` event came after its start
             returned (the daemon sends it before it releases the container's network
             and file system, which the wait includes)
  exec:      create, start (attached, until the output ends), inspect, for `true` in a
             running container

Usage: bench/floor.py [N]   (N rounds of each, default 20)
"""
import json
import os
import socket
import statistics
import sys
import threading
import time
import urllib.parse

from rawapi import UnixConnection, call

IMAGE = "wharf-test/base:latest"
SOCKET = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://")
LABEL = {"wharf.bench": "floor"}


def timed(phases, name, fn):
    start = time.perf_counter()
    out = fn()
    phases.setdefault(name, []).append((time.perf_counter() - start) * 1000)
    return out


def attached_start(exec_id):
    """Starts an exec attached and reads its output until it ends."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(SOCKET)
    body = json.dumps({"Detach": False, "Tty": False})
    s.sendall((f"POST /v1.41/exec/{exec_id}/start HTTP/1.1\r\nHost: docker\r\n"
               f"Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
               f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
    while s.recv(65536):
        pass
    s.close()


def die_event(cid, since, seen):
    """Follows the events of container `cid` from `since` (the daemon replays what came
    before the request) until its `die`; notes when that came."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(SOCKET)
    filters = urllib.parse.quote(json.dumps({"container": [cid], "event": ["die"]}))
    s.sendall(f"GET /v1.41/events?since={since}&filters={filters} HTTP/1.1\r\nHost: docker\r\n\r\n".encode())
    received = b""
    while b'"die"' not in received:
        chunk = s.recv(65536)
        if not chunk:
            s.close()
            return
        received += chunk
    seen.append(time.perf_counter())
    s.close()


def report(what, phases):
    total = sum(statistics.median(v) for v in phases.values())
    parts = ", ".join(f"{k} {statistics.median(v):.1f} ms" for k, v in phases.items())
    print(f"{what}: {parts} (sum {total:.1f} ms)")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    conn = UnixConnection(SOCKET)
    phases, died = {}, []
    for _ in range(n):
        cid = timed(phases, "create", lambda: call(conn, "POST", "/v1.41/containers/create",
                                                   {"Image": IMAGE, "Cmd": ["true"], "Labels": LABEL})["Id"])
        seen = []
        follower = threading.Thread(target=die_event, args=(cid, int(time.time()) - 1, seen))
        follower.start()
        timed(phases, "start", lambda: call(conn, "POST", f"/v1.41/containers/{cid}/start"))
        started = time.perf_counter()
        timed(phases, "wait", lambda: call(conn, "POST", f"/v1.41/containers/{cid}/wait"))
        follower.join(10)
        if seen:
            died.append((seen[0] - started) * 1000)
        timed(phases, "remove", lambda: call(conn, "DELETE", f"/v1.41/containers/{cid}?force=1"))
    report("container step", phases)
    if died:
        print(f"  its `die` event came {statistics.median(died):.1f} ms after the start returned "
              f"(the wait: {statistics.median(phases['wait']):.1f} ms)")

    cid = call(conn, "POST", "/v1.41/containers/create", {"Image": IMAGE, "Cmd": ["sleep", "600"], "Labels": LABEL})["Id"]
    try:
        call(conn, "POST", f"/v1.41/containers/{cid}/start")
        phases = {}
        for _ in range(n):
            eid = timed(phases, "create", lambda: call(conn, "POST", f"/v1.41/containers/{cid}/exec",
                                                       {"Cmd": ["true"], "AttachStdout": True, "AttachStderr": True})["Id"])
            timed(phases, "start", lambda: attached_start(eid))
            timed(phases, "inspect", lambda: call(conn, "GET", f"/v1.41/exec/{eid}/json"))
        report("exec", phases)
    finally:
        call(conn, "DELETE", f"/v1.41/containers/{cid}?force=1")


if __name__ == "__main__":
    main()
