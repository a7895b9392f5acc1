"""One sync with the netfilter half: its elements around the IPVS changes, and repairs of a tampered table."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from ipvsctl.backend.base import ApplyReport
from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.backend.nft.memory import MemoryNetfilter
from ipvsctl.model import Operation, Protocol, RealServer, ServiceKey, Table, VirtualService
from ipvsctl.netfilter.elements import Element, vip_element
from ipvsctl.netfilter.plan import NetfilterPlan
from ipvsctl.plan import Ownership
from ipvsctl.reconcile import Netfilter, sync
from ipvsctl.translate import VipKind, VipRole

VIP = ServiceKey(Protocol.TCP, "203.0.113.10", 80)
OTHER = ServiceKey(Protocol.TCP, "203.0.113.11", 80)
POD = RealServer("198.51.100.10", 8080)
FILTERED: Element = ("services4", ("203.0.113.10", "tcp", 80))


class Recorder:
    """IPVS and nftables calls, in the order they happen."""

    def __init__(self) -> None:
        self.calls: list[str] = []


class RecordingBackend(MemoryBackend):
    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    async def bind_addresses(self, addresses: Collection[str], *, within: Collection[str] | None = None) -> None:
        self.recorder.calls.append("bind")
        await super().bind_addresses(addresses, within=within)

    async def apply(self, operations: Sequence[Operation]) -> ApplyReport:
        self.recorder.calls.append("ipvs")
        return await super().apply(operations)


class RecordingNetfilter(MemoryNetfilter):
    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    async def replace(self, elements: Collection[Element]) -> None:
        self.recorder.calls.append("nft-replace")
        await super().replace(elements)

    async def change(self, *, add: Collection[Element], delete: Collection[Element]) -> None:
        self.recorder.calls.append("nft-add" if add else "nft-delete")
        await super().change(add=add, delete=delete)


def setup(
    services: dict[ServiceKey, VirtualService],
) -> tuple[Recorder, RecordingBackend, RecordingNetfilter, Netfilter]:
    recorder = Recorder()
    table = RecordingNetfilter(recorder)
    plan = NetfilterPlan(services=services, role_of=lambda _: VipRole(VipKind.CLUSTER_IP), node_addresses=frozenset)
    return recorder, RecordingBackend(recorder), table, Netfilter(table, plan)


async def run(
    backend: MemoryBackend, services: dict[ServiceKey, VirtualService], netfilter: Netfilter, **kw: object
) -> None:
    addresses = {key.address for key in services}
    await sync(backend, Table(services), ownership=Ownership(), bind=addresses, netfilter=netfilter, **kw)  # type: ignore[arg-type]


async def test_a_first_full_sync_writes_the_whole_table_before_ipvs() -> None:
    """From nothing: the nftables table is written whole, then the VIP bound and its service added."""
    services = {VIP: VirtualService(VIP, reals=(POD,))}
    recorder, backend, table, netfilter = setup(services)
    await run(backend, services, netfilter)
    assert recorder.calls == ["nft-replace", "bind", "ipvs"]
    assert {FILTERED, vip_element(VIP.address)} <= table.elements


async def test_a_new_vip_is_filtered_before_it_is_bound() -> None:
    """An incremental sync adds the new VIP's elements before binding it and adding its service."""
    services = {VIP: VirtualService(VIP, reals=(POD,))}
    recorder, backend, table, netfilter = setup(services)
    await run(backend, services, netfilter)
    recorder.calls.clear()
    services[OTHER] = VirtualService(OTHER)
    await run(backend, services, netfilter, only={OTHER})
    assert recorder.calls == ["nft-add", "bind", "ipvs"]
    assert vip_element(OTHER.address) in table.elements


async def test_a_removed_vip_loses_its_elements_after_ipvs() -> None:
    """A VIP that goes: its service is deleted and its address unbound before its filter elements go."""
    services = {VIP: VirtualService(VIP), OTHER: VirtualService(OTHER)}
    recorder, backend, table, netfilter = setup(services)
    await run(backend, services, netfilter)
    recorder.calls.clear()
    del services[OTHER]
    await run(backend, services, netfilter, only={OTHER})
    assert recorder.calls == ["ipvs", "bind", "nft-delete"]
    assert vip_element(OTHER.address) not in table.elements


async def test_an_element_deleted_by_hand_comes_back_at_the_next_full_sync() -> None:
    """Drift: someone deleted an element; a full sync finds it missing and adds it."""
    services = {VIP: VirtualService(VIP)}
    _, backend, table, netfilter = setup(services)
    await run(backend, services, netfilter)
    table.tamper(delete=[FILTERED])
    await run(backend, services, netfilter)
    assert FILTERED in table.elements


async def test_an_element_added_by_hand_is_deleted_at_the_next_full_sync() -> None:
    """Drift: a foreign element in ipvsctl's set goes at the next full sync."""
    services = {VIP: VirtualService(VIP)}
    _, backend, table, netfilter = setup(services)
    await run(backend, services, netfilter)
    intruder: Element = ("services4", ("203.0.113.99", "tcp", 22))
    table.tamper(add=[intruder])
    await run(backend, services, netfilter)
    assert intruder not in table.elements


async def test_a_flushed_ruleset_is_rewritten_by_an_incremental_sync() -> None:
    """The table is gone when an incremental change comes: the change is refused, the table rewritten whole."""
    services = {VIP: VirtualService(VIP)}
    recorder, backend, table, netfilter = setup(services)
    await run(backend, services, netfilter)
    table.drop_table()
    services[OTHER] = VirtualService(OTHER)
    recorder.calls.clear()
    await run(backend, services, netfilter, only={OTHER})
    assert recorder.calls[:2] == ["nft-add", "nft-replace"]
    assert {FILTERED, vip_element(OTHER.address)} <= table.elements


async def test_a_refused_vip_gets_no_elements() -> None:
    """keepalived holds the address: the Service's VIP is refused and nothing of it goes into nftables."""
    keepalived = VirtualService(ServiceKey(Protocol.TCP, VIP.address, 443))
    services = {VIP: VirtualService(VIP)}
    _, backend, table, netfilter = setup(services)
    backend.table = Table.of([keepalived])
    await run(backend, services, netfilter)
    assert table.elements == frozenset()
