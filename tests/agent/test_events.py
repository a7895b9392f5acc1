"""Warning Events: one per problem, not one per sync; counts on reappearance; retries; agent restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ipvsctl.agent.cache import Subject
from ipvsctl.agent.events import EventRecorder
from ipvsctl.kube.views import ObjectRef
from tests.agent.conftest import StartAgent
from tests.agent.fakes import FakeClock, RecordingSink, list_everything, service, settle

WEB = Subject("Service", ObjectRef("default", "web"), uid="uid-web")
PROBLEM = ("IpvsctlRejected", "spec.sessionAffinityConfig.clientIP.timeoutSeconds: 0 is outside 1..86400")


@pytest.fixture
async def recorder(clock: FakeClock, sink: RecordingSink) -> AsyncIterator[EventRecorder]:
    """Return a recorder whose writer task runs."""
    events = EventRecorder(sink=sink, node_name="worker1", clock=clock, refresh_after=1800.0)
    task = asyncio.create_task(events.run(), name="test-events")
    yield events
    task.cancel()
    await settle()


async def test_same_problem_on_every_sync_is_one_event(recorder: EventRecorder, sink: RecordingSink) -> None:
    """A problem reported 50 times in a row creates one Event with count 1."""
    for _ in range(50):
        recorder.set(WEB, topic="translation", problems=[PROBLEM])
        await settle()
    assert sink.calls == ["create"]
    (event,) = sink.events.values()
    assert (event["count"], event["type"], event["reason"]) == (1, "Warning", "IpvsctlRejected")
    assert event["involvedObject"] == {"kind": "Service", "apiVersion": "v1", "name": "web", "namespace": "default",
                                       "uid": "uid-web"}  # fmt: skip


async def test_problem_that_comes_back_raises_the_count(recorder: EventRecorder, sink: RecordingSink) -> None:
    """Fixed, then broken again: the same Event, count 2."""
    recorder.set(WEB, topic="translation", problems=[PROBLEM])
    await settle()
    recorder.set(WEB, topic="translation", problems=[])
    await settle()
    recorder.set(WEB, topic="translation", problems=[PROBLEM])
    await settle()
    assert sink.calls == ["create", "patch"]
    assert [event["count"] for event in sink.events.values()] == [2]


async def test_lasting_problem_is_refreshed_after_the_refresh_interval(
    recorder: EventRecorder, sink: RecordingSink, clock: FakeClock
) -> None:
    """Still there 30 minutes later: the Event is patched (count 2) so it outlives the Event TTL."""
    recorder.set(WEB, topic="translation", problems=[PROBLEM])
    await settle()
    await clock.advance(1000.0)
    recorder.refresh()
    await settle()
    assert sink.calls == ["create"]
    await clock.advance(800.0)
    recorder.refresh()
    await settle()
    assert sink.calls == ["create", "patch"]


async def test_restarted_agent_patches_its_earlier_event(clock: FakeClock, sink: RecordingSink) -> None:
    """A second recorder (a restarted agent) finds its Event's name taken and patches it."""
    for _ in range(2):
        events = EventRecorder(sink=sink, node_name="worker1", clock=clock)
        task = asyncio.create_task(events.run(), name="test-events")
        events.set(WEB, topic="translation", problems=[PROBLEM])
        await settle()
        task.cancel()
    await settle()
    assert (sink.calls, len(sink.events)) == (["create", "create", "patch"], 1)


async def test_expired_event_is_created_again(recorder: EventRecorder, sink: RecordingSink) -> None:
    """Patching an Event the apiserver has expired (404) creates it again."""
    recorder.set(WEB, topic="translation", problems=[PROBLEM])
    await settle()
    sink.events.clear()
    recorder.set(WEB, topic="translation", problems=[])
    recorder.set(WEB, topic="translation", problems=[PROBLEM])
    await settle()
    assert sink.calls == ["create", "patch", "create"]
    assert [event["count"] for event in sink.events.values()] == [2]


async def test_failed_write_is_retried_with_backoff(
    recorder: EventRecorder, sink: RecordingSink, clock: FakeClock
) -> None:
    """With the API unreachable the Event is retried until it is written."""
    sink.failures = 2
    recorder.set(WEB, topic="translation", problems=[PROBLEM])
    await clock.advance(10.0)
    assert (sink.calls, len(sink.events)) == (["create", "create", "create"], 1)


async def test_problem_fixed_before_it_was_written_is_dropped(
    recorder: EventRecorder, sink: RecordingSink, clock: FakeClock
) -> None:
    """A queued problem that is gone by the time the API is back is not written."""
    sink.failures = 1
    recorder.set(WEB, topic="translation", problems=[PROBLEM])
    await settle()
    recorder.set(WEB, topic="translation", problems=[])
    await clock.advance(10.0)
    assert (sink.calls, sink.events) == (["create"], {})


async def test_rejected_service_gets_an_event_and_the_others_are_programmed(
    start_agent: StartAgent, sink: RecordingSink, clock: FakeClock
) -> None:
    """An out-of-range affinity timeout: Warning Event IpvsctlRejected on it, web still programmed."""
    agent = start_agent()
    bad = service(
        "sticky",
        cluster_ip="10.0.0.30",
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 0}},
    )
    list_everything(agent, services=[service("web", cluster_ip="10.0.0.10"), bad])
    await clock.advance(120.0)
    (event,) = sink.by_reason("IpvsctlRejected")
    assert event["involvedObject"]["name"] == "sticky"
    assert "timeoutSeconds" in event["message"]
    assert {vs.key.address for vs in agent.backend.table} == {"10.0.0.10"}  # type: ignore[attr-defined]


async def test_ignored_external_ip_gets_an_event(start_agent: StartAgent, sink: RecordingSink) -> None:
    """An externalIP outside --external-ip-cidr: programmed without it, and an IpvsctlExternalIPIgnored Event."""
    agent = start_agent()
    list_everything(agent, services=[service("web", cluster_ip="10.0.0.10", externalIPs=["198.51.100.7"])])
    await settle()
    (event,) = sink.by_reason("IpvsctlExternalIPIgnored")
    assert "198.51.100.7" in event["message"]


async def test_malformed_object_gets_an_event_and_is_treated_as_absent(
    start_agent: StartAgent, sink: RecordingSink
) -> None:
    """A Service whose port is not a number: IpvsctlInvalidObject Event; the valid one is programmed."""
    agent = start_agent()
    broken = service("broken", cluster_ip="10.0.0.40", ports=[{"port": "eighty"}])
    list_everything(agent, services=[broken, service("web", cluster_ip="10.0.0.10")])
    await settle()
    (event,) = sink.by_reason("IpvsctlInvalidObject")
    assert "spec.ports[0].port" in event["message"]
    assert {vs.key.address for vs in agent.backend.table} == {"10.0.0.10"}  # type: ignore[attr-defined]
