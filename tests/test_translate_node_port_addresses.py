"""--nodeport-addresses: which node addresses carry NodePorts (CIDRs, and kube-proxy's ``primary``)."""

from __future__ import annotations

import pytest

from ipvsctl.translate import NodeContext, NodePortAddresses, Policy, translate
from tests.builders import ep, eps, port, svc

# InternalIPs first (as NodeView orders them), then an ExternalIP of each family.
NODE = NodeContext("worker1", ("192.0.2.11", "2001:db8::11", "198.51.100.11", "2001:db8:5::11"))
DUAL = ["203.0.113.10", "2001:db8:1::10"]


def node_port_vips(addresses: NodePortAddresses | None) -> set[str]:
    service = svc(type="NodePort", cluster_ips=DUAL, ports=[port(node_port=30080)])
    slices = [eps(ep("198.51.100.20")), eps(ep("2001:db8:2::20"), address_type="IPv6")]
    table = translate([service], slices, node=NODE, policy=Policy(node_port_addresses=addresses)).table
    return {vs.key.address for vs in table if vs.key.port == 30080}


@pytest.mark.parametrize(
    ("addresses", "expected"),
    [
        pytest.param(None, set(NODE.addresses), id="default-every-node-address"),
        pytest.param(NodePortAddresses(cidrs=("192.0.2.0/24",)), {"192.0.2.11"}, id="one-ipv4-cidr"),
        pytest.param(
            NodePortAddresses(cidrs=("198.51.100.0/24", "2001:db8:5::/48")),
            {"198.51.100.11", "2001:db8:5::11"},
            id="cidrs-of-both-families",
        ),
        pytest.param(NodePortAddresses(primary=True), {"192.0.2.11", "2001:db8::11"}, id="primary"),
        pytest.param(
            NodePortAddresses(cidrs=("198.51.100.0/24",), primary=True),
            {"192.0.2.11", "2001:db8::11", "198.51.100.11"},
            id="primary-and-a-cidr",
        ),
        pytest.param(NodePortAddresses(cidrs=("203.0.113.0/24",)), set(), id="cidr-with-no-node-address"),
    ],
)
def test_node_ports_only_on_admitted_addresses(addresses: NodePortAddresses | None, expected: set[str]) -> None:
    """NodePort VIPs are made on the node addresses the flag admits, and only those."""
    assert node_port_vips(addresses) == expected


def test_cluster_ip_is_not_affected() -> None:
    """The flag narrows NodePorts only: the ClusterIPs stay."""
    service = svc(type="NodePort", cluster_ips=DUAL, ports=[port(node_port=30080)])
    policy = Policy(node_port_addresses=NodePortAddresses(cidrs=("203.0.113.0/24",)))
    table = translate([service], [], node=NODE, policy=policy).table
    assert {vs.key.address for vs in table} == set(DUAL)


def test_primary_addresses_are_the_first_of_each_family() -> None:
    """The primary addresses are the node's first (InternalIP-first) address of each family."""
    assert NODE.primary_addresses() == ("192.0.2.11", "2001:db8::11")
