"""A bed pod's HTTP server on the host's loopback: its name, the client it saw, and requests it holds."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from collections.abc import Iterator
from typing import cast

import pytest

from tests.e2e.pods import PodServers
from tests.kernel.netlab import Netns


class _Here:
    """Stands in for a pod's namespace: the calling thread's own."""

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        yield


def free_port() -> int:
    """A free TCP port on the loopback."""
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def pod() -> Iterator[tuple[PodServers, int]]:
    """A pod named pod-x serving HTTP on a free port; the servers and the port."""
    port = free_port()
    servers = PodServers(cast(Netns, _Here()), identity="pod-x", http_port=port, udp_port=None)
    yield servers, port
    servers.close()


def get(port: int, path: str, into: list[str]) -> None:
    """GET path from the pod on 127.0.0.1; its body into `into`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        into.append(connection.getresponse().read().decode().strip())
    finally:
        connection.close()


def test_a_pod_answers_with_its_name(pod: tuple[PodServers, int]) -> None:
    """GET / answers with the pod's name."""
    answers: list[str] = []
    get(pod[1], "/", answers)
    assert answers == ["pod-x"]


def test_a_held_request_is_answered_only_once_released(pod: tuple[PodServers, int]) -> None:
    """GET /hold stays in flight (counted as a long request) until release(), then answers."""
    servers, port = pod
    answers: list[str] = []
    client = threading.Thread(target=get, args=(port, "/hold", answers), daemon=True)
    client.start()
    client.join(timeout=0.5)
    held = (client.is_alive(), servers.in_flight, servers.long_requests)
    servers.release()
    client.join(timeout=5)
    assert (held, answers) == ((True, 1, 1), ["pod-x"])
