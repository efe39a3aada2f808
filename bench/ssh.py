"""A real sshd (Debian's openssh-server) on a loopback port for the ssh case: its own host
key, a key for root, a known_hosts file. `Sshd(tmp)` starts it; `.stop()` stops it."""
import os
import socket
import subprocess
import time
from pathlib import Path

from harness import true_steps


class Sshd:
    def __init__(self, tmp):
        self.dir = Path(tmp) / "sshd"
        self.dir.mkdir(exist_ok=True)
        os.makedirs("/run/sshd", exist_ok=True)
        for name in ("host_key", "user_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.dir / name)], check=True)
        (self.dir / "authorized_keys").write_text((self.dir / "user_key.pub").read_text())
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        (self.dir / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.dir}/host_key\n"
            f"AuthorizedKeysFile {self.dir}/authorized_keys\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\nLogLevel ERROR\n"
        )
        host = " ".join((self.dir / "host_key.pub").read_text().split()[:2])
        self.known = self.dir / "known_hosts"
        self.known.write_text(f"[127.0.0.1]:{self.port} {host}\n")
        self.key = self.dir / "user_key"
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(self.dir / "sshd_config")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("sshd did not start")

    def loop(self, n):
        """The baseline: `ssh -i KEY host true`, n times one after the other."""
        ssh = (f"ssh -i {self.key} -p {self.port} -o UserKnownHostsFile={self.known} "
               "-o BatchMode=yes root@127.0.0.1 true")
        return f"i=0; while [ $i -lt {n} ]; do {ssh}; i=$((i+1)); done"

    def dag(self, n):
        steps = true_steps(n)
        return (f"ssh:\n  user: root\n  host: 127.0.0.1\n  port: {self.port}\n  key: {self.key}\n"
                f"  knownHostFile: {self.known}\nsteps:\n{steps}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
