"""One sync: read → plan → apply → bind, re-planning after drift; drains end at zero or at their deadline."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import pytest

from ipvsctl.backend.base import ApplyReport, KernelState
from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.model import Operation, Protocol, RealServer, ServiceKey, Table, VirtualService
from ipvsctl.plan import Ownership
from ipvsctl.reconcile import DrainTracker, sync

VIP = ServiceKey(Protocol.TCP, "203.0.113.10", 80)
OLD_VIP = ServiceKey(Protocol.TCP, "203.0.113.99", 80)
FOREIGN = ServiceKey(Protocol.TCP, "192.0.2.200", 443)
R1 = RealServer("198.51.100.10", 8080)
R2 = RealServer("198.51.100.20", 8080)


def table(*services: VirtualService) -> Table:
    return Table.of(services)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_sync_from_empty_reaches_desired_and_binds() -> None:
    """From an empty kernel the table becomes the desired one and the VIPs are bound."""
    backend = MemoryBackend()
    desired = table(VirtualService(VIP, reals=(R1, R2)))
    result = await sync(backend, desired, ownership=Ownership(), bind={VIP.address})
    state = await backend.read()
    assert result.ok
    assert state.table == desired
    assert state.bound_addresses == {VIP.address}


async def test_stale_vip_on_interface_is_deleted_then_unbound() -> None:
    """A service on a VIP bound to the agent's interface is owned: deleted, and its address unbound."""
    backend = MemoryBackend(table=table(VirtualService(OLD_VIP, reals=(R1,))), bound_addresses=[OLD_VIP.address])
    await sync(backend, table(VirtualService(VIP)), ownership=Ownership(), bind={VIP.address})
    state = await backend.read()
    assert OLD_VIP not in state.table
    assert state.bound_addresses == {VIP.address}


async def test_foreign_service_survives_sync() -> None:
    """A service outside the owned set is left as it is."""
    foreign = VirtualService(FOREIGN, scheduler="wlc", reals=(R1,))
    backend = MemoryBackend(table=table(foreign))
    await sync(backend, table(VirtualService(VIP)), ownership=Ownership(), bind={VIP.address})
    assert (await backend.read()).table.get(FOREIGN) == foreign


class DriftingBackend(MemoryBackend):
    """Someone adds the service between our read and our apply, once."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def read(self, *, only: Collection[ServiceKey] | None = None) -> KernelState:
        state = await super().read(only=only)
        self.reads += 1
        if self.reads == 1:
            self.table = table(VirtualService(VIP, scheduler="wlc"))
        return state


async def test_drift_is_replanned() -> None:
    """An EEXIST after drift makes sync re-read and re-plan, and it still converges."""
    backend = DriftingBackend()
    desired = table(VirtualService(VIP, reals=(R1,)))
    result = await sync(backend, desired, ownership=Ownership(), bind={VIP.address})
    assert result.attempts == 2
    assert result.ok
    assert (await backend.read()).table == desired


async def test_drain_waits_for_connections() -> None:
    """A removed TCP real server with connections stays at weight 0."""
    backend = MemoryBackend(table=table(VirtualService(VIP, reals=(R1, R2))), bound_addresses=[VIP.address])
    backend.set_connections(service=VIP, real=R2.key, active=2)
    await sync(backend, table(VirtualService(VIP, reals=(R1,))), ownership=Ownership(), bind={VIP.address})
    reals = (await backend.read()).table.services[VIP].real_map()
    assert reals[R2.key].weight == 0


async def test_drain_ends_when_connections_end() -> None:
    """Once its connections are gone, the next sync deletes the drained server."""
    backend = MemoryBackend(table=table(VirtualService(VIP, reals=(R1, R2))), bound_addresses=[VIP.address])
    backend.set_connections(service=VIP, real=R2.key, active=2)
    desired = table(VirtualService(VIP, reals=(R1,)))
    await sync(backend, desired, ownership=Ownership(), bind={VIP.address})
    backend.set_connections(service=VIP, real=R2.key, active=0)
    await sync(backend, desired, ownership=Ownership(), bind={VIP.address})
    assert (await backend.read()).table == desired


async def test_drain_ends_at_its_deadline() -> None:
    """A drain past the maximum drain time is deleted despite live connections."""
    clock = FakeClock()
    drains = DrainTracker(max_drain_seconds=60, clock=clock)
    backend = MemoryBackend(table=table(VirtualService(VIP, reals=(R1, R2))), bound_addresses=[VIP.address])
    backend.set_connections(service=VIP, real=R2.key, active=5)
    desired = table(VirtualService(VIP, reals=(R1,)))
    await sync(backend, desired, ownership=Ownership(), bind={VIP.address}, drains=drains)
    await sync(backend, desired, ownership=Ownership(), bind={VIP.address}, drains=drains)
    assert R2.key in (await backend.read()).table.services[VIP].real_map()
    clock.now += 61
    await sync(backend, desired, ownership=Ownership(), bind={VIP.address}, drains=drains)
    assert (await backend.read()).table == desired
    assert len(drains) == 0


def test_drain_tracker_forgets_server_wanted_again() -> None:
    """A draining server that is desired again leaves the tracker."""
    drains = DrainTracker(max_drain_seconds=60, clock=FakeClock())
    current = table(VirtualService(VIP, reals=(R1.with_weight(0),)))
    drains.observe(current=current, desired=table(VirtualService(VIP)), ownership=Ownership())
    assert len(drains) == 1
    drains.observe(current=current, desired=table(VirtualService(VIP, reals=(R1,))), ownership=Ownership())
    assert len(drains) == 0


class CountingBackend(MemoryBackend):
    """Counts bind_addresses calls."""

    def __init__(self) -> None:
        super().__init__()
        self.binds = 0

    async def bind_addresses(self, addresses: Collection[str], *, within: Collection[str] | None = None) -> None:
        self.binds += 1
        await super().bind_addresses(addresses, within=within)


async def test_unchanged_vips_are_not_rebound() -> None:
    """A sync whose VIP set is already bound does not re-bind it."""
    backend = CountingBackend()
    desired = table(VirtualService(VIP, reals=(R1,)))
    await sync(backend, desired, ownership=Ownership(), bind={VIP.address})
    await sync(backend, desired, ownership=Ownership(), bind={VIP.address})
    assert backend.binds == 1


async def test_changed_vips_are_rebound() -> None:
    """A sync with a new VIP set binds it: the new address before its service, the old one away after."""
    backend = CountingBackend()
    await sync(backend, table(VirtualService(VIP)), ownership=Ownership(), bind={VIP.address})
    await sync(backend, table(VirtualService(OLD_VIP)), ownership=Ownership(), bind={OLD_VIP.address})
    assert backend.binds == 3
    assert (await backend.read()).bound_addresses == {OLD_VIP.address}


class OrderRecordingBackend(MemoryBackend):
    """Records binds and applies in order."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[str] = []

    async def bind_addresses(self, addresses: Collection[str], *, within: Collection[str] | None = None) -> None:
        self.calls.append(f"bind {sorted(addresses)}")
        await super().bind_addresses(addresses, within=within)

    async def apply(self, operations: Sequence[Operation]) -> ApplyReport:
        self.calls.append(f"apply {len(operations)}")
        return await super().apply(operations)


@pytest.mark.parametrize("only", [pytest.param(None, id="full"), pytest.param({VIP}, id="partial")])
async def test_new_vip_is_bound_before_its_service_is_added(only: set[ServiceKey] | None) -> None:
    """The address is the record of ownership: it is on the interface before anything is added at it."""
    backend = OrderRecordingBackend()
    await sync(backend, table(VirtualService(VIP, reals=(R1,))), ownership=Ownership(), bind={VIP.address}, only=only)
    assert backend.calls[:2] == ["bind ['203.0.113.10']", "apply 2"]


@pytest.mark.parametrize("only", [pytest.param(None, id="full"), pytest.param({VIP}, id="partial")])
async def test_vip_on_an_address_with_a_foreign_service_is_refused(only: set[ServiceKey] | None) -> None:
    """keepalived's service at the VIP's address on another port: the VIP is refused, not added, not bound."""
    keepalived = VirtualService(ServiceKey(Protocol.TCP, VIP.address, 443), scheduler="wlc", reals=(R2,))
    backend = MemoryBackend(table=table(keepalived))
    result = await sync(
        backend, table(VirtualService(VIP, reals=(R1,))), ownership=Ownership(), bind={VIP.address}, only=only
    )
    assert set(result.refused) == {VIP}
    assert backend.table == table(keepalived)
    assert (await backend.read()).bound_addresses == frozenset()


async def test_refused_vip_is_taken_once_the_foreign_service_is_gone() -> None:
    """A later sync, with keepalived's service deleted, claims and programs the VIP."""
    keepalived = VirtualService(ServiceKey(Protocol.TCP, VIP.address, 443))
    backend = MemoryBackend(table=table(keepalived))
    desired = table(VirtualService(VIP, reals=(R1,)))
    await sync(backend, desired, ownership=Ownership(), bind={VIP.address})
    backend.table = table()
    result = await sync(backend, desired, ownership=Ownership(), bind={VIP.address})
    assert (dict(result.refused), backend.table) == ({}, desired)


class ReadRecordingBackend(CountingBackend):
    """Records the ``only`` of every read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[frozenset[ServiceKey] | None] = []

    async def read(self, *, only: Collection[ServiceKey] | None = None) -> KernelState:
        self.reads.append(None if only is None else frozenset(only))
        return await super().read(only=only)


async def test_sync_of_some_keys_reads_only_those_keys() -> None:
    """A sync limited to keys asks the backend for just those keys."""
    backend = ReadRecordingBackend()
    await sync(backend, table(VirtualService(VIP)), ownership=Ownership(), bind={VIP.address}, only={VIP})
    assert backend.reads == [frozenset({VIP})]


async def test_sync_of_some_keys_leaves_other_keys_alone() -> None:
    """A stale service outside ``only`` survives a sync of other keys, even on a bound VIP."""
    backend = MemoryBackend(table=table(VirtualService(OLD_VIP)), bound_addresses=[OLD_VIP.address])
    desired = table(VirtualService(VIP, reals=(R1,)))
    await sync(backend, desired, ownership=Ownership(), bind={VIP.address}, only={VIP})
    assert set(backend.table.services) == {VIP, OLD_VIP}


async def test_sync_of_some_keys_binds_their_new_vip_and_keeps_the_others() -> None:
    """A partial sync binds its keys' desired VIPs and leaves other bound addresses in place."""
    backend = MemoryBackend(bound_addresses=[OLD_VIP.address])
    desired = table(VirtualService(VIP, reals=(R1,)))
    await sync(backend, desired, ownership=Ownership(), bind={VIP.address}, only={VIP})
    assert (await backend.read()).bound_addresses == {VIP.address, OLD_VIP.address}


async def test_sync_of_a_removed_key_unbinds_its_vip() -> None:
    """A partial sync of a key no longer desired deletes its service and then unbinds its VIP."""
    backend = MemoryBackend(table=table(VirtualService(OLD_VIP)), bound_addresses=[OLD_VIP.address, VIP.address])
    await sync(backend, table(VirtualService(VIP)), ownership=Ownership(), bind={VIP.address}, only={OLD_VIP})
    state = await backend.read()
    assert set(state.table.services) == set()
    assert state.bound_addresses == {VIP.address}


async def test_partial_sync_deletes_a_stale_port_on_a_held_vip() -> None:
    """In a partial sync, a stale port at an address the agent holds is the agent's: it goes."""
    stale = ServiceKey(Protocol.TCP, VIP.address, 8443)
    backend = MemoryBackend(table=table(VirtualService(stale)), bound_addresses=[VIP.address])
    await sync(backend, table(VirtualService(VIP)), ownership=Ownership(), bind={VIP.address}, only={stale, VIP})
    assert set(backend.table.services) == {VIP}


def test_drain_tracker_keeps_drains_outside_the_observed_keys() -> None:
    """Observing some keys does not forget the drains of other keys."""
    drains = DrainTracker(max_drain_seconds=60, clock=FakeClock())
    current = table(VirtualService(VIP, reals=(R1.with_weight(0),)))
    drains.observe(current=current, desired=table(VirtualService(VIP)), ownership=Ownership())
    drains.observe(current=table(), desired=table(VirtualService(VIP)), ownership=Ownership(), only={OLD_VIP})
    assert len(drains) == 1


def test_drain_tracker_forgets_a_drain_of_an_observed_key_that_ended() -> None:
    """Observing a key whose drained server is gone forgets that drain."""
    drains = DrainTracker(max_drain_seconds=60, clock=FakeClock())
    current = table(VirtualService(VIP, reals=(R1.with_weight(0),)))
    drains.observe(current=current, desired=table(VirtualService(VIP)), ownership=Ownership())
    drains.observe(
        current=table(VirtualService(VIP)), desired=table(VirtualService(VIP)), ownership=Ownership(), only={VIP}
    )
    assert len(drains) == 0
