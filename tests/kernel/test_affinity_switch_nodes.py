"""Four real agents (netlink backends, real clock) learn of an endpoint change at different times, yet agree.

Each node namespace of the affinity bed gets a whole ``NodeAgent`` (cache, translation, sync loop, netlink
backend) fed the same Service and EndpointSlices. The change (a pod added) carries the EndpointSlice
controller's trigger time; two nodes learn of it at once, the other two ``LATE`` seconds later. With
``--affinity-switch-delay`` every node keeps its table until trigger + delay, so a probe while the change is
spreading finds every node agreeing; after the moment every node has the new pod. The same change without
the delay, half-way, leaves only the clients it does not move in agreement (test_affinity_scope_nodes.py).
Figures go to ``$LAB_RESULTS/affinity-switch.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ipvsctl.agent.config import AgentConfig
from ipvsctl.agent.http import Bind
from ipvsctl.agent.node import NodeAgent
from ipvsctl.backend.kernel import NetlinkBackend
from ipvsctl.model import Protocol, ServiceKey
from tests.kernel.affinity_bed import VIP4, VIP6, Node, agreement, build_node, probe
from tests.kernel.netlab import Lab, Netns

pytestmark = pytest.mark.kernel

DELAY = 10.0  # --affinity-switch-delay: room for four probes of 1,000 clients under emulation (~1 s each)
LATE = 3.0  # seconds between the first two nodes learning of the change and the last two
SPREADING, SWITCHED = 90, 91  # one Service port probed while the change spreads, one after the switch
PODS4 = tuple(f"198.51.100.{last}" for last in range(11, 22))  # ten pods, and an eleventh that comes
PODS6 = tuple(f"2001:db8:5::{last:x}" for last in range(0x11, 0x1C))
SYNC_BOUND = 30.0  # seconds a sync may take to show in the kernel before the test gives up
FIGURES: dict[str, float] = {}

JSON = dict[str, Any]


class NoEvents:
    """An Event sink that drops Events: this test is about tables."""

    async def create(self, event: Mapping[str, object]) -> None:
        """Drop the Event."""

    async def patch(self, *, namespace: str, name: str, changes: Mapping[str, object]) -> None:
        """Drop the change."""


def web_service() -> JSON:
    """The dual-stack ClientIP Service with cluster-wide affinity, on both probe ports."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "web-uid",
            "creationTimestamp": "2026-12-01T00:00:00Z",
            "annotations": {"ipvsctl.io/affinity-scope": "cluster"},
        },
        "spec": {
            "clusterIP": VIP4,
            "clusterIPs": [VIP4, VIP6],
            "ipFamilies": ["IPv4", "IPv6"],
            "ipFamilyPolicy": "RequireDualStack",
            "sessionAffinity": "ClientIP",
            "ports": [
                {"name": name, "port": port, "targetPort": 8080, "protocol": "TCP"}
                for name, port in (("spreading", SPREADING), ("switched", SWITCHED))
            ],
        },
    }


def web_slices(count: int, *, trigger: datetime | None) -> list[JSON]:
    """The Service's two slices with the first ``count`` pods of each family, as the controller writes them."""
    annotations = {} if trigger is None else {"endpoints.kubernetes.io/last-change-trigger-time": trigger.isoformat()}
    return [
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"web-{family.lower()}",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": "web"},
                "annotations": annotations,
            },
            "addressType": family,
            "ports": [{"name": name, "port": 8080, "protocol": "TCP"} for name in ("spreading", "switched")],
            "endpoints": [
                {"addresses": [address], "nodeName": "elsewhere", "conditions": {"ready": True}}
                for address in pods[:count]
            ],
        }
        for family, pods in (("IPv4", PODS4), ("IPv6", PODS6))
    ]


def this_node(name: str) -> JSON:
    """The node's own Node object (an address that is none of the VIPs)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.254"}]},
    }


@pytest.fixture
async def nodes(lab: Lab) -> AsyncIterator[list[tuple[Node, NodeAgent]]]:
    """Four node namespaces, each with its clients and a running agent (sync loop on a netlink backend)."""
    new_netns: Callable[[Sequence[str]], list[Netns]] = lambda roles: [lab.netns(role) for role in roles]  # noqa: E731
    beds = [build_node(new_netns, name=f"s{index}") for index in range(1, 5)]
    tasks: list[asyncio.Task[None]] = []
    async with AsyncExitStack() as stack:
        placed = []
        for bed in beds:
            backend = await stack.enter_async_context(NetlinkBackend(netns=bed.node.name))
            config = AgentConfig(
                node_name=bed.name,
                health_bind=Bind("127.0.0.1", 0),
                metrics_bind=Bind("127.0.0.1", 0),
                health_check_address="127.0.0.1",
                min_sync_interval=0.2,
                affinity_switch_delay=DELAY,
            )
            agent = NodeAgent(config=config, backend=backend, event_sink=NoEvents())
            for name in ("services", "endpointslices", "node"):
                agent.status.connected[name] = True
            tasks.append(asyncio.create_task(agent.runner.run(), name=f"sync-{bed.name}"))
            placed.append((bed, agent))
        try:
            yield placed
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for _, agent in placed:
                await agent.health_checks.close()


async def reals_at(agent: NodeAgent, port: int) -> set[str]:
    """The real-server addresses of both families' VIPs on ``port`` in the node's kernel table."""
    table = (await agent.backend.read()).table
    return {
        real.address
        for vip in (VIP4, VIP6)
        for real in table.services.get(ServiceKey(Protocol.TCP, vip, port), _EMPTY).reals
    }


class _Empty:
    reals: tuple[Any, ...] = ()


_EMPTY: Any = _Empty()


async def until(agent: NodeAgent, port: int, wanted: int, *, bound: float = SYNC_BOUND) -> None:
    """Wait until the node's kernel has ``wanted`` real servers on ``port`` (both families)."""
    deadline = time.monotonic() + bound
    while len(await reals_at(agent, port)) != wanted:
        assert time.monotonic() < deadline, f"{agent.config.node_name}: no {wanted} servers on {port}"
        await asyncio.sleep(0.1)


def _write() -> None:
    results = os.environ.get("LAB_RESULTS")
    if results:
        Path(results, "affinity-switch.json").write_text(json.dumps(FIGURES, indent=1, sort_keys=True))


async def test_nodes_that_learn_a_change_at_different_times_agree_throughout(
    nodes: list[tuple[Node, NodeAgent]],
) -> None:
    """A pod added: while two nodes know and two do not, all agree (100 %); after trigger + delay all have it."""
    for bed, agent in nodes:
        agent.handlers["Service"].replace([web_service()])
        agent.handlers["EndpointSlice"].replace(web_slices(10, trigger=None))
        agent.handlers["Node"].replace([this_node(bed.name)])
    for _, agent in nodes:
        await until(agent, SPREADING, 20)
    trigger = datetime.now(UTC) - timedelta(seconds=0.2)
    change = web_slices(11, trigger=trigger)
    for _, agent in nodes[:2]:
        for written in change:
            agent.handlers["EndpointSlice"].upsert(written)
    await asyncio.sleep(LATE)
    held = [await reals_at(agent, SPREADING) for _, agent in nodes]
    spreading = agreement([await asyncio.to_thread(probe, bed, port=SPREADING) for bed, _ in nodes])
    for _, agent in nodes[2:]:
        for written in change:
            agent.handlers["EndpointSlice"].upsert(written)
    probed_by = (datetime.now(UTC) - trigger).total_seconds()
    for _, agent in nodes:
        await until(agent, SWITCHED, 22, bound=DELAY + SYNC_BOUND)
    switched_by = (datetime.now(UTC) - trigger).total_seconds()
    after = agreement([await asyncio.to_thread(probe, bed, port=SWITCHED) for bed, _ in nodes])
    FIGURES.update(
        {
            "while the change spreads (2 of 4 nodes know it)": spreading,
            "after every node switched": after,
            "seconds from trigger to the spreading probe's end": round(probed_by, 1),
            "seconds from trigger until every node had the new pod": round(switched_by, 1),
        }
    )
    _write()

    assert probed_by < DELAY, "the spreading probe ran past the moment: make DELAY longer"
    assert all(len(each) == 20 for each in held)
    assert (spreading, after) == (1.0, 1.0)
    assert DELAY <= switched_by < DELAY + SYNC_BOUND
