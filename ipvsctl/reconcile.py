"""One sync of a backend to a desired table: read → claim → plan → apply → bind VIPs, re-planning after drift.

Shared by ``ipvsctl apply`` (one shot) and the agent (every change and every resync). With a
``Netfilter``, the sync also brings ipvsctl's nftables table to what the desired table needs: its new
elements go in before IPVS changes (a VIP is never bound unfiltered, a connection never scheduled
before its masquerade), its stale ones go after; a full sync reads the table and rewrites it whole
when it is not as defined (flushed, edited). New VIP
addresses are claimed (``claims.claim``) and bound before any service is added on them, and
unbound only after their last service is gone: an address on the agent's interface is the
record that everything at it is the agent's, across restarts.
The ``DrainTracker`` remembers since when each real server has been draining, so that a
drain ends at zero connections or after the maximum drain time, whichever comes first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Set
from dataclasses import dataclass, field

from ipvsctl.backend.base import ApplyReport, Backend, KernelState, OperationFailure
from ipvsctl.backend.nft.base import NetfilterTable
from ipvsctl.claims import Claims, claim, unclaimed_addresses
from ipvsctl.errors import DriftError
from ipvsctl.model import DeleteRealServer, DeleteVirtualService, Operation, RealServerKey, ServiceKey, Table
from ipvsctl.netfilter.elements import Element, element_changes
from ipvsctl.netfilter.plan import NetfilterPlan
from ipvsctl.plan import Ownership, Settled, plan

__all__ = [
    "DrainTracker",
    "Netfilter",
    "NetfilterOutcome",
    "SyncResult",
    "Without",
    "repair_netfilter",
    "slices",
    "sync",
]

DrainKey = tuple[ServiceKey, RealServerKey]


@dataclass(slots=True)
class DrainTracker:
    """Since when each owned real server at weight 0 (and not desired) has been draining."""

    max_drain_seconds: float = 900.0
    clock: Callable[[], float] = time.monotonic
    started: dict[DrainKey, float] = field(default_factory=dict)

    def observe(
        self, *, current: Table, desired: Table, ownership: Ownership, only: Collection[ServiceKey] | None = None
    ) -> None:
        """Start the clock for owned servers now draining; forget those that are gone or wanted again.

        With ``only``, ``current`` holds just those keys: servers of other keys are left as they are.
        """
        now = self.clock()
        draining: set[DrainKey] = set()
        wanted_services = desired.services
        for service in current.services.values():
            idle = [real for real in service.reals if real.weight == 0]  # most services have none: cheap first
            if not idle:
                continue
            wanted = wanted_services.get(service.key)
            if wanted is None and not ownership.owns(service.key):
                continue
            wanted_keys = wanted.real_map() if wanted is not None else {}
            for real in idle:
                if real.key not in wanted_keys:
                    draining.add((service.key, real.key))
        scope = None if only is None else set(only)
        for key in list(self.started):
            if key not in draining and (scope is None or key[0] in scope):
                del self.started[key]
        for key in draining:
            self.started.setdefault(key, now)

    def deleted(self, operations: Iterable[Operation]) -> None:
        """Forget servers that the operations deleted (alone or with their service)."""
        for operation in operations:
            if isinstance(operation, DeleteRealServer):
                self.started.pop((operation.service, operation.real.key), None)
            elif isinstance(operation, DeleteVirtualService):
                for key in [key for key in self.started if key[0] == operation.key]:
                    del self.started[key]

    def expired(self) -> frozenset[DrainKey]:
        """Servers whose drain has lasted the maximum time."""
        now = self.clock()
        return frozenset(key for key, since in self.started.items() if now - since >= self.max_drain_seconds)

    def __len__(self) -> int:
        return len(self.started)


@dataclass(frozen=True, slots=True)
class Netfilter:
    """The netfilter half of a sync: ipvsctl's nftables table and what it should hold."""

    table: NetfilterTable
    plan: NetfilterPlan


@dataclass(frozen=True, slots=True)
class NetfilterOutcome:
    """What one sync did to the nftables table."""

    added: int = 0
    deleted: int = 0
    rewritten: bool = False  # the whole table written again (it was absent or not as defined)


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one sync did."""

    operations: tuple[Operation, ...] = ()
    failures: tuple[OperationFailure, ...] = ()
    attempts: int = 1
    state: KernelState | None = None  # the state the last plan was made against
    refused: Mapping[ServiceKey, str] = field(default_factory=dict)  # desired keys not claimed, and why
    netfilter: NetfilterOutcome | None = None

    @property
    def ok(self) -> bool:
        """True when every planned operation was applied."""
        return not self.failures


async def sync(
    backend: Backend,
    desired: Table,
    *,
    ownership: Ownership,
    bind: Set[str],
    drains: DrainTracker | None = None,
    only: Collection[ServiceKey] | None = None,
    settled: Settled | None = None,
    netfilter: Netfilter | None = None,
    max_attempts: int = 3,
    cluster_moves: bool = False,
) -> SyncResult:
    """Bring the backend's owned table to ``desired`` and bind exactly ``bind`` to the agent's interface.

    Ownership grows by the addresses currently bound to the agent's interface (VIPs it
    programmed earlier) and by the new addresses it claims; desired keys on an address that
    carries a foreign virtual service are refused (``SyncResult.refused``), neither programmed
    nor bound. After a drift failure (EEXIST/ESRCH/ENOENT) the table is re-read and re-planned,
    up to ``max_attempts`` times. VIPs are unbound after the services change, so a stale VIP
    stays owned until its service is gone.

    With ``only``, the sync reads, plans and binds just those keys and their addresses, so
    its cost follows the change, not the table: ``bind`` is then only asked ``in``.
    ``settled`` is the caller's memory of pairs found equal (see ``plan``). ``netfilter``: the nftables
    half, synced around the IPVS changes (see the module docstring). ``cluster_moves``: see ``plan``.
    """
    filtering = None if netfilter is None else _NetfilterStep(netfilter, full=only is None)
    done: list[Operation] = []
    report = ApplyReport()
    state: KernelState | None = None
    claims = Claims()
    attempts = 0
    while attempts < max_attempts:
        attempts += 1
        state = await backend.read(only=only)
        owned = ownership.with_addresses(state.bound_addresses)
        claims = await _claim(backend, state=state, desired=desired, ownership=owned, only=only)
        if filtering is not None:
            await filtering.before(only=only, refused=claims.refused)
        if claims.taken:
            await backend.bind_addresses(claims.taken, within=claims.taken)
            owned = owned.with_addresses(claims.taken)
        expired: frozenset[DrainKey] = frozenset()
        if drains is not None:
            drains.observe(current=state.table, desired=desired, ownership=owned, only=only)
            expired = drains.expired()
        operations = plan(
            state.table,
            desired,
            ownership=owned,
            connections=state.connections,
            expired_drains=expired,
            only=only,
            refused=claims.refused,
            settled=settled,
            cluster_moves=cluster_moves,
        )
        if not operations:
            report = ApplyReport()
            break
        report = await backend.apply(operations)
        done.extend(operations)
        if drains is not None:
            drains.deleted(operations)
        if not report.drifted:
            break
    refused_addresses = frozenset(key.address for key in claims.refused)
    await _bind(
        backend,
        Without(bind, refused_addresses) if refused_addresses else bind,
        bound=state.bound_addresses | claims.taken if state is not None else None,
        only=only,
    )
    if filtering is not None:
        await filtering.after()
    return SyncResult(
        operations=tuple(done),
        failures=report.failures,
        attempts=attempts,
        state=state,
        refused=claims.refused,
        netfilter=None if filtering is None else filtering.outcome(),
    )


def slices(keys: Iterable[ServiceKey], *, size: int) -> list[list[ServiceKey]]:
    """``keys`` in slices of about ``size`` for a resync in slices; each address's keys all in one slice.

    A slice binds and unbinds the addresses of its keys (``sync`` with ``only``), so the keys that share an
    address are planned together: a slice may exceed ``size`` by the keys of its last address.
    """
    by_address: dict[str, list[ServiceKey]] = {}
    for key in keys:
        by_address.setdefault(key.address, []).append(key)
    cut: list[list[ServiceKey]] = []
    current: list[ServiceKey] = []
    for address in sorted(by_address):
        current.extend(sorted(by_address[address], key=lambda key: (key.protocol.value, key.port)))
        if len(current) >= size:
            cut.append(current)
            current = []
    if current:
        cut.append(current)
    return cut


async def repair_netfilter(netfilter: Netfilter, *, refused: Collection[ServiceKey]) -> NetfilterOutcome:
    """The nftables table read and repaired as a full sync repairs it (rewritten when not as defined, else
    diffed with the plan), after a resync planned every key in slices (``sync`` with ``only``, each): the
    slices refreshed the plan's keys already, so it is not refreshed again."""
    filtering = _NetfilterStep(netfilter, full=True)
    await filtering.before(only=(), refused=refused)
    await filtering.after()
    return filtering.outcome()


class _NetfilterStep:
    """One sync's changes to the nftables table: additions before the IPVS changes, deletions after.

    A full sync reads the table first: not as defined, it is rewritten whole; else it is diffed with what is
    wanted. An incremental one writes what the plan's refresh says changed, and, if the kernel refuses that
    (the table changed behind the agent's back), repairs the table as a full sync would.
    """

    __slots__ = ("_added", "_deleted", "_deletes", "_full", "_netfilter", "_read", "_rewritten")

    def __init__(self, netfilter: Netfilter, *, full: bool) -> None:
        self._netfilter = netfilter
        self._full = full
        self._read = False
        self._deletes: set[Element] = set()
        self._added = self._deleted = 0
        self._rewritten = False

    async def before(self, *, only: Collection[ServiceKey] | None, refused: Collection[ServiceKey]) -> None:
        """Refresh the plan for the keys in scope and add what is new."""
        appeared, vanished = self._netfilter.plan.refresh(only, refused=refused)
        if self._full and not self._read:
            self._read = True
            await self._repair()
            return
        self._deletes = (self._deletes | vanished) - appeared
        if appeared:
            await self._change(add=appeared, delete=())

    async def after(self) -> None:
        """Delete what is no longer wanted."""
        if self._deletes:
            deletes, self._deletes = self._deletes, set()
            await self._change(add=(), delete=deletes)

    def outcome(self) -> NetfilterOutcome:
        """What this sync did to the table."""
        return NetfilterOutcome(added=self._added, deleted=self._deleted, rewritten=self._rewritten)

    async def _change(self, *, add: Collection[Element], delete: Collection[Element]) -> None:
        try:
            await self._netfilter.table.change(add=add, delete=delete)
        except DriftError:
            await self._repair()
            return
        self._added += len(add)
        self._deleted += len(delete)

    async def _repair(self) -> None:
        """Bring the table to the plan from what it holds: a rewrite when it is not as defined, else a diff
        (its additions now, its deletions in ``after``)."""
        table, wanted = self._netfilter.table, self._netfilter.plan.elements()
        state = await table.read()
        if not state.defined:
            await table.replace(wanted)
            self._rewritten = True
            self._added += len(wanted)
            self._deletes = set()
            return
        adds, self._deletes = element_changes(wanted, state.elements)
        if adds:
            await table.change(add=adds, delete=())
            self._added += len(adds)


async def _claim(
    backend: Backend, *, state: KernelState, desired: Table, ownership: Ownership, only: Collection[ServiceKey] | None
) -> Claims:
    """Claim the new addresses of the desired keys in scope (the kernel asked only when there are any)."""
    if only is None:
        return claim(desired.services, present=state.table.services, ownership=ownership)
    wanted = [key for key in only if key in desired.services]
    unclaimed = unclaimed_addresses(wanted, ownership=ownership)
    if not unclaimed:
        return Claims()
    return claim(wanted, present=await backend.service_keys(unclaimed), ownership=ownership)


class Without(Set[str]):
    """A live, read-only view of a set less some members: ``in`` is O(1) and nothing is copied.

    Iterating or sizing walks the set (a full sync does that anyway).
    """

    __slots__ = ("_excluded", "_members")

    def __init__(self, members: Set[str], excluded: Set[str]) -> None:
        self._members = members
        self._excluded = excluded

    def __contains__(self, member: object) -> bool:
        return member in self._members and member not in self._excluded

    def __iter__(self) -> Iterator[str]:
        return (member for member in self._members if member not in self._excluded)

    def __len__(self) -> int:
        return sum(1 for _ in self)


async def _bind(
    backend: Backend, bind: Set[str], *, bound: frozenset[str] | None, only: Collection[ServiceKey] | None
) -> None:
    """Bind ``bind`` (of the ``only`` keys' addresses, when given), skipping a bind that changes nothing.

    Re-binding an unchanged set costs a walk over every VIP (issue 6 measured 24 % of a sync).
    """
    if only is None:
        if bound is None or frozenset(bind) != bound:
            await backend.bind_addresses(bind)
        return
    within = {key.address for key in only}
    wanted = {address for address in within if address in bind}
    if bound is None or wanted != bound:
        await backend.bind_addresses(wanted, within=within)
