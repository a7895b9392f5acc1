"""A stateful fake of the kernel's IPVS table: the same table semantics and the same errnos, in memory.

Owns the fake kernel's state: the table, the connection counts and stats tests set, the fake interface
(its kind and addresses), the connection timeouts, and the log of the operations it accepted. Tests simulate
drift by replacing ``table``. Refusals follow the order of checks of the kernel's ``ip_vs_ctl.c`` (measured in
the kernel lab), so an operation that breaks two rules fails with the errno the kernel gives; operations the
netlink client cannot encode are refused first, by the checks the kernel backend runs too (``limits``).
"""

from __future__ import annotations

import errno
import ipaddress
import os
from collections.abc import Collection, Sequence
from dataclasses import replace

from ipvsctl.backend.base import (
    KERNEL_INT_MAX,
    ApplyReport,
    IpvsTimeouts,
    KernelState,
    OperationFailure,
    RealServerStats,
    Traffic,
    TrafficStats,
    apply_in_order,
    canonical_addresses,
    check_timeouts,
)
from ipvsctl.backend.limits import (
    DEFAULT_INTERFACE,
    DUMMY_KIND,
    Refusal,
    encoding_problem,
    foreign_interface_error,
    valid_interface_name,
)
from ipvsctl.errors import BackendError
from ipvsctl.model import (
    DEFAULT_SCHEDULERS,
    AddRealServer,
    AddVirtualService,
    ConnectionCounts,
    DeleteRealServer,
    DeleteVirtualService,
    EditRealServer,
    EditVirtualService,
    Forwarding,
    Operation,
    RealServer,
    RealServerKey,
    ServiceKey,
    Table,
    VirtualService,
    canonical_ip,
    family_of,
)

__all__ = ["DEFAULT_PERSISTENCE_ENGINES", "DEFAULT_TIMEOUTS", "KERNEL_HZ", "MemoryBackend"]

DEFAULT_PERSISTENCE_ENGINES = frozenset({"sip"})  # the only one Linux ships (ip_vs_pe_sip)
DEFAULT_TIMEOUTS = IpvsTimeouts(tcp=900, tcp_fin=120, udp=300)  # a fresh namespace's (ip_vs_proto_tcp.c, _udp.c)
KERNEL_HZ = 250  # Debian's CONFIG_HZ (the lab's kernel): the kernel refuses a timeout over INT_MAX / HZ seconds
NO_SCHEDULER = "none"  # the kernel takes "none" as "no scheduler module"

_RealRef = tuple[ServiceKey, RealServerKey]


class MemoryBackend:
    """The Backend protocol over an in-memory table that refuses what the kernel refuses.

    The fake interface holds ``bound_addresses``. It is a dummy when they are given and absent otherwise,
    unless ``interface_kind`` names the kind of an interface already there (``""``: a device without a
    kind, as a NIC or ``lo``); one of any kind but dummy is refused as the kernel backend refuses it.
    """

    def __init__(
        self,
        *,
        table: Table | None = None,
        schedulers: Collection[str] = DEFAULT_SCHEDULERS,
        persistence_engines: Collection[str] = DEFAULT_PERSISTENCE_ENGINES,
        bound_addresses: Collection[str] = (),
        interface: str = DEFAULT_INTERFACE,
        interface_kind: str | None = None,
        timeouts: IpvsTimeouts = DEFAULT_TIMEOUTS,
        hz: int = KERNEL_HZ,
        host_addresses: Collection[str] = (),
    ) -> None:
        self._services: dict[ServiceKey, VirtualService] = dict(table.services) if table is not None else {}
        self._schedulers = frozenset(schedulers) | {NO_SCHEDULER}
        self._persistence_engines = frozenset(persistence_engines)
        self._interface = valid_interface_name(interface)
        self._bound = {canonical_ip(address) for address in bound_addresses}
        self._kind = interface_kind if interface_kind is not None else DUMMY_KIND if self._bound else None
        self._connections: dict[_RealRef, ConnectionCounts] = {}
        # The kernel's trash: a real server deleted with connections keeps them, and an add of it takes them back.
        self._trash: dict[_RealRef, ConnectionCounts] = {}
        self._stats: dict[_RealRef, RealServerStats] = {}
        self._host_addresses = frozenset(canonical_ip(address) for address in host_addresses)
        self._traffic: dict[_RealRef, Traffic] = {}
        self._service_traffic: dict[ServiceKey, Traffic] = {}
        self._timeouts = timeouts
        self._max_timeout = KERNEL_INT_MAX // hz
        self.closed = False
        self.operations_applied: list[Operation] = []
        """Every operation the fake accepted, in order (refused and skipped ones are in the ApplyReport)."""

    # --- test controls -----------------------------------------------------------------------------

    @property
    def table(self) -> Table:
        """The fake kernel's table now."""
        return Table(dict(self._services))

    @table.setter
    def table(self, table: Table) -> None:
        """Replace the table behind the agent's back (drift); counts of vanished real servers are dropped."""
        self._services = dict(table.services)
        present = {(service.key, real.key) for service in self._services.values() for real in service.reals}
        for counters in (self._connections, self._stats, self._traffic):
            for ref in set(counters) - present:
                del counters[ref]
        for key in set(self._service_traffic) - set(self._services):
            del self._service_traffic[key]

    @property
    def interface_kind(self) -> str | None:
        """The kind of the fake interface now (``"dummy"`` once the fake made it), None when there is none."""
        return self._kind

    @property
    def interface_addresses(self) -> frozenset[str]:
        """The addresses on the fake interface now, whatever its kind (what ``ip addr`` would show)."""
        return frozenset(self._bound)

    def set_connections(self, *, service: ServiceKey, real: RealServerKey, active: int, inactive: int = 0) -> None:
        """Set the connection counts the fake kernel reports for one real server."""
        self._connections[self._present(service, real)] = ConnectionCounts(active=active, inactive=inactive)

    def set_stats(self, *, service: ServiceKey, real: RealServerKey, stats: RealServerStats) -> None:
        """Set the traffic counters the fake kernel reports for one real server."""
        self._stats[self._present(service, real)] = stats

    def set_traffic(self, *, service: ServiceKey, traffic: Traffic, real: RealServerKey | None = None) -> None:
        """Set the counters and rates a stats dump reports for a virtual service, or one of its real servers."""
        if real is not None:
            self._traffic[self._present(service, real)] = traffic
        elif service in self._services:
            self._service_traffic[service] = traffic
        else:
            raise ValueError(f"no virtual service {service}")

    def _present(self, service: ServiceKey, real: RealServerKey) -> _RealRef:
        found = self._services.get(service)
        if found is None or real not in found.real_map():
            raise ValueError(f"no real server {real} in virtual service {service}")
        return (service, real)

    # --- the Backend protocol ---------------------------------------------------------------------

    async def check_interface(self) -> None:
        """Refuse a fake interface that is not a dummy (BackendError naming its kind); change nothing."""
        self._check_open()
        self._check_kind()

    async def read(self, *, only: Collection[ServiceKey] | None = None) -> KernelState:
        """The table (or the ``only`` keys of it), their counts (zero unless set) and stats, and bound addresses."""
        self._check_open()
        self._check_kind()
        if only is None:
            services = dict(self._services)
            bound = frozenset(self._bound)
        else:
            services = {key: self._services[key] for key in only if key in self._services}
            bound = frozenset(key.address for key in only if key.address in self._bound)
        refs = [(service.key, real.key) for service in services.values() for real in service.reals]
        zero = ConnectionCounts(active=0, inactive=0)
        return KernelState(
            table=Table(services),
            connections={ref: self._connections.get(ref, zero) for ref in refs},
            stats={ref: self._stats.get(ref, RealServerStats()) for ref in refs},
            bound_addresses=bound,
        )

    async def traffic(self) -> TrafficStats:
        """Every virtual service's and real server's traffic as set (zero unless set), and their connections."""
        self._check_open()
        refs = [(service.key, real.key) for service in self._services.values() for real in service.reals]
        zero = ConnectionCounts(active=0, inactive=0)
        return TrafficStats(
            services={key: self._service_traffic.get(key, Traffic()) for key in self._services},
            real_servers={ref: self._traffic.get(ref, Traffic()) for ref in refs},
            connections={ref: self._connections.get(ref, zero) for ref in refs},
        )

    async def host_addresses(self) -> frozenset[str]:
        """The host addresses the fake was given (its other interfaces'), those on its own interface left out."""
        self._check_open()
        self._check_kind()
        return self._host_addresses - self._bound

    async def service_keys(self, addresses: Collection[str] | None) -> frozenset[ServiceKey]:
        """The keys of every virtual service at ``addresses`` (None: every key)."""
        self._check_open()
        if addresses is None:
            return frozenset(self._services)
        return frozenset(key for key in self._services if key.address in addresses)

    async def apply(self, operations: Sequence[Operation]) -> ApplyReport:
        """Apply operations in order, refusing each as the kernel would; skip a service's rest after a failure."""
        self._check_open()
        return await apply_in_order(operations, self._attempt)

    async def bind_addresses(self, addresses: Collection[str], *, within: Collection[str] | None = None) -> None:
        """Make the fake interface hold exactly ``addresses`` (of ``within``, when given), creating it if needed."""
        self._check_open()
        wanted = canonical_addresses(addresses)
        self._check_kind()
        self._kind = DUMMY_KIND
        if within is None:
            self._bound = wanted
            return
        scope = canonical_addresses(within)
        self._bound = (self._bound - scope) | (wanted & scope)

    async def remove_interface(self) -> bool:
        """Delete the fake dummy interface and its addresses; False when there is none, BackendError for others."""
        self._check_open()
        self._check_kind()
        present = self._kind is not None
        self._kind = None
        self._bound = set()
        return present

    async def timeouts(self) -> IpvsTimeouts:
        """The fake kernel's connection timeouts."""
        self._check_open()
        return self._timeouts

    async def set_timeouts(self, timeouts: IpvsTimeouts) -> None:
        """Set the timeouts that are not 0, all or none: EINVAL over INT_MAX / HZ seconds, as the kernel answers."""
        self._check_open()
        check_timeouts(timeouts)
        if max(timeouts.tcp, timeouts.tcp_fin, timeouts.udp) > self._max_timeout:
            code = errno.EINVAL
            raise BackendError(f"cannot set the timeouts ({timeouts}): {os.strerror(code)}", target="IPVS", errno=code)
        self._timeouts = timeouts.kept(self._timeouts)

    async def close(self) -> None:
        """Mark the fake closed: later calls raise BackendError, as a closed socket would."""
        self.closed = True

    def _check_open(self) -> None:
        if self.closed:
            raise BackendError("backend closed", target="memory")

    def _check_kind(self) -> None:
        if self._kind is not None and self._kind != DUMMY_KIND:
            raise foreign_interface_error(interface=self._interface, kind=self._kind)

    # --- the fake kernel --------------------------------------------------------------------------

    async def _attempt(self, operation: Operation) -> OperationFailure | None:
        refusal = encoding_problem(operation) or self._refusal(operation)
        if refusal is not None:
            return OperationFailure(operation, refusal.errno, refusal.message)
        self._perform(operation)
        self.operations_applied.append(operation)
        return None

    def _refusal(self, operation: Operation) -> Refusal | None:
        """What the kernel answers to an operation it refuses, checked in ip_vs_ctl.c's order."""
        existing = self._services.get(operation.key)
        match operation:
            case AddVirtualService(service=service):
                return _refused(errno.EEXIST) if existing is not None else self._settings_refusal(service)
            case EditVirtualService(service=service):
                return _refused(errno.ESRCH) if existing is None else self._settings_refusal(service)
            case DeleteVirtualService():
                return _refused(errno.ESRCH) if existing is None else None
            case AddRealServer() | EditRealServer() | DeleteRealServer():
                if existing is None:
                    return _refused(errno.ESRCH)
                return _real_refusal(operation, existing)

    def _settings_refusal(self, service: VirtualService) -> Refusal | None:
        if service.scheduler not in self._schedulers:
            return _refused(errno.ENOENT)
        if service.pe_name and service.pe_name not in self._persistence_engines:
            return _refused(errno.ENOENT)
        if service.key.family == 6 and service.persistence is not None and service.persistence.netmask < 1:
            return _refused(errno.EINVAL)
        return None

    def _perform(self, operation: Operation) -> None:
        key = operation.key
        match operation:
            case AddVirtualService(service=service):
                self._services[key] = service.settings()
            case EditVirtualService(service=service):
                self._services[key] = replace(service, reals=self._services[key].reals)
            case DeleteVirtualService():
                self._service_traffic.pop(key, None)
                for real in self._services.pop(key).reals:
                    self._forget(key, real.key)
            case AddRealServer(real=real) | EditRealServer(real=real) | DeleteRealServer(real=real):
                old = self._services[key]
                others = tuple(r for r in old.reals if r.key != real.key)
                kept = () if isinstance(operation, DeleteRealServer) else (real,)
                self._services[key] = replace(old, reals=others + kept)
                if isinstance(operation, DeleteRealServer):
                    counts = self._connections.get((key, real.key))
                    if counts is not None and counts.total:
                        self._trash[key, real.key] = counts
                    self._forget(key, real.key)
                elif isinstance(operation, AddRealServer) and (key, real.key) in self._trash:
                    self._connections[key, real.key] = self._trash.pop((key, real.key))

    def _forget(self, service: ServiceKey, real: RealServerKey) -> None:
        self._connections.pop((service, real), None)
        self._stats.pop((service, real), None)
        self._traffic.pop((service, real), None)


def _refused(code: int) -> Refusal:
    return Refusal(code, os.strerror(code))


def _real_refusal(
    operation: AddRealServer | EditRealServer | DeleteRealServer, service: VirtualService
) -> Refusal | None:
    real = operation.real
    exists = real.key in service.real_map()
    if isinstance(operation, DeleteRealServer):
        return None if exists else _refused(errno.ENOENT)
    if family_of(real.address) != service.key.family and real.forwarding is not Forwarding.TUNNEL:
        return _refused(errno.EINVAL)  # mixed families work only through a tunnel
    if real.lower_threshold > real.upper_threshold:
        return _refused(errno.ERANGE)
    if isinstance(operation, EditRealServer):
        return None if exists else _refused(errno.ENOENT)
    if exists:
        return _refused(errno.EEXIST)
    return None if _is_unicast(real) else _refused(errno.EINVAL)


def _is_unicast(real: RealServer) -> bool:
    address = ipaddress.ip_address(real.address)
    limited_broadcast = address == ipaddress.IPv4Address("255.255.255.255")
    return not (address.is_multicast or address.is_unspecified or limited_broadcast)
