"""What the runner asks the syncer instead of reaching through it: the Services known and the next drain expiry."""

from __future__ import annotations

from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.model import RealServer
from tests.agent.conftest import StartAgent
from tests.agent.fakes import FakeClock, list_everything, settle
from tests.agent.test_runner import API, WEB, WEB_KEY, web_slice


async def test_the_service_count_is_the_cluster_views(start_agent: StartAgent) -> None:
    """``service_count`` counts the Services the cache holds."""
    agent = start_agent()
    list_everything(agent, services=[WEB, API], slices=[web_slice("10.1.0.1")])
    await settle()

    assert agent.syncer.service_count == 2


async def test_no_drain_expires_while_nothing_drains(start_agent: StartAgent) -> None:
    """``drain_expiry`` is None when no real server drains."""
    agent = start_agent()
    list_everything(agent, services=[WEB], slices=[web_slice("10.1.0.1")])
    await settle()

    assert agent.syncer.drain_expiry() is None


async def test_a_drain_expires_its_maximum_time_after_it_started(
    start_agent: StartAgent, clock: FakeClock, backend: MemoryBackend
) -> None:
    """Once a sync sees a server at weight 0, ``drain_expiry`` is that moment plus ``--max-drain-seconds``."""
    agent = start_agent(max_drain_seconds=100.0, resync_interval=1000.0)
    list_everything(agent, services=[WEB], slices=[web_slice("10.1.0.1", "10.1.0.2")])
    await settle()
    backend.set_connections(service=WEB_KEY, real=RealServer("10.1.0.2", 8080).key, active=3)
    agent.handlers["EndpointSlice"].upsert(web_slice("10.1.0.1"))
    await clock.advance(1.0)
    await clock.advance(1.0)  # the follow-up sync sees weight 0 and starts the drain clock
    (started,) = agent.drains.started.values()

    assert agent.syncer.drain_expiry() == started + 100.0
