"""Address families and ingress ipMode: a Service exists only in the families of its cluster IPs."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ipvsctl.kube.views import EndpointSliceView, ServiceView
from ipvsctl.model import Protocol
from ipvsctl.translate import NodeContext, NoticeKind, Policy, Translation, translate
from tests.builders import ep, eps, port, svc

DUAL_NODE = NodeContext("worker1", ("192.0.2.11", "2001:db8::11"))
V4_CLUSTER_IP = "203.0.113.10"
V6_CLUSTER_IP = "2001:db8:1::10"
V4_SLICE = eps(ep("198.51.100.10"), address_type="IPv4")
V6_SLICE = eps(ep("2001:db8:2::10"), address_type="IPv6")


def run(service: ServiceView, slices: Sequence[EndpointSliceView] = (V4_SLICE, V6_SLICE)) -> Translation:
    return translate([service], slices, node=DUAL_NODE, policy=Policy())


def table(translation: Translation) -> dict[str, tuple[str, ...]]:
    """``address:port`` of each virtual service → its real servers' addresses."""
    return {f"{vs.key.address}:{vs.key.port}": tuple(real.address for real in vs.reals) for vs in translation.table}


def node_port_service(cluster_ips: Sequence[str], families: Sequence[str] = ()) -> ServiceView:
    return svc(type="NodePort", cluster_ips=cluster_ips, ip_families=families, ports=[port(node_port=30080)])


@pytest.mark.parametrize(
    ("cluster_ips", "families", "expected"),
    [
        pytest.param(
            [V4_CLUSTER_IP],
            ["IPv4"],
            {
                f"{V4_CLUSTER_IP}:80": ("198.51.100.10",),
                "192.0.2.11:30080": ("198.51.100.10",),
            },
            id="single-stack-ipv4",
        ),
        pytest.param(
            [V6_CLUSTER_IP],
            ["IPv6"],
            {
                f"{V6_CLUSTER_IP}:80": ("2001:db8:2::10",),
                "2001:db8::11:30080": ("2001:db8:2::10",),
            },
            id="single-stack-ipv6",
        ),
        pytest.param(
            [V6_CLUSTER_IP, V4_CLUSTER_IP],
            ["IPv6", "IPv4"],
            {
                f"{V6_CLUSTER_IP}:80": ("2001:db8:2::10",),
                f"{V4_CLUSTER_IP}:80": ("198.51.100.10",),
                "192.0.2.11:30080": ("198.51.100.10",),
                "2001:db8::11:30080": ("2001:db8:2::10",),
            },
            id="prefer-dual-stack-ipv6-first",
        ),
        pytest.param(
            [V4_CLUSTER_IP],
            [],
            {
                f"{V4_CLUSTER_IP}:80": ("198.51.100.10",),
                "192.0.2.11:30080": ("198.51.100.10",),
            },
            id="no-ip-families-field",
        ),
    ],
)
def test_service_exists_only_in_its_families(
    cluster_ips: list[str], families: list[str], expected: dict[str, tuple[str, ...]]
) -> None:
    """On a dual-stack node, VIPs (ClusterIP, NodePorts) and endpoints are those of the Service's families."""
    result = run(node_port_service(cluster_ips, families))
    assert table(result) == expected
    assert not result.rejections


def test_other_family_slice_fills_no_virtual_service() -> None:
    """An IPv6 EndpointSlice of an IPv4-only Service is not used and makes no IPv6 virtual service."""
    result = run(node_port_service([V4_CLUSTER_IP], ["IPv4"]), slices=[V6_SLICE])
    assert table(result) == {f"{V4_CLUSTER_IP}:80": (), "192.0.2.11:30080": ()}


@pytest.mark.parametrize(
    ("cluster_ips", "external_ips", "kept", "ignored"),
    [
        pytest.param([V4_CLUSTER_IP], ["198.51.100.50", "2001:db8:3::50"], "198.51.100.50", 1, id="ipv4-service"),
        pytest.param([V6_CLUSTER_IP], ["198.51.100.50", "2001:db8:3::50"], "2001:db8:3::50", 0, id="ipv6-service"),
    ],
)
def test_external_ip_of_another_family_gets_a_notice(
    cluster_ips: list[str], external_ips: list[str], kept: str, ignored: int
) -> None:
    """An externalIP of a family the Service lacks is not programmed; the notice names its field."""
    result = run(svc(cluster_ips=cluster_ips, external_ips=external_ips))
    addresses = {key.split(":", 1)[0] if "." in key else key.rsplit(":", 1)[0] for key in table(result)}
    assert kept in addresses
    assert external_ips[ignored] not in addresses
    (notice,) = result.notices
    assert (notice.kind, notice.field) == (NoticeKind.WRONG_FAMILY, f"spec.externalIPs[{ignored}]")


def test_dual_stack_service_keeps_external_ips_of_both_families() -> None:
    """A dual-stack Service programs externalIPs of both families, each with its family's endpoints."""
    service = svc(cluster_ips=[V4_CLUSTER_IP, V6_CLUSTER_IP], external_ips=["198.51.100.50", "2001:db8:3::50"])
    result = run(service)
    assert table(result)["198.51.100.50:80"] == ("198.51.100.10",)
    assert table(result)["2001:db8:3::50:80"] == ("2001:db8:2::10",)
    assert not result.notices


def test_ingress_ip_of_another_family_gets_a_notice() -> None:
    """A LoadBalancer ingress IP of a family the Service lacks is not programmed; the notice names its entry."""
    service = svc(type="LoadBalancer", load_balancer_ips=["2001:db8:3::60", "198.51.100.60"])
    result = run(service)
    assert "198.51.100.60:80" in table(result)
    assert "2001:db8:3::60:80" not in table(result)
    assert [(n.kind, n.field) for n in result.notices] == [
        (NoticeKind.WRONG_FAMILY, "status.loadBalancer.ingress[0].ip")
    ]


@pytest.mark.parametrize(
    ("cluster_ips", "families", "field"),
    [
        pytest.param([V4_CLUSTER_IP], ["IPv6"], "spec.ipFamilies[0]", id="contradicts-cluster-ip"),
        pytest.param([V4_CLUSTER_IP, V6_CLUSTER_IP], ["IPv6", "IPv4"], "spec.ipFamilies[0]", id="swapped"),
        pytest.param([V4_CLUSTER_IP], ["IPv5"], "spec.ipFamilies[0]", id="unknown-family"),
        pytest.param([V4_CLUSTER_IP], ["IPv4", "IPv6"], "spec.ipFamilies", id="more-families-than-ips"),
        pytest.param([V4_CLUSTER_IP, "203.0.113.11"], ["IPv4"], "spec.clusterIPs[1]", id="two-ipv4-cluster-ips"),
    ],
)
def test_contradictory_families_reject_the_service_alone(
    cluster_ips: list[str], families: list[str], field: str
) -> None:
    """ipFamilies that contradict clusterIPs reject that Service, naming the field; others are unaffected."""
    bad = node_port_service(cluster_ips, families)
    good = svc("other", cluster_ips=["203.0.113.20"])
    result = translate([bad, good], [V4_SLICE], node=DUAL_NODE, policy=Policy())
    assert {str(r.service) for r in result.rejections} == {"default/web"}
    assert result.rejections[0].field == field
    assert set(table(result)) == {"203.0.113.20:80"}


def test_proxy_ip_mode_ingress_is_not_programmed() -> None:
    """An ingress IP with ipMode Proxy is the load balancer's: no VIP, and a notice that says so."""
    service = svc(type="LoadBalancer", load_balancer_ips=["198.51.100.60", "198.51.100.61"], ip_modes=["Proxy", "VIP"])
    result = run(service)
    assert "198.51.100.60:80" not in table(result)
    assert "198.51.100.61:80" in table(result)
    assert [(n.kind, n.field) for n in result.notices] == [
        (NoticeKind.LOAD_BALANCER_IP_PROXIED, "status.loadBalancer.ingress[0].ipMode")
    ]


def test_unset_ip_mode_ingress_is_programmed() -> None:
    """An ingress IP without ipMode is a VIP, as before ipMode existed."""
    result = run(svc(type="LoadBalancer", load_balancer_ips=["198.51.100.60"]))
    assert "198.51.100.60:80" in table(result)
    assert not result.notices


def test_unknown_ip_mode_is_programmed_with_a_notice() -> None:
    """An ipMode this version does not know is programmed as VIP (as kube-proxy does) and noticed."""
    result = run(svc(type="LoadBalancer", load_balancer_ips=["198.51.100.60"], ip_modes=["Tunnel"]))
    assert "198.51.100.60:80" in table(result)
    assert [(n.kind, n.field) for n in result.notices] == [
        (NoticeKind.UNKNOWN_VALUE, "status.loadBalancer.ingress[0].ipMode")
    ]


def test_persistence_netmask_follows_the_families_of_the_vips() -> None:
    """An IPv6-only ClientIP Service gets IPv6 persistence on every VIP."""
    service = svc(type="NodePort", cluster_ips=[V6_CLUSTER_IP], affinity="ClientIP", ports=[port(node_port=30080)])
    result = run(service)
    assert {vs.key.family for vs in result.table} == {6}
    assert all(vs.persistence is not None and vs.persistence.netmask == 128 for vs in result.table)


def test_udp_port_of_single_stack_service_stays_in_its_family() -> None:
    """Every port of a single-stack Service, whatever its protocol, stays in the Service's family."""
    ports = [port(node_port=30080), port(53, name="dns", protocol=Protocol.UDP, node_port=30053)]
    service = svc(type="NodePort", cluster_ips=[V6_CLUSTER_IP], ports=ports)
    assert {vs.key.family for vs in run(service).table} == {6}
