"""Issue 13 in the kernel lab: whole ``ipvsctl diff`` and ``ipvsctl apply`` processes against ipvsadm's.

In one boot, at N Services x 3 endpoints (``bench.cluster``: single-stack IPv6 ClusterIPs, masquerading real
servers, rr): the cluster is written once as JSON manifests (``kubectl get -o json`` shape: one List) and its
desired table for node worker1 as ``ipvsadm -R`` input (``ipvsadm.render_restore``). Then, each round, as an
on-call engineer would run them (separate processes, start-up and imports included):

- ``ipvsadm -R`` of the table from empty, against ``ipvsctl apply --manifests cluster.json`` from empty
  (which also brings up the agent's dummy interface and binds every VIP, as the command does);
- ``ipvsadm -Sn`` against ``ipvsctl diff --manifests cluster.json`` of the live table ``apply`` made, its VIPs
  on the agent's interface as on a node the agent runs on (in sync: exit 0).

Targets: diff <= 2.0x ``ipvsadm -Sn``; apply <= 1.5x ``ipvsadm -R``. The two tools alternate which goes
first in each round; medians are reported. ``ipvsctl`` runs with ``python -X importtime`` off, as installed.

Run (about 10 minutes at 10,000 under emulation):
``python3 lab/run.py --timeout 2400 -- .venv/bin/python -m bench.commands [--services 10000] [--rounds 2]``.
Writes ``$LAB_RESULTS/bench-commands.json``. ``--baseline TREE`` also runs, in the same rounds, ``ipvsctl
apply`` and ``diff`` from another checkout's ``ipvsctl`` package (``git archive REV ipvsctl | tar -x -C TREE``;
``python -m compileall TREE`` first: the guest cannot write), so a change is measured before and after in one
boot. ``--profile`` instead runs one diff and one apply under cProfile
(``$LAB_RESULTS/diff.prof``, ``apply.prof``) and lists the slowest imports.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path

from bench.cluster import NODE, Cluster, machine, median, node_object, print_table
from ipvsctl.ipvsadm import render_restore
from ipvsctl.model import AddRealServer, AddVirtualService, Operation, Table
from ipvsctl.translate import NodeContext, Policy, translate

INTERFACE = "ipvs0"
IPVSCTL = str(Path(sys.executable).with_name("ipvsctl"))


def desired_table(shape: Cluster) -> Table:
    """Node worker1's table for the cluster, as ipvsctl computes it."""
    services, slices = shape.views()
    node = NodeContext(NODE, (node_object()["status"]["addresses"][0]["address"],))
    return translate(services, slices, node=node, policy=Policy()).table


def creation(table: Table) -> list[Operation]:
    """Every add that builds ``table`` from nothing."""
    operations: list[Operation] = []
    for service in table:
        operations.append(AddVirtualService(service.settings()))
        operations.extend(AddRealServer(service.key, real) for real in service.reals)
    return operations


def timed(
    argv: list[str], *, stdin: str | None = None, ok: tuple[int, ...] = (0,), env: dict[str, str] | None = None
) -> float:
    """Seconds a whole process takes; exits the bench if it fails."""
    start = time.perf_counter()
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False, env=env)
    seconds = time.perf_counter() - start
    if done.returncode not in ok:
        sys.exit(f"bench.commands: {argv[0]} {argv[1]} exited {done.returncode}: {done.stderr[-2000:]}")
    return seconds


def clear() -> None:
    """An empty IPVS table and no agent interface."""
    subprocess.run(["ipvsadm", "-C"], check=True)
    subprocess.run(["ip", "link", "del", INTERFACE], capture_output=True, check=False)


def round_of(
    manifests: Path, restore: str, times: dict[str, list[float]], *, number: int, baseline: Path | None
) -> None:
    """One round: each tool creates the table from empty, then reads it back; round ``number`` sets who goes first.

    ``ipvsctl diff`` reads the table ``ipvsctl apply`` made, whose VIPs are on the agent's interface: what it
    finds on a node the agent runs on (with ``--owned-cidr`` instead, netaddr's IPSet decides ownership, and
    takes 17 s of 47 under cProfile for 10,000 VIPs: see docs/performance.md). With ``baseline``, that tree's
    ``ipvsctl`` takes its turn too (its own apply, then its diff).
    """
    apply = [IPVSCTL, "apply", "--manifests", str(manifests), "--node", NODE]
    diff = [IPVSCTL, "diff", "--manifests", str(manifests), "--node", NODE]
    tools = ["ipvsctl", "ipvsadm", *(["baseline"] if baseline is not None else [])]
    order = tools[number % len(tools) :] + tools[: number % len(tools)]
    for tool in order:
        clear()
        if tool == "ipvsadm":
            times["ipvsadm -R"].append(timed(["ipvsadm", "-R"], stdin=restore))
            times["ipvsadm -Sn"].append(timed(["ipvsadm", "-Sn"]))
        elif tool == "baseline" and baseline is not None:
            env = {**os.environ, "PYTHONPATH": str(baseline)}
            times["baseline apply"].append(timed(apply, env=env))
            times["baseline diff"].append(timed(diff, env=env))
        else:
            times["ipvsctl apply"].append(timed(apply))
            times["ipvsctl diff"].append(timed(diff))


def profiles(manifests: Path, results: Path) -> None:
    """One apply (from empty) and one diff (of the table it made) under cProfile, and the slowest imports."""
    diff = ["diff", "--manifests", str(manifests), "--node", NODE]
    apply = ["apply", "--manifests", str(manifests), "--node", NODE]
    clear()
    for name, argv in (("apply", apply), ("diff", diff)):  # diff reads what apply made, VIPs bound
        output = results / f"{name}.prof"
        seconds = timed([sys.executable, "-m", "cProfile", "-o", str(output), IPVSCTL, *argv], ok=(0, 1))
        print(f"\nipvsctl {name} under cProfile: {seconds:.2f} s", flush=True)
        pstats.Stats(str(output)).sort_stats("cumulative").print_stats(40)
    imports = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-c",
            "import ipvsctl.cli, ipvsctl.backend.kernel, ipvsctl.kube.manifests",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    (results / "importtime.txt").write_text(imports.stderr)
    print("\nslowest imports (cumulative us):", flush=True)
    rows = [line.split("|") for line in imports.stderr.splitlines()[1:]]
    for row in sorted(rows, key=lambda row: -int(row[1]))[:15]:
        print(row[1].strip(), row[2].rstrip(), flush=True)
    clear()


def main() -> None:
    """Write the inputs, run the rounds, print and save the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="instead: one diff and one apply under cProfile")
    parser.add_argument(
        "--baseline", type=Path, help="also run ipvsctl from this tree's ipvsctl package (before a change)"
    )
    args = parser.parse_args()
    if not Path("/proc/net/ip_vs").exists():
        sys.exit("bench.commands: needs IPVS: python3 lab/run.py -- .venv/bin/python -m bench.commands")
    shape = Cluster(args.services, 3)
    results = Path(os.environ.get("LAB_RESULTS", "bench/results"))
    results.mkdir(parents=True, exist_ok=True)
    scratch = Path(os.environ.get("TMPDIR", "/tmp"))
    services, slices = shape.raw()
    manifests = scratch / "cluster.json"
    manifests.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [*services, *slices, node_object()]}))
    restore = render_restore(creation(desired_table(shape)))
    if args.profile:
        profiles(manifests, results)
        return
    names = ["ipvsadm -R", "ipvsctl apply", "ipvsadm -Sn", "ipvsctl diff"]
    names += ["baseline apply", "baseline diff"] if args.baseline is not None else []
    times: dict[str, list[float]] = {name: [] for name in names}
    for number in range(args.rounds):
        round_of(manifests, restore, times, number=number, baseline=args.baseline)
        print(
            f"bench.commands: round {number + 1}/{args.rounds} done: {json.dumps(times)}", file=sys.stderr, flush=True
        )
    clear()
    seconds = {name: median(values) for name, values in times.items()}
    ratios = {
        "ipvsctl apply / ipvsadm -R (target <= 1.5)": seconds["ipvsctl apply"] / seconds["ipvsadm -R"],
        "ipvsctl diff / ipvsadm -Sn (target <= 2.0)": seconds["ipvsctl diff"] / seconds["ipvsadm -Sn"],
    }
    if args.baseline is not None:
        ratios["baseline apply / ipvsadm -R"] = seconds["baseline apply"] / seconds["ipvsadm -R"]
        ratios["baseline diff / ipvsadm -Sn"] = seconds["baseline diff"] / seconds["ipvsadm -Sn"]
    title = f"{args.services} Services x 3, whole processes: median of {args.rounds} (seconds)"
    print_table(title, ["command", "seconds"], [[name, f"{value:.2f}"] for name, value in seconds.items()])
    print_table("ratios", ["ratio", "value"], [[name, f"{value:.2f}"] for name, value in ratios.items()])
    document = {
        "machine": machine(),
        "services": args.services,
        "baseline": None if args.baseline is None else str(args.baseline),
        "seconds": seconds,
        "all_seconds": times,
    }
    path = results / "bench-commands.json"
    path.write_text(json.dumps({**document, "ratios": ratios}, indent=2) + "\n")
    print(f"results: {path}")


if __name__ == "__main__":
    main()
