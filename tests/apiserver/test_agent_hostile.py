"""A tenant who may only create Services in one namespace cannot stop the agent or change others' tables.

The agent runs as an admin against the real kube-apiserver; the tenant is the harness's non-admin user,
bound to a Role that grants ``create`` on Services in its namespace and nothing else. Status writes (the
load balancer's ingress IPs) come from the admin, as a load-balancer controller's would.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import netaddr
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.api_client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.translate import Policy
from tests.agent.fakes import NODE_IP
from tests.agent.live import (
    create_service,
    ensure_node,
    eventually,
    put_slice,
    reals_of,
    running_agent,
    vip,
    warning_events,
)
from tests.apiserver.harness import ControlPlane

pytestmark = pytest.mark.apiserver

NETMASK = "ipvsctl.io/persistence-netmask"
AFFINE = {"sessionAffinity": "ClientIP"}
# Every externalIP and ingress IP allowed: only the address policy stands between a tenant and an address.
OPEN = Policy(
    external_ip_cidrs=netaddr.IPSet(["0.0.0.0/0", "::/0"]), load_balancer_ip_cidrs=netaddr.IPSet(["0.0.0.0/0"])
)
HOSTILE: list[tuple[str, dict[str, Any]]] = [
    ("superscript", {"annotations": {NETMASK: "\u00b2"}, **AFFINE}),
    ("arabic-digits", {"annotations": {NETMASK: "\u0661\u0666"}, **AFFINE}),
    ("huge-netmask", {"annotations": {NETMASK: "9" * 5000}, **AFFINE}),
    ("escape-scheduler", {"annotations": {"ipvsctl.io/scheduler": "\x1b[2J\nrr"}}),
    ("node-ip", {"externalIPs": [NODE_IP]}),
]


@pytest.fixture
async def tenant(admin_api: ApiClient, user_api: ApiClient, namespace: str, apiserver: ControlPlane) -> ApiClient:
    """The non-admin user, allowed to create Services in ``namespace`` and nothing else."""
    rbac: Any = client.RbacAuthorizationV1Api(admin_api)  # raw JSON bodies
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "tenant"},
            "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["create"]}]}  # fmt: skip
    await rbac.create_namespaced_role(namespace, role)
    await rbac.create_namespaced_role_binding(
        namespace,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "tenant"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tenant"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": apiserver.user.name}],
        },
    )
    return user_api


async def tenant_creates(tenant: ApiClient, namespace: str, name: str, spec: dict[str, Any]) -> None:
    """Create a Service as the tenant, retrying while the authorizer has not seen the binding yet."""
    for _ in range(100):
        try:
            await create_service(tenant, namespace, name, **dict(spec))
        except ApiException as error:
            if error.status != 403:
                raise
            await asyncio.sleep(0.1)
        else:
            return
    raise AssertionError("the tenant's RoleBinding never took effect")


async def objects_warned(api: ApiClient, namespace: str, *, reason: str, expected: set[str]) -> set[str]:
    """The names of the objects with a Warning of ``reason``, once they include ``expected`` (or after 30 s)."""
    names: set[str] = set()
    for _ in range(300):
        names = {event.involved_object.name for event in await warning_events(api, namespace, reason=reason)}
        if expected <= names:
            break
        await asyncio.sleep(0.1)
    return names


@pytest.fixture
async def web(admin_api: ApiClient, namespace: str) -> str:
    """Another team's Service with two endpoints; its ClusterIP."""
    ip = await create_service(admin_api, namespace, "web")
    await put_slice(admin_api, namespace, "web-1", service="web", addresses=["10.1.0.1", "10.1.0.2"])
    return ip


async def test_tenant_services_cannot_stop_the_agent_or_touch_others(
    admin_api: ApiClient, admin_kubeconfig: Path, tenant: ApiClient, namespace: str, web: str
) -> None:
    """Hostile Services from a tenant: each refused with a Warning; the agent keeps serving web's changes."""
    await ensure_node(admin_api)
    backend = MemoryBackend()
    async with running_agent(admin_kubeconfig, backend=backend, policy=OPEN) as agent:
        await eventually(lambda: reals_of(backend, vip(web)) == {"10.1.0.1", "10.1.0.2"}, what="web programmed")
        for name, spec in HOSTILE:
            await tenant_creates(tenant, namespace, name, spec)
        await put_slice(admin_api, namespace, "web-1", service="web", addresses=["10.1.0.1", "10.1.0.3"])
        await eventually(lambda: reals_of(backend, vip(web)) == {"10.1.0.1", "10.1.0.3"}, what="web follows")
        registry = agent.metrics.registry
        await eventually(
            lambda: (registry.get_sample_value("ipvsctl_services", {"state": "rejected"}) or 0) >= 4, what="rejected"
        )
        assert agent.status.ready
        assert agent.runner.outcomes[-1].ok
        assert not any(key.address == NODE_IP and key.port == 80 for key in backend.table.services)
        expected = {"superscript", "arabic-digits", "huge-netmask", "escape-scheduler"}
        rejected = await objects_warned(admin_api, namespace, reason="IpvsctlRejected", expected=expected)
        refused = await objects_warned(admin_api, namespace, reason="IpvsctlAddressRefused", expected={"node-ip"})
    assert rejected == expected
    assert refused == {"node-ip"}


async def test_ingress_ip_of_a_special_kind_is_never_programmed(
    admin_api: ApiClient, admin_kubeconfig: Path, namespace: str
) -> None:
    """A status writer's loopback and node-IP ingress: refused with an Event; the Service's ClusterIP is served."""
    await ensure_node(admin_api)
    backend = MemoryBackend()
    core: Any = client.CoreV1Api(admin_api)  # raw JSON bodies
    async with running_agent(admin_kubeconfig, backend=backend, policy=OPEN):
        ip = await create_service(admin_api, namespace, "lb", type="LoadBalancer")
        status = {
            "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}, {"ip": NODE_IP}, {"ip": "203.0.113.7"}]}}
        }
        await core.patch_namespaced_service_status("lb", namespace, status)
        await eventually(lambda: vip("203.0.113.7") in backend.table.services, what="ingress programmed")
        assert vip(ip) in backend.table.services
        assert not {vip("127.0.0.1"), vip(NODE_IP)} & set(backend.table.services)
        refused = await objects_warned(admin_api, namespace, reason="IpvsctlAddressRefused", expected={"lb"})
    assert refused == {"lb"}
