"""Current table x desired table → ordered operations (pure), and applying operations to a table.

Rules:
- Only owned virtual services are edited or deleted (``Ownership``); foreign ones survive every plan,
  whatever the desired table says. Desired keys that ``claims.claim`` refused are left out.
- Changed settings (scheduler, persistence timeout or netmask, flags) and changed real servers
  (weight, forwarding, thresholds) are in-place edits, never delete + add.
- A removed TCP real server is drained: deleted at once if the kernel reports no connections,
  else set to weight 0 and deleted once its connections are gone (or its drain expired).
  Unknown connection counts (an offline save file) mean "drain". UDP and SCTP ones are deleted at once.
- Per virtual service the order is: service add/edit, real server adds/edits, real server deletes;
  service deletes carry their real servers with them. A cluster-scope service (``ipvsctl.affinity_scope``)
  gets its real servers in the order that keeps every node's Maglev table identical, drains included.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, replace

import netaddr

from ipvsctl.affinity_scope import creation_order, is_cluster_scope, plan_cluster_reals
from ipvsctl.model import (
    AddRealServer,
    AddVirtualService,
    ConnectionCounts,
    DeleteRealServer,
    DeleteVirtualService,
    EditRealServer,
    EditVirtualService,
    Operation,
    Protocol,
    RealServer,
    RealServerKey,
    ServiceKey,
    Table,
    VirtualService,
)

__all__ = [
    "DEFAULT_NODE_PORT_RANGE",
    "Connections",
    "Ownership",
    "PlanError",
    "Settled",
    "apply_operations",
    "plan",
]

DEFAULT_NODE_PORT_RANGE = (30000, 32767)

Connections = Mapping[tuple[ServiceKey, RealServerKey], ConnectionCounts]


class PlanError(ValueError):
    """Operations do not fit the table they are applied to (a planner or drift bug)."""


@dataclass(frozen=True, slots=True)
class Ownership:
    """Which virtual services are the agent's to change.

    Owned: VIPs at ``addresses`` (on a live node, the addresses held on the agent's interface: the
    agent binds an address before it adds a virtual service on it, and only when no foreign one is
    there, so everything at a held address is its own), VIPs inside ``cidrs``, and
    ``node_addresses`` at ports inside ``node_port_range``. Firewall-mark services are never owned.
    """

    addresses: frozenset[str] = frozenset()
    cidrs: netaddr.IPSet | None = None
    node_addresses: frozenset[str] = frozenset()
    node_port_range: tuple[int, int] = DEFAULT_NODE_PORT_RANGE

    def owns(self, key: ServiceKey) -> bool:
        """True when the agent may change or delete this virtual service."""
        if key.is_fwmark:
            return False
        if key.address in self.addresses:
            return True
        low, high = self.node_port_range
        if key.address in self.node_addresses and low <= key.port <= high:
            return True
        return self.cidrs is not None and key.address in self.cidrs

    def with_addresses(self, addresses: Iterable[str]) -> Ownership:
        """The same ownership, also owning ``addresses``."""
        return replace(self, addresses=self.addresses | frozenset(addresses))


Settled = MutableMapping[ServiceKey, tuple[VirtualService, VirtualService]]
"""Pairs (current, desired) that a plan found equal, by key: values are immutable, so the same two objects
are equal again, and a resync that reads back the objects it read before skips comparing them."""


def plan(
    current: Table,
    desired: Table,
    *,
    ownership: Ownership,
    connections: Connections | None = None,
    expired_drains: Collection[tuple[ServiceKey, RealServerKey]] = (),
    only: Collection[ServiceKey] | None = None,
    refused: Collection[ServiceKey] = (),
    settled: Settled | None = None,
    cluster_moves: bool = False,
) -> tuple[Operation, ...]:
    """Operations that turn the owned part of ``current`` into ``desired``.

    ``connections`` are the kernel's counts (None: unknown). ``expired_drains`` are real
    servers whose maximum drain time has passed: deleted whatever their connections.
    ``only`` limits the plan to those keys (an incremental sync of one Service's VIPs).
    ``refused`` are desired keys the agent may not claim (``claims.claim``): planned as if
    nobody wanted them. ``settled`` (kept by the caller from plan to plan) remembers the
    pairs found equal. ``cluster_moves``: whether cluster-scope services may move real servers that have
    connections (``ipvsctl.affinity_scope``; True only where the kernel keeps their connections through a
    move: ``net.ipv4.vs.expire_nodest_conn=0``).

    A key present in ``current`` and not owned is foreign: never edited or deleted, even if
    ``desired`` has it. Operations come grouped by key, keys in ``ServiceKey.sort_key`` order;
    only keys with operations are sorted, so a plan that finds little to do costs little.
    """
    have_all, want_all = current.services, desired.services
    pairs: Iterable[tuple[ServiceKey, VirtualService | None, VirtualService | None]]
    if only is None:
        pairs = _all_pairs(have_all, want_all)
    else:
        pairs = ((key, have_all.get(key), want_all.get(key)) for key in only)
    owns = ownership.owns
    drains = _Drains(connections=connections, expired=frozenset(expired_drains))
    work: list[tuple[ServiceKey, VirtualService | None, VirtualService | None]] = []
    for key, have, wanted in pairs:
        want = None if refused and key in refused else wanted
        if have is None or want is None:
            if (want is not None and have is None) or (have is not None and owns(key)):
                work.append((key, have, want))
            if settled:
                settled.pop(key, None)
            continue
        if settled is not None:
            pair = settled.get(key)
            if pair is not None and pair[0] is have and pair[1] is want:
                continue
        if have == want:
            if settled is not None:
                settled[key] = (have, want)
            continue
        if settled:
            settled.pop(key, None)
        if owns(key):
            work.append((key, have, want))
    if settled and only is None and len(settled) > len(have_all):
        for key in [key for key in settled if key not in have_all or key not in want_all]:
            del settled[key]  # keys gone from a table since they settled
    work.sort(key=_by_key)
    operations: list[Operation] = []
    for key, have, want in work:
        if want is None:
            if have is not None:
                operations.append(DeleteVirtualService(have.settings()))
        elif have is None:
            operations.append(AddVirtualService(want.settings()))
            reals = creation_order(want) if is_cluster_scope(want) else want.reals
            operations.extend(AddRealServer(key, real) for real in reals)
        else:
            if not have.same_settings(want):
                operations.append(EditVirtualService(want.settings(), previous=have.settings()))
            if is_cluster_scope(want):
                operations.extend(_plan_cluster_reals(have, want, drains=drains, moves=cluster_moves))
            else:
                operations.extend(_plan_reals(have, want, drains=drains))
    return tuple(operations)


def _by_key(item: tuple[ServiceKey, VirtualService | None, VirtualService | None]) -> tuple[int, int, bytes, int]:
    return item[0].sort_key()


def _all_pairs(
    have_all: Mapping[ServiceKey, VirtualService], want_all: Mapping[ServiceKey, VirtualService]
) -> Iterator[tuple[ServiceKey, VirtualService | None, VirtualService | None]]:
    """Every key of either table with its two values (a key of both once)."""
    for key, have in have_all.items():
        yield key, have, want_all.get(key)
    for key, want in want_all.items():
        if key not in have_all:
            yield key, None, want


@dataclass(frozen=True, slots=True)
class _Drains:
    connections: Connections | None
    expired: frozenset[tuple[ServiceKey, RealServerKey]]

    def busy(self, key: ServiceKey, real: RealServer) -> bool:
        """Whether the kernel reports connections through the real server (unknown counts: assume so)."""
        counts = None if self.connections is None else self.connections.get((key, real.key))
        return counts is None or counts.total > 0

    def removal(self, key: ServiceKey, real: RealServer) -> Operation | None:
        """What to do with a real server that is no longer wanted."""
        if key.protocol is not Protocol.TCP or (key, real.key) in self.expired:
            return DeleteRealServer(key, real)
        counts = None if self.connections is None else self.connections.get((key, real.key))
        if counts is not None and counts.total == 0:
            return DeleteRealServer(key, real)
        if real.weight != 0:
            return EditRealServer(key, real.with_weight(0), previous=real, drain=True)
        return None  # already draining: wait for its connections to end


def _plan_reals(have: VirtualService, want: VirtualService, *, drains: _Drains) -> list[Operation]:
    key = want.key
    current = have.real_map()
    wanted = want.real_map()
    adds_and_edits: list[Operation] = []
    for real_key, real in wanted.items():
        old = current.get(real_key)
        if old is None:
            adds_and_edits.append(AddRealServer(key, real))
        elif old != real:
            adds_and_edits.append(EditRealServer(key, real, previous=old))
    removals: list[Operation] = []
    for real_key, old in current.items():
        if real_key not in wanted:
            operation = drains.removal(key, old)
            if operation is not None:
                removals.append(operation)
    return adds_and_edits + removals


def _plan_cluster_reals(have: VirtualService, want: VirtualService, *, drains: _Drains, moves: bool) -> list[Operation]:
    wanted = want.real_map()
    draining = {
        real.key
        for real in have.reals
        if real.key not in wanted and not isinstance(drains.removal(want.key, real), DeleteRealServer)
    }
    busy = {real.key for real in have.reals if drains.busy(want.key, real)}
    return plan_cluster_reals(
        key=want.key,
        have=have.reals,
        want=want.reals,
        draining=draining,
        canonical=is_cluster_scope(have),
        moves=moves,
        busy=busy,
    )


def apply_operations(table: Table, operations: Iterable[Operation]) -> Table:
    """The table after ``operations``, checked as the kernel would (EEXIST, ESRCH, ENOENT → PlanError)."""
    services = dict(table.services)
    for operation in operations:
        match operation:
            case AddVirtualService(service=service):
                if service.key in services:
                    raise PlanError(f"add {service.key}: virtual service exists")
                services[service.key] = service.settings()
            case EditVirtualService(service=service):
                old = _existing(services, service.key, "edit")
                services[service.key] = replace(service, reals=old.reals)
            case DeleteVirtualService(service=service):
                _existing(services, service.key, "delete")
                del services[service.key]
            case AddRealServer(service=key, real=real):
                old = _existing(services, key, f"add real server {real}")
                if real.key in old.real_map():
                    raise PlanError(f"add real server {real} to {key}: it exists")
                services[key] = replace(old, reals=(*old.reals, real))
            case EditRealServer(service=key, real=real) | DeleteRealServer(service=key, real=real):
                old = _existing(services, key, f"change real server {real}")
                others = tuple(r for r in old.reals if r.key != real.key)
                if len(others) == len(old.reals):
                    raise PlanError(f"change real server {real} of {key}: no such real server")
                keep = (real,) if isinstance(operation, EditRealServer) else ()
                services[key] = replace(old, reals=others + keep)
    return Table(services)


def _existing(services: Mapping[ServiceKey, VirtualService], key: ServiceKey, what: str) -> VirtualService:
    found = services.get(key)
    if found is None:
        raise PlanError(f"{what} of {key}: no such virtual service")
    return found
