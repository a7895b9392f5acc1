"""Issue 13 on the host: reading the inputs (manifests, save files, connection tables), and start-up.

1. Loading 10,000 Services + their EndpointSlices (x 3 and x 10 endpoints) with ``load_manifests``, from one
   JSON List (``kubectl get -o json``) and from the same List in YAML: the median of 5 runs in one process.
2. Decoders, on the same 20,000 objects' JSON bytes → views: msgspec (``kube/parse.py``), pydantic v2 models
   of the same fields feeding the same view code, and (with ``--baseline``) the hand-written walk it replaced.
3. ``parse_save`` of the table's ``ipvsadm -Sn`` text (40,000 lines) and ``parse_connections`` of 100,000
   connection-table lines.
4. Whole processes: ``ipvsctl --help`` (median of 10) and an offline ``ipvsctl diff`` of the 10,000 x 3
   cluster (JSON manifests + the save of its own table: in sync), median of 3.
5. Memory, a fresh process per input: peak RSS (VmHWM) above the RSS before ``load_manifests``, per byte
   of input, for JSON and YAML files up to the 64 MiB cap; and a file just over the cap, refused unread.

``--baseline REF`` runs 1, 3 and 4 again with the package as it was at git REF (``git archive`` into a
temporary directory, first on ``PYTHONPATH``), in subprocesses.

Run: ``.venv/bin/python -m bench.inputs [--baseline f6a2379] [--quick]`` (about 3 minutes; the baseline's
YAML takes 20 s per load). Prints tables; writes ``bench/results/inputs-<time>.json``.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.cluster import NODE, NODE_IP, Cluster, median, node_object, print_table, write_results
from ipvsctl.kube import parse, wire
from ipvsctl.translate import NodeContext, Policy, translate

TARGET_JSON_S, TARGET_YAML_S, TARGET_HELP_S = 0.3, 1.5, 0.15
MEMORY_TARGET = 10.0  # peak RSS over input size
SHAPES = (Cluster(10_000, 3), Cluster(10_000, 10))
CONNECTIONS = 100_000
ROOT = Path(__file__).resolve().parent.parent

# Run in a subprocess (this package, or a baseline's on PYTHONPATH): timings of the readers, as JSON.
_READERS = """
import gc, json, statistics, sys, time
from ipvsctl.kube.manifests import load_manifests
from ipvsctl.ipvsadm import parse_save
from ipvsctl.conntable import parse_connections
runs, files, save, conn = json.loads(sys.argv[1])

def best(action):
    times = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result

def load(path):
    try:  # 10,000 Services x 10 as kubectl -o json writes them are 75 MB: over the default cap
        return load_manifests([path], max_bytes=2**30)
    except TypeError:  # a baseline from before the cap
        return load_manifests([path])

out = {}
for name, path, count in files:
    seconds, loaded = best(lambda: load(path))
    assert len(loaded.services) == count and not loaded.errors, (name, len(loaded.services), loaded.errors[:3])
    out[name] = seconds
save_bytes, conn_bytes = open(save, "rb").read(), open(conn, "rb").read()
out["parse_save"] = best(lambda: parse_save(save_bytes))[0]
out["parse_connections"] = best(lambda: parse_connections(conn_bytes))[0]
print(json.dumps(out))
"""

# Run in a fresh process per input: memory of one load_manifests.
_MEMORY = """
import json, sys
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
from ipvsctl.errors import ManifestError
from ipvsctl.kube.manifests import load_manifests
import yaml_rs  # loaded on first use: its code is not memory the input costs
before = status("VmRSS")
try:
    loaded = load_manifests([sys.argv[1]])
    outcome = f"{len(loaded.services)} Services"
except ManifestError as error:
    outcome = error.message
print(json.dumps({"before": before, "peak": status("VmHWM"), "outcome": outcome}))
"""


def write_inputs(directory: Path, shape: Cluster, *, node: bool = True) -> dict[str, Path]:
    """The cluster as one JSON List and the same List in YAML."""
    import yaml  # noqa: PLC0415 (writing YAML is the benchmark's own business; the package only reads it)

    services, slices = shape.raw()
    document = {"apiVersion": "v1", "kind": "List", "items": [*services, *slices, *([node_object()] if node else [])]}
    paths = {"json": directory / f"{shape.label}.json", "yaml": directory / f"{shape.label}.yaml"}
    paths["json"].write_text(json.dumps(document, indent=4))
    paths["yaml"].write_text(yaml.safe_dump(document, sort_keys=False))
    return paths


def connection_table(path: Path) -> Path:
    """A /proc/net/ip_vs_conn of CONNECTIONS lines: 1,000 clients, 100 VIPs, 300 servers."""
    lines = ["Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData"]
    for n in range(CONNECTIONS):
        client, vip, server = 0xC0000200 + n % 1000, 0xCB007100 + n % 100, 0xC6336400 + n % 300
        lines.append(
            f"TCP {client:08X} {n % 60000 + 1024:04X} {vip:08X} 0050 {server:08X} 1F90 ESTABLISHED     {n % 900}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def save_text(shape: Cluster, path: Path) -> Path:
    """The ``ipvsadm -Sn`` text of node worker1's table for the cluster."""
    from ipvsctl.ipvsadm import write_save  # noqa: PLC0415

    services, slices = shape.views()
    path.write_text(write_save(translate(services, slices, node=NodeContext(NODE, (NODE_IP,)), policy=Policy()).table))
    return path


def readers(python_path: str | None, *, runs: int, files: list[tuple[str, str, int]], save: Path, conn: Path) -> Any:
    """The readers' timings in a subprocess, with ``python_path`` first on the path."""
    env = {**os.environ, **({"PYTHONPATH": python_path} if python_path else {})}
    argv = [sys.executable, "-c", _READERS, json.dumps([runs, files, str(save), str(conn)])]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env, cwd=save.parent)
    if done.returncode:
        sys.exit(f"bench.inputs: the readers failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def process_seconds(argv: list[str], *, runs: int, python_path: str | None = None, ok: tuple[int, ...] = (0,)) -> float:
    """Median seconds of a whole process."""
    env = {**os.environ, **({"PYTHONPATH": python_path} if python_path else {})}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        # Run from elsewhere: "" (the current directory) comes first on the path of ``python -c``.
        done = subprocess.run(argv, capture_output=True, check=False, env=env, cwd=tempfile.gettempdir())
        times.append(time.perf_counter() - start)
        assert done.returncode in ok, (argv[:4], done.returncode, done.stderr[-500:])
    return median(times)


def commands(python_path: str | None, *, manifests: Path, save: Path, runs: int) -> dict[str, float]:
    """``ipvsctl --help`` and an offline diff, whole processes."""
    cli = [sys.executable, "-c", "from ipvsctl.cli import main; main()"]
    diff = [*cli, "diff", "--manifests", str(manifests), "--node", NODE, "--current-save", str(save)]
    return {
        "ipvsctl --help": process_seconds([*cli, "--help"], runs=10 if runs > 1 else 1, python_path=python_path),
        "ipvsctl diff (offline, in sync)": process_seconds(diff, runs=runs, python_path=python_path, ok=(0,)),
    }


# --- decoders ---------------------------------------------------------------------------------------


def decoders(shape: Cluster, *, runs: int) -> dict[str, float]:
    """JSON bytes of each object → views: msgspec, and pydantic models feeding the same view code."""
    services, slices = shape.raw()
    service_bytes = [json.dumps(obj).encode() for obj in services]
    slice_bytes = [json.dumps(obj).encode() for obj in slices]
    expected = shape.views()

    def with_msgspec() -> object:
        return [parse.parse_service(b) for b in service_bytes], [parse.parse_endpoint_slice(b) for b in slice_bytes]

    result: dict[str, float] = {"msgspec": timed_median(with_msgspec, runs=runs, expected=expected)}
    try:
        service_model, slice_model = pydantic_models()
    except ImportError:
        return result
    # The same view code reads the models' attributes (the wire Structs' names), so only the decoder differs.
    service_view: Callable[[Any], object] = parse._service_view
    slice_view: Callable[[Any], object] = parse._slice_view

    def with_pydantic() -> object:
        return (
            [service_view(service_model.model_validate_json(b)) for b in service_bytes],
            [slice_view(slice_model.model_validate_json(b)) for b in slice_bytes],
        )

    result["pydantic"] = timed_median(with_pydantic, runs=runs, expected=expected)
    return result


def timed_median(action: Callable[[], object], *, runs: int, expected: object) -> float:
    """Median seconds of ``action`` (garbage collected before each run); its result checked."""
    times = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
        assert [list(part) for part in result] == [list(part) for part in expected]  # type: ignore[attr-defined]
    return median(times)


def pydantic_models() -> tuple[Any, Any]:
    """pydantic v2 models of the fields ``kube/wire.py`` declares (strict types, API names as aliases)."""
    from pydantic import BaseModel, ConfigDict, Field  # noqa: PLC0415 (optional: typer's dependency here)

    class Model(BaseModel):
        model_config = ConfigDict(strict=True, populate_by_name=True, extra="ignore")

    class ObjectMeta(Model):
        name: str | None = None
        namespace: str | None = None
        uid: str | None = None
        creation_timestamp: str | None = Field(None, alias="creationTimestamp")
        labels: dict[str, object] | None = None
        annotations: dict[str, object] | None = None

    class ServicePort(Model):
        name: str | None = None
        protocol: str | None = None
        port: int | None = None
        node_port: int | None = Field(None, alias="nodePort")

    class ServiceSpec(Model):
        type: str | None = None
        cluster_ip: str | None = Field(None, alias="clusterIP")
        cluster_ips: list[str | None] | None = Field(None, alias="clusterIPs")
        ports: list[ServicePort | None] | None = None
        external_ips: list[str | None] | None = Field(None, alias="externalIPs")
        session_affinity: str | None = Field(None, alias="sessionAffinity")
        session_affinity_config: None = Field(None, alias="sessionAffinityConfig")
        external_traffic_policy: str | None = Field(None, alias="externalTrafficPolicy")
        internal_traffic_policy: str | None = Field(None, alias="internalTrafficPolicy")
        health_check_node_port: int | None = Field(None, alias="healthCheckNodePort")

    class Service(Model):
        kind: str | None = None
        api_version: str | None = Field(None, alias="apiVersion")
        metadata: ObjectMeta | None = None
        spec: ServiceSpec | None = None
        status: None = None

    class Conditions(Model):
        ready: bool | None = None
        serving: bool | None = None
        terminating: bool | None = None

    class TargetRef(Model):
        name: str | None = None
        namespace: str | None = None

    class Endpoint(Model):
        addresses: list[str | None] | None = None
        conditions: Conditions | None = None
        node_name: str | None = Field(None, alias="nodeName")
        topology: dict[str, object] | None = None
        target_ref: TargetRef | None = Field(None, alias="targetRef")

    class SlicePort(Model):
        name: str | None = None
        protocol: str | None = None
        port: int | None = None

    class EndpointSlice(Model):
        kind: str | None = None
        api_version: str | None = Field(None, alias="apiVersion")
        metadata: ObjectMeta | None = None
        address_type: str | None = Field(None, alias="addressType")
        ports: list[SlicePort | None] | None = None
        endpoints: list[Endpoint | None] | None = None

    assert {"name", "namespace"} <= set(wire.ObjectMeta.__struct_fields__)  # the same fields as the Structs
    return Service, EndpointSlice


# --- memory -----------------------------------------------------------------------------------------


def memory(directory: Path, *, quick: bool) -> list[dict[str, object]]:
    """Peak RSS above the start, per input byte, in a fresh process per input."""
    sizes = (
        [Cluster(500, 3), Cluster(10_000, 3)] if quick else [Cluster(500, 3), Cluster(10_000, 3), Cluster(18_000, 3)]
    )
    rows: list[dict[str, object]] = []
    for shape in sizes:
        for kind, path in write_inputs(directory, shape).items():
            rows.append(memory_of(path, label=f"{shape.label} {kind}"))
            path.unlink()
    over = directory / "over-the-cap.json"
    with over.open("wb") as file:
        file.truncate(64 * 2**20 + 1)  # sparse: a file of 64 MiB and one byte that costs no disk
    rows.append(memory_of(over, label="64 MiB + 1 byte"))
    over.unlink()
    return rows


def memory_of(path: Path, *, label: str) -> dict[str, object]:
    size = path.stat().st_size
    argv = [sys.executable, "-c", _MEMORY, str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=tempfile.gettempdir())
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    grown = measured["peak"] - measured["before"]
    return {"input": label, "bytes": size, "peak_growth": grown, "ratio": grown / size, "outcome": measured["outcome"]}


# --- baseline ---------------------------------------------------------------------------------------


def export(ref: str, directory: Path) -> str:
    """The package as it was at ``ref``, unpacked into ``directory``: a PYTHONPATH entry."""
    archive = subprocess.run(["git", "archive", ref, "ipvsctl"], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    return str(directory)


def main() -> None:
    """Measure, print, write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", metavar="REF", help="also measure the package as it was at this git ref")
    parser.add_argument("--quick", action="store_true", help="one shape, one run each (a smoke run)")
    args = parser.parse_args()
    runs = 1 if args.quick else 5
    shapes = SHAPES[:1] if args.quick else SHAPES
    results: dict[str, object] = {"quick": args.quick}
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        files: list[tuple[str, str, int]] = []
        for shape in shapes:
            for kind, path in write_inputs(directory, shape).items():
                files.append((f"load {shape.label} {kind}", str(path), shape.services))
        save = save_text(shapes[0], directory / "table.save")
        conn = connection_table(directory / "ip_vs_conn")
        readers_now = readers(None, runs=runs, files=files, save=save, conn=conn)
        commands_now = commands(None, manifests=Path(files[0][1]), save=save, runs=1 if args.quick else 3)
        decoding = decoders(shapes[0], runs=runs)
        baseline: dict[str, float] = {}
        if args.baseline:
            tree = export(args.baseline, directory / "baseline")
            baseline = readers(tree, runs=1, files=files, save=save, conn=conn)
            baseline |= commands(tree, manifests=Path(files[0][1]), save=save, runs=1)
            decoding["hand-written (baseline: json.loads + walk)"] = baseline_walk(tree, shapes[0])
        results |= {"readers": readers_now, "commands": commands_now, "decoders": decoding, "baseline": baseline}
        memory_rows = memory(directory, quick=args.quick)
        results["memory"] = memory_rows
    rows = [
        [name, f"{seconds:.3f}", f"{baseline[name]:.3f}" if name in baseline else "-"]
        for name, seconds in {**readers_now, **commands_now}.items()
    ]
    print_table("Readers and commands (seconds; median)", ["what", "now", f"baseline {args.baseline or ''}"], rows)
    print_table(
        "Decoders: 20,000 objects' JSON bytes -> views (seconds)",
        ["decoder", "seconds"],
        [[name, f"{seconds:.3f}"] for name, seconds in decoding.items()],
    )
    print_table(
        "Memory: peak RSS growth per input byte (fresh process each)",
        ["input", "bytes", "growth", "ratio", "outcome"],
        [[r["input"], r["bytes"], r["peak_growth"], f"{r['ratio']:.2f}", r["outcome"]] for r in memory_rows],
    )
    path = write_results("inputs", results)
    print(f"results: {path}")


def baseline_walk(tree: str, shape: Cluster) -> float:
    """The hand-written walk of the baseline: ``json.loads`` of each object's bytes, then its parse_*."""
    script = """
import gc, json, statistics, sys, time
sys.path.append(sys.argv[1])  # after the baseline: only bench.cluster comes from here
from bench.cluster import Cluster
from ipvsctl.kube.parse import parse_endpoint_slice, parse_service
services, slices = Cluster(int(sys.argv[2]), int(sys.argv[3])).raw()
sb = [json.dumps(o).encode() for o in services]; lb = [json.dumps(o).encode() for o in slices]
gc.collect()
start = time.perf_counter()
[parse_service(json.loads(b)) for b in sb]; [parse_endpoint_slice(json.loads(b)) for b in lb]
print(time.perf_counter() - start)
"""
    env = {**os.environ, "PYTHONPATH": tree}
    argv = [sys.executable, "-c", script, str(ROOT), str(shape.services), str(shape.endpoints)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, env=env, cwd=tempfile.gettempdir())
    return float(done.stdout.strip())


if __name__ == "__main__":
    main()
