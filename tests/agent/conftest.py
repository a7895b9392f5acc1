"""Fixtures of the agent's host tests: a fake clock, a recording Event sink, and running agents."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ipvsctl.agent.node import NodeAgent
from ipvsctl.backend.memory import MemoryBackend
from tests.agent.fakes import FakeClock, RecordingSink, make_agent, settle


@pytest.fixture
def clock() -> FakeClock:
    """Return a clock only the test moves."""
    return FakeClock()


@pytest.fixture
def sink() -> RecordingSink:
    """Return an Event sink that keeps Events."""
    return RecordingSink()


@pytest.fixture
def backend() -> MemoryBackend:
    """Return an empty in-memory IPVS table."""
    return MemoryBackend()


StartAgent = Callable[..., NodeAgent]


@pytest.fixture
async def start_agent(clock: FakeClock, sink: RecordingSink, backend: MemoryBackend) -> AsyncIterator[StartAgent]:
    """Return a factory of agents whose sync loop and Event writer run (without watchers); stop them after."""
    tasks: list[asyncio.Task[None]] = []
    agents: list[NodeAgent] = []

    def start(*, table: MemoryBackend | None = None, **changes: Any) -> NodeAgent:
        agent = make_agent(clock, backend=table or backend, sink=sink, **changes)
        tasks.append(asyncio.create_task(agent.runner.run(), name="test-sync"))
        tasks.append(asyncio.create_task(agent.recorder.run(), name="test-events"))
        agents.append(agent)
        for name in ("services", "endpointslices", "node"):
            agent.status.connected[name] = True
        return agent

    yield start
    for task in tasks:
        task.cancel()
    await settle()
    for agent in agents:
        await agent.health_checks.close()
