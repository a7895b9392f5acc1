"""The connection timeouts on the wire (SET_CONFIG, GET_CONFIG): the lean codec against pyroute2, on the host.

pyroute2 types the three timeout attributes as ``hex`` (bytes in, ``"84:03:00:00"`` out); its transport packs
and unpacks them, so both transports send the same bytes and read the same numbers. Replies are built as
``ip_vs_genl_get_cmd`` writes them: a SET_CONFIG message with three top-level u32 attributes.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyroute2.netlink.generic.ipvs import ipvsmsg

from ipvsctl.backend.base import KERNEL_INT_MAX, IpvsTimeouts
from ipvsctl.backend.ipvs.attributes import CMD_GET_CONFIG, CMD_SET_CONFIG, COMMAND_ATTRIBUTES, TIMEOUT_ATTRIBUTES
from ipvsctl.backend.ipvs.codec import decode_timeouts, timeouts_get_request, timeouts_set_request
from ipvsctl.backend.ipvs.pyroute2 import _timeouts
from ipvsctl.backend.ipvs.wire import decode_timeouts_reply
from ipvsctl.backend.netlink.message import GENL_HEADER, attribute, iter_replies, message
from tests.contract.test_ipvs_wire import FAMILY_ID, NLM_F_REQUEST, ours, pyroute2_request

seconds = st.integers(min_value=0, max_value=KERNEL_INT_MAX)
timeouts = st.builds(IpvsTimeouts, tcp=seconds, tcp_fin=seconds, udp=seconds)


def kernel_reply(*values: tuple[str, int]) -> bytes:
    """A GET_CONFIG reply as the kernel writes it: command SET_CONFIG, each timeout a u32 attribute."""
    body = GENL_HEADER.pack(CMD_SET_CONFIG, 1, 0) + b"".join(
        attribute(COMMAND_ATTRIBUTES[name][0], struct.pack("=I", value)) for name, value in values
    )
    return message(FAMILY_ID, flags=0, seq=7, body=body)


def payload_of(data: bytes) -> bytes:
    """The generic-netlink payload (genl header and attributes) of the one message in ``data``."""
    (reply,) = iter_replies(data)
    return bytes(reply.payload)


def pyroute2_reads(data: bytes) -> IpvsTimeouts:
    """The reply read as the pyroute2 transport reads it (pyroute2's hex text, unpacked)."""
    answer = ipvsmsg(data)
    answer.decode()
    return decode_timeouts(_timeouts(answer))


@given(timeouts)
def test_a_timeout_change_encodes_as_pyroute2_does(change: IpvsTimeouts) -> None:
    """SET_CONFIG: the same bytes from the lean codec as from pyroute2 through its transport's packing."""
    request = timeouts_set_request(change)

    assert ours(request, flags=NLM_F_REQUEST) == pyroute2_request(request, flags=NLM_F_REQUEST)


def test_a_change_sends_all_three_zeros_included() -> None:
    """A 0 goes to the kernel as 0 (which keeps that timeout), in the order tcp, tcpfin, udp, as ipvsadm sends them."""
    data = ours(timeouts_set_request(IpvsTimeouts(udp=7)), flags=NLM_F_REQUEST)

    assert data[16:20] == bytes([CMD_SET_CONFIG, 1, 0, 0])
    assert data[20:] == struct.pack("=HHIHHIHHI", 8, 4, 0, 8, 5, 0, 8, 6, 7)


def test_the_read_request_is_a_bare_get_config() -> None:
    """GET_CONFIG carries no attribute, as pyroute2 sends it too."""
    request = timeouts_get_request()

    assert request.command == CMD_GET_CONFIG
    assert ours(request, flags=NLM_F_REQUEST)[20:] == b""
    assert ours(request, flags=NLM_F_REQUEST) == pyroute2_request(request, flags=NLM_F_REQUEST)


@given(timeouts)
def test_a_reply_reads_the_same_through_both_transports(values: IpvsTimeouts) -> None:
    """The lean decoder and pyroute2 (with the transport's unpacking) read the kernel's reply alike, exactly."""
    data = kernel_reply(*zip(TIMEOUT_ATTRIBUTES, (values.tcp, values.tcp_fin, values.udp), strict=True))

    assert decode_timeouts(decode_timeouts_reply(payload_of(data))) == values
    assert pyroute2_reads(data) == values


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param((), IpvsTimeouts(), id="none"),
        pytest.param(
            (("IPVS_CMD_ATTR_TIMEOUT_TCP", 900), ("IPVS_CMD_ATTR_TIMEOUT_TCP_FIN", 120)),
            IpvsTimeouts(tcp=900, tcp_fin=120),
            id="no-udp",
        ),
        pytest.param(
            (("IPVS_CMD_ATTR_TIMEOUT_UDP", 300), ("IPVS_CMD_ATTR_TIMEOUT_TCP", 900)),
            IpvsTimeouts(tcp=900, udp=300),
            id="any-order",
        ),
    ],
)
def test_a_timeout_the_kernel_leaves_out_reads_as_zero(
    values: tuple[tuple[str, int], ...], expected: IpvsTimeouts
) -> None:
    """A kernel built without a protocol leaves its timeouts out: they read as 0, the others as sent."""
    data = kernel_reply(*values)

    assert decode_timeouts(decode_timeouts_reply(payload_of(data))) == expected
    assert pyroute2_reads(data) == expected
