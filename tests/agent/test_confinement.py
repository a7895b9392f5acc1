"""One bad object never stops the agent: whatever goes wrong with it rejects that object alone.

Hostile objects go in through the same handlers the watchers feed. Bugs nobody has found yet are
simulated by making one object's parse, translation or sync raise what the code does not expect.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import netaddr
import pytest
import structlog.testing

from ipvsctl.agent.node import NodeAgent
from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.kube.parse import parse_service
from ipvsctl.model import Protocol, ServiceKey
from ipvsctl.reconcile import sync
from ipvsctl.translate import Policy, translate_service
from tests.agent.conftest import StartAgent
from tests.agent.fakes import FakeClock, RecordingSink, endpoint_slice, list_everything, service, settle

WEB = service("web", cluster_ip="10.0.0.10", created="2026-01-01T00:00:00Z")
WEB_KEY = ServiceKey(Protocol.TCP, "10.0.0.10", 80)
WEB_SLICE = endpoint_slice("web-1", service="web", endpoints=[("10.1.0.1", "worker2")])
NETMASK = "ipvsctl.io/persistence-netmask"


def evil(**spec: Any) -> dict[str, Any]:
    """A tenant's Service in its own namespace (``spec`` fields replace the defaults, whatever their type)."""
    raw = dict(service("evil", cluster_ip="10.0.0.66", namespace="tenant", annotations=spec.pop("annotations", {})))
    raw["spec"] = {**raw["spec"], **spec}
    return raw


def errors(agent: NodeAgent, source: str) -> float:
    value = agent.metrics.registry.get_sample_value("ipvsctl_errors_total", {"source": source})
    return value or 0.0


def reasons(sink: RecordingSink, name: str) -> set[str]:
    return {str(event["reason"]) for event in sink.events.values() if event["involvedObject"]["name"] == name}


@pytest.fixture
def captured() -> Iterator[list[MutableMapping[str, Any]]]:
    """Return the log entries written during the test."""
    with structlog.testing.capture_logs() as entries:
        yield entries


HOSTILE = [
    pytest.param({"annotations": {NETMASK: "\u00b2"}, "sessionAffinity": "ClientIP"}, id="superscript-digit-netmask"),
    pytest.param({"annotations": {NETMASK: "\u0661\u0666"}, "sessionAffinity": "ClientIP"}, id="arabic-digit-netmask"),
    pytest.param({"annotations": {NETMASK: "9" * 5000}, "sessionAffinity": "ClientIP"}, id="huge-netmask"),
    pytest.param(
        {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10**5000}}},
        id="huge-timeout",
    ),
    pytest.param({"ports": [{"port": 10**5000}]}, id="huge-port"),
    pytest.param({"ports": [{"port": 80, "nodePort": -(10**400)}], "type": "NodePort"}, id="huge-negative-node-port"),
    pytest.param({"externalIPs": [{"a": [[[]]]}]}, id="external-ip-object"),
    pytest.param({"externalIPs": ["fe80::1%eth0", "127.0.0.1", "0.0.0.0", "::"]}, id="special-external-ips"),
    pytest.param({"healthCheckNodePort": 79, "type": "LoadBalancer", "externalTrafficPolicy": "Local"}, id="hc-79"),
    pytest.param({"ports": "\x1b[2J"}, id="ports-string"),
    pytest.param({"clusterIPs": ["10.0.0.66", "10.0.0.66", None]}, id="cluster-ips-null"),
]


@pytest.mark.parametrize("spec", HOSTILE)
async def test_hostile_service_leaves_the_others_programmed(
    start_agent: StartAgent, backend: MemoryBackend, sink: RecordingSink, clock: FakeClock, spec: dict[str, Any]
) -> None:
    """A tenant's hostile Service: the sync loop keeps running, web is programmed, the tenant gets a Warning."""
    agent = start_agent()
    list_everything(agent, services=[WEB, evil(**spec)], slices=[WEB_SLICE])
    await settle()
    agent.handlers["EndpointSlice"].upsert(
        endpoint_slice("web-1", service="web", endpoints=[("10.1.0.1", "worker2"), ("10.1.0.2", "worker2")])
    )
    await clock.advance(1.0)
    await settle()
    assert not agent.runner.outcomes[-1].error
    assert {real.address for real in backend.table.services[WEB_KEY].reals} == {"10.1.0.1", "10.1.0.2"}
    assert reasons(sink, "evil")
    assert not any(key.address in {"127.0.0.1", "0.0.0.0", "::", "fe80::1%eth0"} for key in backend.table.services)


async def test_translation_bug_rejects_that_service_alone(
    start_agent: StartAgent,
    backend: MemoryBackend,
    sink: RecordingSink,
    captured: list[MutableMapping[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Translation raising the unexpected for one Service: rejected with an Event, logged with its traceback."""

    def buggy(view: Any, *args: Any, **kwargs: Any) -> Any:
        if view.ref.name == "evil":
            raise ZeroDivisionError("a bug")
        return translate_service(view, *args, **kwargs)

    monkeypatch.setattr("ipvsctl.agent.syncer.translate_service", buggy)
    agent = start_agent()
    list_everything(agent, services=[WEB, evil()], slices=[WEB_SLICE])
    await settle()
    assert WEB_KEY in backend.table.services
    assert reasons(sink, "evil") == {"IpvsctlRejected"}
    assert errors(agent, "translation") == 1
    (entry,) = [e for e in captured if e["event"] == "translation_failed"]
    assert (entry["service"], entry["exc_info"]) == ("tenant/evil", True)


async def test_parse_bug_treats_that_object_as_invalid(
    start_agent: StartAgent,
    backend: MemoryBackend,
    sink: RecordingSink,
    captured: list[MutableMapping[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Parsing raising the unexpected for one object: an invalid object (Event, metric, traceback logged)."""

    def buggy(obj: Any) -> Any:
        if obj["metadata"]["name"] == "evil":
            raise RecursionError("deep")
        return parse_service(obj)

    monkeypatch.setattr("ipvsctl.agent.cache.parse_service", buggy)
    agent = start_agent()
    list_everything(agent, services=[WEB, evil()], slices=[WEB_SLICE])
    await settle()
    assert WEB_KEY in backend.table.services
    assert reasons(sink, "evil") == {"IpvsctlInvalidObject"}
    assert errors(agent, "object") == 1
    assert [e["exc_info"] for e in captured if e["event"] == "object_unreadable"] == [True]


async def test_sync_bug_fails_the_sync_and_the_next_one_recovers(
    start_agent: StartAgent, backend: MemoryBackend, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync raising the unexpected is a failed sync (retried), not a dead sync loop."""
    calls = {"n": 0}

    async def buggy_once(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyError("a bug")
        return await sync(*args, **kwargs)

    monkeypatch.setattr("ipvsctl.agent.syncer.sync", buggy_once)
    agent = start_agent()
    list_everything(agent, services=[WEB], slices=[WEB_SLICE])
    await settle()
    assert (agent.runner.outcomes[-1].ok, errors(agent, "sync")) == (False, 1)
    assert "KeyError" in agent.runner.outcomes[-1].error
    await clock.advance(30.0)
    await settle()
    assert agent.runner.outcomes[-1].ok
    assert WEB_KEY in backend.table.services


async def test_special_external_ip_gets_an_address_refused_event(
    start_agent: StartAgent, backend: MemoryBackend, sink: RecordingSink
) -> None:
    """An externalIP of 127.0.0.1 (inside an allow-all CIDR) is refused with IpvsctlAddressRefused."""
    agent = start_agent(policy=Policy(external_ip_cidrs=netaddr.IPSet(["0.0.0.0/0"])))
    list_everything(agent, services=[WEB, evil(externalIPs=["127.0.0.1", "203.0.113.9"])], slices=[WEB_SLICE])
    await settle()
    assert "IpvsctlAddressRefused" in reasons(sink, "evil")
    assert ServiceKey(Protocol.TCP, "203.0.113.9", 80) in backend.table.services
    assert ServiceKey(Protocol.TCP, "127.0.0.1", 80) not in backend.table.services
