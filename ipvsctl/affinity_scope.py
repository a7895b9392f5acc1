"""Cluster-wide ClientIP affinity: every node builds the same Maglev table, so every node picks the same pod.

A Service with ``ipvsctl.io/affinity-scope: cluster`` (or the agent's default ``--affinity-scope cluster``)
and ``sessionAffinity: ClientIP`` gets the ``mh`` scheduler with ``mh-fallback`` (and without ``mh-port``:
the choice depends on the client address only). Persistence stays: the template keeps the first choice.

The kernel's table (``ipvsctl.maglev``) depends on the destination list *in its order* and on each
destination's last non-zero weight; the choice also on which destinations have weight 0. The plan keeps
those inputs a function of the desired real servers alone, whatever the node's history:

- **canonical order**: the table walks real servers in ``RealServer`` key order (address bytes, then port),
  the order of ``VirtualService.reals``. The kernel puts a new destination at the *head* of its list (the
  table walks the newest first; ``ipvsadm`` lists the oldest first: both pinned by
  ``tests/kernel/test_affinity_mh.py``), and an edit keeps its place, so a new service's servers are added
  in descending key order. A new server that sorts *after* servers already there cannot be placed by an
  add; the plan **moves** every server before it (delete and add back, descending, each delete right
  before its add): a destination deleted with connections waits in the kernel's trash and comes back with
  them when it is added again, but a packet between the two expires its connection unless the node's
  ``net.ipv4.vs.expire_nodest_conn`` is 0: servers with connections are moved only then (``moves``);
- **drains** leave no trace in the table where moves are safe: a removed server that still has
  connections is not edited to weight 0 (it would keep its slots, and nodes without its connections would
  have a different table) but moved to weight 0: deleted and added back with weight 0 at once, so it has
  no slot, its connections continue and its persistence templates still send their clients to it until
  they end. Where moves are not safe it is edited to weight 0, as for any other service.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from ipvsctl.maglev import Destination, MaglevTable, inputs_digest
from ipvsctl.model import (
    AddRealServer,
    DeleteRealServer,
    EditRealServer,
    Operation,
    RealServer,
    RealServerKey,
    ServiceKey,
    VirtualService,
    max_prefix,
)

__all__ = [
    "CLUSTER_FLAGS",
    "CLUSTER_SCHEDULER",
    "creation_order",
    "destinations",
    "digest",
    "is_cluster_scope",
    "lookup_table",
    "netmask_notice",
    "plan_cluster_reals",
]

CLUSTER_SCHEDULER = "mh"
CLUSTER_FLAGS = frozenset({"mh-fallback"})


def is_cluster_scope(service: VirtualService) -> bool:
    """True for a virtual service that ipvsctl keeps identical on every node (mh, mh-fallback, persistent)."""
    return (
        service.scheduler == CLUSTER_SCHEDULER
        and service.sched_flags == CLUSTER_FLAGS
        and service.persistence is not None
    )


def netmask_notice(*, family: int, netmask: int) -> str:
    """Why a persistence netmask wider than one host weakens the cluster-wide choice ('' when it does not)."""
    if netmask >= max_prefix(family):
        return ""
    return (
        f"IPv{family} persistence netmask /{netmask}: the clients of one /{netmask} share the pod their first "
        "client got on each node, and different nodes may see a different first client"
    )


def destinations(service: VirtualService) -> tuple[Destination, ...]:
    """The kernel's destination list for a service ipvsctl keeps canonical: key order, drained ones without slots."""
    return tuple(
        Destination(real.address, real.port, weight=real.weight, last_weight=real.weight) for real in service.reals
    )


def lookup_table(service: VirtualService) -> MaglevTable:
    """The mh lookup table every node holding this service builds."""
    return MaglevTable.build(
        destinations(service), fallback="mh-fallback" in service.sched_flags, port="mh-port" in service.sched_flags
    )


def digest(service: VirtualService) -> str:
    """A digest of the table's inputs: nodes whose digests differ may send a client to different pods."""
    return inputs_digest(
        destinations(service), fallback="mh-fallback" in service.sched_flags, port="mh-port" in service.sched_flags
    )


def creation_order(service: VirtualService) -> tuple[RealServer, ...]:
    """The order to add a new service's real servers in so that the kernel walks them in key order."""
    return tuple(reversed(service.reals))  # each add goes to the head of the kernel's list


def plan_cluster_reals(
    *,
    key: ServiceKey,
    have: Sequence[RealServer],
    want: Sequence[RealServer],
    draining: Collection[RealServerKey],
    canonical: bool = True,
    moves: bool = True,
    busy: Collection[RealServerKey] = (),
) -> list[Operation]:
    """Operations that turn ``have`` into ``want`` and leave the kernel walking the servers in key order.

    ``have`` and ``want`` are in key order (``VirtualService.reals``); the kernel walks the servers of
    ``have`` with a weight in that order (this module kept it so), and those with weight 0 have no slot
    (moved to weight 0 by a drain). ``draining`` are servers of ``have`` no longer wanted that still have
    connections: moved to weight 0 rather than deleted. Every add goes to the head of the kernel's list,
    so the servers that must end up before a new one are moved: deleted and added back, in descending
    key order, each delete right before its add. ``canonical`` False (a service that was not kept so, e.g.
    one just switched to cluster scope): every server is moved.

    ``moves`` False (the node expires the connections of a destination that is briefly gone:
    ``net.ipv4.vs.expire_nodest_conn=1``): no server with connections (``busy``, or ``draining``) is ever
    deleted. A drain is then an edit to weight 0 (it keeps its slots), and new servers that would need busy
    ones moved are added where the kernel puts them (the table then differs from other nodes' in a few
    slots until those servers go).
    """
    wanted = {real.key: real for real in want}
    present = {real.key: real for real in have}
    operations: list[Operation] = []
    for real in have:
        if real.key in wanted:
            continue
        if real.key not in draining:
            operations.append(DeleteRealServer(key, real))
        elif real.weight != 0 and moves:
            operations.extend((DeleteRealServer(key, real), AddRealServer(key, real.with_weight(0))))
        elif real.weight != 0:
            operations.append(EditRealServer(key, real.with_weight(0), previous=real, drain=True))
    # A weight-0 server has no slot after a move to 0 (it is placed anew); after an edit to 0 it has its slots.
    visible = [real.key for real in have if real.key in wanted and (real.weight > 0 or not moves)] if canonical else []
    # A weight-0 server that is wanted again has no slot where it is: it is placed as a new one.
    placed = [real_key for real_key in wanted if real_key not in visible]
    last_new = max(placed) if placed else None
    moved = [] if last_new is None else [real_key for real_key in visible if real_key < last_new]
    if not moves and any(real_key in busy for real_key in moved):
        moved = []  # adds at the head, out of key order: never a delete of a server with connections
    for real_key in sorted((*placed, *moved), reverse=True):
        if real_key in present and not moves and real_key in busy:
            if present[real_key] != wanted[real_key]:  # left where it is: edited in place
                operations.append(EditRealServer(key, wanted[real_key], previous=present[real_key]))
            continue
        if real_key in present:
            operations.append(DeleteRealServer(key, present[real_key]))
        operations.append(AddRealServer(key, wanted[real_key]))
    operations.extend(
        EditRealServer(key, wanted[real_key], previous=present[real_key])
        for real_key in visible
        if real_key not in moved and present[real_key] != wanted[real_key]  # in place: an edit keeps its position
    )
    return operations
