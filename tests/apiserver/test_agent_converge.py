"""The agent against a real kube-apiserver: the table follows Services and EndpointSlices (v1 or v1beta1)."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.api_client import ApiClient

from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.model import DeleteVirtualService, EditVirtualService, Persistence
from tests.agent.live import (
    create_service,
    discovery,
    ensure_node,
    eventually,
    put_slice,
    reals_of,
    running_agent,
    vip,
    warning_events,
)

pytestmark = pytest.mark.apiserver


async def test_create_update_delete_converge(admin_api: ApiClient, admin_kubeconfig: Path, namespace: str) -> None:
    """Service + slice created, endpoints changed, slice deleted, Service deleted: the table follows each step."""
    await ensure_node(admin_api)
    backend = MemoryBackend()
    async with running_agent(admin_kubeconfig, backend=backend) as agent:
        await eventually(lambda: agent.status.ready, what="ready")
        ip = await create_service(admin_api, namespace, "web")
        await put_slice(admin_api, namespace, "web-1", service="web", addresses=["10.1.0.1", "10.1.0.2"])
        await eventually(lambda: reals_of(backend, vip(ip)) == {"10.1.0.1", "10.1.0.2"}, what="created")
        await put_slice(admin_api, namespace, "web-1", service="web", addresses=["10.1.0.3"])
        await eventually(lambda: reals_of(backend, vip(ip)) == {"10.1.0.3"}, what="endpoints replaced")
        await client.CustomObjectsApi(admin_api).delete_namespaced_custom_object(
            *await discovery(admin_api), namespace, "endpointslices", "web-1"
        )
        await eventually(lambda: reals_of(backend, vip(ip)) == set(), what="slice deleted")
        await client.CoreV1Api(admin_api).delete_namespaced_service("web", namespace)
        await eventually(lambda: reals_of(backend, vip(ip)) is None, what="service deleted")
        assert ip not in (await backend.read()).bound_addresses


async def test_node_port_uses_the_node_addresses(admin_api: ApiClient, admin_kubeconfig: Path, namespace: str) -> None:
    """A NodePort Service is programmed on this Node's InternalIP at its nodePort."""
    await ensure_node(admin_api)
    backend = MemoryBackend()
    async with running_agent(admin_kubeconfig, backend=backend) as agent:
        await eventually(lambda: agent.status.ready, what="ready")
        await create_service(
            admin_api, namespace, "np", type="NodePort", ports=[{"port": 80, "targetPort": 8080, "nodePort": 30123}]
        )
        await put_slice(admin_api, namespace, "np-1", service="np", addresses=["10.1.0.9"])
        await eventually(lambda: reals_of(backend, vip("192.0.2.1", 30123)) == {"10.1.0.9"}, what="node port")


async def test_affinity_timeout_change_is_an_in_place_edit(
    admin_api: ApiClient, admin_kubeconfig: Path, namespace: str
) -> None:
    """sessionAffinity timeout 600 → 1200: one EditVirtualService, never a delete of the live service."""
    await ensure_node(admin_api)
    backend = MemoryBackend()
    async with running_agent(admin_kubeconfig, backend=backend) as agent:
        await eventually(lambda: agent.status.ready, what="ready")
        ip = await create_service(
            admin_api,
            namespace,
            "sticky",
            sessionAffinity="ClientIP",
            sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}},
        )
        await put_slice(admin_api, namespace, "sticky-1", service="sticky", addresses=["10.1.0.1"])
        await eventually(lambda: reals_of(backend, vip(ip)) == {"10.1.0.1"}, what="programmed")
        mark = len(backend.operations_applied)
        await client.CoreV1Api(admin_api).patch_namespaced_service(
            "sticky", namespace, {"spec": {"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 1200}}}}
        )

        def edited() -> bool:
            found = backend.table.get(vip(ip))
            return found is not None and found.persistence == Persistence(1200, 32)

        await eventually(edited, what="timeout edited")
        changes = backend.operations_applied[mark:]
        assert [type(op) for op in changes] == [EditVirtualService]
        assert not [op for op in changes if isinstance(op, DeleteVirtualService)]


async def test_rejected_service_gets_an_event_and_others_work(
    admin_api: ApiClient, admin_kubeconfig: Path, namespace: str
) -> None:
    """A bad scheduler annotation: Warning Event IpvsctlRejected once, and the good Service is programmed."""
    await ensure_node(admin_api)
    backend = MemoryBackend()
    async with running_agent(admin_kubeconfig, backend=backend, resync_interval=2.0) as agent:
        await eventually(lambda: agent.status.ready, what="ready")
        bad = await create_service(admin_api, namespace, "bad", annotations={"ipvsctl.io/scheduler": "fastest"})
        good = await create_service(admin_api, namespace, "good")
        await put_slice(admin_api, namespace, "good-1", service="good", addresses=["10.1.0.1"])
        await eventually(lambda: reals_of(backend, vip(good)) == {"10.1.0.1"}, what="good programmed")
        for _ in range(300):
            if await warning_events(admin_api, namespace, reason="IpvsctlRejected"):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(5.0)  # two resyncs more: still one Event, count 1
        (event,) = await warning_events(admin_api, namespace, reason="IpvsctlRejected")
        assert (event.involved_object.name, event.type, event.count) == ("bad", "Warning", 1)
        assert "ipvsctl.io/scheduler" in event.message
        assert vip(bad) not in backend.table


async def test_ignored_external_ip_gets_an_event(admin_api: ApiClient, admin_kubeconfig: Path, namespace: str) -> None:
    """An externalIP outside --external-ip-cidr is not programmed and gets an IpvsctlExternalIPIgnored Event."""
    await ensure_node(admin_api)
    backend = MemoryBackend()
    async with running_agent(admin_kubeconfig, backend=backend) as agent:
        await eventually(lambda: agent.status.ready, what="ready")
        ip = await create_service(admin_api, namespace, "ext", externalIPs=["198.51.100.7"])
        await eventually(lambda: vip(ip) in backend.table, what="programmed")
        for _ in range(300):
            if await warning_events(admin_api, namespace, reason="IpvsctlExternalIPIgnored"):
                break
            await asyncio.sleep(0.05)
        (event,) = await warning_events(admin_api, namespace, reason="IpvsctlExternalIPIgnored")
        assert "198.51.100.7" in event.message
        assert vip("198.51.100.7") not in backend.table


async def test_event_to_table_latency(
    admin_api: ApiClient, admin_kubeconfig: Path, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Isolated endpoint changes reach the table quickly (measured from the API call to the table)."""
    await ensure_node(admin_api)
    backend = MemoryBackend()
    async with running_agent(admin_kubeconfig, backend=backend) as agent:
        await eventually(lambda: agent.status.ready, what="ready")
        ip = await create_service(admin_api, namespace, "lat")
        await eventually(lambda: vip(ip) in backend.table, what="service programmed")
        latencies = []
        for index in range(15):
            await asyncio.sleep(1.1)  # past the minimum sync interval: each change is synced on its own
            address = f"10.2.0.{index + 1}"
            write = asyncio.get_running_loop().time()
            await put_slice(admin_api, namespace, "lat-1", service="lat", addresses=[address])
            written = asyncio.get_running_loop().time()
            seen = await eventually(lambda a=address: reals_of(backend, vip(ip)) == {a}, what="change")  # type: ignore[misc]
            latencies.append(written - write + seen)
    median, worst = statistics.median(latencies), max(latencies)
    with capsys.disabled():
        print(
            f"\nevent-to-table latency over {len(latencies)} changes: "
            f"median {median * 1000:.1f} ms, max {worst * 1000:.1f} ms"
        )
    assert worst < 1.0
