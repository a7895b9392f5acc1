"""The probes as kube-proxy's: /livez is the loops, /healthz also fails while the Node is on its way out."""

from __future__ import annotations

from typing import Any

import pytest

from ipvsctl.kube.views import AUTOSCALER_TAINT
from tests.agent.conftest import StartAgent
from tests.agent.fakes import FakeClock, list_everything, node, service, settle
from tests.agent.test_serving import agent_endpoints, get


def deleted(raw: dict[str, Any]) -> dict[str, Any]:
    """The Node with a deletionTimestamp (a finalizer holds it)."""
    raw["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return raw


def autoscaled(raw: dict[str, Any]) -> dict[str, Any]:
    """The Node with the cluster autoscaler's taint."""
    raw["spec"] = {"taints": [{"key": AUTOSCALER_TAINT, "value": "1767225600", "effect": "NoSchedule"}]}
    return raw


def other_taint(raw: dict[str, Any]) -> dict[str, Any]:
    """The Node with an unrelated taint."""
    raw["spec"] = {"taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}
    return raw


async def probe_codes(start_agent: StartAgent, raw_node: dict[str, Any]) -> dict[str, tuple[int, Any]]:
    agent = start_agent()
    async with agent_endpoints(agent) as ports:
        list_everything(agent, services=[service("web", cluster_ip="10.0.0.10")], nodes=[raw_node])
        await settle()
        return {path: await get(ports[path], path) for path in ("/livez", "/healthz", "/readyz")}


@pytest.mark.parametrize(
    ("change", "healthz"),
    [
        pytest.param(lambda raw: raw, 200, id="ordinary"),
        pytest.param(other_taint, 200, id="other-taint"),
        pytest.param(deleted, 503, id="deletion-timestamp"),
        pytest.param(autoscaled, 503, id="autoscaler-taint"),
    ],
)
async def test_healthz_follows_the_node_and_livez_does_not(start_agent: StartAgent, change: Any, healthz: int) -> None:
    """/healthz is 503 on a leaving Node (deleted or autoscaler-tainted); /livez and /readyz stay 200."""
    answers = await probe_codes(start_agent, change(node()))
    assert [answers[path][0] for path in ("/livez", "/healthz", "/readyz")] == [200, healthz, 200]


async def test_healthz_names_why_the_node_is_not_eligible(start_agent: StartAgent) -> None:
    """A tainted Node's /healthz says nodeEligible false and which taint."""
    body = (await probe_codes(start_agent, autoscaled(node())))["/healthz"][1]
    assert (body["nodeEligible"], body["nodeLeaving"], body["alive"]) == (False, AUTOSCALER_TAINT, True)


async def test_healthz_recovers_when_the_taint_goes(start_agent: StartAgent) -> None:
    """The autoscaler gives up on the node and removes its taint: /healthz is 200 again."""
    agent = start_agent()
    list_everything(agent, services=[service("web", cluster_ip="10.0.0.10")], nodes=[autoscaled(node())])
    await settle()
    before = agent.probes()["/healthz"]().ok
    agent.handlers["Node"].upsert(node())
    assert (before, agent.probes()["/healthz"]().ok) == (False, True)


async def test_a_stuck_sync_fails_livez_and_healthz(start_agent: StartAgent, clock: FakeClock) -> None:
    """A sync running past stall_after fails both /livez and /healthz (the kubelet restarts the agent)."""
    agent = start_agent()
    agent.status.sync_started = clock.now()
    await clock.advance(agent.status.stall_after + 1)
    probes = agent.probes()
    assert (probes["/livez"]().ok, probes["/healthz"]().ok) == (False, False)
