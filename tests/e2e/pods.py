"""What runs in a pod: an HTTP server answering with the pod's name and the client address it saw, with a
`/sleep?seconds=N` path for long requests (at most 30 s) and `/hold`, answered when the test releases the pod's
held requests (`PodServers.release`, at most 30 s), and netlab's UDP echo server.

Threads of the test process, as netlab's servers are (a Python start costs about a second under emulation).
A pod stops as a well-behaved application does at the end of its grace period: it stops accepting, lets the
requests in flight finish (bounded), then closes.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

from tests.kernel.netlab import Netns, UdpEchoServer, start_serving, stop_serving

MAX_SLEEP = 30.0
HANDLER_TIMEOUT = 40.0


class _PodHTTPServer(socketserver.ThreadingTCPServer):
    """Dual-stack threading TCP server (socketserver: http.server's would resolve its own name)."""

    address_family = socket.AF_INET6
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, port: int, identity: str) -> None:
        self.identity = identity
        self.in_flight = 0
        self.long_requests = 0  # /sleep and /hold requests received
        self.lock = threading.Lock()
        self.released = threading.Event()  # answers the /hold requests
        super().__init__(("::", port), _PodHandler)

    def server_bind(self) -> None:
        """Accept IPv4 too (as mapped addresses)."""
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def handle_error(self, request: object, client_address: object) -> None:
        """Stay quiet: a client that gave up is not the pod's error."""


class _PodHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    timeout = HANDLER_TIMEOUT

    def do_GET(self) -> None:
        """Answer with the pod's name (after sleeping for /sleep); the client address in a header."""
        assert isinstance(self.server, _PodHTTPServer)
        server = self.server
        url = urllib.parse.urlsplit(self.path)
        with server.lock:
            server.in_flight += 1
            if url.path in {"/sleep", "/hold"}:
                server.long_requests += 1
        try:
            if url.path == "/sleep":
                seconds = float(urllib.parse.parse_qs(url.query).get("seconds", ["1"])[0])
                time.sleep(min(max(seconds, 0.0), MAX_SLEEP))
            elif url.path == "/hold":
                server.released.wait(MAX_SLEEP)
            body = f"{server.identity}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Client-Address", self.client_address[0].removeprefix("::ffff:"))
            self.end_headers()
            self.wfile.write(body)
        finally:
            with server.lock:
                server.in_flight -= 1

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: the console is the test's."""


class PodServers:
    """A pod's HTTP server on `http_port` and, with `udp_port`, its UDP echo server."""

    def __init__(self, netns: Netns, *, identity: str, http_port: int | None, udp_port: int | None) -> None:
        self.identity = identity
        self._http: _PodHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._udp: UdpEchoServer | None = None
        if http_port is not None:
            with netns.entered():
                self._http = _PodHTTPServer(http_port, identity)
            self._thread = start_serving(self._http, name=f"pod-{identity}")
        if udp_port is not None:
            self._udp = UdpEchoServer(netns, identity=identity, port=udp_port)

    @property
    def in_flight(self) -> int:
        """HTTP requests being answered now."""
        return 0 if self._http is None else self._http.in_flight

    @property
    def long_requests(self) -> int:
        """/sleep and /hold requests received so far."""
        return 0 if self._http is None else self._http.long_requests

    def release(self) -> None:
        """Answer the /hold requests (and any later one at once)."""
        if self._http is not None:
            self._http.released.set()

    def close(self, *, grace: float = 0.0) -> float:
        """Stop accepting, wait up to `grace` seconds for requests in flight, close; the seconds waited."""
        started = time.monotonic()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._http is not None and self._thread is not None:
            stop_serving(self._http, self._thread)
            while self._http.in_flight and time.monotonic() - started < grace:
                time.sleep(0.05)
            self._http = None
        return time.monotonic() - started
