"""The agent keeps its nftables table in step with the Services, and repairs it within one resync."""

from __future__ import annotations

from ipvsctl.backend.nft.memory import MemoryNetfilter
from ipvsctl.netfilter.elements import vip_element
from tests.agent.conftest import StartAgent
from tests.agent.fakes import NODE_IP, FakeClock, endpoint_slice, list_everything, service, settle

WEB = service("web", cluster_ip="10.0.0.10")
PORTAL = service(
    "portal", cluster_ip="10.0.0.20", type="NodePort", ports=[{"port": 443, "protocol": "TCP", "nodePort": 30443}]
)
WEB_SLICE = endpoint_slice("web-1", service="web", endpoints=[("10.1.0.1", "worker2")])


async def test_a_cluster_ip_is_filtered_and_its_pods_can_hairpin(start_agent: StartAgent) -> None:
    """The first sync writes the table: the ClusterIP under the VIP filter, its port open, its pod's hairpin."""
    table = MemoryNetfilter()
    agent = start_agent(netfilter=table)
    list_everything(agent, services=[WEB], slices=[WEB_SLICE])
    await settle()
    assert {
        vip_element("10.0.0.10"),
        ("services4", ("10.0.0.10", "tcp", 80)),
        ("hairpin4", ("10.1.0.1", "tcp", 8080, "10.1.0.1")),
    } <= table.elements
    assert agent.metrics.registry.get_sample_value("ipvsctl_netfilter_table_rewrites_total") == 1


async def test_a_node_port_of_a_cluster_service_is_masqueraded(start_agent: StartAgent) -> None:
    """externalTrafficPolicy Cluster: the NodePort on the node's IP is in the masquerade set, not under the filter."""
    table = MemoryNetfilter()
    agent = start_agent(netfilter=table)
    list_everything(agent, services=[PORTAL])
    await settle()
    assert ("masquerade4", (NODE_IP, "tcp", 30443)) in table.elements
    assert vip_element(NODE_IP) not in table.elements


async def test_a_deleted_service_takes_its_elements_along(start_agent: StartAgent, clock: FakeClock) -> None:
    """The Service goes: its VIP's elements leave the table with it."""
    table = MemoryNetfilter()
    agent = start_agent(netfilter=table)
    list_everything(agent, services=[WEB, PORTAL], slices=[WEB_SLICE])
    await settle()
    agent.handlers["Service"].delete(WEB)
    await clock.advance(1.0)
    await settle()
    assert not any("10.0.0.10" in value for _, value in table.elements)
    assert ("masquerade4", (NODE_IP, "tcp", 30443)) in table.elements


async def test_a_flushed_table_is_written_again_at_the_next_resync(start_agent: StartAgent, clock: FakeClock) -> None:
    """nft flush ruleset behind the agent's back: within one resync the table is whole again."""
    table = MemoryNetfilter()
    agent = start_agent(netfilter=table, resync_interval=30.0)
    list_everything(agent, services=[WEB], slices=[WEB_SLICE])
    await settle()
    written = table.elements
    table.drop_table()
    await clock.advance(30.0)
    await settle()
    assert table.elements == written
    assert agent.metrics.registry.get_sample_value("ipvsctl_netfilter_table_rewrites_total") == 2
