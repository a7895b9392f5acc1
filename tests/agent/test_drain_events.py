"""A drain cut short by --max-drain-seconds with connections left is a Warning Event on its Service."""

from __future__ import annotations

from ipvsctl.agent.node import NodeAgent
from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.model import RealServer
from tests.agent.conftest import StartAgent
from tests.agent.fakes import FakeClock, RecordingSink, list_everything, settle
from tests.agent.test_runner import WEB, WEB_KEY, web_slice

GONE = RealServer("10.1.0.2", 8080)
REASON = "IpvsctlDrainTimedOut"


async def draining(start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend) -> NodeAgent:
    """web's endpoint 10.1.0.2 removed with 3 connections: it drains (max 100 s)."""
    agent = start_agent(max_drain_seconds=100.0, resync_interval=1000.0)
    list_everything(agent, services=[WEB], slices=[web_slice("10.1.0.1", "10.1.0.2")])
    await settle()
    backend.set_connections(service=WEB_KEY, real=GONE.key, active=3)
    agent.handlers["EndpointSlice"].upsert(web_slice("10.1.0.1"))
    await clock.advance(2.0)
    return agent


async def test_a_drain_cut_by_the_limit_is_a_warning_on_the_service(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend, sink: RecordingSink
) -> None:
    """At the limit the server is deleted with 3 connections: one Warning Event on Service web saying so."""
    await draining(start_agent, clock, backend)
    await clock.advance(101.0)
    (event,) = sink.by_reason(REASON)
    assert (event["type"], event["involvedObject"]["kind"], event["involvedObject"]["name"]) == (
        "Warning",
        "Service",
        "web",
    )
    assert "10.1.0.2:8080" in str(event["message"])
    assert "3 connections left" in str(event["message"])


async def test_a_drain_whose_connections_ended_is_no_event(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend, sink: RecordingSink
) -> None:
    """Connections gone before the limit: the server is deleted quietly."""
    await draining(start_agent, clock, backend)
    backend.set_connections(service=WEB_KEY, real=GONE.key, active=0)
    await clock.advance(101.0)
    assert (WEB_KEY in backend.table.services, sink.by_reason(REASON)) == (True, [])
    assert GONE not in backend.table.services[WEB_KEY].reals


async def test_the_event_is_written_once_and_not_refreshed(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend, sink: RecordingSink
) -> None:
    """A one-off Event: written once, not refreshed by later resyncs."""
    agent = await draining(start_agent, clock, backend)
    await clock.advance(101.0)
    await clock.advance(3600.0)
    agent.recorder.refresh()
    await settle()
    (event,) = sink.by_reason(REASON)
    assert event["count"] == 1


async def test_a_failed_write_is_retried(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend, sink: RecordingSink
) -> None:
    """The API refuses the first write: the Event is written at the retry all the same."""
    await draining(start_agent, clock, backend)
    sink.failures = 1
    await clock.advance(101.0)
    await clock.advance(2.0)
    assert (sink.calls.count("create"), len(sink.by_reason(REASON))) == (2, 1)
