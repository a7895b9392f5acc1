"""The agent's HTTP listeners: one request per connection on asyncio streams, bounded in time, size and number.

Anyone who can reach a node can reach ``/healthz`` and every healthCheckNodePort, so a listener must keep
answering a real probe (kubelet, a cloud load balancer, Prometheus: each sends its whole request at once)
whatever else connects (issue 12):

- the request head must arrive within ``header_timeout`` and fit in ``max_head_bytes``; a body (a GET
  rarely has one) within ``body_timeout`` and ``max_body_bytes``; the reply must be taken within
  ``write_timeout``. A connection past a limit is closed.
- at most ``max_connections`` per listener. At the cap a new connection evicts the oldest one still
  sending its request (else the oldest of all): a slowloris flood evicts itself, never the newest
  connection, and a probe is answered as soon as its request is read.
- only GET and HEAD (405 otherwise); every reply closes the connection; no ``Server`` banner; error
  replies are fixed texts (``httpwire``).
"""

from __future__ import annotations

import asyncio
import inspect
import resource
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate

import structlog

from ipvsctl.agent.httpwire import (
    METHODS,
    HttpError,
    RequestHead,
    Response,
    error_response,
    format_response,
    head_end,
    parse_head,
)
from ipvsctl.errors import IpvsctlError

__all__ = [
    "ACCEPT_BATCH",
    "ACCEPT_RETRY_DELAY",
    "DEFAULT_LIMITS",
    "LISTEN_BACKLOG",
    "Bind",
    "Handler",
    "Limits",
    "Listener",
    "ServerError",
    "listen",
    "raise_open_files_limit",
]

# What a listener answers: the path (no query) → the reply. Synchronous: every answer is computed in memory.
Handler = Callable[[str], Response | Awaitable[Response]]
"""The answer to a path: a Response, or an awaitable of one (an answer that needs I/O first, e.g. /metrics)."""


class ServerError(IpvsctlError):
    """An HTTP server could not listen (address in use, no permission)."""


@dataclass(frozen=True, slots=True)
class Bind:
    """``host:port`` a server listens on (port 0: any free port, for tests)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Limits:
    """What one listener allows a connection (seconds, bytes) and how many connections it keeps."""

    # Probes send their request in one packet, well within a second; 5 s leaves room for a slow link.
    header_timeout: float = 5.0
    body_timeout: float = 5.0
    # /metrics is the longest reply (tens of kilobytes); a scraper reads it at once.
    write_timeout: float = 10.0
    # The request line and every header field together (kubelet sends ~150 bytes, Prometheus ~300).
    max_head_bytes: int = 8192
    max_body_bytes: int = 65536
    # Above the few clients a listener has (kubelet, Prometheus, a load balancer's probers), and far above
    # the connections accepted between a probe's own accept and the reading of its request (a few event
    # loop turns of ACCEPT_BATCH each), so that eviction never reaches a probe that sent its request.
    max_connections: int = 256


DEFAULT_LIMITS = Limits()
# Connections accepted per event loop turn and listener. asyncio's own servers accept up to their listen
# backlog per turn: a burst of a thousand would then evict a probe accepted in the same turn, before its
# request could be read. Small batches keep that window to a few dozen connections.
ACCEPT_BATCH = 8
# The kernel queues this many connections not yet accepted (capped by net.core.somaxconn): a burst waits
# there instead of having its SYNs dropped (a dropped SYN costs the client a 1 s retransmission).
LISTEN_BACKLOG = 1024
# After accept() fails (out of descriptors or memory), the listener stops accepting this long, as asyncio's do:
# retrying at once would spin while the connection stays queued.
ACCEPT_RETRY_DELAY = 1.0


@dataclass(slots=True, eq=False)  # eq=False: hashed by identity, kept in an insertion-ordered dict
class _Connection:
    transport: asyncio.WriteTransport
    reading: bool = True  # still sending its request: the first to be evicted


DROP_REASONS = ("evicted", "timeout", "accept_failed")
"""Why a connection ends unanswered: evicted at the cap, past a timeout, or not accepted (no descriptors)."""


def _ignore(_reason: str) -> None:
    return None


class Listener:
    """One listening socket and its live connections (``listen`` makes one).

    ``on_drop`` is told each connection that ends unanswered, by one of ``DROP_REASONS`` (the agent
    counts them: a flood shows in its metrics).
    """

    def __init__(self, *, handler: Handler, limits: Limits, on_drop: Callable[[str], None] = _ignore) -> None:
        self._handler = handler
        self._limits = limits
        self._on_drop = on_drop
        self._connections: dict[_Connection, None] = {}  # oldest first
        self._tasks: set[asyncio.Task[None]] = set()
        self._socket: socket.socket | None = None
        self._log = structlog.get_logger("ipvsctl.agent.http")
        self.port = 0

    @property
    def open_connections(self) -> int:
        """Connections being served (accepted sockets not yet handed to their task are not counted)."""
        return len(self._connections)

    def start(self, bind: Bind) -> None:
        """Listen on ``bind`` (once, in a running event loop); ServerError if the address cannot be bound."""
        family = socket.AF_INET6 if ":" in bind.host else socket.AF_INET
        try:
            # SO_REUSEADDR (a restarted agent binds at once) and, for IPv6, IPV6_V6ONLY, as asyncio's servers.
            listening = socket.create_server((bind.host, bind.port), family=family, backlog=LISTEN_BACKLOG)
        except OSError as error:
            raise ServerError(f"cannot listen on {bind}: {error.strerror or error}") from error
        listening.setblocking(False)
        self._socket = listening
        self.port = int(listening.getsockname()[1])
        asyncio.get_running_loop().add_reader(listening, self._accept)

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        listening, self._socket = self._socket, None
        if listening is not None:
            asyncio.get_running_loop().remove_reader(listening)
            listening.close()
        for connection in list(self._connections):
            self._drop(connection)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _accept(self) -> None:
        listening = self._socket
        for _ in range(ACCEPT_BATCH):
            if listening is None:
                return
            try:
                accepted, _ = listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as error:  # out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) at most
                self._on_drop("accept_failed")
                self._log.warning("http_accept_failed", port=self.port, error=error.strerror or str(error))
                self._pause(listening)
                return
            task = asyncio.get_running_loop().create_task(self._serve(accepted))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _pause(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(listening)

        def resume() -> None:
            if self._socket is listening:
                loop.add_reader(listening, self._accept)

        loop.call_later(ACCEPT_RETRY_DELAY, resume)

    async def _serve(self, accepted: socket.socket) -> None:
        """One connection: read a request, answer it, close."""
        try:
            reader, writer = await asyncio.open_connection(sock=accepted, limit=self._limits.max_head_bytes)
        except OSError:  # reset before it was set up
            accepted.close()
            return
        except BaseException:  # cancelled by close()
            accepted.close()
            raise
        connection = _Connection(writer.transport)
        self._admit(connection)
        try:
            await self._exchange(reader, writer, connection)
        except TimeoutError:
            self._on_drop("timeout")  # too slow to send its request or to take the answer
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client left (or was evicted, counted then): nothing to answer
        finally:
            self._connections.pop(connection, None)
            if not writer.transport.is_closing():
                writer.transport.abort()

    def _admit(self, connection: _Connection) -> None:
        if self._socket is None:  # closed meanwhile
            connection.transport.abort()
            return
        if len(self._connections) >= self._limits.max_connections:
            victim = next((c for c in self._connections if c.reading), None) or next(iter(self._connections))
            self._drop(victim)
            self._on_drop("evicted")
        self._connections[connection] = None

    def _drop(self, connection: _Connection) -> None:
        # Aborting is enough: the connection's task then reads the end of the stream (or a reset) and ends.
        self._connections.pop(connection, None)
        connection.transport.abort()

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: _Connection
    ) -> None:
        head_only = False
        try:
            request = await self._read_request(reader)
            if request is None:
                return  # closed before a whole request: nothing to answer
            connection.reading = False
            head_only = request.method == "HEAD"
            response = await self._answer(request.path)
        except HttpError as error:
            response = error_response(error.status)
        connection.reading = False
        # No write buffer above the kernel's: drain() returns once every byte is with the kernel, so a
        # client that does not read its reply holds the connection for write_timeout at most.
        writer.transport.set_write_buffer_limits(high=0)
        writer.write(format_response(response, head_only=head_only, date=formatdate(usegmt=True)))
        async with asyncio.timeout(self._limits.write_timeout):
            await writer.drain()
        writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> RequestHead | None:
        """The request (its body read and dropped), None if the client closed first; HttpError if refused."""
        limits = self._limits
        async with asyncio.timeout(limits.header_timeout):
            read = await _read_head(reader, max_bytes=limits.max_head_bytes)
        if read is None:
            return None
        head, rest = read
        request = parse_head(head)
        if request.method not in METHODS:
            raise HttpError(405)
        if request.content_length > limits.max_body_bytes:
            raise HttpError(413)
        if request.content_length > len(rest):
            async with asyncio.timeout(limits.body_timeout):
                await reader.readexactly(request.content_length - len(rest))
        return request

    async def _answer(self, path: str) -> Response:
        try:
            answer = self._handler(path)
            return await answer if inspect.isawaitable(answer) else answer
        except Exception:  # a bug in one answer must not take the listener down: log it, reply 500
            self._log.exception("http_handler_failed", port=self.port, path=path[:200])
            return error_response(500)


async def _read_head(reader: asyncio.StreamReader, *, max_bytes: int) -> tuple[bytes, bytes] | None:
    """The request head and the bytes read after it; None at end of stream; HttpError(431) past max_bytes."""
    buffer = bytearray()
    while (end := head_end(buffer)) is None:
        if len(buffer) >= max_bytes:
            raise HttpError(431)
        chunk = await reader.read(max_bytes)
        if not chunk:
            return None
        buffer += chunk
    if end > max_bytes:
        raise HttpError(431)
    return bytes(buffer[:end]), bytes(buffer[end:])


async def listen(
    bind: Bind, handler: Handler, *, limits: Limits = DEFAULT_LIMITS, on_drop: Callable[[str], None] = _ignore
) -> Listener:
    """A listener answering with ``handler`` on ``bind``; ServerError if the address cannot be bound."""
    listener = Listener(handler=handler, limits=limits, on_drop=on_drop)
    listener.start(bind)
    return listener


def raise_open_files_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; the soft limit now.

    Every listener keeps at most ``max_connections`` sockets, but the agent has one listener per
    healthCheckNodePort besides its own two, and a soft limit of 1024 (what many runtimes give) is less
    than a few listeners' worth: a flood on some ports would then starve the others, the watches and
    netlink of descriptors. kube-proxy runs with soft = hard because Go raises it at start; the agent's
    event loop uses epoll, not select(), so no descriptor number is too high for it.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard in (resource.RLIM_INFINITY, soft):
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):  # a seccomp or LSM policy may refuse it: the per-listener caps still hold
        return soft
    return hard
