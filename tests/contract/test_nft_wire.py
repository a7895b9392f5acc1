"""nf_tables element messages: every value of every set survives encoding and decoding, and bad ones are refused."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvsctl.backend.netlink.message import WireFormatError, attribute
from ipvsctl.backend.nft.wire import (
    decode_elements,
    encode_element,
    encode_fields,
    plain_elements,
    set_layout,
    table_flags,
    table_flags_message,
    table_request,
    walk_elements,
)
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
        pytest.param("allowed4", (), id="empty-range"),
    ],
)
def test_values_that_do_not_fit_their_set_are_refused(name: str, value: Value) -> None:
    """A value that is not of its set's type is a WireFormatError, never bytes for the kernel."""
    with pytest.raises(WireFormatError):
        encode_element(name, value)


def test_a_range_that_ends_before_it_starts_is_refused() -> None:
    """A source range whose key end is below its key is a WireFormatError, not a ValueError of ipaddress."""
    encoded = bytearray(encode_element("allowed4", ("203.0.113.1", "tcp", 80, "198.51.100.0/24")))
    encoded[-4:] = bytes([198, 51, 99, 255])  # the key end's last address, now below the start
    with pytest.raises(WireFormatError, match="ends"):
        decode_elements(reply_of(bytes(encoded)), "allowed4")


def test_set_layout_names_kind_family_and_fields() -> None:
    """hairpin6 is the hairpin kind, IPv6, address . protocol . port . address."""
    assert set_layout("hairpin6") == (Kind.HAIRPIN, 6, ("addr", "proto", "port", "addr"))


KERNEL_FLAGS = st.sampled_from([0, 0x8000, 0x4000, 0xC000])  # NLA_F_NESTED, NLA_F_NET_BYTEORDER on a header


@st.composite
def dumped(draw: st.DrawFn, name: str, values: list[Value]) -> bytes:
    """``values`` of set ``name`` as a dump reply might hold them: each element's three headers with any flags
    (the kernel sets none, our encoder NLA_F_NESTED), and now and then another attribute in an element."""
    encoded = []
    for value in values:
        plain = encode_element(name, value)
        body = plain[4:]
        if draw(st.booleans()):  # re-head the element, its key (and key end) nest and its value
            parts, offset = [], 0
            while offset < len(body):
                nest_length, nest_type = struct.unpack_from("=HH", body, offset)
                inner_length, inner_type = struct.unpack_from("=HH", body, offset + 4)
                data = body[offset + 8 : offset + nest_length]
                inner = struct.pack("=HH", inner_length, (inner_type & 0x3FFF) | draw(KERNEL_FLAGS)) + data
                parts.append(struct.pack("=HH", nest_length, (nest_type & 0x3FFF) | draw(KERNEL_FLAGS)) + inner)
                offset += nest_length
            body = b"".join(parts)
        if draw(st.integers(min_value=0, max_value=9)) == 0:  # NFTA_SET_ELEM_FLAGS, as with a range's end
            body += attribute(3, struct.pack("!I", draw(st.integers(min_value=0, max_value=3))))
        encoded.append(attribute(1 | draw(KERNEL_FLAGS), body))
    return reply_of(*encoded)


@st.composite
def replies(draw: st.DrawFn) -> tuple[str, bytes]:
    """A set of ipvsctl's table and a dump reply of several of its elements."""
    name, first = draw(elements())
    others = draw(st.lists(elements().filter(lambda element: element[0] == name), max_size=6))
    return name, draw(dumped(name, [first, *(value for _, value in others)]))


@given(replies())
def test_the_fast_decode_equals_the_walk(reply: tuple[str, bytes]) -> None:
    """decode_elements reads every reply of every set exactly as walking its attributes does."""
    name, payload = reply
    assert decode_elements(payload, name) == walk_elements(payload, name)


@given(replies(), st.data())
def test_the_fast_decode_equals_the_walk_on_damaged_bytes(reply: tuple[str, bytes], data: st.DataObject) -> None:
    """A reply with one byte changed gives what the walk gives: the same values or a WireFormatError."""
    name, payload = reply
    where = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
    damaged = payload[:where] + bytes([data.draw(st.integers(0, 255))]) + payload[where + 1 :]
    try:
        walked = walk_elements(damaged, name)
    except WireFormatError:
        with pytest.raises(WireFormatError):
            decode_elements(damaged, name)
    else:
        assert decode_elements(damaged, name) == walked


@pytest.mark.parametrize("size", [13, 3, 17])
def test_a_key_of_the_wrong_length_is_refused_before_it_is_read(size: int) -> None:
    """An IPv6 set's element whose key is shorter or longer than an address: a WireFormatError naming the
    length, from the walk and the struct alike (a short key once reached inet_ntop's ValueError)."""
    element = attribute(1, attribute(1, attribute(1, bytes(size))))
    payload = reply_of(element)
    for decode in (walk_elements, decode_elements):
        with pytest.raises(WireFormatError, match=f"a key of {size} bytes"):
            decode(payload, "vips6")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("vips4", ("203.0.113.1",), id="address"),
        pytest.param("services6", ("2001:db8::1", "sctp", 443), id="address-protocol-port"),
        pytest.param("hairpin6", ("2001:db8::2", "udp", 53, "2001:db8::3"), id="two-addresses"),
    ],
)
def test_elements_as_the_kernel_dumps_them_are_read_by_the_struct(name: str, value: Value) -> None:
    """Plain elements (no header flags, nothing but the key) are read without walking their attributes."""
    key = encode_element(name, value)[12:]  # after the element's, the key nest's and the value's headers
    run = b"".join(attribute(1, attribute(1, attribute(1, key))) for _ in range(3))
    assert plain_elements(run, name) == [value] * 3


def test_a_run_with_anything_else_is_left_to_the_walk() -> None:
    """An element that also carries NFTA_SET_ELEM_FLAGS is not plain: the struct declines the whole run."""
    key = encode_element("vips4", ("203.0.113.1",))[12:]
    flagged = attribute(1, attribute(1, attribute(1, key)) + attribute(3, b"\0\0\0\1"))
    assert plain_elements(attribute(1, attribute(1, attribute(1, key))) + flagged, "vips4") is None


@given(elements())
def test_the_struct_encoding_equals_the_field_by_field_one(element: tuple[str, Value]) -> None:
    """encode_element's precompiled structs give the bytes encoding field by field gives, for every set."""
    name, value = element
    assert encode_element(name, value) == encode_fields(name, value)


ODD_PARTS = st.one_of(
    st.sampled_from(["203.0.113.1", "2001:db8::1", "tcp", "udp", "icmp", "80", "", "::"]),
    st.integers(min_value=-2, max_value=70000),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
)


@given(st.sampled_from([set_name(kind, family) for kind in Kind for family in (4, 6)]), st.lists(ODD_PARTS, max_size=5))
def test_any_value_is_encoded_or_refused_as_field_by_field(name: str, parts: list[object]) -> None:
    """Whatever the value (other types, bad parts, another length), encode_element answers as encode_fields."""
    value = tuple(parts)
    try:
        expected = encode_fields(name, value)  # type: ignore[arg-type]  # odd values on purpose
    except WireFormatError:
        with pytest.raises(WireFormatError):
            encode_element(name, value)  # type: ignore[arg-type]
    else:
        assert encode_element(name, value) == expected  # type: ignore[arg-type]


def test_a_table_flags_message_updates_the_named_inet_table() -> None:
    """NEWTABLE of subsystem nf_tables, no create flag; the inet family, the name, the flags big-endian."""
    data = table_flags_message(table="ipvsctl", flags=0x1, seq=7, message_flags=0x4)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", data)
    assert (length, kind, flags, seq) == (len(data), 10 << 8, 0x1 | 0x4, 7)
    assert data[16:20] == bytes([1, 0, 0, 0])  # nfgenmsg: NFPROTO_INET, version 0, resource 0
    assert data[20:] == attribute(1, b"ipvsctl\0") + attribute(2, struct.pack("!I", 1))


def test_a_table_request_gets_one_inet_table_by_name() -> None:
    """GETTABLE (not a dump) of the inet family, naming the table."""
    data = table_request(table="ipvsctl", seq=3, flags=0x4)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", data)
    assert (length, kind, flags, seq) == (len(data), (10 << 8) | 1, 0x1 | 0x4, 3)
    assert data[16:] == bytes([1, 0, 0, 0]) + attribute(1, b"ipvsctl\0")


def test_table_flags_are_read_from_a_reply_and_default_to_zero() -> None:
    """NFTA_TABLE_FLAGS big-endian among other attributes; a reply without it has flags 0."""
    head = bytes([1, 0, 0, 0])
    name = attribute(1, b"ipvsctl\0")
    assert table_flags(head + name + attribute(2, struct.pack("!I", 1)) + attribute(3, b"\0\0\0\5")) == 1
    assert table_flags(head + name) == 0


def test_table_flags_of_the_wrong_size_are_refused() -> None:
    """A flags attribute that is not four bytes is a WireFormatError, not a guess."""
    with pytest.raises(WireFormatError):
        table_flags(bytes([1, 0, 0, 0]) + attribute(2, b"\1\0"))
