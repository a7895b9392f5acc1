"""A stats dump against the kernel with real traffic: IPVS's counters and rates per virtual service and real
server, as ``ipvsadm -Ln --stats --rate`` shows them, through both IPVS transports."""

from __future__ import annotations

import asyncio
import time

import pytest

from ipvsctl.backend.base import Traffic, TrafficStats
from ipvsctl.backend.kernel import WIRES, NetlinkBackend, Wire
from ipvsctl.model import Protocol, RealServer, ServiceKey, VirtualService
from tests.contract.values import creation
from tests.kernel.netlab import Lab, Netns, Topology, http_get

pytestmark = pytest.mark.kernel

STATS_PERIOD = 2.0  # seconds between the IPVS estimator's runs (counters and rates move then)


async def settled(backend: NetlinkBackend) -> TrafficStats:
    """A dump once two in a row agree and show connections (the estimator has folded the per-CPU counters in)."""
    deadline = time.monotonic() + STATS_PERIOD * 4
    last = await backend.traffic()
    while True:
        await asyncio.sleep(0.5)
        now = await backend.traffic()
        totals = [(t.connections, t.packets_in, t.bytes_out) for t in now.services.values()]
        if (now.services == last.services and any(c for c, _, _ in totals)) or time.monotonic() > deadline:
            return now
        last = now


def ipvsadm_totals(node: Netns, key: ServiceKey) -> tuple[int, ...]:
    """The service line of ``ipvsadm -Ln --stats --exact``: Conns, InPkts, OutPkts, InBytes, OutBytes."""
    for line in node.ipvsadm("-Ln", "--stats", "--exact").splitlines():
        fields = line.split()
        if fields[:2] == [key.protocol.name, f"{key.address}:{key.port}"]:
            return tuple(int(field) for field in fields[2:7])
    raise AssertionError(f"no {key} in ipvsadm's listing")


async def traffic_through(lab: Lab, topology: Topology, backend: NetlinkBackend) -> ServiceKey:
    """A masquerading VIP over the three servers, and six requests through it."""
    for server in topology.servers:
        lab.serve_http(server.netns, identity=server.name, port=80)
    key = ServiceKey(Protocol.TCP, topology.vip, 80)
    vs = VirtualService(key, reals=tuple(RealServer(server.ipv4, 80) for server in topology.servers))
    report = await backend.apply(creation(vs))
    assert report.ok, report.failures
    http_get(topology.client.netns, topology.vip, port=80, count=6)
    return key


@pytest.mark.parametrize("wire", WIRES)
async def test_service_counters_are_ipvsadms(lab: Lab, topology: Topology, wire: Wire) -> None:
    """Six requests: the service's 64-bit totals are the numbers ipvsadm -Ln --stats --exact prints."""
    async with NetlinkBackend(netns=topology.node.name, wire=wire) as backend:
        key = await traffic_through(lab, topology, backend)
        stats = await settled(backend)
    service = stats.services[key]
    assert service.connections == 6
    assert (
        service.connections,
        service.packets_in,
        service.packets_out,
        service.bytes_in,
        service.bytes_out,
    ) == ipvsadm_totals(topology.node, key)


@pytest.mark.parametrize("wire", WIRES)
async def test_real_server_counters_add_up_to_the_service(lab: Lab, topology: Topology, wire: Wire) -> None:
    """Each real server took 2 of the 6 connections (rr); their packets and bytes add up to the service's."""
    async with NetlinkBackend(netns=topology.node.name, wire=wire) as backend:
        key = await traffic_through(lab, topology, backend)
        stats = await settled(backend)
    reals = [traffic for (owner, _), traffic in stats.real_servers.items() if owner == key]
    assert sorted(real.connections for real in reals) == [2, 2, 2]
    assert sum(real.bytes_out for real in reals) == stats.services[key].bytes_out > 0
    assert sum(real.packets_in for real in reals) == stats.services[key].packets_in > 0


async def test_rates_follow_the_traffic(lab: Lab, topology: Topology) -> None:
    """Within two estimator periods of the requests, the service's byte and connection rates are above 0."""
    async with NetlinkBackend(netns=topology.node.name) as backend:
        key = await traffic_through(lab, topology, backend)
        deadline = time.monotonic() + STATS_PERIOD * 3
        service = Traffic()
        while time.monotonic() < deadline:
            service = (await backend.traffic()).services[key]
            if service.bytes_in_per_second and service.connections_per_second:
                break
            await asyncio.sleep(0.25)
    assert (service.bytes_in_per_second > 0, service.connections_per_second > 0) == (True, True)


async def test_a_scrape_of_the_agent_shows_the_traffic_per_service_and_pod(lab: Lab, topology: Topology) -> None:
    """The agent programs a Service over the three servers; after six requests a real scrape of its /metrics
    shows 6 connections on the Service and 2 on each Pod, with packets both ways."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415 (agent tests only)

    from ipvsctl.agent.node import NodeAgent  # noqa: PLC0415
    from ipvsctl.agent.traffic import TrafficMode  # noqa: PLC0415
    from tests.agent.fakes import NODE, FakeClock, RecordingSink, config, endpoint_slice, node, service  # noqa: PLC0415
    from tests.agent.test_serving import agent_endpoints, get  # noqa: PLC0415

    for server in topology.servers:
        lab.serve_http(server.netns, identity=server.name, port=80)
    web = endpoint_slice("web-1", service="web", endpoints=[(s.ipv4, NODE) for s in topology.servers], port=80)
    for entry, server in zip(web["endpoints"], topology.servers, strict=True):
        entry["targetRef"] = {"kind": "Pod", "namespace": "default", "name": f"web-{server.name}"}
    async with NetlinkBackend(netns=topology.node.name) as backend:
        agent = NodeAgent(
            config=config(traffic_metrics=TrafficMode.ENDPOINT),
            backend=backend,
            event_sink=RecordingSink(),
            clock=FakeClock(),
        )
        agent.handlers["Service"].replace([service("web", cluster_ip=topology.vip)])
        agent.handlers["EndpointSlice"].replace([web])
        agent.handlers["Node"].replace([node()])
        try:
            assert (await agent.runner.run_once(full=True)).ok
            http_get(topology.client.netns, topology.vip, port=80, count=6)
            await settled(backend)
            async with agent_endpoints(agent) as ports:
                status, text = await get(ports["/metrics"], "/metrics")
        finally:
            await agent.health_checks.close()
    values = {
        (sample.name, sample.labels.get("pod", ""), sample.labels.get("direction", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("service") == "web"
    }
    pods = [f"web-{server.name}" for server in topology.servers]
    assert status == 200
    assert values[("ipvsctl_service_connections_total", "", "")] == 6
    assert [values[("ipvsctl_endpoint_connections_total", pod, "")] for pod in pods] == [2, 2, 2]
    assert values[("ipvsctl_service_packets_total", "", "in")] > 0
    assert values[("ipvsctl_service_bytes_total", "", "out")] > 0


def test_show_stats_prints_totals_and_rates_between_two_dumps(lab: Lab, topology: Topology) -> None:
    """`ipvsctl show --stats -o json` while requests keep coming: totals per VIP and real server, and rates
    between its two dumps above 0."""
    import json  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from tests.kernel.scenario_support import IPVSCTL  # noqa: PLC0415

    for server in topology.servers:
        lab.serve_http(server.netns, identity=server.name, port=80)
    key = ServiceKey(Protocol.TCP, topology.vip, 80)
    vs = VirtualService(key, reals=tuple(RealServer(server.ipv4, 80) for server in topology.servers))
    asyncio.run(_create(topology.node, vs))
    done = threading.Event()

    def requests() -> None:
        deadline = time.monotonic() + 60
        while not done.is_set() and time.monotonic() < deadline:
            http_get(topology.client.netns, topology.vip, port=80)
            time.sleep(0.1)

    sender = threading.Thread(target=requests, name="requests")
    sender.start()
    try:
        time.sleep(STATS_PERIOD)
        shown = topology.node.run(IPVSCTL, "show", "--interface", "ipvs0", "--no-netfilter", "--stats",
                                  "--stats-interval", "5", "-o", "json")  # fmt: skip
    finally:
        done.set()
        sender.join()
    document = json.loads(shown.stdout)
    (entry,) = [vs for vs in document["virtualServices"] if vs["address"] == topology.vip]
    reals = [real["stats"] for real in entry["realServers"]]
    assert document["statsInterval"] >= 5
    assert entry["stats"]["connections"] == sum(real["connections"] for real in reals) > 0
    assert entry["stats"]["perSecond"]["connections"] > 0
    assert entry["stats"]["perSecond"]["bytesOut"] > 0


async def _create(node: Netns, vs: VirtualService) -> None:
    async with NetlinkBackend(netns=node.name) as backend:
        report = await backend.apply(creation(vs))
    assert report.ok, report.failures
