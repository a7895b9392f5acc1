"""A periodic resync in slices: changes are synced between its slices, and it repairs what a whole one repairs."""

from __future__ import annotations

from collections.abc import Callable, Collection

import pytest

from ipvsctl.agent.node import NodeAgent
from ipvsctl.backend.base import KernelState
from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.errors import BackendError
from ipvsctl.model import AddVirtualService, DeleteRealServer, Protocol, RealServer, ServiceKey, Table, VirtualService
from tests.agent.conftest import StartAgent
from tests.agent.fakes import FakeClock, endpoint_slice, list_everything, service, settle

ADDRESSES = ("203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4")
SERVICES = [service(f"s{index}", cluster_ip=address) for index, address in enumerate(ADDRESSES)]
KEYS = [ServiceKey(Protocol.TCP, address, 80) for address in ADDRESSES]
RESYNC = 30.0


def pods(index: int, *addresses: str) -> dict[str, object]:
    """The EndpointSlice of Service s<index> with these pod addresses."""
    return endpoint_slice(f"s{index}-1", service=f"s{index}", endpoints=[(address, "worker2") for address in addresses])


def only(index: int) -> frozenset[ServiceKey]:
    """The scope of a read of Service s<index>'s one key."""
    return frozenset({KEYS[index]})


SLICES = [pods(index, f"198.51.100.{index + 1}") for index in range(len(ADDRESSES))]


class WatchedBackend(MemoryBackend):
    """A memory backend that records the scope of each read, calls a hook inside the next read, and can fail one."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[frozenset[ServiceKey] | None] = []
        self.during_next_read: Callable[[], None] | None = None
        self.fail_next_read = False

    async def read(self, *, only: Collection[ServiceKey] | None = None) -> KernelState:
        self.reads.append(None if only is None else frozenset(only))
        hook, self.during_next_read = self.during_next_read, None
        if hook is not None:
            hook()
        if self.fail_next_read:
            self.fail_next_read = False
            raise BackendError("netlink socket gone", target="ipvs")
        return await super().read(only=only)


@pytest.fixture
def watched() -> WatchedBackend:
    """Return an empty watched memory backend."""
    return WatchedBackend()


async def started(start_agent: StartAgent, backend: WatchedBackend, *, slice_size: int) -> NodeAgent:
    """An agent over ``backend`` with the four Services programmed, resyncing in slices of ``slice_size``."""
    agent = start_agent(table=backend, resync_interval=RESYNC)
    agent.runner.resync_slice = slice_size
    list_everything(agent, services=SERVICES, slices=SLICES)
    await settle()
    backend.reads.clear()
    return agent


async def test_a_change_during_a_resync_is_synced_before_its_next_slice(
    start_agent: StartAgent, clock: FakeClock, watched: WatchedBackend
) -> None:
    """A change that arrives while the first slice is read goes to the kernel before the second slice."""
    agent = await started(start_agent, watched, slice_size=1)
    watched.during_next_read = lambda: agent.handlers["EndpointSlice"].upsert(pods(3, "198.51.100.44"))
    await clock.advance(RESYNC)
    changed = watched.table.get(KEYS[3])
    assert watched.reads == [only(0), only(3), only(1), only(2), only(3)]
    assert changed == VirtualService(KEYS[3], reals=(RealServer("198.51.100.44", 8080),))


async def test_a_resync_in_slices_is_counted_as_one_full_sync(
    start_agent: StartAgent, clock: FakeClock, watched: WatchedBackend
) -> None:
    """Four slices make one full sync in the outcomes and the sync counter."""
    agent = await started(start_agent, watched, slice_size=1)
    before = agent.runner.sync_count
    await clock.advance(RESYNC)
    outcome = agent.runner.outcomes[-1]
    assert (agent.runner.sync_count - before, outcome.full, outcome.ok, len(watched.reads)) == (1, True, True, 4)


@pytest.mark.parametrize("slice_size", [1, 0], ids=["in-slices", "whole"])
async def test_a_resync_repairs_drift_whichever_way_it_goes(
    start_agent: StartAgent, clock: FakeClock, watched: WatchedBackend, slice_size: int
) -> None:
    """A VIP deleted, a pod removed, a stray port on an owned VIP and a stray bound address: all repaired."""
    await started(start_agent, watched, slice_size=slice_size)
    programmed = watched.table
    bound = (await watched.read()).bound_addresses
    stray = ServiceKey(Protocol.TCP, ADDRESSES[1], 9999)
    await watched.apply(
        [
            DeleteRealServer(KEYS[2], RealServer("198.51.100.3", 8080)),
            AddVirtualService(VirtualService(stray)),
        ]
    )
    watched.table = Table.of([vs for vs in watched.table if vs.key != KEYS[0]])
    await watched.bind_addresses({*bound, "203.0.113.99"})
    await clock.advance(RESYNC)
    assert (watched.table, (await watched.read()).bound_addresses) == (programmed, bound)


async def test_a_failed_slice_fails_the_resync_and_the_retry_is_whole(
    start_agent: StartAgent, clock: FakeClock, watched: WatchedBackend
) -> None:
    """The first slice's read fails: the resync is a failed full sync, retried as one full read."""
    agent = await started(start_agent, watched, slice_size=1)
    watched.fail_next_read = True
    await clock.advance(RESYNC)
    failed = agent.runner.outcomes[-1]
    await clock.advance(1.5)  # the first retry comes after 1 s ± 20 % (jittered)
    assert ((failed.full, failed.ok), watched.reads) == ((True, False), [only(0), None])
