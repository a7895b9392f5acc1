"""Traffic per Service and per Pod on /metrics: IPVS's counters named, bounded by a cap, dumped at most once per
minimum age whatever the scrape rate."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from ipvsctl.agent.node import NodeAgent
from ipvsctl.agent.traffic import SERIES_PER_SERVICE, TrafficMode
from ipvsctl.backend.base import Traffic, TrafficStats
from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.errors import BackendError
from ipvsctl.model import Protocol, RealServer, ServiceKey, VirtualService
from tests.agent.conftest import StartAgent
from tests.agent.fakes import FakeClock, endpoint_slice, list_everything, service, settle
from tests.agent.test_serving import agent_endpoints, get
from tests.contract.values import creation

WEB = ServiceKey(Protocol.TCP, "10.0.0.10", 80)
API = ServiceKey(Protocol.TCP, "10.0.0.20", 80)
POD = RealServer("10.1.0.1", 8080).key
WEB_LABELS = {
    "namespace": "default",
    "service": "web",
    "port": "http",
    "protocol": "TCP",
    "virtual_service": "10.0.0.10:80",
}
TRAFFIC = Traffic(
    connections=7,
    packets_in=70,
    packets_out=60,
    bytes_in=7000,
    bytes_out=90000,
    connections_per_second=2,
    packets_in_per_second=20,
    packets_out_per_second=15,
    bytes_in_per_second=2000,
    bytes_out_per_second=30000,
)


def web_slice() -> dict[str, Any]:
    """The web slice: one endpoint, pod web-0."""
    raw = endpoint_slice("web-1", service="web", endpoints=[("10.1.0.1", "worker2")])
    raw["endpoints"][0]["targetRef"] = {"kind": "Pod", "namespace": "default", "name": "web-0"}
    raw["ports"][0]["name"] = "http"
    return raw


async def programmed(start_agent: StartAgent, backend: MemoryBackend, **changes: Any) -> NodeAgent:
    """An agent that has programmed web (port http) and api, with traffic set on web and its endpoint."""
    agent = start_agent(**changes)
    web = service("web", cluster_ip="10.0.0.10", ports=[{"name": "http", "port": 80, "protocol": "TCP"}])
    list_everything(agent, services=[web, service("api", cluster_ip="10.0.0.20")], slices=[web_slice()])
    await settle()
    backend.set_traffic(service=WEB, traffic=TRAFFIC)
    backend.set_traffic(service=WEB, real=POD, traffic=Traffic(connections=5, bytes_in=500))
    backend.set_connections(service=WEB, real=POD, active=3, inactive=2)
    return agent


async def scrape(agent: NodeAgent) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """One real scrape of the agent's /metrics over HTTP, by sample name and labels."""
    async with agent_endpoints(agent) as ports:
        status, text = await get(ports["/metrics"], "/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def labelled(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


async def test_service_counters_are_labelled_with_the_service(start_agent: StartAgent, backend: MemoryBackend) -> None:
    """In service mode, web's counters and rates carry namespace, Service, port name, protocol and VIP."""
    values = await scrape(await programmed(start_agent, backend))
    web = labelled(**WEB_LABELS)
    inbound, outbound = labelled(**WEB_LABELS, direction="in"), labelled(**WEB_LABELS, direction="out")
    assert [
        values[("ipvsctl_service_connections_total", web)],
        values[("ipvsctl_service_packets_total", inbound)],
        values[("ipvsctl_service_bytes_total", outbound)],
        values[("ipvsctl_service_connections_per_second", web)],
        values[("ipvsctl_service_bytes_per_second", inbound)],
    ] == [7, 70, 90000, 2, 2000]


async def test_service_mode_exports_no_endpoint_series(start_agent: StartAgent, backend: MemoryBackend) -> None:
    """Service mode: no per-Pod series at all."""
    values = await scrape(await programmed(start_agent, backend))
    assert not [name for name, _ in values if name.startswith("ipvsctl_endpoint_")]


async def test_endpoint_mode_labels_each_real_server_with_its_pod(
    start_agent: StartAgent, backend: MemoryBackend
) -> None:
    """Endpoint mode: web's endpoint is labelled pod web-0, with its counters and active/inactive connections."""
    values = await scrape(await programmed(start_agent, backend, traffic_metrics=TrafficMode.ENDPOINT))
    pod = labelled(**WEB_LABELS, pod="web-0", endpoint="10.1.0.1:8080")
    assert [
        values[("ipvsctl_endpoint_connections_total", pod)],
        values[("ipvsctl_endpoint_bytes_total", labelled(**dict(pod), direction="in"))],
        values[("ipvsctl_endpoint_active_connections", pod)],
        values[("ipvsctl_endpoint_inactive_connections", pod)],
    ] == [5, 500, 3, 2]


async def test_off_exports_nothing_and_dumps_nothing(start_agent: StartAgent, backend: MemoryBackend) -> None:
    """--traffic-metrics=off: no traffic series and no stats dump."""
    values = await scrape(await programmed(start_agent, backend, traffic_metrics=TrafficMode.OFF))
    assert not [name for name, _ in values if name.startswith(("ipvsctl_service_", "ipvsctl_endpoint_"))]
    assert values[("ipvsctl_traffic_stats_dumps_total", ())] == 0


async def test_frequent_scrapes_share_one_dump_per_min_age(
    start_agent: StartAgent, backend: MemoryBackend, clock: FakeClock
) -> None:
    """Five scrapes within the minimum age cost one dump; one after it has passed costs a second."""
    agent = await programmed(start_agent, backend, traffic_min_age=15.0)
    for _ in range(5):
        await scrape(agent)
        await clock.advance(2.0)
    before = (await scrape(agent))[("ipvsctl_traffic_stats_dumps_total", ())]
    await clock.advance(15.0)
    after = (await scrape(agent))[("ipvsctl_traffic_stats_dumps_total", ())]
    assert (before, after) == (1, 2)


class CountingBackend(MemoryBackend):
    """A memory backend whose stats dumps take a while and are counted (as a large table's would)."""

    dumps = 0

    async def traffic(self) -> TrafficStats:
        self.dumps += 1
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return await super().traffic()


async def test_concurrent_scrapes_wait_for_the_same_dump(start_agent: StartAgent) -> None:
    """Ten scrapes at once (several Prometheus replicas) make a single dump between them."""
    table = CountingBackend()
    agent = start_agent(table=table)
    list_everything(agent, services=[service("web", cluster_ip="10.0.0.10")])
    await settle()
    await asyncio.gather(*(agent.traffic.refresh() for _ in range(10)))
    assert table.dumps == 1


async def test_newer_values_appear_after_the_min_age(
    start_agent: StartAgent, backend: MemoryBackend, clock: FakeClock
) -> None:
    """Counters moved by traffic show at the first scrape after the minimum age, not before."""
    agent = await programmed(start_agent, backend)
    await scrape(agent)
    backend.set_traffic(service=WEB, traffic=Traffic(connections=8))
    cached = (await scrape(agent))[("ipvsctl_service_connections_total", labelled(**WEB_LABELS))]
    await clock.advance(agent.traffic.min_age)
    fresh = (await scrape(agent))[("ipvsctl_service_connections_total", labelled(**WEB_LABELS))]
    assert (cached, fresh) == (7, 8)


async def test_the_cap_keeps_whole_services_and_counts_the_rest(
    start_agent: StartAgent, backend: MemoryBackend
) -> None:
    """A cap of one Service's series: api (first by name) is kept, web's 10 series are dropped and counted."""
    values = await scrape(await programmed(start_agent, backend, traffic_max_series=SERIES_PER_SERVICE + 3))
    services = {dict(labels)["service"] for name, labels in values if name == "ipvsctl_service_connections_total"}
    assert (services, values[("ipvsctl_traffic_series_dropped_total", ())]) == ({"api"}, SERIES_PER_SERVICE)


async def test_a_foreign_virtual_service_is_not_exported(start_agent: StartAgent, backend: MemoryBackend) -> None:
    """A virtual service the agent does not own (another program's) has no series."""
    agent = await programmed(start_agent, backend)
    foreign = ServiceKey(Protocol.TCP, "203.0.113.99", 80)
    await backend.apply(creation(VirtualService(foreign)))
    backend.set_traffic(service=foreign, traffic=TRAFFIC)
    values = await scrape(agent)
    exported = {
        dict(labels)["virtual_service"] for name, labels in values if name == "ipvsctl_service_connections_total"
    }
    assert exported == {"10.0.0.10:80", "10.0.0.20:80"}


async def test_a_node_port_is_labelled_with_its_service_port(start_agent: StartAgent, backend: MemoryBackend) -> None:
    """A NodePort VIP (node address, node port) carries the Service port's name, not the node port."""
    agent = start_agent()
    lb = service(
        "lb",
        cluster_ip="10.0.0.50",
        type="NodePort",
        ports=[{"name": "web", "port": 80, "protocol": "TCP", "nodePort": 30080}],
    )
    list_everything(agent, services=[lb])
    await settle()
    values = await scrape(agent)
    node_port = [dict(labels) for name, labels in values if name == "ipvsctl_service_connections_total"]
    assert {(entry["virtual_service"], entry["port"]) for entry in node_port} == {
        ("10.0.0.50:80", "web"),
        ("192.0.2.1:30080", "web"),
    }


class BrokenStats(MemoryBackend):
    """A memory backend whose stats dump fails (a socket gone)."""

    async def traffic(self) -> TrafficStats:
        raise BackendError("netlink socket gone", target="ipvs")


async def test_a_failed_dump_is_counted_and_the_scrape_still_answers(start_agent: StartAgent) -> None:
    """The stats dump fails: /metrics still answers (without traffic series) and the error is counted."""
    agent = start_agent(table=BrokenStats())
    list_everything(agent, services=[service("web", cluster_ip="10.0.0.10")])
    await settle()
    values = await scrape(agent)
    assert values[("ipvsctl_errors_total", (("source", "traffic"),))] == 1
    assert not [name for name, _ in values if name.startswith("ipvsctl_service_")]
