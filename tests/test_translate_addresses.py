"""The address policy: which addresses a Service may claim as VIPs or name as real servers."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Any

import netaddr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipvsctl.addresses import _special_parsed, special_address
from ipvsctl.kube.views import ServiceView
from ipvsctl.model import canonical_ip
from ipvsctl.translate import NodeContext, NoticeKind, Policy, Translation, VipKind, VipRole, translate
from tests.builders import ep, eps, port, svc

NODE = NodeContext("worker1", ("192.0.2.11", "2001:db8::11"))
PROGRAMMED = "203.0.113.10"


def run(service: ServiceView, *, policy: Policy | None = None) -> Translation:
    return translate([service], [eps(ep("198.51.100.10"))], node=NODE, policy=policy or Policy())


def vips(translation: Translation) -> set[str]:
    return {vs.key.address for vs in translation.table}


SPECIAL = [
    pytest.param("0.0.0.0", "unspecified", id="v4-unspecified"),
    pytest.param("::", "unspecified", id="v6-unspecified"),
    pytest.param("0.1.2.3", "this-network", id="this-network"),
    pytest.param("127.0.0.1", "loopback", id="v4-loopback"),
    pytest.param("127.255.0.9", "loopback", id="v4-loopback-range"),
    pytest.param("::1", "loopback", id="v6-loopback"),
    pytest.param("169.254.169.254", "link-local", id="v4-link-local-metadata"),
    pytest.param("fe80::1", "link-local", id="v6-link-local"),
    pytest.param("fe80::1%eth0", "zone-scoped", id="zone"),
    pytest.param("224.0.0.1", "multicast", id="v4-multicast"),
    pytest.param("ff02::1", "multicast", id="v6-multicast"),
    pytest.param("255.255.255.255", "broadcast", id="broadcast"),
    pytest.param("240.0.0.1", "reserved", id="reserved"),
    pytest.param("::ffff:192.0.2.1", "IPv4-mapped", id="v4-mapped"),
    pytest.param("::192.0.2.1", "IPv4-compatible", id="v4-compatible"),
]


@pytest.mark.parametrize(("address", "kind"), SPECIAL)
def test_special_addresses_are_named(address: str, kind: str) -> None:
    """Each kind of address that is never programmed is recognised, in canonical form."""
    assert special_address(canonical_ip(address)) == kind


@pytest.mark.parametrize("address", ["192.0.2.1", "10.0.0.1", "203.0.113.255", "2001:db8::1", "fd00::1"])
def test_plain_unicast_addresses_pass(address: str) -> None:
    """Ordinary unicast addresses (private ones included) may be VIPs and real servers."""
    assert special_address(address) is None


@pytest.mark.parametrize(("address", "kind"), SPECIAL)
def test_special_external_ip_is_refused_with_a_notice(address: str, kind: str) -> None:
    """An externalIP of a special kind is not programmed; the notice names the kind; the ClusterIP stays."""
    result = run(svc(external_ips=[canonical_ip(address)]))
    assert vips(result) == {PROGRAMMED}
    (notice,) = result.notices
    assert (notice.field, notice.kind) == ("spec.externalIPs[0]", NoticeKind.ADDRESS_REFUSED)
    assert kind in notice.message


@pytest.mark.parametrize("address", ["127.0.0.1", "0.0.0.0", "::1", "224.0.0.5", "255.255.255.255"])
def test_special_load_balancer_ip_is_refused(address: str) -> None:
    """An ingress IP of a special kind is refused even with no allow-list at all."""
    result = run(svc(type="LoadBalancer", load_balancer_ips=[address]))
    assert vips(result) == {PROGRAMMED}
    assert [n.field for n in result.notices] == ["status.loadBalancer.ingress[0].ip"]


def test_special_cluster_ip_is_refused_and_others_kept() -> None:
    """A loopback ClusterIP is refused; the Service's other ClusterIP is programmed."""
    result = run(svc(cluster_ips=["127.0.0.1", "2001:db8:1::10"]))
    assert vips(result) == {"2001:db8:1::10"}
    assert [n.field for n in result.notices] == ["spec.clusterIPs[0]"]


@pytest.mark.parametrize(
    "service",
    [
        pytest.param(svc(cluster_ips=["192.0.2.11"]), id="cluster-ip"),
        pytest.param(svc(external_ips=["192.0.2.11"]), id="external-ip"),
        pytest.param(svc(type="LoadBalancer", load_balancer_ips=["192.0.2.11"]), id="ingress-ip"),
        pytest.param(
            svc(cluster_ips=["203.0.113.10", "2001:db8:1::10"], external_ips=["2001:db8::11"]), id="external-ip-v6"
        ),
    ],
)
def test_node_address_is_refused_as_a_vip(service: ServiceView) -> None:
    """The node's own address may not be claimed as a ClusterIP, externalIP or ingress IP."""
    result = run(service)
    assert "192.0.2.11" not in vips(result)
    assert "2001:db8::11" not in vips(result)
    assert any("address of node worker1" in n.message for n in result.notices)


def test_node_address_carries_node_ports() -> None:
    """NodePorts live on the node's addresses: they are not refused."""
    dual_stack = ["203.0.113.10", "2001:db8:1::10"]
    result = run(svc(type="NodePort", cluster_ips=dual_stack, ports=[port(node_port=30080)]))
    assert {"192.0.2.11", "2001:db8::11"} <= vips(result)
    assert not result.notices


def test_special_node_address_gets_no_node_port() -> None:
    """A node address of a special kind (a loopback InternalIP) carries no NodePort."""
    node = NodeContext("worker1", ("127.0.0.1", "192.0.2.11"))
    service = svc(type="NodePort", ports=[port(node_port=30080)])
    result = translate([service], [], node=node, policy=Policy())
    assert vips(result) == {PROGRAMMED, "192.0.2.11"}


def test_load_balancer_ip_outside_allow_list_is_ignored() -> None:
    """With --load-balancer-ip-cidr, an ingress IP outside it is not programmed and is noticed."""
    policy = Policy(load_balancer_ip_cidrs=netaddr.IPSet(["198.51.100.0/28"]))
    result = run(svc(type="LoadBalancer", load_balancer_ips=["198.51.100.5", "198.51.100.50"]), policy=policy)
    assert vips(result) == {PROGRAMMED, "198.51.100.5"}
    (notice,) = result.notices
    assert (notice.field, notice.kind) == ("status.loadBalancer.ingress[1].ip", NoticeKind.LOAD_BALANCER_IP_IGNORED)


def test_empty_load_balancer_allow_list_ignores_every_ingress_ip() -> None:
    """The agent's default (an empty allow-list) programs no ingress IP: status writers cannot claim addresses."""
    policy = Policy(load_balancer_ip_cidrs=netaddr.IPSet())
    result = run(svc(type="LoadBalancer", load_balancer_ips=["198.51.100.5"]), policy=policy)
    assert vips(result) == {PROGRAMMED}


def test_refused_vip_does_not_decide_persistence_families() -> None:
    """A refused IPv6 externalIP does not make a single-stack Service dual-stack for its netmask annotation."""
    service = svc(external_ips=["::1"], affinity="ClientIP", annotations={"ipvsctl.io/persistence-netmask": "24"})
    result = run(service)
    assert not result.rejections
    assert vips(result) == {PROGRAMMED}


@pytest.mark.parametrize("address", ["127.0.0.1", "169.254.0.7", "0.0.0.0", "224.0.0.9"])
def test_special_endpoint_address_is_not_a_real_server(address: str) -> None:
    """An endpoint at a special address is left out, noticed once; the other endpoints are used."""
    slices = [eps(ep(address), ep("198.51.100.10"))]
    result = translate([svc(ports=[port(80), port(81, name="b")])], slices, node=NODE, policy=Policy())
    (service,) = [vs for vs in result.table if vs.key.port == 80]
    assert [real.address for real in service.reals] == ["198.51.100.10"]
    assert [n.message.split()[1] for n in result.notices] == [address]


@pytest.mark.parametrize(
    ("health", "rejected"),
    [
        pytest.param(30100, False, id="inside"),
        pytest.param(79, True, id="below"),
        pytest.param(40000, True, id="above"),
    ],
)
def test_health_check_node_port_must_be_inside_the_node_port_range(health: int, rejected: bool) -> None:
    """A healthCheckNodePort outside --node-port-range rejects the Service (the agent would listen there)."""
    result = run(replace(svc(type="LoadBalancer", etp="Local"), health_check_node_port=health))
    assert bool(result.rejections) is rejected
    if rejected:
        assert result.rejections[0].field == "spec.healthCheckNodePort"


@settings(max_examples=2000)
@given(st.ip_addresses())
def test_text_shortcuts_agree_with_parsing(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    """The answer read from the text alone (the fast path) is the answer of parsing the address."""
    assert special_address(str(ip)) == _special_parsed(str(ip))


@pytest.mark.parametrize("address", ["", "not-an-ip", "example.com"])
def test_text_that_is_no_address_is_invalid(address: str) -> None:
    """Text that is no address at all is never plain unicast."""
    assert special_address(address) == "invalid"


def lb_roles(**changes: Any) -> list[VipRole]:
    """The roles of a LoadBalancer Service's ingress VIPs."""
    service = replace(svc(type="LoadBalancer", load_balancer_ips=["203.0.113.60", "2001:db8::60"]), **changes)
    result = translate([service], [], node=NODE, policy=Policy())
    return [role for key, role in result.results[service.ref].roles.items() if role.kind is VipKind.LOAD_BALANCER]


def test_source_ranges_restrict_the_load_balancer_vips_in_canonical_form() -> None:
    """spec.loadBalancerSourceRanges become each ingress VIP's allowed sources, written as networks."""
    roles = lb_roles(load_balancer_source_ranges=("192.0.2.7/24", "2001:db8:c::/48"))
    assert {role.source_ranges for role in roles} == {("192.0.2.0/24", "2001:db8:c::/48")}


def test_source_ranges_annotation_is_read_when_the_field_is_empty() -> None:
    """The older annotation, as kube-proxy reads it, when spec.loadBalancerSourceRanges is empty."""
    roles = lb_roles(
        annotations={"service.beta.kubernetes.io/load-balancer-source-ranges": "192.0.2.0/28, 198.51.100.7/32"}
    )
    assert {role.source_ranges for role in roles} == {("192.0.2.0/28", "198.51.100.7/32")}


def test_an_invalid_source_range_fails_closed_with_a_notice() -> None:
    """A range that is no CIDR: a notice naming it, and the ingress VIPs accept no source."""
    service = replace(
        svc(type="LoadBalancer", load_balancer_ips=["203.0.113.60"]),
        load_balancer_source_ranges=("192.0.2.0/24", "10.0.0.0/33"),
    )
    result = translate([service], [], node=NODE, policy=Policy())
    (notice,) = result.notices
    assert (notice.field, notice.kind) == ("spec.loadBalancerSourceRanges[1]", NoticeKind.SOURCE_RANGE_INVALID)
    assert [
        role.source_ranges for role in result.results[service.ref].roles.values() if role.kind is VipKind.LOAD_BALANCER
    ] == [()]


def test_without_source_ranges_every_source_is_allowed() -> None:
    """No ranges: the role does not restrict sources (None), and ClusterIPs never do."""
    assert {role.source_ranges for role in lb_roles()} == {None}
