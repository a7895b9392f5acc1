"""The fast paths of the lean IPVS transport give what the general ones give: requests patched into templates
are the bytes of the full encoding, and the collector paused around a read comes back as it was."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvsctl.backend.ipvs.codec import dest_dump_request, request_for, service_get_request
from ipvsctl.backend.ipvs.wire import KeyedRequests, OperationMessages, encode_request
from ipvsctl.backend.netlink.collector import collector_paused
from ipvsctl.backend.netlink.message import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, WireFormatError
from ipvsctl.model import AddRealServer, Operation, Protocol, RealServer, ServiceKey
from tests.contract.test_ipvs_wire import operations
from tests.strategies import service_keys

FAMILY_ID = 0x25
SEQUENCES = st.integers(min_value=1, max_value=2**32 - 1)
BUILDS = st.sampled_from([(dest_dump_request, NLM_F_REQUEST | NLM_F_DUMP), (service_get_request, NLM_F_REQUEST)])


@st.composite
def same_shape_keys(draw: st.DrawFn) -> tuple[ServiceKey, ServiceKey]:
    """Two keys of one protocol and family: the second is encoded from the template the first left."""
    first = draw(service_keys())
    second = draw(service_keys().filter(lambda key: key.protocol is first.protocol and key.family == first.family))
    return first, second


@given(keys=same_shape_keys(), build=BUILDS, first_seq=SEQUENCES, second_seq=SEQUENCES)
def test_a_patched_request_is_the_full_encoding(
    keys: tuple[ServiceKey, ServiceKey], build: tuple[object, int], first_seq: int, second_seq: int
) -> None:
    """A request patched from another key's template equals the full encoding of its own request."""
    make, flags = build
    assert make is dest_dump_request or make is service_get_request
    requests = KeyedRequests(make, family_id=FAMILY_ID, flags=flags)
    first, second = keys

    messages = [requests.message(first, seq=first_seq), requests.message(second, seq=second_seq)]

    assert messages == [
        encode_request(make(key), family_id=FAMILY_ID, flags=flags, seq=seq)
        for key, seq in ((first, first_seq), (second, second_seq))
    ]


def test_a_second_key_of_a_known_shape_is_not_encoded_in_full() -> None:
    """Once a shape has its template, later keys of that shape are patched into it, not built as requests."""
    built: list[ServiceKey] = []

    def counted(key: ServiceKey) -> object:
        built.append(key)
        return dest_dump_request(key)

    requests = KeyedRequests(counted, family_id=FAMILY_ID, flags=NLM_F_REQUEST)  # type: ignore[arg-type]
    first, second = ServiceKey(Protocol.UDP, "2001:db8::1", 53), ServiceKey(Protocol.UDP, "2001:db8::2", 54)

    requests.message(first, seq=1)
    requests.message(second, seq=2)

    assert built == [first]


def test_a_template_that_does_not_patch_back_is_not_used() -> None:
    """A shape whose full encoding the template cannot reproduce is encoded in full from then on."""
    calls: list[ServiceKey] = []

    def odd(key: ServiceKey) -> object:
        calls.append(key)
        request = dest_dump_request(key)
        request.attributes.append(("IPVS_CMD_ATTR_TIMEOUT_TCP", len(calls)))  # differs at every encoding
        return request

    requests = KeyedRequests(odd, family_id=FAMILY_ID, flags=NLM_F_REQUEST)  # type: ignore[arg-type]
    key = ServiceKey(Protocol.TCP, "192.0.2.1", 80)
    requests.message(key, seq=1)
    calls.clear()

    requests.message(key, seq=2)

    assert calls == [key]


@given(ops=st.lists(operations(), min_size=1, max_size=6), seq=SEQUENCES, ack=st.booleans())
def test_an_operation_message_is_the_full_encoding(ops: list[Operation], seq: int, ack: bool) -> None:
    """Operations of any kind, in any order on one encoder, give the full encoding of their requests."""
    flags = NLM_F_REQUEST | (NLM_F_ACK if ack else 0)
    messages = OperationMessages(family_id=FAMILY_ID)

    encoded = [messages.message(operation, flags=flags, seq=seq) for operation in ops]

    assert encoded == [encode_request(request_for(op), family_id=FAMILY_ID, flags=flags, seq=seq) for op in ops]


def test_an_operation_that_cannot_be_encoded_is_refused_as_the_full_encoding_refuses_it() -> None:
    """A value out of its attribute's range is a WireFormatError, as from the full encoding."""
    operation = AddRealServer(ServiceKey(Protocol.TCP, "192.0.2.1", 80), RealServer("198.51.100.1", 80, weight=2**32))
    messages = OperationMessages(family_id=FAMILY_ID)
    messages.message(AddRealServer(operation.service, RealServer("198.51.100.2", 80)), flags=NLM_F_REQUEST, seq=1)

    with pytest.raises(WireFormatError, match="cannot encode IPVS attributes"):
        messages.message(operation, flags=NLM_F_REQUEST, seq=2)


@pytest.fixture
def collector_on() -> Iterator[None]:
    """The collector on for the test, and as it was after it."""
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


@pytest.mark.usefixtures("collector_on")
def test_the_collector_is_off_inside_a_pause_and_on_after_it() -> None:
    """Inside the pause no collection runs; after it the collector is on again."""
    with collector_paused():
        inside = gc.isenabled()

    assert (inside, gc.isenabled()) == (False, True)


@pytest.mark.usefixtures("collector_on")
def test_overlapping_pauses_end_with_the_last() -> None:
    """A pause in another thread that ends first leaves the collector off until the last pause ends."""
    entered, release = threading.Event(), threading.Event()

    def other() -> None:
        with collector_paused():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    entered.wait(10)
    with collector_paused():
        release.set()
        thread.join(10)
        after_other = gc.isenabled()

    assert (after_other, gc.isenabled()) == (False, True)


def test_a_pause_leaves_a_collector_that_was_off_off() -> None:
    """A pause never turns on a collector that someone else turned off."""
    was = gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        after = gc.isenabled()
    finally:
        if was:
            gc.enable()

    assert after is False
