"""nf_tables element messages: every value of every set survives encoding and decoding, and bad ones are refused."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvsctl.backend.netlink.message import WireFormatError, attribute
from ipvsctl.backend.nft.wire import decode_elements, encode_element, set_layout
from ipvsctl.netfilter.elements import Kind, Value, set_name
from tests.strategies import addresses

NFGENMSG = struct.pack("!BBH", 1, 0, 0)
LIST_ELEMENTS_NESTED = 3 | 0x8000


def reply_of(*encoded: bytes) -> bytes:
    """A GETSETELEM reply payload holding already-encoded elements (as the kernel sends them)."""
    return NFGENMSG + attribute(LIST_ELEMENTS_NESTED, b"".join(encoded))


@st.composite
def elements(draw: st.DrawFn) -> tuple[str, Value]:
    """A set of ipvsctl's table and one valid value of it."""
    kind = draw(st.sampled_from(list(Kind)))
    family = draw(st.sampled_from([4, 6]))
    address = draw(addresses(family=family))
    protocol = draw(st.sampled_from(["tcp", "udp", "sctp"]))
    port = draw(st.integers(min_value=1, max_value=65535))
    if kind is Kind.VIPS:
        value: Value = (address,)
    elif kind is Kind.HAIRPIN:
        value = (address, protocol, port, address)
    elif kind is Kind.ALLOWED:
        source = draw(addresses(family=family))
        prefix = draw(st.integers(min_value=0, max_value=32 if family == 4 else 128))
        value = (address, protocol, port, str(ipaddress.ip_network(f"{source}/{prefix}", strict=False)))
    else:
        value = (address, protocol, port)
    return set_name(kind, family), value


@given(elements())
def test_an_element_decodes_to_the_value_it_encoded(element: tuple[str, Value]) -> None:
    """encode then decode is the identity for every set and family (ranges as their CIDR)."""
    name, value = element
    assert decode_elements(reply_of(encode_element(name, value)), name) == [value]


def test_several_elements_of_one_reply_come_back_in_order() -> None:
    """A reply with many elements yields all of them, in order."""
    values = [("203.0.113.1", "tcp", 80), ("203.0.113.2", "udp", 53)]
    assert decode_elements(reply_of(*(encode_element("services4", v) for v in values)), "services4") == values


def test_ports_and_protocols_are_padded_to_registers() -> None:
    """A key field is padded to 4 bytes: address . tcp . 80 is 12 bytes."""
    encoded = encode_element("services4", ("203.0.113.1", "tcp", 80))
    assert bytes([203, 0, 113, 1, 6, 0, 0, 0, 0, 80, 0, 0]) in encoded


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("services4", ("2001:db8::1", "tcp", 80), id="wrong-family"),
        pytest.param("services4", ("203.0.113.1", "icmp", 80), id="unknown-protocol"),
        pytest.param("services4", ("203.0.113.1", "tcp", 70000), id="port-too-large"),
        pytest.param("services4", ("203.0.113.1", "tcp"), id="too-few-fields"),
        pytest.param("allowed4", ("203.0.113.1", "tcp", 80, "2001:db8::/32"), id="range-of-the-other-family"),
        pytest.param("other4", ("203.0.113.1",), id="not-our-set"),
    ],
)
def test_values_that_do_not_fit_their_set_are_refused(name: str, value: Value) -> None:
    """A value that is not of its set's type is a WireFormatError, never bytes for the kernel."""
    with pytest.raises(WireFormatError):
        encode_element(name, value)


def test_set_layout_names_kind_family_and_fields() -> None:
    """hairpin6 is the hairpin kind, IPv6, address . protocol . port . address."""
    assert set_layout("hairpin6") == (Kind.HAIRPIN, 6, ("addr", "proto", "port", "addr"))
