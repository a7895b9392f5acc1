"""Tests of ipvsctl.backend.netlink.channel's socket set-up: the timeout is the kernel's, not Python's."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
from collections.abc import Iterator

import pytest

from ipvsctl.backend.netlink.channel import TIMEOUT_SECONDS, NetlinkChannel

_NETLINK_ROUTE = 0


@pytest.fixture
def watched() -> Iterator[socket.socket]:
    """A second handle on the socket a NetlinkChannel owns, to look at its options."""
    descriptor = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_ROUTE).detach()
    channel = NetlinkChannel(descriptor, protocol=_NETLINK_ROUTE, target="test")
    other = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_ROUTE, fileno=os.dup(descriptor))
    yield other
    other.close()
    channel.close()


def test_socket_is_blocking_without_a_python_timeout(watched: socket.socket) -> None:
    """The descriptor is blocking: a Python timeout would make it non-blocking and poll before every call."""
    assert not fcntl.fcntl(watched.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK


@pytest.mark.parametrize("option", [socket.SO_RCVTIMEO, socket.SO_SNDTIMEO], ids=["receive", "send"])
def test_kernel_timeout_bounds_each_call(watched: socket.socket, option: int) -> None:
    """The kernel gives up on a send or receive after TIMEOUT_SECONDS."""
    seconds, micros = struct.unpack("@ll", watched.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("@ll")))
    assert seconds + micros / 1e6 == TIMEOUT_SECONDS
