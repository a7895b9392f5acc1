"""Endpoint selection for one Service port: which endpoints may receive traffic, cluster-wide and on this node.

Pure, like kube-proxy's ``CategorizeEndpoints``: ready endpoints are used; only
when none are ready do serving-and-terminating ones take over (KEP-1669). The
fallback is decided separately for the cluster-wide set and the node-local set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ipvsctl.kube.views import EndpointSliceView, ObjectRef, ServicePortView
from ipvsctl.model import family_of

__all__ = ["EndpointSelection", "PortEndpoint", "backends_for_port", "select"]


@dataclass(frozen=True, slots=True)
class PortEndpoint:
    """One endpoint of a Service port: where to send traffic and what it is."""

    address: str
    port: int
    ready: bool
    serving: bool
    terminating: bool
    node_name: str
    target: ObjectRef | None

    @property
    def rank(self) -> int:
        """2 ready, 1 serving while terminating, 0 unusable: a duplicate keeps its best copy."""
        if self.ready:
            return 2
        return 1 if self.serving and self.terminating else 0


@dataclass(frozen=True, slots=True)
class EndpointSelection:
    """Usable backends of one Service port and family, cluster-wide and on this node."""

    cluster: tuple[PortEndpoint, ...]
    local: tuple[PortEndpoint, ...]


def backends_for_port(port: ServicePortView, slices: Iterable[EndpointSliceView], *, family: int) -> list[PortEndpoint]:
    """Backends of a Service port in one family: slice ports matching by name and protocol give the target port.

    An address:port listed by several slices appears once, with its best conditions.
    """
    best: dict[tuple[str, int], PortEndpoint] = {}
    wanted_type = "IPv6" if family == 6 else "IPv4"
    for endpoint_slice in slices:
        if endpoint_slice.address_type != wanted_type:
            continue
        target_port = _target_port(port, endpoint_slice)
        if target_port is None:
            continue
        for endpoint in endpoint_slice.endpoints:
            if family_of(endpoint.address) != family:
                continue
            backend = PortEndpoint(
                address=endpoint.address,
                port=target_port,
                ready=endpoint.ready,
                serving=endpoint.serving,
                terminating=endpoint.terminating,
                node_name=endpoint.node_name,
                target=endpoint.target,
            )
            key = (backend.address, backend.port)
            known = best.get(key)
            if known is None or backend.rank > known.rank:
                best[key] = backend
    return list(best.values())


def _target_port(port: ServicePortView, endpoint_slice: EndpointSliceView) -> int | None:
    for slice_port in endpoint_slice.ports:
        if slice_port.name == port.name and slice_port.protocol is port.protocol:
            return slice_port.port
    return None


def select(backends: Sequence[PortEndpoint], *, node_name: str) -> EndpointSelection:
    """Split backends into the usable cluster-wide set and the usable set on ``node_name``."""
    local = [backend for backend in backends if node_name and backend.node_name == node_name]
    return EndpointSelection(cluster=_usable(backends), local=_usable(local))


def _usable(backends: Sequence[PortEndpoint]) -> tuple[PortEndpoint, ...]:
    ready = tuple(backend for backend in backends if backend.ready)
    if ready:
        return ready
    return tuple(backend for backend in backends if backend.serving and backend.terminating)
