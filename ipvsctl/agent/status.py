"""Whether the agent is alive and ready, as its probes answer.

- Ready (``/readyz``): the first sync is done, the last sync succeeded, and every watch is
  connected to the apiserver. When the API is unreachable the table is kept as it is (fail
  static) and the agent reports not ready until the watches are back.
- Alive (``/livez``, the kubelet's liveness probe): the sync loop is not stuck: once started, a sync
  attempt has finished within ``stall_after`` seconds (a resync is due every ``--resync-interval``).
- Healthy (``/healthz``, as kube-proxy's, what cloud load balancers probe): alive, and the Node is not on
  its way out (no deletionTimestamp, no ``ToBeDeletedByClusterAutoscaler`` taint), so that a load balancer
  drains a node before it goes. Restarting the agent would not help a node that is leaving: the kubelet
  probes ``/livez``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ipvsctl.agent.clock import Clock
from ipvsctl.agent.http import HealthReport

__all__ = ["AgentStatus"]


@dataclass(slots=True)
class AgentStatus:
    """Flags the watchers and the sync loop set; the probes read them."""

    clock: Clock
    stall_after: float = 120.0
    initial_sync_done: bool = False
    last_sync_ok: bool = False
    last_sync_end: float | None = None
    sync_started: float | None = None  # set while a sync runs
    connected: dict[str, bool] = field(default_factory=dict)

    @property
    def api_connected(self) -> bool:
        """Every watch has an open stream (or a fresh list)."""
        return bool(self.connected) and all(self.connected.values())

    @property
    def ready(self) -> bool:
        """Initial sync done, last sync succeeded, API reachable."""
        return self.initial_sync_done and self.last_sync_ok and self.api_connected

    def readiness(self) -> HealthReport:
        """The ``/readyz`` answer."""
        return HealthReport(
            ok=self.ready,
            details={
                "ready": self.ready,
                "initialSync": self.initial_sync_done,
                "lastSyncOk": self.last_sync_ok,
                "apiConnected": self.api_connected,
                "watches": dict(sorted(self.connected.items())),
            },
        )

    def health(self, *, leaving: str) -> HealthReport:
        """The ``/healthz`` answer: alive, and the Node not ``leaving`` (why it is, or "")."""
        alive = self.liveness()
        return HealthReport(
            ok=alive.ok and not leaving,
            details={**alive.details, "nodeEligible": not leaving, **({"nodeLeaving": leaving} if leaving else {})},
        )

    def liveness(self) -> HealthReport:
        """The ``/livez`` answer: not alive when a sync has run, or none has ended, for ``stall_after``."""
        now = self.clock.now()
        since = self.sync_started if self.sync_started is not None else self.last_sync_end
        stalled = since is not None and now - since > self.stall_after
        return HealthReport(
            ok=not stalled,
            details={
                "alive": not stalled,
                "secondsSinceLastSync": None if self.last_sync_end is None else round(now - self.last_sync_end, 3),
            },
        )
