"""Issue 15 in the kernel lab: the nftables half against the IPVS half of the same cluster, in one boot.

1. **Whole table**: ``KernelNetfilter.replace`` of every element the cluster needs, where there was no
   table (``nft -f`` of the dormant definition, then one netlink transaction), against
   ``NetlinkBackend.apply`` of every IPVS add of the same cluster, each from empty, in a fresh namespace.
   Target: the nftables write takes less time than the IPVS apply. Then the same ``replace`` again, over
   the table now there: the rewrite a resync makes after drift (one ``nft -f`` of definition and elements).
2. **One change**: an endpoint of one Service replaced, as the agent's incremental sync does it. The IPVS
   part is ``reconcile.sync`` of that key alone (read it, plan, add and delete a real server); the
   nftables part is the ``change`` of that sync (the new pod's hairpin element in, the old one's out), one
   netlink transaction, no process. Target: nftables <= 1.0x IPVS (median of the changes).
3. **A burst**: 100 such changes in one ``change`` call: one transaction however many elements.

The cluster: N TCP Services on their own IPv6 ClusterIP (``bench.kernel.bench_table``), three pods each,
every VIP under the VIP filter, ClusterIP masquerade known (a cluster CIDR), hairpin for every pod.

Run: ``python3 lab/run.py -- .venv/bin/python -m bench.netfilter [--services 1000,10000] [--rounds 3]``
(``make bench-netfilter``). Prints a table; writes ``$LAB_RESULTS/bench-netfilter.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from bench.cluster import machine, median, pod_ip, print_table
from bench.kernel import REAL_SERVERS, bench_table, creation
from ipvsctl.backend.kernel import NetlinkBackend
from ipvsctl.backend.nft.kernel import KernelNetfilter
from ipvsctl.model import RealServer, Table
from ipvsctl.netfilter.elements import Element, desired_elements, key_elements
from ipvsctl.netfilter.ruleset import DEFAULT_MASQUERADE_BIT
from ipvsctl.plan import Ownership
from ipvsctl.reconcile import sync
from ipvsctl.translate import VipKind, VipRole

CHANGES = 50
BURST = 100
ROLE = VipRole(VipKind.CLUSTER_IP)
CLUSTER_CIDRS = ("2001:db8:5::/48",)


def netns(name: str) -> str:
    """A fresh network namespace with lo up (its own IPVS table and nftables)."""
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    return name


def delete_netns(name: str) -> None:
    subprocess.run(["ip", "netns", "delete", name], check=False)


def elements_of(table: Table) -> set[Element]:
    """Every element the cluster needs on this node."""
    roles = dict.fromkeys(table.services, ROLE)
    return desired_elements(table.services, roles, filtered_addresses={k.address for k in table.services},
                            cluster_families={6})  # fmt: skip


async def whole_table(table: Table, elements: set[Element], times: dict[str, list[float]], name: str) -> None:
    """IPVS apply from empty and the nftables write of the same cluster, in a fresh namespace each."""
    space = netns(f"{name}-ipvs")
    try:
        async with NetlinkBackend(netns=space) as backend:
            start = time.perf_counter()
            report = await backend.apply(creation(table))
            times["IPVS apply (every service)"].append(time.perf_counter() - start)
            if not report.ok:
                sys.exit(f"bench.netfilter: IPVS apply failed: {report.failures[:3]}")
    finally:
        delete_netns(space)
    space = netns(f"{name}-nft")
    try:
        nft = KernelNetfilter(netns=space, masquerade_bit=DEFAULT_MASQUERADE_BIT, cluster_cidrs=CLUSTER_CIDRS)
        start = time.perf_counter()
        await nft.replace(elements)
        times["nftables write (every element)"].append(time.perf_counter() - start)
        if (await nft.read()).elements != elements:
            sys.exit("bench.netfilter: the nftables table does not hold what was written")
        start = time.perf_counter()
        await nft.replace(elements)
        times["nftables rewrite of the table there (one nft -f)"].append(time.perf_counter() - start)
        if (await nft.read()).elements != elements:
            sys.exit("bench.netfilter: the rewritten nftables table does not hold what was written")
        await nft.close()
    finally:
        delete_netns(space)


async def changes(table: Table, elements: set[Element], times: dict[str, list[float]], name: str) -> None:
    """One endpoint replaced in each of CHANGES Services: the IPVS part and the nftables part, in turn."""
    space = netns(f"{name}-changes")
    try:
        async with NetlinkBackend(netns=space) as backend:
            nft = KernelNetfilter(netns=space, masquerade_bit=DEFAULT_MASQUERADE_BIT, cluster_cidrs=CLUSTER_CIDRS)
            await backend.apply(creation(table))
            await nft.replace(elements)
            services = dict(table.services)
            keys = list(services)[:: max(1, len(services) // CHANGES)][:CHANGES]
            ownership = Ownership(cidrs=None).with_addresses({key.address for key in services})
            for index, key in enumerate(keys):
                old = services[key]
                moved = RealServer(pod_ip(len(services) * REAL_SERVERS + index), 8080)
                new = replace(old, reals=(*old.reals[1:], moved))
                services[key] = new
                start = time.perf_counter()
                await sync(backend, Table(services), ownership=ownership, bind={key.address}, only={key})
                times["IPVS part of one change (sync of its key)"].append(time.perf_counter() - start)
                before = set(key_elements(old, ROLE, filtered=True, cluster_masquerade=True))
                after = set(key_elements(new, ROLE, filtered=True, cluster_masquerade=True))
                start = time.perf_counter()
                await nft.change(add=after - before, delete=before - after)
                times["nftables part of one change (one transaction)"].append(time.perf_counter() - start)
            await burst(nft, times)
            await nft.close()
    finally:
        delete_netns(space)


async def burst(nft: KernelNetfilter, times: dict[str, list[float]]) -> None:
    """BURST hairpin elements added and deleted, each as one change call: one transaction."""
    extra: set[Element] = {("hairpin6", (pod_ip(10**6 + n), "tcp", 8080, pod_ip(10**6 + n))) for n in range(BURST)}
    start = time.perf_counter()
    await nft.change(add=extra, delete=())
    times[f"nftables burst of {BURST} elements in (one transaction)"].append(time.perf_counter() - start)
    await nft.change(add=(), delete=extra)


async def warm_up() -> None:
    """Write a small table once: the kernel loads nf_tables and its expressions' modules on their first use in
    a boot (seconds under emulation, once per node in real life), which is not what is measured."""
    space = netns(f"bnf{os.getpid()}-warm")
    try:
        nft = KernelNetfilter(netns=space, masquerade_bit=DEFAULT_MASQUERADE_BIT, cluster_cidrs=CLUSTER_CIDRS)
        await nft.replace(elements_of(bench_table(10)))
        await nft.close()
    finally:
        delete_netns(space)


async def measure(services: int, rounds: int) -> dict[str, object]:
    """Every timing of one size, ``rounds`` times."""
    await warm_up()
    table = bench_table(services)
    elements = elements_of(table)
    times: dict[str, list[float]] = {}
    for name in (
        "IPVS apply (every service)",
        "nftables write (every element)",
        "nftables rewrite of the table there (one nft -f)",
        "IPVS part of one change (sync of its key)",
        "nftables part of one change (one transaction)",
        f"nftables burst of {BURST} elements in (one transaction)",
    ):
        times[name] = []
    for round_ in range(rounds):
        base = f"bnf{os.getpid()}-{services}-{round_}"
        await whole_table(table, elements, times, base)
        await changes(table, elements, times, base)
        print(f"bench.netfilter: {services} services, round {round_ + 1}/{rounds} done", file=sys.stderr, flush=True)
    seconds = {name: median(values) for name, values in times.items() if values}
    ratios = {
        "nftables write / IPVS apply": seconds["nftables write (every element)"]
        / seconds["IPVS apply (every service)"],
        "nftables part / IPVS part of one change": seconds["nftables part of one change (one transaction)"]
        / seconds["IPVS part of one change (sync of its key)"],
    }
    return {"services": services, "elements": len(elements), "rounds": rounds, "seconds": seconds,
            "all_seconds": times, "ratios": ratios}  # fmt: skip


def main() -> None:
    """Measure each size, print the tables, write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", default="1000,10000", help="comma-separated sizes")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not Path("/proc/net/ip_vs").exists():
        sys.exit("bench.netfilter: no IPVS here: run it in the kernel lab (python3 lab/run.py -- ...)")
    results = [asyncio.run(measure(int(size), args.rounds)) for size in args.services.split(",")]
    for result in results:
        seconds = result["seconds"]
        assert isinstance(seconds, dict)
        print_table(
            f"{result['services']} services, {result['elements']} elements (median of {result['rounds']}; seconds)",
            ["measurement", "seconds"],
            [[name, f"{value:.4f}"] for name, value in seconds.items()],
        )
        ratios = result["ratios"]
        assert isinstance(ratios, dict)
        print_table("ratios", ["ratio", "value"], [[name, f"{value:.2f}"] for name, value in ratios.items()])
    out = Path(os.environ.get("LAB_RESULTS", "lab/results")) / "bench-netfilter.json"
    out.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
