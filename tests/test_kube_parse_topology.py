"""Reading the fields of current Kubernetes: ipFamilies, trafficDistribution, ipMode, hints, zones, trigger times."""

from __future__ import annotations

import json

import pytest

from ipvsctl.errors import ObjectError
from ipvsctl.kube.parse import parse_endpoint_slice, parse_node, parse_service, trigger_time
from ipvsctl.kube.views import LoadBalancerIngressView
from tests.test_kube_parse import endpoint_slice, node, service


def test_ip_families_and_traffic_distribution_are_read() -> None:
    """spec.ipFamilies and spec.trafficDistribution reach the view as written."""
    view = parse_service(service(ipFamilies=["IPv4"], trafficDistribution="PreferClose"))
    assert (view.ip_families, view.traffic_distribution) == (("IPv4",), "PreferClose")


def test_ip_family_must_be_a_string() -> None:
    """A non-string ipFamilies entry is refused, naming the entry."""
    with pytest.raises(ObjectError, match=r"spec\.ipFamilies\[0\]"):
        parse_service(service(ipFamilies=[4]))


def test_ingress_keeps_ip_mode_and_its_place_in_the_list() -> None:
    """An ingress entry keeps its ipMode and index, counted over hostname-only entries too."""
    raw = service(type="LoadBalancer")
    raw["status"] = {
        "loadBalancer": {
            "ingress": [
                {"hostname": "lb.example.com"},
                {"ip": "198.51.100.60", "ipMode": "Proxy"},
                {"ip": "198.51.100.61"},
            ]
        }
    }
    assert parse_service(raw).load_balancer_ingress == (
        LoadBalancerIngressView("198.51.100.60", ip_mode="Proxy", index=1),
        LoadBalancerIngressView("198.51.100.61", ip_mode="", index=2),
    )


def test_hints_and_zone_are_read() -> None:
    """forZones and forNodes names and the endpoint's zone reach the view."""
    raw = endpoint_slice(
        {
            "addresses": ["198.51.100.10"],
            "zone": "zone-a",
            "hints": {"forZones": [{"name": "zone-a"}, {"name": "zone-b"}], "forNodes": [{"name": "worker1"}]},
        }
    )
    view = parse_endpoint_slice(raw)
    assert view is not None
    (endpoint,) = view.endpoints
    assert (endpoint.zone, endpoint.zone_hints, endpoint.node_hints) == ("zone-a", ("zone-a", "zone-b"), ("worker1",))
    assert view.hint_problems == ()


@pytest.mark.parametrize(
    ("hints", "field"),
    [
        pytest.param("zone-a", "endpoints[0].hints", id="not-an-object"),
        pytest.param({"forZones": "zone-a"}, "endpoints[0].hints.forZones", id="not-a-list"),
        pytest.param({"forZones": [{"name": ""}]}, "endpoints[0].hints.forZones[0].name", id="empty-name"),
        pytest.param({"forZones": [{"name": 7}]}, "endpoints[0].hints.forZones[0].name", id="number"),
        pytest.param({"forNodes": ["worker1"]}, "endpoints[0].hints.forNodes[0].name", id="entry-not-an-object"),
    ],
)
def test_malformed_hints_cost_the_endpoint_its_hints_only(hints: object, field: str) -> None:
    """Malformed hints are recorded with their field; the endpoint stays, unhinted, and the slice is read."""
    view = parse_endpoint_slice(endpoint_slice({"addresses": ["198.51.100.10"], "hints": hints}))
    assert view is not None
    (endpoint,) = view.endpoints
    assert (endpoint.zone_hints, endpoint.node_hints) == ((), ())
    assert [where for where, _ in view.hint_problems] == [field]


def test_malformed_hints_from_api_bytes_are_recorded_too() -> None:
    """The watch path (JSON bytes) reads hints as leniently as decoded values."""
    raw = endpoint_slice({"addresses": ["198.51.100.10"], "hints": {"forZones": [{}]}})
    view = parse_endpoint_slice(json.dumps(raw).encode())
    assert view is not None
    assert [where for where, _ in view.hint_problems] == ["endpoints[0].hints.forZones[0].name"]


def test_trigger_time_annotation_is_read_as_posix_seconds() -> None:
    """endpoints.kubernetes.io/last-change-trigger-time becomes POSIX seconds, fractions kept."""
    raw = endpoint_slice()
    raw["metadata"]["annotations"] = {  # type: ignore[index]
        "endpoints.kubernetes.io/last-change-trigger-time": "2026-12-04T10:00:00.25Z"
    }
    view = parse_endpoint_slice(raw)
    assert view is not None
    assert view.trigger_time == 1796378400.25


@pytest.mark.parametrize(
    "text",
    ["yesterday", "2026-12-04T10:00:00", "", "9" * 100, 17],
    ids=["words", "no-zone", "empty", "huge", "number"],
)
def test_unreadable_trigger_time_is_ignored(text: object) -> None:
    """An unreadable trigger time only loses the metric sample: None, never a refusal."""
    assert trigger_time({"endpoints.kubernetes.io/last-change-trigger-time": text}) is None


def test_node_zone_label_is_read() -> None:
    """The Node's topology.kubernetes.io/zone label is its zone."""
    raw = node()
    raw["metadata"]["labels"] = {"topology.kubernetes.io/zone": "zone-a"}  # type: ignore[index]
    assert parse_node(raw).zone == "zone-a"


def test_node_without_zone_label_has_no_zone() -> None:
    """No zone label: the zone is empty (hints for zones are then not used)."""
    assert parse_node(node()).zone == ""
