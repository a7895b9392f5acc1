"""The owned IPVS table as on-call engineers read it: named, with connections and draining servers (pure).

JSON schema ``ipvsctl.show/v1``::

    {"schema": "ipvsctl.show/v1",
     "virtualServices": [VS + {"service": ref | null, "realServers": [RS + {"pod": ref | null,
        "activeConnections", "inactiveConnections", "draining": bool}],
        "netfilter": {"filtered", "masquerade", "clusterMasquerade": bool, "sourceRanges": [cidr] | null}}],
     "netfilter": {"table": "inet ipvsctl", "present": bool, "elements": n} | null}

``netfilter`` is null when the nftables half was not read (``--no-netfilter``).

With ``--stats`` each virtual service and real server also has ``"stats"``: IPVS's own counters since it was
added (``connections``, ``packetsIn``, ``packetsOut``, ``bytesIn``, ``bytesOut``: what ``ipvsadm -Ln --stats``
shows) and ``perSecond``, the same five as rates between two stats dumps ``seconds`` apart (null for one that
appeared between them); ``"stats": null`` where a dump did not hold it. The document then has
``"statsInterval": seconds``.

A real server is *draining* when its weight is 0: new connections avoid it and the
agent deletes it once its connections are gone (or its maximum drain time passed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ipvsctl.backend.base import KernelState, Traffic, TrafficStats
from ipvsctl.backend.nft.base import NetfilterState
from ipvsctl.kube.views import ObjectRef
from ipvsctl.model import ConnectionCounts, RealServerKey, ServiceKey
from ipvsctl.netfilter.listing import Treatment, treatments
from ipvsctl.netfilter.ruleset import FAMILY, TABLE
from ipvsctl.printable import printable
from ipvsctl.report import describe_settings, real_json, ref_json, vs_json

__all__ = ["SCHEMA", "TrafficReads", "show_json", "show_text"]

SCHEMA = "ipvsctl.show/v1"
JSON = dict[str, object]
_NO_COUNTS = ConnectionCounts(0, 0)
_UNTREATED = Treatment()
_COUNTERS = ("connections", "packets_in", "packets_out", "bytes_in", "bytes_out")
_JSON_NAMES = ("connections", "packetsIn", "packetsOut", "bytesIn", "bytesOut")


@dataclass(frozen=True, slots=True)
class TrafficReads:
    """Two stats dumps ``seconds`` apart: totals from the second, rates between the two."""

    first: TrafficStats
    second: TrafficStats
    seconds: float

    def of_service(self, key: ServiceKey) -> JSON | None:
        """A virtual service's ``stats`` object (None when the second dump does not hold it)."""
        return _stats_json(self.first.services.get(key), self.second.services.get(key), self.seconds)

    def of_real(self, key: ServiceKey, real: RealServerKey) -> JSON | None:
        """A real server's ``stats`` object (None when the second dump does not hold it)."""
        ref = (key, real)
        return _stats_json(self.first.real_servers.get(ref), self.second.real_servers.get(ref), self.seconds)


def _stats_json(first: Traffic | None, second: Traffic | None, seconds: float) -> JSON | None:
    if second is None:
        return None
    totals = [getattr(second, name) for name in _COUNTERS]
    rates = None
    if first is not None and seconds > 0:
        # A counter that went back (the entry was deleted and made again in between) has no rate.
        rates = {
            label: round((now - getattr(first, name)) / seconds, 3) if now >= getattr(first, name) else None
            for label, name, now in zip(_JSON_NAMES, _COUNTERS, totals, strict=True)
        }
    return {**dict(zip(_JSON_NAMES, totals, strict=True)), "perSecond": rates}


def _stats_text(stats: JSON | None) -> str:
    """``conns 6 (0.5/s)  in 36 pkts 2400 B (3/s, 200 B/s)  out ...`` or a note that no dump held it."""
    if stats is None:
        return "stats: not in the stats dump"
    rates = stats["perSecond"]
    per = rates if isinstance(rates, dict) else {}

    def rate(name: str, unit: str = "/s") -> str:
        value = per.get(name)
        return "?" if value is None else f"{value:g}{unit}"

    return (
        f"stats: conns {stats['connections']} ({rate('connections')})"
        f"  in {stats['packetsIn']} pkts {stats['bytesIn']} B ({rate('packetsIn')}, {rate('bytesIn', ' B/s')})"
        f"  out {stats['packetsOut']} pkts {stats['bytesOut']} B ({rate('packetsOut')}, {rate('bytesOut', ' B/s')})"
    )


def show_json(
    state: KernelState,
    *,
    owned: Callable[[ServiceKey], bool],
    owners: Mapping[ServiceKey, ObjectRef],
    pods: Mapping[str, ObjectRef],
    netfilter: NetfilterState | None = None,
    traffic: TrafficReads | None = None,
) -> JSON:
    """The owned part of ``state`` as a JSON-ready document (with ``traffic``, each entry's stats)."""
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
            if traffic is not None:
                reals[-1]["stats"] = traffic.of_real(service.key, real.key)
        entry: JSON = {**vs_json(service), "service": ref_json(owners.get(service.key)), "realServers": reals}
        if traffic is not None:
            entry["stats"] = traffic.of_service(service.key)
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
    document: JSON = {"schema": SCHEMA, "virtualServices": services, "netfilter": table}
    if traffic is not None:
        document["statsInterval"] = traffic.seconds
    return document


def show_text(
    state: KernelState,
    *,
    owned: Callable[[ServiceKey], bool],
    owners: Mapping[ServiceKey, ObjectRef],
    pods: Mapping[str, ObjectRef],
    netfilter: NetfilterState | None = None,
    traffic: TrafficReads | None = None,
) -> str:
    """One block per owned virtual service, its real servers below, draining ones marked; names escaped.

    With ``traffic``, a stats line under each virtual service and real server (rates between the two dumps).
    """
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
        if traffic is not None:
            lines.append(f"  {_stats_text(traffic.of_service(service.key))}")
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
            if traffic is not None:
                lines.append(f"     {_stats_text(traffic.of_real(service.key, real.key))}")
    lines.append(f"{count} virtual services owned, {draining} real servers draining")
    if traffic is not None:
        lines.append(f"rates over {traffic.seconds:g} s between two stats dumps")
    if netfilter is not None:
        held = f"present, {len(netfilter.elements)} elements" if netfilter.present else "absent"
        lines.append(f"nftables {FAMILY} {TABLE}: {held}")
    return "\n".join(printable(line) for line in lines) + "\n"
