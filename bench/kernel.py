"""Workloads 1 and 2 of issue 6 in the kernel lab: the netlink backend against ipvsadm, in the same boot.

1. Cold apply of the full table: ``NetlinkBackend.apply`` of every add, against ``ipvsadm -R`` of the same
   operations (``ipvsadm.render_restore``), each from an empty table.
2. No-op resync: ``NetlinkBackend.read`` + ``plan`` of the same table (nothing to do), against
   ``ipvsadm -Sn``: on a fresh backend, and again on a backend that has read the table before (the
   agent's resync: it reuses the model objects of unchanged entries). Also the read alone, the
   read with every VIP bound to the agent's interface (ipvsadm has no such step), and the whole
   ``reconcile.sync`` the agent runs at each resync interval (read, drains, plan, the VIPs' check).
   And the fresh read once more with the learnt layouts of ``backend/ipvs/layout.py`` switched off (every
   reply walked attribute by attribute): what that module is worth.

The table: N TCP services x 3 masquerading real servers, scheduler rr, one IPv6 VIP per service
(``bench.cluster.cluster_ip``: 10,000 VIPs do not fit the IPv4 documentation ranges). ipvsadm runs as a
process, so its times include its start (a few milliseconds); ipvsctl's are in-process, as in the
agent, with a fresh backend (socket set-up included) for each measurement. Both tools alternate
which goes first in each round. Both tables are checked equal to the one asked for.

Run (about 10 minutes under emulation): ``make bench-kernel``, or
``python3 lab/run.py -- .venv/bin/python -m bench.kernel [--services 1000,10000] [--rounds 3]``.
Prints a table and writes ``$LAB_RESULTS/bench-kernel.json`` (``lab/results/`` on the host).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from bench.cluster import cluster_ip, machine, median, pod_ip, print_table
from ipvsctl.backend.ipvs.layout import LayoutDecoder
from ipvsctl.backend.kernel import NetlinkBackend, Wire
from ipvsctl.ipvsadm import parse_save, render_restore
from ipvsctl.model import AddRealServer, AddVirtualService, Operation, Protocol, RealServer, ServiceKey, Table
from ipvsctl.model import VirtualService as Service
from ipvsctl.plan import Ownership, Settled, plan
from ipvsctl.reconcile import DrainTracker, SyncResult, sync

REAL_SERVERS = 3
PYROUTE2_MAX = 1_000  # pyroute2 takes ~30 s per 1,000 services: measured only up to this size
INTERFACE = "ipvsbench0"
WALK_ONLY = "lean read, the walk alone (no learnt layouts)"


def bench_table(services: int) -> Table:
    """``services`` TCP services on their own IPv6 VIP, three masquerading real servers each."""
    return Table.of(
        Service(
            ServiceKey(Protocol.TCP, cluster_ip(index), 80),
            scheduler="rr",
            reals=tuple(RealServer(pod_ip(index * REAL_SERVERS + k), 8080) for k in range(REAL_SERVERS)),
        )
        for index in range(services)
    )


def creation(table: Table) -> list[Operation]:
    """Every add that builds ``table`` from nothing, service by service."""
    operations: list[Operation] = []
    for service in table:
        operations.append(AddVirtualService(service.settings()))
        operations.extend(AddRealServer(service.key, real) for real in service.reals)
    return operations


def ipvsadm(*args: str, stdin: str | None = None) -> str:
    """Run ipvsadm; its stdout."""
    return subprocess.run(["ipvsadm", *args], input=stdin, capture_output=True, text=True, check=True).stdout


@contextlib.contextmanager
def walk_only() -> Iterator[None]:
    """The lean decoders without their learnt layouts: every reply decoded by ``wire``'s attribute walk."""
    saved = (LayoutDecoder.many_dests, LayoutDecoder.many_keyed, LayoutDecoder.__call__)

    def declined(*_args: Any, **_kwargs: Any) -> None:
        return None

    def walked(self: LayoutDecoder, payload: Any) -> dict[str, object]:
        return self._walk(payload)  # the walk the layouts are checked against

    # A bench switching a decoder off for one measurement, not a code path: the methods are put back after.
    LayoutDecoder.many_dests = declined  # type: ignore[method-assign]  # see above
    LayoutDecoder.many_keyed = declined  # type: ignore[method-assign]  # see above
    LayoutDecoder.__call__ = walked  # type: ignore[method-assign]  # see above
    try:
        yield
    finally:
        LayoutDecoder.many_dests, LayoutDecoder.many_keyed, LayoutDecoder.__call__ = saved  # type: ignore[method-assign]  # see above


async def timed(action: Callable[[], Awaitable[object]]) -> tuple[float, object]:
    """Seconds an awaited action takes, and what it gave."""
    start = time.perf_counter()
    result = await action()
    return time.perf_counter() - start, result


async def run_ipvsadm(table: Table, restore: str, times: dict[str, list[float]], *, check: bool) -> None:
    """ipvsadm -R from empty, then ipvsadm -Sn."""
    ipvsadm("-C")

    async def restore_all() -> None:
        ipvsadm("-R", stdin=restore)

    async def save() -> str:
        return ipvsadm("-Sn")

    seconds, _ = await timed(restore_all)
    times["ipvsadm -R"].append(seconds)
    seconds, saved = await timed(save)
    times["ipvsadm -Sn"].append(seconds)
    if check and parse_save(str(saved)) != table:
        sys.exit("bench.kernel: ipvsadm -R did not give the table asked for")


async def run_ipvsctl(table: Table, wire: Wire, times: dict[str, list[float]], *, check: bool) -> None:
    """Apply from empty, read, read + plan, then read with every VIP bound, through one wire."""
    ipvsadm("-C")
    operations = creation(table)
    async with NetlinkBackend(interface=INTERFACE, wire=wire) as backend:
        seconds, report = await timed(lambda: backend.apply(operations))
    times[f"{wire} apply"].append(seconds)
    async with NetlinkBackend(interface=INTERFACE, wire=wire) as backend:
        seconds, state = await timed(backend.read)
    times[f"{wire} read"].append(seconds)
    if wire == "lean":
        with walk_only():
            async with NetlinkBackend(interface=INTERFACE, wire=wire) as backend:
                seconds, walked = await timed(backend.read)
        times[WALK_ONLY].append(seconds)
        if check and getattr(walked, "table", None) != table:
            sys.exit("bench.kernel: the walk alone did not read the table asked for")

    async def resync(backend: NetlinkBackend, settled: Settled) -> tuple[Operation, ...]:
        current = await backend.read()
        return plan(current.table, table, ownership=Ownership(), connections=current.connections, settled=settled)

    async with NetlinkBackend(interface=INTERFACE, wire=wire) as backend:
        settled: Settled = {}
        seconds, pending = await timed(lambda: resync(backend, settled))
        times[f"{wire} read + plan"].append(seconds)
        if wire == "lean":  # the agent's resync: a backend that has read the table before, its plans' memory
            seconds, again = await timed(lambda: resync(backend, settled))
            times["lean resync (read + plan again)"].append(seconds)
            pending = pending if again == () else again
    if check and not (getattr(report, "ok", False) and getattr(state, "table", None) == table and pending == ()):
        sys.exit(f"bench.kernel: the {wire} backend did not give the table asked for")
    if wire == "lean":
        vips = {service.key.address for service in table}
        async with NetlinkBackend(interface=INTERFACE, wire=wire) as backend:
            seconds, _ = await timed(lambda: backend.bind_addresses(vips))
            times["bind every VIP"].append(seconds)
        async with NetlinkBackend(interface=INTERFACE, wire=wire) as backend:
            seconds, _ = await timed(lambda: resync(backend, {}))
            times["lean read + plan, VIPs bound"].append(seconds)
            # What the agent's runner does every resync interval: reconcile.sync (read, drains, plan, the VIPs'
            # check), on the backend and with the memory of its earlier syncs.
            drains = DrainTracker()
            remembered: Settled = {}

            async def agent() -> SyncResult:
                return await sync(backend, table, ownership=Ownership(), bind=vips, drains=drains, settled=remembered)

            await agent()
            seconds, result = await timed(agent)
            times["agent resync: sync() again, VIPs bound"].append(seconds)
            await backend.remove_interface()
        if check and getattr(result, "operations", None) != ():
            sys.exit("bench.kernel: the agent's resync found work in a table already in sync")


async def measure(services: int, rounds: int) -> dict[str, object]:
    """Every timing of one size, ``rounds`` times, the tools alternating which goes first."""
    table = bench_table(services)
    restore = render_restore(creation(table))
    times: dict[str, list[float]] = {}
    for name in (
        "ipvsadm -R",
        "ipvsadm -Sn",
        "lean resync (read + plan again)",
        WALK_ONLY,
        "bind every VIP",
        "lean read + plan, VIPs bound",
        "agent resync: sync() again, VIPs bound",
    ):
        times[name] = []
    wires: list[Wire] = ["lean", "pyroute2"] if services <= PYROUTE2_MAX else ["lean"]
    for wire in wires:
        for what in ("apply", "read", "read + plan"):
            times[f"{wire} {what}"] = []
    for round_ in range(rounds):
        check = round_ == 0
        if round_ % 2 == 0:
            await run_ipvsadm(table, restore, times, check=check)
            for wire in wires:
                await run_ipvsctl(table, wire, times, check=check)
        else:
            for wire in wires:
                await run_ipvsctl(table, wire, times, check=check)
            await run_ipvsadm(table, restore, times, check=check)
        print(f"bench.kernel: {services} services, round {round_ + 1}/{rounds} done", file=sys.stderr, flush=True)
    ipvsadm("-C")
    seconds = {name: median(values) for name, values in times.items() if values}
    ratios = {
        f"{wire} {what} / {tool}": seconds[f"{wire} {what}"] / seconds[tool]
        for wire in wires
        for what, tool in (("apply", "ipvsadm -R"), ("read", "ipvsadm -Sn"), ("read + plan", "ipvsadm -Sn"))
    }
    ratios["lean resync (read + plan again) / ipvsadm -Sn"] = (
        seconds["lean resync (read + plan again)"] / seconds["ipvsadm -Sn"]
    )
    for name in (WALK_ONLY, "lean read + plan, VIPs bound", "agent resync: sync() again, VIPs bound"):
        ratios[f"{name} / ipvsadm -Sn"] = seconds[name] / seconds["ipvsadm -Sn"]
    return {
        "services": services,
        "real_servers": services * REAL_SERVERS,
        "rounds": rounds,
        "seconds": seconds,
        "all_seconds": times,
        "ratios": ratios,
    }


def main() -> None:
    """Measure each size, print the tables, write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", default="1000,10000", help="comma-separated sizes")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not Path("/proc/net/ip_vs").exists():
        sys.exit(
            "bench.kernel: needs a kernel with IPVS: run it in the lab, python3 lab/run.py -- "
            ".venv/bin/python -m bench.kernel"
        )
    sizes = [int(size) for size in args.services.split(",")]
    runs = [asyncio.run(measure(size, args.rounds)) for size in sizes]
    for run in runs:
        seconds = run["seconds"]
        ratios = run["ratios"]
        assert isinstance(seconds, dict)
        assert isinstance(ratios, dict)
        print_table(
            f"{run['services']} services x {REAL_SERVERS} real servers: median of {run['rounds']} (seconds)",
            ["measurement", "seconds"],
            [[name, f"{value:.3f}"] for name, value in seconds.items()],
        )
        print_table("ratios (target <= 1.0)", ["ratio", "value"], [[k, f"{v:.2f}"] for k, v in ratios.items()])
    results = Path(os.environ.get("LAB_RESULTS", "bench/results"))
    results.mkdir(parents=True, exist_ok=True)
    path = results / "bench-kernel.json"
    path.write_text(json.dumps({"machine": machine(), "runs": runs}, indent=2) + "\n")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
