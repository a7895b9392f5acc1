"""The metrics say what the agent did: syncs, operations by kind, owned table, latency, local endpoints, drains."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.model import Protocol, RealServer, ServiceKey
from tests.agent.conftest import StartAgent
from tests.agent.fakes import FakeClock, endpoint_slice, list_everything, service, settle


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


async def test_metrics_after_syncs(start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend) -> None:
    """Two Services, three endpoints, one drain: every metric has the expected value."""
    agent = start_agent()
    web = service("web", cluster_ip="10.0.0.10")
    local = service(
        "lb",
        cluster_ip="10.0.0.50",
        type="LoadBalancer",
        externalTrafficPolicy="Local",
        ports=[{"port": 80, "protocol": "TCP", "nodePort": 30080}],
    )
    web_slice = endpoint_slice("web-1", service="web", endpoints=[("10.1.0.1", "worker2"), ("10.1.0.2", "worker2")])
    list_everything(agent, services=[web, local], slices=[web_slice])
    await settle()
    key = ServiceKey(Protocol.TCP, "10.0.0.10", 80)
    backend.set_connections(service=key, real=RealServer("10.1.0.2", 8080).key, active=1)
    agent.handlers["EndpointSlice"].upsert(endpoint_slice("web-1", service="web", endpoints=[("10.1.0.1", "worker2")]))
    await clock.advance(2.0)
    values = samples(agent.metrics.exposition())
    assert values[("ipvsctl_operations_applied_total", (("op", "add-service"),))] == 3  # 2 ClusterIPs, 1 NodePort
    assert values[("ipvsctl_operations_applied_total", (("op", "add-real-server"),))] == 2
    assert values[("ipvsctl_operations_applied_total", (("op", "drain-real-server"),))] == 1
    assert values[("ipvsctl_owned_virtual_services", ())] == 3
    assert values[("ipvsctl_owned_real_servers", ())] == 1
    assert values[("ipvsctl_services", (("state", "programmed"),))] == 2
    assert values[("ipvsctl_services_without_local_endpoints", ())] == 1
    assert values[("ipvsctl_drain_queue_size", ())] == 1
    assert values[("ipvsctl_syncs_total", (("kind", "full"), ("result", "ok")))] == 1
    assert values[("ipvsctl_syncs_total", (("kind", "incremental"), ("result", "ok")))] == 2
    assert values[("ipvsctl_sync_duration_seconds_count", (("kind", "incremental"),))] == 2
    assert values[("ipvsctl_event_to_kernel_seconds_count", ())] == 3  # web and lb at first, then web
    assert values[("ipvsctl_errors_total", (("source", "backend"),))] == 0
