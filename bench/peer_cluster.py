"""The cluster of the side-by-side bench (issue 18) as data: S Services, their slices, the changes. Pure.

Every Service is a ClusterIP with one port and 3 endpoints; every tenth has ClientIP affinity (so the two
proxies' persistence settings meet) and every twentieth, from the fifth, is UDP. ClusterIPs are set
explicitly from SERVICE_CIDR so the expected table is known before the apiserver allocates anything:
10,000 IPv4 ClusterIPs do not fit a documentation /24, and kube-proxy is run single-stack IPv4, so the bench
uses 10.0.0.0/16 (the apiserver harness's own default range is 10.0.0.0/24). Endpoints come from a pool in
198.51.100.0/24; a change replaces a Service's third endpoint with an address from 203.0.113.0/24 that the
Service never had, so "the change is in the kernel" is one real server present.

The manifests reuse the e2e bed's builders (tests/e2e/workload.py): its EndpointSlice in the version the
server serves, and its Node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from tests.e2e.workload import NAMESPACE, PodInfo, ServiceSpec, endpoint_slice_manifest, slice_name

Manifest = dict[str, Any]
VirtualKey = tuple[str, str, int]  # protocol as /proc/net/ip_vs writes it, address, port
Endpoint = tuple[str, int]

SERVICE_CIDR = "10.0.0.0/16"
FIRST_CLUSTER_IP = IPv4Address("10.0.1.0")  # 10.0.0.1 is the apiserver's own `kubernetes` Service
MAX_SERVICES = 60_000  # what fits between FIRST_CLUSTER_IP and the end of SERVICE_CIDR
POD_POOL_START = IPv4Address("198.51.100.10")
POD_POOL_SIZE = 240
CHANGE_POOL_START = IPv4Address("203.0.113.1")
CHANGE_POOL_SIZE = 250
ENDPOINTS = 3
SERVICE_PORT = 80
TARGET_PORT = 8080
ENDPOINT_NODE = "node3"  # no proxy runs there: every endpoint is remote to both proxies, as at scale
CHANGE_STRIDE = 7919  # a prime: consecutive changes land on Services spread over the whole cluster


@dataclass(frozen=True, slots=True)
class Change:
    """One EndpointSlice change: Service `index` gets `address` in place of its third endpoint."""

    index: int
    address: str


def service_spec(index: int) -> ServiceSpec:
    """The `index`-th Service (from 0)."""
    if not 0 <= index < MAX_SERVICES:
        raise ValueError(f"service index {index} outside 0..{MAX_SERVICES - 1}")
    return ServiceSpec(
        name=f"peer-{index:05d}",
        app=f"peer-{index:05d}",
        cluster_ip=str(FIRST_CLUSTER_IP + index),
        port=SERVICE_PORT,
        target_port=TARGET_PORT,
        node_port=0,
        protocol="UDP" if index % 20 == 5 else "TCP",
        type="ClusterIP",
        client_ip_affinity=index % 10 == 0,
    )


def service_manifest(spec: ServiceSpec) -> Manifest:
    """A ClusterIP Service (no nodePort, no externalTrafficPolicy: the API refuses both on a ClusterIP)."""
    body: Manifest = {
        "type": "ClusterIP",
        "clusterIP": spec.cluster_ip,
        "selector": {"app": spec.app},
        "ports": [
            {"name": spec.port_name, "port": spec.port, "targetPort": spec.target_port, "protocol": spec.protocol}
        ],
        "sessionAffinity": "ClientIP" if spec.client_ip_affinity else "None",
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": spec.name, "namespace": NAMESPACE},
        "spec": body,
    }


def endpoint_addresses(index: int, *, replaced: str | None = None) -> tuple[str, ...]:
    """The 3 endpoint addresses of Service `index` (distinct), the third one `replaced` when given."""
    first = ENDPOINTS * index
    addresses = [str(POD_POOL_START + (first + j) % POD_POOL_SIZE) for j in range(ENDPOINTS)]
    if replaced is not None:
        addresses[-1] = replaced
    return tuple(addresses)


def slice_manifest(index: int, *, api_version: str, changed_at: str, replaced: str | None = None) -> Manifest:
    """Service `index`'s EndpointSlice (every endpoint ready, on ENDPOINT_NODE), in `api_version`'s shape."""
    spec = service_spec(index)
    pods = [
        PodInfo(name=f"{spec.name}-{j}", app=spec.app, node=ENDPOINT_NODE, ip=address)
        for j, address in enumerate(endpoint_addresses(index, replaced=replaced))
    ]
    return endpoint_slice_manifest(spec, pods=pods, zones={}, api_version=api_version, changed_at=changed_at)


def slice_path(index: int, *, api_version: str) -> str:
    """The URL path of Service `index`'s EndpointSlice."""
    return f"/apis/{api_version}/namespaces/{NAMESPACE}/endpointslices/{slice_name(service_spec(index))}"


def virtual_key(index: int) -> VirtualKey:
    """Service `index`'s ClusterIP virtual service, keyed as /proc/net/ip_vs writes it."""
    spec = service_spec(index)
    return spec.protocol, spec.cluster_ip, spec.port


def changes(*, services: int, count: int, first: int = 0) -> list[Change]:
    """Changes number `first`..`first + count - 1`: each on a Service no other change of the run touches."""
    if first < 0 or count < 0 or first + count > services:
        raise ValueError(f"{first + count} changes need as many Services; there are {services}")
    return [
        Change(index=(number * CHANGE_STRIDE) % services, address=str(CHANGE_POOL_START + number % CHANGE_POOL_SIZE))
        for number in range(first, first + count)
    ]


def expected_table(*, services: int, applied: Sequence[Change] = ()) -> dict[VirtualKey, frozenset[Endpoint]]:
    """Every Service's virtual service and real servers once `applied` are in."""
    replaced = {change.index: change.address for change in applied}
    return {
        virtual_key(index): frozenset(
            (address, TARGET_PORT) for address in endpoint_addresses(index, replaced=replaced.get(index))
        )
        for index in range(services)
    }
