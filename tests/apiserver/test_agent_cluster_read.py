"""Listing the live cluster once into views (what `diff`/`show`/`affinity --kubeconfig` read)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes_asyncio.client.api_client import ApiClient

from ipvsctl.kube.client import load_cluster
from ipvsctl.kube.views import ObjectRef
from ipvsctl.translate import NodeContext, Policy, translate
from tests.agent.live import create_service, ensure_node, put_slice, vip

pytestmark = pytest.mark.apiserver


async def test_cluster_read_once_translates_like_manifests(
    admin_api: ApiClient, admin_kubeconfig: Path, namespace: str
) -> None:
    """Services, slices and only the named Node come back as views that translate to the table."""
    await ensure_node(admin_api)
    ip = await create_service(admin_api, namespace, "web")
    await put_slice(admin_api, namespace, "web-1", service="web", addresses=["10.1.0.1"])
    loaded = await load_cluster(str(admin_kubeconfig), node_name="worker1")
    assert ObjectRef(namespace, "web") in {s.ref for s in loaded.services}
    assert [n.name for n in loaded.nodes] == ["worker1"]
    assert loaded.errors == ()
    table = translate(
        loaded.services, loaded.slices, node=NodeContext("worker1", ("192.0.2.1",)), policy=Policy()
    ).table
    found = table.get(vip(ip))
    assert found is not None
    assert [real.address for real in found.reals] == ["10.1.0.1"]
