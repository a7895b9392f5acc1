"""The bed's cluster as data: nodes, pods, Services, and the objects a real control plane would hold for them.

Pure: no I/O. The bed (bed.py) writes these objects through the kube-apiserver; here they are only built.
The workload is the example cluster of the seeds (examples/cluster): `sample` pods on node1 (one) and node2
(two), none on node3; `sample-session-affinity` (LoadBalancer, Cluster, ClientIP 10800), `sample-nodeport-local`
(NodePort, Local), `my-service` (LoadBalancer, Local, ClientIP, healthCheckNodePort 32000). The bed adds
`sample-web` (NodePort, Cluster, no affinity: plain round robin) and `udp-echo` (a UDP NodePort Service whose
pods run on node1 and node3).

EndpointSlices are what the EndpointSlice controller writes: one per Service, every pod its selector matches,
with nodeName, zone and the ready / serving / terminating conditions of the pod's state, in the API version
the server serves (discovery.k8s.io/v1, or v1beta1 before Kubernetes 1.21, where the zone is a topology label).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Manifest = dict[str, Any]

NAMESPACE = "default"
SLICE_V1 = "discovery.k8s.io/v1"
SLICE_V1BETA1 = "discovery.k8s.io/v1beta1"
SLICE_VERSIONS = (SLICE_V1, SLICE_V1BETA1)
HOSTNAME_LABEL = "kubernetes.io/hostname"
ZONE_LABEL = "topology.kubernetes.io/zone"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER = "endpointslice-controller.k8s.io"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"

# Addresses (documentation ranges only). The LAN, nodes and clients are tests/kernel/multinode.py's.
GATEWAY_IP = "192.0.2.1"  # the guest's root namespace on the LAN: the apiserver is here, forwarded to the host
APISERVER_PORT = 6443
LB_IP = "192.0.2.2"  # haproxy
SERVICE_CIDR = "203.0.113.0/25"  # the apiserver's --service-cluster-ip-range: ClusterIPs
SERVICE_CIDR6 = "2001:db8:96::/112"  # its second range: the IPv6 ClusterIPs of dual-stack Services
LOAD_BALANCER_CIDR = "203.0.113.128/25"  # ingress IPs the agents honour (--load-balancer-ip-cidr)
HTTP_PORT = 80  # what every sample pod serves
UDP_PORT = 5353  # what every udp-echo pod serves
HEALTH_PORT = 10256  # each agent's /healthz and /readyz, on its node's address (kube-proxy's port)


class PodState(enum.Enum):
    """Where a pod is in its life, as the EndpointSlice controller reports it."""

    PENDING = "pending"  # created, readiness probe not passed yet
    READY = "ready"
    TERMINATING = "terminating"  # deleted, still serving through its grace period


@dataclass(frozen=True, slots=True)
class PodInfo:
    """A pod as the control plane knows it."""

    name: str
    app: str
    node: str
    ip: str
    state: PodState = PodState.READY
    ip6: str = ""  # its IPv6 address, for the dual-stack Services' IPv6 EndpointSlices


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A node as the control plane knows it."""

    name: str
    ip: str
    zone: str
    pod_cidr: str
    ip6: str = ""
    pod_cidr6: str = ""


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One single-port Service of the workload."""

    name: str
    app: str  # the selector: app=<app>
    cluster_ip: str
    port: int
    target_port: int
    node_port: int
    protocol: str = "TCP"
    port_name: str = "http"
    type: str = "NodePort"
    external_traffic_policy: str = "Cluster"
    client_ip_affinity: bool = False
    affinity_timeout: int | None = None  # None with affinity: the API's default (10800 s)
    health_check_node_port: int | None = None
    ingress_ip: str | None = None
    annotations: tuple[tuple[str, str], ...] = ()
    cluster_ip6: str = ""  # set: a dual-stack Service (RequireDualStack), IPv4 first

    @property
    def families(self) -> tuple[str, ...]:
        """Its EndpointSlices' address types, one slice each."""
        return ("IPv4", "IPv6") if self.cluster_ip6 else ("IPv4",)


SAMPLE_SESSION_AFFINITY = ServiceSpec(
    name="sample-session-affinity",
    app="sample",
    cluster_ip="203.0.113.10",
    port=8080,
    target_port=HTTP_PORT,
    node_port=30080,
    type="LoadBalancer",
    client_ip_affinity=True,
    affinity_timeout=10800,
    ingress_ip="203.0.113.130",
)
SAMPLE_NODEPORT_LOCAL = ServiceSpec(
    name="sample-nodeport-local",
    app="sample",
    cluster_ip="203.0.113.11",
    port=80,
    target_port=HTTP_PORT,
    node_port=30085,
    external_traffic_policy="Local",
)
MY_SERVICE = ServiceSpec(
    name="my-service",
    app="sample",
    cluster_ip="203.0.113.12",
    port=80,
    target_port=HTTP_PORT,
    node_port=30090,
    type="LoadBalancer",
    external_traffic_policy="Local",
    client_ip_affinity=True,
    health_check_node_port=32000,
    ingress_ip="203.0.113.131",
)
SAMPLE_WEB = ServiceSpec(
    name="sample-web", app="sample", cluster_ip="203.0.113.13", port=80, target_port=HTTP_PORT, node_port=30081
)
UDP_ECHO = ServiceSpec(
    name="udp-echo",
    app="udp-echo",
    cluster_ip="203.0.113.20",
    port=53,
    target_port=UDP_PORT,
    node_port=30053,
    protocol="UDP",
    port_name="dns",
)
# Issue 20's comparison, in one run: ClientIP with per-node persistence (rr) next to cluster-wide affinity.
# Dual-stack: 1,000 distinct client sources fit in IPv6's documentation range, not in IPv4's.
SAMPLE_AFFINITY_NODE = ServiceSpec(
    name="sample-affinity-node",
    app="sample",
    cluster_ip="203.0.113.14",
    port=80,
    target_port=HTTP_PORT,
    node_port=30082,
    client_ip_affinity=True,
    cluster_ip6="2001:db8:96::14",
)
SAMPLE_AFFINITY_CLUSTER = ServiceSpec(
    name="sample-affinity-cluster",
    app="sample",
    cluster_ip="203.0.113.15",
    port=80,
    target_port=HTTP_PORT,
    node_port=30083,
    client_ip_affinity=True,
    annotations=(("ipvsctl.io/affinity-scope", "cluster"),),
    cluster_ip6="2001:db8:96::15",
)
SERVICES = (
    SAMPLE_SESSION_AFFINITY,
    SAMPLE_NODEPORT_LOCAL,
    MY_SERVICE,
    SAMPLE_WEB,
    UDP_ECHO,
    SAMPLE_AFFINITY_NODE,
    SAMPLE_AFFINITY_CLUSTER,
)

ZONES = ("zone-a", "zone-b", "zone-c")
# (app, node index from 1) of the pods the bed starts with, named <app>-<node><letter>.
INITIAL_PODS = (("sample", 1), ("sample", 2), ("sample", 2), ("udp-echo", 1), ("udp-echo", 3))


def pod_names(placements: Iterable[tuple[str, int]]) -> list[tuple[str, str, int]]:
    """(name, app, node index) for each placement: `<app>-<node><letter>`, letters counted per app and node."""
    counts: dict[tuple[str, int], int] = {}
    named = []
    for app, node in placements:
        index = counts.get((app, node), 0)
        counts[app, node] = index + 1
        named.append((f"{app}-{node}{chr(ord('a') + index)}", app, node))
    return named


def node_manifest(node: NodeInfo) -> Manifest:
    """A Node as a dual-stack kubelet registers it: InternalIPs (IPv4 first), hostname and zone labels, its pod
    CIDRs."""
    internal = [node.ip, *([node.ip6] if node.ip6 else [])]
    cidrs = [node.pod_cidr, *([node.pod_cidr6] if node.pod_cidr6 else [])]
    addresses = [{"type": "InternalIP", "address": address} for address in internal]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node.name, "labels": {HOSTNAME_LABEL: node.name, ZONE_LABEL: node.zone}},
        "spec": {"podCIDR": node.pod_cidr, "podCIDRs": cidrs},
        "status": {"addresses": [*addresses, {"type": "Hostname", "address": node.name}]},
    }


def service_manifest(spec: ServiceSpec) -> Manifest:
    """The Service as its owner writes it (the load-balancer status is set apart: see `ingress_status`)."""
    port: dict[str, Any] = {
        "name": spec.port_name,
        "port": spec.port,
        "targetPort": spec.target_port,
        "protocol": spec.protocol,
        "nodePort": spec.node_port,
    }
    body: dict[str, Any] = {
        "type": spec.type,
        "clusterIP": spec.cluster_ip,
        "selector": {"app": spec.app},
        "ports": [port],
        "externalTrafficPolicy": spec.external_traffic_policy,
        "sessionAffinity": "ClientIP" if spec.client_ip_affinity else "None",
    }
    if spec.client_ip_affinity and spec.affinity_timeout is not None:
        body["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": spec.affinity_timeout}}
    if spec.health_check_node_port is not None:
        body["healthCheckNodePort"] = spec.health_check_node_port
    if spec.cluster_ip6:
        body["ipFamilyPolicy"] = "RequireDualStack"
        body["ipFamilies"] = ["IPv4", "IPv6"]
        body["clusterIPs"] = [spec.cluster_ip, spec.cluster_ip6]
    metadata: dict[str, Any] = {"name": spec.name, "namespace": NAMESPACE}
    if spec.annotations:
        metadata["annotations"] = dict(spec.annotations)
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": body}


def ingress_status(spec: ServiceSpec) -> Manifest | None:
    """The `status` a load-balancer controller writes for a LoadBalancer Service (None: nothing to write)."""
    if spec.ingress_ip is None:
        return None
    return {"status": {"loadBalancer": {"ingress": [{"ip": spec.ingress_ip}]}}}


_CONDITIONS = {
    PodState.PENDING: {"ready": False, "serving": False, "terminating": False},
    PodState.READY: {"ready": True, "serving": True, "terminating": False},
    PodState.TERMINATING: {"ready": False, "serving": True, "terminating": True},
}


def slice_name(spec: ServiceSpec, family: str = "IPv4") -> str:
    """The EndpointSlice of a Service for one address type (the controller would generate the suffix)."""
    return f"{spec.name}-e2e" if family == "IPv4" else f"{spec.name}-e2e6"


def endpoint_slice_manifest(
    spec: ServiceSpec,
    *,
    pods: Sequence[PodInfo],
    zones: Mapping[str, str],
    api_version: str,
    changed_at: str,
    family: str = "IPv4",
) -> Manifest:
    """The EndpointSlice the controller keeps for `spec` and one address type (`family`, "IPv4" or "IPv6"):
    every pod of its app, in `api_version`'s shape.

    `zones` maps node names to zones; `changed_at` (RFC 3339) is the last-change-trigger-time annotation.
    """
    if api_version not in SLICE_VERSIONS:
        raise ValueError(f"unknown EndpointSlice version {api_version!r}")
    if family not in spec.families:
        raise ValueError(f"{spec.name} has no {family} family")
    endpoints = []
    for pod in pods:
        if pod.app != spec.app:
            continue
        address = pod.ip if family == "IPv4" else pod.ip6
        if not address:
            raise ValueError(f"pod {pod.name} has no {family} address for {spec.name}")
        endpoint: dict[str, Any] = {
            "addresses": [address],
            "conditions": dict(_CONDITIONS[pod.state]),
            "nodeName": pod.node,
            "targetRef": {"kind": "Pod", "name": pod.name, "namespace": NAMESPACE},
        }
        zone = zones.get(pod.node, "")
        if api_version == SLICE_V1:
            endpoint["zone"] = zone
        else:  # v1beta1 carried the zone (and the node before nodeName) as topology labels
            endpoint["topology"] = {HOSTNAME_LABEL: pod.node, ZONE_LABEL: zone}
        endpoints.append(endpoint)
    return {
        "apiVersion": api_version,
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(spec, family),
            "namespace": NAMESPACE,
            "labels": {SERVICE_NAME_LABEL: spec.name, MANAGED_BY_LABEL: CONTROLLER},
            "annotations": {TRIGGER_TIME_ANNOTATION: changed_at},
        },
        "addressType": family,
        "ports": [{"name": spec.port_name, "port": spec.target_port, "protocol": spec.protocol}],
        "endpoints": endpoints,
    }


def slice_version(served: Iterable[str]) -> str:
    """The EndpointSlice version to write, from the versions the server serves in discovery.k8s.io."""
    versions = set(served)
    for version in SLICE_VERSIONS:
        if version.rpartition("/")[2] in versions:
            return version
    raise ValueError(f"the server serves no EndpointSlice version the bed knows (it serves {sorted(versions)})")
