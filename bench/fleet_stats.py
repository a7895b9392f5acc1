"""Pure arithmetic of bench/fleet.py: addresses, Prometheus sums, percentiles, relist buckets, the extrapolation."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping, Sequence

# Documentation prefixes (RFC 3849): 10,000 Services do not fit in the IPv4 documentation /24s.
SERVICE_CIDR = ipaddress.IPv6Network("2001:db8:96::/112")  # ClusterIPs: 65,536 addresses
ENDPOINT_NETWORK = ipaddress.IPv6Network("2001:db8:64::/96")  # pod addresses
ENDPOINT_SLOTS = 16  # endpoint addresses reserved per Service (the first ones listed, later ones for changes)

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)$", re.MULTILINE)
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def endpoint_address(index: int, *, slot: int) -> str:
    """The ``slot``-th endpoint address of Service ``index``: unique, in canonical text (as the agent keeps it)."""
    if not 0 <= slot < ENDPOINT_SLOTS:
        raise ValueError(f"slot {slot} is outside 0..{ENDPOINT_SLOTS - 1}")
    return str(ENDPOINT_NETWORK[index * ENDPOINT_SLOTS + slot])


def metric_sum(text: str, *, name: str, labels: Mapping[str, str] | None = None) -> float:
    """The sum of every sample of `name` in Prometheus text whose labels include `labels`."""
    wanted = dict(labels or {})
    total = 0.0
    for metric, raw_labels, value in SAMPLE.findall(text):
        if metric != name:
            continue
        found = dict(LABEL.findall(raw_labels or ""))
        if all(found.get(key) == expected for key, expected in wanted.items()):
            total += float(value)
    return total


def percentile(values: Sequence[float], *, fraction: float) -> float:
    """The nearest-rank percentile (fraction in (0, 1]) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def latency_summary(values: Sequence[float]) -> dict[str, float]:
    """p50, p99 and max (seconds) of a non-empty sequence, with its count."""
    return {
        "count": float(len(values)),
        "p50": percentile(values, fraction=0.5),
        "p99": percentile(values, fraction=0.99),
        "max": max(values),
    }


def held_split(done: Sequence[float], *, held: Sequence[bool]) -> dict[str, float]:
    """One change's agents split by whether --min-sync-interval held it: how many were, and the slowest of each side.

    ``done`` is each agent's seconds from the write to its table holding the change; a side with no agent has 0.
    """
    if len(done) != len(held):
        raise ValueError(f"{len(done)} completion times for {len(held)} agents")
    held_times = [seconds for seconds, waited in zip(done, held, strict=True) if waited]
    others = [seconds for seconds, waited in zip(done, held, strict=True) if not waited]
    return {
        "held": float(len(held_times)),
        "slowest_held": max(held_times, default=0.0),
        "slowest_other": max(others, default=0.0),
    }


def buckets(offsets: Sequence[float], *, width: float) -> list[int]:
    """Counts of offsets (seconds from a start, ≥ 0) per bucket of `width` seconds, from 0 to the last one."""
    if not offsets:
        return []
    counts = [0] * (int(max(offsets) // width) + 1)
    for offset in offsets:
        counts[int(offset // width)] += 1
    return counts


def per_hour(count: float, *, seconds: float) -> float:
    """A count observed over `seconds`, scaled to one hour."""
    return count * 3600.0 / seconds


def rollout_requests_per_second(*, nodes: int, requests_per_agent: float, rollout_seconds: float) -> float:
    """Apiserver requests/s while `nodes` agents restart evenly over `rollout_seconds`."""
    return nodes * requests_per_agent / rollout_seconds


def watch_events_per_change(*, nodes: int, watches_per_agent: int = 1) -> int:
    """Watch events the apiserver sends for one object change: one per agent watching that resource."""
    return nodes * watches_per_agent
