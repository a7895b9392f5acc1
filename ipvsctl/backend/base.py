"""The one interface to an IPVS table: the ``Backend`` protocol and the values it speaks.

Two implementations: ``ipvsctl.backend.kernel`` (the kernel, over netlink) and
``ipvsctl.backend.memory`` (a stateful fake with the kernel's error behaviour). One
contract suite (``tests/contract``) checks both.
"""

from __future__ import annotations

import errno as errno_codes
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import astuple, dataclass, field
from typing import Protocol

from ipvsctl.errors import BackendError
from ipvsctl.model import ConnectionCounts, Operation, RealServerKey, ServiceKey, Table, canonical_ip

__all__ = [
    "DRIFT_ERRNOS",
    "KERNEL_INT_MAX",
    "ApplyReport",
    "Backend",
    "IpvsTimeouts",
    "KernelState",
    "OperationFailure",
    "RealServerStats",
    "Traffic",
    "TrafficStats",
    "apply_in_order",
    "apply_in_waves",
    "canonical_addresses",
    "change_timeouts",
    "check_timeouts",
]

# Errors that mean "the table is not what we planned against": re-read and re-plan.
DRIFT_ERRNOS = frozenset({errno_codes.EEXIST, errno_codes.ESRCH, errno_codes.ENOENT})
KERNEL_INT_MAX = 2**31 - 1  # the kernel reads IPVS timeouts into an int (struct ip_vs_timeout_user)


@dataclass(frozen=True, slots=True)
class RealServerStats:
    """Traffic counters of one real server (since it was added)."""

    connections: int = 0
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


@dataclass(frozen=True, slots=True)
class Traffic:
    """IPVS's own counters of a virtual service or a real server, as ``ipvsadm -Ln --stats`` and ``--rate`` show
    them: totals since it was added, and per-second rates from the kernel's estimator (updated every 2 s)."""

    connections: int = 0
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    connections_per_second: int = 0
    packets_in_per_second: int = 0
    packets_out_per_second: int = 0
    bytes_in_per_second: int = 0
    bytes_out_per_second: int = 0


@dataclass(frozen=True, slots=True)
class TrafficStats:
    """One stats dump: every virtual service's and real server's counters, and each real server's connections."""

    services: Mapping[ServiceKey, Traffic] = field(default_factory=dict)
    real_servers: Mapping[tuple[ServiceKey, RealServerKey], Traffic] = field(default_factory=dict)
    connections: Mapping[tuple[ServiceKey, RealServerKey], ConnectionCounts] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KernelState:
    """What a backend reads: the table, per-real-server connection counts and stats, bound VIPs."""

    table: Table
    connections: Mapping[tuple[ServiceKey, RealServerKey], ConnectionCounts] = field(default_factory=dict)
    stats: Mapping[tuple[ServiceKey, RealServerKey], RealServerStats] = field(default_factory=dict)
    bound_addresses: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class IpvsTimeouts:
    """IPVS connection timeouts in seconds, as ``ipvsadm --set TCP TCPFIN UDP``: an established TCP connection, a
    TCP connection after its FIN, a UDP "connection". Per network namespace, for every virtual service.

    Read back, each is the kernel's value. In a change (IPVS_CMD_SET_CONFIG) 0 keeps the kernel's value for that
    timeout, as in the kernel (``ip_vs_set_timeout`` skips zeros).
    """

    tcp: int = 0
    tcp_fin: int = 0
    udp: int = 0

    def __str__(self) -> str:
        return f"tcp {self.tcp} s, tcpfin {self.tcp_fin} s, udp {self.udp} s"

    def kept(self, current: IpvsTimeouts) -> IpvsTimeouts:
        """The timeouts after this change is made to ``current``: each 0 here keeps ``current``'s value."""
        return IpvsTimeouts(*(mine or theirs for mine, theirs in zip(astuple(self), astuple(current), strict=True)))


def check_timeouts(timeouts: IpvsTimeouts) -> None:
    """BackendError (EINVAL, as the kernel answers) for a timeout outside 0..KERNEL_INT_MAX: the kernel reads each
    into an int, where a larger u32 turns negative, and no larger number fits the u32 attribute at all."""
    for value in astuple(timeouts):
        if not 0 <= value <= KERNEL_INT_MAX:
            raise BackendError(
                f"cannot set the timeouts ({timeouts}): {value} is outside 0..{KERNEL_INT_MAX}",
                target="IPVS",
                errno=errno_codes.EINVAL,
            )


@dataclass(frozen=True, slots=True)
class OperationFailure:
    """One operation the backend could not apply, with the kernel's errno and words."""

    operation: Operation
    errno: int
    message: str

    @property
    def is_drift(self) -> bool:
        """True when the table changed under us (EEXIST/ESRCH/ENOENT): re-read and re-plan."""
        return self.errno in DRIFT_ERRNOS

    def __str__(self) -> str:
        return f"{type(self.operation).__name__} {self.operation.key}: {self.message} (errno {self.errno})"


@dataclass(frozen=True, slots=True)
class ApplyReport:
    """The outcome of applying operations: how many went in and which failed.

    After a failure on a virtual service, the later operations on that same service are
    skipped (they would fail for the same reason) and counted in ``skipped``.
    """

    applied: int = 0
    skipped: int = 0
    failures: tuple[OperationFailure, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every operation was applied."""
        return not self.failures and not self.skipped

    @property
    def drifted(self) -> bool:
        """True when some failure means the table drifted from what was planned against."""
        return any(failure.is_drift for failure in self.failures)


def canonical_addresses(addresses: Collection[str]) -> set[str]:
    """Addresses in canonical form, for binding; BackendError (EINVAL) naming the first that is not one."""
    canonical: set[str] = set()
    for address in addresses:
        try:
            canonical.add(canonical_ip(address))
        except ValueError as error:
            raise BackendError("not an IP address", target=address, errno=errno_codes.EINVAL) from error
    return canonical


async def apply_in_order(
    operations: Sequence[Operation], attempt: Callable[[Operation], Awaitable[OperationFailure | None]]
) -> ApplyReport:
    """Attempt each operation in order, skipping the later ones on a service after its failure (ApplyReport's rule)."""
    applied = skipped = 0
    failures: list[OperationFailure] = []
    failed: set[ServiceKey] = set()
    for operation in operations:
        if operation.key in failed:
            skipped += 1
            continue
        failure = await attempt(operation)
        if failure is None:
            applied += 1
        else:
            failures.append(failure)
            failed.add(operation.key)
    return ApplyReport(applied=applied, skipped=skipped, failures=tuple(failures))


async def apply_in_waves(
    operations: Sequence[Operation],
    attempt_all: Callable[[Sequence[Operation]], Awaitable[Sequence[OperationFailure | None]]],
) -> ApplyReport:
    """The outcome of ``apply_in_order``, with operations on different services attempted together.

    Wave k holds the k-th operation of every service with no failure yet, so a backend can send a
    wave in a few system calls. The order of a service's operations is kept, and a failure still
    skips the rest of its service. Operations on different virtual services are independent in
    the kernel, so the table ends the same as with ``apply_in_order``; failures are reported in
    the order of ``operations``.
    """
    queues: dict[ServiceKey, list[tuple[int, Operation]]] = {}
    for index, operation in enumerate(operations):
        queues.setdefault(operation.key, []).append((index, operation))
    applied = skipped = 0
    failures: list[tuple[int, OperationFailure]] = []
    live = list(queues)
    position = 0
    while live:
        wave = [queues[key][position] for key in live]
        outcomes = await attempt_all([operation for _, operation in wave])
        still: list[ServiceKey] = []
        for key, (index, _), failure in zip(live, wave, outcomes, strict=True):
            left = len(queues[key]) - position - 1
            if failure is None:
                applied += 1
                if left:
                    still.append(key)
            else:
                failures.append((index, failure))
                skipped += left
        live = still
        position += 1
    failures.sort(key=lambda pair: pair[0])
    return ApplyReport(applied=applied, skipped=skipped, failures=tuple(failure for _, failure in failures))


async def change_timeouts(backend: Backend, wanted: IpvsTimeouts) -> IpvsTimeouts | None:
    """Set the ``wanted`` timeouts (0: keep the kernel's) when one differs from the kernel's; the timeouts before
    the change, or None when nothing was changed (with nothing wanted, nothing is even read)."""
    if wanted == IpvsTimeouts():
        return None
    before = await backend.timeouts()
    if wanted.kept(before) == before:
        return None
    await backend.set_timeouts(wanted)
    return before


class Backend(Protocol):
    """An IPVS table the agent can read and change, plus the interface its VIPs are bound to and the connection
    timeouts (one setting of the namespace's IPVS, beside the table)."""

    async def check_interface(self) -> None:
        """Refuse an interface of the agent's name that is not a dummy: BackendError naming its kind.

        Changes nothing: an absent interface is fine (the first bind creates it). ``read``,
        ``bind_addresses`` and ``remove_interface`` refuse such an interface too, before they look at its
        addresses: a NIC's, a bridge's or ``lo``'s addresses are never taken for the agent's VIPs.
        """
        ...

    async def read(self, *, only: Collection[ServiceKey] | None = None) -> KernelState:
        """The table with connection counts, stats and the addresses bound to the agent's interface.

        With ``only``, just those virtual services (the ones that exist) and, of the bound addresses,
        those among the keys' addresses: a sync of a few keys costs the same whatever the table's size.
        A partial read may answer the bound addresses from the backend's own record of what it bound
        (refreshed by every full read and every bind), since the interface is the agent's alone.
        """
        ...

    async def traffic(self) -> TrafficStats:
        """Every virtual service's and real server's traffic counters and rates, and each real server's active
        and inactive connections: one stats dump of the whole table (what ``ipvsadm -Ln --stats --rate`` reads).

        Separate from ``read``: the counters change with every packet, so the sync's reads leave them out of
        what they compare, and a scrape should not cost a sync.
        """
        ...

    async def service_keys(self, addresses: Collection[str] | None) -> frozenset[ServiceKey]:
        """The keys of every virtual service at ``addresses`` (None: anywhere), any protocol and port (no real
        servers read).

        What the agent asks before it claims a new VIP address (is anything already there?), and before a
        resync in slices (what is there to look at?).
        """
        ...

    async def apply(self, operations: Sequence[Operation]) -> ApplyReport:
        """Apply operations in order; per-operation failures are reported, not raised.

        Raises BackendError only when the backend itself is unusable (socket gone, no IPVS).
        """
        ...

    async def bind_addresses(self, addresses: Collection[str], *, within: Collection[str] | None = None) -> None:
        """Make the agent's interface hold exactly ``addresses`` (add missing ones, remove the rest).

        Creates the interface as a dummy when it is absent, adopts an existing dummy, and refuses
        (BackendError, nothing changed) an interface of any other kind.

        With ``within``, only addresses in ``within`` are considered: those of ``addresses`` are added,
        the others in ``within`` removed, and every address outside ``within`` is left alone.
        """
        ...

    async def host_addresses(self) -> frozenset[str]:
        """The host's own addresses: every global-scope address of every interface but the agent's (loopback,
        link-local and the VIPs on the agent's interface left out). What NodePorts are on when no Node says."""
        ...

    async def remove_interface(self) -> bool:
        """Delete the agent's interface and every address on it (``ipvsctl cleanup``); whether one was there.

        Only a dummy is deleted: an interface of any other kind is refused (BackendError) and left alone.
        """
        ...

    async def timeouts(self) -> IpvsTimeouts:
        """The IPVS connection timeouts now (IPVS_CMD_GET_CONFIG; ``ipvsadm -L --timeout``)."""
        ...

    async def set_timeouts(self, timeouts: IpvsTimeouts) -> None:
        """Set the IPVS connection timeouts that are not 0; a 0 keeps that one (IPVS_CMD_SET_CONFIG).

        All or nothing: BackendError (EINVAL) when any is out of the kernel's range (more than INT_MAX / HZ
        seconds: the kernel keeps them in jiffies in an int), and then none is changed.
        """
        ...

    async def close(self) -> None:
        """Release sockets."""
        ...
