"""The node agent put together: cache, translation, sync loop, Events, health checks, metrics — and the API.

``NodeAgent`` wires the parts that need no apiserver (tests drive them through ``handlers``);
``NodeAgent.run`` adds the watchers (Services, EndpointSlices v1 or v1beta1, this Node) and the
HTTP endpoints, and runs every task under a ``Supervisor`` until ``stop`` is set. Stopping
leaves the kernel table as it is: traffic keeps flowing while the agent restarts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from kubernetes_asyncio.client.api_client import ApiClient

from ipvsctl.agent.cache import ClusterCache, Invalid, ObjectHandler, Subject, all_listed
from ipvsctl.agent.clock import Clock, MonotonicClock
from ipvsctl.agent.config import AgentConfig
from ipvsctl.agent.events import INVALID_OBJECT, EventRecorder, EventSink
from ipvsctl.agent.healthcheck import HealthCheckServers
from ipvsctl.agent.http import HealthReport, serve_endpoints
from ipvsctl.agent.httpserver import raise_open_files_limit
from ipvsctl.agent.metrics import AgentMetrics
from ipvsctl.agent.runner import SyncRunner
from ipvsctl.agent.status import AgentStatus
from ipvsctl.agent.supervisor import Supervisor
from ipvsctl.agent.syncer import Syncer
from ipvsctl.agent.traffic import TrafficMetrics
from ipvsctl.agent.watch import Watcher
from ipvsctl.backend.base import Backend
from ipvsctl.backend.nft.base import NetfilterTable
from ipvsctl.kube.client import NODES, PROXY_LABEL_SELECTOR, SERVICES, Resource, slice_resource
from ipvsctl.kube.views import ObjectRef
from ipvsctl.reconcile import DrainTracker

__all__ = ["KINDS", "NodeAgent"]

KINDS = ("Service", "EndpointSlice", "Node")
OBJECT = "object"  # the Event topic of malformed objects


class NodeAgent:
    """One node's agent: everything between the watch events and the backend."""

    def __init__(
        self,
        *,
        config: AgentConfig,
        backend: Backend,
        event_sink: EventSink,
        netfilter: NetfilterTable | None = None,
        clock: Clock | None = None,
        freeze_heap: bool = False,
    ) -> None:
        self.config = config
        self.backend = backend
        self.clock: Clock = clock or MonotonicClock()
        self.metrics = AgentMetrics()
        self.status = AgentStatus(clock=self.clock, stall_after=max(120.0, 4 * config.resync_interval))
        self.cache = ClusterCache(node_name=config.node_name, triggers_since=self.clock.wall().timestamp())
        self.recorder = EventRecorder(
            sink=event_sink, node_name=config.node_name, clock=self.clock, on_error=lambda: self.metrics.error("event")
        )
        self.health_checks = HealthCheckServers(
            address=config.health_check_address,
            on_error=lambda: self.metrics.error("health_check"),
            reserved_ports={config.health_bind.port, config.metrics_bind.port},
            on_drop=self.metrics.dropped("health_check"),
        )
        self.drains = DrainTracker(max_drain_seconds=config.max_drain_seconds, clock=self.clock.now)
        self.syncer = Syncer(
            cache=self.cache,
            backend=backend,
            policy=config.policy,
            drains=self.drains,
            recorder=self.recorder,
            health_checks=self.health_checks,
            metrics=self.metrics,
            netfilter=netfilter,
            cluster_families=config.netfilter.cluster_families,
            switch_delay=config.affinity_switch_delay,
            wall=lambda: self.clock.wall().timestamp(),
        )
        self.runner = SyncRunner(
            syncer=self.syncer,
            clock=self.clock,
            status=self.status,
            metrics=self.metrics,
            listed=lambda: all_listed(self.handlers.values()),
            min_interval=config.min_sync_interval,
            resync_interval=config.resync_interval,
            freeze_heap=freeze_heap,
        )
        self.handlers = {
            kind: ObjectHandler(
                kind=kind,
                cache=self.cache,
                on_change=self._on_change(kind),
                on_invalid=self._invalid,
                on_valid=self._valid,
            )
            for kind in KINDS
        }
        self.traffic = TrafficMetrics(
            registry=self.metrics.registry,
            backend=backend,
            clock=self.clock,
            owner_of=self.syncer.vip_owner,
            on_error=lambda: self.metrics.error("traffic"),
            mode=config.traffic_metrics,
            min_age=config.traffic_min_age,
            max_series=config.traffic_max_series,
        )
        self.ports: dict[str, int] = {}  # bound HTTP ports by path, once serving
        self.watch_loops: list[Watcher] = []  # the running list + watch loops, once running (read-only views)
        self._log = structlog.get_logger("ipvsctl.agent")

    def probes(self) -> dict[str, Callable[[], HealthReport]]:
        """The probe answers by path: /livez (the loops), /healthz (and the Node not leaving), /readyz."""
        return {
            "/livez": self.status.liveness,
            "/healthz": lambda: self.status.health(leaving="" if self.cache.node is None else self.cache.node.leaving),
            "/readyz": self.status.readiness,
        }

    def _on_change(self, kind: str) -> Callable[[set[ObjectRef]], None]:
        return lambda refs: self.runner.mark(refs, kind=kind)

    def _invalid(self, invalid: Invalid) -> None:
        self.metrics.error("object")
        self.recorder.set(invalid.subject, topic=OBJECT, problems=[(INVALID_OBJECT, str(invalid.error))])

    def _valid(self, subject: Subject) -> None:
        self.recorder.set(subject, topic=OBJECT, problems=())

    def _connection(self, name: str, up: bool) -> None:
        was = self.status.connected.get(name)
        self.status.connected[name] = up
        if was != up:
            (self._log.info if up else self._log.warning)("api_connected" if up else "api_disconnected", watch=name)
        self.metrics.ready.set(1 if self.status.ready else 0)

    def watchers(self, api: ApiClient) -> list[Watcher]:
        """The three list + watch loops (their connections start out down)."""

        async def services() -> Resource:
            return SERVICES

        async def nodes() -> Resource:
            return NODES

        async def slices() -> Resource:
            return await slice_resource(api)

        # Services and slices that name another proxy, and headless Services' slices, are dropped by the server.
        plan = [
            ("services", services, "Service", None, PROXY_LABEL_SELECTOR),
            ("endpointslices", slices, "EndpointSlice", None, PROXY_LABEL_SELECTOR),
            ("node", nodes, "Node", f"metadata.name={self.config.node_name}", None),
        ]
        for name, *_ in plan:
            self.status.connected.setdefault(name, False)
        return [
            Watcher(
                name=name,
                api=api,
                resource=resource,
                handler=self.handlers[kind],
                clock=self.clock,
                metrics=self.metrics,
                on_connection=self._connection,
                field_selector=fields,
                label_selector=labels,
            )
            for name, resource, kind, fields, labels in plan
        ]

    async def run(self, api: ApiClient, *, stop: asyncio.Event) -> None:
        """Watch, sync, serve probes and metrics until ``stop`` is set; TaskFailedError if a task dies."""
        config = self.config
        supervisor = Supervisor()
        open_files = raise_open_files_limit()
        self._log.info(
            "agent_started",
            node=config.node_name,
            min_sync_interval_s=config.min_sync_interval,
            resync_interval_s=config.resync_interval,
            open_files=open_files,
        )
        async with serve_endpoints(
            health=config.health_bind,
            metrics_bind=config.metrics_bind,
            probes=self.probes(),
            metrics=self.metrics,
            before_scrape=self.traffic.refresh,
        ) as ports:
            self.ports = ports
            try:
                self.watch_loops = self.watchers(api)
                for watcher in self.watch_loops:
                    supervisor.spawn(f"watch-{watcher.name}", watcher.run())
                supervisor.spawn("sync", self.runner.run())
                supervisor.spawn("events", self.recorder.run())
                await supervisor.run_until(stop)
            finally:
                await supervisor.cancel_all()
                await self.health_checks.close()
                self._log.info("agent_stopped", node=config.node_name, syncs=self.runner.sync_count)
