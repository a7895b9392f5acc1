"""Contract: the agent's interface holds exactly the VIPs it is told to, until it is removed."""

from __future__ import annotations

import pytest

from ipvsctl.backend.base import Backend
from ipvsctl.errors import BackendError

VIPS = frozenset({"203.0.113.10", "203.0.113.11", "2001:db8:f::10"})


async def bound(backend: Backend) -> frozenset[str]:
    """The addresses the backend reads on its interface."""
    return (await backend.read()).bound_addresses


async def test_binding_adds_every_address(backend: Backend) -> None:
    """IPv4 and IPv6 VIPs bound to the interface are read back."""
    await backend.bind_addresses(VIPS)

    assert await bound(backend) == VIPS


async def test_binding_removes_the_addresses_no_longer_wanted(backend: Backend) -> None:
    """A second bind keeps the wanted addresses, adds the new one and removes the rest."""
    await backend.bind_addresses(VIPS)

    await backend.bind_addresses({"203.0.113.10", "2001:db8:f::11"})

    assert await bound(backend) == {"203.0.113.10", "2001:db8:f::11"}


async def test_binding_takes_addresses_in_any_spelling(backend: Backend) -> None:
    """Addresses are compared in canonical form: a long IPv6 spelling is the same VIP."""
    await backend.bind_addresses({"2001:0db8:000f:0000:0000:0000:0000:0010"})

    assert await bound(backend) == {"2001:db8:f::10"}


async def test_binding_nothing_empties_the_interface(backend: Backend) -> None:
    """An empty bind removes every address."""
    await backend.bind_addresses(VIPS)

    await backend.bind_addresses(set())

    assert await bound(backend) == frozenset()


async def test_binding_something_that_is_not_an_address_is_an_error(backend: Backend) -> None:
    """A malformed address raises BackendError naming it."""
    with pytest.raises(BackendError, match="not-an-ip"):
        await backend.bind_addresses({"not-an-ip"})


async def test_removing_the_interface_drops_its_addresses(backend: Backend) -> None:
    """After remove_interface no address is bound."""
    await backend.bind_addresses(VIPS)

    await backend.remove_interface()

    assert await bound(backend) == frozenset()


async def test_removing_an_absent_interface_is_not_an_error(backend: Backend) -> None:
    """Cleanup on a node that never had the interface succeeds."""
    await backend.remove_interface()

    assert await bound(backend) == frozenset()


async def test_binding_after_removal_brings_the_interface_back(backend: Backend) -> None:
    """The interface is recreated on the next bind."""
    await backend.bind_addresses(VIPS)
    await backend.remove_interface()

    await backend.bind_addresses({"203.0.113.12"})

    assert await bound(backend) == {"203.0.113.12"}
