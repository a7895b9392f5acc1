"""Topology in a Service's translation: hinted endpoints, the notices that explain them, bad values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from ipvsctl.kube.views import EndpointSliceView, EndpointView, ServiceView
from ipvsctl.translate import NodeContext, NoticeKind, Policy, Translation, translate
from tests.builders import ep, eps, port, svc

NODE = NodeContext("worker1", ("192.0.2.11",), zone="zone-a")
HINTED = eps(
    ep("198.51.100.1", node="worker1", zones=["zone-a"], pod="web-1"),
    ep("198.51.100.2", node="worker2", zones=["zone-a"], pod="web-2"),
    ep("198.51.100.3", node="worker3", zones=["zone-b"], pod="web-3"),
)


def run(
    service: ServiceView, slices: Sequence[EndpointSliceView] = (HINTED,), *, node: NodeContext = NODE
) -> Translation:
    return translate([service], slices, node=node, policy=Policy())


def reals(translation: Translation) -> Mapping[str, list[str]]:
    return {vs.key.address: [real.address for real in vs.reals] for vs in translation.table}


def topology_notices(translation: Translation) -> list[str]:
    return [n.message for n in translation.notices if n.kind is NoticeKind.TOPOLOGY]


def test_prefer_close_uses_the_zone_hinted_endpoints() -> None:
    """trafficDistribution PreferClose with zone hints: the ClusterIP's real servers are this zone's."""
    result = run(svc(traffic_distribution="PreferClose"))
    assert reals(result)["203.0.113.10"] == ["198.51.100.1", "198.51.100.2"]


def test_topology_notice_names_what_was_left_out_and_why() -> None:
    """The notice says how many endpoints are used, for which zone, and names the left-out one and its Pod."""
    result = run(svc(traffic_distribution="PreferClose"))
    (notice,) = [n for n in result.notices if n.kind is NoticeKind.TOPOLOGY]
    assert notice.field == "spec.trafficDistribution"
    assert "2 of 3 ready endpoints" in notice.message
    assert "zone zone-a (PreferSameZone)" in notice.message
    assert "198.51.100.3 (pod default/web-3)" in notice.message


def test_hints_decide_even_without_service_fields() -> None:
    """Hints written for the topology-mode annotation (or any reason) are followed, as kube-proxy 1.33+ does."""
    service = svc(annotations={"service.kubernetes.io/topology-mode": "Auto"})
    result = run(service)
    assert reals(result)["203.0.113.10"] == ["198.51.100.1", "198.51.100.2"]
    assert [n.field for n in result.notices if n.kind is NoticeKind.TOPOLOGY] == ["spec.ports[0]"]


def test_node_outside_every_hinted_zone_uses_all_with_a_notice() -> None:
    """On a node of a zone nothing is hinted for, every endpoint is used and the notice says why."""
    result = run(svc(traffic_distribution="PreferClose"), node=replace(NODE, zone="zone-c"))
    assert reals(result)["203.0.113.10"] == ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
    assert topology_notices(result) == [
        "IPv4 topology hints not used (no ready endpoint is hinted for zone zone-c): every endpoint is used"
    ]


def test_prefer_same_node_uses_this_nodes_endpoint() -> None:
    """Node hints on every ready endpoint (PreferSameNode): the endpoint hinted for this node alone."""
    slices = [
        eps(
            ep("198.51.100.1", node="worker1", nodes=["worker1"], zones=["zone-a"]),
            ep("198.51.100.2", node="worker2", nodes=["worker2"], zones=["zone-a"]),
        )
    ]
    result = run(svc(traffic_distribution="PreferSameNode"), slices)
    assert reals(result)["203.0.113.10"] == ["198.51.100.1"]
    assert any("hinted for node worker1 (PreferSameNode)" in m for m in topology_notices(result))


def test_external_traffic_policy_local_vips_ignore_hints() -> None:
    """A NodePort with externalTrafficPolicy Local takes this node's endpoints, hinted for elsewhere or not."""
    slices = [
        eps(
            ep("198.51.100.1", node="worker1", zones=["zone-b"]),
            ep("198.51.100.2", node="worker2", zones=["zone-a"]),
        )
    ]
    service = svc(type="NodePort", etp="Local", ports=[port(node_port=30080)])
    result = run(service, slices)
    assert reals(result)["192.0.2.11"] == ["198.51.100.1"]
    assert reals(result)["203.0.113.10"] == ["198.51.100.2"]


def test_internal_traffic_policy_local_says_nothing_of_hints() -> None:
    """A Service whose every VIP uses local endpoints gets no topology notice: hints do not apply to it."""
    result = run(svc(itp="Local"))
    assert reals(result)["203.0.113.10"] == ["198.51.100.1"]
    assert topology_notices(result) == []


def test_same_words_for_several_ports_are_said_once() -> None:
    """Two ports over the same endpoints give one topology notice, not two."""
    service = svc(ports=[port(80, name="http"), port(81, name="alt")])
    slices = [replace(HINTED, ports=(*HINTED.ports, replace(HINTED.ports[0], name="alt", port=8081)))]
    assert len(topology_notices(run(service, slices))) == 1


def test_unknown_traffic_distribution_is_noticed_and_hints_still_decide() -> None:
    """An unknown trafficDistribution value gets an unknown-value notice; the table follows the hints."""
    result = run(svc(traffic_distribution="PreferNearby"))
    assert [(n.kind, n.field) for n in result.notices if n.kind is NoticeKind.UNKNOWN_VALUE] == [
        (NoticeKind.UNKNOWN_VALUE, "spec.trafficDistribution")
    ]
    assert reals(result)["203.0.113.10"] == ["198.51.100.1", "198.51.100.2"]


def test_unknown_topology_mode_annotation_is_noticed() -> None:
    """A topology-mode annotation value other than Auto or Disabled gets a notice naming the annotation."""
    result = run(svc(annotations={"service.kubernetes.io/topology-mode": "Maybe"}))
    assert [n.field for n in result.notices if n.kind is NoticeKind.UNKNOWN_VALUE] == [
        "metadata.annotations[service.kubernetes.io/topology-mode]"
    ]


def test_unreadable_hints_are_noticed_and_cost_no_endpoint() -> None:
    """A slice's unreadable hints get a notice naming the slice and field; every endpoint is still used."""
    unhinted: list[EndpointView] = [
        replace(e, zone_hints=()) if e.address.endswith(".3") else e for e in HINTED.endpoints
    ]
    broken = replace(
        HINTED,
        endpoints=tuple(unhinted),
        hint_problems=(("endpoints[2].hints.forZones[0].name", "must be a non-empty string"),),
    )
    result = run(svc(), [broken])
    (notice,) = [n for n in result.notices if n.kind is NoticeKind.HINTS_UNREADABLE]
    assert notice.field == "EndpointSlice web-ipv4 endpoints[2].hints.forZones[0].name"
    assert reals(result)["203.0.113.10"] == ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
