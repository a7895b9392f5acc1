"""Relists after 410 Gone wait a jittered, growing delay, so a fleet of agents does not relist in lockstep."""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
from collections.abc import AsyncIterator, Iterator

import pytest
from kubernetes_asyncio.client.api_client import ApiClient

from ipvsctl.agent.watch import RELIST_RESET_AFTER, Watcher, relist_backoff
from ipvsctl.kube.client import SERVICES, GoneError, Resource
from tests.agent.fakes import FakeClock, make_agent

SEED = 7
GONE = GoneError("HTTP 410: too old resource version", status=410, resource="services.v1")


def seeded() -> Iterator[float]:
    """The relist delays of one agent, seeded."""
    return relist_backoff(rng=random.Random(SEED))


@pytest.fixture
async def watcher(clock: FakeClock) -> AsyncIterator[Watcher]:
    """Return a Services watcher on a fake clock with seeded relist delays (its client never connects)."""
    agent = make_agent(clock)

    async def services() -> Resource:
        return SERVICES

    async with ApiClient() as api:
        yield Watcher(
            name="services",
            api=api,
            resource=services,
            handler=agent.handlers["Service"],
            clock=clock,
            metrics=agent.metrics,
            on_connection=lambda _name, _up: None,
            relist_delays=seeded,
        )


def test_relist_delays_double_to_a_cap_each_drawn_from_zero_to_twice() -> None:
    """Delay n lies in [0, 2 x min(2**n, 30)] seconds."""
    delays = list(itertools.islice(seeded(), 10))
    bases = [min(2.0**n, 30.0) for n in range(10)]
    assert all(0.0 <= delay <= 2 * base for delay, base in zip(delays, bases, strict=True))


def test_a_fleet_spreads_its_first_relist_over_two_seconds() -> None:
    """100 agents (each its own random source) draw first relist delays spread over [0, 2] s, not one moment."""
    firsts = [next(relist_backoff(rng=random.Random(agent))) for agent in range(100)]
    assert (min(firsts) < 0.2, max(firsts) > 1.8, len(set(firsts))) == (True, True, 100)
    assert statistics.pstdev(firsts) > 0.4  # uniform over [0, 2]: 0.58


async def sleeps_exactly(clock: FakeClock, pause: asyncio.Task[None], delay: float) -> bool:
    """Whether ``pause`` is still waiting 1 ms before ``delay`` and done 1 ms after it."""
    await clock.advance(delay - 0.001)
    waiting = not pause.done()
    await clock.advance(0.002)
    return waiting and pause.done()


async def test_watcher_sleeps_the_next_relist_delay_after_each_410(watcher: Watcher, clock: FakeClock) -> None:
    """Three 410s in a row: the watcher sleeps the seeded delays one after the other before relisting."""
    expected = list(itertools.islice(seeded(), 3))
    slept = []
    for delay in expected:
        pause = asyncio.create_task(watcher.pause_before_relist(GONE))
        slept.append(await sleeps_exactly(clock, pause, delay))
    assert slept == [True, True, True]


async def test_relist_delays_start_over_after_a_calm_spell(watcher: Watcher, clock: FakeClock) -> None:
    """A 410 after RELIST_RESET_AFTER seconds without one waits the first delay again, not the next."""
    first, _second = itertools.islice(seeded(), 2)
    pause = asyncio.create_task(watcher.pause_before_relist(GONE))
    await clock.advance(first)
    await clock.advance(RELIST_RESET_AFTER)
    pause = asyncio.create_task(watcher.pause_before_relist(GONE))
    assert await sleeps_exactly(clock, pause, first)
