"""Tests of ipvsctl.kube.parse: raw Service, EndpointSlice and Node objects → views."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from ipvsctl.errors import ObjectError
from ipvsctl.kube.parse import parse_endpoint_slice, parse_node, parse_service
from ipvsctl.kube.views import EndpointSliceView, EndpointView, ObjectRef, ServicePortView, SlicePortView
from ipvsctl.model import Protocol

Raw = dict[str, object]
Parser = Callable[[Mapping[str, object]], object]
_DELETE = object()


def service(**spec: object) -> Raw:
    """A minimal valid ClusterIP Service default/web with two ports; ``spec`` entries override."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1"},
        "spec": {
            "clusterIP": "203.0.113.10",
            "ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}],
        }
        | spec,
    }


def endpoint_slice(*endpoints: Raw, api_version: str = "discovery.k8s.io/v1") -> Raw:
    """A valid IPv4 EndpointSlice default/web-abc12 of Service web (one endpoint unless given)."""
    return {
        "apiVersion": api_version,
        "kind": "EndpointSlice",
        "metadata": {
            "name": "web-abc12",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": "web"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": list(endpoints) or [{"addresses": ["198.51.100.10"], "nodeName": "worker1"}],
    }


def node(*addresses: tuple[str, str]) -> Raw:
    """A Node worker1 with ``(type, address)`` entries (one InternalIP unless given)."""
    entries = addresses or (("InternalIP", "192.0.2.11"),)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "worker1"},
        "status": {"addresses": [{"type": kind, "address": address} for kind, address in entries]},
    }


def changed(obj: Raw, path: Sequence[str | int], value: object) -> Raw:
    """A deep copy of ``obj`` with the value at ``path`` replaced (or removed with ``_DELETE``)."""
    result = copy.deepcopy(obj)
    parent: Any = result  # nested dicts and lists, indexed by the path's steps
    for step in path[:-1]:
        parent = parent[step]
    if value is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return result


# --- malformed objects ----------------------------------------------------------------------------

MALFORMED = [
    pytest.param(
        parse_service, changed(service(), ["metadata"], _DELETE), "metadata", "is required", id="service-no-metadata"
    ),
    pytest.param(
        parse_service,
        changed(service(), ["metadata", "name"], _DELETE),
        "metadata.name",
        "is required",
        id="service-no-name",
    ),
    pytest.param(
        parse_service, changed(service(), ["kind"], "Deployment"), "kind", "expected Service", id="service-wrong-kind"
    ),
    pytest.param(
        parse_service,
        changed(service(), ["apiVersion"], "serving.knative.dev/v1"),
        "apiVersion",
        "must be one of",
        id="service-other-api-group",
    ),
    pytest.param(
        parse_service, service(type="Headless"), "spec.type", "must be one of ClusterIP", id="service-unknown-type"
    ),
    pytest.param(
        parse_service, service(ports={"port": 80}), "spec.ports", "must be a list", id="service-ports-not-list"
    ),
    pytest.param(
        parse_service,
        service(ports=[{"port": 80}, {"port": "53"}]),
        "spec.ports[1].port",
        "must be an integer",
        id="service-port-string",
    ),
    pytest.param(
        parse_service,
        service(ports=[{"port": 70000}]),
        "spec.ports[0].port",
        "between 1 and 65535",
        id="service-port-too-high",
    ),
    pytest.param(
        parse_service, service(ports=[{"port": 0}]), "spec.ports[0].port", "between 1 and 65535", id="service-port-zero"
    ),
    pytest.param(
        parse_service, service(ports=[{"name": "x"}]), "spec.ports[0].port", "is required", id="service-port-missing"
    ),
    pytest.param(
        parse_service,
        service(ports=[{"port": 80, "protocol": "ICMP"}]),
        "spec.ports[0].protocol",
        "'ICMP'",
        id="service-unknown-protocol",
    ),
    pytest.param(
        parse_service,
        service(ports=[{"port": 80, "nodePort": 65536}]),
        "spec.ports[0].nodePort",
        "between 1",
        id="service-node-port-too-high",
    ),
    pytest.param(
        parse_service,
        service(clusterIP="10.0.0.300"),
        "spec.clusterIP",
        "not an IP address",
        id="service-cluster-ip-not-ip",
    ),
    pytest.param(
        parse_service,
        service(clusterIPs=["203.0.113.10", "db8::zz"]),
        "spec.clusterIPs[1]",
        "not an IP address",
        id="service-cluster-ips-entry-not-ip",
    ),
    pytest.param(
        parse_service,
        service(clusterIPs=["None", "203.0.113.10"]),
        "spec.clusterIPs[0]",
        "the only cluster IP",
        id="service-headless-mixed",
    ),
    pytest.param(
        parse_service,
        changed(service(), ["spec", "clusterIP"], _DELETE),
        "spec.clusterIP",
        "is required for",
        id="service-cluster-ip-missing",
    ),
    pytest.param(
        parse_service,
        service(externalIPs=["192.0.2.300"]),
        "spec.externalIPs[0]",
        "not an IP address",
        id="service-external-ip-not-ip",
    ),
    pytest.param(
        parse_service,
        changed(service(), ["status"], {"loadBalancer": {"ingress": [{"ip": "lb.example"}]}}),
        "status.loadBalancer.ingress[0].ip",
        "not an IP address",
        id="service-ingress-ip-not-ip",
    ),
    pytest.param(
        parse_service,
        service(sessionAffinityConfig={"clientIP": {"timeoutSeconds": "3h"}}),
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
        "must be an integer, got string",
        id="service-timeout-string",
    ),
    pytest.param(
        parse_service,
        service(sessionAffinityConfig={"clientIP": {"timeoutSeconds": True}}),
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
        "must be an integer, got boolean",
        id="service-timeout-bool",
    ),
    pytest.param(
        parse_service,
        service(sessionAffinity="Cookie"),
        "spec.sessionAffinity",
        "must be one of None, ClientIP",
        id="service-unknown-affinity",
    ),
    pytest.param(
        parse_service,
        service(externalTrafficPolicy="Nearest"),
        "spec.externalTrafficPolicy",
        "'Nearest'",
        id="service-unknown-external-policy",
    ),
    pytest.param(
        parse_service,
        service(internalTrafficPolicy="Global"),
        "spec.internalTrafficPolicy",
        "'Global'",
        id="service-global-internal-policy",
    ),
    pytest.param(
        parse_service,
        service(healthCheckNodePort=-1),
        "spec.healthCheckNodePort",
        "between 1 and 65535",
        id="service-health-check-port-negative",
    ),
    pytest.param(
        parse_service,
        changed(service(), ["metadata", "labels"], ["app"]),
        "metadata.labels",
        "must be an object",
        id="service-labels-not-map",
    ),
    pytest.param(
        parse_service,
        changed(service(), ["metadata", "labels"], {"tier": 3}),
        "metadata.labels[tier]",
        "string",
        id="service-label-not-string",
    ),
    pytest.param(
        parse_service,
        changed(service(), ["metadata", "annotations"], {"example.com/on": True}),
        "metadata.annotations[example.com/on]",
        "must be a string, got boolean",
        id="service-annotation-bool",
    ),
    pytest.param(
        parse_service,
        changed(service(), ["metadata", "labels"], {1: "x"}),
        "metadata.labels",
        "keys must be",
        id="service-label-key-not-string",
    ),
    pytest.param(parse_endpoint_slice, service(), "kind", "expected EndpointSlice", id="slice-wrong-kind"),
    pytest.param(
        parse_endpoint_slice,
        changed(endpoint_slice(), ["apiVersion"], "discovery.k8s.io/v2"),
        "apiVersion",
        "must be one of",
        id="slice-unknown-api-version",
    ),
    pytest.param(
        parse_endpoint_slice,
        changed(endpoint_slice(), ["metadata", "labels"], {}),
        "metadata.labels[kubernetes.io/service-name]",
        "names the Service",
        id="slice-no-service-label",
    ),
    pytest.param(
        parse_endpoint_slice,
        changed(endpoint_slice(), ["addressType"], _DELETE),
        "addressType",
        "is required",
        id="slice-no-address-type",
    ),
    pytest.param(
        parse_endpoint_slice,
        changed(endpoint_slice(), ["addressType"], "IPv5"),
        "addressType",
        "'IPv5'",
        id="slice-unknown-address-type",
    ),
    pytest.param(
        parse_endpoint_slice,
        endpoint_slice({"addresses": ["2001:db8::10"]}),
        "endpoints[0].addresses[0]",
        "is not an IPv4 address",
        id="slice-address-wrong-family",
    ),
    pytest.param(
        parse_endpoint_slice,
        endpoint_slice({"addresses": ["pod-a"]}),
        "endpoints[0].addresses[0]",
        "not an IP",
        id="slice-address-not-ip",
    ),
    pytest.param(
        parse_endpoint_slice,
        endpoint_slice({"addresses": ["198.51.100.10"]}, {"addresses": []}),
        "endpoints[1].addresses",
        "at least one address",
        id="slice-endpoint-without-addresses",
    ),
    pytest.param(
        parse_endpoint_slice,
        endpoint_slice({"addresses": ["198.51.100.10"], "conditions": {"ready": "true"}}),
        "endpoints[0].conditions.ready",
        "must be a boolean, got string",
        id="slice-ready-not-bool",
    ),
    pytest.param(
        parse_endpoint_slice,
        endpoint_slice({"addresses": ["198.51.100.10"], "conditions": {"terminating": 0}}),
        "endpoints[0].conditions.terminating",
        "must be a boolean, got integer",
        id="slice-terminating-not-bool",
    ),
    pytest.param(
        parse_endpoint_slice,
        changed(endpoint_slice(), ["ports", 0, "port"], 65536),
        "ports[0].port",
        "between 1 and 65535",
        id="slice-port-out-of-range",
    ),
    pytest.param(
        parse_endpoint_slice,
        endpoint_slice({"addresses": ["198.51.100.10"], "nodeName": 7}),
        "endpoints[0].nodeName",
        "must be a string",
        id="slice-node-name-not-string",
    ),
    pytest.param(parse_node, service(), "kind", "expected Node", id="node-wrong-kind"),
    pytest.param(
        parse_node, changed(node(), ["metadata"], {"labels": {}}), "metadata.name", "is required", id="node-no-name"
    ),
    pytest.param(
        parse_node,
        node(("InternalIP", "192.0.2.11"), ("ExternalIP", "worker1.example")),
        "status.addresses[1].address",
        "not an IP address",
        id="node-address-not-ip",
    ),
]


@pytest.mark.parametrize(("parse", "obj", "field", "phrase"), MALFORMED)
def test_malformed_object_names_the_field(parse: Parser, obj: Raw, field: str, phrase: str) -> None:
    """A malformed object raises ObjectError naming the offending field and saying what is wrong."""
    with pytest.raises(ObjectError) as caught:
        parse(obj)
    assert caught.value.field == field
    assert phrase in caught.value.message


@pytest.mark.parametrize(
    ("parse", "obj", "name"),
    [
        (parse_service, service(ports=[{"port": "80"}]), "Service default/web"),
        (parse_endpoint_slice, endpoint_slice({"addresses": []}), "EndpointSlice default/web-abc12"),
        (parse_node, node(("InternalIP", "x")), "Node worker1"),
        (parse_service, changed(service(), ["metadata", "name"], _DELETE), "Service"),
    ],
    ids=["service", "slice", "node", "unnamed"],
)
def test_error_names_the_object(parse: Parser, obj: Raw, name: str) -> None:
    """The ObjectError names the object by kind and namespace/name (the kind alone before a name is known)."""
    with pytest.raises(ObjectError) as caught:
        parse(obj)
    assert caught.value.obj == name


# --- Service --------------------------------------------------------------------------------------


def test_service_defaults() -> None:
    """Unset type, protocol, affinity and traffic policies take their API defaults."""
    view = parse_service(service(ports=[{"port": 80}]))
    assert (view.type, view.session_affinity, view.affinity_timeout) == ("ClusterIP", "None", None)
    assert (view.external_traffic_policy, view.internal_traffic_policy) == ("Cluster", "Cluster")
    assert view.ports == (ServicePortView(name="", protocol=Protocol.TCP, port=80, node_port=None),)


def test_service_fields_are_read() -> None:
    """Every field the view holds is read from a full LoadBalancer Service."""
    raw = service(
        type="LoadBalancer",
        ports=[{"name": "http", "port": 8080, "nodePort": 30080, "protocol": "SCTP", "targetPort": "web"}],
        externalIPs=["192.0.2.50"],
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}},
        externalTrafficPolicy="Local",
        internalTrafficPolicy="Local",
        healthCheckNodePort=32000,
    )
    raw["metadata"] = {
        "name": "web",
        "namespace": "shop",
        "uid": "u-1",
        "creationTimestamp": "2024-05-07T09:21:02Z",
        "labels": {"app": "web"},
        "annotations": {"example.com/note": "x"},
    }
    raw["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.100"}]}}
    view = parse_service(raw)
    assert view.ref == ObjectRef("shop", "web")
    assert (view.uid, view.creation_timestamp, view.type) == ("u-1", "2024-05-07T09:21:02Z", "LoadBalancer")
    assert view.ports == (ServicePortView(name="http", protocol=Protocol.SCTP, port=8080, node_port=30080),)
    assert (view.external_ips, view.load_balancer_ips) == (("192.0.2.50",), ("192.0.2.100",))
    assert (view.session_affinity, view.affinity_timeout) == ("ClientIP", 600)
    assert (view.external_traffic_policy, view.internal_traffic_policy) == ("Local", "Local")
    assert view.health_check_node_port == 32000
    assert (view.labels, view.annotations) == ({"app": "web"}, {"example.com/note": "x"})


def test_cluster_ips_preferred_over_cluster_ip() -> None:
    """Dual-stack ``clusterIPs`` win over ``clusterIP`` and are canonicalised."""
    view = parse_service(service(clusterIP="203.0.113.10", clusterIPs=["203.0.113.10", "2001:DB8:0::10"]))
    assert view.cluster_ips == ("203.0.113.10", "2001:db8::10")


def test_cluster_ip_used_without_cluster_ips() -> None:
    """Without ``clusterIPs`` the single ``clusterIP`` is used."""
    assert parse_service(service(clusterIP="203.0.113.7")).cluster_ips == ("203.0.113.7",)


def test_headless_service_keeps_none() -> None:
    """``clusterIP: None`` is kept as the literal ``("None",)``."""
    view = parse_service(service(clusterIP="None", clusterIPs=["None"]))
    assert view.cluster_ips == ("None",)
    assert view.is_headless


def test_external_name_service_may_lack_cluster_ip() -> None:
    """An ExternalName Service without a cluster IP has no cluster IPs."""
    raw = changed(service(type="ExternalName", externalName="db.example", ports=[]), ["spec", "clusterIP"], _DELETE)
    assert parse_service(raw).cluster_ips == ()


def test_legacy_global_policy_is_cluster() -> None:
    """The legacy ``externalTrafficPolicy: Global`` reads as Cluster."""
    assert parse_service(service(externalTrafficPolicy="Global")).external_traffic_policy == "Cluster"


def test_ingress_with_hostname_only_is_skipped() -> None:
    """Load-balancer ingress entries that carry only a hostname give no address."""
    raw = service(type="LoadBalancer")
    raw["status"] = {"loadBalancer": {"ingress": [{"hostname": "lb.example"}, {"ip": "2001:db8::0:1"}]}}
    assert parse_service(raw).load_balancer_ips == ("2001:db8::1",)


def test_affinity_timeout_is_not_range_checked() -> None:
    """An out-of-range affinity timeout is kept as given: range checks belong to translate."""
    raw = service(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 0}})
    assert parse_service(raw).affinity_timeout == 0


def test_list_items_without_kind_are_accepted() -> None:
    """Items of an API list response, which carry no kind or apiVersion, parse."""
    raw = service()
    del raw["kind"], raw["apiVersion"]
    assert parse_service(raw).ref == ObjectRef("default", "web")


def test_missing_namespace_is_default() -> None:
    """A Service without a namespace is in ``default``."""
    raw = changed(service(), ["metadata", "namespace"], _DELETE)
    assert parse_service(raw).ref == ObjectRef("default", "web")


# --- EndpointSlice --------------------------------------------------------------------------------


def test_slice_fields_are_read() -> None:
    """Name, service, address type, ports and endpoints are read from a v1 slice."""
    view = parse_endpoint_slice(endpoint_slice())
    assert view == EndpointSliceView(
        ref=ObjectRef("default", "web-abc12"),
        service_name="web",
        address_type="IPv4",
        ports=(SlicePortView(name="http", protocol=Protocol.TCP, port=8080),),
        endpoints=(EndpointView(address="198.51.100.10", node_name="worker1"),),
    )


def test_unset_conditions_take_api_defaults() -> None:
    """Unset conditions read as ready, serving and not terminating."""
    view = parse_endpoint_slice(endpoint_slice({"addresses": ["198.51.100.10"]}))
    assert view is not None
    (endpoint,) = view.endpoints
    assert (endpoint.ready, endpoint.serving, endpoint.terminating) == (True, True, False)


def test_unset_serving_follows_ready() -> None:
    """An unset ``serving`` takes the value of ``ready``."""
    raw = endpoint_slice({"addresses": ["198.51.100.10"], "conditions": {"ready": False}})
    view = parse_endpoint_slice(raw)
    assert view is not None
    assert (view.endpoints[0].ready, view.endpoints[0].serving) == (False, False)


def test_terminating_serving_endpoint() -> None:
    """Explicit conditions are kept: a terminating endpoint may still be serving."""
    conditions = {"ready": False, "serving": True, "terminating": True}
    view = parse_endpoint_slice(endpoint_slice({"addresses": ["198.51.100.10"], "conditions": conditions}))
    assert view is not None
    endpoint = view.endpoints[0]
    assert (endpoint.ready, endpoint.serving, endpoint.terminating) == (False, True, True)


def test_v1beta1_node_from_topology() -> None:
    """A v1beta1 endpoint without ``nodeName`` takes its node from the hostname topology label."""
    raw = endpoint_slice(
        {"addresses": ["198.51.100.10"], "topology": {"kubernetes.io/hostname": "worker2"}},
        api_version="discovery.k8s.io/v1beta1",
    )
    view = parse_endpoint_slice(raw)
    assert view is not None
    assert view.endpoints[0].node_name == "worker2"


def test_fqdn_slice_is_skipped() -> None:
    """An FQDN slice gives no view."""
    raw = changed(endpoint_slice({"addresses": ["db.example"]}), ["addressType"], "FQDN")
    assert parse_endpoint_slice(raw) is None


def test_first_address_only_canonical() -> None:
    """Only an endpoint's first address is used, in canonical form."""
    raw = changed(endpoint_slice({"addresses": ["2001:DB8::0:10", "2001:db8::11"]}), ["addressType"], "IPv6")
    view = parse_endpoint_slice(raw)
    assert view is not None
    assert [endpoint.address for endpoint in view.endpoints] == ["2001:db8::10"]


def test_target_ref_defaults_to_slice_namespace() -> None:
    """A targetRef without a namespace refers to the slice's namespace."""
    raw = endpoint_slice({"addresses": ["198.51.100.10"], "targetRef": {"kind": "Pod", "name": "web-1"}})
    view = parse_endpoint_slice(raw)
    assert view is not None
    assert view.endpoints[0].target == ObjectRef("default", "web-1")


def test_slice_port_defaults() -> None:
    """A slice port without name or protocol is unnamed TCP."""
    view = parse_endpoint_slice(changed(endpoint_slice(), ["ports"], [{"port": 8080}]))
    assert view is not None
    assert view.ports == (SlicePortView(name="", protocol=Protocol.TCP, port=8080),)


def test_slice_port_without_number_is_skipped() -> None:
    """A slice port without a number ("all ports") is skipped: IPVS cannot express it."""
    view = parse_endpoint_slice(changed(endpoint_slice(), ["ports"], [{"name": "all"}]))
    assert view is not None
    assert view.ports == ()


# --- Node -----------------------------------------------------------------------------------------


def test_node_addresses_internal_then_external() -> None:
    """Node addresses are InternalIPs then ExternalIPs, canonical, deduplicated, names ignored."""
    view = parse_node(
        node(
            ("ExternalIP", "203.0.113.5"),
            ("Hostname", "worker1"),
            ("InternalIP", "192.0.2.11"),
            ("InternalIP", "2001:DB8::11"),
            ("ExternalIP", "192.0.2.11"),
        )
    )
    assert view.name == "worker1"
    assert view.addresses == ("192.0.2.11", "2001:db8::11", "203.0.113.5")


def test_node_without_status_has_no_addresses() -> None:
    """A Node without status has no addresses."""
    assert parse_node(changed(node(), ["status"], _DELETE)).addresses == ()
