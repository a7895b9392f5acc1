"""Fixtures for tests against a real kube-apiserver + etcd on 127.0.0.1 (see harness.py).

Run them with `.venv/bin/pytest -m apiserver tests/apiserver`. The first run on a machine builds kube-apiserver
v1.20 with tools/apiserver/build.sh (about 5 minutes, then cached); later runs start in seconds. Another binary:
IPVSCTL_KUBE_APISERVER=/path/to/kube-apiserver (and IPVSCTL_ETCD=/path/to/etcd); see docs/testing.md. The tests
skip only when the binaries cannot be had on this machine; set IPVSCTL_REQUIRE_APISERVER=1 to make that a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.api_client import ApiClient

from tests.apiserver.harness import Binaries, ControlPlane, UnavailableError, find_binaries


@pytest.fixture(scope="session")
def control_plane_binaries() -> Binaries:
    """The kube-apiserver and etcd binaries (built on first use); skip, or fail when they are required."""
    try:
        return find_binaries()
    except UnavailableError as err:
        if os.environ.get("IPVSCTL_REQUIRE_APISERVER") == "1":
            pytest.fail(f"kube-apiserver/etcd unavailable and IPVSCTL_REQUIRE_APISERVER=1: {err}")
        pytest.skip(f"kube-apiserver/etcd cannot be built or installed on this machine: {err}")


@pytest.fixture(scope="session")
def apiserver(control_plane_binaries: Binaries, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """Start etcd + kube-apiserver once per session (building the binary on first use); stop them after."""
    with ControlPlane(binaries=control_plane_binaries, workdir=tmp_path_factory.mktemp("apiserver")) as plane:
        yield plane


@pytest.fixture(scope="session")
def slice_group_version(apiserver: ControlPlane) -> tuple[str, str]:
    """Return ("discovery.k8s.io", "v1" or "v1beta1"): the EndpointSlice version the server serves."""
    group, _, version = apiserver.slice_api_version.rpartition("/")
    return group, version


@pytest.fixture(scope="session")
def admin_kubeconfig(apiserver: ControlPlane) -> Path:
    """Return the kubeconfig of a system:masters token user (cluster-admin)."""
    return apiserver.kubeconfig(apiserver.admin)


@pytest.fixture(scope="session")
def user_kubeconfig(apiserver: ControlPlane) -> Path:
    """Return the kubeconfig of a token user with no groups: RBAC grants it nothing until a test binds it."""
    return apiserver.kubeconfig(apiserver.user)


@pytest.fixture
async def admin_api(admin_kubeconfig: Path) -> AsyncIterator[ApiClient]:
    """Return an ApiClient authenticated as the admin user, closed after the test."""
    api = await config.new_client_from_config(config_file=str(admin_kubeconfig))
    async with api:
        yield api


@pytest.fixture
async def user_api(user_kubeconfig: Path) -> AsyncIterator[ApiClient]:
    """Return an ApiClient authenticated as the non-admin user, closed after the test."""
    api = await config.new_client_from_config(config_file=str(user_kubeconfig))
    async with api:
        yield api


@pytest.fixture
async def namespace(admin_api: ApiClient, slice_group_version: tuple[str, str]) -> AsyncIterator[str]:
    """Create a fresh namespace for one test; empty it of Services and EndpointSlices after the test.

    v1.20 has no controller-manager here, so a deleted namespace would stay Terminating with its objects;
    the objects are deleted by hand so that cluster-wide watches in later tests see only their own.
    """
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(admin_api)
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    custom = client.CustomObjectsApi(admin_api)
    await custom.delete_collection_namespaced_custom_object(*slice_group_version, name, "endpointslices")
    services = await core.list_namespaced_service(name)
    for service in services.items:
        await core.delete_namespaced_service(service.metadata.name, name)
    await core.delete_namespace(name)
