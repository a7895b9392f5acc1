"""Network programming latency (the Kubernetes SLI): from an EndpointSlice's trigger time to the kernel."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

from ipvsctl.agent.metrics import NETWORK_PROGRAMMING_BUCKETS
from ipvsctl.agent.node import NodeAgent
from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.model import Protocol, ServiceKey
from tests.agent.conftest import StartAgent
from tests.agent.fakes import FakeClock, endpoint_slice, list_everything, node, service, settle
from tests.agent.test_metrics import samples
from tests.agent.test_runner import FailingBackend

COUNT = ("ipvsctl_network_programming_duration_seconds_count", ())
SUM = ("ipvsctl_network_programming_duration_seconds_sum", ())


def triggered(clock: FakeClock, seconds_ago: float, **changes: Any) -> dict[str, Any]:
    """The web slice with a last-change-trigger-time ``seconds_ago`` before the clock's wall time."""
    raw = endpoint_slice("web-1", service="web", endpoints=changes.pop("endpoints", [("10.1.0.1", "worker2")]))
    moment = clock.wall() - timedelta(seconds=seconds_ago)
    raw["metadata"]["annotations"] = {
        "endpoints.kubernetes.io/last-change-trigger-time": moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    }
    return raw


async def listed_agent(start_agent: StartAgent, clock: FakeClock) -> NodeAgent:
    agent = start_agent()
    await clock.advance(5.0)  # the agent has been up a while: trigger times after its start count
    list_everything(agent, services=[service("web", cluster_ip="10.0.0.10")], slices=[])
    await clock.advance(2.0)
    return agent


async def test_slice_change_is_observed_from_its_trigger_time(start_agent: StartAgent, clock: FakeClock) -> None:
    """A slice written 1.5 s after its trigger time and synced at once observes about 1.5 s."""
    agent = await listed_agent(start_agent, clock)
    agent.handlers["EndpointSlice"].upsert(triggered(clock, 1.5))
    await clock.advance(2.0)
    values = samples(agent.metrics.exposition())
    assert values[COUNT] == 1
    assert 1.5 <= values[SUM] < 2.0


async def test_history_before_the_agent_started_is_not_observed(start_agent: StartAgent, clock: FakeClock) -> None:
    """A trigger time from before the agent started (the first list) is not a programming latency."""
    agent = start_agent()
    list_everything(agent, services=[service("web", cluster_ip="10.0.0.10")], slices=[triggered(clock, 3600)])
    await clock.advance(2.0)
    assert samples(agent.metrics.exposition())[COUNT] == 0


async def test_relist_of_an_unchanged_slice_observes_nothing_more(start_agent: StartAgent, clock: FakeClock) -> None:
    """The same trigger time seen again (a relist after a 410) is not observed twice."""
    agent = await listed_agent(start_agent, clock)
    raw = triggered(clock, 0.5)
    agent.handlers["EndpointSlice"].upsert(raw)
    await clock.advance(2.0)
    agent.handlers["EndpointSlice"].replace([raw])
    await clock.advance(40.0)  # past a full resync too
    assert samples(agent.metrics.exposition())[COUNT] == 1


async def test_each_new_trigger_time_is_observed(start_agent: StartAgent, clock: FakeClock) -> None:
    """Two changes of the slice, each with its own trigger time, are two observations."""
    agent = await listed_agent(start_agent, clock)
    agent.handlers["EndpointSlice"].upsert(triggered(clock, 0.5))
    await clock.advance(2.0)
    agent.handlers["EndpointSlice"].upsert(triggered(clock, 0.5, endpoints=[("10.1.0.2", "worker2")]))
    await clock.advance(2.0)
    assert samples(agent.metrics.exposition())[COUNT] == 2


async def test_failed_sync_keeps_the_sample_until_the_change_is_programmed(
    start_agent: StartAgent, clock: FakeClock
) -> None:
    """While the kernel refuses, nothing is observed; the sample counts the time until the retry succeeds."""
    backend = FailingBackend()
    agent = start_agent(table=backend)
    await clock.advance(5.0)
    list_everything(agent, services=[service("web", cluster_ip="10.0.0.10")], slices=[])
    await clock.advance(2.0)
    backend.broken = True
    agent.handlers["EndpointSlice"].upsert(triggered(clock, 0.0))
    await clock.advance(2.0)
    assert samples(agent.metrics.exposition())[COUNT] == 0
    backend.broken = False
    await clock.advance(30.0)
    values = samples(agent.metrics.exposition())
    assert values[COUNT] == 1
    assert values[SUM] >= 2.0
    reals = backend.table.services[ServiceKey(Protocol.TCP, "10.0.0.10", 80)].reals
    assert [real.address for real in reals] == ["10.1.0.1"]


def test_buckets_are_kube_proxys() -> None:
    """The histogram has kube-proxy's 85 bucket edges, from 0.25 s to 5 minutes."""
    assert len(NETWORK_PROGRAMMING_BUCKETS) == 2 + 59 + 12 + 7
    assert (NETWORK_PROGRAMMING_BUCKETS[0], NETWORK_PROGRAMMING_BUCKETS[-1]) == (0.25, 300.0)


async def test_zone_label_change_retranslates_with_hints(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend
) -> None:
    """A Node moving to another zone changes which hinted endpoints its ClusterIP uses."""
    agent = start_agent()
    hinted = endpoint_slice("web-1", service="web", endpoints=[("10.1.0.1", "worker2"), ("10.1.0.2", "worker3")])
    for entry, zone in zip(hinted["endpoints"], ("zone-a", "zone-b"), strict=True):
        entry["hints"] = {"forZones": [{"name": zone}]}
    zoned = node()
    zoned["metadata"]["labels"] = {"topology.kubernetes.io/zone": "zone-a"}
    list_everything(agent, services=[service("web", cluster_ip="10.0.0.10")], slices=[hinted], nodes=[zoned])
    await clock.advance(2.0)
    key = ServiceKey(Protocol.TCP, "10.0.0.10", 80)
    assert [real.address for real in backend.table.services[key].reals] == ["10.1.0.1"]
    zoned["metadata"]["labels"] = {"topology.kubernetes.io/zone": "zone-b"}
    agent.handlers["Node"].upsert(zoned)
    await clock.advance(2.0)
    await settle()
    assert [real.address for real in backend.table.services[key].reals] == ["10.1.0.2"]
