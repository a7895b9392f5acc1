"""Bounded load: flows of requests from client namespaces, each request on a new connection (or socket).

A flow is one client sending to one address, one request at a time with a pause between requests. `burst`
runs flows to a fixed count; `Load` runs them in the background until stopped. Both are bounded in count and
in time: nothing here can run away. Every request becomes an `Outcome` (what answered, the client address it
saw, how long it took, or why it failed); a failed request is never retried.
"""

from __future__ import annotations

import errno
import http.client
import os
import selectors
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.e2e.report import Outcome
from tests.kernel.netlab import Netns

REQUEST_TIMEOUT = 5.0
MAX_COUNT = 2000  # requests per flow
MAX_SECONDS = 300.0  # per load


@dataclass(frozen=True, slots=True)
class Flow:
    """One client sending to one address: HTTP GET `path`, or a UDP datagram."""

    name: str
    client: Netns
    host: str
    port: int
    udp: bool = False
    source: str | None = None  # a source address of the client's, else the kernel's choice
    path: str = "/"


def _http_once(flow: Flow, *, timeout: float) -> Outcome:
    started = time.monotonic()
    source = None if flow.source is None else (flow.source, 0)
    connection = http.client.HTTPConnection(flow.host, flow.port, timeout=timeout, source_address=source)
    try:
        connection.request("GET", flow.path, headers={"Connection": "close"})
        response = connection.getresponse()
        body = response.read().decode().strip()
        seen = response.getheader("X-Client-Address", "")
    except (OSError, http.client.HTTPException) as error:
        return Outcome(flow.name, started, time.monotonic() - started, ok=False, error=f"{type(error).__name__}")
    finally:
        connection.close()
    elapsed = time.monotonic() - started
    if response.status != 200:
        return Outcome(flow.name, started, elapsed, ok=False, error=f"HTTP {response.status}")
    return Outcome(flow.name, started, elapsed, ok=True, server=body, seen=seen)


def _udp_once(flow: Flow, *, timeout: float, sequence: int) -> Outcome:
    started = time.monotonic()
    sent = b"ping %d" % sequence
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            if flow.source is not None:
                sock.bind((flow.source, 0))
            sock.connect((flow.host, flow.port))
            sock.send(sent)
            server, seen, echoed = sock.recv(65535).split(b" ", 2)
    except (OSError, ValueError) as error:
        return Outcome(flow.name, started, time.monotonic() - started, ok=False, error=f"{type(error).__name__}")
    elapsed = time.monotonic() - started
    if echoed != sent:
        return Outcome(flow.name, started, elapsed, ok=False, error="wrong echo")
    return Outcome(flow.name, started, elapsed, ok=True, server=server.decode(), seen=seen.decode())


def request(flow: Flow, *, timeout: float = REQUEST_TIMEOUT, sequence: int = 0) -> Outcome:
    """One request of `flow`, from the calling thread (which must be in the client's namespace)."""
    return _udp_once(flow, timeout=timeout, sequence=sequence) if flow.udp else _http_once(flow, timeout=timeout)


def _run_flow(
    flow: Flow,
    *,
    count: int,
    interval: float,
    deadline: float,
    stop: threading.Event,
    into: list[Outcome],
    busy: dict[str, float],
) -> None:
    with flow.client.entered():
        for sequence in range(count):
            if stop.is_set() or time.monotonic() >= deadline:
                return
            busy[flow.name] = time.monotonic()
            into.append(request(flow, sequence=sequence))
            busy.pop(flow.name, None)
            stop.wait(interval)


class Load:
    """Flows running in background threads, each until `count` requests, `seconds`, or `stop()`."""

    def __init__(
        self, flows: Sequence[Flow], *, interval: float = 0.1, count: int = MAX_COUNT, seconds: float = MAX_SECONDS
    ) -> None:
        if not 1 <= count <= MAX_COUNT or not 0 < seconds <= MAX_SECONDS:
            raise ValueError(f"count within 1..{MAX_COUNT}, seconds within (0, {MAX_SECONDS}]")
        self._stop = threading.Event()
        self._names = [flow.name for flow in flows]
        self._outcomes: list[Outcome] = []  # list.append is atomic: the flows share it
        self._busy: dict[str, float] = {}  # flow → when its request in flight began (item assignment is atomic)
        deadline = time.monotonic() + seconds
        self._threads = [
            threading.Thread(
                target=_run_flow,
                args=(flow,),
                kwargs={
                    "count": count,
                    "interval": interval,
                    "deadline": deadline,
                    "stop": self._stop,
                    "into": self._outcomes,
                    "busy": self._busy,
                },
                name=f"load-{flow.name}",
                daemon=True,
            )
            for flow in flows
        ]
        self._timeout = seconds + REQUEST_TIMEOUT + 5

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def outcomes(self) -> list[Outcome]:
        """The requests done so far."""
        return list(self._outcomes)

    def wait_for(self, *, since: float, per_flow: int, timeout: float) -> list[Outcome]:
        """Wait until every flow has finished `per_flow` requests started after `since` (monotonic s); those
        requests. AssertionError past `timeout` or once a flow has ended short, naming the flows short and the
        last request of each: a load that made no progress is a finding, never a pass by absence."""
        give_up = time.monotonic() + timeout
        while True:
            after = [o for o in self.outcomes if o.started > since]
            done = {name: sum(o.flow == name for o in after) for name in self._names}
            short = sorted(name for name, n in done.items() if n < per_flow)
            if not short:
                return after
            ended = not any(thread.is_alive() for thread in self._threads)
            if ended or time.monotonic() > give_up:
                raise AssertionError(
                    f"flows {short} finished fewer than {per_flow} requests within {timeout:.0f} s"
                    f"{' (the load had ended)' if ended else ''}; last of each: {self._last_of(short, since)}"
                )
            time.sleep(0.05)

    def _last_of(self, names: Sequence[str], since: float) -> str:
        outcomes, busy, now = self.outcomes, dict(self._busy), time.monotonic()
        lasts = []
        for name in names:
            own = [o for o in outcomes if o.flow == name]
            said = f"{name}: "
            if name in busy:
                said += f"in a request started {busy[name] - since:+.2f} s, {now - busy[name]:.2f} s ago; "
            if own:
                last = own[-1]
                said += f"last finished started {last.started - since:+.2f} s, took {last.seconds:.2f} s, "
                said += "ok" if last.ok else last.error
            else:
                said += "none finished"
            lasts.append(said)
        return "; ".join(lasts)

    def wait(self) -> list[Outcome]:
        """Wait for every flow to reach its count or time; the outcomes."""
        deadline = time.monotonic() + self._timeout
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return self.outcomes

    def stop(self) -> list[Outcome]:
        """Stop every flow after its current request; the outcomes."""
        self._stop.set()
        return self.wait()


def burst(flows: Sequence[Flow], *, count: int, interval: float = 0.0) -> list[Outcome]:
    """`count` requests from each flow, the flows in parallel; the outcomes once all are done."""
    with Load(flows, count=count, interval=interval) as load:
        return load.wait()


@dataclass(frozen=True, slots=True)
class Connect:
    """One HTTP GET / from `source` (an address of the client's) to host:port, named `name` in its Outcome."""

    name: str
    source: str
    host: str
    port: int


@dataclass(slots=True)
class _Pending:
    connect: Connect
    sock: socket.socket
    started: float
    sent: bool = False
    received: bytearray = field(default_factory=bytearray)


MAX_IN_FLIGHT = 200
MAX_CONNECTS = 20_000


def _answer(connect: Connect, started: float, data: bytes) -> Outcome:
    """An Outcome from a whole HTTP/1.0 answer: the pod's name is the body, its client address a header."""
    elapsed = time.monotonic() - started
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or status[1] != "200":
        return Outcome(connect.name, started, elapsed, ok=False, error=f"HTTP {lines[0]!r}")
    seen = next(
        (line.split(":", 1)[1].strip() for line in lines[1:] if line.lower().startswith("x-client-address:")), ""
    )
    return Outcome(connect.name, started, elapsed, ok=True, server=body.decode().strip(), seen=seen)


def connect_each(
    client: Netns, connects: Sequence[Connect], *, in_flight: int = 100, timeout: float = REQUEST_TIMEOUT
) -> list[Outcome]:
    """Each connect once from `client`'s namespace (see `connect_each_here`)."""
    with client.entered():
        return connect_each_here(connects, in_flight=in_flight, timeout=timeout)


def connect_each_here(
    connects: Sequence[Connect], *, in_flight: int = 100, timeout: float = REQUEST_TIMEOUT
) -> list[Outcome]:
    """Each connect once, from the calling thread, up to `in_flight` at a time (non-blocking sockets under one
    selector: no thread per request, which under emulation costs more than the request). Bounded: at most
    MAX_CONNECTS connects, each given `timeout` seconds; a failed one is not retried."""
    if not 1 <= in_flight <= MAX_IN_FLIGHT or len(connects) > MAX_CONNECTS:
        raise ValueError(f"in_flight within 1..{MAX_IN_FLIGHT}, at most {MAX_CONNECTS} connects")
    outcomes: list[Outcome] = []
    waiting = list(reversed(connects))
    pending: dict[int, _Pending] = {}
    with selectors.DefaultSelector() as selector:

        def finish(item: _Pending, outcome: Outcome) -> None:
            del pending[item.sock.fileno()]
            selector.unregister(item.sock)
            item.sock.close()
            outcomes.append(outcome)

        def fail(item: _Pending, error: str) -> None:
            finish(
                item, Outcome(item.connect.name, item.started, time.monotonic() - item.started, ok=False, error=error)
            )

        while waiting or pending:
            while waiting and len(pending) < in_flight:
                connect = waiting.pop()
                family = socket.AF_INET6 if ":" in connect.host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setblocking(False)
                started = time.monotonic()
                try:
                    sock.bind((connect.source, 0))
                    code = sock.connect_ex((connect.host, connect.port))
                except OSError as error:
                    code, reason = -1, type(error).__name__
                else:
                    reason = os.strerror(code)
                if code not in (0, errno.EINPROGRESS):  # failed at once: say why, not what a later send meets
                    sock.close()
                    outcomes.append(Outcome(connect.name, started, 0.0, ok=False, error=reason))
                    continue
                pending[sock.fileno()] = _Pending(connect, sock, started)
                selector.register(sock, selectors.EVENT_WRITE)
            now = time.monotonic()
            for item in [item for item in pending.values() if now - item.started > timeout]:
                fail(item, "TimeoutError")
            for key, _events in selector.select(timeout=0.05):
                item = pending[key.fd]
                if not item.sent:
                    problem = item.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if problem:
                        fail(item, os.strerror(problem))
                        continue
                    try:
                        item.sock.send(b"GET / HTTP/1.0\r\nConnection: close\r\n\r\n")
                    except OSError as error:
                        fail(item, type(error).__name__)
                        continue
                    item.sent = True
                    selector.modify(item.sock, selectors.EVENT_READ)
                    continue
                try:
                    chunk = item.sock.recv(65536)
                except OSError as error:
                    fail(item, type(error).__name__)
                    continue
                if chunk:
                    item.received += chunk
                else:
                    finish(item, _answer(item.connect, item.started, bytes(item.received)))
    return outcomes
