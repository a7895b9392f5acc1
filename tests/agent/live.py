"""Running the agent in-process against the real apiserver (tests/apiserver), with the memory backend."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.api_client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from ipvsctl.agent.events import ApiEventSink
from ipvsctl.agent.node import NodeAgent
from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.kube.client import connect
from ipvsctl.model import Protocol, ServiceKey, VirtualService
from tests.agent.fakes import NODE, NODE_IP, config
from tests.apiserver.harness import SLICE_GROUP, pick_slice_version


async def discovery(api: ApiClient) -> tuple[str, str]:
    """("discovery.k8s.io", version): the EndpointSlice version the server serves (v1, else v1beta1)."""
    group = await client.DiscoveryApi(api).get_api_group()
    return SLICE_GROUP, pick_slice_version([entry.version for entry in group.versions])


@contextlib.asynccontextmanager
async def running_agent(kubeconfig: Path, *, backend: MemoryBackend, **changes: Any) -> AsyncIterator[NodeAgent]:
    """An agent (watchers, sync loop, Events, loopback endpoints) until the block ends, then stopped."""
    async with connect(str(kubeconfig)) as api:
        agent = NodeAgent(config=config(**changes), backend=backend, event_sink=ApiEventSink(api))
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(api, stop=stop), name="test-agent")
        try:
            yield agent
        finally:
            stop.set()
            await task


async def eventually(condition: Callable[[], bool], *, within: float = 30.0, what: str = "condition") -> float:
    """Poll ``condition`` every 2 ms until it holds; the seconds it took (AssertionError on timeout)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > within:
            raise AssertionError(f"{what} not reached within {within} s")
        await asyncio.sleep(0.002)
    return time.monotonic() - start


def vip(address: str, port: int = 80) -> ServiceKey:
    """The TCP virtual service key of a VIP."""
    return ServiceKey(Protocol.TCP, address, port)


def reals_of(backend: MemoryBackend, key: ServiceKey) -> set[str] | None:
    """Real server addresses of a virtual service (None when it is absent)."""
    found: VirtualService | None = backend.table.get(key)
    return None if found is None else {real.address for real in found.reals if real.weight > 0}


async def ensure_node(api: ApiClient, *, name: str = NODE, addresses: Sequence[str] = (NODE_IP,)) -> None:
    """Create this node's Node (once per cluster) with InternalIP addresses."""
    body = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "status": {"addresses": [{"type": "InternalIP", "address": address} for address in addresses]},
    }
    core: Any = client.CoreV1Api(api)  # raw JSON bodies
    try:
        await core.create_node(body)
    except ApiException as error:
        if error.status != 409:
            raise
    await core.patch_node_status(name, {"status": body["status"]})


async def create_service(api: ApiClient, namespace: str, name: str, **spec: Any) -> str:
    """Create a Service (TCP 80 → 8080 unless ports are given); its ClusterIP."""
    metadata = {"name": name, "annotations": spec.pop("annotations", {})}
    ports = spec.pop("ports", [{"port": 80, "targetPort": 8080, "protocol": "TCP"}])
    body = {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": {"ports": ports, **spec}}
    core: Any = client.CoreV1Api(api)  # raw JSON bodies
    created = await core.create_namespaced_service(namespace, body)
    return str(created.spec.cluster_ip)


def slice_body(
    name: str,
    *,
    service: str,
    addresses: Sequence[str],
    node: str = "worker2",
    group_version: tuple[str, str] = (SLICE_GROUP, "v1"),
) -> dict[str, Any]:
    """An EndpointSlice (v1, or the version given) of ready endpoints on ``node``, port 8080."""
    return {
        "apiVersion": "/".join(group_version),
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [address], "nodeName": node, "conditions": {"ready": True}} for address in addresses
        ],
    }


async def put_slice(api: ApiClient, namespace: str, name: str, *, service: str, addresses: Sequence[str]) -> None:
    """Create the slice, or replace its endpoints when it exists."""
    custom: Any = client.CustomObjectsApi(api)  # typed without _content_type
    group_version = await discovery(api)
    body = slice_body(name, service=service, addresses=addresses, group_version=group_version)
    try:
        await custom.create_namespaced_custom_object(*group_version, namespace, "endpointslices", body)
    except ApiException as error:
        if error.status != 409:
            raise
        await custom.patch_namespaced_custom_object(
            *group_version,
            namespace,
            "endpointslices",
            name,
            {"endpoints": body["endpoints"]},
            _content_type="application/merge-patch+json",
        )


async def warning_events(api: ApiClient, namespace: str, *, reason: str) -> list[Any]:
    """Events of a reason in a namespace."""
    listed = await client.CoreV1Api(api).list_namespaced_event(namespace)
    return [event for event in listed.items if event.reason == reason]
