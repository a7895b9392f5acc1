"""Learnt reply layouts decode exactly as ``ipvs.wire``'s attribute walk does, and fall back to it."""

from __future__ import annotations

import socket
import struct
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvsctl.backend.ipvs.codec import DestValues, decode_dest, decode_service, service_from_wire
from ipvsctl.backend.ipvs.layout import dest_decoder, service_decoder
from ipvsctl.backend.ipvs.reread import Memo
from ipvsctl.backend.ipvs.wire import decode_dest_reply, decode_service_reply
from ipvsctl.backend.netlink.message import WireFormatError
from ipvsctl.model import Persistence, Protocol, RealServer, ServiceKey, VirtualService
from tests.contract.test_ipvs_wire import dest_reply, kernel_dest, kernel_service, our_payload, service_reply
from tests.strategies import real_servers, service_keys, virtual_services

COUNTERS = st.tuples(*[st.integers(0, 2**32 - 1)] * 10)


@st.composite
def dest_pairs(draw: st.DrawFn) -> tuple[ServiceKey, RealServer, RealServer]:
    """A service key and two of its real servers (the second decoded with the first's layout)."""
    key = draw(service_keys())
    return key, draw(real_servers(key=key)), draw(real_servers(key=key))


@given(dest_pairs(), COUNTERS, COUNTERS, st.tuples(*[st.integers(0, 2**31 - 1)] * 3))
def test_destination_replies_decode_as_the_walk_decodes_them(
    pair: tuple[ServiceKey, RealServer, RealServer],
    first: tuple[int, ...],
    second: tuple[int, ...],
    conns: tuple[int, int, int],
) -> None:
    """Two destination replies in a row (the second by the layout learnt from the first) equal the walk's."""
    key, one, two = pair
    decode = dest_decoder()
    for real, counters in ((one, first), (two, second)):
        payload = our_payload(dest_reply(kernel_dest(real, key=key, conns=conns, counters=counters)))
        assert decode(payload) == decode_dest_reply(payload)


@given(virtual_services(max_reals=0), virtual_services(max_reals=0))
def test_service_replies_decode_as_the_walk_decodes_them(one: VirtualService, two: VirtualService) -> None:
    """Two service replies in a row equal the walk's, whatever their keys, flags and names."""
    decode = service_decoder()
    for service in (one, two):
        payload = our_payload(service_reply(kernel_service(service)))
        assert decode(payload) == decode_service_reply(payload)


@given(virtual_services(max_reals=0), virtual_services(max_reals=0))
def test_a_buffer_of_services_decodes_to_what_decode_service_makes_of_the_walk(
    one: VirtualService, two: VirtualService
) -> None:
    """many_keyed with service_from_wire (a read's service dump) gives each service it takes as decode_service
    makes it of the walk, whatever its key, flags, persistence and names."""
    payloads = [bytes(our_payload(service_reply(kernel_service(service)))) for service in (one, two)]
    decode = service_decoder()
    decode(payloads[0])

    batch = decode.many_keyed(
        netlink_messages(payloads), message_type=0x1C, seq=5, decode=decode_service, memo={}, into={},
        from_wire=service_from_wire,
    )  # fmt: skip

    if batch is not None:  # else the buffer is left to the walk (another length or layout): the test above
        assert [service for _, service in batch] == [decode_service(decode_service_reply(p)) for p in payloads]


@pytest.mark.parametrize(
    "service",
    [
        VirtualService(ServiceKey(Protocol.TCP, "198.51.100.7", 443), "wrr", Persistence(10800, 24)),
        VirtualService(ServiceKey(Protocol.UDP, "2001:db8::7", 53), "sh", Persistence(60, 64), frozenset({"sh-port"})),
        VirtualService(ServiceKey(Protocol.SCTP, "::ffff:c000:207", 9), "rr", one_packet=True),
    ],
    ids=["tcp-v4-persistent", "udp-v6-sched-flag", "sctp-v4-in-v6-one-packet"],
)
def test_the_usual_service_reply_is_read_from_its_fields_alone(service: VirtualService) -> None:
    """A service of a protocol without a persistence engine takes the fast path (no mapping), read exactly."""
    payload = bytes(our_payload(service_reply(kernel_service(service))))
    decode = service_decoder()
    decode(payload)

    def no_mapping(_attributes: Mapping[str, object]) -> VirtualService | None:
        raise AssertionError("decoded through the attribute mapping")

    batch = decode.many_keyed(
        netlink_messages([payload]), message_type=0x1C, seq=5, decode=no_mapping, memo={}, into={},
        from_wire=service_from_wire,
    )  # fmt: skip

    assert batch is not None
    assert [value for _, value in batch] == [service]


def test_a_service_of_a_family_without_addresses_is_left_to_the_walk() -> None:
    """A usual service reply whose family the model has no address size for: the fast path declines the buffer,
    and the walk names what is wrong."""
    service = VirtualService(ServiceKey(Protocol.TCP, "198.51.100.7", 443))
    payload = bytes(our_payload(service_reply(kernel_service(service))))
    decode = service_decoder()
    decode(payload)
    family = struct.pack("=HHH", 6, 1, 2)  # IPVS_SVC_ATTR_AF, AF_INET
    assert payload.count(family) == 1
    odd = payload.replace(family, struct.pack("=HHH", 6, 1, 99))

    batch = decode.many_keyed(
        netlink_messages([odd]), message_type=0x1C, seq=5, decode=decode_service, memo={}, into={},
        from_wire=service_from_wire,
    )  # fmt: skip

    assert batch is None
    with pytest.raises(WireFormatError, match="address family 99"):
        decode_service_reply(odd)


def test_a_service_of_a_protocol_the_model_cannot_hold_is_left_to_the_walk() -> None:
    """A usual service reply of another protocol: the fast path declines the buffer, and decode_service of the
    walk leaves the service out (None), as a read skips it."""
    service = VirtualService(ServiceKey(Protocol.TCP, "198.51.100.7", 443))
    payload = bytes(our_payload(service_reply(kernel_service(service))))
    decode = service_decoder()
    decode(payload)
    protocol = struct.pack("=HHH", 6, 2, 6)  # IPVS_SVC_ATTR_PROTOCOL, IPPROTO_TCP
    assert payload.count(protocol) == 1
    other = payload.replace(protocol, struct.pack("=HHH", 6, 2, 33))  # IPPROTO_DCCP

    batch = decode.many_keyed(
        netlink_messages([other]), message_type=0x1C, seq=5, decode=decode_service, memo={}, into={},
        from_wire=service_from_wire,
    )  # fmt: skip

    assert batch is None
    assert decode_service(decode_service_reply(other)) is None


def test_a_destination_layout_is_learnt_from_the_first_reply() -> None:
    """After one reply, its length has a usable layout."""
    key = ServiceKey.fwmark(7, family=4)
    payload = our_payload(dest_reply(kernel_dest(RealServer("198.51.100.1", 80), key=key)))
    decode = dest_decoder()

    decode(payload)

    assert decode.layouts == {len(payload): True}


def test_a_reply_of_a_known_length_with_other_attributes_is_walked() -> None:
    """A reply of a learnt length whose headers differ from the layout is decoded by the walk."""
    key = ServiceKey.fwmark(7, family=6)
    learnt = our_payload(dest_reply(kernel_dest(RealServer("2001:db8::1", 80), key=key)))
    decode = dest_decoder()
    decode(learnt)
    changed = bytearray(learnt)
    # Same length, but the first attribute's type changed to one the kernel does not send: the walk skips it.
    changed[10:12] = (99).to_bytes(2, "little")

    assert decode(bytes(changed)) == decode_dest_reply(bytes(changed))


def netlink_messages(payloads: list[bytes], *, message_type: int = 0x1C, seq: int = 5) -> bytes:
    """Payloads as consecutive netlink messages (nlmsghdr each), as one recv() returns a dump's part."""
    return b"".join(struct.pack("=IHHII", 16 + len(payload), message_type, 2, seq, 0) + payload for payload in payloads)


@given(dest_pairs(), COUNTERS)
def test_a_buffer_of_replies_decodes_at_once_as_the_walk_decodes_each(
    pair: tuple[ServiceKey, RealServer, RealServer], counters: tuple[int, ...]
) -> None:
    """Once a length is learnt, a buffer of such replies decodes in one go, each equal to the walk's."""
    key, one, two = pair
    payloads = [bytes(our_payload(dest_reply(kernel_dest(real, key=key, counters=counters)))) for real in (one, two)]
    decode = dest_decoder()
    decode(payloads[0])

    batch = decode.many_keyed(netlink_messages(payloads), message_type=0x1C, seq=5, decode=dict, memo={}, into={})

    if len(payloads[0]) == len(payloads[1]):
        assert batch is not None
        assert [attributes for _, attributes in batch] == [decode_dest_reply(payload) for payload in payloads]
    else:
        assert batch is None


@given(dest_pairs(), COUNTERS, st.tuples(*[st.integers(0, 2**31 - 1)] * 3))
def test_a_buffer_of_destinations_decodes_to_what_the_walk_makes_of_each(
    pair: tuple[ServiceKey, RealServer, RealServer], counters: tuple[int, ...], conns: tuple[int, int, int]
) -> None:
    """many_dests (the fast path of a read) gives each destination exactly as decode_dest makes it of the walk."""
    key, one, two = pair
    replies = [dest_reply(kernel_dest(real, key=key, conns=conns, counters=counters)) for real in (one, two)]
    payloads = [bytes(our_payload(reply)) for reply in replies]
    decode = dest_decoder()
    decode(payloads[0])

    dests = decode.many_dests(netlink_messages(payloads), message_type=0x1C, seq=5, memo={}, into={})

    if len(payloads[0]) == len(payloads[1]):
        assert dests == [decode_dest(decode_dest_reply(payload), key=key) for payload in payloads]
    else:
        assert dests is None


def test_an_ipv4_address_inside_ipv6_reads_as_the_model_spells_it() -> None:
    """A destination at ::ffff:192.0.2.1 (inet_ntop writes it dotted) comes out as ipaddress spells it."""
    key = ServiceKey.fwmark(7, family=6)
    payload = bytes(our_payload(dest_reply(kernel_dest(RealServer("::ffff:c000:201", 80), key=key))))
    decode = dest_decoder()
    decode(payload)

    dests = decode.many_dests(netlink_messages([payload]), message_type=0x1C, seq=5, memo={}, into={})

    assert dests is not None
    assert dests[0].real.address == "::ffff:c000:201"
    assert dests == [decode_dest(decode_dest_reply(payload), key=key)]


def test_a_destination_address_too_short_for_its_family_is_left_to_the_walk() -> None:
    """A layout learnt from a 4-byte IPv4 address, then the same layout claiming IPv6: the fast path declines
    the buffer (no ValueError from inet_ntop), and the walk names the short address."""
    key = ServiceKey.fwmark(7, family=4)

    def reply(family: int) -> bytes:
        attributes = kernel_dest(RealServer("198.51.100.1", 80), key=key)
        short = [("IPVS_DEST_ATTR_ADDR", bytes(4)) if name == "IPVS_DEST_ATTR_ADDR" else (name, value)
                 for name, value in attributes]  # fmt: skip
        return bytes(our_payload(dest_reply(
            [(name, family) if name == "IPVS_DEST_ATTR_ADDR_FAMILY" else (name, value) for name, value in short]
        )))  # fmt: skip

    decode = dest_decoder()
    decode(reply(socket.AF_INET))
    odd = reply(socket.AF_INET6)

    assert decode.many_dests(netlink_messages([odd]), message_type=0x1C, seq=5, memo={}, into={}) is None
    with pytest.raises(WireFormatError, match="4 bytes in address family"):
        decode_dest_reply(odd)


def test_a_buffer_of_another_sequence_number_is_left_to_the_walk() -> None:
    """Replies to another request (sequence number) are not taken by the batch path."""
    key = ServiceKey.fwmark(7, family=4)
    payload = bytes(our_payload(dest_reply(kernel_dest(RealServer("198.51.100.1", 80), key=key))))
    decode = dest_decoder()
    decode(payload)

    buffer = netlink_messages([payload, payload], seq=6)
    assert decode.many_keyed(buffer, message_type=0x1C, seq=5, decode=dict, memo={}, into={}) is None


def test_a_memo_keeps_what_the_last_generation_used() -> None:
    """A value used in one generation survives the next; one unused for a whole generation is dropped."""
    memo: Memo[str, int] = Memo()
    memo.put("used", 1)
    memo.put("unused", 2)
    memo.next_generation()
    assert memo.get("used") == 1
    memo.next_generation()

    assert (memo.get("used"), memo.get("unused")) == (1, None)


def test_destinations_read_again_reuse_their_model_objects() -> None:
    """The same destination fields decoded twice give the very same RealServer, equal to the walk's."""
    key = ServiceKey.fwmark(7, family=6)
    payload = bytes(our_payload(dest_reply(kernel_dest(RealServer("2001:db8::1", 80), key=key))))
    decode = dest_decoder()
    decode(payload)
    memo: dict[tuple[object, ...], DestValues] = {}
    again: dict[tuple[object, ...], DestValues] = {}

    first = decode.many_dests(netlink_messages([payload]), message_type=0x1C, seq=5, memo={}, into=memo)
    second = decode.many_dests(netlink_messages([payload]), message_type=0x1C, seq=5, memo=memo, into=again)

    assert first is not None
    assert second is not None
    assert first[0][0] is second[0][0]
    assert again == memo
    assert first == [decode_dest(decode_dest_reply(payload), key=key)]


def test_services_read_again_are_not_decoded_again() -> None:
    """A service reply whose unpacked fields are memoised skips decoding and gives the memoised value."""
    payload = bytes(our_payload(service_reply(kernel_service(VirtualService(ServiceKey.fwmark(9, family=4))))))
    decode = service_decoder()
    decode(payload)
    memo: Memo[tuple[object, ...], VirtualService] = Memo()
    decoded: list[VirtualService] = []

    def counting(attributes: Mapping[str, object]) -> VirtualService | None:
        service = decode_service(attributes)
        if service is not None:
            decoded.append(service)
        return service

    buffer = netlink_messages([payload], message_type=0x1C, seq=5)
    first = decode.many_keyed(buffer, message_type=0x1C, seq=5, decode=counting, memo=memo.previous, into=memo.current)
    memo.next_generation()
    second = decode.many_keyed(buffer, message_type=0x1C, seq=5, decode=counting, memo=memo.previous, into=memo.current)

    assert first is not None
    assert first == second
    assert (len(decoded), first[0][1]) == (1, decode_service(decode_service_reply(payload)))
