"""The host's control channel: the bed in the guest asks the host to stop and start the kube-apiserver.

The apiserver runs on the host (docs/e2e.md says why); scenario 7 stops it for 30 s. The host serves two
requests on 127.0.0.1 (forwarded into the guest by lab/run.py --forward): `POST /apiserver/stop` and
`POST /apiserver/start` (answered once the apiserver is ready again). Nothing else is served.
"""

from __future__ import annotations

import http.client
import json
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Protocol


class Switchable(Protocol):
    """What the control channel drives: tests/apiserver/harness.ControlPlane."""

    def stop_apiserver(self) -> None:
        """Stop the apiserver (etcd keeps its data)."""

    def start_apiserver(self) -> None:
        """Start it again and wait until it is ready."""


class _ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_POST(self) -> None:
        """Stop or start the apiserver; 200 with the seconds it took, 404 for anything else."""
        assert isinstance(self.server, ControlServer)
        plane = self.server.plane
        actions = {"/apiserver/stop": plane.stop_apiserver, "/apiserver/start": plane.start_apiserver}
        action = actions.get(self.path)
        if action is None:
            self.send_error(404)
            return
        started = time.monotonic()
        with self.server.lock:
            action()
        body = json.dumps({"seconds": round(time.monotonic() - started, 3)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: the console is the lab's."""


class ControlServer(socketserver.ThreadingTCPServer):
    """The control channel on 127.0.0.1 (port 0: any free port; `port` says which)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, plane: Switchable, *, port: int = 0) -> None:
        self.plane = plane
        self.lock = threading.Lock()  # one action at a time
        super().__init__(("127.0.0.1", port), _ControlHandler)
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)

    @property
    def port(self) -> int:
        """The port it listens on."""
        port: int = self.server_address[1]
        return port

    def __enter__(self) -> ControlServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=10)


def ask(*, host: str, port: int, action: str, timeout: float = 120.0) -> float:
    """POST one action (`stop` or `start`) to the host's control channel; the seconds the host took."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("POST", f"/apiserver/{action}")
        response = connection.getresponse()
        body = response.read().decode()
    finally:
        connection.close()
    if response.status != 200:
        raise AssertionError(f"control channel: {action} answered {response.status}: {body}")
    seconds: float = json.loads(body)["seconds"]
    return seconds
