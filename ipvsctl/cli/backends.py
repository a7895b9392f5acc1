"""Opening the kernel backend from the command line (imported lazily: offline commands never load it)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from ipvsctl.backend.base import Backend
from ipvsctl.backend.limits import interface_name_problem
from ipvsctl.backend.nft.base import NetfilterState, NetfilterTable
from ipvsctl.errors import UsageError
from ipvsctl.options import NetfilterFlags

__all__ = ["check_interface_name", "open_backend", "open_netfilter", "read_netfilter"]


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


@contextlib.asynccontextmanager
async def open_netfilter(flags: NetfilterFlags) -> AsyncIterator[NetfilterTable | None]:
    """ipvsctl's nftables table in this network namespace (None with ``--no-netfilter``), closed afterwards.

    Refuses to start (BackendError) when ``nft`` or the kernel's support is missing: a node half programmed
    would look fine and break external traffic.
    """
    if not flags.enabled:
        yield None
        return
    from ipvsctl.backend.nft.kernel import KernelNetfilter  # noqa: PLC0415 (as open_backend)

    table = KernelNetfilter(masquerade_bit=flags.masquerade_bit, cluster_cidrs=flags.cluster_cidrs)
    try:
        await table.check()
        yield table
    finally:
        await table.close()


async def read_netfilter(flags: NetfilterFlags) -> NetfilterState | None:
    """What ipvsctl's nftables table holds now (None with ``--no-netfilter``); reading needs no ``nft``."""
    if not flags.enabled:
        return None
    from ipvsctl.backend.nft.kernel import KernelNetfilter  # noqa: PLC0415 (as open_backend)

    table = KernelNetfilter(masquerade_bit=flags.masquerade_bit, cluster_cidrs=flags.cluster_cidrs)
    try:
        return await table.read()
    finally:
        await table.close()
