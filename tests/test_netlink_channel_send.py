"""Tests of NetlinkChannel.send: a buffer larger than the socket's send buffer still goes in one sendmsg."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator

import pytest

from ipvsctl.backend.netlink.channel import SEND_BUFFER, NetlinkChannel

_NETLINK_ROUTE = 0
_NLMSG_NOOP = 1
_NOOP = struct.pack("=IHHII", 16, _NLMSG_NOOP, 0, 0, 0)  # no NLM_F_REQUEST: the kernel skips it, answering nothing


@pytest.fixture
def channel_and_view() -> Iterator[tuple[NetlinkChannel, socket.socket]]:
    """A channel on a rtnetlink socket and a second handle on that socket, to look at its options."""
    descriptor = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_ROUTE).detach()
    channel = NetlinkChannel(descriptor, protocol=_NETLINK_ROUTE, target="test")
    other = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_ROUTE, fileno=os.dup(descriptor))
    yield channel, other
    other.close()
    channel.close()


def test_a_send_larger_than_the_buffer_raises_it_and_goes_whole(
    channel_and_view: tuple[NetlinkChannel, socket.socket],
) -> None:
    """Three times the set-up buffer (the kernel doubles it) is sent, the buffer raised to hold it."""
    channel, view = channel_and_view
    data = _NOOP * (3 * 2 * SEND_BUFFER // len(_NOOP))
    assert view.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < len(data)
    channel.send(data)
    assert view.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= len(data) + 32


def test_a_send_that_fits_leaves_the_buffer_alone(channel_and_view: tuple[NetlinkChannel, socket.socket]) -> None:
    """A buffer that fits is sent without touching the socket's send buffer."""
    channel, view = channel_and_view
    before = view.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    channel.send(_NOOP * 1000)
    assert view.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == before
