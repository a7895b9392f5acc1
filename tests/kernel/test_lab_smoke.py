"""The kernel lab works: ipvsadm programs real IPVS and real traffic flows client → node → servers."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.kernel.netlab import Lab, Netns, Topology, http_get, udp_ask

pytestmark = pytest.mark.kernel


def _serve_http(lab: Lab, topology: Topology) -> None:
    for server in topology.servers:
        lab.serve_http(server.netns, identity=server.name, port=80)


def _program(topology: Topology, *, protocol: str, vip: str, port: int, options: str = "-s rr") -> None:
    """Add one masquerading service on the node with every server as a real server."""
    service = f"[{vip}]:{port}" if ":" in vip else f"{vip}:{port}"
    real = [f"[{s.ipv6}]:{port}" if ":" in vip else f"{s.ipv4}:{port}" for s in topology.servers]
    rules = [f"-A {protocol} {service} {options}"] + [f"-a {protocol} {service} -r {r} -m" for r in real]
    topology.node.ipvsadm("-R", input="\n".join(rules) + "\n")


def test_round_robin_spreads_requests_over_every_backend(lab: Lab, topology: Topology) -> None:
    """Nine HTTP requests to a round-robin masquerading VIP reach each of the three backends."""
    _serve_http(lab, topology)
    _program(topology, protocol="-t", vip=topology.vip, port=80)

    replies = http_get(topology.client.netns, topology.vip, port=80, count=9)

    assert Counter(reply.server for reply in replies) == {server.name: 3 for server in topology.servers}


def test_persistence_keeps_a_client_on_one_backend(lab: Lab, topology: Topology) -> None:
    """With -p 300 every request from the client lands on the same backend."""
    _serve_http(lab, topology)
    _program(topology, protocol="-t", vip=topology.vip, port=80, options="-s rr -p 300")

    replies = http_get(topology.client.netns, topology.vip, port=80, count=9)

    assert len({reply.server for reply in replies}) == 1


def test_masquerading_keeps_the_client_address(lab: Lab, topology: Topology) -> None:
    """Backends behind a masquerading service see the client's own address."""
    _serve_http(lab, topology)
    _program(topology, protocol="-t", vip=topology.vip, port=80)

    replies = http_get(topology.client.netns, topology.vip, port=80, count=3)

    assert {reply.client for reply in replies} == {topology.client.ipv4}


def test_udp_round_robin_spreads_datagrams_over_every_backend(lab: Lab, topology: Topology) -> None:
    """Six UDP datagrams, each from a new source port, are echoed by each of the three backends."""
    for server in topology.servers:
        lab.serve_udp_echo(server.netns, identity=server.name, port=5353)
    _program(topology, protocol="-u", vip=topology.vip, port=5353)

    replies = udp_ask(topology.client.netns, topology.vip, port=5353, count=6)

    assert Counter(reply.server for reply in replies) == {server.name: 2 for server in topology.servers}


def test_ipv6_round_robin_spreads_requests_over_every_backend(lab: Lab, topology: Topology) -> None:
    """Six HTTP requests to an IPv6 round-robin VIP reach each of the three backends."""
    _serve_http(lab, topology)
    _program(topology, protocol="-t", vip=topology.vip6, port=80)

    replies = http_get(topology.client.netns, topology.vip6, port=80, count=6)

    assert Counter(reply.server for reply in replies) == {server.name: 2 for server in topology.servers}


def test_save_lists_the_service_and_its_real_servers(netns: Netns) -> None:
    """ipvsadm -Sn shows a service added with -A and its three real servers added with -a."""
    netns.ipvsadm("-A", "-t", "203.0.113.10:80", "-s", "rr")
    for last in (11, 12, 13):
        netns.ipvsadm("-a", "-t", "203.0.113.10:80", "-r", f"198.51.100.{last}:8080", "-m")

    rules = [line.split() for line in netns.ipvsadm("-Sn").splitlines()]

    assert [rule for rule in rules if rule[0] == "-A"] == [["-A", "-t", "203.0.113.10:80", "-s", "rr"]]
    assert sorted(rule[4] for rule in rules if rule[0] == "-a") == [
        "198.51.100.11:8080",
        "198.51.100.12:8080",
        "198.51.100.13:8080",
    ]


def test_a_fresh_namespace_has_an_empty_table(netns: Netns) -> None:
    """IPVS state is per namespace: a new one starts with no services."""
    assert netns.ipvsadm("-Sn") == ""
