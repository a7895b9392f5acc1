"""Contract: hundreds of operations or addresses at once (several netlink batches) land exactly as one by one."""

from __future__ import annotations

import errno
from collections.abc import Callable

from ipvsctl.backend.base import Backend
from ipvsctl.model import AddRealServer, AddVirtualService, Operation, Protocol, RealServer, ServiceKey, VirtualService

SERVICES = 300  # with a real server each: 600 operations, more than two batches of 256
REFUSED_EVERY = 97  # these services ask for a scheduler the kernel does not have


def many_services() -> tuple[list[Operation], set[ServiceKey]]:
    """Adds of SERVICES services with one real server each; the keys whose scheduler is unknown."""
    operations: list[Operation] = []
    refused: set[ServiceKey] = set()
    for index in range(SERVICES):
        key = ServiceKey(Protocol.TCP, f"2001:db8:c::{index + 1:x}", 80)
        scheduler = "rr"
        if index % REFUSED_EVERY == 5:
            scheduler = "nosuch"
            refused.add(key)
        operations.append(AddVirtualService(VirtualService(key, scheduler=scheduler)))
        operations.append(AddRealServer(key, RealServer(f"2001:db8:d::{index + 1:x}", 8080)))
    return operations, refused


async def test_refusals_inside_large_batches_fail_alone(backend: Backend) -> None:
    """Of 600 operations, only the refused services fail (their real servers skipped); the rest go in."""
    operations, refused = many_services()

    report = await backend.apply(operations)

    failed = [(failure.operation.key, failure.errno) for failure in report.failures]
    assert (failed, report.skipped, report.applied) == (
        [(key, errno.ENOENT) for key in sorted(refused, key=operations_order(operations))],
        len(refused),
        len(operations) - 2 * len(refused),
    )
    table = (await backend.read()).table
    assert set(table.services) == {op.key for op in operations} - refused


async def test_hundreds_of_addresses_bind_and_unbind(backend: Backend) -> None:
    """600 VIPs bind and read back; binding half of them removes the rest."""
    vips = {f"2001:db8:e::{n:x}" for n in range(1, 301)} | {f"198.51.100.{n}" for n in range(1, 255)}
    vips |= {f"203.0.113.{n}" for n in range(1, 47)}

    await backend.bind_addresses(vips)
    everything = (await backend.read()).bound_addresses
    kept = set(sorted(vips)[::2])
    await backend.bind_addresses(kept)

    assert (everything, (await backend.read()).bound_addresses) == (frozenset(vips), frozenset(kept))


def operations_order(operations: list[Operation]) -> Callable[[ServiceKey], int]:
    """Sort key: a service key's first position in ``operations``."""
    positions = {op.key: index for index, op in reversed(list(enumerate(operations)))}
    return positions.__getitem__
