"""Agents on two nodes change a cluster-scope table at the same moment, whenever each learns of the change."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.model import Protocol, ServiceKey
from tests.agent.conftest import StartAgent
from tests.agent.fakes import JSON, FakeClock, endpoint_slice, list_everything, service, settle
from tests.agent.test_metrics import samples

KEY = ServiceKey(Protocol.TCP, "10.0.0.10", 80)
HELD = "ipvsctl_affinity_switches_held"
SCOPED = {"ipvsctl.io/affinity-scope": "cluster"}
BEFORE = [("10.1.0.1", "worker2"), ("10.1.0.2", "worker2")]
AFTER = [*BEFORE, ("10.1.0.3", "worker3")]


def scoped_service() -> JSON:
    """A ClientIP Service with cluster-wide affinity."""
    return service("web", cluster_ip="10.0.0.10", sessionAffinity="ClientIP", annotations=SCOPED)


def triggered(endpoints: list[tuple[str, str]], *, clock: FakeClock, ago: float) -> JSON:
    """The slice as the EndpointSlice controller writes it: with the trigger time of the pod change."""
    written = endpoint_slice("web-1", service="web", endpoints=endpoints)
    moment = clock.wall() - timedelta(seconds=ago)
    written["metadata"]["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": moment.isoformat()}
    return written


def addresses(backend: MemoryBackend) -> list[str]:
    """The real servers of the cluster-scope VIP."""
    return [real.address for real in backend.table.services[KEY].reals]


async def test_two_nodes_switch_together_though_one_learns_later(start_agent: StartAgent, clock: FakeClock) -> None:
    """Node 1 learns of a new pod 1.5 s before node 2; both keep the old table until trigger + 3 s, then switch."""
    one, two = MemoryBackend(), MemoryBackend()
    first, second = start_agent(table=one), start_agent(table=two, node_name="worker9")
    for agent in (first, second):
        list_everything(
            agent, services=[scoped_service()], slices=[endpoint_slice("web-1", service="web", endpoints=BEFORE)]
        )
    await settle()
    change = triggered(AFTER, clock=clock, ago=0.2)
    first.handlers["EndpointSlice"].upsert(change)
    await clock.advance(1.5)
    second.handlers["EndpointSlice"].upsert(change)
    await clock.advance(1.2)  # 2.9 s after the trigger
    held = (addresses(one), addresses(two))
    await clock.advance(0.2)  # 3.1 s after

    assert held == (["10.1.0.1", "10.1.0.2"], ["10.1.0.1", "10.1.0.2"])
    assert addresses(one) == addresses(two) == ["10.1.0.1", "10.1.0.2", "10.1.0.3"]


async def test_a_held_change_shows_in_a_gauge(start_agent: StartAgent, clock: FakeClock) -> None:
    """ipvsctl_affinity_switches_held counts Services holding a change: 1 while held, 0 after the moment."""
    agent = start_agent()
    list_everything(
        agent, services=[scoped_service()], slices=[endpoint_slice("web-1", service="web", endpoints=BEFORE)]
    )
    await settle()
    agent.handlers["EndpointSlice"].upsert(triggered(AFTER, clock=clock, ago=0.2))
    await clock.advance(1.0)
    during = samples(agent.metrics.exposition())[(HELD, ())]
    await clock.advance(3.0)

    assert (during, samples(agent.metrics.exposition())[(HELD, ())]) == (1, 0)


@pytest.mark.parametrize(
    ("agent_flags", "scoped", "ago"),
    [
        pytest.param({}, True, 5.0, id="learnt-after-its-moment"),
        pytest.param({"affinity_switch_delay": 0.0}, True, 0.2, id="delay-0"),
        pytest.param({}, False, 0.2, id="node-scope-service"),
    ],
)
async def test_a_change_applies_at_once_when_it_is_not_held(
    start_agent: StartAgent,
    clock: FakeClock,
    backend: MemoryBackend,
    agent_flags: dict[str, float],
    scoped: bool,
    ago: float,
) -> None:
    """Late (past trigger + delay), with --affinity-switch-delay 0, or without cluster scope: nothing waits."""
    agent = start_agent(**agent_flags)
    web = scoped_service() if scoped else service("web", cluster_ip="10.0.0.10", sessionAffinity="ClientIP")
    list_everything(agent, services=[web], slices=[endpoint_slice("web-1", service="web", endpoints=BEFORE)])
    await settle()
    agent.handlers["EndpointSlice"].upsert(triggered(AFTER, clock=clock, ago=ago))
    await clock.advance(1.0)

    assert addresses(backend) == ["10.1.0.1", "10.1.0.2", "10.1.0.3"]


async def test_a_removed_pod_that_no_longer_serves_leaves_at_once(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend
) -> None:
    """A pod gone from the slice is not held back: its clients must not wait for a dead pod."""
    agent = start_agent()
    list_everything(
        agent, services=[scoped_service()], slices=[endpoint_slice("web-1", service="web", endpoints=AFTER)]
    )
    await settle()
    agent.handlers["EndpointSlice"].upsert(triggered(BEFORE, clock=clock, ago=0.2))
    await clock.advance(1.0)

    assert addresses(backend) == ["10.1.0.1", "10.1.0.2"]
