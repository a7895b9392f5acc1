"""What the agent asks of the apiserver: lists from the watch cache, server-side label selectors, calm relists."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.api_client import ApiClient

from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.kube.client import slice_resource
from ipvsctl.kube.views import ObjectRef
from ipvsctl.model import DeleteRealServer, DeleteVirtualService
from tests.agent.live import (
    create_service,
    discovery,
    ensure_node,
    eventually,
    put_slice,
    reals_of,
    running_agent,
    slice_body,
    vip,
)
from tests.apiserver.harness import ControlPlane, etcd_lists

pytestmark = pytest.mark.apiserver

AGENTS = 3
REPAIR_LOOPS = 2  # the apiserver's ClusterIP and NodePort repair loops list Services from etcd every 3 minutes
KINDS = ("Service", "EndpointSlice")


def etcd_list_counts(apiserver: ControlPlane) -> dict[str, int]:
    """Lists of Services and EndpointSlices the apiserver has sent to etcd since it started."""
    text = apiserver.metrics()
    return {kind: etcd_lists(text, kind=kind) for kind in KINDS}


async def labelled_service(
    api: ApiClient, namespace: str, name: str, *, labels: dict[str, str], slice_labels: dict[str, str], **spec: Any
) -> None:
    """Create a Service (TCP 80 → 8080) with labels, and its EndpointSlice with those and ``slice_labels``.

    As the EndpointSlice controller does: it copies the Service's labels and marks a headless Service's slices.
    """
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {"ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}], **spec},
    }
    core: Any = client.CoreV1Api(api)  # raw JSON bodies
    await core.create_namespaced_service(namespace, body)
    group_version = await discovery(api)
    slice_ = slice_body(f"{name}-1", service=name, addresses=["10.2.0.1"], group_version=group_version)
    slice_["metadata"]["labels"].update(labels, **slice_labels)
    custom: Any = client.CustomObjectsApi(api)
    await custom.create_namespaced_custom_object(*group_version, namespace, "endpointslices", slice_)


async def test_slice_version_comes_from_discovery_without_a_list(apiserver: ControlPlane, admin_api: ApiClient) -> None:
    """The agent picks the EndpointSlice version the server serves by discovery: no list reaches etcd for it."""
    before = etcd_list_counts(apiserver)
    resource = await slice_resource(admin_api)
    assert (resource.api_version, etcd_list_counts(apiserver)) == (apiserver.slice_api_version, before)


async def test_initial_lists_are_answered_by_the_watch_cache(
    apiserver: ControlPlane, admin_api: ApiClient, admin_kubeconfig: Path, namespace: str
) -> None:
    """Agents starting at once list with resourceVersion=0: no Service or EndpointSlice list reaches etcd.

    The apiserver's own ClusterIP and NodePort repair loops list Services from etcd every 3 minutes, so a
    Service count may grow by those two; every agent's consistent list would add one each.
    """
    await ensure_node(admin_api)
    ip = await create_service(admin_api, namespace, "web")
    await put_slice(admin_api, namespace, "web-1", service="web", addresses=["10.1.0.1"])
    before = etcd_list_counts(apiserver)
    backends = [MemoryBackend() for _ in range(AGENTS)]
    async with (
        running_agent(admin_kubeconfig, backend=backends[0]) as first,
        running_agent(admin_kubeconfig, backend=backends[1]) as second,
        running_agent(admin_kubeconfig, backend=backends[2]) as third,
    ):
        agents = (first, second, third)
        await eventually(lambda: all(reals_of(b, vip(ip)) == {"10.1.0.1"} for b in backends), what="programmed")
        asked = {tuple(watcher.lists) for agent in agents for watcher in agent.watch_loops}
    after = etcd_list_counts(apiserver)
    assert asked == {("0",)}
    assert after["EndpointSlice"] == before["EndpointSlice"]
    assert after["Service"] - before["Service"] <= REPAIR_LOOPS < AGENTS


async def test_skipped_services_and_slices_never_reach_the_cache(
    admin_api: ApiClient, admin_kubeconfig: Path, namespace: str
) -> None:
    """Another proxy's Service and slice and a headless Service's slice are dropped by the server, listed or watched."""
    await ensure_node(admin_api)
    other = {"service.kubernetes.io/service-proxy-name": "other-proxy"}
    headless = {"service.kubernetes.io/headless": ""}
    await labelled_service(admin_api, namespace, "listed-other", labels=other, slice_labels={})
    await labelled_service(admin_api, namespace, "listed-headless", labels={}, slice_labels=headless, clusterIP="None")
    backend = MemoryBackend()
    async with running_agent(admin_kubeconfig, backend=backend) as agent:
        await eventually(lambda: agent.status.ready, what="ready")
        await labelled_service(admin_api, namespace, "watched-other", labels=other, slice_labels={})
        await labelled_service(
            admin_api, namespace, "watched-headless", labels={}, slice_labels=headless, clusterIP="None"
        )
        ip = await create_service(admin_api, namespace, "last")  # watch events arrive in order: this one last
        await put_slice(admin_api, namespace, "last-1", service="last", addresses=["10.1.0.7"])
        await eventually(lambda: reals_of(backend, vip(ip)) == {"10.1.0.7"}, what="the last Service programmed")
        services = {ref.name for ref in agent.cache.services if ref.namespace == namespace}
        slices = {ref.name for ref in agent.cache.slices if ref.namespace == namespace}
    assert (services, slices) == ({"listed-headless", "watched-headless", "last"}, {"last-1"})


async def test_relist_after_410_is_from_the_cache_and_flushes_nothing(
    apiserver: ControlPlane, admin_api: ApiClient, admin_kubeconfig: Path, namespace: str
) -> None:
    """After 410 Gone each watcher relists NotOlderThan its last version, and no live entry is deleted."""
    await ensure_node(admin_api)
    ip = await create_service(admin_api, namespace, "web")
    await put_slice(admin_api, namespace, "web-1", service="web", addresses=["10.1.0.1", "10.1.0.2"])
    backend = MemoryBackend()
    async with running_agent(admin_kubeconfig, backend=backend) as agent:
        await eventually(lambda: reals_of(backend, vip(ip)) == {"10.1.0.1", "10.1.0.2"}, what="programmed")
        mark = len(backend.operations_applied)
        seen = {watcher.name: watcher.last_resource_version for watcher in agent.watch_loops}
        await asyncio.to_thread(apiserver.expire_resource_versions)
        await eventually(
            lambda: all(len(watcher.lists) > 1 for watcher in agent.watch_loops), within=60.0, what="relisted"
        )
        await put_slice(admin_api, namespace, "web-1", service="web", addresses=["10.1.0.1", "10.1.0.2", "10.1.0.3"])
        await eventually(lambda: reals_of(backend, vip(ip)) == {"10.1.0.1", "10.1.0.2", "10.1.0.3"}, what="follows")
        asked = {watcher.name: list(watcher.lists) for watcher in agent.watch_loops}
        removed = [
            op for op in backend.operations_applied[mark:] if isinstance(op, DeleteVirtualService | DeleteRealServer)
        ]
    # A bookmark may have moved a watcher past what was seen before the 410: the relist asks for that or later.
    relists = {name: (lists[0], int(lists[1]) >= int(seen[name])) for name, lists in asked.items()}
    assert relists == dict.fromkeys(seen, ("0", True))
    assert removed == []
    assert ObjectRef(namespace, "web") in agent.cache.services
