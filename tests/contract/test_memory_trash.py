"""The memory fake keeps the kernel's trash: a real server deleted with connections gets them back when re-added.

The kernel half of this (real connections, ip_vs_conn entries kept) is
tests/kernel/test_affinity_mh.py::test_a_real_server_deleted_and_added_back_keeps_its_connections.
"""

from __future__ import annotations

from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.model import AddRealServer, ConnectionCounts, DeleteRealServer
from tests.contract.values import TCP80, install, real, service


async def test_a_move_keeps_the_connection_counts() -> None:
    """Delete + add of a real server in one apply: its connection counts are those from before."""
    backend = MemoryBackend()
    await install(backend, service(TCP80, real(11), real(12)))
    backend.set_connections(service=TCP80, real=real(12).key, active=2, inactive=5)

    report = await backend.apply([DeleteRealServer(TCP80, real(12)), AddRealServer(TCP80, real(12))])

    assert report.ok
    assert (await backend.read()).connections[TCP80, real(12).key] == ConnectionCounts(2, 5)


async def test_a_server_deleted_without_connections_comes_back_empty() -> None:
    """A real server deleted with no connections is added back with none."""
    backend = MemoryBackend()
    await install(backend, service(TCP80, real(11)))

    await backend.apply([DeleteRealServer(TCP80, real(11)), AddRealServer(TCP80, real(11))])

    assert (await backend.read()).connections[TCP80, real(11).key] == ConnectionCounts(0, 0)
