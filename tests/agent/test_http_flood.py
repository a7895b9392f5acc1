"""Issue 12: a slowloris flood on /healthz and a healthCheckNodePort, with the agent's default limits."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ipvsctl.agent.httpserver import ACCEPT_BATCH, DEFAULT_LIMITS
from tests.agent.conftest import StartAgent
from tests.agent.rawhttp import open_descriptors, send
from tests.agent.test_serving import local_lb_listeners

REPO_ROOT = Path(__file__).resolve().parents[2]
HOLD = 1000  # half-open connections held, over both ports
CHURN = 3000  # more opened while the probes run, each replacing the flood's oldest
CHURN_RATE = 1000  # per second: a flood, paced so that a loaded CI machine measures eviction, not its CPU
PROBE_INTERVAL = 0.05  # seconds between two rounds of probes (the kubelet's are 10 s apart)
PROBE_DEADLINE = 1.0  # seconds a real probe may take under the flood
FLOOD_DEADLINE = 60.0  # the whole flood, whatever happens


@dataclass(frozen=True, slots=True)
class Target:
    """The two ports under attack."""

    healthz: int
    health_check: int


@pytest.fixture
async def target(start_agent: StartAgent) -> AsyncIterator[Target]:
    """An agent serving /healthz and one healthCheckNodePort (a Service with a local endpoint)."""
    async with local_lb_listeners(start_agent()) as ports:
        yield Target(ports["healthz"], ports["health-check"])


async def probe(port: int, path: str) -> tuple[int, float]:
    """A probe as the kubelet or a load balancer sends it (all at once): its status and how long it took."""
    started = time.monotonic()
    reply = await send(port, f"GET {path} HTTP/1.1\r\nHost: 192.0.2.1\r\n\r\n".encode(), within=PROBE_DEADLINE)
    return reply.status, time.monotonic() - started


@pytest.fixture
async def flood(target: Target) -> AsyncIterator[asyncio.subprocess.Process]:
    """The flood process, started against both ports; closed (and waited for) after the test."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.agent.httpflood",
        f"--hold={HOLD}",
        f"--churn={CHURN}",
        f"--rate={CHURN_RATE}",
        str(target.healthz),
        str(target.health_check),
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    yield process
    assert process.stdin is not None
    process.stdin.close()
    try:
        async with asyncio.timeout(10):
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def line(process: asyncio.subprocess.Process) -> str:
    """The next line the flood prints."""
    assert process.stdout is not None
    return (await process.stdout.readline()).decode()


async def test_probes_answer_while_a_flood_holds_and_renews_half_open_connections(
    target: Target, flood: asyncio.subprocess.Process
) -> None:
    """Under 1,000 held and 3,000 renewed half-open requests, every probe of both ports answers within 1 s."""
    async with asyncio.timeout(FLOOD_DEADLINE):
        assert (await line(flood)).startswith("held")
        churned = asyncio.ensure_future(line(flood))
        answers: list[tuple[int, float]] = []
        while not churned.done() or not answers:
            answers.append(await probe(target.healthz, "/healthz"))
            answers.append(await probe(target.health_check, "/"))
            await asyncio.sleep(PROBE_INTERVAL)
        await churned
    assert {status for status, _ in answers} == {200}
    assert max(seconds for _, seconds in answers) < PROBE_DEADLINE


async def test_descriptors_stay_bounded_under_a_flood(target: Target, flood: asyncio.subprocess.Process) -> None:
    """While the flood holds and renews, the agent keeps at most max_connections sockets per listener."""
    before = open_descriptors()
    samples: list[int] = []
    async with asyncio.timeout(FLOOD_DEADLINE):
        assert (await line(flood)).startswith("held")
        churned = asyncio.ensure_future(line(flood))
        while not churned.done():
            samples.append(open_descriptors())
            await asyncio.sleep(PROBE_INTERVAL)
        await churned
    listeners = 2
    # Slack: sockets accepted but not yet handed to their connection (a few accept batches).
    assert max(samples) - before <= listeners * (DEFAULT_LIMITS.max_connections + 8 * ACCEPT_BATCH)
