"""Contract: a read of some keys and a bind within some addresses touch only those (O(changed) syncs)."""

from __future__ import annotations

from ipvsctl.backend.base import Backend, RealServerStats
from ipvsctl.model import ConnectionCounts, DeleteVirtualService, Persistence, Protocol, ServiceKey, Table
from tests.contract.values import TCP80, TCP80_V6, install, key, real, service

UDP53 = key(Protocol.UDP, port=53)
FWMARK = ServiceKey.fwmark(7, family=4)
ABSENT = key(port=8443)


async def test_a_partial_read_holds_just_the_asked_keys(backend: Backend) -> None:
    """Of three services, a read of two gives exactly those two, real servers and settings included."""
    tcp = service(TCP80, real(11), real(12, weight=3), persistence=Persistence(timeout=600, netmask=24))
    udp = service(UDP53, real(13))
    v6 = service(TCP80_V6, real(14, family=6))
    await install(backend, tcp, udp, v6)

    state = await backend.read(only=[TCP80, TCP80_V6])

    assert state.table == Table.of([tcp, v6])


async def test_a_partial_read_skips_keys_that_do_not_exist(backend: Backend) -> None:
    """A key with no service is simply absent from a partial read (no error)."""
    await install(backend, service(TCP80, real(11)))

    state = await backend.read(only=[TCP80, ABSENT])

    assert set(state.table.services) == {TCP80}


async def test_a_partial_read_finds_a_firewall_mark_service(backend: Backend) -> None:
    """A firewall-mark key is read like any other."""
    marked = service(FWMARK, real(11), scheduler="wlc")
    await install(backend, marked, service(TCP80))

    state = await backend.read(only=[FWMARK])

    assert state.table == Table.of([marked])


async def test_a_partial_read_counts_only_the_asked_real_servers(backend: Backend) -> None:
    """Connection counts and stats come for the real servers of the asked keys only."""
    await install(backend, service(TCP80, real(11)), service(UDP53, real(12)))

    state = await backend.read(only=[UDP53])

    ref = (UDP53, real(12).key)
    assert (dict(state.connections), dict(state.stats)) == (
        {ref: ConnectionCounts(active=0, inactive=0)},
        {ref: RealServerStats()},
    )


async def test_a_partial_read_sees_a_change_made_behind_its_back(backend: Backend, meddler: Backend) -> None:
    """The table part of a partial read is the kernel's now, not a remembered copy."""
    await install(backend, service(TCP80, real(11)))
    await backend.read(only=[TCP80])
    await meddler.apply([DeleteVirtualService(service(TCP80))])

    state = await backend.read(only=[TCP80])

    assert state.table == Table()


async def test_a_read_of_no_keys_is_empty(backend: Backend) -> None:
    """``only=()`` reads nothing at all."""
    await install(backend, service(TCP80, real(11)))
    await backend.bind_addresses({TCP80.address})

    state = await backend.read(only=())

    assert (state.table, dict(state.connections), state.bound_addresses) == (Table(), {}, frozenset())


async def test_a_partial_read_reports_the_bound_addresses_of_its_keys(backend: Backend) -> None:
    """Of the bound addresses, a partial read gives those of the asked keys."""
    await backend.bind_addresses({TCP80.address, TCP80_V6.address, "203.0.113.99"})

    state = await backend.read(only=[TCP80_V6, ABSENT])

    assert state.bound_addresses == {TCP80_V6.address, ABSENT.address}


async def test_a_bind_within_adds_and_removes_only_inside_its_scope(backend: Backend) -> None:
    """Within a scope, wanted addresses are added and the rest removed; outside it nothing moves."""
    await backend.bind_addresses({"203.0.113.1", "203.0.113.2", "2001:db8:f::1"})

    await backend.bind_addresses({"203.0.113.3"}, within={"203.0.113.2", "203.0.113.3"})

    assert (await backend.read()).bound_addresses == {"203.0.113.1", "203.0.113.3", "2001:db8:f::1"}


async def test_a_bind_within_ignores_wanted_addresses_outside_its_scope(backend: Backend) -> None:
    """An address outside ``within`` is not bound even when listed."""
    await backend.bind_addresses({"203.0.113.5"}, within={"203.0.113.6"})

    assert (await backend.read()).bound_addresses == frozenset()


async def test_a_bind_within_takes_any_spelling(backend: Backend) -> None:
    """Addresses and scope are compared in canonical form."""
    await backend.bind_addresses({"2001:db8:f::10"})

    await backend.bind_addresses(set(), within={"2001:0db8:000f::0010"})

    assert (await backend.read()).bound_addresses == frozenset()


async def test_a_partial_read_follows_a_scoped_bind(backend: Backend) -> None:
    """After a scoped bind, a partial read of its keys reports what it bound."""
    await backend.bind_addresses({UDP53.address}, within={UDP53.address, TCP80_V6.address})

    state = await backend.read(only=[UDP53, TCP80_V6])

    assert state.bound_addresses == {UDP53.address}
