"""Small factories for the contract suite: services and real servers in documentation ranges."""

from __future__ import annotations

from ipvsctl.backend.base import ApplyReport, Backend
from ipvsctl.model import (
    AddRealServer,
    AddVirtualService,
    Forwarding,
    Operation,
    Persistence,
    Protocol,
    RealServer,
    ServiceKey,
    Table,
    VirtualService,
)

VIP4 = "203.0.113.10"
VIP6 = "2001:db8:f::10"
TCP80 = ServiceKey(Protocol.TCP, VIP4, 80)
TCP80_V6 = ServiceKey(Protocol.TCP, VIP6, 80)


def key(protocol: Protocol = Protocol.TCP, *, family: int = 4, port: int = 80) -> ServiceKey:
    """A service key on the VIP of a family."""
    return ServiceKey(protocol, VIP6 if family == 6 else VIP4, port)


def real(
    last: int = 11,
    *,
    family: int = 4,
    port: int = 8080,
    weight: int = 1,
    forwarding: Forwarding = Forwarding.MASQ,
    upper: int = 0,
    lower: int = 0,
) -> RealServer:
    """A real server 198.51.100.LAST (or 2001:db8:5::LAST)."""
    address = f"2001:db8:5::{last}" if family == 6 else f"198.51.100.{last}"
    return RealServer(address, port, weight=weight, forwarding=forwarding, upper_threshold=upper, lower_threshold=lower)


def service(
    service_key: ServiceKey = TCP80,
    *reals: RealServer,
    scheduler: str = "rr",
    persistence: Persistence | None = None,
) -> VirtualService:
    """A virtual service with its real servers."""
    return VirtualService(service_key, scheduler=scheduler, persistence=persistence, reals=reals)


def creation(*services: VirtualService) -> list[Operation]:
    """The operations that create services with their real servers."""
    operations: list[Operation] = []
    for each in services:
        operations.append(AddVirtualService(each.settings()))
        operations.extend(AddRealServer(each.key, one) for one in each.reals)
    return operations


async def install(backend: Backend, *services: VirtualService) -> None:
    """Create services on a backend, failing the test if any operation fails."""
    report = await backend.apply(creation(*services))
    assert report.ok, report.failures


async def table_of(backend: Backend) -> Table:
    """The backend's table now."""
    return (await backend.read()).table


def errnos(report: ApplyReport) -> list[int]:
    """The errnos of a report's failures, in order."""
    return [failure.errno for failure in report.failures]
