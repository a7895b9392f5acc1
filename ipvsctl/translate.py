"""Kubernetes views + this node's context → the desired IPVS table (pure).

Each Service is translated on its own (``translate_service``), so a change to one
Service costs only that Service; ``resolve`` then merges the per-Service results
and settles VIP conflicts (the oldest Service wins). ``translate`` does both.
A bad Service yields rejections and nothing else; it never disturbs the others.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

import netaddr

from ipvsctl.addresses import special_address
from ipvsctl.affinity_scope import CLUSTER_FLAGS, CLUSTER_SCHEDULER, netmask_notice
from ipvsctl.annotations import (
    AFFINITY_SCOPE_ANNOTATION,
    SCHEDULER_ANNOTATION,
    AnnotationError,
    parse_affinity_scope,
    parse_netmasks,
    parse_scheduler,
    unknown_annotations,
)
from ipvsctl.endpoints import PREFER_SAME_NODE, EndpointSelection, PortEndpoint, backends_for_port, select
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
    "SOURCE_RANGES_ANNOTATION",
    "TOPOLOGY_MODE_ANNOTATION",
    "NodeContext",
    "NodePortAddresses",
    "Notice",
    "NoticeKind",
    "Policy",
    "Rejection",
    "ServiceMessage",
    "ServiceResult",
    "Translation",
    "VipKind",
    "VipRole",
    "group_slices",
    "resolve",
    "service_age",
    "translate",
    "translate_service",
]

AFFINITY_TIMEOUT_DEFAULT = 10800
AFFINITY_TIMEOUT_MAX = 86400
_TIMEOUT_FIELD = "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
_NEVER_CREATED = "\uffff"  # objects without creationTimestamp sort after every real timestamp
SOURCE_RANGES_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"  # kube-proxy reads it too
TOPOLOGY_MODE_ANNOTATION = "service.kubernetes.io/topology-mode"
_TOPOLOGY_HINTS_ANNOTATION = "service.kubernetes.io/topology-aware-hints"  # its older name
_TOPOLOGY_MODES = frozenset({"Auto", "auto", "Disabled", "disabled", ""})
_TRAFFIC_DISTRIBUTIONS = frozenset({"PreferClose", "PreferSameZone", "PreferSameNode"})
_FAMILY_NAMES = {"IPv4": 4, "IPv6": 6}
_IP_MODES = frozenset({"", "VIP", "Proxy"})
_ONE_FAMILY = {4: frozenset({4}), 6: frozenset({6})}
_LEFT_OUT_SHOWN = 5  # endpoints a topology notice names before it counts the rest


@dataclass(frozen=True, slots=True)
class NodeContext:
    """The node the table is for: its name, its IPs (NodePort VIPs) and its zone (topology hints)."""

    name: str
    addresses: tuple[str, ...] = ()
    zone: str = ""

    def primary_addresses(self) -> tuple[str, ...]:
        """The first address of each family (InternalIPs come first): the node's primary IPs, as kube-proxy
        means them."""
        first: dict[int, str] = {}
        for address in self.addresses:
            first.setdefault(family_of(address), address)
        return tuple(first.values())


@dataclass(frozen=True, slots=True)
class NodePortAddresses:
    """``--nodeport-addresses``: NodePorts only on the node addresses inside ``cidrs``, and (``primary``) on
    the node's primary address of each family. Canonical CIDR strings, so the value can key a cache."""

    cidrs: tuple[str, ...] = ()
    primary: bool = False

    def admitted(self, node: NodeContext) -> tuple[str, ...]:
        """The node addresses NodePorts are programmed on."""
        return _admitted_node_addresses(self, node)


@lru_cache(maxsize=16)
def _admitted_node_addresses(spec: NodePortAddresses, node: NodeContext) -> tuple[str, ...]:
    """Once per node context and flag value: every Service with NodePorts asks."""
    networks = [ipaddress.ip_network(cidr) for cidr in spec.cidrs]
    primary = set(node.primary_addresses()) if spec.primary else set()
    return tuple(
        address
        for address in node.addresses
        if address in primary or any(ipaddress.ip_address(address) in network for network in networks)
    )


@dataclass(frozen=True, slots=True)
class Policy:
    """Agent-wide defaults and limits that translation applies."""

    default_scheduler: str = "rr"
    schedulers: frozenset[str] = DEFAULT_SCHEDULERS
    netmask_v4: int = 32
    netmask_v6: int = 128
    node_port_range: tuple[int, int] = (30000, 32767)
    external_ip_cidrs: netaddr.IPSet | None = None  # None: every externalIP is honoured
    load_balancer_ip_cidrs: netaddr.IPSet | None = None  # None: every ingress IP is honoured
    node_port_addresses: NodePortAddresses | None = None  # None: NodePorts on every node address
    affinity_scope: str = "node"  # ClientIP Services without ipvsctl.io/affinity-scope: node or cluster

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


class VipKind(StrEnum):
    """Where a VIP comes from: what the netfilter half does with its traffic follows from it."""

    CLUSTER_IP = "cluster-ip"
    NODE_PORT = "node-port"
    EXTERNAL_IP = "external-ip"
    LOAD_BALANCER = "load-balancer"


@dataclass(frozen=True, slots=True)
class VipRole:
    """A VIP's kind, whether its traffic policy is Local, and (load-balancer VIPs) the allowed source ranges.

    ``source_ranges`` None: no restriction; empty: nothing is allowed (a Service whose ranges are all invalid
    fails closed).
    """

    kind: VipKind
    local: bool = False
    source_ranges: tuple[str, ...] | None = None

    @property
    def external(self) -> bool:
        """Reached from outside the cluster (not a ClusterIP)."""
        return self.kind is not VipKind.CLUSTER_IP


class NoticeKind(StrEnum):
    """What a notice is about (the agent's Event reason follows from it)."""

    EXTERNAL_IP_IGNORED = "external-ip-ignored"  # outside --external-ip-cidr
    LOAD_BALANCER_IP_IGNORED = "load-balancer-ip-ignored"  # outside --load-balancer-ip-cidr
    ADDRESS_REFUSED = "address-refused"  # a VIP or endpoint address that is never programmed (ipvsctl.addresses)
    UNKNOWN_ANNOTATION = "unknown-annotation"
    NO_LOCAL_ENDPOINTS = "no-local-endpoints"
    SOURCE_RANGE_INVALID = "source-range-invalid"  # its load-balancer VIPs then accept no source at all
    WRONG_FAMILY = "wrong-family"  # an externalIP or ingress IP of a family the Service does not have
    LOAD_BALANCER_IP_PROXIED = "load-balancer-ip-proxied"  # ingress ipMode Proxy: the load balancer's, not a VIP
    UNKNOWN_VALUE = "unknown-value"  # a field value this version does not know (ipMode, trafficDistribution)
    TOPOLOGY = "topology"  # endpoints left out by topology hints, or hints that could not be used
    HINTS_UNREADABLE = "hints-unreadable"  # malformed hints: the endpoint counts as unhinted
    AFFINITY_SCOPE = "affinity-scope"  # cluster scope asked where it cannot hold (no ClientIP, netmask < host)


@dataclass(frozen=True, slots=True)
class Notice(ServiceMessage):
    """Something an operator should know about a Service that is still programmed."""

    kind: NoticeKind


@dataclass(frozen=True, slots=True)
class ServiceResult:
    """The translation of one Service, before conflicts with other Services are settled."""

    ref: ObjectRef
    age: tuple[str, str, str]  # (creationTimestamp, namespace, name): older sorts first
    services: tuple[VirtualService, ...] = ()
    sources: Mapping[ServiceKey, str] = field(default_factory=dict)  # VIP → the field it comes from
    roles: Mapping[ServiceKey, VipRole] = field(default_factory=dict)  # VIP → its kind and traffic policy
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
    age = service_age(service)
    skipped = _skip_reason(service)
    if skipped:
        return ServiceResult(ref=service.ref, age=age, skipped=skipped)
    builder = _ServiceBuilder(service, node=node, policy=policy)
    rejections = builder.validate()
    if rejections:
        return ServiceResult(ref=service.ref, age=age, rejections=tuple(rejections), notices=tuple(builder.notices))
    builder.note_hint_problems(slices)
    for index, port in enumerate(service.ports):
        builder.add_port(index, port, slices)
    builder.finish()
    return ServiceResult(
        ref=service.ref,
        age=age,
        services=tuple(builder.services.values()),
        sources=builder.sources,
        roles=builder.roles,
        pods=builder.pods,
        notices=tuple(builder.notices),
        local_endpoints=len(builder.local_addresses),
    )


def service_age(service: ServiceView) -> tuple[str, str, str]:
    """How old a Service is, for conflicts: (creationTimestamp, namespace, name); older sorts first."""
    return (service.creation_timestamp or _NEVER_CREATED, service.ref.namespace, service.ref.name)


def _skip_reason(service: ServiceView) -> str:
    if service.type == "ExternalName":
        return "type ExternalName"
    if service.is_headless:
        return "headless (clusterIP: None)"
    if SERVICE_PROXY_NAME_LABEL in service.labels:
        return f"label {SERVICE_PROXY_NAME_LABEL}={service.labels[SERVICE_PROXY_NAME_LABEL]}: another proxy's"
    return ""


@dataclass(frozen=True, slots=True)
class _Vip:
    """One VIP address of a Service and where it comes from; NodePorts take each port's nodePort."""

    address: str
    source: str  # "spec.clusterIPs[0]"; empty for NodePorts (each port's "spec.ports[i].nodePort")
    role: VipRole

    @property
    def local(self) -> bool:
        """Only this node's endpoints (a traffic policy of Local)."""
        return self.role.local

    @property
    def node_port(self) -> bool:
        """A NodePort on a node address: its port is each Service port's nodePort."""
        return self.role.kind is VipKind.NODE_PORT


class _ServiceBuilder:
    """Accumulates one Service's virtual services; validation first, then one port at a time."""

    __slots__ = (
        "families",
        "local_addresses",
        "node",
        "noticed",
        "notices",
        "persistence",
        "pods",
        "policy",
        "refused_reals",
        "roles",
        "sched_flags",
        "scheduler",
        "service",
        "services",
        "sources",
        "vips",
    )

    def __init__(self, service: ServiceView, *, node: NodeContext, policy: Policy) -> None:
        self.service = service
        self.node = node
        self.policy = policy
        self.services: dict[ServiceKey, VirtualService] = {}
        self.sources: dict[ServiceKey, str] = {}
        self.roles: dict[ServiceKey, VipRole] = {}
        self.pods: dict[str, ObjectRef] = {}
        self.notices: list[Notice] = []
        self.local_addresses: set[str] = set()
        self.refused_reals: set[str] = set()
        self.scheduler = policy.default_scheduler
        self.sched_flags: frozenset[str] = frozenset()
        self.persistence: dict[int, Persistence] = {}
        self.vips: list[_Vip] = []
        self.families: frozenset[int] = frozenset()
        self.noticed: set[tuple[str, str]] = set()  # (field or kind, message) of notices said once per Service

    def validate(self) -> list[Rejection]:
        """Check the fields translation relies on; set the VIPs, scheduler and persistence from them."""
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
        family_problems = self._families()
        if family_problems:
            return problems + family_problems
        self._check_topology_fields()
        self.vips = self._screen_vips()
        problems.extend(self._validate_affinity())
        problems.extend(self._validate_affinity_scope())
        problems.extend(self._validate_ports())
        for key in unknown_annotations(service.annotations):
            self._notice(
                f"metadata.annotations[{key}]", "unknown ipvsctl annotation, ignored", NoticeKind.UNKNOWN_ANNOTATION
            )
        return problems

    def _notice(self, field: str, message: str, kind: NoticeKind) -> None:
        self.notices.append(Notice(self.service.ref, field, message, kind=kind))

    def _families(self) -> list[Rejection]:
        """Set the Service's address families: those of its cluster IPs, which ``spec.ipFamilies`` must match.

        A Service exists only in the families it has a cluster IP of (kube-proxy runs one proxier per family):
        its VIPs and endpoints of any other family are not programmed.
        """
        given, names = self.service.cluster_ips, self.service.ip_families
        if len(given) == 1 and given[0] != "None":  # the usual Service: one cluster IP, its family named or not
            family = family_of(given[0])
            if not names or (len(names) == 1 and _FAMILY_NAMES.get(names[0]) == family):
                self.families = _ONE_FAMILY[family]
                return []
        return self._families_checked()

    def _families_checked(self) -> list[Rejection]:
        """``_families`` for any Service: every rule checked (the usual one passes them all)."""
        service, ref = self.service, self.service.ref
        ips = [address for address in service.cluster_ips if address != "None"]
        of_ips = [family_of(address) for address in ips]
        problems: list[Rejection] = []
        for index, family in enumerate(of_ips):
            if family in of_ips[:index]:
                problems.append(
                    Rejection(ref, f"spec.clusterIPs[{index}]", f"a second IPv{family} cluster IP: one per family")
                )
        for index, name in enumerate(service.ip_families):
            wanted = _FAMILY_NAMES.get(name)
            if wanted is None:
                problems.append(Rejection(ref, f"spec.ipFamilies[{index}]", f"{name!r} is not IPv4 or IPv6"))
            elif index < len(ips) and of_ips[index] != wanted:
                problems.append(
                    Rejection(
                        ref,
                        f"spec.ipFamilies[{index}]",
                        f"{name} contradicts spec.clusterIPs[{index}] {ips[index]} (IPv{of_ips[index]})",
                    )
                )
        if service.ip_families and len(service.ip_families) != len(ips) and not problems:
            problems.append(
                Rejection(
                    ref,
                    "spec.ipFamilies",
                    f"lists {len(service.ip_families)} families for {len(ips)} cluster IPs (spec.clusterIPs)",
                )
            )
        self.families = frozenset(of_ips)
        return problems

    def _family_names(self) -> str:
        return " and ".join(f"IPv{family}" for family in sorted(self.families))

    def _check_topology_fields(self) -> None:
        """Notices for topology settings this version does not know; hints on the endpoints still decide."""
        service = self.service
        value = service.traffic_distribution
        if value and value not in _TRAFFIC_DISTRIBUTIONS:
            self._notice(
                "spec.trafficDistribution",
                f"{value!r} is not one of {', '.join(sorted(_TRAFFIC_DISTRIBUTIONS))}: ignored",
                NoticeKind.UNKNOWN_VALUE,
            )
        for key in (TOPOLOGY_MODE_ANNOTATION, _TOPOLOGY_HINTS_ANNOTATION):
            mode = service.annotations.get(key)
            if mode is not None and mode not in _TOPOLOGY_MODES:
                self._notice(
                    f"metadata.annotations[{key}]",
                    f"{mode!r} is not Auto or Disabled: ignored",
                    NoticeKind.UNKNOWN_VALUE,
                )

    def note_hint_problems(self, slices: Sequence[EndpointSliceView]) -> None:
        """A notice for each unreadable hint in the Service's slices of its families."""
        for endpoint_slice in slices:
            if endpoint_slice.hint_problems and _FAMILY_NAMES.get(endpoint_slice.address_type) in self.families:
                for where, why in endpoint_slice.hint_problems:
                    self._notice(
                        f"EndpointSlice {endpoint_slice.ref.name} {where}",
                        f"{why}: the endpoint counts as unhinted (every node then uses every endpoint)",
                        NoticeKind.HINTS_UNREADABLE,
                    )

    def _screen_vips(self) -> list[_Vip]:
        """The Service's VIP addresses that pass the address policy; a notice for each one refused."""
        service = self.service
        external_local = service.external_traffic_policy == "Local"
        internal_local = service.internal_traffic_policy == "Local"
        vips = [
            _Vip(address, source=f"spec.clusterIPs[{i}]", role=_role(VipKind.CLUSTER_IP, internal_local))
            for i, address in enumerate(service.cluster_ips)
            if address != "None"
        ]
        if self._has_node_ports():
            node_port_addresses = self.policy.node_port_addresses
            addresses = self.node.addresses if node_port_addresses is None else node_port_addresses.admitted(self.node)
            vips += [
                _Vip(address, source="", role=_role(VipKind.NODE_PORT, external_local))
                for address in addresses
                if family_of(address) in self.families and special_address(address) is None
            ]
        for i, address in enumerate(service.external_ips):
            source = f"spec.externalIPs[{i}]"
            if not self._of_service_family(address, source):
                continue
            if not _within(address, self.policy.external_ip_cidrs):
                self._notice(
                    source, f"{address} is outside --external-ip-cidr, ignored", NoticeKind.EXTERNAL_IP_IGNORED
                )
            else:
                vips.append(_Vip(address, source=source, role=_role(VipKind.EXTERNAL_IP, external_local)))
        balancer_role = self._balancer_role(local=external_local) if service.load_balancer_ingress else None
        for entry in service.load_balancer_ingress:
            address, source = entry.ip, f"status.loadBalancer.ingress[{entry.index}].ip"
            if not self._programmed_ingress(entry.ip_mode, address, entry.index):
                continue
            if not self._of_service_family(address, source):
                continue
            if not _within(address, self.policy.load_balancer_ip_cidrs):
                self._notice(
                    source,
                    f"{address} is outside --load-balancer-ip-cidr, ignored",
                    NoticeKind.LOAD_BALANCER_IP_IGNORED,
                )
            elif balancer_role is not None:
                vips.append(_Vip(address, source=source, role=balancer_role))
        return [vip for vip in vips if vip.node_port or self._claimable(vip)]

    def _of_service_family(self, address: str, source: str) -> bool:
        """Whether an externalIP or ingress IP is of one of the Service's families; a notice when it is not."""
        if family_of(address) in self.families or special_address(address) is not None:
            return True  # a special address is refused as such (``_claimable``), whatever its family
        self._notice(
            source,
            f"{address} is not of the Service's address family ({self._family_names()}, from its cluster IPs): ignored",
            NoticeKind.WRONG_FAMILY,
        )
        return False

    def _programmed_ingress(self, ip_mode: str, address: str, index: int) -> bool:
        """Whether an ingress IP of this ipMode is programmed: not with Proxy (the load balancer proxies to the
        NodePorts and owns the address), as VIP with an ipMode this version does not know (as kube-proxy)."""
        if ip_mode == "Proxy":
            self._notice(
                f"status.loadBalancer.ingress[{index}].ipMode",
                f"Proxy: {address} is the load balancer's own address, reached through it, not programmed here",
                NoticeKind.LOAD_BALANCER_IP_PROXIED,
            )
            return False
        if ip_mode not in _IP_MODES:
            self._notice(
                f"status.loadBalancer.ingress[{index}].ipMode",
                f"{ip_mode!r} is not VIP or Proxy: {address} is programmed as a VIP",
                NoticeKind.UNKNOWN_VALUE,
            )
        return True

    def _balancer_role(self, *, local: bool) -> VipRole:
        """The role of the Service's load-balancer VIPs: with the source ranges it restricts them to, if any.

        ``spec.loadBalancerSourceRanges``, else the older annotation (as kube-proxy reads them). An entry that
        is not a CIDR is noticed and the VIPs then accept no source at all: a Service its owner restricted
        must not open up because of a typo.
        """
        service = self.service
        if service.load_balancer_source_ranges:
            entries = [
                (f"spec.loadBalancerSourceRanges[{i}]", text)
                for i, text in enumerate(service.load_balancer_source_ranges)
            ]
        else:
            annotated = service.annotations.get(SOURCE_RANGES_ANNOTATION, "")
            field = f"metadata.annotations[{SOURCE_RANGES_ANNOTATION}]"
            entries = [(field, text) for text in annotated.split(",") if text.strip()]
        if not entries:
            return _role(VipKind.LOAD_BALANCER, local)
        ranges: list[str] = []
        for field, text in entries:
            try:
                ranges.append(str(ipaddress.ip_network(text.strip(), strict=False)))
            except ValueError:
                self._notice(
                    field,
                    f"{text!r} is not a CIDR: the Service's load-balancer IPs accept no source until it is fixed",
                    NoticeKind.SOURCE_RANGE_INVALID,
                )
                return VipRole(VipKind.LOAD_BALANCER, local, source_ranges=())
        return VipRole(VipKind.LOAD_BALANCER, local, source_ranges=tuple(dict.fromkeys(ranges)))

    def _claimable(self, vip: _Vip) -> bool:
        """Whether a Service may claim this (non-NodePort) VIP address; a notice when it may not."""
        special = special_address(vip.address)
        if special is not None:
            why = f"{vip.address} is a {special} address, never a VIP: ignored"
        elif vip.address in self.node.addresses:
            why = f"{vip.address} is an address of node {self.node.name}: only NodePorts may use it, ignored"
        else:
            return True
        self._notice(vip.source, why, NoticeKind.ADDRESS_REFUSED)
        return False

    def _has_node_ports(self) -> bool:
        service = self.service
        return service.type in ("NodePort", "LoadBalancer") and any(port.node_port for port in service.ports)

    def _validate_affinity(self) -> list[Rejection]:
        service, ref = self.service, self.service.ref
        if service.session_affinity == "None":
            return []
        if service.session_affinity != "ClientIP":
            return [Rejection(ref, "spec.sessionAffinity", f"{service.session_affinity!r} is not None or ClientIP")]
        timeout = AFFINITY_TIMEOUT_DEFAULT if service.affinity_timeout is None else service.affinity_timeout
        if not 1 <= timeout <= AFFINITY_TIMEOUT_MAX:
            return [Rejection(ref, _TIMEOUT_FIELD, f"{timeout} is outside 1..{AFFINITY_TIMEOUT_MAX}")]
        families = {family_of(vip.address) for vip in self.vips} or {4}
        try:
            netmasks = parse_netmasks(service.annotations, families=families, defaults=self.policy.default_netmasks())
        except AnnotationError as error:
            return [Rejection(ref, error.field, error.message)]
        self.persistence = {family: Persistence(timeout, netmask) for family, netmask in netmasks.items()}
        return []

    def _validate_affinity_scope(self) -> list[Rejection]:
        """Cluster-wide affinity (``ipvsctl.affinity_scope``): mh with mh-fallback, for ClientIP Services only."""
        service, ref = self.service, self.service.ref
        field = f"metadata.annotations[{AFFINITY_SCOPE_ANNOTATION}]"
        try:
            scope, asked = parse_affinity_scope(service.annotations, default=self.policy.affinity_scope)
        except AnnotationError as error:
            return [Rejection(ref, error.field, error.message)]
        if scope != "cluster":
            return []
        if service.session_affinity != "ClientIP":
            if asked:
                message = f"cluster needs spec.sessionAffinity: ClientIP (it is {service.session_affinity}); ignored"
                self._notice(field, message, NoticeKind.AFFINITY_SCOPE)
            return []
        if SCHEDULER_ANNOTATION in service.annotations and self.scheduler != CLUSTER_SCHEDULER:
            message = (
                f"cluster needs the {CLUSTER_SCHEDULER} scheduler, but "
                f"metadata.annotations[{SCHEDULER_ANNOTATION}] is {self.scheduler!r}"
            )
            return [Rejection(ref, field, message)]
        self.scheduler, self.sched_flags = CLUSTER_SCHEDULER, CLUSTER_FLAGS
        for family, persistence in sorted(self.persistence.items()):
            message = netmask_notice(family=family, netmask=persistence.netmask)
            if message:
                self._notice(field, message, NoticeKind.AFFINITY_SCOPE)
        return []

    def _validate_ports(self) -> list[Rejection]:
        service, ref = self.service, self.service.ref
        low, high = self.policy.node_port_range
        problems: list[Rejection] = []
        seen: dict[tuple[int, Protocol], int] = {}
        for index, port in enumerate(service.ports):
            first = seen.setdefault((port.port, port.protocol), index)
            if first != index:
                problems.append(
                    Rejection(
                        ref,
                        f"spec.ports[{index}]",
                        f"duplicates spec.ports[{first}] ({port.protocol.name}/{port.port})",
                    )
                )
            if port.node_port is not None and not low <= port.node_port <= high:
                problems.append(
                    Rejection(
                        ref,
                        f"spec.ports[{index}].nodePort",
                        f"{port.node_port} is outside the node-port range {low}-{high}",
                    )
                )
        health = service.health_check_node_port
        # Served only for these Services (agent.healthcheck); elsewhere the field means nothing to the proxy.
        served = service.type == "LoadBalancer" and service.external_traffic_policy == "Local"
        if served and health is not None and not low <= health <= high:
            problems.append(
                Rejection(ref, "spec.healthCheckNodePort", f"{health} is outside the node-port range {low}-{high}")
            )
        return problems

    def add_port(self, index: int, port: ServicePortView, slices: Sequence[EndpointSliceView]) -> None:
        """Add the virtual services of one Service port (every VIP kind, every family)."""
        selections: dict[int, EndpointSelection] = {}
        for family in (4, 6):
            if family not in self.families:
                continue
            backends = self._usable_addresses(backends_for_port(port, slices, family=family))
            if not backends:
                continue
            selection = selections[family] = select(backends, node_name=self.node.name, zone=self.node.zone)
            if selection.topology or selection.hints_ignored:
                self._note_topology(index, family, backends, selection)
            for endpoint, _ in selection.cluster:
                if endpoint.target is not None:
                    self.pods[endpoint.address] = endpoint.target
            if selection.local:
                self.local_addresses.update([endpoint.address for endpoint, _ in selection.local])
        reals = _PortReals(selections)
        with_node_port = bool(port.node_port) and self._has_node_ports()
        for vip in self.vips:
            node_port = vip.node_port
            if node_port and not with_node_port:
                continue
            self._add(
                vip,
                port,
                reals.of(vip.address, local=vip.local),
                source=f"spec.ports[{index}].nodePort" if node_port else vip.source,
                vip_port=port.node_port if node_port else None,
            )

    def _note_topology(
        self,
        index: int,
        family: int,
        backends: Sequence[PortEndpoint],
        selection: EndpointSelection,
    ) -> None:
        """A notice saying which endpoints topology hints left out of a port's cluster-wide set (or why the
        hints were not used); the same words for several ports are said once."""
        if not self._uses_cluster_endpoints():
            return
        field = "spec.trafficDistribution" if self.service.traffic_distribution else f"spec.ports[{index}]"
        if selection.hints_ignored:
            message = f"IPv{family} topology hints not used ({selection.hints_ignored}): every endpoint is used"
        else:
            used = {endpoint.address for endpoint, _ in selection.cluster}
            ready = [endpoint for endpoint, _ in backends if endpoint.ready]
            left = [endpoint for endpoint in ready if endpoint.address not in used]
            where = f"node {self.node.name}" if selection.topology == PREFER_SAME_NODE else f"zone {self.node.zone}"
            named = [
                f"{endpoint.address} (pod {endpoint.target})" if endpoint.target else endpoint.address
                for endpoint in left[:_LEFT_OUT_SHOWN]
            ]
            more = f", +{len(left) - _LEFT_OUT_SHOWN} more" if len(left) > _LEFT_OUT_SHOWN else ""
            message = (
                f"IPv{family}: {len(used)} of {len(ready)} ready endpoints used from this node, those hinted for "
                f"{where} ({selection.topology}); left out: {', '.join(named) or 'none'}{more}"
            )
        if (NoticeKind.TOPOLOGY, message) in self.noticed:
            return
        self.noticed.add((NoticeKind.TOPOLOGY, message))
        self._notice(field, message, NoticeKind.TOPOLOGY)

    def _uses_cluster_endpoints(self) -> bool:
        """Whether some VIP of the Service uses the cluster-wide set (the only one hints narrow)."""
        return any(not vip.local for vip in self.vips)

    def _usable_addresses(self, backends: list[PortEndpoint]) -> list[PortEndpoint]:
        """Backends less those at addresses no real server may have (a notice for each such address, once)."""
        refused = [endpoint.address for endpoint, _ in backends if special_address(endpoint.address) is not None]
        if not refused:
            return backends
        for address in refused:
            if address not in self.refused_reals:
                self.refused_reals.add(address)
                self._notice(
                    "endpoints",
                    f"endpoint {address} is a {special_address(address)} address, never a real server: not used",
                    NoticeKind.ADDRESS_REFUSED,
                )
        return [backend for backend in backends if special_address(backend[0].address) is None]

    def finish(self) -> None:
        """Notices that need every port: an externalTrafficPolicy Local Service with nothing local."""
        if (
            self.service.external_traffic_policy == "Local"
            and not self.local_addresses
            and any(vip.node_port or not vip.source.startswith("spec.clusterIPs") for vip in self.vips)
        ):  # the VIPs only looked at for the Services it can concern (most have a Cluster policy)
            self._notice(
                "spec.externalTrafficPolicy",
                f"Local with no endpoints on node {self.node.name}: external traffic to it is dropped here",
                NoticeKind.NO_LOCAL_ENDPOINTS,
            )

    def _add(
        self,
        vip: _Vip,
        port: ServicePortView,
        reals: tuple[RealServer, ...],
        *,
        source: str,
        vip_port: int | None = None,
    ) -> None:
        key = ServiceKey(port.protocol, vip.address, port.port if vip_port is None else vip_port)
        if key in self.services:
            return  # the same VIP twice in one Service (e.g. externalIP == ingress IP): first source wins
        self.services[key] = VirtualService(
            key=key,
            scheduler=self.scheduler,
            persistence=self.persistence.get(key.family) if self.persistence else None,
            sched_flags=self.sched_flags,
            reals=reals,
        )
        self.sources[key] = source
        self.roles[key] = vip.role


_ROLES = {(kind, local): VipRole(kind, local) for kind in VipKind for local in (False, True)}


def _role(kind: VipKind, local: bool) -> VipRole:
    """The role of a VIP of that kind and policy (shared: a Service holds one per VIP)."""
    return _ROLES[kind, local]


def _within(address: str, cidrs: netaddr.IPSet | None) -> bool:
    """Whether an allow-list (None: allow everything) admits ``address``."""
    return cidrs is None or address in cidrs


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
