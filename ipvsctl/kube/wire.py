"""The Kubernetes objects the proxy reads, as typed msgspec Structs: exactly the fields it reads, nothing more.

msgspec decodes API bytes (and converts YAML's values) straight into these types in C, skipping every
field not declared here, and checks each declared field's JSON type on the way. What a field *means*
(ranges, choices, addresses, required fields, API defaults) is checked afterwards by ``kube/parse.py``,
so every field is optional here: an absent field and an explicit ``null`` are the same thing, as in the API.

Names are the API's (``rename="camel"``; the acronyms it spells in capitals are named explicitly). Maps
whose values the proxy reads (labels, annotations, topology) keep ``object`` values so that ``parse.py``
can name the offending key; every other type is what the field must be.
"""

from __future__ import annotations

from msgspec import Struct, field

__all__ = [
    "Endpoint",
    "EndpointConditions",
    "EndpointSlice",
    "Identity",
    "Node",
    "NodeAddress",
    "ObjectMeta",
    "Service",
    "ServicePort",
    "SlicePort",
]

# gc=False: these objects hold only strings, numbers and other Structs, never a cycle; untracked, they cost
# the garbage collector nothing while a list of 10,000 Services is converted.


class ObjectMeta(Struct, rename="camel", gc=False):
    """``metadata``: the fields the proxy reads."""

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    creation_timestamp: str | None = None
    labels: dict[str, object] | None = None
    annotations: dict[str, object] | None = None


class Identity(Struct, rename="camel", gc=False):
    """Any object's kind, apiVersion and metadata, of any type: how an object that fails to decode is named."""

    kind: object = None
    api_version: object = None
    metadata: object = None


# --- Service ---------------------------------------------------------------------------------------


class ServicePort(Struct, rename="camel", gc=False):
    """An entry of ``spec.ports``."""

    name: str | None = None
    protocol: str | None = None
    port: int | None = None
    node_port: int | None = None


class ClientIPConfig(Struct, rename="camel", gc=False):
    """``spec.sessionAffinityConfig.clientIP``."""

    timeout_seconds: int | None = None


class SessionAffinityConfig(Struct, gc=False):
    """``spec.sessionAffinityConfig``."""

    client_ip: ClientIPConfig | None = field(default=None, name="clientIP")


class ServiceSpec(Struct, rename="camel", gc=False):
    """``spec`` of a Service."""

    type: str | None = None
    cluster_ip: str | None = field(default=None, name="clusterIP")
    cluster_ips: list[str | None] | None = field(default=None, name="clusterIPs")
    ports: list[ServicePort | None] | None = None
    external_ips: list[str | None] | None = field(default=None, name="externalIPs")
    session_affinity: str | None = None
    session_affinity_config: SessionAffinityConfig | None = None
    external_traffic_policy: str | None = None
    internal_traffic_policy: str | None = None
    health_check_node_port: int | None = None
    load_balancer_source_ranges: list[str | None] | None = None
    ip_families: list[str | None] | None = field(default=None, name="ipFamilies")
    traffic_distribution: str | None = None


class LoadBalancerIngress(Struct, gc=False):
    """An entry of ``status.loadBalancer.ingress``."""

    ip: str | None = None
    ip_mode: str | None = field(default=None, name="ipMode")


class LoadBalancerStatus(Struct, gc=False):
    """``status.loadBalancer``."""

    ingress: list[LoadBalancerIngress | None] | None = None


class ServiceStatus(Struct, rename="camel", gc=False):
    """``status`` of a Service."""

    load_balancer: LoadBalancerStatus | None = None


class Service(Struct, rename="camel", gc=False):
    """A core/v1 Service."""

    kind: str | None = None
    api_version: str | None = None
    metadata: ObjectMeta | None = None
    spec: ServiceSpec | None = None
    status: ServiceStatus | None = None


# --- EndpointSlice ---------------------------------------------------------------------------------


class SlicePort(Struct, gc=False):
    """An entry of an EndpointSlice's ``ports``."""

    name: str | None = None
    protocol: str | None = None
    port: int | None = None


class EndpointConditions(Struct, gc=False):
    """``endpoints[].conditions``."""

    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


class TargetRef(Struct, gc=False):
    """``endpoints[].targetRef``."""

    name: str | None = None
    namespace: str | None = None


class Endpoint(Struct, rename="camel", gc=False):
    """An entry of an EndpointSlice's ``endpoints``."""

    addresses: list[str | None] | None = None
    conditions: EndpointConditions | None = None
    node_name: str | None = None
    topology: dict[str, object] | None = None  # v1beta1
    target_ref: TargetRef | None = None
    zone: str | None = None
    # Read leniently by parse.py: a malformed hint costs the endpoint its hints, not the slice its endpoints.
    hints: object = None


class EndpointSlice(Struct, rename="camel", gc=False):
    """A discovery.k8s.io/v1 (or v1beta1) EndpointSlice."""

    kind: str | None = None
    api_version: str | None = None
    metadata: ObjectMeta | None = None
    address_type: str | None = None
    ports: list[SlicePort | None] | None = None
    endpoints: list[Endpoint | None] | None = None


# --- Node ------------------------------------------------------------------------------------------


class NodeAddress(Struct, gc=False):
    """An entry of ``status.addresses``."""

    type: str | None = None
    address: str | None = None


class NodeStatus(Struct, gc=False):
    """``status`` of a Node."""

    addresses: list[NodeAddress | None] | None = None


class NodeMeta(ObjectMeta, rename="camel", gc=False):
    """``metadata`` of a Node: also whether it is being deleted (what /healthz reports)."""

    deletion_timestamp: str | None = None


class Taint(Struct, gc=False):
    """An entry of ``spec.taints``."""

    key: str | None = None
    effect: str | None = None


class NodeSpec(Struct, gc=False):
    """``spec`` of a Node: its taints (one of them marks a node the cluster autoscaler is removing)."""

    taints: list[Taint | None] | None = None


class Node(Struct, rename="camel", gc=False):
    """A core/v1 Node."""

    kind: str | None = None
    api_version: str | None = None
    metadata: NodeMeta | None = None
    spec: NodeSpec | None = None
    status: NodeStatus | None = None
