"""One client, one VIP:port: what this node does with the client's traffic and why (pure).

``explain`` joins what was read — the node's IPVS table (live or saved), its connection table, its nftables
elements — with the cluster's objects and their translation, and answers with an ``Explanation``:

- the virtual service that matches (the exact protocol/VIP/port, else the VIP's port-zero catch-all, as
  ``ip_vs_service_find``; fwmark services match by packet mark, which a client address does not tell), whether
  it is ours (an owned entry a Service wants), stale (owned, no Service wants it) or foreign, and which Service
  port it belongs to;
- every real server with its Pod, node, weight, connections and state, the desired ones not programmed yet,
  and the endpoints left out with their reason (``ipvsctl.explain.leftout``) and the Service's notices;
- who decides the client's next connection (``Decision``): a persistence template that covers it (as
  ``ipvsctl.affinity`` finds it, netmask included), or the scheduler;
- what ipvsctl's nftables table does to the client's packets (``Verdict``), from the elements (what
  ``ipvsctl.netfilter.listing`` describes per VIP) evaluated against the client address.

The ``Explanation`` grows by fields with defaults: a new answer (e.g. another way the choice is made) adds
one, and ``render`` adds its key to the JSON document, whose readers ignore keys they do not know.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from ipvsctl.affinity import Pin, PinFilter, find_pins
from ipvsctl.conntable import Connection
from ipvsctl.explain.leftout import LeftOut, port_endpoints
from ipvsctl.explain.verdict import NetfilterInput, Verdict
from ipvsctl.explain.verdict import verdict as judge
from ipvsctl.kube.views import EndpointSliceView, ObjectRef, ServicePortView, ServiceView
from ipvsctl.model import (
    ConnectionCounts,
    Persistence,
    RealServer,
    RealServerKey,
    ServiceKey,
    Table,
    VirtualService,
    family_of,
    max_prefix,
)
from ipvsctl.translate import NodeContext, Notice, Rejection, Translation, VipKind

__all__ = [
    "Candidate",
    "ClientConnection",
    "ClusterInput",
    "DecidedBy",
    "Decision",
    "EntryOwner",
    "Explanation",
    "KernelInput",
    "RealServerState",
    "RealServerView",
    "ServicePort",
    "explain",
]


@dataclass(frozen=True, slots=True)
class KernelInput:
    """What was read of the node's IPVS state: the table, which keys the agent owns, and, when known, the
    connection counts per real server and the connection table (``None``: not read)."""

    table: Table
    owned: Callable[[ServiceKey], bool]
    counts: Mapping[tuple[ServiceKey, RealServerKey], ConnectionCounts] | None = None
    connections: Sequence[Connection] | None = None


@dataclass(frozen=True, slots=True)
class ClusterInput:
    """The cluster's objects and their translation for this node (as the agent computes it)."""

    node: NodeContext
    translation: Translation
    services: Mapping[ObjectRef, ServiceView]
    slices: Mapping[ObjectRef, Sequence[EndpointSliceView]]


class EntryOwner(StrEnum):
    """Whose the matching virtual service is."""

    SERVICE = "service"  # the agent's, and a Service wants it
    STALE = "stale"  # the agent's, but no Service wants it any more: the agent deletes it
    FOREIGN = "foreign"  # not the agent's (keepalived's, hand-made): never touched


@dataclass(frozen=True, slots=True)
class ServicePort:
    """The Service port a VIP comes from."""

    service: ObjectRef
    port: ServicePortView | None  # None when no port of the Service has the key's protocol and port
    source: str  # the field the VIP comes from: spec.clusterIPs[0], spec.ports[1].nodePort, ...
    kind: VipKind
    local: bool  # traffic policy Local: this node's endpoints only
    source_ranges: tuple[str, ...] | None = None  # load-balancer VIPs: the sources allowed (None: any)


class RealServerState(StrEnum):
    """A real server of the matching virtual service, kernel against desire."""

    SERVING = "serving"  # in the kernel with a weight, and desired
    DRAINING = "draining"  # weight 0 in the kernel: no new connections, its own end as they finish
    MISSING = "missing"  # desired, not in the kernel yet
    UNWANTED = "unwanted"  # in the kernel with a weight, not desired (foreign entries: not compared)


@dataclass(frozen=True, slots=True)
class RealServerView:
    """One real server and what is known about it."""

    real: RealServer
    state: RealServerState
    pod: ObjectRef | None = None
    node: str = ""
    counts: ConnectionCounts | None = None  # None: not read (a saved table has none)


class DecidedBy(StrEnum):
    """Who picks the real server of the client's next connection."""

    TEMPLATE = "template"  # a persistence template covers the client
    SCHEDULER = "scheduler"  # no template: the scheduler (and a persistent service then pins the client)
    UNKNOWN = "unknown"  # persistent, but the connection table was not read
    NOBODY = "nobody"  # no real server with a weight: a new connection is not scheduled


@dataclass(frozen=True, slots=True)
class Decision:
    """How the client's next connection is scheduled."""

    by: DecidedBy
    scheduler: str
    sched_flags: frozenset[str] = frozenset()
    persistence: Persistence | None = None
    client_network: str | None = None  # persistent services: the client's network as templates key it
    pin: Pin | None = None
    pinned_weight: int | None = None  # the pinned real server's weight now (None: no longer in the table)
    candidates: tuple[RealServerKey, ...] = ()  # the real servers the scheduler picks among (weight > 0)


@dataclass(frozen=True, slots=True)
class ClientConnection:
    """One of the client's connections through the virtual service, as the connection table lists it."""

    client_port: int
    real_server: RealServerKey
    state: str
    expires: int


@dataclass(frozen=True, slots=True)
class Candidate:
    """A Service that asks for the VIP:port, and what translation said about it."""

    service: ObjectRef
    skipped: str = ""
    rejections: tuple[Rejection, ...] = ()
    notices: tuple[Notice, ...] = ()
    desired: bool = False  # its translation holds the key


@dataclass(frozen=True, slots=True)
class Explanation:
    """The answer for one client and VIP:port (module docstring). ``virtual_service`` None: nothing matches."""

    client: str
    target: ServiceKey
    node: str
    virtual_service: VirtualService | None = None
    port_zero: bool = False  # matched by the VIP's port-zero catch-all
    owner: EntryOwner | None = None
    desired: VirtualService | None = None  # what the agent wants at the key (None: nothing)
    service: ServicePort | None = None
    real_servers: tuple[RealServerView, ...] = ()
    left_out: tuple[LeftOut, ...] = ()
    notices: tuple[Notice, ...] = ()
    decision: Decision | None = None
    connections: tuple[ClientConnection, ...] | None = None  # None: the connection table was not read
    netfilter: Verdict | None = None
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)

    @property
    def found(self) -> bool:
        """True when a virtual service matches."""
        return self.virtual_service is not None


def explain(
    *,
    client: str,
    target: ServiceKey,
    kernel: KernelInput,
    cluster: ClusterInput,
    netfilter: NetfilterInput | None = None,
) -> Explanation:
    """What this node does with ``client``'s traffic to ``target`` (canonical addresses; module docstring)."""
    translation = cluster.translation
    live = kernel.table.get(target)
    port_zero = False
    if live is None and target.port != 0:
        live = kernel.table.get(ServiceKey(target.protocol, target.address, 0))
        port_zero = live is not None
    key = live.key if live is not None else target
    desired = translation.table.get(key)
    owned = live is not None and kernel.owned(key)
    # A foreign entry where a Service wants the key is not that Service's: the Service is only a candidate.
    owner_ref = translation.owners.get(key) if owned or live is None else None
    service = _service_port(key, owner_ref, cluster) if owner_ref is not None else None
    candidates = () if service is not None and live is not None else _candidates(target, cluster)
    verdict = None if netfilter is None else judge(client, key, live, netfilter)
    if live is None:
        return Explanation(
            client,
            target,
            cluster.node.name,
            desired=desired,
            service=service,
            candidates=candidates,
            netfilter=verdict,
        )
    owner = EntryOwner.FOREIGN if not owned else EntryOwner.SERVICE if desired is not None else EntryOwner.STALE
    endpoints = None
    if service is not None and service.port is not None:
        endpoints = port_endpoints(
            service.port,
            cluster.slices.get(service.service, ()),
            family=key.family,
            families=_families(cluster.services.get(service.service)),
            local=service.local,
            node=cluster.node,
        )
    pods = {**(endpoints.pods if endpoints else {}), **translation.pods}
    reals = _real_servers(live, desired if owned else None, kernel, pods, endpoints.nodes if endpoints else {})
    result = translation.results.get(owner_ref) if owner_ref is not None else None
    return Explanation(
        client,
        target,
        cluster.node.name,
        virtual_service=live,
        port_zero=port_zero,
        owner=owner,
        desired=desired,
        service=service,
        real_servers=reals,
        left_out=endpoints.left_out if endpoints else (),
        notices=result.notices if result is not None else (),
        decision=_decision(client, live, kernel, translation),
        connections=_connections(client, target, kernel.connections),
        netfilter=verdict,
        candidates=candidates,
    )


def _families(service: ServiceView | None) -> frozenset[int]:
    if service is None:
        return frozenset()
    return frozenset(family_of(address) for address in service.cluster_ips if address != "None")


def _service_port(key: ServiceKey, owner: ObjectRef, cluster: ClusterInput) -> ServicePort:
    result = cluster.translation.results[owner]
    role = result.roles[key]
    view = cluster.services.get(owner)
    ports = view.ports if view is not None else ()
    node_port = role.kind is VipKind.NODE_PORT
    port = next(
        (
            candidate
            for candidate in ports
            if candidate.protocol is key.protocol and (candidate.node_port if node_port else candidate.port) == key.port
        ),
        None,
    )
    return ServicePort(
        service=owner,
        port=port,
        source=result.sources.get(key, "spec"),
        kind=role.kind,
        local=role.local,
        source_ranges=role.source_ranges,
    )


def _real_servers(
    live: VirtualService,
    desired: VirtualService | None,
    kernel: KernelInput,
    pods: Mapping[str, ObjectRef],
    nodes: Mapping[str, str],
) -> tuple[RealServerView, ...]:
    wanted = desired.real_map() if desired is not None else None
    views = []
    for real in live.reals:
        if real.weight == 0:
            state = RealServerState.DRAINING
        elif wanted is not None and real.key not in wanted:
            state = RealServerState.UNWANTED
        else:
            state = RealServerState.SERVING
        counts = None if kernel.counts is None else kernel.counts.get((live.key, real.key), ConnectionCounts(0, 0))
        views.append(RealServerView(real, state, pods.get(real.address), nodes.get(real.address, ""), counts))
    present = live.real_map()
    views += [
        RealServerView(real, RealServerState.MISSING, pods.get(real.address), nodes.get(real.address, ""))
        for real in (desired.reals if desired is not None else ())
        if real.key not in present
    ]
    return tuple(views)


def _decision(client: str, live: VirtualService, kernel: KernelInput, translation: Translation) -> Decision:
    candidates = tuple(real.key for real in live.reals if real.weight > 0)
    scheduled = DecidedBy.SCHEDULER if candidates else DecidedBy.NOBODY
    base = Decision(scheduled, scheduler=live.scheduler, sched_flags=live.sched_flags, candidates=candidates)
    persistence = live.persistence
    if persistence is None:
        return base
    prefix = min(persistence.netmask, max_prefix(family_of(client)))
    network = str(ipaddress.ip_network(f"{client}/{prefix}", strict=False))
    base = replace(base, persistence=persistence, client_network=network)
    if kernel.connections is None:
        return replace(base, by=DecidedBy.UNKNOWN)
    pins = [
        pin
        for pin in find_pins(
            kernel.connections,
            table=kernel.table,
            owners=translation.owners,
            pods=translation.pods,
            where=PinFilter(client=client),
        )
        if pin.virtual_service == live.key
    ]
    if not pins:
        return base
    pin = max(pins, key=lambda each: each.expires)
    pinned = live.real_map().get(pin.real_server)
    return replace(base, by=DecidedBy.TEMPLATE, pin=pin, pinned_weight=None if pinned is None else pinned.weight)


def _connections(
    client: str, key: ServiceKey, connections: Sequence[Connection] | None
) -> tuple[ClientConnection, ...] | None:
    if connections is None:
        return None
    return tuple(
        ClientConnection(
            entry.client_port, RealServerKey(entry.real_address, entry.real_port), entry.state, entry.expires
        )
        for entry in connections
        if not entry.is_template
        and entry.client_address == client
        and entry.virtual_address == key.address
        and entry.protocol.value.lower() == key.protocol.value
        and entry.virtual_port == key.port
    )


def _candidates(target: ServiceKey, cluster: ClusterInput) -> tuple[Candidate, ...]:
    """The Services whose spec asks for ``target``'s address and port, with what translation said of each."""
    translation = cluster.translation
    found = []
    for ref, view in cluster.services.items():
        if not _asks_for(view, target, node_addresses=cluster.node.addresses):
            continue
        result = translation.results.get(ref)
        found.append(
            Candidate(
                service=ref,
                skipped=result.skipped if result is not None else "",
                rejections=tuple(r for r in translation.rejections if r.service == ref),
                notices=result.notices if result is not None else (),
                desired=translation.owners.get(target) == ref,
            )
        )
    return tuple(sorted(found, key=lambda candidate: candidate.service))


def _asks_for(view: ServiceView, target: ServiceKey, *, node_addresses: Collection[str]) -> bool:
    addresses = {*view.cluster_ips, *view.external_ips, *view.load_balancer_ips}
    for port in view.ports:
        if port.protocol is not target.protocol:
            continue
        if target.address in addresses and port.port == target.port:
            return True
        if target.address in node_addresses and port.node_port == target.port:
            return True
    return False
