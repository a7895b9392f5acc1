"""The owned IPVS table as on-call engineers read it: named, with connections and draining servers (pure).

JSON schema ``ipvsctl.show/v1``::

    {"schema": "ipvsctl.show/v1",
     "virtualServices": [VS + {"service": ref | null, "realServers": [RS + {"pod": ref | null,
        "activeConnections", "inactiveConnections", "draining": bool}],
        "netfilter": {"filtered", "masquerade", "clusterMasquerade": bool, "sourceRanges": [cidr] | null}}],
     "netfilter": {"table": "inet ipvsctl", "present": bool, "elements": n} | null}

``netfilter`` is null when the nftables half was not read (``--no-netfilter``).

A real server is *draining* when its weight is 0: new connections avoid it and the
agent deletes it once its connections are gone (or its maximum drain time passed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ipvsctl.backend.base import KernelState
from ipvsctl.backend.nft.base import NetfilterState
from ipvsctl.kube.views import ObjectRef
from ipvsctl.model import ConnectionCounts, ServiceKey
from ipvsctl.netfilter.listing import Treatment, treatments
from ipvsctl.netfilter.ruleset import FAMILY, TABLE
from ipvsctl.printable import printable
from ipvsctl.report import describe_settings, real_json, ref_json, vs_json

__all__ = ["SCHEMA", "show_json", "show_text"]

SCHEMA = "ipvsctl.show/v1"
JSON = dict[str, object]
_NO_COUNTS = ConnectionCounts(0, 0)
_UNTREATED = Treatment()


def show_json(
    state: KernelState,
    *,
    owned: Callable[[ServiceKey], bool],
    owners: Mapping[ServiceKey, ObjectRef],
    pods: Mapping[str, ObjectRef],
    netfilter: NetfilterState | None = None,
) -> JSON:
    """The owned part of ``state`` as a JSON-ready document."""
    treated = treatments(netfilter.elements) if netfilter is not None else {}
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
        entry: JSON = {**vs_json(service), "service": ref_json(owners.get(service.key)), "realServers": reals}
        if netfilter is not None:
            treatment = treated.get(service.key, _UNTREATED)
            entry["netfilter"] = {
                "filtered": treatment.filtered,
                "masquerade": treatment.masquerade,
                "clusterMasquerade": treatment.cluster_masquerade,
                "sourceRanges": None if treatment.source_ranges is None else list(treatment.source_ranges),
            }
        services.append(entry)
    table = None
    if netfilter is not None:
        table = {"table": f"{FAMILY} {TABLE}", "present": netfilter.present, "elements": len(netfilter.elements)}
    return {"schema": SCHEMA, "virtualServices": services, "netfilter": table}


def show_text(
    state: KernelState,
    *,
    owned: Callable[[ServiceKey], bool],
    owners: Mapping[ServiceKey, ObjectRef],
    pods: Mapping[str, ObjectRef],
    netfilter: NetfilterState | None = None,
) -> str:
    """One block per owned virtual service, its real servers below, draining ones marked; names escaped."""
    treated = treatments(netfilter.elements) if netfilter is not None else {}
    lines: list[str] = []
    draining = 0
    count = 0
    for service in state.table:
        if not owned(service.key):
            continue
        count += 1
        owner = owners.get(service.key)
        lines.append(f"{service.key}  {describe_settings(service)}" + (f"  [Service {owner}]" if owner else ""))
        if netfilter is not None:
            described = treated.get(service.key, _UNTREATED).describe()
            lines.append(f"  nftables: {described or 'nothing (node address: no VIP filter; Local: no masquerade)'}")
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
    if netfilter is not None:
        held = f"present, {len(netfilter.elements)} elements" if netfilter.present else "absent"
        lines.append(f"nftables {FAMILY} {TABLE}: {held}")
    return "\n".join(printable(line) for line in lines) + "\n"
