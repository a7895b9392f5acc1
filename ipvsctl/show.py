"""The owned IPVS table as on-call engineers read it: named, with connections and draining servers (pure).

JSON schema ``ipvsctl.show/v1``::

    {"schema": "ipvsctl.show/v1",
     "virtualServices": [VS + {"service": ref | null, "realServers": [RS + {"pod": ref | null,
        "activeConnections", "inactiveConnections", "draining": bool}]}]}

A real server is *draining* when its weight is 0: new connections avoid it and the
agent deletes it once its connections are gone (or its maximum drain time passed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ipvsctl.backend.base import KernelState
from ipvsctl.kube.views import ObjectRef
from ipvsctl.model import ConnectionCounts, ServiceKey
from ipvsctl.printable import printable
from ipvsctl.report import describe_settings, real_json, ref_json, vs_json

__all__ = ["SCHEMA", "show_json", "show_text"]

SCHEMA = "ipvsctl.show/v1"
JSON = dict[str, object]
_NO_COUNTS = ConnectionCounts(0, 0)


def show_json(
    state: KernelState,
    *,
    owned: Callable[[ServiceKey], bool],
    owners: Mapping[ServiceKey, ObjectRef],
    pods: Mapping[str, ObjectRef],
) -> JSON:
    """The owned part of ``state`` as a JSON-ready document."""
    services: list[JSON] = []
    for service in state.table:
        if not owned(service.key):
            continue
        reals: list[JSON] = []
        for real in service.reals:
            counts = state.connections.get((service.key, real.key), _NO_COUNTS)
            reals.append(
                {
                    **real_json(real),
                    "pod": ref_json(pods.get(real.address)),
                    "activeConnections": counts.active,
                    "inactiveConnections": counts.inactive,
                    "draining": real.weight == 0,
                }
            )
        services.append({**vs_json(service), "service": ref_json(owners.get(service.key)), "realServers": reals})
    return {"schema": SCHEMA, "virtualServices": services}


def show_text(
    state: KernelState,
    *,
    owned: Callable[[ServiceKey], bool],
    owners: Mapping[ServiceKey, ObjectRef],
    pods: Mapping[str, ObjectRef],
) -> str:
    """One block per owned virtual service, its real servers below, draining ones marked; names escaped."""
    lines: list[str] = []
    draining = 0
    count = 0
    for service in state.table:
        if not owned(service.key):
            continue
        count += 1
        owner = owners.get(service.key)
        lines.append(f"{service.key}  {describe_settings(service)}" + (f"  [Service {owner}]" if owner else ""))
        if not service.reals:
            lines.append("  (no real servers: traffic is dropped)")
        for real in service.reals:
            counts = state.connections.get((service.key, real.key), _NO_COUNTS)
            pod = pods.get(real.address)
            text = (
                f"  -> {real} {real.forwarding.value} weight {real.weight}"
                f"  active {counts.active} inactive {counts.inactive}"
            )
            if real.weight == 0:
                draining += 1
                text += f"  DRAINING ({counts.total} connections left)"
            lines.append(text + (f"  [pod {pod}]" if pod else ""))
    lines.append(f"{count} virtual services owned, {draining} real servers draining")
    return "\n".join(printable(line) for line in lines) + "\n"
