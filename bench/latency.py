"""Workload 3 of issue 6: one EndpointSlice change with N Services present, from the agent's entry to the table.

The change enters where the EndpointSlice watcher hands it over (``ObjectHandler.upsert`` of a raw
object: parse, cache, mark the Service) and is done when ``SyncRunner.run_once`` has translated it and
the memory backend holds it (read → plan → apply → bind, ``reconcile.sync``). The runner's scheduling
is left out: after a quiet spell it syncs a change at once. The changes run back to back after the
initial full sync, which collects and freezes the heap as the agent does; nothing forces a garbage
collection between them (a full ``gc.collect`` before each change would walk the whole heap and leave
the CPU caches cold, which no running agent does). Each change replaces one endpoint of a
Service chosen across the whole cluster; a read of its key checks the backend holds the new real server.

The time is split: upsert (parse + cache), translate (``Syncer.translate``), and within
``Syncer.apply``: backend read, drain bookkeeping, backend apply, bind, and the rest (plan, ownership,
gauges); runner_rest is what ``run_once`` adds (metrics, logging).
Targets: agent time at N = 10,000 within 1.2x of N = 100, and under 5 ms.
Run: ``.venv/bin/python -m bench.latency`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence

from bench.cluster import (
    NODE_IP,
    Cluster,
    cluster_ip,
    make_agent,
    median,
    node_object,
    percentile,
    pod_ip,
    print_table,
    quiet_logs,
    raw_slice,
    timed,
    write_results,
)
from ipvsctl.agent.node import NodeAgent
from ipvsctl.agent.syncer import Syncer, SyncOutcome
from ipvsctl.backend.base import ApplyReport, KernelState
from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.kube.views import ObjectRef
from ipvsctl.model import Operation, Protocol, RealServer, ServiceKey, Table
from ipvsctl.plan import Ownership
from ipvsctl.reconcile import DrainTracker

TARGET_RATIO = 1.2
TARGET_MS = 5.0
PARTS = ("upsert", "translate", "read", "drains", "backend_apply", "bind", "apply_rest", "runner_rest")

Timings = defaultdict[str, float]


class TimedBackend(MemoryBackend):
    """The memory backend, adding the seconds each call takes to ``timings``."""

    def __init__(self, timings: Timings) -> None:
        super().__init__()
        self.timings = timings

    async def read(self, *, only: Collection[ServiceKey] | None = None) -> KernelState:
        start = time.perf_counter()
        try:
            return await super().read(only=only)
        finally:
            self.timings["read"] += timed(start)

    async def apply(self, operations: Sequence[Operation]) -> ApplyReport:
        start = time.perf_counter()
        try:
            return await super().apply(operations)
        finally:
            self.timings["backend_apply"] += timed(start)

    async def bind_addresses(self, addresses: Collection[str], *, within: Collection[str] | None = None) -> None:
        start = time.perf_counter()
        try:
            await super().bind_addresses(addresses, within=within)
        finally:
            self.timings["bind"] += timed(start)


class TimedDrains(DrainTracker):
    """The drain tracker, timing ``observe``."""

    timings: Timings

    def observe(
        self, *, current: Table, desired: Table, ownership: Ownership, only: Collection[ServiceKey] | None = None
    ) -> None:
        start = time.perf_counter()
        try:
            DrainTracker.observe(self, current=current, desired=desired, ownership=ownership, only=only)
        finally:
            self.timings["drains"] += timed(start)


class TimedSyncer(Syncer):
    """The syncer, timing ``translate`` and ``apply``."""

    timings: Timings

    async def translate(self, refs: Iterable[ObjectRef]) -> None:
        start = time.perf_counter()
        try:
            await super().translate(refs)
        finally:
            self.timings["translate"] += timed(start)

    async def apply(self, *, full: bool) -> SyncOutcome:
        start = time.perf_counter()
        try:
            return await super().apply(full=full)
        finally:
            self.timings["apply"] += timed(start)


def timed_agent(timings: Timings) -> tuple[NodeAgent, TimedBackend]:
    """An agent whose backend, drain tracker and syncer add their time to ``timings``."""
    backend = TimedBackend(timings)
    agent = make_agent(backend)
    drains = TimedDrains(max_drain_seconds=agent.drains.max_drain_seconds, clock=agent.drains.clock)
    drains.timings = timings
    syncer = TimedSyncer(
        cache=agent.cache,
        backend=backend,
        policy=agent.config.policy,
        drains=drains,
        recorder=agent.recorder,
        health_checks=agent.health_checks,
        metrics=agent.metrics,
    )
    syncer.timings = timings
    agent.drains = drains
    agent.syncer = agent.runner.syncer = syncer
    return agent, backend


async def measure(shape: Cluster, *, changes: int, warmup: int, seed: int) -> dict[str, object]:
    """Per-change agent time for ``changes`` endpoint changes with ``shape`` listed and synced."""
    quiet_logs()
    timings: Timings = defaultdict(float)
    agent, backend = timed_agent(timings)
    raw_services, raw_slices = shape.raw()
    agent.handlers["Service"].replace(raw_services)
    agent.handlers["EndpointSlice"].replace(raw_slices)
    agent.handlers["Node"].replace([node_object()])
    del raw_services, raw_slices
    gc.unfreeze()
    start = time.perf_counter()
    gc.collect()
    unfrozen_gc_s = timed(start)  # what a full collection costs an agent that does not freeze its heap
    start = time.perf_counter()
    first = await agent.runner.run_once(full=True)  # collects and freezes the heap, as the agent does
    initial_s = timed(start)
    assert first.ok
    assert gc.get_freeze_count() > 0
    assert len(backend.table.services) == shape.services
    rng = random.Random(seed)
    fresh_pod = shape.services * shape.endpoints  # Pods above every listed one
    samples: list[dict[str, float]] = []
    for n in range(warmup + changes):
        index = rng.randrange(shape.services)
        first_pod = index * shape.endpoints + 1  # drop the slice's first Pod, keep the rest, add a new one
        changed = raw_slice(index, endpoints=shape.endpoints, first_pod=first_pod)
        changed["endpoints"][-1]["addresses"] = [pod_ip(fresh_pod + n)]
        timings.clear()
        start = time.perf_counter()
        agent.handlers["EndpointSlice"].upsert(changed)
        timings["upsert"] = timed(start)
        outcome = await agent.runner.run_once(full=False)
        total = timed(start)
        assert outcome.ok
        assert outcome.operations == 2, outcome  # one real server added, one deleted (no connections: no drain)
        parts = {name: timings[name] for name in PARTS}
        parts["apply_rest"] = timings["apply"] - sum(timings[k] for k in ("read", "drains", "backend_apply", "bind"))
        parts["runner_rest"] = total - timings["upsert"] - timings["translate"] - timings["apply"]
        parts["total"] = total
        # Checked through a read of the one key: the backend's whole-table copy (backend.table) would walk
        # every entry between two changes and evict them from the CPU caches, which no agent does.
        key = ServiceKey(Protocol.TCP, cluster_ip(index), 80)
        assert RealServer(pod_ip(fresh_pod + n), 8080) in (await backend.read(only=[key])).table.services[key].reals
        if n >= warmup:
            samples.append(parts)
    summary = {
        name: {
            "median_ms": median([s[name] for s in samples]) * 1000,
            "p90_ms": percentile([s[name] for s in samples], 0.9) * 1000,
            "max_ms": max(s[name] for s in samples) * 1000,
        }
        for name in (*PARTS, "total")
    }
    return {
        "shape": shape.label,
        "services": shape.services,
        "changes": changes,
        "initial_full_sync_s": initial_s,
        "unfrozen_full_gc_ms": unfrozen_gc_s * 1000,
        "node_ip": NODE_IP,
        "parts": summary,
    }


def main() -> None:
    """Measure at each N, print the table, write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer changes, N = 100 and 1,000 (a smoke test)")
    parser.add_argument("--changes", type=int, default=50, help="measured changes per N")
    parser.add_argument("--endpoints", type=int, default=3, help="endpoints per Service")
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    sizes = (100, 1_000) if args.quick else (100, 10_000)
    changes = 10 if args.quick else args.changes
    runs = [asyncio.run(measure(Cluster(n, args.endpoints), changes=changes, warmup=5, seed=args.seed)) for n in sizes]
    rows = []
    for run in runs:
        parts = run["parts"]
        assert isinstance(parts, dict)
        rows.append(
            [
                run["shape"],
                *(f"{parts[name]['median_ms']:.3f}" for name in (*PARTS, "total")),
                f"{parts['total']['p90_ms']:.3f}",
                f"{parts['total']['max_ms']:.3f}",
                f"{run['unfrozen_full_gc_ms']:.1f}",
            ]
        )
    print_table(
        f"One EndpointSlice change, agent time (ms, median of {changes}; memory backend)",
        ["shape", *PARTS, "total", "total p90", "total max", "full gc if unfrozen"],
        rows,
    )
    small, large = (run["parts"] for run in (runs[0], runs[-1]))
    assert isinstance(small, dict)
    assert isinstance(large, dict)
    ratio = large["total"]["median_ms"] / small["total"]["median_ms"]
    without_read = [p["total"]["median_ms"] - p["read"]["median_ms"] for p in (small, large)]
    # What is left if the backend's read and bind cost O(changed): the agent's own time, drains included.
    own = [p["total"]["median_ms"] - sum(p[k]["median_ms"] for k in ("read", "bind")) for p in (small, large)]
    verdict = {
        "ratio": ratio,
        "ratio_target": TARGET_RATIO,
        "large_total_ms": large["total"]["median_ms"],
        "total_target_ms": TARGET_MS,
        "ratio_without_read": without_read[1] / without_read[0],
        "large_total_without_read_ms": without_read[1],
        "ratio_without_read_bind": own[1] / own[0],
        "large_total_without_read_bind_ms": own[1],
    }
    print(
        f"\nTargets ({runs[-1]['shape']} vs {runs[0]['shape']}): "
        + ", ".join(f"{k}={v:.3g}" for k, v in verdict.items())
    )
    path = write_results(
        "latency", {"quick": args.quick, "endpoints": args.endpoints, "runs": runs, "verdict": verdict}
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
