"""The agent's ClusterRole (ipvsctl.agent.rbac) is enough for it, and grants nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.api_client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException
from structlog.testing import capture_logs

from ipvsctl.agent.rbac import cluster_role
from ipvsctl.backend.memory import MemoryBackend
from tests.agent.live import create_service, ensure_node, eventually, put_slice, reals_of, running_agent, vip
from tests.apiserver.harness import ControlPlane

pytestmark = pytest.mark.apiserver

ROLE = "ipvsctl-agent-under-test"


@pytest.fixture
async def agent_role(admin_api: ApiClient, user_api: ApiClient, apiserver: ControlPlane) -> AsyncIterator[str]:
    """Bind the non-admin user to a ClusterRole made of exactly the agent's rules; unbind after the test."""
    rbac: Any = client.RbacAuthorizationV1Api(admin_api)  # raw JSON bodies
    await rbac.create_cluster_role(cluster_role(ROLE))
    await rbac.create_cluster_role_binding(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": ROLE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ROLE},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": apiserver.user.name}],
        }
    )
    for _ in range(100):  # the authorizer's informer sees the binding within moments
        try:
            await client.CoreV1Api(user_api).list_service_for_all_namespaces(limit=1)
            break
        except ApiException as error:
            if error.status != 403:
                raise
            await asyncio.sleep(0.1)
    yield ROLE
    await rbac.delete_cluster_role_binding(ROLE)
    await rbac.delete_cluster_role(ROLE)


async def test_agent_rules_suffice(
    admin_api: ApiClient, user_kubeconfig: Path, namespace: str, agent_role: str
) -> None:
    """As the bound user the agent lists, watches, programs, and writes (creates and patches) Events; no 403."""
    await ensure_node(admin_api)
    backend = MemoryBackend()
    core = client.CoreV1Api(admin_api)
    with capture_logs() as logs:
        async with running_agent(user_kubeconfig, backend=backend) as agent:
            await eventually(lambda: agent.status.ready, what="ready")
            ip = await create_service(admin_api, namespace, "web")
            await put_slice(admin_api, namespace, "web-1", service="web", addresses=["10.1.0.1"])
            await eventually(lambda: reals_of(backend, vip(ip)) == {"10.1.0.1"}, what="programmed")
            for scheduler in ("fastest", "rr", "fastest"):  # rejected, fixed, rejected again: create, then patch
                await core.patch_namespaced_service(
                    "web", namespace, {"metadata": {"annotations": {"ipvsctl.io/scheduler": scheduler}}}
                )
                await asyncio.sleep(1.5)
            await eventually(lambda: not agent.recorder.pending, what="events written")
    events = [e for e in (await core.list_namespaced_event(namespace)).items if e.reason == "IpvsctlRejected"]
    assert [(e.involved_object.name, e.count) for e in events] == [("web", 2)]
    assert [entry for entry in logs if entry.get("status") == 403 or entry["event"] == "event_write_failed"] == []


@pytest.mark.parametrize(
    ("method", "args"),
    [
        pytest.param("list_pod_for_all_namespaces", {"limit": 1}, id="list-pods"),
        pytest.param("list_secret_for_all_namespaces", {"limit": 1}, id="list-secrets"),
        pytest.param("list_event_for_all_namespaces", {"limit": 1}, id="list-events"),
        pytest.param("delete_namespaced_service", {"name": "kubernetes", "namespace": "default"}, id="delete-service"),
        pytest.param("patch_node", {"name": "worker1", "body": {"metadata": {"labels": {"x": "y"}}}}, id="patch-node"),
    ],
)
async def test_agent_rules_grant_nothing_else(
    user_api: ApiClient, agent_role: str, method: str, args: dict[str, Any]
) -> None:
    """Anything beyond the agent's needs is forbidden to the bound user."""
    with pytest.raises(ApiException) as raised:
        await getattr(client.CoreV1Api(user_api), method)(**args)
    assert raised.value.status == 403
