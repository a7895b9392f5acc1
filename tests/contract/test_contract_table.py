"""Contract: what a backend writes it reads back exactly, and edits happen in place."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ipvsctl.backend.base import Backend, RealServerStats
from ipvsctl.model import (
    ConnectionCounts,
    DeleteRealServer,
    DeleteVirtualService,
    EditRealServer,
    EditVirtualService,
    Forwarding,
    Persistence,
    Protocol,
    RealServer,
    ServiceKey,
    Table,
    VirtualService,
)
from tests.contract.values import TCP80, TCP80_V6, install, key, real, service, table_of


async def test_a_fresh_backend_reads_an_empty_table(backend: Backend) -> None:
    """A new backend reads no services, no counts and no bound addresses."""
    state = await backend.read()

    assert (state.table, dict(state.connections), dict(state.stats), state.bound_addresses) == (
        Table(),
        {},
        {},
        frozenset(),
    )


@pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("protocol", [Protocol.TCP, Protocol.UDP, Protocol.SCTP], ids=["tcp", "udp", "sctp"])
async def test_a_service_with_real_servers_reads_back_as_written(
    backend: Backend, protocol: Protocol, family: int
) -> None:
    """A service and its real servers read back equal to what was added."""
    written = service(key(protocol, family=family), real(11, family=family), real(12, family=family, weight=5))

    await install(backend, written)

    assert await table_of(backend) == Table.of([written])


@pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])
async def test_a_firewall_mark_service_reads_back_as_written(backend: Backend, family: int) -> None:
    """A firewall-mark service of either family reads back with its mark and real servers."""
    written = service(ServiceKey.fwmark(2**32 - 1, family=family), real(11, family=family), scheduler="wlc")

    await install(backend, written)

    assert await table_of(backend) == Table.of([written])


@pytest.mark.parametrize(
    ("service_key", "persistence"),
    [(TCP80, Persistence(timeout=300, netmask=24)), (TCP80_V6, Persistence(timeout=10800, netmask=64))],
    ids=["ipv4-24", "ipv6-64"],
)
async def test_persistence_timeout_and_netmask_read_back_exactly(
    backend: Backend, service_key: ServiceKey, persistence: Persistence
) -> None:
    """Client affinity keeps its timeout and netmask (IPv4 /24, IPv6 /64) through the backend."""
    written = service(service_key, persistence=persistence)

    await install(backend, written)

    assert (await table_of(backend)).services[service_key].persistence == persistence


@pytest.mark.parametrize(
    "written",
    [
        VirtualService(TCP80, scheduler="sh", sched_flags=frozenset({"sh-fallback", "sh-port"})),
        VirtualService(TCP80, scheduler="mh", sched_flags=frozenset({"mh-port"})),
        VirtualService(TCP80, scheduler="rr", sched_flags=frozenset({"flag-1", "flag-3"})),
        VirtualService(key(Protocol.UDP, port=53), scheduler="rr", one_packet=True),
        VirtualService(key(Protocol.UDP, port=5060), scheduler="rr", pe_name="sip"),
    ],
    ids=["sh-flags", "mh-flags", "generic-flags", "one-packet", "sip-engine"],
)
async def test_scheduler_flags_one_packet_and_engine_read_back(backend: Backend, written: VirtualService) -> None:
    """Scheduler flags, one-packet scheduling and the persistence engine survive a round trip."""
    await install(backend, written)

    assert await table_of(backend) == Table.of([written])


@pytest.mark.parametrize(
    "written",
    [
        real(11, forwarding=Forwarding.MASQ, port=8080),
        real(11, forwarding=Forwarding.ROUTE, port=80),
        real(11, forwarding=Forwarding.TUNNEL, port=80),
        real(11, weight=0),
        real(11, weight=2**31 - 1),
        real(11, upper=100, lower=10),
    ],
    ids=["masq", "route", "tunnel", "weight-0", "weight-max", "thresholds"],
)
async def test_a_real_server_reads_back_with_every_setting(backend: Backend, written: RealServer) -> None:
    """Forwarding method, weight (0 to 2**31-1) and thresholds read back as written."""
    await install(backend, service(TCP80, written))

    assert (await table_of(backend)).services[TCP80].reals == (written,)


async def test_an_ipv6_service_takes_an_ipv4_real_server_through_a_tunnel(backend: Backend) -> None:
    """Mixed families work with tunnel forwarding."""
    written = service(TCP80_V6, real(11, family=4, port=80, forwarding=Forwarding.TUNNEL))

    await install(backend, written)

    assert await table_of(backend) == Table.of([written])


async def test_editing_a_service_changes_its_settings_and_keeps_its_real_servers(backend: Backend) -> None:
    """An in-place edit of scheduler, timeout and netmask leaves the real servers in place."""
    before = service(TCP80, real(11), real(12), scheduler="rr", persistence=Persistence(timeout=300, netmask=32))
    await install(backend, before)
    after = replace(before, scheduler="wlc", persistence=Persistence(timeout=600, netmask=24))

    report = await backend.apply([EditVirtualService(after.settings(), previous=before.settings())])

    assert (report.applied, await table_of(backend)) == (1, Table.of([after]))


async def test_editing_a_service_can_drop_its_persistence(backend: Backend) -> None:
    """An edit without persistence turns affinity off (every field is sent)."""
    before = service(TCP80, real(11), persistence=Persistence(timeout=300, netmask=24))
    await install(backend, before)
    after = replace(before, persistence=None)

    await backend.apply([EditVirtualService(after.settings(), previous=before.settings())])

    assert await table_of(backend) == Table.of([after])


async def test_editing_a_real_server_changes_only_what_changed(backend: Backend) -> None:
    """A weight edit keeps forwarding and thresholds as they were."""
    before = real(11, forwarding=Forwarding.ROUTE, port=80, weight=3, upper=50, lower=5)
    await install(backend, service(TCP80, before))
    after = before.with_weight(0)

    await backend.apply([EditRealServer(TCP80, after, previous=before, drain=True)])

    assert (await table_of(backend)).services[TCP80].reals == (after,)


async def test_deleting_a_real_server_leaves_the_others(backend: Backend) -> None:
    """A deleted real server is gone; its neighbour stays."""
    await install(backend, service(TCP80, real(11), real(12)))

    await backend.apply([DeleteRealServer(TCP80, real(11))])

    assert (await table_of(backend)).services[TCP80].reals == (real(12),)


async def test_deleting_a_service_takes_its_real_servers_with_it(backend: Backend) -> None:
    """After a service delete and re-add, the service has no real servers left."""
    await install(backend, service(TCP80, real(11), real(12)))

    await backend.apply([DeleteVirtualService(service(TCP80))])
    await install(backend, service(TCP80))

    assert await table_of(backend) == Table.of([service(TCP80)])


async def test_new_real_servers_report_zero_connections_and_stats(backend: Backend) -> None:
    """Counts and stats are reported for every real server, zero before any traffic."""
    await install(backend, service(TCP80, real(11)))

    state = await backend.read()

    ref = (TCP80, real(11).key)
    assert (dict(state.connections), dict(state.stats)) == (
        {ref: ConnectionCounts(active=0, inactive=0)},
        {ref: RealServerStats()},
    )
