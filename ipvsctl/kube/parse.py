"""Raw Kubernetes objects (API JSON bytes, or decoded JSON/YAML values) → the typed views of ``views.py``.

This module owns the meaning of Service, EndpointSlice and Node objects: required fields, API defaults,
ranges, choices and canonical addresses. Their shape is declared once, as msgspec Structs in ``wire.py``:
msgspec decodes bytes (``msgspec.json``) or converts values (``msgspec.convert``) into them in C, checking
each field's JSON type and skipping everything the proxy does not read. What the types cannot say is
checked here while the view is built.

Every refusal is an ``ObjectError`` naming the object (``Service default/web``) and the field path
(``spec.ports[1].port``). A type error found by msgspec is explained from the offending value itself, found
again by its path in a plain decoding of the object (that slow path runs only for a refused object). Semantic
rules (timeout ranges, annotations, what a policy means) belong to ``ipvsctl.translate``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

import msgspec

from ipvsctl.errors import ObjectError
from ipvsctl.kube import wire
from ipvsctl.kube.views import (
    HOSTNAME_TOPOLOGY_KEY,
    SERVICE_NAME_LABEL,
    EndpointSliceView,
    EndpointView,
    NodeView,
    ObjectRef,
    ServicePortView,
    ServiceView,
    SlicePortView,
)
from ipvsctl.model import Protocol, canonical_ip

__all__ = [
    "MAX_INTEGER_TEXT",
    "ApiObject",
    "OversizedInteger",
    "RawObject",
    "bounded_json_integer",
    "object_names",
    "parse_endpoint_slice",
    "parse_node",
    "parse_service",
]

_T = TypeVar("_T")
_W = TypeVar("_W", wire.Service, wire.EndpointSlice, wire.Node)


@dataclass(frozen=True, slots=True)
class ApiObject:
    """One object as the API sent it: its JSON bytes, and the kind and apiVersion of the resource it came from.

    The bytes are decoded straight into the wire Structs when the object is parsed; an item of a list
    response carries neither kind nor apiVersion of its own, so the resource's stand in for them.
    """

    data: bytes
    kind: str
    api_version: str


# An object as the API sends it (JSON bytes), or as a JSON or YAML reader decoded it.
RawObject = ApiObject | bytes | bytearray | memoryview | Mapping[str, object]

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
# bool before int: a bool is an int to isinstance, but never to the API.
_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "list"),
    (Mapping, "object"),
)

# Every integer field of Service, EndpointSlice and Node is an int32 in the API.
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_SHOWN_LIMIT = 2**64  # beyond this an integer is described by its size: str() refuses past 4300 digits
_PORT = "must be a port between 1 and 65535"
_INT32 = "must be a 32-bit integer"
# What each integer field must be, by its name (the last step of its path).
_INTEGER_REQUIREMENTS: Mapping[str, str] = {
    "port": _PORT,
    "nodePort": _PORT,
    "healthCheckNodePort": _PORT,
    "timeoutSeconds": _INT32,
}
# Longer integer literals are not converted when an object is decoded again to explain its error: int()
# refuses more than 4300 digits. A Kubernetes integer needs at most 20 characters.
MAX_INTEGER_TEXT: Final = 64


@dataclass(frozen=True, slots=True)
class OversizedInteger:
    """An integer literal too long to convert, which a reader keeps as its length instead of calling int().

    ``int()`` raises ValueError past 4300 digits, and no Kubernetes field needs more than ten. An object
    holding one fails only when parse reads that field, as with any other wrong value.
    """

    digits: int


def bounded_json_integer(text: str) -> int | OversizedInteger:
    """A JSON integer literal as an int, or as its size when it is too long to convert (``json``'s parse_int)."""
    if len(text) > MAX_INTEGER_TEXT:
        return OversizedInteger(len(text.removeprefix("-")))
    return int(text)


def _json_type(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, OversizedInteger):
        return "integer"
    return next((name for kind, name in _JSON_TYPES if isinstance(value, kind)), type(value).__name__)


def _describe_integer(value: int | OversizedInteger) -> str:
    """An integer for a message: its digits when it has few, else its size."""
    if isinstance(value, OversizedInteger):
        return f"an integer of {value.digits} digits"
    if -_SHOWN_LIMIT < value < _SHOWN_LIMIT:
        return str(value)
    return f"an integer of {value.bit_length()} bits"


# --- decoding ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Kind:
    """How one kind is decoded and identified."""

    name: str
    wire_type: type[wire.Service] | type[wire.EndpointSlice] | type[wire.Node]
    api_versions: Sequence[str]
    namespaced: bool
    decoder: msgspec.json.Decoder[object]


def _kind(name: str, wire_type: type[_W], api_versions: Sequence[str], *, namespaced: bool) -> _Kind:
    return _Kind(name, wire_type, api_versions, namespaced, msgspec.json.Decoder(wire_type))


_SERVICE = _kind("Service", wire.Service, _SERVICE_API_VERSIONS, namespaced=True)
_SLICE = _kind("EndpointSlice", wire.EndpointSlice, _SLICE_API_VERSIONS, namespaced=True)
_NODE = _kind("Node", wire.Node, _NODE_API_VERSIONS, namespaced=False)


def _decode(raw: RawObject, kind: _Kind) -> object:
    """``raw`` as the kind's wire Struct; ObjectError (named, with the field's path) when a type is wrong."""
    if isinstance(raw, ApiObject):
        raw = raw.data
    try:
        if isinstance(raw, bytes | bytearray | memoryview):
            return kind.decoder.decode(raw)
        return msgspec.convert(raw, kind.wire_type)
    except msgspec.ValidationError as error:
        raise _explained(str(error), raw=raw, kind=kind) from error
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


class _Names(msgspec.Struct, gc=False):
    name: object = None
    namespace: object = None
    uid: object = None


class _Named(msgspec.Struct, rename="camel", gc=False):
    api_version: object = None
    metadata: _Names | None = None  # typed: a generic decoding would build all of managedFields


_NAMED = msgspec.json.Decoder(_Named)


def object_names(obj: RawObject) -> tuple[object, object, object, object]:
    """``(name, namespace, uid, apiVersion)`` of any object, each of whatever type it has (None: absent or
    unreadable): how an object is named in logs and Events, whether or not it parses."""
    if isinstance(obj, ApiObject):
        obj = obj.data
    if isinstance(obj, bytes | bytearray | memoryview):
        try:
            named = _NAMED.decode(obj)
        except msgspec.MsgspecError:
            return None, None, None, None
        names = named.metadata or _Names()
        return names.name, names.namespace, names.uid, named.api_version
    if isinstance(obj, Mapping):
        api_version, metadata = obj.get("apiVersion"), obj.get("metadata")
    else:
        return None, None, None, None
    if not isinstance(metadata, Mapping):
        return None, None, None, api_version
    return metadata.get("name"), metadata.get("namespace"), metadata.get("uid"), api_version


# --- explaining a type error -------------------------------------------------------------------------

# msgspec: "Expected `int | null`, got `str` - at `$.spec.ports[0].port`" (or "... - at `key` in `$.x`").
_MSGSPEC_ERROR = re.compile(r"(?P<what>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?", re.DOTALL)
_PATH_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_EXPECTED = re.compile(r"Expected `(?P<types>[^`]*)`")
_PHRASES = {
    "str": "a string",
    "int": "an integer",
    "bool": "a boolean",
    "object": "an object",
    "array": "a list",
    "float": "a number",
}


def _explained(message: str, *, raw: RawObject, kind: _Kind) -> ObjectError:
    """The ObjectError for msgspec's ``message`` about ``raw``: the object named, the value described."""
    plain = _plain(raw)
    if isinstance(plain, ObjectError):
        return ObjectError(plain.message, obj=kind.name)
    label = _identify_plain(plain, kind=kind)
    match = _MSGSPEC_ERROR.fullmatch(message)
    assert match is not None
    path = match["path"] or ""
    steps = [int(index) if index else name for name, index in _PATH_STEP.findall(path)]
    field = path.removeprefix(".")
    value = _at(plain, steps)
    if match["key"]:
        key = next((key for key in value if not isinstance(key, str)), None) if isinstance(value, Mapping) else None
        shown = _describe_integer(key) if isinstance(key, int | OversizedInteger) else repr(key)
        return ObjectError(f"keys must be strings, got {_json_type(key)} {shown}", obj=label, field=field)
    return ObjectError(_requirement(match["what"], value=value, steps=steps), obj=label, field=field)


def _requirement(what: str, *, value: object, steps: Sequence[str | int]) -> str:
    """What a field must be, and what it is."""
    if value is None:
        return "is required"
    name = next((step for step in reversed(steps) if isinstance(step, str)), "")
    if name in _INTEGER_REQUIREMENTS and isinstance(value, int | OversizedInteger) and not isinstance(value, bool):
        return f"{_INTEGER_REQUIREMENTS[name]}, got {_describe_integer(value)}"
    expected = _EXPECTED.match(what)
    types = expected["types"].split(" | ") if expected else []
    phrase = next((_PHRASES[kind] for kind in types if kind in _PHRASES), "")
    if not phrase:
        return f"cannot be read: {what}"
    return f"must be {phrase}, got {_json_type(value)}"


def _plain(raw: RawObject) -> object:
    """The object as plain values (a refused object only); big integers kept as their size."""
    if isinstance(raw, ApiObject):
        raw = raw.data
    if not isinstance(raw, bytes | bytearray | memoryview):
        return raw
    try:
        return json.loads(bytes(raw), parse_int=bounded_json_integer)
    except RecursionError:  # json recurses once per level of nesting
        return ObjectError("nested too deeply to read")
    except ValueError as error:
        return ObjectError(f"is not JSON: {error}")


def _at(value: object, steps: Sequence[str | int]) -> object:
    """The value at ``steps`` inside ``value``; None where the path leads nowhere."""
    for step in steps:
        if isinstance(step, str) and isinstance(value, Mapping):
            value = value.get(step)
        elif isinstance(step, int) and isinstance(value, list) and step < len(value):
            value = value[step]
        else:
            return None
    return value


def _identify_plain(plain: object, *, kind: _Kind) -> str:
    """The label of a plain object (``Service default/web``); ObjectError when it cannot be identified."""
    if not isinstance(plain, Mapping):
        raise ObjectError(f"must be an object, got {_json_type(plain)}", obj=kind.name)
    metadata = plain.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ObjectError(f"must be an object, got {_json_type(metadata)}", obj=kind.name, field="metadata")
    metadata = metadata or {}
    return _identify(
        plain.get("kind"),
        plain.get("apiVersion"),
        metadata_present=plain.get("metadata") is not None,
        name=metadata.get("name"),
        namespace=metadata.get("namespace"),
        kind=kind,
    )[0]


def _identify(
    given_kind: object, api_version: object, *, metadata_present: bool, name: object, namespace: object, kind: _Kind
) -> tuple[str, ObjectRef]:
    """Check kind, apiVersion and metadata.name; the object's label and its ref.

    ``kind`` and ``apiVersion`` may be absent: items of an API list response carry neither.
    A namespaced object without a namespace is in ``default``, as ``kubectl apply`` would put it.
    """
    check = _Checker(kind.name)
    given = check.text(given_kind, "kind", default=kind.name)
    if given != kind.name:
        raise check.error("kind", f"expected {kind.name}, got {given!r}")
    version = check.text(api_version, "apiVersion", default=kind.api_versions[0])
    if version not in kind.api_versions:
        raise check.error("apiVersion", f"must be one of {', '.join(kind.api_versions)}, got {version!r}")
    if not metadata_present:
        raise check.error("metadata", "is required")
    text = check.text(name, "metadata.name")
    if not text:
        raise check.error("metadata.name", "must not be empty")
    space = (check.text(namespace, "metadata.namespace", default="") or "default") if kind.namespaced else ""
    ref = ObjectRef(space, text)
    return f"{kind.name} {ref}", ref


# --- checking values ---------------------------------------------------------------------------------


class _Checker:
    """The checks of one object's values, whose errors name the object (types are msgspec's already)."""

    __slots__ = ("kind", "ref")

    def __init__(self, kind: str, ref: ObjectRef | None = None) -> None:
        self.kind = kind
        self.ref = ref  # None until the object is identified

    @property
    def label(self) -> str:
        """``Service default/web`` (only the kind while the object is not identified); written for errors only."""
        return self.kind if self.ref is None else f"{self.kind} {self.ref}"

    def error(self, field: str, message: str) -> ObjectError:
        """An ObjectError about ``field`` of this object."""
        return ObjectError(message, obj=self.label, field=field)

    def text(self, value: object, field: str, *, default: str | None = None) -> str:
        """A string; required unless a default is given."""
        if type(value) is str:
            return value
        if value is None:
            if default is None:
                raise self.error(field, "is required")
            return default
        if not isinstance(value, str):
            raise self.error(field, f"must be a string, got {_json_type(value)}")
        return value

    def port(self, value: int | None, field: str) -> int:
        """A required port number 1..65535."""
        number = self.optional_port(value, field)
        if number is None:
            raise self.error(field, "is required")
        return number

    def optional_port(self, value: int | None, field: str) -> int | None:
        """A port number 1..65535, None when absent."""
        if value is not None and not 1 <= value <= 65535:
            raise self.error(field, f"{_PORT}, got {_describe_integer(value)}")
        return value

    def int32(self, value: int | None, field: str) -> int | None:
        """A 32-bit integer, None when absent."""
        if value is not None and not _INT32_MIN <= value <= _INT32_MAX:
            raise self.error(field, f"{_INT32}, got {_describe_integer(value)}")
        return value

    def ip(self, value: str | None, field: str) -> str:
        """A required IP address, in canonical form."""
        if value is None:
            raise self.error(field, "is required")
        try:
            return canonical_ip(value)
        except ValueError:
            raise self.error(field, f"{value!r} is not an IP address") from None

    def choice(self, value: str | None, allowed: Mapping[str, _T], field: str, *, default: str | None = None) -> _T:
        """One of the ``allowed`` names, mapped to its value; required unless defaulted."""
        if value in allowed:
            return allowed[value]  # type: ignore[index]  # a str: only strings are in allowed
        text = self.text(value, field, default=default)
        if text not in allowed:
            raise self.error(field, f"must be one of {', '.join(allowed)}, got {text!r}")
        return allowed[text]

    def string_map(self, value: Mapping[str, object] | None, field: str) -> dict[str, str]:
        """A string → string map (labels, annotations); its keys are strings already."""
        if not value:
            return {}
        for key, item in value.items():
            if not isinstance(item, str):
                self.text(item, f"{field}[{key}]")
        return value  # type: ignore[return-value]  # every value was checked to be a string


_NO_META = wire.ObjectMeta()


def _identified(obj: wire.Service | wire.EndpointSlice | wire.Node, kind: _Kind) -> tuple[_Checker, ObjectRef]:
    metadata = obj.metadata
    if (
        metadata is not None
        and metadata.name
        and obj.kind in (kind.name, None)
        and (obj.api_version is None or obj.api_version in kind.api_versions)
    ):  # the usual object: every check of _identify passes
        namespace = (metadata.namespace or "default") if kind.namespaced else ""
        ref = ObjectRef(namespace, metadata.name)
        return _Checker(kind.name, ref), ref
    _, ref = _identify(
        obj.kind,
        obj.api_version,
        metadata_present=metadata is not None,
        name=None if metadata is None else metadata.name,
        namespace=None if metadata is None else metadata.namespace,
        kind=kind,
    )
    return _Checker(kind.name, ref), ref


# --- Service --------------------------------------------------------------------------------------

_NO_SPEC = wire.ServiceSpec()
_NO_PORT = wire.ServicePort()


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
            _service_port(port or _NO_PORT, check, f"spec.ports[{n}]") for n, port in enumerate(spec.ports or ())
        ),
        external_ips=tuple(check.ip(ip, f"spec.externalIPs[{n}]") for n, ip in enumerate(spec.external_ips or ())),
        # Entries with only a hostname (cloud load balancers known by DNS name) have no VIP to program.
        load_balancer_ips=tuple(
            check.ip(entry.ip, f"status.loadBalancer.ingress[{n}].ip")
            for n, entry in enumerate(ingress)
            if entry is not None and entry.ip is not None
        ),
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
        labels=check.string_map(metadata.labels, "metadata.labels"),
        annotations=check.string_map(metadata.annotations, "metadata.annotations"),
    )


def _cluster_ips(spec: wire.ServiceSpec, *, check: _Checker, service_type: str) -> tuple[str, ...]:
    """``spec.clusterIPs`` (or ``[spec.clusterIP]``), canonical; ``("None",)`` when headless."""
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


def _service_port(port: wire.ServicePort, check: _Checker, field: str) -> ServicePortView:
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
    labels = (obj.metadata or _NO_META).labels or {}
    label_field = f"metadata.labels[{SERVICE_NAME_LABEL}]"
    service_name = check.text(labels.get(SERVICE_NAME_LABEL), label_field, default="")
    if not service_name:
        raise check.error(label_field, "is required: the label names the Service the slice belongs to")
    return EndpointSliceView(
        ref=ref,
        service_name=service_name,
        address_type=f"IPv{family}",
        ports=tuple(_slice_ports(obj.ports or (), check)),
        endpoints=tuple(
            _endpoint(endpoint or _NO_ENDPOINT, check, n, family=family, namespace=ref.namespace)
            for n, endpoint in enumerate(obj.endpoints or ())
        ),
    )


def _slice_ports(ports: Sequence[wire.SlicePort | None], check: _Checker) -> list[SlicePortView]:
    views = []
    for n, port in enumerate(ports):
        # A port-less entry means "all ports", which no IPVS virtual service can express.
        if port is None or port.port is None:
            continue
        field = f"ports[{n}]"
        views.append(
            SlicePortView(
                name=port.name or "",
                protocol=check.choice(port.protocol, _PROTOCOLS, f"{field}.protocol", default="TCP"),
                port=check.port(port.port, f"{field}.port"),
            )
        )
    return views


def _endpoint(endpoint: wire.Endpoint, check: _Checker, index: int, *, family: int, namespace: str) -> EndpointView:
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
    return EndpointView(
        address=address,
        ready=ready,
        serving=serving,
        terminating=terminating,
        node_name=node_name,
        target=None if target is None else target_ref,
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
    return NodeView(name=ref.name, addresses=tuple(dict.fromkeys(ordered)))


# What ``kube/manifests.py`` and ``kube/client.py`` dispatch on: kind → (API group, parser).
PARSERS: Mapping[str, tuple[str, Callable[[RawObject], ServiceView | EndpointSliceView | NodeView | None]]] = {
    "Service": ("", parse_service),
    "EndpointSlice": ("discovery.k8s.io", parse_endpoint_slice),
    "Node": ("", parse_node),
}
