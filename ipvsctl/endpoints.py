"""Endpoint selection for one Service port: which endpoints may receive traffic, cluster-wide and on this node.

Pure, like kube-proxy's ``CategorizeEndpoints``: ready endpoints are used; only
when none are ready do serving-and-terminating ones take over (KEP-1669). The
fallback is decided separately for the cluster-wide set and the node-local set.

A ``PortEndpoint`` is a plain ``(endpoint, target port)`` pair rather than an object of its
own: translation makes one per endpoint of every Service port, and at 100,000 endpoints a
frozen object each cost more than all the rest of the selection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ipvsctl.kube.views import EndpointSliceView, EndpointView, ServicePortView
from ipvsctl.model import family_of

__all__ = ["EndpointSelection", "PortEndpoint", "backends_for_port", "select"]

PortEndpoint = tuple[EndpointView, int]
"""One endpoint of a Service port and the port it takes traffic on (its slice's port of that name and protocol)."""


@dataclass(frozen=True, slots=True)
class EndpointSelection:
    """Usable backends of one Service port and family, cluster-wide and on this node."""

    cluster: tuple[PortEndpoint, ...] = ()
    local: tuple[PortEndpoint, ...] = ()


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


def select(backends: Sequence[PortEndpoint], *, node_name: str) -> EndpointSelection:
    """Split backends into the usable cluster-wide set and the usable set on ``node_name``."""
    if not backends:
        return _NOTHING
    local = [backend for backend in backends if backend[0].node_name == node_name] if node_name else []
    return EndpointSelection(cluster=_usable(backends), local=_usable(local))


def _usable(backends: Sequence[PortEndpoint]) -> tuple[PortEndpoint, ...]:
    ready = tuple([backend for backend in backends if backend[0].ready])
    if ready:
        return ready
    return tuple([backend for backend in backends if backend[0].serving and backend[0].terminating])
