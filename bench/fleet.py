"""A fleet of agents on one kube-apiserver (issue 18): what N agents ask of the apiserver and etcd.

Starts the tests' real kube-apiserver + etcd (tests/apiserver/harness.py), writes S ClusterIP Services with one
EndpointSlice of E endpoints each (spread over N Node objects), then runs N agents (memory backend) in this one
process, each with its own HTTP client (its own connection pool), its own watches and its own cache: the
apiserver sees N independent clients. Measured from the apiserver's /metrics: the start storm, the fan-out of
one EndpointSlice change, a steady window, an apiserver restart, and RSS per agent. JSON to bench/results/.

    python -m bench.fleet --agents 100 --services 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import resource
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import structlog
from kubernetes_asyncio import client
from kubernetes_asyncio.client.api_client import ApiClient

from bench.fleet_stats import (
    SERVICE_CIDR,
    buckets,
    endpoint_address,
    held_split,
    latency_summary,
    metric_sum,
    per_hour,
)
from ipvsctl.agent.events import ApiEventSink
from ipvsctl.agent.node import NodeAgent
from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.kube.client import connect
from ipvsctl.model import DeleteRealServer, DeleteVirtualService, Protocol, ServiceKey
from tests.agent.fakes import config
from tests.apiserver.harness import ControlPlane, etcd_lists, find_binaries

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 25  # concurrent writes while populating
CHANGE_GAP = 1.1  # seconds between a change's arrival everywhere and the next: past --min-sync-interval (1 s)
KINDS = ("Service", "EndpointSlice")
STOP_WITHIN = 30.0  # seconds the agents have to stop once told
# IPv6 single stack from the documentation prefix: 10,000 ClusterIPs fit in no IPv4 documentation range.
SERVICE_CIDRS = str(SERVICE_CIDR)


@dataclass(slots=True)
class Member:
    """One agent of the fleet: its agent, its backend, and the task that runs it."""

    agent: NodeAgent
    backend: MemoryBackend
    task: asyncio.Task[None]


def rss_mb() -> float:
    """This process's resident set (MB), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def snapshot(plane: ControlPlane) -> dict[str, float]:
    """The apiserver's counters that the phases difference: requests by verb, CPU, RSS, etcd lists."""
    text = plane.metrics()
    values: dict[str, float] = {
        "cpu_seconds": metric_sum(text, name="process_cpu_seconds_total"),
        "rss_mb": metric_sum(text, name="process_resident_memory_bytes") / 2**20,
        "watch_events": metric_sum(text, name="apiserver_watch_events_total"),
    }
    for resource_name in ("services", "endpointslices", "nodes", "events"):
        for verb in ("LIST", "WATCH", "GET", "POST", "PATCH"):
            values[f"{verb.lower()}_{resource_name}"] = metric_sum(
                text, name="apiserver_request_total", labels={"verb": verb, "resource": resource_name}
            )
    for kind in KINDS:
        values[f"etcd_list_{kind}"] = float(etcd_lists(text, kind=kind))
    return values


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """after - before for every counter (RSS is a gauge: the after value)."""
    return {key: (after[key] if key == "rss_mb" else after[key] - before.get(key, 0.0)) for key in after}


async def until(condition: Callable[[], bool], *, within: float, what: str) -> float:
    """Poll every 5 ms until `condition` holds; the seconds it took (TimeoutError after `within`)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > within:
            raise TimeoutError(f"{what} not reached within {within} s")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


def slice_body(*, name: str, version: str, addresses: list[str], nodes: int, index: int) -> dict[str, Any]:
    """An IPv6 EndpointSlice of ready endpoints on port 8080, spread over the node names."""
    return {
        "apiVersion": version,
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv6",
        "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [address], "nodeName": f"node-{(index + k) % nodes}", "conditions": {"ready": True}}
            for k, address in enumerate(addresses)
        ],
    }


async def populate(api: ApiClient, *, plane: ControlPlane, nodes: int, services: int, endpoints: int) -> list[str]:
    """Create the Node objects, the Services and their slices in namespace `fleet`; the ClusterIPs in order."""
    core: Any = client.CoreV1Api(api)
    custom: Any = client.CustomObjectsApi(api)
    group, _, version = plane.slice_api_version.rpartition("/")
    await core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fleet"}})
    for start in range(0, nodes, BATCH):
        await asyncio.gather(
            *(
                core.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"node-{i}"}})
                for i in range(start, min(nodes, start + BATCH))
            )
        )
    ips: list[str] = []

    async def one(index: int) -> str:
        name = f"s{index}"
        body = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]},
        }
        created = await core.create_namespaced_service("fleet", body)
        addresses = [endpoint_address(index, slot=k) for k in range(endpoints)]
        slice_ = slice_body(name=name, version=plane.slice_api_version, addresses=addresses, nodes=nodes, index=index)
        await custom.create_namespaced_custom_object(group, version, "fleet", "endpointslices", slice_)
        return str(created.spec.cluster_ip)

    for start in range(0, services, BATCH):
        ips.extend(await asyncio.gather(*(one(i) for i in range(start, min(services, start + BATCH)))))
    return ips


@contextlib.asynccontextmanager
async def fleet(
    kubeconfig: Path, *, count: int, stop: asyncio.Event, settings: Mapping[str, float]
) -> AsyncIterator[list[Member]]:
    """`count` agents started at once, each with its own client; stopped when the block ends.

    `settings` are AgentConfig fields (min_sync_interval, resync_interval) other than the defaults.
    """
    async with contextlib.AsyncExitStack() as stack:
        members: list[Member] = []
        for index in range(count):
            api = await stack.enter_async_context(connect(str(kubeconfig)))
            backend = MemoryBackend()
            agent = NodeAgent(
                config=config(node_name=f"node-{index}", **settings), backend=backend, event_sink=ApiEventSink(api)
            )
            members.append(
                Member(agent, backend, asyncio.create_task(agent.run(api, stop=stop), name=f"agent-{index}"))
            )
        try:
            yield members
        finally:
            stop.set()
            tasks = [member.task for member in members]
            _, running = await asyncio.wait(tasks, timeout=STOP_WITHIN)
            if running:  # the bench must end: say so, and cancel them
                print(
                    f"{len(running)} of {count} agents still running {STOP_WITHIN} s after stop: cancelled", flush=True
                )
                for task in running:
                    task.cancel()
                await asyncio.wait(running, timeout=STOP_WITHIN)


def agent_lists(members: list[Member]) -> int:
    """The lists the agents' watchers made so far (each keeps its last 16: enough for a quiet window)."""
    return sum(len(watcher.lists) for member in members for watcher in member.agent.watch_loops)


def holds_all(member: Member, *, ips: list[str]) -> bool:
    """Whether this agent's table has a virtual service for every ClusterIP."""
    table = member.backend.table
    return all(table.get(ServiceKey(Protocol.TCP, ip, 80)) is not None for ip in ips)


def has_real(member: Member, *, key: ServiceKey, address: str) -> bool:
    """Whether this agent's table has `address` under `key`."""
    found = member.backend.table.get(key)
    return found is not None and any(real.address == address for real in found.reals)


@dataclass(frozen=True, slots=True)
class Change:
    """One fan-out change: seconds from the write to every agent holding it, to the write's answer, per agent."""

    seconds: float
    write_seconds: float
    done: list[float]  # per agent: seconds from the write to its table holding the new endpoint
    held: list[bool]  # per agent: its previous sync ended within --min-sync-interval before the write


async def one_change(
    patch: Callable[[], Awaitable[object]], *, members: list[Member], key: ServiceKey, address: str, within: float
) -> Change:
    """Write one change and poll (every 2 ms) until every agent's table holds `address` under `key`."""
    start = time.monotonic()
    held = [
        (end := member.agent.status.last_sync_end) is not None and start - end < member.agent.config.min_sync_interval
        for member in members
    ]
    await patch()
    written = time.monotonic() - start
    done: list[float | None] = [None] * len(members)
    waiting = list(range(len(members)))
    while waiting:
        now = time.monotonic() - start
        if now > within:
            raise TimeoutError(f"fan-out: {len(waiting)} agents without the change after {within} s")
        still: list[int] = []
        for i in waiting:
            if has_real(members[i], key=key, address=address):
                done[i] = now
            else:
                still.append(i)
        waiting = still
        if waiting:
            await asyncio.sleep(0.002)
    times = [seconds for seconds in done if seconds is not None]
    return Change(seconds=time.monotonic() - start, write_seconds=written, done=times, held=held)


async def fan_out(
    api: ApiClient,
    *,
    plane: ControlPlane,
    members: list[Member],
    ips: list[str],
    changes: int,
    nodes: int,
    within: float,
    slot: int,
) -> list[Change]:
    """Each of `changes` EndpointSlice writes and when every agent held its new endpoint."""
    custom: Any = client.CustomObjectsApi(api)
    group, _, version = plane.slice_api_version.rpartition("/")
    measured: list[Change] = []
    await asyncio.sleep(CHANGE_GAP)  # every agent has just synced its first table: past the interval first
    for change in range(changes):
        index = change % len(ips)
        address = endpoint_address(index, slot=slot)  # a new address per phase: a repeated patch would change nothing
        body = slice_body(
            name=f"s{index}",
            version=plane.slice_api_version,
            addresses=[endpoint_address(index, slot=0), address],
            nodes=nodes,
            index=index,
        )
        patch = partial(
            custom.patch_namespaced_custom_object,
            group,
            version,
            "fleet",
            "endpointslices",
            f"s{index}",
            {"endpoints": body["endpoints"]},
            _content_type="application/merge-patch+json",
        )
        key = ServiceKey(Protocol.TCP, ips[index], 80)
        measured.append(await one_change(patch, members=members, key=key, address=address, within=within))
        # A change within --min-sync-interval of an agent's last sync waits for it (batching, as kube-proxy's
        # minSyncPeriod): spaced past it, each change measures the fan-out of one change after a quiet spell.
        await asyncio.sleep(CHANGE_GAP)
    return measured


def fan_out_summary(measured: list[Change]) -> dict[str, Any]:
    """The fan-out figures of a phase: to every agent, to the write's answer, and split by the interval's hold."""
    splits = [held_split(change.done, held=change.held) for change in measured]
    return {
        **latency_summary([change.seconds for change in measured]),
        "write": latency_summary([change.write_seconds for change in measured]),
        "per_agent": latency_summary([seconds for change in measured for seconds in change.done]),
        "held_agents_per_change": [int(split["held"]) for split in splits],
        "slowest_not_held": latency_summary([split["slowest_other"] for split in splits]),
        "changes": [round(change.seconds, 4) for change in measured],
    }


async def restart(plane: ControlPlane, *, members: list[Member], ips: list[str], within: float) -> dict[str, Any]:
    """Restart the apiserver; when each watcher relisted (seconds from the restart), deletions, tables after."""
    seen = {(i, w.name): len(w.lists) for i, m in enumerate(members) for w in m.agent.watch_loops}
    marks = [len(m.backend.operations_applied) for m in members]
    tables = [m.backend.table for m in members]
    start = time.monotonic()
    await asyncio.to_thread(plane.restart_apiserver)
    restarted = time.monotonic() - start
    relisted: dict[tuple[int, str], float] = {}
    deadline = start + within
    while len(relisted) < len(seen) and time.monotonic() < deadline:
        for i, member in enumerate(members):
            for watcher in member.agent.watch_loops:
                if (i, watcher.name) not in relisted and len(watcher.lists) > seen[(i, watcher.name)]:
                    relisted[(i, watcher.name)] = time.monotonic() - start
        await asyncio.sleep(0.05)
    await asyncio.sleep(2.0)
    deletions = sum(
        isinstance(op, DeleteVirtualService | DeleteRealServer)
        for member, mark in zip(members, marks, strict=True)
        for op in member.backend.operations_applied[mark:]
    )
    return {
        "restart_seconds": restarted,
        "watchers": len(seen),
        "relisted": len(relisted),
        "relist_offsets_bucket_1s": buckets(sorted(relisted.values()), width=1.0),
        "deletions": deletions,
        "tables_unchanged": all(m.backend.table == t for m, t in zip(members, tables, strict=True)),
        "tables_complete": all(holds_all(m, ips=ips) for m in members),
        "expected_services": len(ips),
    }


async def measure(
    plane: ControlPlane,
    *,
    agents: int,
    small: int,
    services: int,
    endpoints: int,
    changes: int,
    steady: float,
    settings: Mapping[str, float],
) -> dict[str, Any]:
    """Every phase at one (agents, services); the results as one JSON-able dict."""
    kubeconfig = plane.kubeconfig(plane.admin)
    result: dict[str, Any] = {"agents": agents, "services": services, "endpoints": endpoints, "settings": {**settings}}
    async with connect(str(kubeconfig)) as api:
        begin = time.monotonic()
        ips = await populate(api, plane=plane, nodes=agents, services=services, endpoints=endpoints)
        result["populate_seconds"] = time.monotonic() - begin
        for count, label in ((small, "small"), (agents, "fleet")):
            rss_before = rss_mb()
            before = snapshot(plane)
            stop = asyncio.Event()
            start = time.monotonic()
            async with fleet(kubeconfig, count=count, stop=stop, settings=settings) as members:
                ready = await until(
                    lambda: all(m.agent.status.ready and holds_all(m, ips=ips) for m in members),
                    within=600.0,
                    what="every agent ready with the full table",
                )
                after = snapshot(plane)
                phase: dict[str, Any] = {"agents": count, "ready_seconds": ready}
                phase["storm"] = delta(before, after)
                phase["storm_per_agent"] = {k: v / count for k, v in phase["storm"].items() if k != "rss_mb"}
                phase["agent_rss_mb"] = (rss_mb() - rss_before) / count
                measured = await fan_out(
                    api,
                    plane=plane,
                    members=members,
                    ips=ips,
                    changes=changes,
                    nodes=agents,
                    within=30.0,
                    slot=14 if label == "small" else 15,
                )
                phase["fan_out"] = fan_out_summary(measured)
                if label == "fleet":
                    quiet, listed = snapshot(plane), agent_lists(members)
                    await asyncio.sleep(steady)
                    calm = delta(quiet, snapshot(plane))
                    # The apiserver's counters include its own lists (its ClusterIP and NodePort repair loops).
                    phase["steady"] = {"window_seconds": steady, "agent_lists": agent_lists(members) - listed, **calm}
                    phase["steady_per_agent_per_hour"] = {
                        k: per_hour(v / count, seconds=steady) for k, v in calm.items() if k != "rss_mb"
                    }
                    phase["restart"] = await restart(plane, members=members, ips=ips, within=120.0)
                del start
            result[label] = phase
            print(json.dumps({label: phase}, indent=1), flush=True)
    return result


def main() -> None:
    """Run the fleet bench; write bench/results/fleet-N-S.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--small", type=int, default=10, help="the small fleet measured first in the same run")
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--steady", type=float, default=60.0, help="seconds of the steady window")
    parser.add_argument("--min-sync-interval", type=float, help="the agents' --min-sync-interval (default: theirs)")
    parser.add_argument("--resync-interval", type=float, help="the agents' --resync-interval (default: theirs)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with (
        tempfile.TemporaryDirectory(prefix="fleet-") as workdir,
        ControlPlane(binaries=find_binaries(), workdir=Path(workdir), service_cidrs=SERVICE_CIDRS) as plane,
    ):
        result = asyncio.run(
            measure(
                plane,
                agents=args.agents,
                small=args.small,
                services=args.services,
                endpoints=args.endpoints,
                changes=args.changes,
                steady=args.steady,
                settings={
                    name: value
                    for name, value in (
                        ("min_sync_interval", args.min_sync_interval),
                        ("resync_interval", args.resync_interval),
                    )
                    if value is not None
                },
            )
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"fleet-{args.agents}-{args.services}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
