"""Time for the agent: one clock every timer goes through (tests replace it), wakeable waits, backoff delays."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "MonotonicClock", "backoff", "wait_for_event"]


class Clock(Protocol):
    """Monotonic seconds, wall time for API timestamps, and sleeping."""

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def wall(self) -> datetime:
        """Wall-clock time (UTC), for Event timestamps."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` (at least one loop iteration, even for 0)."""
        ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> float:
        """Monotonic seconds."""
        return time.monotonic()

    def wall(self) -> datetime:
        """Wall-clock time (UTC)."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """asyncio.sleep."""
        await asyncio.sleep(max(seconds, 0.0))


async def wait_for_event(event: asyncio.Event, *, within: float, clock: Clock) -> bool:
    """Wait until ``event`` is set or ``within`` seconds pass on ``clock``; True when the event was set."""
    if event.is_set():
        return True
    if within <= 0:
        return False
    waiter = asyncio.ensure_future(event.wait())
    sleeper = asyncio.ensure_future(clock.sleep(within))
    try:
        await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waiter, sleeper):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return event.is_set()


def backoff(
    *, first: float = 0.2, factor: float = 2.0, cap: float = 10.0, jitter: float = 0.2, rng: random.Random | None = None
) -> Iterator[float]:
    """Delays between retries: ``first``, growing by ``factor`` up to ``cap``, each spread by ±``jitter``.

    Jitter keeps a fleet of agents from reconnecting to a restarted apiserver in lockstep.
    """
    draw = (rng or random.Random()).uniform  # noqa: S311 (spreading retries, not cryptography)
    delay = first
    while True:
        yield delay * (1.0 + draw(-jitter, jitter))
        delay = min(delay * factor, cap)
