"""ipvsctl_affinity_table_digest_info: each node exports a digest of its cluster-scope tables' inputs."""

from __future__ import annotations

from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.model import Protocol, RealServer, ServiceKey
from tests.agent.conftest import StartAgent
from tests.agent.fakes import FakeClock, endpoint_slice, list_everything, service, settle
from tests.agent.test_metrics import samples

DIGEST = "ipvsctl_affinity_table_digest_info"
SCOPED = {"ipvsctl.io/affinity-scope": "cluster"}


def digests(agent_metrics: bytes) -> dict[tuple[tuple[str, str], ...], float]:
    """The digest series, by labels."""
    return {labels: value for (name, labels), value in samples(agent_metrics).items() if name == DIGEST}


async def test_a_cluster_scope_service_exports_its_digest(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend
) -> None:
    """A cluster-scope Service has one series per VIP; a ClientIP Service of node scope has none."""
    agent = start_agent()
    scoped = service("web", cluster_ip="10.0.0.10", sessionAffinity="ClientIP", annotations=SCOPED)
    plain = service("api", cluster_ip="10.0.0.20", sessionAffinity="ClientIP")
    slices = [
        endpoint_slice("web-1", service="web", endpoints=[("10.1.0.1", "worker2"), ("10.1.0.2", "worker2")]),
        endpoint_slice("api-1", service="api", endpoints=[("10.1.0.3", "worker2")]),
    ]
    list_everything(agent, services=[scoped, plain], slices=slices)
    await settle()

    (labels,) = digests(agent.metrics.exposition())
    named = dict(labels)
    assert (named["namespace"], named["service"], named["virtual_service"]) == ("default", "web", "tcp/10.0.0.10:80")
    assert len(named["digest"]) == 16


async def test_the_digest_follows_the_endpoints(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend
) -> None:
    """An endpoint change gives a new digest, and the old series goes away."""
    agent = start_agent()
    scoped = service("web", cluster_ip="10.0.0.10", sessionAffinity="ClientIP", annotations=SCOPED)
    two = endpoint_slice("web-1", service="web", endpoints=[("10.1.0.1", "worker2"), ("10.1.0.2", "worker2")])
    list_everything(agent, services=[scoped], slices=[two])
    await settle()
    before = set(digests(agent.metrics.exposition()))
    agent.handlers["EndpointSlice"].upsert(endpoint_slice("web-1", service="web", endpoints=[("10.1.0.1", "worker2")]))
    await clock.advance(2.0)
    after = set(digests(agent.metrics.exposition()))

    assert len(before) == len(after) == 1
    assert before != after


async def test_a_deleted_service_takes_only_its_own_series(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend
) -> None:
    """An incremental sync of one Service's deletion drops its series and leaves another Service's as it was."""
    agent = start_agent()
    web = service("web", cluster_ip="10.0.0.10", sessionAffinity="ClientIP", annotations=SCOPED)
    api = service("api", cluster_ip="10.0.0.20", sessionAffinity="ClientIP", annotations=SCOPED)
    slices = [
        endpoint_slice("web-1", service="web", endpoints=[("10.1.0.1", "worker2")]),
        endpoint_slice("api-1", service="api", endpoints=[("10.1.0.3", "worker2")]),
    ]
    list_everything(agent, services=[web, api], slices=slices)
    await settle()
    before = set(digests(agent.metrics.exposition()))
    agent.handlers["Service"].delete(web)
    await clock.advance(2.0)
    after = set(digests(agent.metrics.exposition()))

    assert after == {labels for labels in before if dict(labels)["service"] == "api"}
    assert len(before) == 2


async def test_a_service_leaving_cluster_scope_loses_its_series(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend
) -> None:
    """Without the annotation the VIP is of node scope again: no digest series."""
    agent = start_agent()
    scoped = service("web", cluster_ip="10.0.0.10", sessionAffinity="ClientIP", annotations=SCOPED)
    slices = [endpoint_slice("web-1", service="web", endpoints=[("10.1.0.1", "worker2")])]
    list_everything(agent, services=[scoped], slices=slices)
    await settle()
    agent.handlers["Service"].upsert(service("web", cluster_ip="10.0.0.10", sessionAffinity="ClientIP"))
    await clock.advance(2.0)

    assert digests(agent.metrics.exposition()) == {}


async def test_a_cluster_scope_drain_starts_its_clock_at_once(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend
) -> None:
    """A removed real server with connections, moved to weight 0, is draining after the next sync (not a resync)."""
    agent = start_agent()
    scoped = service("web", cluster_ip="10.0.0.10", sessionAffinity="ClientIP", annotations=SCOPED)
    two = endpoint_slice("web-1", service="web", endpoints=[("10.1.0.1", "worker2"), ("10.1.0.2", "worker2")])
    list_everything(agent, services=[scoped], slices=[two])
    await settle()
    backend.set_connections(
        service=ServiceKey(Protocol.TCP, "10.0.0.10", 80), real=RealServer("10.1.0.2", 8080).key, active=1
    )
    agent.handlers["EndpointSlice"].upsert(endpoint_slice("web-1", service="web", endpoints=[("10.1.0.1", "worker2")]))
    await clock.advance(2.0)

    assert samples(agent.metrics.exposition())[("ipvsctl_drain_queue_size", ())] == 1
