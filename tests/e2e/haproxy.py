"""haproxy in front of the NodePorts, as seed 002 shows it: round robin, a stick table on the client address,
health checks (a Local Service's healthCheckNodePort; for Cluster ones the agent's /healthz, as cloud load
balancers probe kube-proxy's port 10256).

`config` and `parse_stat` are pure; `Haproxy` runs Debian's haproxy in the load balancer's namespace with
that configuration and reads its state through the stats socket.
"""

from __future__ import annotations

import contextlib
import csv
import io
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.kernel.netlab import Netns

CHECK_INTERVAL = 1.0  # seconds between two checks of one server
FALL = 2  # failed checks that take a server out
RISE = 2  # passed checks that bring it back
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Backend:
    """One frontend port and the nodes behind it."""

    name: str
    port: int  # where haproxy listens
    node_port: int  # where it sends the connections, on every node
    check_port: int  # what it probes on every node
    check_path: str  # answered 200 when the node should get traffic


def config(*, address: str, backends: Sequence[Backend], nodes: Sequence[tuple[str, str]], stats_socket: Path) -> str:
    """haproxy.cfg: a `listen` section per backend over every (name, address) node, in TCP mode."""
    lines = [
        "global",
        "    maxconn 2000",
        f"    stats socket {stats_socket} mode 600 level admin",
        "defaults",
        "    mode tcp",
        "    timeout connect 2s",
        "    timeout client 30s",
        "    timeout server 30s",
        "    timeout check 1s",
        "    retries 2",
    ]
    for backend in backends:
        lines += [
            f"listen {backend.name}",
            f"    bind {address}:{backend.port}",
            "    balance roundrobin",
            "    stick-table type ip size 100k expire 3h",
            "    stick on src",
            f"    option httpchk GET {backend.check_path}",
            "    http-check expect status 200",
        ]
        lines += [
            f"    server {name} {ip}:{backend.node_port} check port {backend.check_port}"
            f" inter {int(CHECK_INTERVAL * 1000)}ms fall {FALL} rise {RISE}"
            for name, ip in nodes
        ]
    return "\n".join(lines) + "\n"


def parse_stat(text: str) -> dict[tuple[str, str], str]:
    """`show stat` CSV as (proxy, server) → status (`UP`, `DOWN`, `UP 1/2`, ...), servers only."""
    rows = csv.DictReader(io.StringIO(text.removeprefix("# ")))
    return {
        (row["pxname"], row["svname"]): row["status"]
        for row in rows
        if row.get("svname") not in {"FRONTEND", "BACKEND", None}
    }


def is_up(status: str) -> bool:
    """Whether haproxy sends new connections to a server in this state (`UP`, or `UP` going down)."""
    return status.split(maxsplit=1)[0] == "UP" if status else False


class Haproxy:
    """haproxy running in `netns` (None: the caller's) with `config_text`, its output in `log`; `close` stops it.

    `stats_socket` must be the path `config_text` names (`config(stats_socket=...)`): it is how we read its state.
    """

    def __init__(self, netns: Netns | None, *, config_text: str, stats_socket: Path, workdir: Path, log: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.stats_socket = stats_socket
        self.config_file = workdir / "haproxy.cfg"
        self.config_file.write_text(config_text)
        with log.open("ab") as sink:
            inside = [] if netns is None else ["ip", "netns", "exec", netns.name]
            self._process = subprocess.Popen(
                [*inside, "haproxy", "-db", "-f", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"haproxy exited {self._process.returncode}: see {log}")
            with contextlib.suppress(OSError):
                self.command("show info")
                return
            time.sleep(0.2)
        self.close()
        raise RuntimeError(f"haproxy's stats socket did not answer within {START_TIMEOUT:.0f} s: see {log}")

    def command(self, line: str) -> str:
        """Send one command to the stats socket; its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5.0)
            sock.connect(str(self.stats_socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers(self) -> dict[tuple[str, str], str]:
        """Every server's status, by (listen section, node name)."""
        return parse_stat(self.command("show stat"))

    def close(self) -> None:
        """Stop haproxy (SIGTERM, then SIGKILL)."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=STOP_TIMEOUT)
