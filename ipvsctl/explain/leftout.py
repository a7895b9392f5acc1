"""Which endpoints of a Service port did not become real servers of one VIP, and why (pure).

The sets come from ``ipvsctl.endpoints`` exactly as translation takes them (``backends_for_port``, the
special addresses translation refuses, then ``select``): an endpoint is left out when it is not in the set
the VIP uses (``local`` under traffic policy Local, else ``cluster``). The reason names what put it out:

- ``other-family``: an endpoint of the other address family (a VIP has real servers of its own family only);
- ``refused-address``: an address that is never a real server (loopback, link-local, ...: ``ipvsctl.addresses``);
- ``other-node``: traffic policy Local, and the endpoint is on another node;
- ``topology``: ready, but the topology hints chose others for this node or zone (the cluster-wide set only);
- ``terminating``: serving while terminating, used only when no endpoint is ready;
- ``not-ready``: neither ready nor serving-while-terminating.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from ipvsctl.addresses import special_address
from ipvsctl.endpoints import PREFER_SAME_NODE, EndpointSelection, PortEndpoint, backends_for_port, select
from ipvsctl.kube.views import EndpointSliceView, EndpointView, ObjectRef, ServicePortView
from ipvsctl.translate import NodeContext

__all__ = ["LeftOut", "LeftOutReason", "PortEndpoints", "port_endpoints"]


class LeftOutReason(StrEnum):
    """Why an endpoint is not a real server of the VIP (module docstring)."""

    OTHER_FAMILY = "other-family"
    REFUSED_ADDRESS = "refused-address"
    OTHER_NODE = "other-node"
    TOPOLOGY = "topology"
    TERMINATING = "terminating"
    NOT_READY = "not-ready"


@dataclass(frozen=True, slots=True)
class LeftOut:
    """An endpoint that is not a real server of the VIP: where it is, and why it is out."""

    address: str
    port: int  # its target port
    pod: ObjectRef | None
    node: str
    reason: LeftOutReason
    detail: str


@dataclass(frozen=True, slots=True)
class PortEndpoints:
    """A Service port's endpoints as seen from one VIP: each address's node, and those left out."""

    nodes: dict[str, str]  # endpoint address → its node ("" when the slice does not say)
    pods: dict[str, ObjectRef]  # endpoint address → its targetRef
    left_out: tuple[LeftOut, ...]


def port_endpoints(
    port: ServicePortView,
    slices: Sequence[EndpointSliceView],
    *,
    family: int,
    families: frozenset[int],
    local: bool,
    node: NodeContext,
) -> PortEndpoints:
    """The endpoints of ``port`` for a VIP of ``family`` (``families``: the Service's; ``local``: its traffic
    policy is Local) on ``node``."""
    nodes: dict[str, str] = {}
    pods: dict[str, ObjectRef] = {}
    left: list[LeftOut] = []
    for other in (4, 6):
        backends = backends_for_port(port, slices, family=other)
        for endpoint, _ in backends:
            nodes.setdefault(endpoint.address, endpoint.node_name)
            if endpoint.target is not None:
                pods.setdefault(endpoint.address, endpoint.target)
        if other != family:
            why = f"an IPv{other} endpoint: this VIP is IPv{family}"
            if other not in families:
                why += f" (the Service has no IPv{other} cluster IP)"
            left += [_left(backend, LeftOutReason.OTHER_FAMILY, why) for backend in backends]
            continue
        usable = [backend for backend in backends if special_address(backend[0].address) is None]
        for backend in backends:
            kind = special_address(backend[0].address)
            if kind is not None:
                left.append(_left(backend, LeftOutReason.REFUSED_ADDRESS, f"a {kind} address, never a real server"))
        if not usable:
            continue
        selection = select(usable, node_name=node.name, zone=node.zone)
        chosen = {(endpoint.address, target) for endpoint, target in (selection.local if local else selection.cluster)}
        left += [
            _left(backend, *_reason(backend[0], selection, local=local, node=node))
            for backend in usable
            if (backend[0].address, backend[1]) not in chosen
        ]
    return PortEndpoints(nodes=nodes, pods=pods, left_out=tuple(left))


def _reason(
    endpoint: EndpointView, selection: EndpointSelection, *, local: bool, node: NodeContext
) -> tuple[LeftOutReason, str]:
    if local and endpoint.node_name != node.name:
        where = f"on node {endpoint.node_name}" if endpoint.node_name else "on no named node"
        return LeftOutReason.OTHER_NODE, f"{where}: traffic policy Local uses node {node.name}'s endpoints only"
    if endpoint.ready and not local and selection.topology:
        if selection.topology == PREFER_SAME_NODE:
            hinted = ", ".join(endpoint.node_hints) or "no node"
            return LeftOutReason.TOPOLOGY, f"hinted for node {hinted}, not {node.name} ({selection.topology})"
        hinted = ", ".join(endpoint.zone_hints) or "no zone"
        return LeftOutReason.TOPOLOGY, f"hinted for zone {hinted}, not {node.zone} ({selection.topology})"
    if endpoint.serving and endpoint.terminating:
        return LeftOutReason.TERMINATING, "terminating (still serving): used only while no endpoint is ready"
    return LeftOutReason.NOT_READY, "not ready" + (" (terminating)" if endpoint.terminating else "")


def _left(backend: PortEndpoint, reason: LeftOutReason, detail: str) -> LeftOut:
    endpoint, target = backend
    return LeftOut(endpoint.address, target, endpoint.target, endpoint.node_name, reason, detail)
