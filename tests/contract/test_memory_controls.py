"""The memory backend's own test controls: counts, stats, drift and the log of accepted operations."""

from __future__ import annotations

import pytest

from ipvsctl.backend.base import RealServerStats
from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.model import AddVirtualService, ConnectionCounts, Table
from tests.contract.values import TCP80, TCP80_V6, creation, real, service


async def test_connection_counts_set_by_a_test_are_read() -> None:
    """set_connections shows up in read() for that real server."""
    memory = MemoryBackend(table=Table.of([service(TCP80, real(11))]))

    memory.set_connections(service=TCP80, real=real(11).key, active=3, inactive=2)

    assert (await memory.read()).connections[(TCP80, real(11).key)] == ConnectionCounts(active=3, inactive=2)


async def test_stats_set_by_a_test_are_read() -> None:
    """set_stats shows up in read() for that real server."""
    memory = MemoryBackend(table=Table.of([service(TCP80, real(11))]))
    stats = RealServerStats(connections=5, packets_in=50, packets_out=40, bytes_in=5000, bytes_out=4000)

    memory.set_stats(service=TCP80, real=real(11).key, stats=stats)

    assert (await memory.read()).stats[(TCP80, real(11).key)] == stats


def test_counts_of_an_absent_real_server_are_refused() -> None:
    """Setting counts for a real server the table does not hold is a test bug."""
    memory = MemoryBackend()

    with pytest.raises(ValueError, match="no real server"):
        memory.set_connections(service=TCP80, real=real(11).key, active=1)


async def test_deleting_a_real_server_forgets_its_counts() -> None:
    """A real server deleted and added again starts from zero connections."""
    memory = MemoryBackend(table=Table.of([service(TCP80, real(11))]))
    memory.set_connections(service=TCP80, real=real(11).key, active=3)

    memory.table = Table()
    await memory.apply(creation(service(TCP80, real(11))))

    assert (await memory.read()).connections[(TCP80, real(11).key)] == ConnectionCounts(active=0, inactive=0)


async def test_replacing_the_table_is_drift_the_next_apply_sees() -> None:
    """A test that swaps the table makes a stale plan fail with a drift errno."""
    memory = MemoryBackend()
    memory.table = Table.of([service(TCP80)])

    report = await memory.apply([AddVirtualService(service(TCP80))])

    assert report.drifted


async def test_the_log_holds_the_accepted_operations_in_order() -> None:
    """operations_applied lists what the fake accepted; refused and skipped ones are left out."""
    memory = MemoryBackend(table=Table.of([service(TCP80)]))
    operations = creation(service(TCP80, real(11)), service(TCP80_V6, real(11, family=6)))

    await memory.apply(operations)

    assert memory.operations_applied == operations[2:]


async def test_a_restricted_scheduler_list_refuses_the_others() -> None:
    """Schedulers the fake kernel was not given are unknown to it (ENOENT), as an unloaded module."""
    memory = MemoryBackend(schedulers={"wlc"})

    report = await memory.apply([AddVirtualService(service(TCP80, scheduler="rr"))])

    assert [failure.errno for failure in report.failures] == [2]
