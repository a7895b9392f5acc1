"""Opening the kernel backend from the command line (imported lazily: offline commands never load it)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from ipvsctl.backend.base import Backend
from ipvsctl.backend.limits import interface_name_problem
from ipvsctl.errors import UsageError

__all__ = ["check_interface_name", "open_backend"]


def check_interface_name(interface: str) -> str:
    """``--interface``'s value when the kernel would take it as a link name; UsageError otherwise."""
    problem = interface_name_problem(interface)
    if problem is not None:
        raise UsageError(f"{interface!r} {problem}", flag="--interface")
    return interface


@contextlib.asynccontextmanager
async def open_backend(*, interface: str) -> AsyncIterator[Backend]:
    """The netlink backend of this network namespace, closed afterwards.

    Refuses, before anything is read, bound or deleted, an ``interface`` name the kernel would not take
    (UsageError) and an existing interface of that name that is not a dummy (BackendError naming its kind).
    """
    from ipvsctl.backend.kernel import NetlinkBackend  # noqa: PLC0415 (offline commands never load the kernel backend)

    backend = NetlinkBackend(interface=check_interface_name(interface))
    try:
        await backend.check_interface()
        yield backend
    finally:
        await backend.close()
