"""Traffic per Service and per Pod as Prometheus metrics: IPVS's own counters, named, bounded, cheap to scrape.

- What: each owned virtual service's counters and rates (``ipvsadm -Ln --stats --rate``), labelled with its
  Service (namespace, name, port), and in ``endpoint`` mode each real server's too, with its Pod and its
  active/inactive connections. ``off`` exports none of it.
- Cost: a scrape answers from the last stats dump while it is younger than ``min_age``; an older one is
  replaced by one new dump, which concurrent scrapes share. However often Prometheus (or several) scrapes,
  the kernel is dumped at most once per ``min_age``.
- Cardinality: at most ``max_series`` series; Services' series first (in name order), then endpoints'.
  An entry that does not fit is left out whole and its series are counted in
  ``ipvsctl_traffic_series_dropped_total`` (at each dump).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ipvsctl.agent.clock import Clock
from ipvsctl.backend.base import Backend, Traffic, TrafficStats
from ipvsctl.errors import BackendError
from ipvsctl.kube.views import ObjectRef, ServiceView
from ipvsctl.model import ConnectionCounts, ServiceKey
from ipvsctl.translate import VipKind, VipRole

__all__ = ["TrafficMetrics", "TrafficMode", "VipOwner", "port_label"]

SERIES_PER_SERVICE = 10  # connections, packets and bytes (in, out), and their five rates
SERIES_PER_ENDPOINT = SERIES_PER_SERVICE + 2  # and the active and inactive connections
_DIRECTIONS = ("in", "out")
_SERVICE_LABELS = ("namespace", "service", "port", "protocol", "virtual_service")
_ENDPOINT_LABELS = (*_SERVICE_LABELS, "pod", "endpoint")


class TrafficMode(StrEnum):
    """``--traffic-metrics``: which traffic series are exported."""

    OFF = "off"
    SERVICE = "service"
    ENDPOINT = "endpoint"


@dataclass(frozen=True, slots=True)
class VipOwner:
    """What names a programmed VIP: its Service, the VIP's role, and its real servers' Pods by address."""

    view: ServiceView
    role: VipRole
    pods: Mapping[str, ObjectRef]


def port_label(view: ServiceView, key: ServiceKey, role: VipRole) -> str:
    """The Service port a VIP serves: its name, or its number when unnamed (NodePorts by their node port)."""
    for port in view.ports:
        if port.protocol is not key.protocol:
            continue
        number = port.node_port if role.kind is VipKind.NODE_PORT else port.port
        if number == key.port:
            return port.name or str(port.port)
    return str(key.port)


@dataclass(frozen=True, slots=True)
class _Sample:
    labels: tuple[str, ...]
    traffic: Traffic
    connections: ConnectionCounts | None = None


@dataclass(frozen=True, slots=True)
class _Samples:
    services: tuple[_Sample, ...] = ()
    endpoints: tuple[_Sample, ...] = ()


def samples(
    stats: TrafficStats, *, owner_of: Callable[[ServiceKey], VipOwner | None], mode: TrafficMode, max_series: int
) -> tuple[_Samples, int]:
    """The labelled samples of the owned VIPs in ``stats`` within ``max_series``; and the series left out."""
    services: list[_Sample] = []
    endpoints: list[_Sample] = []
    owners: dict[ServiceKey, tuple[tuple[str, ...], VipOwner]] = {}
    for key, traffic in stats.services.items():
        owner = owner_of(key)
        if owner is None:
            continue  # not the agent's: another program's virtual service
        view = owner.view
        labels: tuple[str, ...] = (
            view.ref.namespace,
            view.ref.name,
            port_label(view, key, owner.role),
            key.protocol.value.upper(),
            key.endpoint(),
        )
        owners[key] = (labels, owner)
        services.append(_Sample(labels, traffic))
    if mode is TrafficMode.ENDPOINT:
        for (key, real), traffic in stats.real_servers.items():
            found = owners.get(key)
            if found is None:
                continue
            labels, owner = found
            pod = owner.pods.get(real.address)
            endpoints.append(
                _Sample(
                    (*labels, "" if pod is None else pod.name, str(real)),
                    traffic,
                    stats.connections.get((key, real), ConnectionCounts(0, 0)),
                )
            )
    services.sort(key=lambda sample: sample.labels)
    endpoints.sort(key=lambda sample: sample.labels)
    kept_services = services[: max_series // SERIES_PER_SERVICE]
    room = max_series - len(kept_services) * SERIES_PER_SERVICE
    kept_endpoints = endpoints[: room // SERIES_PER_ENDPOINT]
    dropped = (len(services) - len(kept_services)) * SERIES_PER_SERVICE
    dropped += (len(endpoints) - len(kept_endpoints)) * SERIES_PER_ENDPOINT
    return _Samples(tuple(kept_services), tuple(kept_endpoints)), dropped


class TrafficMetrics(Collector):
    """The traffic series (a custom collector over the last stats dump) and the dump's own metrics."""

    def __init__(
        self,
        *,
        registry: CollectorRegistry,
        backend: Backend,
        clock: Clock,
        owner_of: Callable[[ServiceKey], VipOwner | None],
        on_error: Callable[[], None],
        mode: TrafficMode = TrafficMode.SERVICE,
        min_age: float = 15.0,
        max_series: int = 50_000,
    ) -> None:
        self.mode = mode
        self.min_age = min_age
        self.max_series = max_series
        self._backend = backend
        self._clock = clock
        self._owner_of = owner_of
        self._on_error = on_error
        self._samples = _Samples()
        self._dumped_at: float | None = None
        self._lock = asyncio.Lock()
        self._log = structlog.get_logger("ipvsctl.agent.traffic")
        self.dumps = Counter(
            "ipvsctl_traffic_stats_dumps_total",
            "IPVS stats dumps made for the traffic metrics (at most one per --traffic-stats-min-age).",
            registry=registry,
        )
        self.dump_duration = Histogram(
            "ipvsctl_traffic_stats_dump_duration_seconds",
            "Duration of one IPVS stats dump for the traffic metrics.",
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.dropped = Counter(
            "ipvsctl_traffic_series_dropped",
            "Traffic series left out at a stats dump because of --traffic-metrics-max-series.",
            registry=registry,
        )
        if mode is not TrafficMode.OFF:
            registry.register(self)

    async def refresh(self) -> None:
        """Before a scrape: one stats dump if the last is older than ``min_age`` (shared by concurrent scrapes).

        A failed dump is logged and counted, and the scrape answers without traffic series.
        """
        if self.mode is TrafficMode.OFF:
            return
        async with self._lock:
            now = self._clock.now()
            if self._dumped_at is not None and now - self._dumped_at < self.min_age:
                return
            started = asyncio.get_running_loop().time()
            try:
                stats = await self._backend.traffic()
            except BackendError as error:
                self._on_error()
                self._log.error("traffic_stats_failed", error=str(error))
                self._samples, self._dumped_at = _Samples(), None
                return
            self.dumps.inc()
            self.dump_duration.observe(asyncio.get_running_loop().time() - started)
            self._samples, dropped = samples(stats, owner_of=self._owner_of, mode=self.mode, max_series=self.max_series)
            self._dumped_at = now
            if dropped:
                self.dropped.inc(dropped)
                self._log.warning("traffic_series_dropped", series=dropped, max_series=self.max_series)

    def describe(self) -> list[Metric]:
        """Nothing: the families are known only from a dump (prometheus_client then skips the collect at
        registration)."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The traffic families of the last dump."""
        current = self._samples
        yield from _families("ipvsctl_service", "virtual service", _SERVICE_LABELS, current.services)
        if self.mode is TrafficMode.ENDPOINT:
            yield from _families("ipvsctl_endpoint", "real server", _ENDPOINT_LABELS, current.endpoints)
            active = GaugeMetricFamily(
                "ipvsctl_endpoint_active_connections",
                "Active (established) connections of a real server, as ipvsadm's ActiveConn.",
                labels=_ENDPOINT_LABELS,
            )
            inactive = GaugeMetricFamily(
                "ipvsctl_endpoint_inactive_connections",
                "Inactive connections (and persistence templates) of a real server, as ipvsadm's InActConn.",
                labels=_ENDPOINT_LABELS,
            )
            for sample in current.endpoints:
                counts = sample.connections or ConnectionCounts(0, 0)
                active.add_metric(sample.labels, counts.active)
                inactive.add_metric(sample.labels, counts.inactive)
            yield active
            yield inactive


def _families(prefix: str, what: str, labels: tuple[str, ...], entries: tuple[_Sample, ...]) -> Iterator[Metric]:
    connections = CounterMetricFamily(
        f"{prefix}_connections", f"Connections scheduled to the {what} (IPVS Conns).", labels=labels
    )
    packets = CounterMetricFamily(
        f"{prefix}_packets",
        f"Packets of the {what}, by direction (IPVS InPkts, OutPkts).",
        labels=[*labels, "direction"],
    )
    octets = CounterMetricFamily(
        f"{prefix}_bytes", f"Bytes of the {what}, by direction (IPVS InBytes, OutBytes).", labels=[*labels, "direction"]
    )
    connection_rate = GaugeMetricFamily(
        f"{prefix}_connections_per_second",
        f"Connections per second to the {what}, the kernel's 2-second estimate (IPVS CPS).",
        labels=labels,
    )
    packet_rate = GaugeMetricFamily(
        f"{prefix}_packets_per_second",
        f"Packets per second of the {what} by direction, the kernel's estimate (IPVS InPPS, OutPPS).",
        labels=[*labels, "direction"],
    )
    byte_rate = GaugeMetricFamily(
        f"{prefix}_bytes_per_second",
        f"Bytes per second of the {what} by direction, the kernel's estimate (IPVS InBPS, OutBPS).",
        labels=[*labels, "direction"],
    )
    for sample in entries:
        traffic = sample.traffic
        connections.add_metric(sample.labels, traffic.connections)
        connection_rate.add_metric(sample.labels, traffic.connections_per_second)
        for direction, count, octet, packet_per_second, byte_per_second in zip(
            _DIRECTIONS,
            (traffic.packets_in, traffic.packets_out),
            (traffic.bytes_in, traffic.bytes_out),
            (traffic.packets_in_per_second, traffic.packets_out_per_second),
            (traffic.bytes_in_per_second, traffic.bytes_out_per_second),
            strict=True,
        ):
            labelled = (*sample.labels, direction)
            packets.add_metric(labelled, count)
            octets.add_metric(labelled, octet)
            packet_rate.add_metric(labelled, packet_per_second)
            byte_rate.add_metric(labelled, byte_per_second)
    yield from (connections, packets, octets, connection_rate, packet_rate, byte_rate)
