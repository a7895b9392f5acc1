"""Kubernetes views + this node's context → the desired IPVS table (pure).

Each Service is translated on its own (``translate_service``), so a change to one
Service costs only that Service; ``resolve`` then merges the per-Service results
and settles VIP conflicts (the oldest Service wins). ``translate`` does both.
A bad Service yields rejections and nothing else; it never disturbs the others.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import netaddr

from ipvsctl.annotations import AnnotationError, parse_netmasks, parse_scheduler, unknown_annotations
from ipvsctl.endpoints import EndpointSelection, backends_for_port, select
from ipvsctl.kube.views import (
    SERVICE_PROXY_NAME_LABEL,
    EndpointSliceView,
    ObjectRef,
    ServicePortView,
    ServiceView,
)
from ipvsctl.model import (
    DEFAULT_SCHEDULERS,
    Persistence,
    Protocol,
    RealServer,
    ServiceKey,
    Table,
    VirtualService,
    family_of,
)

__all__ = [
    "AFFINITY_TIMEOUT_DEFAULT",
    "AFFINITY_TIMEOUT_MAX",
    "NodeContext",
    "Notice",
    "Policy",
    "Rejection",
    "ServiceMessage",
    "ServiceResult",
    "Translation",
    "group_slices",
    "resolve",
    "translate",
    "translate_service",
]

AFFINITY_TIMEOUT_DEFAULT = 10800
AFFINITY_TIMEOUT_MAX = 86400
_TIMEOUT_FIELD = "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
_NEVER_CREATED = "\uffff"  # objects without creationTimestamp sort after every real timestamp


@dataclass(frozen=True, slots=True)
class NodeContext:
    """The node the table is for: its name and its IPs (NodePort VIPs)."""

    name: str
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Policy:
    """Agent-wide defaults and limits that translation applies."""

    default_scheduler: str = "rr"
    schedulers: frozenset[str] = DEFAULT_SCHEDULERS
    netmask_v4: int = 32
    netmask_v6: int = 128
    node_port_range: tuple[int, int] = (30000, 32767)
    external_ip_cidrs: netaddr.IPSet | None = None  # None: every externalIP is honoured

    def default_netmasks(self) -> dict[int, int]:
        """Default persistence prefix length per family."""
        return {4: self.netmask_v4, 6: self.netmask_v6}


@dataclass(frozen=True, slots=True)
class ServiceMessage:
    """Something said about one Service, at one field."""

    service: ObjectRef
    field: str
    message: str

    def __str__(self) -> str:
        return f"Service {self.service}: {self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class Rejection(ServiceMessage):
    """Why a Service (or one of its VIPs, for a conflict) is not programmed."""


@dataclass(frozen=True, slots=True)
class Notice(ServiceMessage):
    """Something an operator should know about a Service that is still programmed."""


@dataclass(frozen=True, slots=True)
class ServiceResult:
    """The translation of one Service, before conflicts with other Services are settled."""

    ref: ObjectRef
    age: tuple[str, str, str]  # (creationTimestamp, namespace, name): older sorts first
    services: tuple[VirtualService, ...] = ()
    sources: Mapping[ServiceKey, str] = field(default_factory=dict)  # VIP → the field it comes from
    pods: Mapping[str, ObjectRef] = field(default_factory=dict)  # real server address → its Pod
    rejections: tuple[Rejection, ...] = ()
    notices: tuple[Notice, ...] = ()
    skipped: str = ""  # why the Service is not ours to proxy (ExternalName, headless, other proxy)
    local_endpoints: int = 0  # distinct usable endpoint addresses on this node


@dataclass(frozen=True, slots=True)
class Translation:
    """The desired table of a node and what explains it."""

    table: Table
    owners: Mapping[ServiceKey, ObjectRef]
    pods: Mapping[str, ObjectRef]
    rejections: tuple[Rejection, ...]
    notices: tuple[Notice, ...]
    results: Mapping[ObjectRef, ServiceResult]


def group_slices(slices: Iterable[EndpointSliceView]) -> dict[ObjectRef, list[EndpointSliceView]]:
    """EndpointSlices by the Service they belong to (label ``kubernetes.io/service-name``), sorted by name."""
    grouped: dict[ObjectRef, list[EndpointSliceView]] = defaultdict(list)
    for endpoint_slice in slices:
        grouped[ObjectRef(endpoint_slice.ref.namespace, endpoint_slice.service_name)].append(endpoint_slice)
    for members in grouped.values():
        if len(members) > 1:
            members.sort(key=lambda s: s.ref.name)
    return dict(grouped)


def translate(
    services: Iterable[ServiceView],
    slices: Iterable[EndpointSliceView],
    *,
    node: NodeContext,
    policy: Policy,
) -> Translation:
    """The desired table of ``node`` for a whole cluster."""
    by_service = group_slices(slices)
    return resolve(
        translate_service(service, by_service.get(service.ref, ()), node=node, policy=policy) for service in services
    )


def translate_service(
    service: ServiceView,
    slices: Sequence[EndpointSliceView],
    *,
    node: NodeContext,
    policy: Policy,
) -> ServiceResult:
    """The virtual services one Service asks for on ``node`` (conflicts with others not yet settled)."""
    age = (service.creation_timestamp or _NEVER_CREATED, service.ref.namespace, service.ref.name)
    skipped = _skip_reason(service)
    if skipped:
        return ServiceResult(ref=service.ref, age=age, skipped=skipped)
    builder = _ServiceBuilder(service, node=node, policy=policy)
    rejections = builder.validate()
    if rejections:
        return ServiceResult(ref=service.ref, age=age, rejections=tuple(rejections), notices=tuple(builder.notices))
    for index, port in enumerate(service.ports):
        builder.add_port(index, port, slices)
    builder.finish()
    return ServiceResult(
        ref=service.ref,
        age=age,
        services=tuple(builder.services.values()),
        sources=builder.sources,
        pods=builder.pods,
        notices=tuple(builder.notices),
        local_endpoints=len(builder.local_addresses),
    )


def _skip_reason(service: ServiceView) -> str:
    if service.type == "ExternalName":
        return "type ExternalName"
    if service.is_headless:
        return "headless (clusterIP: None)"
    if SERVICE_PROXY_NAME_LABEL in service.labels:
        return f"label {SERVICE_PROXY_NAME_LABEL}={service.labels[SERVICE_PROXY_NAME_LABEL]}: another proxy's"
    return ""


class _ServiceBuilder:
    """Accumulates one Service's virtual services; validation first, then one port at a time."""

    __slots__ = (
        "local_addresses",
        "node",
        "notices",
        "persistence",
        "pods",
        "policy",
        "scheduler",
        "service",
        "services",
        "sources",
    )

    def __init__(self, service: ServiceView, *, node: NodeContext, policy: Policy) -> None:
        self.service = service
        self.node = node
        self.policy = policy
        self.services: dict[ServiceKey, VirtualService] = {}
        self.sources: dict[ServiceKey, str] = {}
        self.pods: dict[str, ObjectRef] = {}
        self.notices: list[Notice] = []
        self.local_addresses: set[str] = set()
        self.scheduler = policy.default_scheduler
        self.persistence: dict[int, Persistence] = {}

    def validate(self) -> list[Rejection]:
        """Check the fields translation relies on; set scheduler and persistence from them."""
        service, ref = self.service, self.service.ref
        problems: list[Rejection] = []
        for name, value in (
            ("spec.externalTrafficPolicy", service.external_traffic_policy),
            ("spec.internalTrafficPolicy", service.internal_traffic_policy),
        ):
            if value not in ("Cluster", "Local"):
                problems.append(Rejection(ref, name, f"{value!r} is not Cluster or Local"))
        try:
            self.scheduler = parse_scheduler(
                service.annotations, default=self.policy.default_scheduler, known=self.policy.schedulers
            )
        except AnnotationError as error:
            problems.append(Rejection(ref, error.field, error.message))
        problems.extend(self._validate_affinity())
        problems.extend(self._validate_ports())
        for key in unknown_annotations(service.annotations):
            self.notices.append(Notice(ref, f"metadata.annotations[{key}]", "unknown ipvsctl annotation, ignored"))
        return problems

    def _validate_affinity(self) -> list[Rejection]:
        service, ref = self.service, self.service.ref
        if service.session_affinity == "None":
            return []
        if service.session_affinity != "ClientIP":
            return [Rejection(ref, "spec.sessionAffinity", f"{service.session_affinity!r} is not None or ClientIP")]
        timeout = AFFINITY_TIMEOUT_DEFAULT if service.affinity_timeout is None else service.affinity_timeout
        if not 1 <= timeout <= AFFINITY_TIMEOUT_MAX:
            return [Rejection(ref, _TIMEOUT_FIELD, f"{timeout} is outside 1..{AFFINITY_TIMEOUT_MAX}")]
        families = {family_of(address) for address in self._all_vip_addresses()} or {4}
        try:
            netmasks = parse_netmasks(service.annotations, families=families, defaults=self.policy.default_netmasks())
        except AnnotationError as error:
            return [Rejection(ref, error.field, error.message)]
        self.persistence = {family: Persistence(timeout, netmask) for family, netmask in netmasks.items()}
        return []

    def _validate_ports(self) -> list[Rejection]:
        ref, low_high = self.service.ref, self.policy.node_port_range
        problems: list[Rejection] = []
        seen: dict[tuple[int, Protocol], int] = {}
        for index, port in enumerate(self.service.ports):
            first = seen.setdefault((port.port, port.protocol), index)
            if first != index:
                problems.append(
                    Rejection(
                        ref,
                        f"spec.ports[{index}]",
                        f"duplicates spec.ports[{first}] ({port.protocol.name}/{port.port})",
                    )
                )
            if port.node_port is not None and not low_high[0] <= port.node_port <= low_high[1]:
                problems.append(
                    Rejection(
                        ref,
                        f"spec.ports[{index}].nodePort",
                        f"{port.node_port} is outside the node-port range {low_high[0]}-{low_high[1]}",
                    )
                )
        return problems

    def _all_vip_addresses(self) -> list[str]:
        service = self.service
        addresses = [ip for ip in service.cluster_ips if ip != "None"]
        addresses += list(service.external_ips) + list(service.load_balancer_ips)
        if any(port.node_port for port in service.ports) and service.type in ("NodePort", "LoadBalancer"):
            addresses += list(self.node.addresses)
        return addresses

    def add_port(self, index: int, port: ServicePortView, slices: Sequence[EndpointSliceView]) -> None:
        """Add the virtual services of one Service port (every VIP kind, every family)."""
        service = self.service
        selections: dict[int, EndpointSelection] = {}
        for family in (4, 6):
            backends = backends_for_port(port, slices, family=family)
            if not backends:
                continue
            selection = selections[family] = select(backends, node_name=self.node.name)
            for endpoint, _ in selection.cluster:
                if endpoint.target is not None:
                    self.pods[endpoint.address] = endpoint.target
            self.local_addresses.update([endpoint.address for endpoint, _ in selection.local])
        reals = _PortReals(selections)
        internal_local = service.internal_traffic_policy == "Local"
        external_local = service.external_traffic_policy == "Local"
        for i, address in enumerate(ip for ip in service.cluster_ips if ip != "None"):
            self._add(address, port, reals.of(address, local=internal_local), source=f"spec.clusterIPs[{i}]")
        if port.node_port and service.type in ("NodePort", "LoadBalancer"):
            for address in self.node.addresses:
                self._add(
                    address,
                    port,
                    reals.of(address, local=external_local),
                    source=f"spec.ports[{index}].nodePort",
                    vip_port=port.node_port,
                )
        for i, address in enumerate(service.external_ips):
            if not self._external_ip_allowed(address):
                if index == 0:
                    self.notices.append(
                        Notice(
                            service.ref,
                            f"spec.externalIPs[{i}]",
                            f"{address} is outside --external-ip-cidrs, ignored",
                        )
                    )
                continue
            self._add(address, port, reals.of(address, local=external_local), source=f"spec.externalIPs[{i}]")
        for i, address in enumerate(service.load_balancer_ips):
            self._add(
                address,
                port,
                reals.of(address, local=external_local),
                source=f"status.loadBalancer.ingress[{i}].ip",
            )

    def finish(self) -> None:
        """Notices that need every port: an externalTrafficPolicy Local Service with nothing local."""
        if self.service.external_traffic_policy == "Local" and not self.local_addresses and self._has_external_vips():
            self.notices.append(
                Notice(
                    self.service.ref,
                    "spec.externalTrafficPolicy",
                    f"Local with no endpoints on node {self.node.name}: external traffic to it is dropped here",
                )
            )

    def _has_external_vips(self) -> bool:
        service = self.service
        has_node_port = any(port.node_port for port in service.ports) and service.type in (
            "NodePort",
            "LoadBalancer",
        )
        return bool(service.external_ips or service.load_balancer_ips or (has_node_port and self.node.addresses))

    def _external_ip_allowed(self, address: str) -> bool:
        cidrs = self.policy.external_ip_cidrs
        return cidrs is None or address in cidrs

    def _add(
        self,
        address: str,
        port: ServicePortView,
        reals: tuple[RealServer, ...],
        *,
        source: str,
        vip_port: int | None = None,
    ) -> None:
        key = ServiceKey(port.protocol, address, port.port if vip_port is None else vip_port)
        if key in self.services:
            return  # the same VIP twice in one Service (e.g. externalIP == ingress IP): first source wins
        self.services[key] = VirtualService(
            key=key,
            scheduler=self.scheduler,
            persistence=self.persistence.get(key.family),
            reals=reals,
        )
        self.sources[key] = source


class _PortReals:
    """The real servers of one Service port by family and scope, each made once for all the VIPs that use them."""

    __slots__ = ("_made", "_selections")

    def __init__(self, selections: Mapping[int, EndpointSelection]) -> None:
        self._selections = selections
        self._made: dict[tuple[int, bool], tuple[RealServer, ...]] = {}

    def of(self, address: str, *, local: bool) -> tuple[RealServer, ...]:
        """The real servers for a VIP: the usable backends of its family, on this node only if ``local``."""
        family = family_of(address)
        made = self._made.get((family, local))
        if made is None:
            selection = self._selections.get(family)
            backends = () if selection is None else selection.local if local else selection.cluster
            made = self._made[family, local] = tuple(
                [RealServer(endpoint.address, port) for endpoint, port in backends]
            )
        return made


def resolve(results: Iterable[ServiceResult]) -> Translation:
    """Merge per-Service results into one table; a VIP claimed twice goes to the older Service."""
    ordered = sorted(results, key=lambda result: result.age)
    owners: dict[ServiceKey, ObjectRef] = {}
    services: dict[ServiceKey, VirtualService] = {}
    pods: dict[str, ObjectRef] = {}
    rejections: list[Rejection] = []
    notices: list[Notice] = []
    by_ref: dict[ObjectRef, ServiceResult] = {}
    for result in ordered:
        by_ref[result.ref] = result
        rejections.extend(result.rejections)
        notices.extend(result.notices)
        for virtual in result.services:
            owner = owners.get(virtual.key)
            if owner is not None:
                rejections.append(
                    Rejection(
                        result.ref,
                        result.sources.get(virtual.key, "spec"),
                        f"{virtual.key} is already used by older Service {owner}; this VIP is not programmed",
                    )
                )
                continue
            owners[virtual.key] = result.ref
            services[virtual.key] = virtual
        pods.update(result.pods)
    return Translation(
        table=Table(services),
        owners=owners,
        pods=pods,
        rejections=tuple(rejections),
        notices=tuple(notices),
        results=by_ref,
    )
