"""The agent under stress against a real kube-apiserver: floods, restarts, expired watches, a killed agent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path

import pytest
from kubernetes_asyncio import config
from kubernetes_asyncio.client.api_client import ApiClient

from ipvsctl.agent.events import ApiEventSink
from ipvsctl.agent.node import NodeAgent
from ipvsctl.backend.base import ApplyReport
from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.kube.client import connect
from ipvsctl.model import DeleteRealServer, DeleteVirtualService, Operation
from tests.agent import fakes
from tests.agent.live import create_service, ensure_node, eventually, put_slice, reals_of, running_agent, vip
from tests.apiserver.harness import ControlPlane

pytestmark = pytest.mark.apiserver

FLOOD_UPDATES = 1000
FLOOD_WRITERS = 4


def deletions(operations: Sequence[Operation]) -> list[Operation]:
    """Operations that would flush something: deleted virtual services or real servers."""
    return [op for op in operations if isinstance(op, DeleteVirtualService | DeleteRealServer)]


async def test_flood_of_endpoint_updates_gives_a_bounded_number_of_syncs(
    admin_api: ApiClient, admin_kubeconfig: Path, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """1000 EndpointSlice updates as fast as the API takes them: about one sync per --min-sync-interval."""
    await ensure_node(admin_api)
    backend = MemoryBackend()
    async with running_agent(admin_kubeconfig, backend=backend, min_sync_interval=1.0) as agent:
        await eventually(lambda: agent.status.ready, what="ready")
        ip = await create_service(admin_api, namespace, "flood")
        await eventually(lambda: vip(ip) in backend.table, what="service programmed")
        before = agent.runner.sync_count
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def writer(index: int) -> None:
            for n in range(FLOOD_UPDATES // FLOOD_WRITERS):
                await put_slice(
                    admin_api, namespace, f"flood-{index}", service="flood", addresses=[f"10.3.{index}.{n + 1}"]
                )

        await asyncio.gather(*(writer(index) for index in range(FLOOD_WRITERS)))
        written = loop.time() - start
        last = FLOOD_UPDATES // FLOOD_WRITERS
        final = {f"10.3.{index}.{last}" for index in range(FLOOD_WRITERS)}
        await eventually(lambda: reals_of(backend, vip(ip)) == final, what="final endpoints")
        syncs = agent.runner.sync_count - before
    bound = int(written / 1.0) + 3
    with capsys.disabled():
        print(f"\nflood: {FLOOD_UPDATES} updates written in {written:.1f} s → {syncs} syncs (bound {bound})")
    assert syncs <= bound


async def _ready_with_web(admin_api: ApiClient, namespace: str, agent: NodeAgent, backend: MemoryBackend) -> str:
    await eventually(lambda: agent.status.ready, what="ready")
    ip = await create_service(admin_api, namespace, "web")
    await put_slice(admin_api, namespace, "web-1", service="web", addresses=["10.1.0.1", "10.1.0.2"])
    await eventually(lambda: reals_of(backend, vip(ip)) == {"10.1.0.1", "10.1.0.2"}, what="programmed")
    return ip


async def _follows_changes(
    kubeconfig: Path, namespace: str, agent: NodeAgent, backend: MemoryBackend, *, web: str
) -> None:
    """After an outage: a new endpoint and a new Service reach the table, and the agent is ready again."""
    async with await config.new_client_from_config(config_file=str(kubeconfig)) as api:  # old connections are dead
        await put_slice(api, namespace, "web-1", service="web", addresses=["10.1.0.1", "10.1.0.2", "10.1.0.3"])
        other = await create_service(api, namespace, "after")
    await eventually(lambda: reals_of(backend, vip(web)) == {"10.1.0.1", "10.1.0.2", "10.1.0.3"}, what="change")
    await eventually(lambda: vip(other) in backend.table and agent.status.ready, what="ready again")


async def test_apiserver_restart_converges_without_a_flush(
    apiserver: ControlPlane, admin_api: ApiClient, admin_kubeconfig: Path, namespace: str
) -> None:
    """During a restart the agent is not ready and keeps the table; afterwards it follows changes again."""
    await ensure_node(admin_api)
    backend = MemoryBackend()
    async with running_agent(admin_kubeconfig, backend=backend) as agent:
        ip = await _ready_with_web(admin_api, namespace, agent, backend)
        mark = len(backend.operations_applied)
        restart = asyncio.ensure_future(asyncio.to_thread(apiserver.restart_apiserver))
        not_ready = False
        while not restart.done():
            not_ready = not_ready or not agent.status.ready
            assert reals_of(backend, vip(ip)) == {"10.1.0.1", "10.1.0.2"}  # fail static
            await asyncio.sleep(0.02)
        await restart
        await _follows_changes(admin_kubeconfig, namespace, agent, backend, web=ip)
    assert not_ready
    assert deletions(backend.operations_applied[mark:]) == []


async def test_expired_resource_versions_relist_without_a_flush(
    apiserver: ControlPlane, admin_api: ApiClient, admin_kubeconfig: Path, namespace: str
) -> None:
    """Every resourceVersion expired (410 Gone): the agent relists and converges, deleting nothing live."""
    await ensure_node(admin_api)
    backend = MemoryBackend()
    async with running_agent(admin_kubeconfig, backend=backend) as agent:
        ip = await _ready_with_web(admin_api, namespace, agent, backend)
        mark = len(backend.operations_applied)
        await asyncio.to_thread(apiserver.expire_resource_versions)
        await _follows_changes(admin_kubeconfig, namespace, agent, backend, web=ip)
        expired = sum(
            agent.metrics.registry.get_sample_value(
                "ipvsctl_watch_restarts_total", {"resource": name, "reason": "expired"}
            )
            or 0.0
            for name in ("services", "endpointslices", "node")
        )
    assert expired >= 1
    assert deletions(backend.operations_applied[mark:]) == []


class StallingBackend(MemoryBackend):
    """A memory backend that, once told, applies a few operations of the next batch and then hangs."""

    def __init__(self) -> None:
        super().__init__()
        self.stall_after: int | None = None
        self.stalled = asyncio.Event()

    async def apply(self, operations: Sequence[Operation]) -> ApplyReport:
        if self.stall_after is None:
            return await super().apply(operations)
        await super().apply(operations[: self.stall_after])
        self.stalled.set()
        await asyncio.Event().wait()  # until the agent is killed
        raise AssertionError("unreachable")


async def test_agent_killed_mid_apply_and_restarted_converges_without_a_flush(
    admin_api: ApiClient, admin_kubeconfig: Path, namespace: str
) -> None:
    """An agent killed halfway through its first sync; the next one finishes the job and deletes nothing."""
    await ensure_node(admin_api)
    ips = []
    for name in ("one", "two", "three"):
        ips.append(await create_service(admin_api, namespace, name))
        await put_slice(admin_api, namespace, f"{name}-1", service=name, addresses=["10.1.0.1", "10.1.0.2"])
    backend = StallingBackend()
    backend.stall_after = 4
    async with connect(str(admin_kubeconfig)) as api:
        first = NodeAgent(config=fakes.config(), backend=backend, event_sink=ApiEventSink(api))
        task = asyncio.create_task(first.run(api, stop=asyncio.Event()), name="doomed-agent")
        await asyncio.wait_for(backend.stalled.wait(), timeout=30)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert 0 < len(backend.operations_applied) <= 4
    mark = len(backend.operations_applied)
    backend.stall_after = None
    async with running_agent(admin_kubeconfig, backend=backend) as second:
        await eventually(lambda: second.status.ready, what="ready")
        for ip in ips:
            await eventually(lambda ip=ip: reals_of(backend, vip(ip)) == {"10.1.0.1", "10.1.0.2"}, what=ip)  # type: ignore[misc]
    assert deletions(backend.operations_applied[mark:]) == []
