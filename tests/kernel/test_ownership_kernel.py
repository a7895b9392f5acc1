"""Ownership and the address policy against the real kernel: what a Service claims, ipvsctl takes only if it may.

A hand-made or keepalived service is never edited or deleted because a Service wants its address on
another port or the node's own address; special addresses are never programmed or bound.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.kernel.netlab import Netns
from tests.kernel.scenario_support import (
    INTERFACE,
    NODE_IP,
    NODE_NAME,
    Agent,
    Manifest,
    endpoint_slice,
    give_node_addresses,
    node,
    saved_rules,
    service,
)

pytestmark = pytest.mark.kernel

SERVERS = ("198.51.100.11", "198.51.100.12")
KEEPALIVED_VIP = "192.0.2.50"
WEB_VIP = "203.0.113.31"
ALLOW_ALL = ("--external-ip-cidr", "0.0.0.0/0", "--external-ip-cidr", "::/0",
             "--load-balancer-ip-cidr", "0.0.0.0/0", "--load-balancer-ip-cidr", "::/0")  # fmt: skip


def exposed(name: str, *, external_ips: list[str], ingress: list[str] | None = None) -> Manifest:
    """A LoadBalancer Service on WEB_VIP with externalIPs and ingress IPs (port 80)."""
    manifest: dict[str, Any] = service(name, cluster_ips=[WEB_VIP])
    manifest["spec"]["externalIPs"] = external_ips
    if ingress is not None:
        manifest["spec"]["type"] = "LoadBalancer"
        manifest["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress]}}
    return manifest


def agent_with(netns: Netns, tmp_path: Path, *objects: Manifest) -> Agent:
    give_node_addresses(netns)
    slices = endpoint_slice("web", endpoints=dict.fromkeys(SERVERS, NODE_NAME), target_port=8080)
    return Agent.create(netns, tmp_path / "objects.json", [node(NODE_NAME, NODE_IP), slices, *objects])


def apply(agent: Agent) -> tuple[int, dict[str, Any], str]:
    """`ipvsctl apply` with every externalIP and ingress IP allowed: exit code, JSON document, stderr."""
    done = agent.run(
        "apply", "-f", str(agent.manifests), "--node", NODE_NAME, "--interface", INTERFACE, *ALLOW_ALL, "-o", "json",
        check=False,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout), done.stderr


def bound(netns: Netns) -> set[str]:
    """The global addresses on the agent's interface (the kernel gives an up dummy an IPv6 link-local one)."""
    shown = netns.run("ip", "-o", "addr", "show", "dev", INTERFACE, "scope", "global", check=False)
    return {line.split()[3].split("/")[0] for line in shown.stdout.splitlines()}


def test_keepalived_service_survives_a_service_claiming_its_address(netns: Netns, tmp_path: Path) -> None:
    """A Service wanting keepalived's address on another port: refused (exit 2), keepalived's entry untouched."""
    agent = agent_with(netns, tmp_path, exposed("web", external_ips=[KEEPALIVED_VIP]))
    netns.ipvsadm("-A", "-t", f"{KEEPALIVED_VIP}:443", "-s", "wlc")
    netns.ipvsadm("-a", "-t", f"{KEEPALIVED_VIP}:443", "-r", "198.51.100.99:443", "-m", "-w", "7")
    keepalived = [rule for rule in saved_rules(netns) if KEEPALIVED_VIP in rule]

    first, document, _ = apply(agent)
    second, _, _ = apply(agent)

    assert (first, second) == (2, 2)
    assert any(f"tcp/{KEEPALIVED_VIP}:443" in error["message"] for error in document["errors"])
    assert [rule for rule in saved_rules(netns) if KEEPALIVED_VIP in rule] == keepalived
    assert bound(netns) == {WEB_VIP}


def test_refused_address_is_taken_once_keepalived_lets_it_go(netns: Netns, tmp_path: Path) -> None:
    """keepalived's service deleted: the next apply claims the address, binds it and programs the VIP."""
    agent = agent_with(netns, tmp_path, exposed("web", external_ips=[KEEPALIVED_VIP]))
    netns.ipvsadm("-A", "-t", f"{KEEPALIVED_VIP}:443", "-s", "wlc")
    apply(agent)
    netns.ipvsadm("-D", "-t", f"{KEEPALIVED_VIP}:443")

    code, _, _ = apply(agent)

    assert code == 0
    assert f"-A -t {KEEPALIVED_VIP}:80 -s rr" in saved_rules(netns)
    assert bound(netns) == {WEB_VIP, KEEPALIVED_VIP}


def test_node_ip_as_external_and_ingress_ip_leaves_a_hand_made_service_alone(netns: Netns, tmp_path: Path) -> None:
    """The node's own IP as externalIP and ingress IP: refused; the hand-made node-ip:22 keeps its weight."""
    agent = agent_with(netns, tmp_path, exposed("web", external_ips=[NODE_IP], ingress=[NODE_IP]))
    netns.ipvsadm("-A", "-t", f"{NODE_IP}:22", "-s", "rr")
    netns.ipvsadm("-a", "-t", f"{NODE_IP}:22", "-r", "198.51.100.99:22", "-m", "-w", "1")
    ssh = [rule for rule in saved_rules(netns) if f"{NODE_IP}:22" in rule]

    code, document, _ = apply(agent)

    assert code == 0, document
    assert [rule for rule in saved_rules(netns) if NODE_IP in rule] == ssh
    assert bound(netns) == {WEB_VIP}


SPECIAL = ["127.0.0.1", "0.0.0.0", "::", "::1", "224.0.0.5", "255.255.255.255", "169.254.1.1", "::ffff:192.0.2.9"]


def test_special_addresses_are_never_programmed_or_bound(netns: Netns, tmp_path: Path) -> None:
    """Loopback, unspecified, multicast, broadcast, link-local and mapped VIPs: no service, no address."""
    agent = agent_with(netns, tmp_path, exposed("web", external_ips=SPECIAL[:4], ingress=SPECIAL[4:]))
    loopback = netns.run("ip", "-o", "addr", "show", "dev", "lo").stdout

    code, document, stderr = apply(agent)

    assert code == 0, stderr
    assert [rule for rule in saved_rules(netns) if rule.startswith("-A")] == [f"-A -t {WEB_VIP}:80 -s rr"]
    assert bound(netns) == {WEB_VIP}
    assert netns.run("ip", "-o", "addr", "show", "dev", "lo").stdout == loopback
    assert document["summary"] == {"add-service": 1, "add-real-server": 2}
