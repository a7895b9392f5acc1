"""Issue 18: ipvsctl's agent side by side with kube-proxy --proxy-mode=ipvs, in one lab boot per size.

    make bench-peer                                    # S = 1,000 then S = 10,000 (a lab boot each)
    .venv/bin/python -m bench.peer --services 1000     # one size
    .venv/bin/python -m bench.peer --services 10000 --changes 50 --change-budget 420

On the host (as the e2e bed, docs/e2e.md): etcd and kube-apiserver v1.20 on loopback
(tests/apiserver/harness.py), filled with S ClusterIP Services x 3 endpoints (bench/peer_cluster.py) and
the two nodes' Node objects; kube-proxy v1.20.2 from tools/kube-proxy/build.sh (Debian's kubernetes
source, cached). Then the kernel lab boots with the apiserver's port forwarded and runs bench/peer_guest.py:
both proxies in their own namespaces, one measuring at a time. Per proxy: start to full table, event-to-
kernel latency of EndpointSlice changes (p50/p99 over `--changes`), CPU seconds per change, RSS; and the
differences between the two tables. The JSON lands in RESULTS/peer-S.json with the ratios and targets.
Targets (S = 10,000): ipvsctl's p99 <= 0.1x kube-proxy's, CPU per change <= 0.1x, start to full table <= 1.0x.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.peer_cluster import SERVICE_CIDR, service_manifest, service_spec, slice_manifest
from bench.peer_guest import guest_main, result_name
from bench.peer_measure import ratio
from tests.apiserver.harness import ControlPlane, find_binaries
from tests.e2e.api import Api, collection
from tests.e2e.workload import APISERVER_PORT, GATEWAY_IP, NAMESPACE, NodeInfo, node_manifest, slice_version

REPO = Path(__file__).resolve().parents[1]
KUBE_PROXY_BUILD = REPO / "tools" / "kube-proxy" / "build.sh"
FORWARD_ADDRESS = "10.0.2.100"  # lab/run.py's: where a forwarded host port appears in the guest
LAB_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ipvsctl" / "lab"
DEFAULT_RESULTS = REPO / "lab" / "results" / "peer"
WRITERS = 4  # connections filling the apiserver in parallel
TARGET_P99 = 0.1
TARGET_CPU = 0.1
TARGET_START = 1.0
# The nodes tests/kernel/multinode.build_cluster makes in the guest (192.0.2.1k, pod CIDRs /26): their Node
# objects must exist before either proxy starts.
NODES = (
    NodeInfo("node1", "192.0.2.11", "a", "198.51.100.0/26"),
    NodeInfo("node2", "192.0.2.12", "b", "198.51.100.64/26"),
)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, action="append", help="S (repeatable; default 1000 and 10000)")
    parser.add_argument("--changes", type=int, default=50, help="EndpointSlice changes per proxy")
    parser.add_argument("--change-budget", type=float, default=420.0, help="seconds each proxy's changes may take")
    parser.add_argument("--change-timeout", type=float, default=240.0, help="seconds one change may take")
    parser.add_argument("--start-timeout", type=float, default=600.0, help="seconds a proxy may take to fill")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="the lab's results directory")
    parser.add_argument("--lab-timeout", type=float, default=1500.0, help="seconds before the lab is killed")
    parser.add_argument("--memory", type=int, default=3072, help="guest memory in MiB")
    parser.add_argument("--guest", type=Path, help=argparse.SUPPRESS)  # inside the lab: the host's config
    args = parser.parse_args(argv)
    for services in args.services or ():
        if not args.changes * 2 <= services <= 60_000:
            parser.error(f"--services {services}: between 2 x --changes and 60,000")
    return args


def build_kube_proxy() -> Path:
    """tools/kube-proxy/build.sh's binary (built once, then cached)."""
    done = subprocess.run(["bash", str(KUBE_PROXY_BUILD)], capture_output=True, text=True, timeout=3600, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SystemExit(f"bench.peer: {KUBE_PROXY_BUILD} failed:\n{done.stderr[-2000:]}")
    return Path(lines[-1])


def fill(plane: ControlPlane, *, services: int) -> tuple[str, float]:
    """Write the Nodes, then the Services and their slices (WRITERS connections); the slice version, seconds."""
    started = time.monotonic()

    def client() -> Api:
        return Api(host="127.0.0.1", port=plane.apiserver_port, token=plane.admin.token, ca_file=plane.ca_file)

    api = client()
    version = slice_version(api.served_versions("discovery.k8s.io"))
    for node in NODES:
        manifest = node_manifest(node)
        api.create_or_replace(collection("v1", "nodes"), manifest)
        api.merge_patch(f"/api/v1/nodes/{node.name}/status", {"status": manifest["status"]})
    api.close()
    changed_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def write(first: int) -> None:
        writer = client()
        try:
            for index in range(first, services, WRITERS):
                writer.create(collection("v1", "services", namespace=NAMESPACE), service_manifest(service_spec(index)))
                writer.create(
                    collection(version, "endpointslices", namespace=NAMESPACE),
                    slice_manifest(index, api_version=version, changed_at=changed_at),
                )
        finally:
            writer.close()

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        list(pool.map(write, range(WRITERS)))
    return version, time.monotonic() - started


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    """ipvsctl / kube-proxy for each target, and whether it is met (None: not measured)."""
    ours, theirs = results.get("ipvsctl", {}), results.get("kube-proxy", {})

    def figure(side: dict[str, Any], *path: str) -> float | None:
        value: Any = side
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        return float(value) if isinstance(value, int | float) else None

    rows = {
        "event_to_kernel_p99": (("changes", "latency", "p99_ms"), TARGET_P99),
        "cpu_per_change": (("changes", "cpu_seconds_per_change"), TARGET_CPU),
        "start_to_full_table": (("start_to_full_table", "seconds"), TARGET_START),
    }
    out: dict[str, Any] = {}
    for name, (path, target) in rows.items():
        value = ratio(figure(ours, *path), figure(theirs, *path))
        out[name] = {"ratio": value, "target": target, "met": None if value is None else value <= target}
    return out


def run_size(args: argparse.Namespace, *, services: int, kube_proxy: Path) -> int:
    """One lab boot at S = `services`; the lab's exit code."""
    results: Path = args.results.resolve()
    results.mkdir(parents=True, exist_ok=True)
    (results / result_name(services)).unlink(missing_ok=True)
    plane = ControlPlane(
        binaries=find_binaries(),
        workdir=results / f"control-plane-{services}",
        service_cidrs=SERVICE_CIDR,
        advertise_address=GATEWAY_IP,
        start_timeout=180.0,
    )
    with plane:
        version, filled = fill(plane, services=services)
        print(f"bench.peer: {services} Services and EndpointSlices ({version}) written in {filled:.0f} s", flush=True)
        kubeconfig = results / f"control-plane-{services}" / "guest-kubeconfig.yaml"
        plane.write_kubeconfig(plane.admin, server=f"https://{GATEWAY_IP}:{APISERVER_PORT}", path=kubeconfig)
        config = {
            "services": services,
            "changes": args.changes,
            "change_budget": args.change_budget,
            "change_timeout": args.change_timeout,
            "start_timeout": args.start_timeout,
            "apiserver_port": plane.apiserver_port,
            "forward_address": FORWARD_ADDRESS,
            "ca_file": str(plane.ca_file),
            "admin_token": plane.admin.token,
            "kubeconfig": str(kubeconfig),
            "slice_version": version,
            "kube_proxy": str(kube_proxy),
            "ipvsctl": str(REPO / ".venv" / "bin" / "ipvsctl"),
            "kernel_root": str((LAB_CACHE / "current").resolve()),
            "results": str(results),
        }
        config_path = results / f"peer-{services}-config.json"
        config_path.write_text(json.dumps(config, indent=1) + "\n")
        lab = [
            "python3",
            str(REPO / "lab" / "run.py"),
            *("--results", str(results), "--timeout", str(args.lab_timeout), "--memory", str(args.memory)),
            *("--forward", str(plane.apiserver_port)),
            "--",
            *(str(REPO / ".venv" / "bin" / "python"), "-m", "bench.peer", "--guest", str(config_path)),
        ]
        code = subprocess.run(lab, cwd=REPO, check=False).returncode
    report(results / result_name(services))
    return code


def report(path: Path) -> None:
    """Add the verdicts to a run's JSON and print the figures."""
    if not path.exists():
        print(f"bench.peer: no results at {path}; see the console log beside it")
        return
    results = json.loads(path.read_text())
    results["verdicts"] = verdicts(results)
    path.write_text(json.dumps(results, indent=1) + "\n")
    for name in ("ipvsctl", "kube-proxy"):
        side = results.get(name, {})
        changes = side.get("changes", {})
        print(
            f"{name:>10}: start {side.get('start_to_full_table')}, changes {changes.get('written')} "
            f"latency {changes.get('latency')}, CPU/change {changes.get('cpu_seconds_per_change')} s, "
            f"RSS {side.get('memory_at_end')}"
        )
    for when in ("tables_at_kube_proxy_start", "tables"):
        if when in results:
            print(f"{when}: {results[when]['differences']} differences {json.dumps(results[when]['by_kind'])}")
    print(f"verdicts: {json.dumps(results['verdicts'], indent=1)}")
    if "error" in results:
        print(f"bench.peer: the run stopped early: {results['error']}")


def main(argv: Sequence[str]) -> int:
    """Host: one lab boot per size. Guest (--guest): the measurement."""
    args = parse_args(argv)
    if args.guest is not None:
        return guest_main(args.guest)
    kube_proxy = build_kube_proxy()
    worst = 0
    for services in args.services or (1000, 10_000):
        worst = max(worst, run_size(args, services=services, kube_proxy=kube_proxy))
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
