"""Learnt reply layouts decode exactly as ``ipvs_wire``'s attribute walk does, and fall back to it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ipvsctl.backend.ipvs_layout import dest_decoder, service_decoder
from ipvsctl.backend.ipvs_wire import decode_dest_reply, decode_service_reply
from ipvsctl.model import RealServer, ServiceKey, VirtualService
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
