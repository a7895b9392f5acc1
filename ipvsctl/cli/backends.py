"""Opening the kernel backend from the command line (imported lazily: pyroute2 is slow to import)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from ipvsctl.backend.base import Backend

__all__ = ["open_backend"]


@contextlib.asynccontextmanager
async def open_backend(*, interface: str) -> AsyncIterator[Backend]:
    """The netlink backend of this network namespace, closed afterwards."""
    from ipvsctl.backend.netlink import NetlinkBackend  # noqa: PLC0415 (offline commands never pay for pyroute2)

    backend = NetlinkBackend(interface=interface)
    try:
        yield backend
    finally:
        await backend.close()
