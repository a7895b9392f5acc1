"""The agent's Prometheus metrics, in a registry of its own (several agents can live in one test process).

Names are documented in docs/agent.md. ipvsctl's own start with ``ipvsctl_``; those kube-proxy also exports
(same name, type, labels and buckets, same meaning) start with ``kubeproxy_``, so that dashboards, alerts and
integrations built for kube-proxy work unchanged. Both are fed from the same observations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

from ipvsctl.agent.httpserver import DROP_REASONS
from ipvsctl.model import Operation
from ipvsctl.report import op_name

__all__ = ["CHANGE_KINDS", "ERROR_SOURCES", "KUBE_PROXY_SYNC_BUCKETS", "AgentMetrics", "KubeProxyMetrics"]

# Where an error counted in ipvsctl_errors_total came from.
ERROR_SOURCES = (
    "backend",
    "operation",
    "watch",
    "object",
    "translation",
    "sync",
    "event",
    "health_check",
    "traffic",
)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
# kube-proxy's network_programming_duration_seconds buckets: 0.25 and 0.5, every second to 59, every 5 s to
# 115, every 30 s to 300; the same edges make the two histograms comparable on one dashboard.
NETWORK_PROGRAMMING_BUCKETS = (
    0.25,
    0.5,
    *(float(s) for s in range(1, 60)),
    *(float(s) for s in range(60, 120, 5)),
    *(float(s) for s in range(120, 330, 30)),
)

# kube-proxy's sync_proxy_rules_duration_seconds buckets: ExponentialBuckets(0.001, 2, 15), 1 ms to 16.384 s.
KUBE_PROXY_SYNC_BUCKETS = tuple(0.001 * 2**i for i in range(15))
# The kinds of watched object whose changes kube-proxy counts (Service and EndpointSlice; a Node change is neither).
CHANGE_KINDS = ("Service", "EndpointSlice")
_CHANGE_NAMES = {"Service": "service", "EndpointSlice": "endpoint"}


class KubeProxyMetrics:
    """kube-proxy's sync metrics (pkg/proxy/metrics), as its dashboards and integrations read them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def sync_histogram(name: str, what: str) -> Histogram:
            return Histogram(name, what, registry=registry, buckets=KUBE_PROXY_SYNC_BUCKETS)

        self.sync_duration = sync_histogram(
            "kubeproxy_sync_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds (every sync)."
        )
        self.sync_full_duration = sync_histogram(
            "kubeproxy_sync_full_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds for full resyncs."
        )
        self.sync_partial_duration = sync_histogram(
            "kubeproxy_sync_partial_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for partial (incremental) syncs.",
        )
        self.last_sync = Gauge(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "The last time proxy rules were successfully synced (Unix seconds).",
            registry=registry,
        )
        self.last_queued = Gauge(
            "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
            "The last time a sync of proxy rules was queued (Unix seconds).",
            registry=registry,
        )
        self.changes_pending = {
            kind: Gauge(
                f"kubeproxy_sync_proxy_rules_{name}_changes_pending",
                f"Pending proxy rules {name} changes (Services with a {kind} change not yet taken by a sync).",
                registry=registry,
            )
            for kind, name in _CHANGE_NAMES.items()
        }
        self.changes = {
            kind: Counter(
                f"kubeproxy_sync_proxy_rules_{name}_changes_total",
                f"Cumulative proxy rules {name} changes (per Service a {kind} change affects).",
                registry=registry,
            )
            for kind, name in _CHANGE_NAMES.items()
        }
        self.no_local_endpoints = Gauge(
            "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
            "Number of Services with a Local traffic policy and no endpoints, by traffic_policy (internal, external).",
            ["traffic_policy"],
            registry=registry,
        )
        self.network_programming = Histogram(
            "kubeproxy_network_programming_duration_seconds",
            "In Cluster Network Programming Latency in seconds.",
            registry=registry,
            buckets=NETWORK_PROGRAMMING_BUCKETS,
        )
        for policy in ("internal", "external"):
            self.no_local_endpoints.labels(traffic_policy=policy)


class AgentMetrics:
    """Every metric the agent exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        registry = self.registry
        self.sync_duration = Histogram(
            "ipvsctl_sync_duration_seconds",
            "Duration of one sync (read, plan, apply, bind), by kind (full or incremental).",
            ["kind"],
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.syncs = Counter(
            "ipvsctl_syncs_total",
            "Syncs run, by kind and result (ok or failed).",
            ["kind", "result"],
            registry=registry,
        )
        self.operations = Counter(
            "ipvsctl_operations_applied_total", "IPVS operations applied, by kind.", ["op"], registry=registry
        )
        self.errors = Counter(
            "ipvsctl_errors_total",
            "Errors, by source: " + ", ".join(ERROR_SOURCES) + ".",
            ["source"],
            registry=registry,
        )
        self.virtual_services = Gauge(
            "ipvsctl_owned_virtual_services", "Virtual services the agent programs.", registry=registry
        )
        self.real_servers = Gauge("ipvsctl_owned_real_servers", "Real servers the agent programs.", registry=registry)
        self.services = Gauge(
            "ipvsctl_services",
            "Kubernetes Services by state (programmed, rejected, skipped).",
            ["state"],
            registry=registry,
        )
        self.event_latency = Histogram(
            "ipvsctl_event_to_kernel_seconds",
            "From a watch event's arrival to its change being in the kernel table.",
            registry=registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.network_programming = Histogram(
            "ipvsctl_network_programming_duration_seconds",
            "From an EndpointSlice's endpoints.kubernetes.io/last-change-trigger-time (the Kubernetes network "
            "programming SLI's start) to the change being in the kernel table.",
            registry=registry,
            buckets=NETWORK_PROGRAMMING_BUCKETS,
        )
        self.no_local_endpoints = Gauge(
            "ipvsctl_services_without_local_endpoints",
            "externalTrafficPolicy Local Services with external VIPs and no usable endpoint on this node.",
            registry=registry,
        )
        self.affinity_switches_held = Gauge(
            "ipvsctl_affinity_switches_held",
            "Services whose cluster-scope tables hold an endpoint change until its moment (--affinity-switch-delay).",
            registry=registry,
        )
        self.drain_queue = Gauge(
            "ipvsctl_drain_queue_size", "Real servers draining (weight 0, waiting for connections).", registry=registry
        )
        self.affinity_digests = Gauge(
            "ipvsctl_affinity_table_digest_info",
            "1 per cluster-scope virtual service, labelled with a digest of its mh table's inputs: nodes that show "
            "different digests for one virtual service may send a client to different pods.",
            ["namespace", "service", "virtual_service", "digest"],
            registry=registry,
        )
        self.watch_restarts = Counter(
            "ipvsctl_watch_restarts_total",
            "Watch restarts by resource and reason (expired, error, closed).",
            ["resource", "reason"],
            registry=registry,
        )
        self.health_check_servers = Gauge(
            "ipvsctl_health_check_servers", "healthCheckNodePort servers listening.", registry=registry
        )
        self.http_dropped = Counter(
            "ipvsctl_http_connections_dropped_total",
            "Connections to the agent's HTTP servers (probes, metrics, healthCheckNodePorts) ended unanswered, "
            "by listener (agent or health_check) and reason: " + ", ".join(DROP_REASONS) + ".",
            ["listener", "reason"],
            registry=registry,
        )
        self.netfilter_elements = Gauge(
            "ipvsctl_netfilter_elements",
            "Elements the agent's nftables table holds (VIP filter, masquerade, source ranges, hairpin).",
            registry=registry,
        )
        self.netfilter_changes = Counter(
            "ipvsctl_netfilter_element_changes_total",
            "Elements of the nftables table added or deleted, by op (add, delete).",
            ["op"],
            registry=registry,
        )
        self.netfilter_rewrites = Counter(
            "ipvsctl_netfilter_table_rewrites_total",
            "Times the whole nftables table was written (at start, and after it was found changed).",
            registry=registry,
        )
        self.ready = Gauge("ipvsctl_ready", "1 when /readyz answers ready.", registry=registry)
        self.last_sync = Gauge(
            "ipvsctl_last_successful_sync_timestamp_seconds",
            "Unix time of the last successful sync.",
            registry=registry,
        )
        self.kube_proxy = KubeProxyMetrics(registry)
        for source in ERROR_SOURCES:
            self.errors.labels(source=source)
        for op in ("add", "delete"):
            self.netfilter_changes.labels(op=op)
        for listener in ("agent", "health_check"):
            for reason in DROP_REASONS:
                self.http_dropped.labels(listener=listener, reason=reason)

    def observe_sync(self, *, kind: str, seconds: float) -> None:
        """One sync of ``kind`` (full or incremental) took ``seconds``, whatever its result."""
        self.sync_duration.labels(kind=kind).observe(seconds)
        self.kube_proxy.sync_duration.observe(seconds)
        full = kind == "full"
        (self.kube_proxy.sync_full_duration if full else self.kube_proxy.sync_partial_duration).observe(seconds)

    def synced(self, *, at: float) -> None:
        """A sync succeeded at Unix time ``at``."""
        self.last_sync.set(at)
        self.kube_proxy.last_sync.set(at)

    def programmed(self, seconds: float) -> None:
        """One network-programming latency sample (trigger time to the kernel table)."""
        self.network_programming.observe(seconds)
        self.kube_proxy.network_programming.observe(seconds)

    def changes_queued(self, *, kind: str, services: int, pending: int, at: float) -> None:
        """A watched object of ``kind`` changed ``services`` Services; ``pending`` now wait for a sync."""
        if kind not in CHANGE_KINDS or not services:
            return
        self.kube_proxy.changes[kind].inc(services)
        self.kube_proxy.changes_pending[kind].set(pending)
        self.kube_proxy.last_queued.set(at)

    def changes_taken(self) -> None:
        """A sync took every pending change."""
        for gauge in self.kube_proxy.changes_pending.values():
            gauge.set(0)

    def without_local_endpoints(self, *, internal: int, external: int) -> None:
        """How many Services have a Local traffic policy and no local endpoint, by policy."""
        self.no_local_endpoints.set(external)
        self.kube_proxy.no_local_endpoints.labels(traffic_policy="internal").set(internal)
        self.kube_proxy.no_local_endpoints.labels(traffic_policy="external").set(external)

    def count_operations(self, operations: Iterable[Operation]) -> None:
        """Count applied operations by their stable kind name."""
        for operation in operations:
            self.operations.labels(op=op_name(operation)).inc()

    def error(self, source: str) -> None:
        """Count one error of ``source`` (one of ERROR_SOURCES)."""
        self.errors.labels(source=source).inc()

    def dropped(self, listener: str) -> Callable[[str], None]:
        """What a listener of that kind calls for each connection it ends unanswered (see httpserver)."""
        return lambda reason: self.http_dropped.labels(listener=listener, reason=reason).inc()

    def exposition(self) -> bytes:
        """The text exposition format of every metric."""
        return generate_latest(self.registry)
