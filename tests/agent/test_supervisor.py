"""Supervised tasks: named, and one that dies stops the others with an error naming it."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from ipvsctl.agent.supervisor import Supervisor, TaskFailedError


async def forever() -> None:
    await asyncio.Event().wait()


async def test_stop_cancels_every_task_quietly() -> None:
    """Setting stop ends run_until without error and cancels the named tasks."""
    supervisor = Supervisor()
    tasks = [supervisor.spawn("watch-services", forever()), supervisor.spawn("sync", forever())]
    stop = asyncio.Event()
    stop.set()
    await supervisor.run_until(stop)
    assert [(task.get_name(), task.cancelled()) for task in tasks] == [("watch-services", True), ("sync", True)]


async def test_failing_task_stops_the_others_and_is_named() -> None:
    """A task that raises: the others are cancelled, TaskFailedError names it, and the failure is logged."""

    async def broken() -> None:
        raise RuntimeError("boom")

    supervisor = Supervisor()
    other = supervisor.spawn("sync", forever())
    supervisor.spawn("events", broken())
    with capture_logs() as logs, pytest.raises(TaskFailedError) as raised:
        await supervisor.run_until(asyncio.Event())
    assert (raised.value.name, other.cancelled()) == ("events", True)
    assert [(entry["event"], entry["task"]) for entry in logs] == [("task_failed", "events")]


async def test_names_are_unique() -> None:
    """Two tasks may not share a name."""
    supervisor = Supervisor()
    supervisor.spawn("sync", forever())
    with pytest.raises(ValueError, match="sync"):
        supervisor.spawn("sync", forever())
    await supervisor.cancel_all()
