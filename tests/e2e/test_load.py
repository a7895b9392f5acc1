"""The bed's one-connection-per-source client, against a real HTTP server on loopback."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.e2e.load import MAX_CONNECTS, Connect, Flow, Load, connect_each_here
from tests.kernel.netlab import Netns


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        """Answer as a bed pod does: its name as the body, the client address in a header."""
        body = b"pod-a\n"
        self.send_response(200 if self.path == "/" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Client-Address", self.client_address[0])
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # as the bed's pods: a full backlog would drop SYNs and time the test, not the client


@pytest.fixture
def server_port() -> Iterator[int]:
    """A pod-like HTTP server on 127.0.0.1; its port."""
    server = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


class _Here(Netns):
    """The test's own namespace: a flow from it sends from loopback without switching namespace."""

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Stay where the thread is."""
        yield


def flow_to(name: str, port: int) -> Flow:
    """A flow from this namespace to a loopback port."""
    return Flow(name, _Here("here"), "127.0.0.1", port)


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_each_connect_is_answered_with_the_pod_and_the_address_it_saw(server_port: int) -> None:
    """300 connects from 3 loopback sources, 20 in flight: each names the pod and the source the pod saw."""
    sources = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    connects = [Connect(f"c{i}", sources[i % 3], "127.0.0.1", server_port) for i in range(300)]
    outcomes = connect_each_here(connects, in_flight=20)
    assert sorted((o.flow, o.ok, o.server, o.seen) for o in outcomes) == sorted(
        (c.name, True, "pod-a", c.source) for c in connects
    )


def test_a_refused_connect_is_a_failed_outcome_not_an_exception(server_port: int) -> None:
    """A port nothing listens on fails its own connect; the others are answered."""
    connects = [
        Connect("dead", "127.0.0.1", "127.0.0.1", closed_port()),
        Connect("ok", "127.0.0.1", "127.0.0.1", server_port),
    ]
    by_name = {o.flow: o for o in connect_each_here(connects)}
    assert (by_name["dead"].ok, by_name["dead"].error, by_name["ok"].server) == (False, "Connection refused", "pod-a")


def test_a_silent_server_times_out_within_the_bound() -> None:
    """A listener that never answers: the connect fails as TimeoutError after about `timeout` seconds."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        outcome = connect_each_here(
            [Connect("mute", "127.0.0.1", "127.0.0.1", listener.getsockname()[1])], timeout=0.3
        )[0]
    assert (outcome.ok, outcome.error, 0.3 <= outcome.seconds < 2.0) == (False, "TimeoutError", True)


def test_more_connects_than_the_bound_are_refused_up_front() -> None:
    """The load is bounded: more than MAX_CONNECTS is a ValueError before anything is sent."""
    with pytest.raises(ValueError, match="at most"):
        connect_each_here([Connect("x", "127.0.0.1", "127.0.0.1", 1)] * (MAX_CONNECTS + 1))


def test_wait_for_returns_the_requests_every_flow_finished_after_a_moment(server_port: int) -> None:
    """Two flows: wait_for returns once each has finished 3 requests started after the moment, and only those."""
    with Load([flow_to("a", server_port), flow_to("b", server_port)], interval=0.01, seconds=30) as load:
        time.sleep(0.2)
        since = time.monotonic()
        after = load.wait_for(since=since, per_flow=3, timeout=10)
    counts = {name: sum(o.flow == name for o in after) for name in ("a", "b")}
    assert (min(counts.values()) >= 3, all(o.started > since and o.ok for o in after)) == (True, True)


def test_wait_for_names_a_flow_stuck_in_its_request(server_port: int) -> None:
    """A flow whose request is never answered fails wait_for by name, with how its last request began."""
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen(8)
        stuck = flow_to("stuck", mute.getsockname()[1])
        with Load([flow_to("moving", server_port), stuck], interval=0.01, seconds=30) as load:
            time.sleep(0.2)
            with pytest.raises(AssertionError) as raised:
                load.wait_for(since=time.monotonic(), per_flow=2, timeout=0.5)
            mute.close()  # resets the connection waiting in its backlog: the stuck request ends now
    assert ("['stuck']" in str(raised.value), "stuck: in a request started -" in str(raised.value)) == (True, True)


def test_wait_for_fails_at_once_when_the_load_has_ended() -> None:
    """A load past its time cannot make progress: wait_for says so without waiting out its timeout."""
    with Load([flow_to("short", closed_port())], interval=0.01, seconds=0.2) as load:
        time.sleep(0.4)
        started = time.monotonic()
        with pytest.raises(AssertionError, match="the load had ended"):
            load.wait_for(since=started, per_flow=1, timeout=30)
    assert time.monotonic() - started < 5
