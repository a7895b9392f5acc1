"""Raw Kubernetes objects (API JSON bytes, or decoded JSON/YAML values) → the typed views of ``views.py``.

This module owns the meaning of Service, EndpointSlice and Node objects: required fields, API defaults,
ranges, choices and canonical addresses. Their shape is declared once, as msgspec Structs in ``wire.py``:
msgspec decodes bytes (``msgspec.json``) or converts values (``msgspec.convert``) into them in C, checking
each field's JSON type and skipping everything the proxy does not read. What the types cannot say is
checked here while the view is built.

Every refusal is an ``ObjectError`` naming the object (``Service default/web``) and the field path
(``spec.ports[1].port``): the values are checked by ``checks.py``'s ``Checker``, and a type error msgspec
finds is explained by ``refusals.py``. Semantic rules (timeout ranges, annotations, what a policy means)
belong to ``ipvsctl.translate``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

import msgspec

from ipvsctl.errors import ObjectError
from ipvsctl.kube import wire
from ipvsctl.kube.checks import (
    MAX_INTEGER_TEXT,
    ApiObject,
    Checker,
    Kind,
    OversizedInteger,
    RawObject,
    bounded_json_integer,
    identify,
)
from ipvsctl.kube.refusals import explained, object_names
from ipvsctl.kube.views import (
    AUTOSCALER_TAINT,
    HOSTNAME_TOPOLOGY_KEY,
    SERVICE_NAME_LABEL,
    TRIGGER_TIME_ANNOTATION,
    ZONE_LABEL,
    EndpointSliceView,
    EndpointView,
    LoadBalancerIngressView,
    NodeView,
    ObjectRef,
    ServicePortView,
    ServiceView,
    SlicePortView,
)
from ipvsctl.model import Protocol, canonical_ip

__all__ = [
    "MAX_INTEGER_TEXT",
    "PARSERS",
    "ApiObject",
    "OversizedInteger",
    "RawObject",
    "bounded_json_integer",
    "object_names",
    "parse_endpoint_slice",
    "parse_node",
    "parse_service",
]

_W = TypeVar("_W", wire.Service, wire.EndpointSlice, wire.Node)

_PROTOCOLS = {"TCP": Protocol.TCP, "UDP": Protocol.UDP, "SCTP": Protocol.SCTP}
_SERVICE_TYPES = {name: name for name in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")}
_SESSION_AFFINITIES = {name: name for name in ("None", "ClientIP")}
# "Global" is the pre-1.0 spelling of Cluster; objects created back then still carry it.
_EXTERNAL_POLICIES = {"Cluster": "Cluster", "Local": "Local", "Global": "Cluster"}
_INTERNAL_POLICIES = {"Cluster": "Cluster", "Local": "Local"}
# FQDN slices carry DNS names, not addresses: the proxy never reads them.
_ADDRESS_FAMILIES: dict[str, int | None] = {"IPv4": 4, "IPv6": 6, "FQDN": None}
_NODE_ADDRESS_TYPES = ("InternalIP", "ExternalIP")
_SERVICE_API_VERSIONS = ("v1",)
_SLICE_API_VERSIONS = ("discovery.k8s.io/v1", "discovery.k8s.io/v1beta1")
_NODE_API_VERSIONS = ("v1",)
_HEADLESS = "None"


# --- decoding ----------------------------------------------------------------------------------------


def _kind(name: str, wire_type: type[_W], api_versions: Sequence[str], *, namespaced: bool) -> Kind:
    return Kind(name, wire_type, api_versions, namespaced, msgspec.json.Decoder(wire_type))


_SERVICE = _kind("Service", wire.Service, _SERVICE_API_VERSIONS, namespaced=True)
_SLICE = _kind("EndpointSlice", wire.EndpointSlice, _SLICE_API_VERSIONS, namespaced=True)
_NODE = _kind("Node", wire.Node, _NODE_API_VERSIONS, namespaced=False)


def _decode(raw: RawObject, kind: Kind) -> object:
    """``raw`` as the kind's wire Struct; ObjectError (named, with the field's path) when a type is wrong."""
    if isinstance(raw, ApiObject):
        raw = raw.data
    try:
        if type(raw) is dict:  # a JSON object decoded with the rest of its document, the usual manifest
            return msgspec.convert(raw, kind.wire_type)
        if isinstance(raw, bytes | bytearray | memoryview):
            return kind.decoder.decode(raw)
        return msgspec.convert(raw, kind.wire_type)
    except msgspec.ValidationError as error:
        raise explained(str(error), raw=raw, kind=kind) from error
    except msgspec.DecodeError as error:
        raise ObjectError(f"is not JSON: {error}", obj=kind.name) from error
    except RecursionError as error:  # msgspec recurses once per level while it skips a field it does not read
        raise ObjectError("nested too deeply to read", obj=kind.name) from error


def parse_service(obj: RawObject) -> ServiceView:
    """A core/v1 Service as a ServiceView; ObjectError names the first malformed field."""
    decoded = _decode(obj, _SERVICE)
    assert isinstance(decoded, wire.Service)
    return _service_view(decoded)


def parse_endpoint_slice(obj: RawObject) -> EndpointSliceView | None:
    """A discovery.k8s.io/v1 or v1beta1 EndpointSlice as a view; None for an FQDN slice."""
    decoded = _decode(obj, _SLICE)
    assert isinstance(decoded, wire.EndpointSlice)
    return _slice_view(decoded)


def parse_node(obj: RawObject) -> NodeView:
    """A core/v1 Node as a NodeView: InternalIP then ExternalIP addresses, canonical, deduplicated."""
    decoded = _decode(obj, _NODE)
    assert isinstance(decoded, wire.Node)
    return _node_view(decoded)


_NO_META = wire.ObjectMeta()


def _identified(obj: wire.Service | wire.EndpointSlice | wire.Node, kind: Kind) -> tuple[Checker, ObjectRef]:
    metadata = obj.metadata
    if (
        metadata is not None
        and metadata.name
        and obj.kind in (kind.name, None)
        and (obj.api_version is None or obj.api_version in kind.api_versions)
    ):  # the usual object: every check of _identify passes
        namespace = (metadata.namespace or "default") if kind.namespaced else ""
        ref = ObjectRef(namespace, metadata.name)
        return Checker(kind.name, ref), ref
    _, ref = identify(
        obj.kind,
        obj.api_version,
        metadata_present=metadata is not None,
        name=None if metadata is None else metadata.name,
        namespace=None if metadata is None else metadata.namespace,
        kind=kind,
    )
    return Checker(kind.name, ref), ref


# --- Service --------------------------------------------------------------------------------------

_NO_SPEC = wire.ServiceSpec()
_NOPORT_REQUIREMENT = wire.ServicePort()


def _service_view(obj: wire.Service) -> ServiceView:
    check, ref = _identified(obj, _SERVICE)
    metadata, spec = obj.metadata or _NO_META, obj.spec or _NO_SPEC
    service_type = check.choice(spec.type, _SERVICE_TYPES, "spec.type", default="ClusterIP")
    status = obj.status
    balancer = status.load_balancer if status is not None else None
    ingress = (balancer.ingress if balancer is not None else None) or []
    affinity = spec.session_affinity_config
    client_ip = affinity.client_ip if affinity is not None else None
    return ServiceView(
        ref=ref,
        uid=check.text(metadata.uid, "metadata.uid", default=""),
        creation_timestamp=check.text(metadata.creation_timestamp, "metadata.creationTimestamp", default=""),
        type=service_type,
        cluster_ips=_cluster_ips(spec, check=check, service_type=service_type),
        ports=tuple(
            _service_port(port or _NOPORT_REQUIREMENT, check, f"spec.ports[{n}]")
            for n, port in enumerate(spec.ports or ())
        ),
        # Each optional list is walked only when present (most Services have none): no generator for an empty one.
        external_ips=tuple(check.ip(ip, f"spec.externalIPs[{n}]") for n, ip in enumerate(spec.external_ips))
        if spec.external_ips
        else (),
        # Entries with only a hostname (cloud load balancers known by DNS name) have no VIP to program.
        load_balancer_ingress=tuple(
            LoadBalancerIngressView(
                check.ip(entry.ip, f"status.loadBalancer.ingress[{n}].ip"), ip_mode=entry.ip_mode or "", index=n
            )
            for n, entry in enumerate(ingress)
            if entry is not None and entry.ip is not None
        )
        if ingress
        else (),
        session_affinity=check.choice(
            spec.session_affinity, _SESSION_AFFINITIES, "spec.sessionAffinity", default="None"
        ),
        affinity_timeout=check.int32(
            client_ip.timeout_seconds if client_ip is not None else None,
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
        ),
        external_traffic_policy=check.choice(
            spec.external_traffic_policy, _EXTERNAL_POLICIES, "spec.externalTrafficPolicy", default="Cluster"
        ),
        internal_traffic_policy=check.choice(
            spec.internal_traffic_policy, _INTERNAL_POLICIES, "spec.internalTrafficPolicy", default="Cluster"
        ),
        health_check_node_port=check.optional_port(spec.health_check_node_port, "spec.healthCheckNodePort"),
        load_balancer_source_ranges=tuple(
            check.text(cidr, f"spec.loadBalancerSourceRanges[{n}]")
            for n, cidr in enumerate(spec.load_balancer_source_ranges)
        )
        if spec.load_balancer_source_ranges
        else (),
        ip_families=tuple(check.text(family, f"spec.ipFamilies[{n}]") for n, family in enumerate(spec.ip_families))
        if spec.ip_families
        else (),
        traffic_distribution=spec.traffic_distribution or "",
        labels=check.string_map(metadata.labels, "metadata.labels"),
        annotations=check.string_map(metadata.annotations, "metadata.annotations"),
    )


def _cluster_ips(spec: wire.ServiceSpec, *, check: Checker, service_type: str) -> tuple[str, ...]:
    """``spec.clusterIPs`` (or ``[spec.clusterIP]``), canonical; ``("None",)`` when headless."""
    given = spec.cluster_ips
    if given is not None and len(given) == 1 and given[0] and given[0] != _HEADLESS:
        try:  # the usual Service, one address: what every check gives, without writing field names
            return (canonical_ip(given[0]),)
        except ValueError:
            pass  # the checks say which field is wrong
    return _cluster_ips_checked(spec, check=check, service_type=service_type)


def _cluster_ips_checked(spec: wire.ServiceSpec, *, check: Checker, service_type: str) -> tuple[str, ...]:
    """``_cluster_ips`` for any spec, every check made."""
    if spec.cluster_ips:
        entries = [(f"spec.clusterIPs[{n}]", ip) for n, ip in enumerate(spec.cluster_ips)]
    else:
        entries = [("spec.clusterIP", spec.cluster_ip)]
    texts = [ip or "" for _, ip in entries]
    if texts == [""]:
        if service_type == "ExternalName":
            return ()
        raise check.error("spec.clusterIP", f"is required for a {service_type} Service")
    if _HEADLESS in texts:
        if len(texts) > 1:
            raise check.error(entries[texts.index(_HEADLESS)][0], f"{_HEADLESS!r} must be the only cluster IP")
        return (_HEADLESS,)
    return tuple(check.ip(ip, field) for field, ip in entries)


def _service_port(port: wire.ServicePort, check: Checker, field: str) -> ServicePortView:
    given, number, node_port = port.protocol, port.port, port.node_port
    protocol = Protocol.TCP if given is None else _PROTOCOLS.get(given)
    if (
        protocol is not None
        and number is not None
        and 1 <= number <= 65535
        and (node_port is None or 1 <= node_port <= 65535)
    ):  # every check passes (the usual port): the view without writing the field names of the checks
        return ServicePortView(name=port.name or "", protocol=protocol, port=number, node_port=node_port)
    return _service_port_checked(port, check, field)


def _service_port_checked(port: wire.ServicePort, check: Checker, field: str) -> ServicePortView:
    """``_service_port`` for any entry, every check made."""
    return ServicePortView(
        name=port.name or "",
        protocol=check.choice(port.protocol, _PROTOCOLS, f"{field}.protocol", default="TCP"),
        port=check.port(port.port, f"{field}.port"),
        node_port=check.optional_port(port.node_port, f"{field}.nodePort"),
    )


# --- EndpointSlice --------------------------------------------------------------------------------

_NO_ENDPOINT = wire.Endpoint()


def _slice_view(obj: wire.EndpointSlice) -> EndpointSliceView | None:
    check, ref = _identified(obj, _SLICE)
    family = check.choice(obj.address_type, _ADDRESS_FAMILIES, "addressType")
    if family is None:
        return None
    metadata = obj.metadata or _NO_META
    labels = metadata.labels or {}
    label_field = f"metadata.labels[{SERVICE_NAME_LABEL}]"
    service_name = check.text(labels.get(SERVICE_NAME_LABEL), label_field, default="")
    if not service_name:
        raise check.error(label_field, "is required: the label names the Service the slice belongs to")
    hint_problems: list[tuple[str, str]] = []
    return EndpointSliceView(
        ref=ref,
        service_name=service_name,
        address_type=f"IPv{family}",
        ports=tuple(_slice_ports(obj.ports or (), check)),
        endpoints=tuple(
            _endpoint(
                endpoint or _NO_ENDPOINT, check, n, family=family, namespace=ref.namespace, hint_problems=hint_problems
            )
            for n, endpoint in enumerate(obj.endpoints or ())
        ),
        trigger_time=trigger_time(metadata.annotations),
        hint_problems=tuple(hint_problems),
    )


def trigger_time(annotations: Mapping[str, object] | None) -> float | None:
    """The annotation ``endpoints.kubernetes.io/last-change-trigger-time`` as POSIX seconds.

    None when absent or not an RFC 3339 time with a zone: it feeds a metric and the moment cluster-scope
    tables change (``ipvsctl.affinity_switch``, which falls back to changing at once), so an unreadable one is
    ignored (as kube-proxy does), never a reason to refuse the slice.
    """
    text = annotations.get(TRIGGER_TIME_ANNOTATION) if annotations else None
    if not isinstance(text, str) or len(text) > 64:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return None if moment.tzinfo is None else moment.timestamp()


_HINT_KINDS = (("forZones", "zones"), ("forNodes", "nodes"))


def _hints(hints: object, index: int, problems: list[tuple[str, str]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``hints.forZones`` and ``hints.forNodes`` names; both empty (a problem noted) when malformed.

    Hints only narrow which endpoints a node uses; an endpoint whose hints cannot be read counts as unhinted,
    which makes every node use every endpoint (kube-proxy's fallback), so nothing is lost to a bad hint.
    """
    if not isinstance(hints, dict):
        problems.append((f"endpoints[{index}].hints", "must be an object"))
        return (), ()
    found: dict[str, tuple[str, ...]] = {}
    for key, kind in _HINT_KINDS:
        entries = hints.get(key)
        if entries is None:
            found[kind] = ()
            continue
        if not isinstance(entries, list):
            problems.append((f"endpoints[{index}].hints.{key}", "must be a list"))
            return (), ()
        names = []
        for n, entry in enumerate(entries):
            name = entry.get("name") if isinstance(entry, dict) else None
            if not isinstance(name, str) or not name:
                problems.append((f"endpoints[{index}].hints.{key}[{n}].name", "must be a non-empty string"))
                return (), ()
            names.append(name)
        found[kind] = tuple(names)
    return found["zones"], found["nodes"]


def _slice_ports(ports: Sequence[wire.SlicePort | None], check: Checker) -> list[SlicePortView]:
    views = []
    for n, port in enumerate(ports):
        # A port-less entry means "all ports", which no IPVS virtual service can express.
        if port is None or port.port is None:
            continue
        given, number = port.protocol, port.port
        protocol = Protocol.TCP if given is None else _PROTOCOLS.get(given)
        if protocol is not None and 1 <= number <= 65535:  # every check passes: no field names written
            views.append(SlicePortView(name=port.name or "", protocol=protocol, port=number))
        else:
            views.append(_slice_port_checked(port, check, f"ports[{n}]"))
    return views


def _slice_port_checked(port: wire.SlicePort, check: Checker, field: str) -> SlicePortView:
    """An entry of a slice's ``ports`` that has a port, every check made."""
    return SlicePortView(
        name=port.name or "",
        protocol=check.choice(port.protocol, _PROTOCOLS, f"{field}.protocol", default="TCP"),
        port=check.port(port.port, f"{field}.port"),
    )


def _endpoint(
    endpoint: wire.Endpoint,
    check: Checker,
    index: int,
    *,
    family: int,
    namespace: str,
    hint_problems: list[tuple[str, str]],
) -> EndpointView:
    # The hot path of a large list (one call per endpoint): field paths are only written for an error.
    addresses = endpoint.addresses
    if not addresses:
        raise check.error(f"endpoints[{index}].addresses", "must list at least one address")
    # The API guarantees all addresses of an endpoint are fungible; the proxy uses the first.
    first = addresses[0]
    try:
        address = canonical_ip(first) if first is not None else None
    except ValueError:
        address = None
    if address is None:
        address = check.ip(first, f"endpoints[{index}].addresses[0]")  # raises: says why
    if (6 if ":" in address else 4) != family:
        message = f"{address} is not an IPv{family} address (the slice's addressType)"
        raise check.error(f"endpoints[{index}].addresses[0]", message)
    conditions = endpoint.conditions
    if conditions is None:
        ready, serving, terminating = True, True, False
    else:
        ready = True if conditions.ready is None else conditions.ready
        serving = ready if conditions.serving is None else conditions.serving
        terminating = conditions.terminating or False
    node_name = endpoint.node_name or ""
    if not node_name and endpoint.topology:  # v1beta1 carried the node only as a topology label
        topology_field = f"endpoints[{index}].topology[{HOSTNAME_TOPOLOGY_KEY}]"
        node_name = check.text(endpoint.topology.get(HOSTNAME_TOPOLOGY_KEY), topology_field, default="")
    target = endpoint.target_ref
    if target is not None:
        name = target.name
        if name is None:
            name = check.text(name, f"endpoints[{index}].targetRef.name")  # raises: it is required
        target_ref = ObjectRef(namespace if target.namespace is None else target.namespace, name)
    zone_hints: tuple[str, ...] = ()
    node_hints: tuple[str, ...] = ()
    if endpoint.hints is not None:
        zone_hints, node_hints = _hints(endpoint.hints, index, hint_problems)
    return EndpointView(
        address=address,
        ready=ready,
        serving=serving,
        terminating=terminating,
        node_name=node_name,
        target=None if target is None else target_ref,
        zone=endpoint.zone or "",
        zone_hints=zone_hints,
        node_hints=node_hints,
    )


# --- Node -----------------------------------------------------------------------------------------

_NO_ADDRESS = wire.NodeAddress()


def _node_view(obj: wire.Node) -> NodeView:
    check, ref = _identified(obj, _NODE)
    by_type: dict[str, list[str]] = {address_type: [] for address_type in _NODE_ADDRESS_TYPES}
    addresses = obj.status.addresses if obj.status is not None else None
    for n, entry in enumerate(addresses or ()):
        field = f"status.addresses[{n}]"
        address_type = check.text((entry or _NO_ADDRESS).type, f"{field}.type")
        # Hostname, InternalDNS and ExternalDNS entries hold names, not addresses.
        if address_type in by_type:
            by_type[address_type].append(check.ip((entry or _NO_ADDRESS).address, f"{field}.address"))
    ordered = [address for addresses in by_type.values() for address in addresses]
    labels = (obj.metadata or _NO_META).labels or {}
    zone = check.text(labels.get(ZONE_LABEL), f"metadata.labels[{ZONE_LABEL}]", default="")
    return NodeView(name=ref.name, addresses=tuple(dict.fromkeys(ordered)), zone=zone, leaving=_leaving(obj))


def _leaving(obj: wire.Node) -> str:
    """Why the Node is being removed (deleted, or tainted by the cluster autoscaler); "" when it is not."""
    if obj.metadata is not None and obj.metadata.deletion_timestamp:
        return "deletionTimestamp"
    taints = obj.spec.taints if obj.spec is not None else None
    if any(taint is not None and taint.key == AUTOSCALER_TAINT for taint in taints or ()):
        return AUTOSCALER_TAINT
    return ""


# What ``kube/manifests.py`` and ``kube/client.py`` dispatch on: kind → (API group, parser).
PARSERS: Mapping[str, tuple[str, Callable[[RawObject], ServiceView | EndpointSliceView | NodeView | None]]] = {
    "Service": ("", parse_service),
    "EndpointSlice": ("discovery.k8s.io", parse_endpoint_slice),
    "Node": ("", parse_node),
}
