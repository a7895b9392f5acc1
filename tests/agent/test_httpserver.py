"""The agent's HTTP listener core: limits in time, size and number, and replies that give nothing away."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import resource
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ipvsctl.agent.httpserver import (
    ACCEPT_RETRY_DELAY,
    Bind,
    Limits,
    Listener,
    ServerError,
    listen,
    raise_open_files_limit,
)
from ipvsctl.agent.httpwire import Response
from tests.agent.rawhttp import send

BIG = 16 * 1024 * 1024  # more than loopback's socket buffers hold: a client that does not read blocks the reply
SHORT = 0.2  # seconds: the test limits' timeouts
MARKER = "Zq7-not-echoed"  # appears in bad requests; must never come back


def answer(path: str) -> Response:
    """The test listener's routes."""
    if path == "/ok":
        return Response(200, b"ok")
    if path == "/big":
        return Response(200, b"x" * BIG)
    if path == "/boom":
        raise RuntimeError(MARKER)
    return Response(404, b"no")


TEST_LIMITS = Limits(header_timeout=SHORT, body_timeout=SHORT, write_timeout=SHORT)
Serve = Callable[..., Awaitable[Listener]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start listeners on loopback with TEST_LIMITS changed as given; closed after the test."""
    started: list[Listener] = []

    async def start(**changes: Any) -> Listener:
        listener = await listen(Bind("127.0.0.1", 0), answer, limits=dataclasses.replace(TEST_LIMITS, **changes))
        started.append(listener)
        return listener

    yield start
    for listener in started:
        await listener.close()


async def closed_by_server(reader: asyncio.StreamReader, *, within: float = 2.0) -> bool:
    """True when the server closes (or resets) the connection within ``within`` seconds without a reply."""
    try:
        async with asyncio.timeout(within):
            return await reader.read() == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def half_open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that sent part of a request head and nothing more."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /ok HTTP/1.1\r\nHost: 192.0.2.1\r\n")
    await writer.drain()
    return reader, writer


async def settled(listener: Listener, count: int) -> int:
    """The listener's open connections once they reach ``count`` (or after a second)."""
    for _ in range(100):
        if listener.open_connections == count:
            break
        await asyncio.sleep(0.01)
    return listener.open_connections


async def test_reply_has_no_server_banner(serve: Serve) -> None:
    """A reply names no server software; it closes the connection."""
    listener = await serve()
    reply = await send(listener.port, b"GET /ok HTTP/1.1\r\nHost: 192.0.2.1\r\n\r\n")
    assert (reply.status, reply.body, reply.headers.get("server")) == (200, b"ok", None)
    assert reply.headers["connection"] == "close"


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(f"GET /{MARKER} HTTP/9.9\r\n\r\n".encode(), id="version"),
        pytest.param(f"GET {MARKER} HTTP/1.1\r\n\r\n".encode(), id="target"),
        pytest.param(f"GET /ok HTTP/1.1\r\n{MARKER}\r\n\r\n".encode(), id="field-without-colon"),
        pytest.param(f"GET /ok HTTP/1.1\r\nX-A: 1\r\n {MARKER}\r\n\r\n".encode(), id="folded-field"),
        pytest.param(f"GET /ok HTTP/1.1\r\nContent-Length: 1{MARKER}\r\n\r\n".encode(), id="content-length"),
        pytest.param(f"<script>{MARKER}</script>\r\n\r\n".encode(), id="markup"),
    ],
)
async def test_malformed_request_gets_400_with_a_fixed_body(serve: Serve, request_bytes: bytes) -> None:
    """A malformed request gets 400 and a fixed text: nothing of the request is echoed."""
    listener = await serve()
    reply = await send(listener.port, request_bytes)
    assert (reply.status, reply.body) == (400, b"400 Bad Request\n")
    assert MARKER.encode() not in reply.raw


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "get"])
async def test_other_methods_get_405(serve: Serve, method: str) -> None:
    """Only GET and HEAD are answered; any other method gets 405 with Allow: GET, HEAD."""
    listener = await serve()
    reply = await send(listener.port, f"{method} /ok HTTP/1.1\r\nContent-Length: 0\r\n\r\n".encode())
    assert (reply.status, reply.headers["allow"], reply.body) == (405, "GET, HEAD", b"405 Method Not Allowed\n")


async def test_head_gets_the_headers_without_the_body(serve: Serve) -> None:
    """HEAD gets GET's status and Content-Length, and no body."""
    listener = await serve()
    reply = await send(listener.port, b"HEAD /ok HTTP/1.1\r\n\r\n")
    assert (reply.status, reply.headers["content-length"], reply.body) == (200, "2", b"")


async def test_bare_line_feeds_are_accepted(serve: Serve) -> None:
    """A head with LF line ends (printf | nc) is answered like one with CRLF."""
    listener = await serve()
    assert (await send(listener.port, b"GET /ok HTTP/1.0\n\n")).status == 200


async def test_oversized_head_gets_431(serve: Serve) -> None:
    """A head longer than max_head_bytes gets 431 without waiting for its end."""
    listener = await serve(max_head_bytes=1024)
    reply = await send(listener.port, b"GET /ok HTTP/1.1\r\nX-Long: " + b"a" * 2048)
    assert (reply.status, reply.body) == (431, b"431 Request Header Fields Too Large\n")


async def test_request_body_is_read_before_the_reply(serve: Serve) -> None:
    """A GET with a small body is answered once the body is in."""
    listener = await serve()
    assert (await send(listener.port, b"GET /ok HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")).status == 200


async def test_oversized_body_gets_413(serve: Serve) -> None:
    """A body announced larger than max_body_bytes gets 413 before it is read."""
    listener = await serve(max_body_bytes=100)
    reply = await send(listener.port, b"GET /ok HTTP/1.1\r\nContent-Length: 101\r\n\r\n")
    assert reply.status == 413


async def test_handler_failure_gets_500_with_a_fixed_body(serve: Serve) -> None:
    """An exception in a handler is logged and answered 500 with a fixed text; the listener goes on."""
    listener = await serve()
    with capture_logs() as logs:
        reply = await send(listener.port, b"GET /boom HTTP/1.1\r\n\r\n")
    assert (reply.status, reply.body) == (500, b"500 Internal Server Error\n")
    assert [entry["event"] for entry in logs] == ["http_handler_failed"]
    assert (await send(listener.port, b"GET /ok HTTP/1.1\r\n\r\n")).status == 200


async def test_slow_head_is_dropped_after_the_header_timeout(serve: Serve) -> None:
    """A client that does not finish its request head is disconnected after header_timeout, without a reply."""
    listener = await serve()
    reader, _writer = await half_open(listener.port)
    started = time.monotonic()
    assert await closed_by_server(reader)
    assert SHORT <= time.monotonic() - started < SHORT + 1.0
    assert await settled(listener, 0) == 0


async def test_trickling_head_is_dropped_after_the_header_timeout(
    serve: Serve,
) -> None:
    """The header timeout counts from the connection, not from the last byte: trickling does not extend it."""
    listener = await serve()
    reader, writer = await half_open(listener.port)

    async def trickle() -> None:
        for _ in range(40):  # a header byte every SHORT / 4 seconds, for up to 10 x SHORT
            await asyncio.sleep(SHORT / 4)
            writer.write(b"X")
            await writer.drain()

    trickling = asyncio.ensure_future(trickle())
    started = time.monotonic()
    try:
        assert await closed_by_server(reader, within=3 * SHORT)
    finally:
        trickling.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await trickling
    assert time.monotonic() - started < 3 * SHORT


async def test_slow_body_is_dropped_after_the_body_timeout(serve: Serve) -> None:
    """A client that announces a body and does not send it is disconnected after body_timeout."""
    listener = await serve()
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(b"GET /ok HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    await writer.drain()
    assert await closed_by_server(reader)


async def test_client_that_does_not_read_is_dropped_after_the_write_timeout(
    serve: Serve,
) -> None:
    """A reply the client does not take holds the connection for write_timeout at most."""
    listener = await serve()
    _reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)  # reads at most 128 KiB itself
    writer.write(b"GET /big HTTP/1.1\r\n\r\n")
    await writer.drain()
    assert await settled(listener, 1) == 1
    await asyncio.sleep(SHORT + 0.2)
    assert await settled(listener, 0) == 0
    writer.close()


async def test_connection_cap_holds(serve: Serve) -> None:
    """Past max_connections, the server closes its oldest half-open connections: it keeps at most the cap."""
    listener = await serve(max_connections=4, header_timeout=30.0)
    clients = [await half_open(listener.port) for _ in range(10)]
    assert await settled(listener, 4) == 4
    closed = [await closed_by_server(reader, within=0.3) for reader, _ in clients]
    assert closed == [True] * 6 + [False] * 4
    for _, writer in clients:
        writer.close()


async def test_probe_at_the_cap_is_answered(serve: Serve) -> None:
    """With the cap filled by half-open connections, a request sent at once still gets its reply."""
    listener = await serve(max_connections=4, header_timeout=30.0)
    clients = [await half_open(listener.port) for _ in range(4)]
    assert await settled(listener, 4) == 4
    assert (await send(listener.port, b"GET /ok HTTP/1.1\r\n\r\n", within=1.0)).status == 200
    for _, writer in clients:
        writer.close()


async def test_eviction_spares_a_connection_being_answered(serve: Serve) -> None:
    """At the cap, half-open connections are evicted before one whose request is being answered."""
    listener = await serve(max_connections=3, header_timeout=30.0, write_timeout=30.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(b"GET /big HTTP/1.1\r\n\r\n")
    await writer.drain()
    assert await settled(listener, 1) == 1
    clients = [await half_open(listener.port) for _ in range(5)]
    assert await settled(listener, 3) == 3
    async with asyncio.timeout(10):
        raw = await reader.read()
    assert raw.endswith(b"x" * 1000)
    assert len(raw.partition(b"\r\n\r\n")[2]) == BIG
    for _, client in [*clients, (reader, writer)]:
        client.close()


async def test_close_drops_every_connection_and_the_port(serve: Serve) -> None:
    """Closing a listener disconnects its clients and stops listening."""
    listener = await serve(header_timeout=30.0)
    reader, writer = await half_open(listener.port)
    assert await settled(listener, 1) == 1
    await listener.close()
    assert await closed_by_server(reader, within=1.0)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", listener.port)
    writer.close()


async def test_port_in_use_is_a_server_error(serve: Serve) -> None:
    """Listening on a port another socket holds raises ServerError naming the address."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ServerError, match=f"127.0.0.1:{port}"):
            await listen(Bind("127.0.0.1", port), answer)


@contextlib.contextmanager
def no_free_descriptor() -> Iterator[None]:
    """While inside, this process cannot open one more file: the soft limit is lowered and every number below taken."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = max(int(fd.name) for fd in Path("/proc/self/fd").iterdir()) + 64
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    fillers: list[int] = []
    try:
        with contextlib.suppress(OSError):
            for _ in range(limit):  # bounded: at most `limit` descriptors can be open
                fillers.append(os.open(os.devnull, os.O_RDONLY))  # noqa: PERF401 (stops at the first EMFILE)
        yield
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_out_of_descriptors_pauses_accepting_then_resumes(serve: Serve) -> None:
    """accept() failing with EMFILE is logged, accepting pauses, and the queued client is answered after."""
    listener = await serve()
    client = socket.create_connection(("127.0.0.1", listener.port))  # queued in the kernel, not yet accepted
    with client, capture_logs() as logs:
        client.sendall(b"GET /ok HTTP/1.1\r\n\r\n")
        with no_free_descriptor():
            await asyncio.sleep(0.1)
        client.settimeout(ACCEPT_RETRY_DELAY + 2.0)
        started = time.monotonic()
        reply = await asyncio.to_thread(client.recv, 4096)
    assert [entry["event"] for entry in logs] == ["http_accept_failed"]
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert time.monotonic() - started < ACCEPT_RETRY_DELAY + 1.0


def test_open_files_soft_limit_is_raised_to_the_hard_limit() -> None:
    """raise_open_files_limit lifts RLIMIT_NOFILE's soft limit to its hard limit and says so."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 512), hard))
    try:
        assert raise_open_files_limit() == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_each_connection_ended_unanswered_is_reported_with_its_reason() -> None:
    """Six evicted at a cap of four and the four left timing out: on_drop hears 6 evicted, then 4 timeout."""
    drops: list[str] = []
    limits = dataclasses.replace(TEST_LIMITS, max_connections=4)
    listener = await listen(Bind("127.0.0.1", 0), answer, limits=limits, on_drop=drops.append)
    try:
        clients = [await half_open(listener.port) for _ in range(10)]
        assert await settled(listener, 4) == 4
        assert await settled(listener, 0) == 0  # after header_timeout
        await asyncio.sleep(0.05)
        assert drops == ["evicted"] * 6 + ["timeout"] * 4
        for _, writer in clients:
            writer.close()
    finally:
        await listener.close()
