"""NetlinkBackend against the kernel itself: ipvsadm as the oracle, the dummy interface, namespaces, traffic."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace

import pytest

from ipvsctl.backend.base import RealServerStats
from ipvsctl.backend.kernel import NetlinkBackend
from ipvsctl.errors import BackendError
from ipvsctl.ipvsadm import parse_save, render_restore
from ipvsctl.model import (
    EditRealServer,
    EditVirtualService,
    Forwarding,
    Persistence,
    Protocol,
    RealServer,
    RealServerKey,
    ServiceKey,
    Table,
    VirtualService,
)
from tests.contract.values import creation
from tests.kernel.netlab import Lab, Netns, Topology, http_get

pytestmark = pytest.mark.kernel

STATS_PERIOD = 2.0  # seconds between the IPVS estimator's runs, which update the dumped stats

TABLE = Table.of(
    [
        VirtualService(
            ServiceKey(Protocol.TCP, "203.0.113.10", 80),
            scheduler="wrr",
            persistence=Persistence(timeout=300, netmask=24),
            reals=(
                RealServer("198.51.100.11", 8080, weight=3),
                RealServer("198.51.100.12", 80, forwarding=Forwarding.ROUTE),
            ),
        ),
        VirtualService(
            ServiceKey(Protocol.UDP, "2001:db8:f::10", 53),
            scheduler="sh",
            sched_flags=frozenset({"sh-port"}),
            one_packet=True,
            reals=(RealServer("2001:db8:5::11", 53, forwarding=Forwarding.TUNNEL),),
        ),
        VirtualService(ServiceKey.fwmark(7, family=6), persistence=Persistence(timeout=60, netmask=64)),
    ]
)


@pytest.fixture
async def backend(netns: Netns) -> AsyncIterator[NetlinkBackend]:
    """A NetlinkBackend on the test's namespace."""
    async with NetlinkBackend(netns=netns.name) as opened:
        yield opened


async def test_ipvsadm_sees_what_the_backend_wrote(backend: NetlinkBackend, netns: Netns) -> None:
    """ipvsadm -Sn of the namespace parses to the table the backend created."""
    report = await backend.apply(creation(*TABLE))

    assert report.ok, report.failures
    assert parse_save(netns.ipvsadm("-Sn")) == TABLE


async def test_the_backend_reads_what_ipvsadm_wrote(backend: NetlinkBackend, netns: Netns) -> None:
    """A table restored with ipvsadm -R reads back through the backend unchanged."""
    netns.ipvsadm("-R", input=render_restore(creation(*TABLE)))

    assert (await backend.read()).table == TABLE


async def test_the_interface_is_a_dummy_that_is_up(backend: NetlinkBackend, netns: Netns) -> None:
    """The first bind creates ipvs0 as a dummy interface, up, holding /32 and /128 host addresses."""
    await backend.bind_addresses({"203.0.113.10", "2001:db8:f::10"})

    (link,) = json.loads(netns.ip("-j", "-d", "addr", "show", "dev", "ipvs0"))
    assert link["linkinfo"]["info_kind"] == "dummy"
    assert "UP" in link["flags"]
    assert {(a["local"], a["prefixlen"]) for a in link["addr_info"] if a["scope"] == "global"} == {
        ("203.0.113.10", 32),
        ("2001:db8:f::10", 128),
    }


async def test_removing_the_interface_deletes_the_link(backend: NetlinkBackend, netns: Netns) -> None:
    """After remove_interface the namespace has no ipvs0 any more."""
    await backend.bind_addresses({"203.0.113.10"})

    await backend.remove_interface()

    assert "ipvs0" not in {link["ifname"] for link in json.loads(netns.ip("-j", "link", "show"))}


async def test_an_interface_name_of_ones_own_is_used(netns: Netns) -> None:
    """The interface parameter names the dummy the backend creates."""
    async with NetlinkBackend(netns=netns.name, interface="vips") as backend:
        await backend.bind_addresses({"203.0.113.10"})

    assert json.loads(netns.ip("-j", "link", "show", "vips"))[0]["ifname"] == "vips"


async def test_a_backend_sees_only_its_own_namespace(backend: NetlinkBackend, lab: Lab) -> None:
    """What the backend writes in its namespace is absent from another one."""
    await backend.apply(creation(*TABLE))

    async with NetlinkBackend(netns=lab.netns("other").name) as other:
        assert (await other.read()).table == Table()


async def test_an_absent_namespace_is_a_backend_error() -> None:
    """A namespace name with no file under /run/netns fails as BackendError naming it."""
    async with NetlinkBackend(netns="no-such-netns") as backend:
        with pytest.raises(BackendError, match="no-such-netns"):
            await backend.read()


async def test_traffic_shows_in_connection_counts_and_stats(lab: Lab, topology: Topology) -> None:
    """After six requests through a masquerading VIP, the real servers report connections and packets."""
    for server in topology.servers:
        lab.serve_http(server.netns, identity=server.name, port=80)
    key = ServiceKey(Protocol.TCP, topology.vip, 80)
    vs = VirtualService(key, reals=tuple(RealServer(server.ipv4, 80) for server in topology.servers))
    async with NetlinkBackend(netns=topology.node.name) as backend:
        await backend.apply(creation(vs))
        http_get(topology.client.netns, topology.vip, port=80, count=6)

        counts = (await backend.read()).connections
        stats = await _settled_stats(backend)

    assert sum(each.total for each in counts.values()) == 6
    assert sum(each.connections for each in stats.values()) == 6
    assert all(each.packets_in > 0 and each.bytes_out > 0 for each in stats.values())


async def test_in_place_edits_keep_the_kernels_entries(lab: Lab, topology: Topology) -> None:
    """Editing a service and draining a real server keep their live connection counts (no delete + add)."""
    for server in topology.servers:
        lab.serve_http(server.netns, identity=server.name, port=80)
    key = ServiceKey(Protocol.TCP, topology.vip, 80)
    before = VirtualService(key, reals=tuple(RealServer(server.ipv4, 80) for server in topology.servers))
    after = replace(before, scheduler="wlc", persistence=Persistence(timeout=60, netmask=24))
    drained = before.reals[0].with_weight(0)
    async with NetlinkBackend(netns=topology.node.name) as backend:
        await backend.apply(creation(before))
        http_get(topology.client.netns, topology.vip, port=80, count=6)

        report = await backend.apply(
            [
                EditVirtualService(after.settings(), previous=before.settings()),
                EditRealServer(key, drained, previous=before.reals[0], drain=True),
            ]
        )
        state = await backend.read()

    assert report.ok, report.failures
    assert sum(each.total for each in state.connections.values()) == 6
    assert state.connections[(key, drained.key)].total == 2


async def _settled_stats(backend: NetlinkBackend) -> Mapping[tuple[ServiceKey, RealServerKey], RealServerStats]:
    """Stats once the kernel's estimator has folded the per-CPU counters in (it runs every 2 s)."""
    deadline = time.monotonic() + STATS_PERIOD * 3
    while True:
        stats = (await backend.read()).stats
        if any(each.connections for each in stats.values()) or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.25)
