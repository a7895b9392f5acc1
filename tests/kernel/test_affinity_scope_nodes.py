"""Cluster-wide affinity across four nodes with different histories, programmed by ipvsctl's planner.

Each node is a namespace with its own IPVS table, written by a NetlinkBackend from ``plan()`` (the agent's
path: read the kernel, plan against the desired table, apply). Each scenario is a Service port of its own,
so that every probe is every client's first connection to it. Agreement = the share of the 1,000 clients
that every node sends to one real server. The figures go to ``$LAB_RESULTS/affinity.json``
(docs/performance.md#cluster-wide-affinity).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from ipvsctl.affinity_scope import CLUSTER_FLAGS, lookup_table
from ipvsctl.backend.kernel import NetlinkBackend
from ipvsctl.backend.sysctl import moves_keep_connections
from ipvsctl.model import Persistence, Protocol, RealServer, ServiceKey, Table, VirtualService
from ipvsctl.plan import Ownership, plan
from tests.kernel.affinity_bed import CLIENTS, VIP4, VIP6, WARM, Node, agreement, build_node, probe
from tests.kernel.netlab import Lab, Netns

pytestmark = pytest.mark.kernel

PODS4 = tuple(RealServer(f"198.51.100.{last}", 8080) for last in range(11, 41))
PODS6 = tuple(RealServer(f"2001:db8:5::{last:x}", 8080) for last in range(0x11, 0x2F))
OWNED = Ownership(addresses=frozenset({VIP4, VIP6}))
FIGURES: dict[str, float] = {}


def service(port: int, pods: Sequence[int], *, scheduler: str = "mh", flags: frozenset[str] = CLUSTER_FLAGS) -> Table:
    """The desired table of one scenario: both families' VIPs on ``port`` over the pods (indexes) given."""
    return Table.of(
        VirtualService(
            ServiceKey(Protocol.TCP, vip, port),
            scheduler=scheduler,
            sched_flags=flags,
            persistence=Persistence(10800, 32 if vip == VIP4 else 128),
            reals=tuple(pods_[i] for i in pods),
        )
        for vip, pods_ in ((VIP4, PODS4), (VIP6, PODS6))
    )


class Agent:
    """One node's agent, reduced to what decides the table: read the kernel, plan, apply."""

    def __init__(self, node: Node, backend: NetlinkBackend) -> None:
        self.node = node
        self.backend = backend

    async def sync(self, desired: Table) -> int:
        """Bring the node's services on ``desired``'s ports to ``desired``; the number of operations applied."""
        state = await self.backend.read()
        keys = {key for key in state.table.services if key.port in {k.port for k in desired.services}}
        operations = plan(
            state.table,
            desired,
            ownership=OWNED,
            connections=state.connections,
            only=keys | set(desired.services),
            cluster_moves=moves_keep_connections(),  # read in the test's namespace: expire_nodest_conn 0
        )
        report = await self.backend.apply(operations)
        assert report.ok, report.failures
        return len(operations)


@pytest.fixture
async def agents(lab: Lab) -> AsyncIterator[list[Agent]]:
    """Four nodes, each with its 1,000 clients and its own agent (backend)."""
    new_netns: Callable[[Sequence[str]], list[Netns]] = lambda roles: [lab.netns(role) for role in roles]  # noqa: E731
    nodes = [build_node(new_netns, name=f"n{index}") for index in range(1, 5)]
    async with AsyncExitStack() as stack:
        backends = [await stack.enter_async_context(NetlinkBackend(netns=node.node.name)) for node in nodes]
        yield [Agent(node, backend) for node, backend in zip(nodes, backends, strict=True)]


def measure(name: str, agents: Sequence[Agent], *, port: int, clients: Sequence[str] = CLIENTS) -> float:
    """Probe every node with every client on ``port``; record and return the agreement."""
    choices = [probe(agent.node, port=port, clients=clients) for agent in agents]
    for each in choices:
        assert len(each) == len(clients), f"{name}: {len(each)} of {len(clients)} clients got an entry"
    FIGURES[name] = agreement(choices)
    _write()
    return FIGURES[name]


def _write() -> None:
    results = os.environ.get("LAB_RESULTS")
    if results:
        Path(results, "affinity.json").write_text(json.dumps(FIGURES, indent=1, sort_keys=True))


# Four histories of one final set of ten pods: one at a time up, one at a time down, all at once, scattered,
# with pods that came and went on the way.
FINAL = tuple(range(10))
HISTORIES: tuple[tuple[tuple[int, ...], ...], ...] = (
    tuple(tuple(range(n)) for n in range(1, 11)),
    tuple(tuple(range(9, 9 - n, -1)) for n in range(1, 11)),
    (FINAL,),
    ((3, 7, 12), (3, 7, 12, 0, 9), (0, 3, 7, 9, 14, 5), (0, 3, 5, 7, 9, 1, 2), FINAL[:8], FINAL),
)


async def replay(agent: Agent, port: int, history: Sequence[Sequence[int]], **kwargs: object) -> None:
    """Sync one node through a history of pod sets on ``port``."""
    for pods in history:
        await agent.sync(service(port, pods, **kwargs))  # type: ignore[arg-type]


async def test_identical_tables_whatever_the_history_and_persistence_alone_does_not(agents: list[Agent]) -> None:
    """Same ten pods, four histories: cluster scope agrees for 100 % of clients; rr and plain mh do not."""
    for agent, history in zip(agents, HISTORIES, strict=True):
        await replay(agent, 80, history, scheduler="rr", flags=frozenset())
        await replay(agent, 81, history, scheduler="mh", flags=frozenset())
        await replay(agent, 82, history)

    rr = measure("baseline rr + persistence", agents, port=80)
    plain = measure("plain mh (history order)", agents, port=81)
    scoped = measure("affinity-scope cluster", agents, port=82)

    assert scoped == 1.0
    assert rr < 0.5
    assert plain <= scoped


async def test_an_agent_restart_changes_nothing(agents: list[Agent]) -> None:
    """A node's agent that starts again (a new backend reading the kernel) plans nothing: agreement stays 100 %."""
    for agent, history in zip(agents, HISTORIES, strict=True):
        await replay(agent, 83, history)
    async with NetlinkBackend(netns=agents[0].node.node.name) as fresh:
        restarted = Agent(agents[0].node, fresh)
        assert await restarted.sync(service(83, FINAL)) == 0

    assert measure("(a) after an agent restart", agents, port=83) == 1.0


async def test_a_node_that_joins_late_agrees(agents: list[Agent]) -> None:
    """Three nodes through churn, the fourth starts with the final pods only: 100 %."""
    for agent, history in zip(agents[:3], HISTORIES[1:], strict=True):
        await replay(agent, 84, history)
    await agents[3].sync(service(84, FINAL))

    assert measure("(b) a node joins late", agents, port=84) == 1.0


REPLACED = (2, 5, 8)
NEW = (20, 21, 22)


def _replacement_orders() -> list[list[tuple[int, ...]]]:
    """Four orders of replacing pods 2, 5, 8 by 20, 21, 22 (each list: the pod sets a node goes through)."""
    after = [tuple(sorted((set(FINAL) - set(REPLACED[:n])) | set(NEW[:n]))) for n in range(1, 4)]
    reverse = [tuple(sorted((set(FINAL) - set(REPLACED[3 - n :])) | set(NEW[3 - n :]))) for n in range(1, 4)]
    adds_first = [tuple(sorted(set(FINAL) | set(NEW))), after[-1]]
    removes_first = [tuple(sorted(set(FINAL) - set(REPLACED))), after[-1]]
    return [after, reverse, adds_first, removes_first]


async def test_pods_replaced_in_different_orders(agents: list[Agent]) -> None:
    """3 of 10 pods replaced in four orders: mid-way the clients the change leaves in place agree; 100 % at the end."""
    orders = _replacement_orders()
    for agent in agents:
        await agent.sync(service(85, FINAL))
        await agent.sync(service(86, FINAL))
    for agent, order in zip(agents[:2], orders[:2], strict=True):  # half the nodes have applied the change
        await replay(agent, 85, order)
    for agent, order in zip(agents, orders, strict=True):
        await replay(agent, 86, order)

    mid = measure("(c) replacing 3 of 10, half the nodes done", agents, port=85)
    end = measure("(c) replacing 3 of 10, all nodes done", agents, port=86)
    kept_share = 1 - _moved(FINAL, orders[0][-1], among="all")
    FIGURES["(c) clients that keep their pod (model)"] = kept_share
    FIGURES["(c) clients of unchanged pods that move (model)"] = _moved(FINAL, orders[0][-1], among="kept")
    FIGURES["3 of 10 removed: clients of unchanged pods that move (model)"] = _moved(
        FINAL, tuple(i for i in FINAL if i not in REPLACED), among="kept"
    )
    FIGURES["3 added to 10: clients that move (model; ideal 3/13 = 0.231)"] = _moved(FINAL, (*FINAL, *NEW), among="all")
    _write()

    assert end == 1.0
    assert mid == pytest.approx(kept_share, abs=0.002)  # half-way, exactly the clients the change leaves in place


def _moved(before: Sequence[int], after: Sequence[int], *, among: str) -> float:
    """The share of clients the change sends to another pod (the model's tables, proved equal to the kernel's).

    ``among``: ``all`` clients, or only those whose pod is in both sets (``kept``).
    """
    moved = total = 0
    for vip in (VIP4, VIP6):
        key = ServiceKey(Protocol.TCP, vip, 1)
        old = lookup_table(service(1, before).services[key])
        new = lookup_table(service(1, after).services[key])
        kept = {d.key for d in new.destinations}
        for client in (c for c in CLIENTS if (":" in c) == (":" in vip)):
            was = old.choose(client)
            if was is None or (among == "kept" and was.key not in kept):
                continue
            total += 1
            now = new.choose(client)
            moved += now is None or now.key != was.key
    return moved / total


async def test_a_pod_that_drains_on_some_nodes_only(agents: list[Agent]) -> None:
    """Pod 4 removed while it has (IPv6) connections on two nodes (moved to weight 0), none elsewhere: 100 %."""
    for agent in agents:
        await agent.sync(service(87, FINAL))
    for agent in agents[:2]:
        probe(agent.node, port=87, clients=WARM)  # connections to every pod, on two nodes only
    for agent in agents:
        await agent.sync(service(87, tuple(i for i in FINAL if i != 4)))
    draining = [
        real.weight
        for real in (await agents[0].backend.read()).table.services[ServiceKey(Protocol.TCP, VIP6, 87)].reals
        if real.address == PODS6[4].address
    ]

    assert draining == [0]
    assert measure("(d) a pod drains on 2 of 4 nodes", agents, port=87) == 1.0


@pytest.mark.parametrize(
    ("port", "after", "name"),
    [(88, tuple(i for i in FINAL if i != 6), "one pod removed"), (89, (*FINAL, 23), "one pod added")],
    ids=["removed", "added"],
)
async def test_one_change_half_way(agents: list[Agent], port: int, after: tuple[int, ...], name: str) -> None:
    """One endpoint change applied on two nodes of four: exactly the clients it leaves in place agree."""
    for agent in agents:
        await agent.sync(service(port, FINAL))
    for agent in agents[:2]:
        await agent.sync(service(port, after))
    kept_share = 1 - _moved(FINAL, after, among="all")
    FIGURES[f"{name}, half the nodes done: clients of unchanged pods that move (model)"] = _moved(
        FINAL, after, among="kept"
    )

    assert measure(f"{name}, half the nodes done", agents, port=port) == pytest.approx(kept_share, abs=0.002)
