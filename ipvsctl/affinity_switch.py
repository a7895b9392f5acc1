"""Cluster-scope tables change at one moment on every node: the change's trigger time plus a delay.

Nodes learn of an EndpointSlice change at slightly different times (watch delivery, sync coalescing). A
cluster-scope virtual service (``ipvsctl.affinity_scope``) decides by its Maglev table, so while some nodes
have applied a change and others have not, they disagree for every client the change moves (1/n of the
clients when a pod comes or goes). To close that window, every node applies the change to such a virtual
service at the same wall-clock moment: the slice's ``endpoints.kubernetes.io/last-change-trigger-time``
(written once by the EndpointSlice controller, so every node reads the same value) plus ``delay``. Until
then the node keeps the real servers it had, so nodes that know the change and nodes that do not yet know
it hold the same table. The price: a new pod gets its clients ``delay`` later.

What is never held back:

- a real server whose address no longer serves in any of the Service's slices (gone, or not serving): it
  leaves at once, as a dead pod should;
- a virtual service that is new, or not cluster scope, or whose old servers all stopped serving;
- a change without a trigger time (the Service's slices carry none), or whose moment has passed.

A trigger time is untrusted input (anyone who can write an EndpointSlice can write the annotation): a time
in the future holds a table at most ``delay`` from now.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from ipvsctl.affinity_scope import is_cluster_scope
from ipvsctl.kube.views import EndpointSliceView, ObjectRef
from ipvsctl.model import RealServer, VirtualService
from ipvsctl.translate import ServiceResult

__all__ = ["Held", "due_holds", "hold", "serving_addresses", "switch_time"]


@dataclass(frozen=True, slots=True)
class Held:
    """A translation with its held-back changes, and when they are due (wall-clock seconds; None: none held)."""

    result: ServiceResult
    until: float | None = None


def switch_time(slices: Iterable[EndpointSliceView], *, delay: float, now: float) -> float | None:
    """When the Service's latest slice change takes effect: its trigger time + ``delay``, at most now + delay.

    None when ``delay`` is 0 or no slice carries a trigger time.
    """
    if delay <= 0:
        return None
    times = [view.trigger_time for view in slices if view.trigger_time is not None]
    if not times:
        return None
    return min(max(times), now) + delay


def serving_addresses(slices: Iterable[EndpointSliceView]) -> frozenset[str]:
    """The endpoint addresses that still serve (ready, or terminating and serving) in these slices."""
    return frozenset(endpoint.address for view in slices for endpoint in view.endpoints if endpoint.serving)


def hold(
    new: ServiceResult, *, old: ServiceResult | None, switch_at: float | None, now: float, serving: frozenset[str]
) -> Held:
    """``new`` with each cluster-scope virtual service kept at ``old``'s real servers until ``switch_at``.

    Kept servers are those of ``old`` that still serve; a virtual service none of whose old servers serves
    switches at once.
    """
    if old is None or switch_at is None or now >= switch_at:
        return Held(new)
    before = {vs.key: vs for vs in old.services if is_cluster_scope(vs)}
    services: list[VirtualService] = []
    pods = dict(new.pods)
    held = False
    for vs in new.services:
        previous = before.get(vs.key)
        kept = _kept(previous, serving=serving) if previous is not None and is_cluster_scope(vs) else ()
        if not kept or {real.key for real in kept} == {real.key for real in vs.reals}:
            services.append(vs)
            continue
        services.append(vs.with_reals(kept))
        held = True
        for real in kept:
            pod = old.pods.get(real.address)
            if pod is not None:
                pods.setdefault(real.address, pod)
    if not held:
        return Held(new)
    return Held(replace(new, services=tuple(services), pods=pods), until=switch_at)


def _kept(previous: VirtualService, *, serving: frozenset[str]) -> tuple[RealServer, ...]:
    return tuple(real for real in previous.reals if real.address in serving)


def due_holds(holds: dict[ObjectRef, float], *, now: float) -> set[ObjectRef]:
    """The Services whose held changes are due at ``now`` (removed from ``holds``)."""
    due = {ref for ref, until in holds.items() if until <= now}
    for ref in due:
        del holds[ref]
    return due
