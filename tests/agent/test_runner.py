"""The sync loop: listed gate, coalescing, incremental plans, periodic resync, fail static and readiness."""

from __future__ import annotations

import gc

import pytest

from ipvsctl.agent.node import NodeAgent
from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.errors import BackendError
from ipvsctl.model import (
    AddRealServer,
    AddVirtualService,
    DeleteVirtualService,
    Operation,
    Protocol,
    RealServer,
    ServiceKey,
    Table,
    VirtualService,
)
from tests.agent.conftest import StartAgent
from tests.agent.fakes import FakeClock, RecordingSink, config, endpoint_slice, list_everything, node, service, settle

WEB = service("web", cluster_ip="10.0.0.10")
API = service("api", cluster_ip="10.0.0.20")
WEB_KEY = ServiceKey(Protocol.TCP, "10.0.0.10", 80)
API_KEY = ServiceKey(Protocol.TCP, "10.0.0.20", 80)


def web_slice(*addresses: str) -> dict[str, object]:
    return endpoint_slice("web-1", service="web", endpoints=[(address, "worker2") for address in addresses])


async def test_nothing_is_programmed_before_every_list_is_complete(
    start_agent: StartAgent, backend: MemoryBackend
) -> None:
    """Services and slices listed but not the Node: the kernel is not touched."""
    agent = start_agent()
    agent.handlers["Service"].replace([WEB])
    agent.handlers["EndpointSlice"].replace([web_slice("10.1.0.1")])
    await settle()
    assert (backend.operations_applied, agent.runner.sync_count) == ([], 0)


async def test_first_sync_runs_once_every_list_is_complete(start_agent: StartAgent, backend: MemoryBackend) -> None:
    """The last list opens the gate: one full sync programs the whole table."""
    agent = start_agent()
    list_everything(agent, services=[WEB], slices=[web_slice("10.1.0.1")])
    await settle()
    assert backend.table.get(WEB_KEY) == VirtualService(WEB_KEY, reals=(RealServer("10.1.0.1", 8080),))
    assert (agent.runner.sync_count, agent.runner.outcomes[-1].full) == (1, True)


async def test_burst_of_changes_is_coalesced_into_one_sync_per_interval(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend
) -> None:
    """100 endpoint changes within one interval: one sync at once, then one more after the interval."""
    agent = start_agent(min_sync_interval=1.0)
    list_everything(agent, services=[WEB], slices=[web_slice("10.1.0.1")])
    await clock.advance(5.0)
    for index in range(100):
        agent.handlers["EndpointSlice"].upsert(web_slice(f"10.1.1.{index + 1}"))
        await clock.advance(0.005)
    await clock.advance(1.0)
    assert agent.runner.sync_count == 3  # the initial one, the first change at once, the rest together
    assert backend.table.get(WEB_KEY) == VirtualService(WEB_KEY, reals=(RealServer("10.1.1.100", 8080),))


async def test_isolated_change_is_synced_without_waiting(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend
) -> None:
    """After a quiet spell a change goes to the kernel at once (no interval to sit out)."""
    agent = start_agent(min_sync_interval=1.0)
    list_everything(agent, services=[WEB])
    await clock.advance(5.0)
    agent.handlers["Service"].upsert(API)
    await settle()
    assert API_KEY in backend.table


async def test_change_right_after_a_periodic_resync_is_synced_without_waiting(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend
) -> None:
    """A periodic resync holds no change back: a change 0.1 s after one goes to the kernel at once."""
    agent = start_agent(min_sync_interval=1.0, resync_interval=30.0)
    list_everything(agent, services=[WEB])
    await clock.advance(30.0)
    full_syncs = sum(outcome.full for outcome in agent.runner.outcomes)
    await clock.advance(0.1)
    agent.handlers["Service"].upsert(API)
    await settle()
    assert (full_syncs, API_KEY in backend.table) == (2, True)


async def test_change_to_one_service_plans_only_its_keys(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend
) -> None:
    """An endpoint change of web plans web's one key and applies only web's operations."""
    agent = start_agent()
    list_everything(agent, services=[WEB, API], slices=[web_slice("10.1.0.1")])
    await settle()
    backend.operations_applied.clear()
    agent.handlers["EndpointSlice"].upsert(web_slice("10.1.0.1", "10.1.0.2"))
    await clock.advance(1.0)
    outcome = agent.runner.outcomes[-1]
    assert (outcome.full, outcome.keys) == (False, 1)
    assert backend.operations_applied == [AddRealServer(WEB_KEY, RealServer("10.1.0.2", 8080))]


async def test_incremental_sync_leaves_drift_on_other_services_to_the_resync(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend
) -> None:
    """Drift on api is not touched by web's incremental sync; the periodic full resync repairs it."""
    agent = start_agent(resync_interval=30.0)
    list_everything(agent, services=[WEB, API])
    await settle()
    backend.table = Table.of([vs for vs in backend.table if vs.key != API_KEY])
    agent.handlers["EndpointSlice"].upsert(web_slice("10.1.0.1"))
    await clock.advance(1.0)
    assert API_KEY not in backend.table
    await clock.advance(30.0)
    assert API_KEY in backend.table


async def test_deleted_service_loses_its_virtual_service(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend
) -> None:
    """A deleted Service's VIP is deleted and unbound."""
    agent = start_agent()
    list_everything(agent, services=[WEB, API])
    await settle()
    agent.handlers["Service"].delete(API)
    await clock.advance(1.0)
    state = await backend.read()
    assert (API_KEY in state.table, "10.0.0.20" in state.bound_addresses) == (False, False)


class FailingBackend(MemoryBackend):
    """A memory backend that can be made unusable (as a closed netlink socket would be)."""

    broken = False

    async def apply(self, operations: object) -> object:  # type: ignore[override]
        if self.broken:
            raise BackendError("netlink socket gone", target="ipvs")
        return await super().apply(operations)  # type: ignore[arg-type]


async def test_backend_failure_keeps_table_reports_not_ready_and_retries(
    start_agent: StartAgent, clock: FakeClock
) -> None:
    """A failing backend: not ready, the change stays pending, and a retry programs it once it recovers."""
    backend = FailingBackend()
    agent = start_agent(table=backend)
    list_everything(agent, services=[WEB])
    await settle()
    assert agent.status.ready
    backend.broken = True
    agent.handlers["Service"].upsert(API)
    await clock.advance(1.0)
    assert (agent.status.ready, API_KEY in backend.table, WEB_KEY in backend.table) == (False, False, True)
    backend.broken = False
    await clock.advance(5.0)
    assert (agent.status.ready, API_KEY in backend.table) == (True, True)


async def test_api_unreachable_keeps_table_and_reports_not_ready(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend
) -> None:
    """Watches down: not ready, and resyncs leave the table exactly as it was (fail static)."""
    agent = start_agent()
    list_everything(agent, services=[WEB, API])
    await settle()
    before = backend.table
    backend.operations_applied.clear()
    agent.status.connected["services"] = False
    await clock.advance(120.0)
    assert (agent.status.ready, backend.table, backend.operations_applied) == (False, before, [])
    agent.status.connected["services"] = True
    assert agent.status.ready


async def test_ready_only_after_the_first_sync(start_agent: StartAgent) -> None:
    """Listed but not yet synced is not ready; after the first sync it is."""
    agent = start_agent()
    assert not agent.status.readiness().ok
    list_everything(agent, services=[WEB])
    await settle()
    assert agent.status.readiness().ok


async def test_restarted_agent_adopts_the_table_without_a_flush(clock: FakeClock, start_agent: StartAgent) -> None:
    """A second agent over the same kernel only adds what changed: no service is deleted and re-added."""
    first = start_agent()
    list_everything(first, services=[WEB, API], slices=[web_slice("10.1.0.1")])
    await settle()
    backend = first.backend
    assert isinstance(backend, MemoryBackend)
    backend.operations_applied.clear()
    second = start_agent()
    list_everything(second, services=[WEB, API], slices=[web_slice("10.1.0.1", "10.1.0.2")])
    await settle()
    kinds: list[Operation] = backend.operations_applied
    assert not [op for op in kinds if isinstance(op, DeleteVirtualService | AddVirtualService)]
    assert kinds == [AddRealServer(WEB_KEY, RealServer("10.1.0.2", 8080))]


async def test_drained_real_server_is_deleted_at_max_drain_time(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend
) -> None:
    """A removed TCP endpoint with connections drains at weight 0 and is deleted once the drain expires."""
    agent = start_agent(max_drain_seconds=100.0, resync_interval=1000.0)
    list_everything(agent, services=[WEB], slices=[web_slice("10.1.0.1", "10.1.0.2")])
    await settle()
    gone = RealServer("10.1.0.2", 8080)
    backend.set_connections(service=WEB_KEY, real=gone.key, active=3)
    agent.handlers["EndpointSlice"].upsert(web_slice("10.1.0.1"))
    await clock.advance(1.0)
    assert weights(backend) == {"10.1.0.1": 1, "10.1.0.2": 0}
    await clock.advance(1.0)  # the follow-up sync sees weight 0 and starts the drain clock
    assert len(agent.drains) == 1
    await clock.advance(99.0)
    assert weights(backend) == {"10.1.0.1": 1, "10.1.0.2": 0}
    await clock.advance(1.0)
    assert (weights(backend), len(agent.drains)) == ({"10.1.0.1": 1}, 0)


async def test_drained_real_server_without_connections_goes_at_the_next_resync(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend
) -> None:
    """A draining real server whose connections ended is deleted by the next full resync."""
    agent = start_agent(resync_interval=30.0)
    list_everything(agent, services=[WEB], slices=[web_slice("10.1.0.1", "10.1.0.2")])
    await settle()
    backend.set_connections(service=WEB_KEY, real=RealServer("10.1.0.2", 8080).key, active=3)
    agent.handlers["EndpointSlice"].upsert(web_slice("10.1.0.1"))
    await clock.advance(2.0)
    backend.set_connections(service=WEB_KEY, real=RealServer("10.1.0.2", 8080).key, active=0)
    await clock.advance(30.0)
    assert weights(backend) == {"10.1.0.1": 1}


def weights(backend: MemoryBackend) -> dict[str, int]:
    web = backend.table.get(WEB_KEY)
    return {} if web is None else {real.address: real.weight for real in web.reals}


async def test_node_address_change_moves_node_ports(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend
) -> None:
    """The Node's InternalIP changes: the NodePort VIP on the old address goes, one on the new address comes."""
    agent = start_agent()
    node_port = service("np", cluster_ip="10.0.0.60", type="NodePort", ports=[{"port": 80, "nodePort": 30080}])
    list_everything(agent, services=[node_port], nodes=[node(addresses=["192.0.2.1"])])
    await settle()
    agent.handlers["Node"].upsert(node(addresses=["192.0.2.2"]))
    await clock.advance(1.0)
    ports = {vs.key.address for vs in backend.table if vs.key.port == 30080}
    assert ports == {"192.0.2.2"}


async def test_broken_backend_is_retried_with_backoff(start_agent: StartAgent, clock: FakeClock) -> None:
    """A backend that keeps failing is retried ever less often (1, 2, 4, 8, 16 s...), not every interval."""
    backend = FailingBackend()
    agent = start_agent(table=backend)
    list_everything(agent, services=[WEB])
    await settle()
    backend.broken = True
    agent.handlers["Service"].upsert(API)
    before = agent.runner.sync_count
    await clock.advance(60.0)
    assert 4 <= agent.runner.sync_count - before <= 7


@pytest.mark.parametrize("freeze", [True, False], ids=["freeze", "no-freeze"])
async def test_a_full_sync_freezes_the_heap_only_when_asked(clock: FakeClock, freeze: bool) -> None:
    """With freeze_heap a successful full sync leaves the heap frozen (gc.freeze); without, it does not."""
    agent = NodeAgent(
        config=config(), backend=MemoryBackend(), event_sink=RecordingSink(), clock=clock, freeze_heap=freeze
    )
    gc.unfreeze()
    try:
        outcome = await agent.runner.run_once(full=True)
        assert (outcome.ok, gc.get_freeze_count() > 0) == (True, freeze)
    finally:
        gc.unfreeze()
        await agent.health_checks.close()
