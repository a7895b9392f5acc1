"""Contract: ``service_keys`` answers what is at some addresses (any port or protocol), as asked before a claim."""

from __future__ import annotations

from ipvsctl.backend.base import Backend
from ipvsctl.model import Protocol, ServiceKey
from tests.contract.values import VIP4, VIP6, install, key, real, service

OTHER = "203.0.113.20"


async def test_service_keys_finds_every_port_and_protocol_at_an_address(backend: Backend) -> None:
    """Services at the asked addresses come back whatever their port and protocol; the others do not."""
    at_vip = [key(Protocol.TCP, port=443), key(Protocol.UDP, port=53), key(Protocol.TCP, family=6, port=80)]
    elsewhere = ServiceKey(Protocol.TCP, OTHER, 80)
    await install(backend, *(service(each, real(family=each.family)) for each in [*at_vip, elsewhere]))

    assert await backend.service_keys({VIP4, VIP6}) == frozenset(at_vip)


async def test_service_keys_of_an_empty_address_is_empty(backend: Backend) -> None:
    """Nothing at the asked address: an empty answer, not an error."""
    await install(backend, service(ServiceKey(Protocol.TCP, OTHER, 80)))

    assert await backend.service_keys({VIP4}) == frozenset()


async def test_service_keys_of_no_address_are_every_key(backend: Backend) -> None:
    """Asked for no address in particular: every virtual service's key, at every address and family."""
    everywhere = [
        key(Protocol.TCP, port=443),
        key(Protocol.UDP, family=6, port=53),
        ServiceKey(Protocol.TCP, OTHER, 80),
    ]
    await install(backend, *(service(each, real(family=each.family)) for each in everywhere))

    assert await backend.service_keys(None) == frozenset(everywhere)
