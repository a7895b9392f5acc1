"""The real kube-apiserver harness (v1.20 or the binary given) does what the agent's tests will lean on."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.api_client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from tests.apiserver.harness import ControlPlane

pytestmark = pytest.mark.apiserver


def service(name: str, *, type_: str = "ClusterIP", **spec: Any) -> client.V1Service:
    """Return a Service with one TCP port 80 → 8080."""
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1ServiceSpec(
            type=type_, ports=[client.V1ServicePort(port=80, target_port=8080, protocol="TCP")], **spec
        ),
    )


def endpoint_slice(name: str, *, service_name: str, group_version: tuple[str, str]) -> dict[str, Any]:
    """Return an EndpointSlice (v1 or v1beta1) with a ready endpoint and a terminating one, each on a node."""
    return {
        "apiVersion": "/".join(group_version),
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service_name}},
        "addressType": "IPv4",
        "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": ["10.1.0.1"],
                "nodeName": "worker1",
                "conditions": {"ready": True, "serving": True, "terminating": False},
            },
            {
                "addresses": ["10.1.0.2"],
                "nodeName": "worker2",
                "conditions": {"ready": False, "serving": True, "terminating": True},
            },
        ],
    }


async def raw_json(call: Awaitable[object]) -> tuple[int, Any]:
    """Await a client call made with `_preload_content=False`; return its HTTP status and parsed body."""
    response = cast(aiohttp.ClientResponse, await call)
    async with response:
        return response.status, json.loads(await response.read())


async def first_watch_line(call: Awaitable[object]) -> Any:
    """Await a raw watch call (`watch=True, _preload_content=False`) and parse its first event."""
    response = cast(aiohttp.ClientResponse, await call)
    async with response:
        return json.loads(await asyncio.wait_for(response.content.readline(), timeout=30))


async def fresh_client(kubeconfig: Path) -> ApiClient:
    """Return a new ApiClient; needed after an apiserver restart, whose old connections are dead."""
    return await config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture
async def expired_rv(apiserver: ControlPlane, admin_api: ApiClient, namespace: str) -> str:
    """Return the resourceVersion of a Service created before every resourceVersion was expired."""
    created = await client.CoreV1Api(admin_api).create_namespaced_service(namespace, service("old"))
    await asyncio.to_thread(apiserver.expire_resource_versions)
    return created.metadata.resource_version


@pytest.fixture
async def cluster_role_binding(admin_api: ApiClient, apiserver: ControlPlane) -> AsyncIterator[str]:
    """Bind the non-admin user to a ClusterRole that may list and watch Services; unbind after the test."""
    rbac = client.RbacAuthorizationV1Api(admin_api)
    name = "ipvsctl-test-service-reader"
    await rbac.create_cluster_role(
        client.V1ClusterRole(
            metadata=client.V1ObjectMeta(name=name),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["services"], verbs=["get", "list", "watch"])],
        )
    )
    await rbac.create_cluster_role_binding(
        client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=name),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=name),
            subjects=[
                client.RbacV1Subject(api_group="rbac.authorization.k8s.io", kind="User", name=apiserver.user.name)
            ],
        )
    )
    yield name
    await rbac.delete_cluster_role_binding(name)
    await rbac.delete_cluster_role(name)


async def test_service_gets_server_filled_fields(admin_api: ApiClient, namespace: str) -> None:
    """A created Service comes back with uid, resourceVersion and a ClusterIP from the IPv4 range."""
    created = await client.CoreV1Api(admin_api).create_namespaced_service(namespace, service("web"))
    assert created.metadata.uid
    assert created.metadata.resource_version
    assert ipaddress.ip_address(created.spec.cluster_ip) in ipaddress.ip_network("10.0.0.0/24")


async def test_dual_stack_service_gets_two_cluster_ips(admin_api: ApiClient, namespace: str) -> None:
    """With IPv6DualStack on, a RequireDualStack Service gets an IPv4 and an IPv6 ClusterIP."""
    created = await client.CoreV1Api(admin_api).create_namespaced_service(
        namespace, service("dual", ip_family_policy="RequireDualStack")
    )
    assert [ipaddress.ip_address(ip).version for ip in created.spec.cluster_ips] == [4, 6]


async def test_endpoint_slice_keeps_node_name_and_conditions(
    admin_api: ApiClient, namespace: str, slice_group_version: tuple[str, str]
) -> None:
    """An EndpointSlice keeps nodeName and serving/terminating (on v1.20 their feature gates are on)."""
    custom = client.CustomObjectsApi(admin_api)
    await custom.create_namespaced_custom_object(
        *slice_group_version,
        namespace,
        "endpointslices",
        endpoint_slice("web-abc", service_name="web", group_version=slice_group_version),
    )
    stored = await custom.get_namespaced_custom_object(*slice_group_version, namespace, "endpointslices", "web-abc")
    assert [(e["nodeName"], e["conditions"]) for e in stored["endpoints"]] == [
        ("worker1", {"ready": True, "serving": True, "terminating": False}),
        ("worker2", {"ready": False, "serving": True, "terminating": True}),
    ]


async def test_lists_services_and_slices_as_raw_json(
    admin_api: ApiClient, namespace: str, slice_group_version: tuple[str, str]
) -> None:
    """Lists read with _preload_content=False are the server's own JSON (camelCase, kind, resourceVersion)."""
    core, custom = client.CoreV1Api(admin_api), client.CustomObjectsApi(admin_api)
    await core.create_namespaced_service(namespace, service("web"))
    await custom.create_namespaced_custom_object(
        *slice_group_version,
        namespace,
        "endpointslices",
        endpoint_slice("web-abc", service_name="web", group_version=slice_group_version),
    )
    services = await raw_json(core.list_namespaced_service(namespace, _preload_content=False))
    slices = await raw_json(
        custom.list_namespaced_custom_object(*slice_group_version, namespace, "endpointslices", _preload_content=False)
    )
    assert (services[0], services[1]["kind"], [s["metadata"]["name"] for s in services[1]["items"]]) == (
        200,
        "ServiceList",
        ["web"],
    )
    assert services[1]["items"][0]["spec"]["clusterIP"]
    assert services[1]["metadata"]["resourceVersion"]
    assert (slices[0], slices[1]["kind"], slices[1]["items"][0]["endpoints"][0]["nodeName"]) == (
        200,
        "EndpointSliceList",
        "worker1",
    )


async def test_watch_from_resource_version_sees_added_modified_deleted(admin_api: ApiClient, namespace: str) -> None:
    """A watch started at a list's resourceVersion streams ADDED, MODIFIED and DELETED for a Service."""
    core = client.CoreV1Api(admin_api)
    listed = await core.list_namespaced_service(namespace)

    async def churn() -> None:
        await core.create_namespaced_service(namespace, service("web"))
        await core.patch_namespaced_service("web", namespace, {"metadata": {"labels": {"tier": "front"}}})
        await core.delete_namespaced_service("web", namespace)

    seen: list[str] = []
    async with watch.Watch() as stream:
        events = stream.stream(
            core.list_namespaced_service,
            namespace,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=30,
        )
        churner = asyncio.create_task(churn(), name="churn")
        async for event in events:
            seen.append(event["type"])
            if event["type"] == "DELETED":
                break
    await churner
    assert seen == ["ADDED", "MODIFIED", "DELETED"]


async def test_status_subresource_sets_load_balancer_ingress(admin_api: ApiClient, namespace: str) -> None:
    """status.loadBalancer.ingress is set through the status subresource."""
    core = client.CoreV1Api(admin_api)
    await core.create_namespaced_service(namespace, service("lb", type_="LoadBalancer"))
    await core.patch_namespaced_service_status(
        "lb", namespace, {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}}
    )
    stored = await core.read_namespaced_service("lb", namespace)
    assert [ingress.ip for ingress in stored.status.load_balancer.ingress] == ["192.0.2.10"]


async def test_creates_event(admin_api: ApiClient, namespace: str) -> None:
    """A core/v1 Event about a Service can be created and listed back."""
    core = client.CoreV1Api(admin_api)
    await core.create_namespaced_event(
        namespace,
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name="web."),
            involved_object=client.V1ObjectReference(kind="Service", namespace=namespace, name="web"),
            reason="Programmed",
            message="virtual service 10.0.0.10:80/TCP programmed",
            type="Normal",
            source=client.V1EventSource(component="ipvsctl"),
        ),
    )
    events = await core.list_namespaced_event(namespace)
    assert [(e.reason, e.involved_object.name) for e in events.items] == [("Programmed", "web")]


async def test_non_admin_user_is_forbidden_to_list_services(user_api: ApiClient) -> None:
    """Without a binding, RBAC forbids the non-admin user to list Services (403)."""
    with pytest.raises(ApiException) as raised:
        await client.CoreV1Api(user_api).list_service_for_all_namespaces()
    assert raised.value.status == 403


async def test_non_admin_user_may_list_services_once_bound(user_api: ApiClient, cluster_role_binding: str) -> None:
    """After a ClusterRoleBinding to a reader ClusterRole, the non-admin user lists Services."""
    core = client.CoreV1Api(user_api)
    for _ in range(50):  # the authorizer's informer catches the binding within moments
        try:
            listed = await core.list_service_for_all_namespaces()
        except ApiException as err:
            if err.status != 403:
                raise
            await asyncio.sleep(0.1)
        else:
            assert listed.items
            return
    pytest.fail(f"still forbidden after binding {cluster_role_binding}")


async def test_objects_survive_apiserver_restart(
    apiserver: ControlPlane, admin_api: ApiClient, admin_kubeconfig: Path, namespace: str
) -> None:
    """restart_apiserver() keeps etcd's data, the URL and the certificate: old kubeconfigs still work."""
    created = await client.CoreV1Api(admin_api).create_namespaced_service(namespace, service("web"))
    await asyncio.to_thread(apiserver.restart_apiserver)
    async with await fresh_client(admin_kubeconfig) as api:
        stored = await client.CoreV1Api(api).read_namespaced_service("web", namespace)
    assert stored.metadata.uid == created.metadata.uid


async def test_watch_from_expired_resource_version_streams_410_error_event(
    admin_kubeconfig: Path, namespace: str, expired_rv: str
) -> None:
    """On the wire, a watch from an expired resourceVersion is HTTP 200 whose first event is ERROR 410 Expired."""
    async with await fresh_client(admin_kubeconfig) as api:
        event = await first_watch_line(
            client.CoreV1Api(api).list_namespaced_service(
                namespace, watch=True, resource_version=expired_rv, timeout_seconds=10, _preload_content=False
            )
        )
    assert (event["type"], event["object"]["code"], event["object"]["reason"]) == ("ERROR", 410, "Expired")


async def test_watch_helper_raises_410_for_expired_resource_version(
    admin_kubeconfig: Path, namespace: str, expired_rv: str
) -> None:
    """kubernetes_asyncio's Watch turns that ERROR event into ApiException(status=410)."""
    async with await fresh_client(admin_kubeconfig) as api, watch.Watch() as stream:
        events = stream.stream(
            client.CoreV1Api(api).list_namespaced_service, namespace, resource_version=expired_rv, timeout_seconds=10
        )
        with pytest.raises(ApiException) as raised:
            async for _ in events:
                pass
    assert raised.value.status == 410
