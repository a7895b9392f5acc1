"""haproxy as the bed configures it: the seed's stickiness and checks, and its state read back (real haproxy)."""

from __future__ import annotations

import contextlib
import shutil
import socketserver
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.apiserver.harness import free_port
from tests.e2e.haproxy import Backend, Haproxy, config, is_up, parse_stat

BACKEND = Backend("my-service", 80, 30090, 32000, "/")


def test_each_backend_balances_round_robin_and_sticks_on_the_client_address() -> None:
    """Seed 002: roundrobin, a stick table of client IPs, stick on src, HTTP checks on the check port."""
    text = config(address="192.0.2.2", backends=[BACKEND], nodes=[("node1", "192.0.2.11")], stats_socket=Path("/s"))
    section = text.split("listen my-service\n", 1)[1].splitlines()
    assert [line.strip() for line in section[:6]] == [
        "bind 192.0.2.2:80",
        "balance roundrobin",
        "stick-table type ip size 100k expire 3h",
        "stick on src",
        "option httpchk GET /",
        "http-check expect status 200",
    ]
    assert section[6].split()[:5] == ["server", "node1", "192.0.2.11:30090", "check", "port"]
    assert section[6].split()[5] == "32000"


@pytest.mark.parametrize(
    ("status", "up"),
    [("UP", True), ("UP 1/2", True), ("DOWN", False), ("DOWN 1/2", False), ("MAINT", False), ("", False)],
)
def test_a_server_takes_new_connections_only_while_up(status: str, up: bool) -> None:
    """`UP 1/2` (failing, not yet out) still takes traffic; `DOWN 1/2` (recovering) not yet."""
    assert is_up(status) is up


def test_stat_lines_are_read_by_section_and_server() -> None:
    """FRONTEND and BACKEND lines are not servers."""
    text = "# pxname,svname,status,weight\nweb,FRONTEND,OPEN,\nweb,node1,UP,1\nweb,node2,DOWN,1\nweb,BACKEND,UP,1\n"
    assert parse_stat(text) == {("web", "node1"): "UP", ("web", "node2"): "DOWN"}


class _Check(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        assert isinstance(self.server, _CheckServer)
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class _CheckServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, address: tuple[str, int], status: int) -> None:
        self.status = status
        super().__init__(address, _Check)


@contextlib.contextmanager
def check_server(host: str, port: int, status: int) -> Iterator[None]:
    server = _CheckServer((host, port), status)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed (lab/setup.sh installs it)")
def test_haproxy_takes_out_a_node_whose_health_check_answers_503(tmp_path: Path) -> None:
    """Real haproxy on loopback: the node answering 200 stays UP, the one answering 503 goes DOWN."""
    check_port, listen_port = free_port(), free_port()
    backend = Backend("web", listen_port, free_port(), check_port, "/")
    text = config(
        address="127.0.0.1",
        backends=[backend],
        nodes=[("good", "127.0.0.2"), ("bad", "127.0.0.3")],
        stats_socket=tmp_path / "stats.sock",
    )
    socket_path = tmp_path / "stats.sock"
    with check_server("127.0.0.2", check_port, 200), check_server("127.0.0.3", check_port, 503):
        haproxy = Haproxy(
            None, config_text=text, stats_socket=socket_path, workdir=tmp_path, log=tmp_path / "haproxy.log"
        )
        try:
            deadline = time.monotonic() + 15
            states: dict[tuple[str, str], str] = {}
            while time.monotonic() < deadline:
                states = haproxy.servers()
                if states.get(("web", "bad"), "").startswith("DOWN"):
                    break
                time.sleep(0.2)
        finally:
            haproxy.close()
    assert is_up(states[("web", "good")]), states
    assert states[("web", "bad")] == "DOWN", states
