"""The node agent on the real kernel: a full sync, then one endpoint change synced by its own keys only.

The agent's watch loop is proven against a real kube-apiserver elsewhere (tests/apiserver); here its
handlers are fed the API objects directly, so that the netlink backend under it is the kernel's.
"""

from __future__ import annotations

from collections.abc import Collection

import pytest

from ipvsctl.agent.node import NodeAgent
from ipvsctl.backend.base import KernelState
from ipvsctl.backend.kernel import NetlinkBackend
from ipvsctl.backend.nft.base import NetfilterTable
from ipvsctl.ipvsadm import parse_save
from ipvsctl.model import Protocol, RealServer, ServiceKey
from tests.agent.fakes import NODE, FakeClock, RecordingSink, config, endpoint_slice, node, service
from tests.kernel.netlab import Lab

pytestmark = pytest.mark.kernel

SERVICES = 40


class RecordingBackend(NetlinkBackend):
    """The netlink backend, remembering which keys each read asked for (None: the whole table)."""

    reads: list[frozenset[ServiceKey] | None]

    async def read(self, *, only: Collection[ServiceKey] | None = None) -> KernelState:
        self.reads.append(None if only is None else frozenset(only))
        return await super().read(only=only)


def cluster_ip(index: int) -> str:
    return f"203.0.113.{index + 1}"


def web_slice(index: int, *pods: str) -> dict[str, object]:
    return endpoint_slice(f"web{index}-a", service=f"web{index}", endpoints=[(pod, NODE) for pod in pods])


def agent_with_nft(backend: NetlinkBackend, nft: NetfilterTable) -> NodeAgent:
    """An agent with its nftables half, three Services and their slices listed (not yet synced)."""
    agent = NodeAgent(config=config(), backend=backend, netfilter=nft, event_sink=RecordingSink(), clock=FakeClock())
    agent.handlers["Service"].replace([service(f"web{i}", cluster_ip=cluster_ip(i)) for i in range(3)])
    agent.handlers["EndpointSlice"].replace([web_slice(i, f"198.51.100.{i + 1}") for i in range(3)])
    agent.handlers["Node"].replace([node()])
    return agent


async def test_agent_syncs_one_endpoint_change_by_its_keys_on_the_kernel(lab: Lab) -> None:
    """After a full sync of 40 Services, one changed EndpointSlice reads and changes only its VIP's service."""
    netns = lab.netns("agent")
    async with RecordingBackend(netns=netns.name) as backend:
        backend.reads = []
        agent = NodeAgent(config=config(), backend=backend, event_sink=RecordingSink(), clock=FakeClock())
        agent.handlers["Service"].replace([service(f"web{i}", cluster_ip=cluster_ip(i)) for i in range(SERVICES)])
        agent.handlers["EndpointSlice"].replace([web_slice(i, f"198.51.100.{i + 1}") for i in range(SERVICES)])
        agent.handlers["Node"].replace([node()])
        try:
            assert (await agent.runner.run_once(full=True)).ok
            agent.handlers["EndpointSlice"].upsert(web_slice(7, "198.51.100.8", "198.51.100.200"))
            changed = await agent.runner.run_once(full=False)
        finally:
            await agent.health_checks.close()

        table = parse_save(netns.ipvsadm("-Sn"))
        vip = ServiceKey(Protocol.TCP, cluster_ip(7), 80)
        assert (changed.ok, changed.operations, backend.reads[-1]) == (True, 1, frozenset({vip}))
        assert len(table.services) == SERVICES
        assert {real.address for real in table.services[vip].reals} == {"198.51.100.8", "198.51.100.200"}
        assert RealServer("198.51.100.200", 8080) in table.services[vip].reals
        assert cluster_ip(7) in netns.run("ip", "-o", "addr", "show", "dev", "ipvs0").stdout


async def test_agent_keeps_its_nftables_table_and_repairs_a_flush(lab: Lab) -> None:
    """The agent on the kernel's nftables: its table holds the VIPs; `nft flush ruleset` is repaired by a resync,
    an element deleted by hand by the next one, and an endpoint change is one element change."""
    from ipvsctl.backend.nft.kernel import KernelNetfilter  # noqa: PLC0415 (kernel tests only)

    netns = lab.netns("agent-nft")
    nft = KernelNetfilter(netns=netns.name, masquerade_bit=14)
    async with NetlinkBackend(netns=netns.name) as backend:
        agent = agent_with_nft(backend, nft)
        try:
            assert (await agent.runner.run_once(full=True)).ok
            written = (await nft.read()).elements
            netns.run("nft", "flush", "ruleset")
            assert (await agent.runner.run_once(full=True)).ok
            after_flush = (await nft.read()).elements
            netns.run("nft", "delete", "element", "inet", "ipvsctl", "vips4", "{ 203.0.113.1 }")
            assert (await agent.runner.run_once(full=True)).ok
            after_delete = (await nft.read()).elements
            agent.handlers["EndpointSlice"].upsert(web_slice(1, "198.51.100.2", "198.51.100.200"))
            assert (await agent.runner.run_once(full=False)).ok
            after_change = (await nft.read()).elements
        finally:
            await agent.health_checks.close()
            await nft.close()
    assert ("vips4", ("203.0.113.1",)) in written
    assert after_flush == written == after_delete
    assert after_change - written == {("hairpin4", ("198.51.100.200", "tcp", 8080, "198.51.100.200"))}


async def test_agent_resyncs_its_nftables_table_without_rewriting_it(lab: Lab) -> None:
    """Endpoint changes between periodic resyncs leave the table as defined: the resync diffs, it never rewrites."""
    from ipvsctl.backend.nft.kernel import KernelNetfilter  # noqa: PLC0415 (kernel tests only)

    netns = lab.netns("agent-nft-resync")
    nft = KernelNetfilter(netns=netns.name, masquerade_bit=14)
    async with NetlinkBackend(netns=netns.name) as backend:
        agent = agent_with_nft(backend, nft)
        try:
            assert (await agent.runner.run_once(full=True)).ok
            for extra in range(200, 203):
                agent.handlers["EndpointSlice"].upsert(web_slice(1, "198.51.100.2", f"198.51.100.{extra}"))
                assert (await agent.runner.run_once(full=False)).ok
                assert (await agent.runner.run_once(full=True)).ok
        finally:
            await agent.health_checks.close()
            await nft.close()
    assert agent.metrics.registry.get_sample_value("ipvsctl_netfilter_table_rewrites_total") == 1


async def test_agent_resync_in_slices_repairs_the_kernel_as_a_whole_one(lab: Lab) -> None:
    """A resync in slices of 7 VIPs over 40 Services: a deleted VIP, a stray port on an owned VIP, a stray
    address on the interface and a deleted nftables element are all repaired, one read per slice."""
    from ipvsctl.backend.nft.kernel import KernelNetfilter  # noqa: PLC0415 (kernel tests only)

    netns = lab.netns("agent-slices")
    nft = KernelNetfilter(netns=netns.name, masquerade_bit=14)
    async with RecordingBackend(netns=netns.name) as backend:
        backend.reads = []
        agent = NodeAgent(
            config=config(), backend=backend, netfilter=nft, event_sink=RecordingSink(), clock=FakeClock()
        )
        agent.handlers["Service"].replace([service(f"web{i}", cluster_ip=cluster_ip(i)) for i in range(SERVICES)])
        agent.handlers["EndpointSlice"].replace([web_slice(i, f"198.51.100.{i + 1}") for i in range(SERVICES)])
        agent.handlers["Node"].replace([node()])
        agent.runner.resync_slice = 7
        try:
            assert (await agent.runner.run_once(full=True)).ok
            programmed = parse_save(netns.ipvsadm("-Sn"))
            addresses = netns.run("ip", "-o", "addr", "show", "dev", "ipvs0").stdout.count(" inet ")
            elements = (await nft.read()).elements
            netns.ipvsadm("-D", "-t", f"{cluster_ip(3)}:80")
            netns.ipvsadm("-A", "-t", f"{cluster_ip(9)}:9999", "-s", "rr")
            netns.run("ip", "addr", "add", "203.0.113.250/32", "dev", "ipvs0")
            netns.run("nft", "delete", "element", "inet", "ipvsctl", "vips4", f"{{ {cluster_ip(20)} }}")
            backend.reads.clear()
            resynced = await agent.runner.run_resync()
            after = parse_save(netns.ipvsadm("-Sn"))
            addresses_after = netns.run("ip", "-o", "addr", "show", "dev", "ipvs0").stdout
            elements_after = (await nft.read()).elements
        finally:
            await agent.health_checks.close()
            await nft.close()
    assert (resynced.ok, resynced.full, len(backend.reads), None in backend.reads) == (True, True, 6, False)
    assert after == programmed
    assert (addresses_after.count(" inet "), "203.0.113.250" in addresses_after) == (addresses, False)
    assert elements_after == elements
