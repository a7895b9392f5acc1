"""Model value types: the shortcuts they take for speed give the same values as the plain way."""

from __future__ import annotations

import ipaddress
from dataclasses import fields, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvsctl.model import SETTINGS_FIELDS, RealServer, VirtualService, packed_address
from tests.strategies import addresses, real_servers, service_keys, virtual_services


@given(virtual_services())
def test_settings_is_the_service_without_reals(service: VirtualService) -> None:
    """settings() equals the service with its real servers replaced by none."""
    assert service.settings() == replace(service, reals=())


def test_the_settings_sit_between_the_key_and_the_real_servers() -> None:
    """A service's fields are its key, SETTINGS_FIELDS and its real servers, in that order: settings(),
    with_reals() and same_settings() build and compare services positionally from that one list."""
    assert [f.name for f in fields(VirtualService)] == ["key", *SETTINGS_FIELDS, "reals"]
    assert "scheduler" in SETTINGS_FIELDS


@given(virtual_services(), virtual_services())
def test_with_reals_replaces_the_real_servers_only(service: VirtualService, other: VirtualService) -> None:
    """with_reals(reals) equals the service with its real servers replaced."""
    assert service.with_reals(other.reals) == replace(service, reals=other.reals)


@given(virtual_services(), virtual_services(), st.sampled_from(SETTINGS_FIELDS))
def test_same_settings_sees_every_setting(service: VirtualService, other: VirtualService, name: str) -> None:
    """Changing any one setting changes same_settings' answer exactly when the value differs."""
    changed = replace(service, **{name: getattr(other, name)})

    assert service.same_settings(changed) == (getattr(service, name) == getattr(other, name))


@given(virtual_services(), virtual_services())
def test_same_settings_ignores_the_real_servers(service: VirtualService, other: VirtualService) -> None:
    """Services differing only in their real servers have the same settings."""
    assert service.same_settings(replace(service, reals=other.reals))


@given(addresses())
def test_packed_address_is_ipaddress_packed(address: str) -> None:
    """packed_address gives the bytes ipaddress gives, for both families."""
    assert packed_address(address) == ipaddress.ip_address(address).packed


@pytest.mark.parametrize(
    "address",
    [
        pytest.param("fe80::1%eth0", id="scoped-ipv6"),
        pytest.param("::ffff:192.0.2.1", id="ipv4-mapped"),
        pytest.param("::", id="unspecified-v6"),
        pytest.param("0.0.0.0", id="unspecified-v4"),
    ],
)
def test_packed_address_of_unusual_addresses(address: str) -> None:
    """Addresses inet_pton does not take (a scope) or that look odd still pack as ipaddress packs them."""
    assert packed_address(address) == ipaddress.ip_address(address).packed


@pytest.mark.parametrize("text", ["192.0.2.01", "192.0.2", "2001:db8::g", "2001:db8:::1", "", "example.com"])
def test_packed_address_rejects_what_ipaddress_rejects(text: str) -> None:
    """A string that is not an address is a ValueError, as from ipaddress."""
    with pytest.raises(ValueError, match="address"):
        packed_address(text)


@given(st.data())
def test_real_servers_sorted_by_family_address_port(data: st.DataObject) -> None:
    """A virtual service keeps its real servers ordered IPv4 first, then by numeric address, then port."""
    key = data.draw(service_keys())
    reals = data.draw(st.lists(real_servers(key=key) | real_servers(key=data.draw(service_keys())), max_size=6))
    service = VirtualService(key, reals=tuple(reals))

    def numeric(real: RealServer) -> tuple[int, int, int]:
        address = ipaddress.ip_address(real.address)
        return (address.version, int(address), real.port)

    assert [numeric(real) for real in service.reals] == sorted(numeric(real) for real in reals)
