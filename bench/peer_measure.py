"""What the side-by-side bench (issue 18) reads and how it sums it up. Pure.

A process's CPU seconds (its own and its reaped children's: kube-proxy's iptables-restore and ipset count
as kube-proxy's) from /proc/PID/stat, its RSS from /proc/PID/status, how far a /proc/net/ip_vs table is from
the expected one, the polling delay while waiting for a change, the latency summary, and the comparison of
the two proxies' tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from bench.cluster import percentile
from ipvsctl.model import Table, VirtualService

Endpoint = tuple[str, int]
VirtualKey = tuple[str, str, int]
# utime, stime, cutime, cstime: fields 14-17 of /proc/PID/stat, i.e. 11-14 after the ")" that ends comm.
_CPU_FIELDS = slice(11, 15)
POLL_FIRST = 0.005
POLL_SHARE = 0.02  # of the time waited so far: the resolution stays within 2 % of the latency
POLL_MAX = 0.5


def cpu_seconds(stat: str, *, ticks_per_second: int) -> float:
    """User + system CPU seconds of a process and its reaped children, from /proc/PID/stat's text."""
    after_name = stat[stat.rindex(")") + 2 :].split()  # comm may hold spaces and parentheses
    return sum(int(field) for field in after_name[_CPU_FIELDS]) / ticks_per_second


@dataclass(frozen=True, slots=True)
class Memory:
    """Resident set size now and at its peak, in MiB."""

    rss_mib: float
    peak_mib: float


def memory(status: str) -> Memory:
    """VmRSS and VmHWM from /proc/PID/status's text."""
    values = {}
    for line in status.splitlines():
        name, _, rest = line.partition(":")
        if name in {"VmRSS", "VmHWM"}:
            values[name] = int(rest.split()[0]) / 1024  # kB
    if len(values) != 2:
        raise ValueError("no VmRSS/VmHWM in the status text (a kernel thread, or the process exited)")
    return Memory(rss_mib=round(values["VmRSS"], 1), peak_mib=round(values["VmHWM"], 1))


def poll_delay(waited: float) -> float:
    """How long to sleep before the next look, `waited` seconds after the write."""
    return min(POLL_MAX, max(POLL_FIRST, waited * POLL_SHARE))


def missing(
    table: Mapping[VirtualKey, Mapping[Endpoint, object]], expected: Mapping[VirtualKey, frozenset[Endpoint]]
) -> int:
    """How many expected virtual services are absent or hold other real servers than expected."""
    return sum(1 for key, reals in expected.items() if frozenset(table.get(key, {})) != reals)


def summary(seconds: Sequence[float]) -> dict[str, float | int]:
    """Count, p50, p99 and max of latencies, in ms."""
    if not seconds:
        return {"count": 0}
    return {
        "count": len(seconds),
        "p50_ms": round(percentile(seconds, 0.5) * 1000, 1),
        "p99_ms": round(percentile(seconds, 0.99) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
    }


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs, None when either is unknown or theirs is 0."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return round(ours / theirs, 4)


@dataclass(frozen=True, slots=True)
class Difference:
    """How one virtual service differs between the two tables (`field`: what differs; values as text)."""

    service: str
    field: str
    ipvsctl: str
    kube_proxy: str


def _settings(service: VirtualService) -> dict[str, str]:
    persistence = service.persistence
    return {
        "scheduler": service.scheduler,
        "persistence_timeout": "none" if persistence is None else str(persistence.timeout),
        "persistence_netmask": "none" if persistence is None else f"/{persistence.netmask}",
        "sched_flags": ",".join(sorted(service.sched_flags)) or "none",
        "one_packet": str(service.one_packet),
        "pe_name": service.pe_name or "none",
    }


def _reals(service: VirtualService) -> dict[str, str]:
    return {
        str(real): f"weight {real.weight} {real.forwarding.name.lower()} thresholds {real.upper_threshold}/"
        f"{real.lower_threshold}"
        for real in service.reals
    }


def compare_tables(*, ipvsctl: Table, kube_proxy: Table) -> list[Difference]:
    """Every difference between the two tables: a virtual service only one holds, a setting, a real server."""
    differences: list[Difference] = []
    ours, theirs = ipvsctl.services, kube_proxy.services
    for key in sorted(ours.keys() | theirs.keys(), key=lambda key: key.sort_key()):
        name = str(key)
        if key not in theirs or key not in ours:
            present = ("present", "absent") if key not in theirs else ("absent", "present")
            differences.append(Difference(name, "virtual service", *present))
            continue
        differences += _differing(name, _settings(ours[key]), _settings(theirs[key]), prefix="")
        differences += _differing(name, _reals(ours[key]), _reals(theirs[key]), prefix="real server ")
    return differences


def _differing(service: str, ours: Mapping[str, str], theirs: Mapping[str, str], *, prefix: str) -> list[Difference]:
    return [
        Difference(service, f"{prefix}{name}", ours.get(name, "absent"), theirs.get(name, "absent"))
        for name in sorted(ours.keys() | theirs.keys())
        if ours.get(name) != theirs.get(name)
    ]


def tally(differences: Iterable[Difference]) -> dict[str, int]:
    """How many virtual services differ in each field, with the values (`field: ipvsctl → kube-proxy`)."""
    counts: dict[str, int] = {}
    for difference in differences:
        field = "real server" if difference.field.startswith("real server ") else difference.field
        label = f"{field}: {difference.ipvsctl} -> {difference.kube_proxy}"
        counts[label] = counts.get(label, 0) + 1
    return dict(sorted(counts.items()))
