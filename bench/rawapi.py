#!/usr/bin/env python3
"""The floor for container steps: the least a client can do per container over the
Docker socket. For each of N containers: create (Cmd `true`), start, wait, remove; one
after another, nothing else (no logs, no attach, no pull check).

Usage: bench/rawapi.py IMAGE N
"""
import http.client
import json
import os
import socket
import sys


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def call(conn, method, url, body=None):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, url, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status >= 300:
        raise SystemExit(f"{method} {url}: {resp.status} {data!r}")
    return json.loads(data) if data else None


def main():
    image, n = sys.argv[1], int(sys.argv[2])
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    conn = UnixConnection(host.removeprefix("unix://"))
    for _ in range(n):
        created = call(conn, "POST", "/v1.41/containers/create", {"Image": image, "Cmd": ["true"]})
        cid = created["Id"]
        call(conn, "POST", f"/v1.41/containers/{cid}/start")
        call(conn, "POST", f"/v1.41/containers/{cid}/wait")
        call(conn, "DELETE", f"/v1.41/containers/{cid}?force=1")


if __name__ == "__main__":
    main()
