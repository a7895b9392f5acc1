"""A bare `ipvsctl cleanup` on a node removes NodePorts too: the node's addresses come from its interfaces."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipvsctl.backend.kernel import NetlinkBackend
from tests.kernel.netlab import Netns
from tests.kernel.scenario_support import (
    NODE_IP,
    NODE_IP6,
    NODE_NAME,
    Agent,
    endpoint_slice,
    give_node_addresses,
    node,
    service,
)

pytestmark = pytest.mark.kernel

OBJECTS = [
    node(NODE_NAME, NODE_IP),
    service("web", cluster_ips=["203.0.113.31"], node_port=30080),
    endpoint_slice("web", endpoints={"198.51.100.11": NODE_NAME}, target_port=8080),
]
HAND_MADE = ("-t", "198.51.100.7:30090", "-s", "rr")  # in the NodePort range, on no address of the host


async def test_host_addresses_are_every_global_address_but_the_agents(netns: Netns) -> None:
    """The node's eth0 addresses; not lo's, not the IPv6 link-local ones, not the VIPs on the agent's dummy."""
    give_node_addresses(netns)
    async with NetlinkBackend(netns=netns.name, interface="ipvsctl0") as backend:
        await backend.bind_addresses(["203.0.113.31"])
        found = await backend.host_addresses()
    assert found == {NODE_IP, NODE_IP6}


def test_a_bare_cleanup_removes_node_ports_and_leaves_foreign_services(netns: Netns, tmp_path: Path) -> None:
    """After an apply with a NodePort, `cleanup` with no node IP deletes the ClusterIP and the NodePort
    virtual services (and nothing hand-made)."""
    give_node_addresses(netns)
    agent = Agent.create(netns, tmp_path / "objects.json", OBJECTS)
    agent.apply()
    netns.ipvsadm("-A", *HAND_MADE)
    before = netns.ipvsadm("-Sn")

    done = agent.cleanup()

    changes = done["changes"]
    assert isinstance(changes, list)
    deleted = {(change["virtualService"]["address"], change["virtualService"]["port"]) for change in changes}
    left = netns.ipvsadm("-Sn")
    assert f"{NODE_IP}:30080" in before
    assert ("203.0.113.31", 80) in deleted
    assert (NODE_IP, 30080) in deleted
    assert left.split() == ["-A", *HAND_MADE]
