"""``ipvsctl show --stats``: the table, and two stats dumps some seconds apart (rates between them)."""

from __future__ import annotations

import asyncio
import math

from ipvsctl.backend.base import KernelState
from ipvsctl.cli.backends import open_backend
from ipvsctl.errors import UsageError
from ipvsctl.show import TrafficReads

__all__ = ["MAX_STATS_INTERVAL", "read_with_traffic", "stats_seconds"]

MAX_STATS_INTERVAL = 60.0  # a longer wait is a mistake, not a measurement


def stats_seconds(value: float) -> float:
    """``--stats-interval`` checked: more than 0, at most a minute."""
    if not math.isfinite(value) or not 0 < value <= MAX_STATS_INTERVAL:
        raise UsageError(
            f"{value} must be a number of seconds above 0 and at most {MAX_STATS_INTERVAL:g}", flag="--stats-interval"
        )
    return value


async def read_with_traffic(*, interface: str, interval: float | None) -> tuple[KernelState, TrafficReads | None]:
    """The table; with an ``interval``, also two stats dumps that far apart (the elapsed time measured)."""
    async with open_backend(interface=interface) as backend:
        state = await backend.read()
        if interval is None:
            return state, None
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = await backend.traffic()
        await asyncio.sleep(interval)
        second = await backend.traffic()
        return state, TrafficReads(first, second, seconds=round(loop.time() - started, 3))
