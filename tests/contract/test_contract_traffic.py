"""Contract: one stats dump gives every virtual service's and real server's counters, rates and connections.

The kernel's counters move only with traffic (tests/kernel/test_traffic_kernel.py sends some); here, every
backend reports each virtual service and real server of its table, at zero while no packet has passed.
"""

from __future__ import annotations

import pytest

from ipvsctl.backend.base import Backend, Traffic
from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.model import ConnectionCounts, DeleteVirtualService, Protocol
from tests.contract.values import TCP80, install, key, real, service


async def test_every_service_and_real_server_is_in_a_stats_dump(backend: Backend) -> None:
    """Two virtual services with three real servers: each appears, at zero, with no connections."""
    udp = key(Protocol.UDP, port=53)
    await install(backend, service(TCP80, real(11), real(12)), service(udp, real(13, port=53)))
    stats = await backend.traffic()
    assert stats.services == {TCP80: Traffic(), udp: Traffic()}
    refs = {(TCP80, real(11).key), (TCP80, real(12).key), (udp, real(13, port=53).key)}
    assert (set(stats.real_servers), set(stats.real_servers.values())) == (refs, {Traffic()})
    assert stats.connections == dict.fromkeys(refs, ConnectionCounts(0, 0))


async def test_an_empty_table_has_an_empty_stats_dump(backend: Backend) -> None:
    """No virtual service: nothing in the dump."""
    stats = await backend.traffic()
    assert (stats.services, stats.real_servers) == ({}, {})


async def test_a_deleted_service_leaves_the_dump(backend: Backend) -> None:
    """A virtual service deleted is gone from the next dump, with its real servers."""
    created = service(TCP80, real(11))
    await install(backend, created)
    await backend.apply([DeleteVirtualService(created)])
    stats = await backend.traffic()
    assert (stats.services, stats.real_servers) == ({}, {})


async def test_the_memory_fake_reports_the_counters_a_test_sets() -> None:
    """set_traffic on a service and a real server, set_connections: the dump reports them."""
    memory = MemoryBackend()
    await install(memory, service(TCP80, real(11)))
    memory.set_traffic(service=TCP80, traffic=Traffic(connections=7, bytes_in=700))
    memory.set_traffic(service=TCP80, real=real(11).key, traffic=Traffic(connections=7, connections_per_second=2))
    memory.set_connections(service=TCP80, real=real(11).key, active=3, inactive=1)
    stats = await memory.traffic()
    assert stats.services[TCP80] == Traffic(connections=7, bytes_in=700)
    assert stats.real_servers[(TCP80, real(11).key)] == Traffic(connections=7, connections_per_second=2)
    assert stats.connections[(TCP80, real(11).key)] == ConnectionCounts(3, 1)


def test_the_memory_fake_refuses_counters_of_an_absent_service() -> None:
    """set_traffic on a virtual service the fake does not hold is a test bug: ValueError."""
    with pytest.raises(ValueError, match="no virtual service"):
        MemoryBackend().set_traffic(service=TCP80, traffic=Traffic())
