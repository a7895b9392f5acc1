"""Endpoint selection for one Service port: which endpoints may receive traffic, cluster-wide and on this node.

Pure, like kube-proxy's ``CategorizeEndpoints``: ready endpoints are used; only
when none are ready do serving-and-terminating ones take over (KEP-1669). The
fallback is decided separately for the cluster-wide set and the node-local set.

Topology (KEP-2433 hints, KEP-4444 ``trafficDistribution``) narrows the cluster-wide set, as kube-proxy
does from 1.33: the hints on the ready endpoints decide, whatever the Service says (the EndpointSlice
controller only writes hints for Services that ask). If every ready endpoint has a node hint and one is
hinted for this node, only those hinted for this node are used (PreferSameNode); else, if every ready
endpoint has a zone hint and one is hinted for this node's zone, only those (PreferSameZone / PreferClose);
else every endpoint is used. The node-local set (traffic policy Local) ignores hints.

A ``PortEndpoint`` is a plain ``(endpoint, target port)`` pair rather than an object of its
own: translation makes one per endpoint of every Service port, and at 100,000 endpoints a
frozen object each cost more than all the rest of the selection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ipvsctl.kube.views import EndpointSliceView, EndpointView, ServicePortView
from ipvsctl.model import family_of

__all__ = [
    "PREFER_SAME_NODE",
    "PREFER_SAME_ZONE",
    "EndpointSelection",
    "PortEndpoint",
    "backends_for_port",
    "select",
]

PREFER_SAME_ZONE = "PreferSameZone"
PREFER_SAME_NODE = "PreferSameNode"

PortEndpoint = tuple[EndpointView, int]
"""One endpoint of a Service port and the port it takes traffic on (its slice's port of that name and protocol)."""


@dataclass(frozen=True, slots=True)
class EndpointSelection:
    """Usable backends of one Service port and family, cluster-wide and on this node.

    ``topology`` is the hint mode that narrowed ``cluster`` (empty: none did); ``hints_ignored`` says why
    hints that some ready endpoint carries were not used (empty when there were none, or they were used).
    """

    cluster: tuple[PortEndpoint, ...] = ()
    local: tuple[PortEndpoint, ...] = ()
    topology: str = ""
    hints_ignored: str = ""


def _rank(endpoint: EndpointView) -> int:
    """2 ready, 1 serving while terminating, 0 unusable: a duplicate keeps its best copy."""
    if endpoint.ready:
        return 2
    return 1 if endpoint.serving and endpoint.terminating else 0


def backends_for_port(port: ServicePortView, slices: Iterable[EndpointSliceView], *, family: int) -> list[PortEndpoint]:
    """Backends of a Service port in one family: slice ports matching by name and protocol give the target port.

    An address:port listed by several slices appears once, with its best conditions (the first of equals),
    in the place it was first listed.
    """
    wanted_type = "IPv6" if family == 6 else "IPv4"
    matching = [
        (endpoint_slice, target_port)
        for endpoint_slice in slices
        if endpoint_slice.address_type == wanted_type
        and (target_port := _target_port(port, endpoint_slice)) is not None
    ]
    if not matching:
        return []
    if len(matching) == 1:
        # The usual case: one slice, each address once. Checking that is half the cost of merging.
        endpoint_slice, target_port = matching[0]
        backends = [
            (endpoint, target_port) for endpoint in endpoint_slice.endpoints if family_of(endpoint.address) == family
        ]
        if len({endpoint.address for endpoint, _ in backends}) == len(backends):
            return backends
    best: dict[tuple[str, int], PortEndpoint] = {}
    for endpoint_slice, target_port in matching:
        for endpoint in endpoint_slice.endpoints:
            if family_of(endpoint.address) != family:
                continue
            key = (endpoint.address, target_port)
            known = best.get(key)
            if known is None or _rank(endpoint) > _rank(known[0]):
                best[key] = (endpoint, target_port)
    return list(best.values())


def _target_port(port: ServicePortView, endpoint_slice: EndpointSliceView) -> int | None:
    for slice_port in endpoint_slice.ports:
        if slice_port.name == port.name and slice_port.protocol is port.protocol:
            return slice_port.port
    return None


_NOTHING = EndpointSelection()


def select(backends: Sequence[PortEndpoint], *, node_name: str, zone: str = "") -> EndpointSelection:
    """Split backends into the usable cluster-wide set (narrowed by topology hints) and the usable set on
    ``node_name``."""
    if not backends:
        return _NOTHING
    local = [backend for backend in backends if backend[0].node_name == node_name] if node_name else []
    mode, ignored = _topology(backends, node_name=node_name, zone=zone)
    cluster: tuple[PortEndpoint, ...] = ()
    if mode == PREFER_SAME_NODE:
        cluster = tuple([b for b in backends if b[0].ready and node_name in b[0].node_hints])
    elif mode == PREFER_SAME_ZONE:
        cluster = tuple([b for b in backends if b[0].ready and zone in b[0].zone_hints])
    return EndpointSelection(
        cluster=cluster or _usable(backends), local=_usable(local), topology=mode, hints_ignored=ignored
    )


def _topology(backends: Sequence[PortEndpoint], *, node_name: str, zone: str) -> tuple[str, str]:
    """kube-proxy's ``topologyModeFromHints``: the mode the ready endpoints' hints allow here, and, when
    they carry hints that cannot be used, why."""
    for endpoint, _ in backends:  # the usual case, no hints at all, costs one pass and nothing else
        if endpoint.ready and (endpoint.zone_hints or endpoint.node_hints):
            break
    else:
        return "", ""
    ready = [endpoint for endpoint, _ in backends if endpoint.ready]
    reasons = []
    if all(endpoint.node_hints for endpoint in ready):
        if node_name and any(node_name in endpoint.node_hints for endpoint in ready):
            return PREFER_SAME_NODE, ""
        reasons.append(f"no ready endpoint is hinted for node {node_name}")
    if all(endpoint.zone_hints for endpoint in ready):
        if zone and any(zone in endpoint.zone_hints for endpoint in ready):
            return PREFER_SAME_ZONE, ""
        if not zone:
            reasons.append("the node has no topology.kubernetes.io/zone label")
        else:
            reasons.append(f"no ready endpoint is hinted for zone {zone}")
    if not reasons:
        reasons.append("not every ready endpoint has a hint")
    return "", "; ".join(reasons)


def _usable(backends: Sequence[PortEndpoint]) -> tuple[PortEndpoint, ...]:
    if not backends:  # most Services have no endpoint on a given node
        return ()
    ready = tuple([backend for backend in backends if backend[0].ready])
    if ready:
        return ready
    return tuple([backend for backend in backends if backend[0].serving and backend[0].terminating])
