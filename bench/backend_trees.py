"""The kernel backend of two trees in one lab boot: the fresh read and the apply, before and after a change.

Each measurement runs in a fresh process whose ``ipvsctl`` package comes from one tree (``git archive REV
ipvsctl | tar -x -C TREE``, then ``python -m compileall TREE``: the guest cannot write), and ``ipvsadm`` takes
its turn in the same rounds; who goes first rotates from round to round, and medians are reported. At N TCP
services x 3 masquerading real servers on their own IPv6 VIPs (``bench.kernel.bench_table``):

- apply: ``NetlinkBackend.apply`` of every add from an empty table, then binding every VIP to the agent's
  interface, against ``ipvsadm -R`` of the same adds;
- read (of the table the last tree applied, its VIPs bound): ``TableReader.read_all`` on a fresh transport, the
  same again on that transport (the agent's resync of an unchanged table), and ``NetlinkBackend.read`` on a
  fresh backend (what ``ipvsctl diff`` does), against ``ipvsadm -Sn``.

Run: ``python3 lab/run.py -- .venv/bin/python -m bench.backend_trees BEFORE AFTER [--services N] [--rounds R]``
(about 5 minutes at 10,000 with three rounds). Writes ``$LAB_RESULTS/bench-backend-trees.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.cluster import machine, median, print_table
from bench.kernel import bench_table, creation
from ipvsctl.ipvsadm import render_restore

INTERFACE = "ipvsbench0"

# What one fresh process measures, with the tree's ipvsctl first on its path (argv: tree, what, services).
_MEASURE = r"""
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[1])
import ipvsctl
assert ipvsctl.__file__.startswith(sys.argv[1]), ipvsctl.__file__
from bench.kernel import bench_table, creation
from ipvsctl.backend.ipvs.lean import LeanTransport
from ipvsctl.backend.kernel import NetlinkBackend
from ipvsctl.backend.netlink.netns import NETLINK_GENERIC, netlink_descriptor
what, services, interface = sys.argv[2], int(sys.argv[3]), sys.argv[4]
seconds = {}

async def apply():
    table = bench_table(services)
    operations, vips = creation(table), {service.key.address for service in table}
    backend = NetlinkBackend(interface=interface)
    start = time.perf_counter()
    report = await backend.apply(operations)
    applied = time.perf_counter()
    await backend.bind_addresses(vips)
    seconds["apply"], seconds["bind every VIP"] = applied - start, time.perf_counter() - applied
    await backend.close()
    assert report.ok, report

async def read():
    backend = NetlinkBackend(interface=interface)
    start = time.perf_counter()
    state = await backend.read()
    seconds["NetlinkBackend.read, fresh"] = time.perf_counter() - start
    await backend.close()
    assert len(state.table) == services and len(state.bound_addresses) == services

if what == "apply":
    asyncio.run(apply())
else:
    transport = LeanTransport(netlink_descriptor(netns=None, protocol=NETLINK_GENERIC))
    for name in ("read_all, fresh", "read_all again (unchanged table)"):
        start = time.perf_counter()
        records = transport._reader.read_all()
        seconds[name] = time.perf_counter() - start
        assert len(records) == services
    transport.close()
    asyncio.run(read())
print(json.dumps(seconds))
"""


def clear() -> None:
    """An empty IPVS table and no bench interface."""
    subprocess.run(["ipvsadm", "-C"], check=True)
    subprocess.run(["ip", "link", "del", INTERFACE], capture_output=True, check=False)


def measure(tree: Path, what: str, services: int) -> dict[str, float]:
    """One fresh process of ``tree``'s ipvsctl measuring ``what`` (apply or read)."""
    argv = [sys.executable, "-c", _MEASURE, str(tree), what, str(services), INTERFACE]
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}  # bench itself from this checkout; ipvsctl from the tree
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd="/", env=env)
    if done.returncode:
        sys.exit(f"bench.backend_trees: {tree} {what} failed: {done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout)
    return result


def timed(argv: list[str], *, stdin: str | None = None) -> float:
    """Seconds a process takes."""
    start = time.perf_counter()
    subprocess.run(argv, input=stdin, capture_output=True, text=True, check=True)
    return time.perf_counter() - start


def main() -> None:
    """Run the rounds, print and save the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not Path("/proc/net/ip_vs").exists():
        sys.exit("bench.backend_trees: needs IPVS: python3 lab/run.py -- .venv/bin/python -m bench.backend_trees ...")
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    restore = render_restore(creation(bench_table(args.services)))
    times: dict[str, list[float]] = {}
    tools = ["ipvsadm", *trees]
    for what in ("apply", "read"):
        if what == "read":
            clear()
            measure(trees["after"], "apply", args.services)
        for number in range(args.rounds):
            for tool in tools[number % 3 :] + tools[: number % 3]:
                if what == "apply":
                    clear()
                if tool == "ipvsadm" and what == "apply":
                    times.setdefault("ipvsadm -R", []).append(timed(["ipvsadm", "-R"], stdin=restore))
                elif tool == "ipvsadm":
                    times.setdefault("ipvsadm -Sn", []).append(timed(["ipvsadm", "-Sn"]))
                else:
                    for name, seconds in measure(trees[tool], what, args.services).items():
                        times.setdefault(f"{tool}: {name}", []).append(seconds)
            print(f"bench.backend_trees: {what} round {number + 1}: {json.dumps(times)}", file=sys.stderr, flush=True)
    clear()
    medians = {name: median(values) for name, values in times.items()}
    title = f"{args.services} services x 3, median of {args.rounds} (seconds)"
    print_table(title, ["measurement", "seconds"], [[name, f"{value:.2f}"] for name, value in medians.items()])
    results = Path(os.environ.get("LAB_RESULTS", "bench/results"))
    results.mkdir(parents=True, exist_ok=True)
    path = results / "bench-backend-trees.json"
    document = {"machine": machine(), "services": args.services, "trees": {k: str(v) for k, v in trees.items()}}
    path.write_text(json.dumps({**document, "seconds": medians, "all_seconds": times}, indent=2) + "\n")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
