"""What on-call tooling expects of `ipvsctl agent` as a process against a real apiserver: kube-proxy's metrics
on a real scrape, and /healthz failing (with /livez alive) while the Node carries the autoscaler's taint."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.api_client import ApiClient
from prometheus_client.parser import text_string_to_metric_families

from ipvsctl.kube.views import AUTOSCALER_TAINT
from tests.agent.fakes import NODE
from tests.agent.live import create_service, ensure_node, put_slice
from tests.apiserver.harness import free_port
from tests.apiserver.test_agent_process import get

pytestmark = pytest.mark.apiserver


def contents(log: Path) -> str:
    """The agent's log so far."""
    return log.read_text()


@contextlib.asynccontextmanager
async def running_agent(kubeconfig: Path, log: Path) -> AsyncIterator[tuple[int, int]]:
    """`ipvsctl agent` (memory backend) until ready; yields its health and metrics ports; SIGTERM after."""
    health, metrics = free_port(), free_port()
    argv = [
        "agent", "--backend", "memory", "--kubeconfig", str(kubeconfig), "--min-sync-interval", "0.2",
        "--health-bind", f"127.0.0.1:{health}", "--metrics-bind", f"127.0.0.1:{metrics}",
        "--health-check-address", "127.0.0.1",
    ]  # fmt: skip
    with log.open("w") as sink:
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "ipvsctl"),
            *argv,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "NODE_NAME": NODE},
        )
    try:
        for _ in range(600):
            assert process.returncode is None, contents(log)
            if (await get(f"http://127.0.0.1:{health}/readyz"))[0] == 200:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"not ready within 60 s:\n{contents(log)}")
        yield health, metrics
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=30)


async def scrape(port: int) -> dict[str, Any]:
    """Every metric family of one real scrape, by name."""
    status, text = await get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: dict[str, Any], name: str, sample: str | None = None, **labels: str) -> float:
    """One sample's value (the family's own name unless ``sample`` is given)."""
    for found in families[name].samples:
        if found.name == (sample or name) and found.labels == labels:
            return float(found.value)
    raise AssertionError(f"no {sample or name}{labels}")


async def eventually(check: Any, *, seconds: float = 15.0) -> Any:
    """Poll an async check until it returns something truthy (bounded)."""
    for _ in range(int(seconds * 10)):
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.1)
    pytest.fail("condition not met in time")


async def test_a_scrape_has_kube_proxys_metrics_fed_by_the_same_syncs(
    admin_api: ApiClient, admin_kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    """After a Service and a slice change: kube-proxy's counters and timestamps move with ipvsctl's own."""
    await ensure_node(admin_api)
    async with running_agent(admin_kubeconfig, tmp_path / "agent.log") as (_, metrics):
        await create_service(admin_api, namespace, "web")
        await put_slice(admin_api, namespace, "web-1", service="web", addresses=["10.1.0.1"])

        async def changed() -> dict[str, Any] | None:
            families = await scrape(metrics)
            done = (
                value(
                    families,
                    "kubeproxy_sync_proxy_rules_endpoint_changes",
                    "kubeproxy_sync_proxy_rules_endpoint_changes_total",
                )
                >= 1
            )
            pending = value(families, "kubeproxy_sync_proxy_rules_endpoint_changes_pending")
            return families if done and pending == 0 else None

        families = await eventually(changed)
    syncs = value(families, "ipvsctl_sync_duration_seconds", "ipvsctl_sync_duration_seconds_count", kind="full")
    syncs += value(families, "ipvsctl_sync_duration_seconds", "ipvsctl_sync_duration_seconds_count", kind="incremental")
    kube_proxy = "kubeproxy_sync_proxy_rules_duration_seconds"
    assert value(families, kube_proxy, f"{kube_proxy}_count") == syncs >= 2
    assert families[kube_proxy].type == "histogram"
    assert value(families, "kubeproxy_sync_proxy_rules_last_timestamp_seconds") == value(
        families, "ipvsctl_last_successful_sync_timestamp_seconds"
    )
    assert (
        value(
            families, "kubeproxy_sync_proxy_rules_service_changes", "kubeproxy_sync_proxy_rules_service_changes_total"
        )
        >= 1
    )
    assert value(families, "kubeproxy_sync_proxy_rules_no_local_endpoints_total", traffic_policy="external") == 0


async def set_taint(api: ApiClient, taints: list[dict[str, str]] | None) -> None:
    core: Any = client.CoreV1Api(api)  # raw JSON bodies
    await core.patch_node(NODE, {"spec": {"taints": taints}})


async def test_healthz_fails_while_the_node_has_the_autoscalers_taint(
    admin_api: ApiClient, admin_kubeconfig: Path, tmp_path: Path
) -> None:
    """The autoscaler's taint on the Node: /healthz 503 (not eligible), /livez 200; taint gone: /healthz 200."""
    await ensure_node(admin_api)
    async with running_agent(admin_kubeconfig, tmp_path / "agent.log") as (health, _):
        before = (await get(f"http://127.0.0.1:{health}/healthz"))[0]
        await set_taint(admin_api, [{"key": AUTOSCALER_TAINT, "value": "1767225600", "effect": "NoSchedule"}])
        try:

            async def refused() -> tuple[int, str] | None:
                answer = await get(f"http://127.0.0.1:{health}/healthz")
                return answer if answer[0] == 503 else None

            body = (await eventually(refused))[1]
            alive = (await get(f"http://127.0.0.1:{health}/livez"))[0]
        finally:
            await set_taint(admin_api, None)

        async def healthy() -> bool:
            return (await get(f"http://127.0.0.1:{health}/healthz"))[0] == 200

        await eventually(healthy)
    assert (before, alive, '"nodeEligible": false' in body) == (200, 200, True)
