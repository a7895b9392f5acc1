"""`ipvsctl diff` and `show --kubeconfig` read the live cluster instead of manifests."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ipvsctl.cli import app
from ipvsctl.kube.client import connect
from tests.agent.live import create_service, ensure_node, put_slice

pytestmark = pytest.mark.apiserver
EMPTY = str(Path(__file__).resolve().parent.parent.parent / "examples" / "empty.save")


async def _populate(kubeconfig: Path, namespace: str) -> str:
    async with connect(str(kubeconfig)) as api:
        await ensure_node(api)
        cluster_ip = await create_service(api, namespace, "kc-web")
        await put_slice(api, namespace, "kc-web-1", service="kc-web", addresses=["10.1.0.7"])
    return cluster_ip


def test_diff_reads_the_cluster(admin_kubeconfig: Path, namespace: str) -> None:
    """diff --kubeconfig plans the cluster's Service, named by namespace/name, with its endpoint."""
    cluster_ip = asyncio.run(_populate(admin_kubeconfig, namespace))
    result = CliRunner().invoke(
        app,
        ["diff", "--kubeconfig", str(admin_kubeconfig), "--node", "worker1", "--current-save", EMPTY, "-o", "json"],
    )
    assert result.exit_code == 1, result.stderr
    changes = json.loads(result.stdout)["changes"]
    mine = [c for c in changes if c["service"] == {"namespace": namespace, "name": "kc-web"}]
    assert {c["virtualService"]["address"] for c in mine} == {cluster_ip}
    assert any(c["realServer"] and c["realServer"]["address"] == "10.1.0.7" for c in mine)


def test_manifests_and_kubeconfig_together_rejected(admin_kubeconfig: Path) -> None:
    """Giving both --manifests and --kubeconfig is a usage error naming --kubeconfig."""
    result = CliRunner().invoke(
        app,
        ["diff", "--kubeconfig", str(admin_kubeconfig), "--manifests", "examples/cluster", "--node", "worker1",
         "--current-save", EMPTY],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--kubeconfig: give either --manifests or --kubeconfig" in result.stderr
