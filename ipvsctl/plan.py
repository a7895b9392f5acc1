"""Current table x desired table → ordered operations (pure), and applying operations to a table.

Rules:
- Only owned virtual services are touched (``Ownership``); foreign ones survive every plan.
- Changed settings (scheduler, persistence timeout or netmask, flags) and changed real servers
  (weight, forwarding, thresholds) are in-place edits, never delete + add.
- A removed TCP real server is drained: deleted at once if the kernel reports no connections,
  else set to weight 0 and deleted once its connections are gone (or its drain expired).
  Unknown connection counts (an offline save file) mean "drain". UDP and SCTP ones are deleted at once.
- Per virtual service the order is: service add/edit, real server adds/edits, real server deletes;
  service deletes carry their real servers with them.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Iterable, Mapping
from dataclasses import dataclass, replace

import netaddr

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
    "apply_operations",
    "desired_vips",
    "plan",
]

DEFAULT_NODE_PORT_RANGE = (30000, 32767)

Connections = Mapping[tuple[ServiceKey, RealServerKey], ConnectionCounts]


class PlanError(ValueError):
    """Operations do not fit the table they are applied to (a planner or drift bug)."""


@dataclass(frozen=True, slots=True)
class Ownership:
    """Which virtual services are the agent's to change.

    Owned: VIPs in ``addresses`` (the desired VIPs; on a live node, the addresses on the
    agent's interface), VIPs inside ``cidrs``, and ``node_addresses`` at ports inside
    ``node_port_range``. Firewall-mark services are never owned.
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


def desired_vips(desired: Table, *, ownership: Ownership) -> set[str]:
    """Desired VIP addresses that the agent owns outright: not node IPs (only their node ports are ours)."""
    return {vs.key.address for vs in desired.services.values() if vs.key.address not in ownership.node_addresses}


def plan(
    current: Table,
    desired: Table,
    *,
    ownership: Ownership,
    connections: Connections | None = None,
    expired_drains: Collection[tuple[ServiceKey, RealServerKey]] = (),
    only: Collection[ServiceKey] | None = None,
    desired_addresses: Container[str] | None = None,
) -> tuple[Operation, ...]:
    """Operations that turn the owned part of ``current`` into ``desired``.

    ``connections`` are the kernel's counts (None: unknown). ``expired_drains`` are real
    servers whose maximum drain time has passed: deleted whatever their connections.
    ``only`` limits the plan to those keys (an incremental sync of one Service's VIPs).
    ``desired_addresses`` holds every address of ``desired`` when the caller keeps them
    (so that a plan of a few keys does not walk the whole desired table to learn its VIPs).
    """
    if only is None:
        keys: Iterable[ServiceKey] = set(current.services) | set(desired.services)
    else:
        keys = only
    if desired_addresses is None:
        owned = ownership.with_addresses(desired_vips(desired, ownership=ownership))
    else:
        nodes = ownership.node_addresses
        mine = {key.address for key in keys if key.address in desired_addresses and key.address not in nodes}
        owned = ownership.with_addresses(mine)
    drains = _Drains(connections=connections, expired=frozenset(expired_drains))
    operations: list[Operation] = []
    for key in sorted(keys, key=ServiceKey.sort_key):
        have, want = current.get(key), desired.get(key)
        if have is None and want is None:
            continue
        if want is None:
            if owned.owns(key) and have is not None:
                operations.append(DeleteVirtualService(have.settings()))
            continue
        if have is None:
            operations.append(AddVirtualService(want.settings()))
            operations.extend(AddRealServer(key, real) for real in want.reals)
            continue
        if have == want:
            continue
        if not have.same_settings(want):
            operations.append(EditVirtualService(want.settings(), previous=have.settings()))
        operations.extend(_plan_reals(have, want, drains=drains))
    return tuple(operations)


@dataclass(frozen=True, slots=True)
class _Drains:
    connections: Connections | None
    expired: frozenset[tuple[ServiceKey, RealServerKey]]

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
