"""Workload 4 of issue 6: the pure core on the host, and the memory of an agent holding a large cluster.

For each cluster shape: build the objects (as views, and as raw dicts parsed by ``kube.parse``),
translate them for node worker1, plan from an empty table (cold) and against an equal table built
separately (no-op). Then, in a fresh subprocess per measurement, the peak RSS (VmHWM) of an agent that
lists the cluster (raw dicts → handlers → cache) and translates it into its desired state.

Targets (10,000 Services x 10 endpoints): translate + plan < 1 s; RSS < 250 MB.
Run: ``.venv/bin/python -m bench.core`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bench.cluster import (
    NODE,
    NODE_IP,
    Cluster,
    make_agent,
    median,
    node_object,
    print_table,
    quiet_logs,
    timed,
    write_results,
)
from ipvsctl.kube.parse import parse_endpoint_slice, parse_service
from ipvsctl.kube.views import EndpointSliceView, ServiceView
from ipvsctl.model import Table
from ipvsctl.plan import Ownership, plan
from ipvsctl.translate import NodeContext, Policy, translate

T = TypeVar("T")
JSON = dict[str, Any]

TARGET_SECONDS = 1.0
TARGET_RSS_MB = 250.0
SHAPES = (Cluster(10_000, 10), Cluster(1_000, 100), Cluster(10_000, 3))
QUICK_SHAPES = (Cluster(1_000, 10),)
NODE_CONTEXT = NodeContext(NODE, (NODE_IP,))
OWNERSHIP = Ownership(node_addresses=frozenset({NODE_IP}))


def best_of(repeat: int, action: Callable[[], T]) -> tuple[float, T]:
    """The median time of ``repeat`` runs of ``action``, and its last result (garbage collected in between)."""
    times: list[float] = []
    result: T | None = None
    for _ in range(repeat):
        result = None  # the previous run's result would make this run's collections walk twice the heap
        gc.collect()
        start = time.perf_counter()
        result = action()
        times.append(timed(start))
    assert result is not None
    return median(times), result


def _time_parse(
    raw_services: list[JSON],
    raw_slices: list[JSON],
    *,
    services: list[ServiceView],
    slices: list[EndpointSliceView],
    repeat: int,
) -> float:
    """Seconds to parse the raw objects (checked equal to the views built directly)."""

    def parse_all() -> tuple[list[ServiceView], list[EndpointSliceView | None]]:
        return [parse_service(obj) for obj in raw_services], [parse_endpoint_slice(obj) for obj in raw_slices]

    parse_s, (parsed_services, parsed_slices) = best_of(repeat, parse_all)
    assert parsed_services == services, "kube.parse and the direct views disagree"
    assert parsed_slices == slices, "kube.parse and the direct views disagree"
    return parse_s


def measure_core(shape: Cluster, *, repeat: int) -> dict[str, object]:
    """Seconds of each step of the pure core for one cluster shape."""
    start = time.perf_counter()
    services, slices = shape.views()
    build_views = timed(start)
    start = time.perf_counter()
    raw_services, raw_slices = shape.raw()
    build_raw = timed(start)
    parse_s = _time_parse(raw_services, raw_slices, services=services, slices=slices, repeat=repeat)
    del raw_services, raw_slices

    policy = Policy()
    translate_s, translation = best_of(repeat, lambda: translate(services, slices, node=NODE_CONTEXT, policy=policy))
    desired = translation.table
    reals = sum(len(vs.reals) for vs in desired)
    assert len(desired.services) == shape.services, (len(desired.services), shape.services)
    assert reals == shape.services * shape.endpoints, reals
    empty = Table({})
    cold_s, cold = best_of(repeat, lambda: plan(empty, desired, ownership=OWNERSHIP))
    assert len(cold) == shape.services * (1 + shape.endpoints)
    # An equal table made of other objects, as a read of the kernel would give.
    current = translate(services, slices, node=NODE_CONTEXT, policy=policy).table
    noop_s, noop = best_of(repeat, lambda: plan(current, desired, ownership=OWNERSHIP))
    assert noop == ()
    return {
        "shape": shape.label,
        "services": shape.services,
        "endpoints": shape.services * shape.endpoints,
        "build_views_s": build_views,
        "build_raw_s": build_raw,
        "parse_s": parse_s,
        "translate_s": translate_s,
        "plan_cold_s": cold_s,
        "plan_noop_s": noop_s,
        "translate_plan_cold_s": translate_s + cold_s,
        "translate_plan_noop_s": translate_s + noop_s,
        "operations_cold": len(cold),
    }


# --- peak RSS, each in a fresh process -----------------------------------------------------------------


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


async def _hold(shape: Cluster, *, mode: str) -> dict[str, object]:
    """In this process: list the cluster into an agent, translate it all; memory before and after."""
    quiet_logs()
    agent = make_agent()
    gc.collect()
    base_kb = _status_kb("VmRSS")
    handlers = agent.handlers
    if mode == "list":  # as the watchers do: the whole list (all pages) in memory, then parsed
        raw_services, raw_slices = shape.raw()
        handlers["Service"].replace(raw_services)
        handlers["EndpointSlice"].replace(raw_slices)
        del raw_services, raw_slices
    else:  # views straight into the cache: what the agent keeps, without the list's transient dicts
        services, slices = shape.views()
        for service in services:
            agent.cache.put_service(service)
        for endpoint_slice in slices:
            agent.cache.put_slice(endpoint_slice)
        del services, slices
    handlers["Node"].replace([node_object()])
    await agent.syncer.translate(list(agent.cache.services))
    assert len(agent.syncer.desired.services) == shape.services
    gc.collect()
    return {
        "mode": mode,
        "baseline_rss_mb": base_kb / 1024,
        "holding_rss_mb": _status_kb("VmRSS") / 1024,
        "peak_rss_mb": _status_kb("VmHWM") / 1024,
    }


def measure_rss(shape: Cluster, *, mode: str) -> dict[str, object]:
    """Run ``_hold`` in a fresh interpreter (so nothing else has touched its memory)."""
    command = [sys.executable, "-m", "bench.core", "--rss-child", str(shape.services), str(shape.endpoints), mode]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return {"shape": shape.label, **result}


def main() -> None:
    """Measure, print the tables, write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small shape, one run each (a smoke test)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (the median is reported)")
    parser.add_argument("--rss-child", nargs=3, metavar=("SERVICES", "ENDPOINTS", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        services, endpoints, mode = args.rss_child
        print(json.dumps(asyncio.run(_hold(Cluster(int(services), int(endpoints)), mode=mode))))
        return
    shapes = QUICK_SHAPES if args.quick else SHAPES
    repeat = 1 if args.quick else args.repeat
    core = [measure_core(shape, repeat=repeat) for shape in shapes]
    print_table(
        f"Pure core (median of {repeat}; seconds)",
        [
            "shape",
            "endpoints",
            "parse",
            "translate",
            "plan cold",
            "plan no-op",
            "transl+plan cold",
            "transl+plan no-op",
        ],
        [
            [
                r["shape"],
                r["endpoints"],
                *(f"{r[k]:.3f}" for k in ("parse_s", "translate_s", "plan_cold_s", "plan_noop_s")),
                f"{r['translate_plan_cold_s']:.3f}",
                f"{r['translate_plan_noop_s']:.3f}",
            ]
            for r in core
        ],
    )
    rss = [measure_rss(shape, mode=mode) for shape in shapes[:1] for mode in ("views", "list")]
    print_table(
        "Agent memory, fresh process per row (MB; peak = VmHWM)",
        ["shape", "fed as", "baseline", "holding", "peak"],
        [
            [r["shape"], r["mode"], *(f"{r[k]:.1f}" for k in ("baseline_rss_mb", "holding_rss_mb", "peak_rss_mb"))]
            for r in rss
        ],
    )
    main_shape = core[0]
    verdict = {
        "translate_plan_cold_s": main_shape["translate_plan_cold_s"],
        "translate_plan_target_s": TARGET_SECONDS,
        "peak_rss_mb": max(float(str(r["peak_rss_mb"])) for r in rss),
        "rss_target_mb": TARGET_RSS_MB,
    }
    print(f"\nTargets ({main_shape['shape']}): {json.dumps(verdict)}")
    path = write_results("core", {"quick": args.quick, "repeat": repeat, "core": core, "rss": rss, "verdict": verdict})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
