"""Synthetic clusters for the benchmarks, as raw API objects and as views, and the agent that holds them.

Addresses come from documentation ranges only. 10,000 ClusterIPs do not fit the IPv4 documentation
ranges (3 x /24), so every Service is single-stack IPv6: ClusterIPs in 2001:db8:a::/64, Pod IPs in
2001:db8:b::/64 (distinct per endpoint), the node at 192.0.2.1. A Service has one TCP port (80 → 8080)
and one EndpointSlice; endpoints are spread over 50 nodes, one tenth of them on this node.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from ipvsctl.agent.clock import MonotonicClock
from ipvsctl.agent.config import AgentConfig
from ipvsctl.agent.http import Bind
from ipvsctl.agent.node import NodeAgent
from ipvsctl.backend.base import Backend
from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.kube.views import (
    EndpointSliceView,
    EndpointView,
    ObjectRef,
    ServicePortView,
    ServiceView,
    SlicePortView,
)
from ipvsctl.model import Protocol

__all__ = [
    "NODE",
    "NODE_IP",
    "RESULTS",
    "Cluster",
    "NullSink",
    "cluster_ip",
    "make_agent",
    "median",
    "node_object",
    "percentile",
    "pod_ip",
    "print_table",
    "quiet_logs",
    "raw_service",
    "raw_slice",
    "timed",
    "write_results",
]

NODE = "worker1"
NODE_IP = "192.0.2.1"
NODES = 50
NAMESPACES = 100
CREATED = "2026-01-01T00:00:00Z"
RESULTS = Path(__file__).parent / "results"
_CLUSTER_NET = int(ipaddress.IPv6Address("2001:db8:a::"))
_POD_NET = int(ipaddress.IPv6Address("2001:db8:b::"))

JSON = dict[str, Any]


def cluster_ip(index: int) -> str:
    """The ClusterIP of Service ``index``."""
    return str(ipaddress.IPv6Address(_CLUSTER_NET + index + 1))


def pod_ip(number: int) -> str:
    """The address of Pod ``number`` (any non-negative integer below 2**64)."""
    return str(ipaddress.IPv6Address(_POD_NET + number + 1))


def _names(index: int) -> tuple[str, str]:
    return f"ns-{index % NAMESPACES}", f"svc-{index}"


def _node_of(endpoint: int) -> str:
    return f"worker{endpoint % NODES + 1}"


def raw_service(index: int) -> JSON:
    """Service ``index`` as the API sends it."""
    namespace, name = _names(index)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{index}", "creationTimestamp": CREATED},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip(index),
            "clusterIPs": [cluster_ip(index)],
            "ipFamilies": ["IPv6"],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
            "sessionAffinity": "None",
        },
    }


def raw_slice(index: int, *, endpoints: int, first_pod: int | None = None) -> JSON:
    """The EndpointSlice of Service ``index`` with ``endpoints`` ready endpoints (Pods first_pod, first_pod+1, ...)."""
    namespace, name = _names(index)
    start = index * endpoints if first_pod is None else first_pod
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{name}-x1",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": "IPv6",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [pod_ip(start + k)],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "nodeName": _node_of(start + k),
                "targetRef": {"kind": "Pod", "namespace": namespace, "name": f"{name}-{k}"},
            }
            for k in range(endpoints)
        ],
    }


def node_object() -> JSON:
    """This node's Node."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": NODE},
        "status": {"addresses": [{"type": "InternalIP", "address": NODE_IP}]},
    }


@dataclass(frozen=True, slots=True)
class Cluster:
    """``services`` Services with ``endpoints`` endpoints each."""

    services: int
    endpoints: int

    @property
    def label(self) -> str:
        """Short name of the shape, e.g. ``10000x10``."""
        return f"{self.services}x{self.endpoints}"

    def raw(self) -> tuple[list[JSON], list[JSON]]:
        """Services and EndpointSlices as the API lists them."""
        return (
            [raw_service(i) for i in range(self.services)],
            [raw_slice(i, endpoints=self.endpoints) for i in range(self.services)],
        )

    def views(self) -> tuple[list[ServiceView], list[EndpointSliceView]]:
        """The same objects built directly as views (what ``kube.parse`` makes of ``raw``)."""
        port = (ServicePortView("http", Protocol.TCP, 80),)
        slice_port = (SlicePortView("http", Protocol.TCP, 8080),)
        services: list[ServiceView] = []
        slices: list[EndpointSliceView] = []
        for i in range(self.services):
            namespace, name = _names(i)
            ref = ObjectRef(namespace, name)
            services.append(
                ServiceView(
                    ref=ref,
                    uid=f"uid-{i}",
                    creation_timestamp=CREATED,
                    cluster_ips=(cluster_ip(i),),
                    ports=port,
                    ip_families=("IPv6",),
                )
            )
            start = i * self.endpoints
            slices.append(
                EndpointSliceView(
                    ref=ObjectRef(namespace, f"{name}-x1"),
                    service_name=name,
                    address_type="IPv6",
                    ports=slice_port,
                    endpoints=tuple(
                        EndpointView(
                            address=pod_ip(start + k),
                            node_name=_node_of(start + k),
                            target=ObjectRef(namespace, f"{name}-{k}"),
                        )
                        for k in range(self.endpoints)
                    ),
                )
            )
        return services, slices


class NullSink:
    """An Event sink that drops Events (no Service in these clusters has a problem to report)."""

    async def create(self, event: Mapping[str, object]) -> None:
        """Drop the Event."""

    async def patch(self, *, namespace: str, name: str, changes: Mapping[str, object]) -> None:
        """Drop the change."""


def make_agent(backend: Backend | None = None) -> NodeAgent:
    """A node agent on the memory backend (no watchers, no HTTP: the benchmarks drive its handlers)."""
    config = AgentConfig(
        node_name=NODE,
        health_bind=Bind("127.0.0.1", 0),
        metrics_bind=Bind("127.0.0.1", 0),
        health_check_address="127.0.0.1",
        backend="memory",
    )
    return NodeAgent(
        config=config,
        backend=backend or MemoryBackend(),
        event_sink=NullSink(),
        clock=MonotonicClock(),
        freeze_heap=True,
    )


def quiet_logs() -> None:
    """Only warnings and errors, so that logging does not take part in the timings."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def median(values: Sequence[float]) -> float:
    """The median of ``values``."""
    return statistics.median(values)


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain aligned table on stdout."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print(
            "  ".join(
                cell.rjust(width) if i else cell.ljust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            print("  ".join("-" * width for width in widths))


def write_results(name: str, results: Mapping[str, object]) -> Path:
    """Write ``results`` with the machine it ran on to ``bench/results/<name>-<timestamp>.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{name}-{stamp}.json"
    document = {"benchmark": name, "when": stamp, "machine": machine(), **results}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def machine() -> dict[str, object]:
    """Python, platform and CPU count of this run."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": _cpu_model(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def timed(start: float) -> float:
    """Seconds since ``start`` (a ``time.perf_counter`` value)."""
    return time.perf_counter() - start
