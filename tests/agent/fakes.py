"""Fakes for the agent's host tests: a clock the test moves, an Event sink that keeps Events, raw objects."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ipvsctl.agent.config import AgentConfig
from ipvsctl.agent.http import Bind
from ipvsctl.agent.node import NodeAgent
from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.backend.nft.memory import MemoryNetfilter
from ipvsctl.kube.client import ApiError, ConflictError, NotFoundError

JSON = dict[str, Any]
NODE = "worker1"
NODE_IP = "192.0.2.1"


async def settle(rounds: int = 50) -> None:
    """Let every runnable task run until it waits on something (memory backends never do real I/O)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class FakeClock:
    """Monotonic time that moves only when the test says so; sleepers wake in deadline order."""

    def __init__(self, start: float = 1000.0) -> None:
        self.time = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self.time

    def wall(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.time)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.time + seconds, next(self._order), future))
        await future

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its deadline and letting the tasks run."""
        target = self.time + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            self.time = max(self.time, deadline)
            if not future.done():
                future.set_result(None)
                await settle()
        self.time = target
        await settle()


class RecordingSink:
    """An Event sink that keeps Events by name, refuses as the API does, and can be told to fail."""

    def __init__(self) -> None:
        self.events: dict[str, JSON] = {}
        self.calls: list[str] = []
        self.failures = 0  # fail this many next calls with ApiError (API unreachable)

    def _maybe_fail(self) -> None:
        if self.failures:
            self.failures -= 1
            raise ApiError("unreachable", resource="events")

    async def create(self, event: Mapping[str, object]) -> None:
        self.calls.append("create")
        self._maybe_fail()
        metadata = event["metadata"]
        assert isinstance(metadata, Mapping)
        name = str(metadata["name"])
        if name in self.events:
            raise ConflictError("HTTP 409: exists", status=409, resource="events")
        self.events[name] = dict(event)

    async def patch(self, *, namespace: str, name: str, changes: Mapping[str, object]) -> None:
        self.calls.append("patch")
        self._maybe_fail()
        if name not in self.events:
            raise NotFoundError("HTTP 404: gone", status=404, resource="events")
        self.events[name].update(changes)

    def by_reason(self, reason: str) -> list[JSON]:
        return [event for event in self.events.values() if event["reason"] == reason]


def config(**changes: Any) -> AgentConfig:
    """An agent config for tests: loopback binds on free ports."""
    values: dict[str, Any] = {
        "node_name": NODE,
        "health_bind": Bind("127.0.0.1", 0),
        "metrics_bind": Bind("127.0.0.1", 0),
        "health_check_address": "127.0.0.1",
    }
    values.update(changes)
    return AgentConfig(**values)


def make_agent(
    clock: FakeClock,
    *,
    backend: MemoryBackend | None = None,
    sink: RecordingSink | None = None,
    netfilter: MemoryNetfilter | None = None,
    **changes: Any,
) -> NodeAgent:
    """An agent on the memory backend (and, when given, a memory nftables table) with a fake clock and a
    recording Event sink."""
    return NodeAgent(
        config=config(**changes),
        backend=backend or MemoryBackend(),
        netfilter=netfilter,
        event_sink=sink or RecordingSink(),
        clock=clock,
    )


# --- raw objects, as the API sends them ---------------------------------------------------------------


def service(
    name: str,
    *,
    cluster_ip: str,
    namespace: str = "default",
    ports: Sequence[Mapping[str, Any]] = ({"port": 80, "protocol": "TCP"},),
    created: str = "2026-01-01T00:00:00Z",
    **spec: Any,
) -> JSON:
    """A core/v1 Service."""
    annotations = spec.pop("annotations", {})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "creationTimestamp": created,
            "annotations": annotations,
        },
        "spec": {"clusterIP": cluster_ip, "ports": [dict(port) for port in ports], **spec},
    }


def endpoint_slice(
    name: str,
    *,
    service: str,
    endpoints: Sequence[tuple[str, str]] | Sequence[tuple[str, str, bool]],
    namespace: str = "default",
    port: int = 8080,
) -> JSON:
    """A discovery.k8s.io/v1beta1 EndpointSlice; endpoints are (address, node[, ready])."""
    return {
        "apiVersion": "discovery.k8s.io/v1beta1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": namespace, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "", "port": port, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [entry[0]],
                "nodeName": entry[1],
                "conditions": {"ready": entry[2] if len(entry) > 2 else True},
            }
            for entry in endpoints
        ],
    }


def node(name: str = NODE, *, addresses: Sequence[str] = (NODE_IP,)) -> JSON:
    """A core/v1 Node with InternalIP addresses."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "status": {"addresses": [{"type": "InternalIP", "address": address} for address in addresses]},
    }


def list_everything(
    agent: NodeAgent,
    *,
    services: Sequence[JSON] = (),
    slices: Sequence[JSON] = (),
    nodes: Sequence[JSON] = (node(),),
) -> None:
    """Complete every initial list, as the watchers would."""
    agent.handlers["Service"].replace(services)
    agent.handlers["EndpointSlice"].replace(slices)
    agent.handlers["Node"].replace(nodes)
