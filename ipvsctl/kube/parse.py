"""Raw Kubernetes objects (API JSON, or ``kubectl get -o yaml``) → the typed views of ``views.py``.

This module owns the shape of Service, EndpointSlice and Node objects: types, required
fields, API defaults and canonical addresses. Every field is read through one typed cursor
(``_Field``), so a malformed field is reported as an ``ObjectError`` naming the object
(``Service default/web``) and the field path (``spec.ports[1].port``). Semantic rules
(timeout ranges, annotations, what a policy means) belong to ``ipvsctl.translate``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

from ipvsctl.errors import ObjectError
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
from ipvsctl.model import Protocol, canonical_ip, family_of

__all__ = ["OversizedInteger", "parse_endpoint_slice", "parse_node", "parse_service"]

_T = TypeVar("_T")

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


@dataclass(frozen=True, slots=True)
class OversizedInteger:
    """An integer literal too long to convert, which a loader keeps as its length instead of calling int().

    ``int()`` raises ValueError past 4300 digits, and no Kubernetes field needs more than ten. An object
    holding one fails only when parse reads that field, as with any other wrong value.
    """

    digits: int


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


@dataclass(frozen=True, slots=True)
class _Field:
    """A value inside one object together with its path; accessors check its type.

    An absent field and an explicit ``null`` are the same thing, as in the API.
    """

    obj: str  # "Service default/web"
    path: str  # "spec.ports[1].port"; empty for the object itself
    value: object

    def error(self, message: str) -> ObjectError:
        """An ObjectError about this field."""
        return ObjectError(message, obj=self.obj, field=self.path)

    @property
    def absent(self) -> bool:
        """True when the field is missing or null."""
        return self.value is None

    def at(self, key: str) -> _Field:
        """The member ``key`` of this object (absent when this object is)."""
        return _Field(self.obj, f"{self.path}.{key}" if self.path else key, self.mapping().get(key))

    def entry(self, key: str) -> _Field:
        """The entry ``key`` of this map (labels, topology), written ``path[key]`` as the API does."""
        return _Field(self.obj, f"{self.path}[{key}]", self.mapping().get(key))

    def mapping(self) -> Mapping[str, object]:
        """This field as an object (empty when absent)."""
        if self.value is None:
            return {}
        if not isinstance(self.value, Mapping):
            raise self.error(f"must be an object, got {_json_type(self.value)}")
        return cast("Mapping[str, object]", self.value)

    def items(self) -> list[_Field]:
        """This field's list entries, each with its index in the path (empty when absent)."""
        if self.value is None:
            return []
        if not isinstance(self.value, list):
            raise self.error(f"must be a list, got {_json_type(self.value)}")
        return [_Field(self.obj, f"{self.path}[{index}]", item) for index, item in enumerate(self.value)]

    def text(self, *, default: str | None = None) -> str:
        """This field as a string; required unless a default is given."""
        if self.value is None:
            if default is None:
                raise self.error("is required")
            return default
        if not isinstance(self.value, str):
            raise self.error(f"must be a string, got {_json_type(self.value)}")
        return self.value

    def boolean(self, *, default: bool) -> bool:
        """This field as a boolean."""
        if self.value is None:
            return default
        if not isinstance(self.value, bool):
            raise self.error(f"must be a boolean, got {_json_type(self.value)}")
        return self.value

    def integer(self) -> int | None:
        """This field as a 32-bit integer (a boolean is not one), None when absent."""
        return self._integer_within(_INT32_MIN, _INT32_MAX, requirement="must be a 32-bit integer")

    def optional_port(self) -> int | None:
        """This field as a port number 1..65535, None when absent."""
        return self._integer_within(1, 65535, requirement="must be a port between 1 and 65535")

    def _integer_within(self, low: int, high: int, *, requirement: str) -> int | None:
        value = self.value
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | OversizedInteger):
            raise self.error(f"must be an integer, got {_json_type(value)}")
        if isinstance(value, OversizedInteger) or not low <= value <= high:
            raise self.error(f"{requirement}, got {_describe_integer(value)}")
        return value

    def port(self) -> int:
        """This field as a required port number 1..65535."""
        number = self.optional_port()
        if number is None:
            raise self.error("is required")
        return number

    def ip(self) -> str:
        """This field as a required IP address, in canonical form."""
        text = self.text()
        try:
            return canonical_ip(text)
        except ValueError:
            raise self.error(f"{text!r} is not an IP address") from None

    def choice(self, allowed: Mapping[str, _T], *, default: str | None = None) -> _T:
        """This field as one of the ``allowed`` names, mapped to its value; required unless defaulted."""
        text = self.text(default=default)
        if text not in allowed:
            raise self.error(f"must be one of {', '.join(allowed)}, got {text!r}")
        return allowed[text]

    def string_map(self) -> dict[str, str]:
        """This field as a string → string map (labels, annotations)."""
        result: dict[str, str] = {}
        for key in self.mapping():
            if not isinstance(key, str):
                shown = _describe_integer(key) if isinstance(key, int | OversizedInteger) else repr(key)
                raise self.error(f"keys must be strings, got {_json_type(key)} {shown}")
            result[key] = self.entry(key).text()
        return result


def _identify(
    obj: Mapping[str, object], *, kind: str, api_versions: Sequence[str], namespaced: bool
) -> tuple[_Field, ObjectRef]:
    """Check kind, apiVersion and metadata.name; the object as a field named after it, and its ref.

    ``kind`` and ``apiVersion`` may be absent: items of an API list response carry neither.
    A namespaced object without a namespace is in ``default``, as ``kubectl apply`` would put it.
    """
    unnamed = _Field(kind, "", obj)
    given_kind = unnamed.at("kind").text(default=kind)
    if given_kind != kind:
        raise unnamed.at("kind").error(f"expected {kind}, got {given_kind!r}")
    api_version = unnamed.at("apiVersion").text(default=api_versions[0])
    if api_version not in api_versions:
        raise unnamed.at("apiVersion").error(f"must be one of {', '.join(api_versions)}, got {api_version!r}")
    metadata = unnamed.at("metadata")
    if metadata.absent:
        raise metadata.error("is required")
    name = metadata.at("name").text()
    if not name:
        raise metadata.at("name").error("must not be empty")
    namespace = (metadata.at("namespace").text(default="") or "default") if namespaced else ""
    ref = ObjectRef(namespace, name)
    return _Field(f"{kind} {ref}", "", obj), ref


# --- Service --------------------------------------------------------------------------------------


def parse_service(obj: Mapping[str, object]) -> ServiceView:
    """A core/v1 Service as a ServiceView; ObjectError names the first malformed field."""
    root, ref = _identify(obj, kind="Service", api_versions=_SERVICE_API_VERSIONS, namespaced=True)
    metadata, spec = root.at("metadata"), root.at("spec")
    service_type = spec.at("type").choice(_SERVICE_TYPES, default="ClusterIP")
    ingress = root.at("status").at("loadBalancer").at("ingress").items()
    return ServiceView(
        ref=ref,
        uid=metadata.at("uid").text(default=""),
        creation_timestamp=metadata.at("creationTimestamp").text(default=""),
        type=service_type,
        cluster_ips=_cluster_ips(spec, service_type=service_type),
        ports=tuple(_service_port(port) for port in spec.at("ports").items()),
        external_ips=tuple(address.ip() for address in spec.at("externalIPs").items()),
        # Entries with only a hostname (cloud load balancers known by DNS name) have no VIP to program.
        load_balancer_ips=tuple(entry.at("ip").ip() for entry in ingress if not entry.at("ip").absent),
        session_affinity=spec.at("sessionAffinity").choice(_SESSION_AFFINITIES, default="None"),
        affinity_timeout=spec.at("sessionAffinityConfig").at("clientIP").at("timeoutSeconds").integer(),
        external_traffic_policy=spec.at("externalTrafficPolicy").choice(_EXTERNAL_POLICIES, default="Cluster"),
        internal_traffic_policy=spec.at("internalTrafficPolicy").choice(_INTERNAL_POLICIES, default="Cluster"),
        health_check_node_port=spec.at("healthCheckNodePort").optional_port(),
        labels=metadata.at("labels").string_map(),
        annotations=metadata.at("annotations").string_map(),
    )


def _cluster_ips(spec: _Field, *, service_type: str) -> tuple[str, ...]:
    """``spec.clusterIPs`` (or ``[spec.clusterIP]``), canonical; ``("None",)`` when headless."""
    entries = spec.at("clusterIPs").items() or [spec.at("clusterIP")]
    texts = [entry.text(default="") for entry in entries]
    if texts == [""]:
        if service_type == "ExternalName":
            return ()
        raise spec.at("clusterIP").error(f"is required for a {service_type} Service")
    if _HEADLESS in texts:
        if len(texts) > 1:
            raise entries[texts.index(_HEADLESS)].error(f"{_HEADLESS!r} must be the only cluster IP")
        return (_HEADLESS,)
    return tuple(entry.ip() for entry in entries)


def _service_port(port: _Field) -> ServicePortView:
    return ServicePortView(
        name=port.at("name").text(default=""),
        protocol=port.at("protocol").choice(_PROTOCOLS, default="TCP"),
        port=port.at("port").port(),
        node_port=port.at("nodePort").optional_port(),
    )


# --- EndpointSlice --------------------------------------------------------------------------------


def parse_endpoint_slice(obj: Mapping[str, object]) -> EndpointSliceView | None:
    """A discovery.k8s.io/v1 or v1beta1 EndpointSlice as a view; None for an FQDN slice."""
    root, ref = _identify(obj, kind="EndpointSlice", api_versions=_SLICE_API_VERSIONS, namespaced=True)
    family = root.at("addressType").choice(_ADDRESS_FAMILIES)
    if family is None:
        return None
    service_label = root.at("metadata").at("labels").entry(SERVICE_NAME_LABEL)
    service_name = service_label.text(default="")
    if not service_name:
        raise service_label.error("is required: the label names the Service the slice belongs to")
    return EndpointSliceView(
        ref=ref,
        service_name=service_name,
        address_type=f"IPv{family}",
        ports=tuple(_slice_ports(root.at("ports"))),
        endpoints=tuple(
            _endpoint(endpoint, family=family, namespace=ref.namespace) for endpoint in root.at("endpoints").items()
        ),
    )


def _slice_ports(ports: _Field) -> list[SlicePortView]:
    views = []
    for port in ports.items():
        number = port.at("port").optional_port()
        # A port-less entry means "all ports", which no IPVS virtual service can express.
        if number is None:
            continue
        views.append(
            SlicePortView(
                name=port.at("name").text(default=""),
                protocol=port.at("protocol").choice(_PROTOCOLS, default="TCP"),
                port=number,
            )
        )
    return views


def _endpoint(endpoint: _Field, *, family: int, namespace: str) -> EndpointView:
    addresses = endpoint.at("addresses").items()
    if not addresses:
        raise endpoint.at("addresses").error("must list at least one address")
    # The API guarantees all addresses of an endpoint are fungible; the proxy uses the first.
    address = addresses[0].ip()
    if family_of(address) != family:
        raise addresses[0].error(f"{address} is not an IPv{family} address (the slice's addressType)")
    conditions = endpoint.at("conditions")
    ready = conditions.at("ready").boolean(default=True)
    node_name = endpoint.at("nodeName").text(default="")
    if not node_name:  # v1beta1 carried the node only as a topology label
        node_name = endpoint.at("topology").entry(HOSTNAME_TOPOLOGY_KEY).text(default="")
    target = endpoint.at("targetRef")
    return EndpointView(
        address=address,
        ready=ready,
        serving=conditions.at("serving").boolean(default=ready),
        terminating=conditions.at("terminating").boolean(default=False),
        node_name=node_name,
        target=None
        if target.absent
        else ObjectRef(target.at("namespace").text(default=namespace), target.at("name").text()),
    )


# --- Node -----------------------------------------------------------------------------------------


def parse_node(obj: Mapping[str, object]) -> NodeView:
    """A core/v1 Node as a NodeView: InternalIP then ExternalIP addresses, canonical, deduplicated."""
    root, ref = _identify(obj, kind="Node", api_versions=_NODE_API_VERSIONS, namespaced=False)
    by_type: dict[str, list[str]] = {address_type: [] for address_type in _NODE_ADDRESS_TYPES}
    for entry in root.at("status").at("addresses").items():
        address_type = entry.at("type").text()
        # Hostname, InternalDNS and ExternalDNS entries hold names, not addresses.
        if address_type in by_type:
            by_type[address_type].append(entry.at("address").ip())
    ordered = [address for addresses in by_type.values() for address in addresses]
    return NodeView(name=ref.name, addresses=tuple(dict.fromkeys(ordered)))
