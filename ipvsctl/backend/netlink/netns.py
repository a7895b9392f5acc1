"""Netlink sockets opened inside a network namespace, without moving the event loop's thread.

A short-lived helper thread enters the namespace with setns(2), creates the socket and ends; a socket
stays in the namespace it was created in. (pyroute2's own ``netns=`` forks a child process per socket
instead.) ``netns`` is a name under /run/netns or a path to a namespace file; None is this namespace.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from pathlib import Path

from ipvsctl.errors import BackendError

__all__ = ["NETLINK_GENERIC", "NETLINK_ROUTE", "NETNS_DIR", "netlink_descriptor"]

NETNS_DIR = Path("/run/netns")
NETLINK_ROUTE = 0
NETLINK_GENERIC = 16
_CLONE_NEWNET = 0x40000000


def netlink_descriptor(*, netns: str | None, protocol: int) -> int:
    """A new netlink socket's descriptor (SOCK_DGRAM, blocking), created inside ``netns`` when given."""
    path = None if netns is None else Path(netns) if "/" in netns else NETNS_DIR / netns
    outcome: list[int | OSError] = []

    def create() -> None:
        try:
            if path is not None:
                _enter_netns(path)
            outcome.append(socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, protocol).detach())
        except OSError as error:
            outcome.append(error)

    if path is None:
        create()
    else:
        helper = threading.Thread(target=create, name=f"netns-{path.name}", daemon=True)
        helper.start()
        helper.join()  # a setns and a socket(): microseconds
    (result,) = outcome
    if isinstance(result, OSError):
        where = "netlink socket" if netns is None else f"netns {netns}"
        raise BackendError(result.strerror or str(result), target=where, errno=result.errno or 0)
    return result


def _enter_netns(path: Path) -> None:
    """Move the calling thread (only) into the network namespace at ``path``."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(descriptor, _CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"setns: {os.strerror(code)}")
    finally:
        os.close(descriptor)
