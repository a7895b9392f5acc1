"""Small typed views of the Kubernetes objects the agent reads (Service, EndpointSlice, Node).

The views hold exactly what translation needs, already type-checked and with
addresses in canonical form. Building them from raw JSON is the job of
``ipvsctl.kube.parse``; semantic rules (timeouts, annotations, policies) belong
to ``ipvsctl.translate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import TypeVar

from ipvsctl.model import Protocol

__all__ = [
    "AUTOSCALER_TAINT",
    "EndpointSliceView",
    "EndpointView",
    "LoadBalancerIngressView",
    "NodeView",
    "ObjectRef",
    "ServicePortView",
    "ServiceView",
    "SlicePortView",
]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SERVICE_PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
HOSTNAME_TOPOLOGY_KEY = "kubernetes.io/hostname"
ZONE_LABEL = "topology.kubernetes.io/zone"
# The taint the cluster autoscaler puts on a node it is about to remove (kube-proxy's /healthz fails on it).
AUTOSCALER_TAINT = "ToBeDeletedByClusterAutoscaler"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"

_View = TypeVar("_View")


def _set_by_slot(cls: type[_View]) -> type[_View]:
    """The same ``__init__`` as the frozen dataclass's, setting each slot through its descriptor.

    A frozen dataclass's ``__init__`` sets each field with ``object.__setattr__(self, "name", value)``, which
    looks the name up again for every field; the slot's own descriptor does not. The views are built once per
    object, endpoint and port of every list and watch event (50,000 times for 10,000 Services x 3), and this
    builds them in about half the time. Signature, defaults and default factories are the dataclass's.
    """
    namespace: dict[str, object] = {"_MISSING": MISSING}
    parameters, body = [], []
    for item in fields(cls):  # type: ignore[arg-type]  # a dataclass, as the decorator order guarantees
        name = item.name
        namespace[f"_set_{name}"] = getattr(cls, name).__set__
        if item.default is not MISSING:
            namespace[f"_default_{name}"] = item.default
            parameters.append(f"{name}=_default_{name}")
        elif item.default_factory is not MISSING:
            namespace[f"_factory_{name}"] = item.default_factory
            parameters.append(f"{name}=_MISSING")
            body.append(f"if {name} is _MISSING: {name} = _factory_{name}()")
        else:
            parameters.append(name)
        body.append(f"_set_{name}(self, {name})")
    source = f"def __init__(self, {', '.join(parameters)}):\n" + "".join(f"    {line}\n" for line in body)
    exec(source, namespace)  # noqa: S102 (generated from the class's own field names, as dataclasses does)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"  # type: ignore[attr-defined]  # a function
    cls.__init__ = init  # type: ignore[method-assign,assignment]  # replaced once, as the class is made
    return cls


@_set_by_slot
@dataclass(frozen=True, slots=True, order=True)
class ObjectRef:
    """``namespace/name`` of a namespaced object (namespace empty for cluster-scoped ones)."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@_set_by_slot
@dataclass(frozen=True, slots=True)
class ServicePortView:
    """One entry of ``spec.ports``."""

    name: str
    protocol: Protocol  # TCP, UDP or SCTP
    port: int
    node_port: int | None = None


@_set_by_slot
@dataclass(frozen=True, slots=True)
class LoadBalancerIngressView:
    """An entry of ``status.loadBalancer.ingress`` that has an IP (``index`` is its place in the list)."""

    ip: str
    ip_mode: str = ""  # VIP | Proxy | empty when unset (the API's meaning: VIP)
    index: int = 0


@_set_by_slot
@dataclass(frozen=True, slots=True)
class ServiceView:
    """A core/v1 Service, reduced to what the proxy reads.

    ``cluster_ips`` is ``spec.clusterIPs`` (or ``[spec.clusterIP]``), canonical, and
    ``("None",)`` for a headless Service. ``creation_timestamp`` is the raw RFC 3339
    string (it sorts chronologically), empty when absent.
    """

    ref: ObjectRef
    uid: str = ""
    creation_timestamp: str = ""
    type: str = "ClusterIP"  # ClusterIP | NodePort | LoadBalancer | ExternalName
    cluster_ips: tuple[str, ...] = ()
    ports: tuple[ServicePortView, ...] = ()
    external_ips: tuple[str, ...] = ()
    load_balancer_ingress: tuple[LoadBalancerIngressView, ...] = ()  # entries with an IP
    session_affinity: str = "None"  # None | ClientIP
    affinity_timeout: int | None = None  # spec.sessionAffinityConfig.clientIP.timeoutSeconds, as given
    external_traffic_policy: str = "Cluster"  # Cluster | Local
    internal_traffic_policy: str = "Cluster"  # Cluster | Local
    health_check_node_port: int | None = None
    load_balancer_source_ranges: tuple[str, ...] = ()  # spec.loadBalancerSourceRanges, as written
    ip_families: tuple[str, ...] = ()  # spec.ipFamilies, as written (empty: from the cluster IPs)
    traffic_distribution: str = ""  # spec.trafficDistribution, as written
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_headless(self) -> bool:
        """``clusterIP: None``."""
        return self.cluster_ips == ("None",)

    @property
    def load_balancer_ips(self) -> tuple[str, ...]:
        """The IPs of ``status.loadBalancer.ingress``, whatever their ipMode."""
        return tuple(entry.ip for entry in self.load_balancer_ingress)


@_set_by_slot
@dataclass(frozen=True, slots=True)
class SlicePortView:
    """One entry of an EndpointSlice's ``ports`` (name empty when unnamed)."""

    name: str
    protocol: Protocol
    port: int


@_set_by_slot
@dataclass(frozen=True, slots=True)
class EndpointView:
    """One endpoint: its first address and its conditions with API defaults already applied.

    ``ready`` unset → True; ``serving`` unset → ``ready``; ``terminating`` unset → False.
    ``node_name`` comes from ``nodeName`` or, in v1beta1, ``topology["kubernetes.io/hostname"]``.
    ``zone_hints`` / ``node_hints`` are ``hints.forZones`` / ``hints.forNodes`` names (empty: no hint).
    """

    address: str
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str = ""
    target: ObjectRef | None = None  # targetRef (usually the Pod)
    zone: str = ""
    zone_hints: tuple[str, ...] = ()
    node_hints: tuple[str, ...] = ()


@_set_by_slot
@dataclass(frozen=True, slots=True)
class EndpointSliceView:
    """A discovery.k8s.io EndpointSlice (v1 or v1beta1). FQDN slices never become views."""

    ref: ObjectRef
    service_name: str  # label kubernetes.io/service-name
    address_type: str  # IPv4 | IPv6
    ports: tuple[SlicePortView, ...] = ()
    endpoints: tuple[EndpointView, ...] = ()
    # Annotation endpoints.kubernetes.io/last-change-trigger-time as POSIX seconds (None: absent or unreadable).
    trigger_time: float | None = None
    # Hints that could not be read, as (field, why): those endpoints count as unhinted.
    hint_problems: tuple[tuple[str, str], ...] = ()


@_set_by_slot
@dataclass(frozen=True, slots=True)
class NodeView:
    """A core/v1 Node: its name, InternalIP/ExternalIP addresses (canonical, in API order) and its zone label."""

    name: str
    addresses: tuple[str, ...] = ()
    zone: str = ""  # label topology.kubernetes.io/zone
    # Why the Node is on its way out: "deletionTimestamp", or the key of the cluster autoscaler's taint; "" if not.
    leaving: str = ""
