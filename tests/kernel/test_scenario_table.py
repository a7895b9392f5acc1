"""Scenarios on the table alone: `ipvsctl` against ipvsadm, foreign services, hand edits and flushes.

Each test has fresh namespaces (an empty IPVS table each) holding the node IPs on a dummy interface; no traffic.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kernel.netlab import Lab, Netns
from tests.kernel.scenario_support import (
    INTERFACE,
    NODE_IP,
    NODE_IP6,
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

SERVERS = ("198.51.100.11", "198.51.100.12", "198.51.100.13")
SERVERS6 = ("2001:db8:5::11", "2001:db8:5::12", "2001:db8:5::13")
WEB_VIP, DNS_VIP, PORTAL_VIP = "203.0.113.31", "203.0.113.32", "203.0.113.33"

# A TCP Service, a UDP Service and a NodePort Service on one node.
OBJECTS = [
    node(NODE_NAME, NODE_IP),
    service("web", cluster_ips=[WEB_VIP]),
    endpoint_slice("web", endpoints=dict.fromkeys(SERVERS, NODE_NAME), target_port=8080),
    service("dns", cluster_ips=[DNS_VIP], port=53, protocol="UDP", port_name="dns"),
    endpoint_slice(
        "dns", endpoints=dict.fromkeys(SERVERS[:2], NODE_NAME), target_port=53, protocol="UDP", port_name="dns"
    ),
    service("portal", cluster_ips=[PORTAL_VIP], node_port=30443, port=443, port_name="https"),
    endpoint_slice("portal", endpoints=dict.fromkeys(SERVERS, NODE_NAME), target_port=8443, port_name="https"),
]

# Dual-stack Services: TCP with ClientIP affinity and per-family netmasks, and UDP; plus a NodePort one.
DUAL_STACK_OBJECTS = [
    node(NODE_NAME, NODE_IP, NODE_IP6),
    service(
        "dual-web",
        cluster_ips=["203.0.113.41", "2001:db8:f::41"],
        affinity_timeout=1800,
        annotations={"ipvsctl.io/persistence-netmask": "ipv4=24,ipv6=64"},
    ),
    endpoint_slice("dual-web", endpoints=dict.fromkeys(SERVERS, NODE_NAME), target_port=8080),
    endpoint_slice("dual-web", endpoints=dict.fromkeys(SERVERS6, NODE_NAME), target_port=8080, address_type="IPv6"),
    service("dual-dns", cluster_ips=["203.0.113.42", "2001:db8:f::42"], port=53, protocol="UDP", port_name="dns"),
    endpoint_slice(
        "dual-dns", endpoints=dict.fromkeys(SERVERS, NODE_NAME), target_port=53, protocol="UDP", port_name="dns"
    ),
    endpoint_slice(
        "dual-dns",
        endpoints=dict.fromkeys(SERVERS6, NODE_NAME),
        target_port=53,
        protocol="UDP",
        port_name="dns",
        address_type="IPv6",
    ),
    service("dual-portal", cluster_ips=["203.0.113.43", "2001:db8:f::43"], node_port=30443),
    endpoint_slice("dual-portal", endpoints=dict.fromkeys(SERVERS, NODE_NAME), target_port=80),
    endpoint_slice("dual-portal", endpoints=dict.fromkeys(SERVERS6, NODE_NAME), target_port=80, address_type="IPv6"),
]


def _agent(netns: Netns, tmp_path: Path, objects: list[Manifest]) -> Agent:
    """An agent on a bare namespace that holds the node IPs."""
    give_node_addresses(netns)
    return Agent.create(netns, tmp_path / f"{netns.name}.json", objects)


def test_diff_as_ipvsadm_restore_builds_the_same_table_as_apply(lab: Lab, netns: Netns, tmp_path: Path) -> None:
    """`ipvsctl diff -o ipvsadm | ipvsadm -R` on an empty table yields the same `ipvsadm -Sn` as `ipvsctl apply`."""
    restored = _agent(netns, tmp_path, DUAL_STACK_OBJECTS)
    applied = _agent(lab.netns("applied"), tmp_path, DUAL_STACK_OBJECTS)

    pending = restored.diff("-o", "ipvsadm")
    netns.ipvsadm("-R", input=pending.stdout)
    applied.apply()

    assert pending.returncode == 1, pending.stderr
    assert saved_rules(netns) == saved_rules(applied.netns)
    assert {
        "-A -t [2001:db8:f::41]:80 -s rr -p 1800 -M 64",
        "-A -t 203.0.113.41:80 -s rr -p 1800 -M 255.255.255.0",
        "-A -u [2001:db8:f::42]:53 -s rr",
        "-A -t [2001:db8:c::1]:30443 -s rr",
        f"-A -t {NODE_IP}:30443 -s rr",
    } <= set(saved_rules(netns))


def test_foreign_service_survives_apply_and_cleanup(netns: Netns, tmp_path: Path) -> None:
    """A foreign ipvsadm service outlives `apply`; `cleanup` removes all that is ours, and the interface."""
    agent = _agent(netns, tmp_path, OBJECTS)
    netns.ipvsadm("-A", "-t", "192.0.2.250:443", "-s", "wlc")
    foreign = saved_rules(netns)

    agent.apply()
    applied = saved_rules(netns)
    agent.cleanup("--node-ip", NODE_IP)
    interface = netns.run("ip", "link", "show", INTERFACE, check=False)

    assert set(foreign) < set(applied)
    assert {f"-A -t {NODE_IP}:30443 -s rr", f"-A -t {WEB_VIP}:80 -s rr", f"-A -u {DNS_VIP}:53 -s rr"} <= set(applied)
    assert saved_rules(netns) == foreign
    assert interface.returncode != 0, interface.stdout


def test_foreign_service_on_a_node_ip_outside_the_node_port_range_survives_apply(netns: Netns, tmp_path: Path) -> None:
    """A hand-made service on a node IP's port 22 survives apply even when a NodePort is desired on that IP."""
    agent = _agent(netns, tmp_path, OBJECTS)
    netns.ipvsadm("-A", "-t", f"{NODE_IP}:22", "-s", "rr")

    agent.apply()

    assert f"-A -t {NODE_IP}:22 -s rr" in saved_rules(netns)


def test_apply_after_a_flush_restores_the_table(netns: Netns, tmp_path: Path) -> None:
    """After `ipvsadm -C` the next `ipvsctl apply` puts back exactly the table it had made."""
    agent = _agent(netns, tmp_path, OBJECTS)
    agent.apply()
    before = saved_rules(netns)
    netns.ipvsadm("-C")

    agent.apply()

    assert saved_rules(netns) == before


def test_apply_reverts_hand_edits(netns: Netns, tmp_path: Path) -> None:
    """A scheduler changed with -E, a weight with -e and a real server deleted with -d are put back by apply."""
    agent = _agent(netns, tmp_path, OBJECTS)
    agent.apply()
    before = saved_rules(netns)
    web = f"{WEB_VIP}:80"
    netns.ipvsadm("-E", "-t", web, "-s", "wlc")
    netns.ipvsadm("-e", "-t", web, "-r", f"{SERVERS[0]}:8080", "-m", "-w", "5")
    netns.ipvsadm("-d", "-t", web, "-r", f"{SERVERS[1]}:8080")
    edited = saved_rules(netns)

    summary = agent.apply()["summary"]

    assert edited != before
    assert summary == {"add-real-server": 1, "edit-real-server": 1, "edit-service": 1}
    assert saved_rules(netns) == before


def test_diff_exits_0_in_sync_after_apply_and_1_after_a_flush(netns: Netns, tmp_path: Path) -> None:
    """`ipvsctl diff` against the live kernel exits 0 right after apply and 1 once `ipvsadm -C` emptied the table."""
    agent = _agent(netns, tmp_path, OBJECTS)
    agent.apply()

    in_sync = agent.diff()
    netns.ipvsadm("-C")
    flushed = agent.diff()

    assert in_sync.returncode == 0, in_sync.stdout + in_sync.stderr
    assert flushed.returncode == 1, flushed.stdout + flushed.stderr


def test_cleanup_finds_node_ips_from_the_node_object(netns: Netns, tmp_path: Path) -> None:
    """`cleanup -f MANIFESTS --node NAME` takes node IPs from the Node object and removes our NodePorts too."""
    agent = _agent(netns, tmp_path, OBJECTS)
    netns.ipvsadm("-A", "-t", "192.0.2.250:443", "-s", "wlc")
    foreign = saved_rules(netns)
    agent.apply()

    agent.cleanup("-f", str(agent.manifests), "--node", agent.node_name)

    assert saved_rules(netns) == foreign
