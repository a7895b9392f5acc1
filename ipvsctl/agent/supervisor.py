"""Named, supervised asyncio tasks: every task the agent starts is here, none is ever left unobserved.

The agent's tasks run for ever. If one ends or fails, that is a bug or an unrecoverable state:
the failure is logged with the task's name and every other task is cancelled, so the process
exits (the kubelet restarts it) — with the kernel table left as it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

from ipvsctl.errors import IpvsctlError

__all__ = ["Supervisor", "TaskFailedError"]


class TaskFailedError(IpvsctlError):
    """A supervised task ended or raised."""

    def __init__(self, name: str, cause: BaseException | None) -> None:
        self.name = name
        super().__init__(f"task {name} {'ended' if cause is None else f'failed: {cause!r}'}")


class Supervisor:
    """Starts named tasks and waits until stop is asked or one of them ends."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._log = structlog.get_logger("ipvsctl.agent.supervisor")

    @property
    def names(self) -> list[str]:
        """Names of the tasks started (in order)."""
        return list(self._tasks)

    def spawn(self, name: str, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Start a task under ``name`` (unique)."""
        if name in self._tasks:
            coroutine.close()
            raise ValueError(f"a task named {name!r} exists")
        task = asyncio.create_task(coroutine, name=name)
        self._tasks[name] = task
        return task

    async def run_until(self, stop: asyncio.Event) -> None:
        """Wait until ``stop`` is set (then cancel every task) or a task ends (TaskFailedError)."""
        stopper = asyncio.create_task(stop.wait(), name="supervisor-stop")
        try:
            done, _ = await asyncio.wait({stopper, *self._tasks.values()}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        ended = [task for task in done if task is not stopper]
        await self.cancel_all()
        if ended:
            task = ended[0]
            cause = None if task.cancelled() else task.exception()
            if cause is None:
                self._log.error("task_ended", task=task.get_name())
            raise TaskFailedError(task.get_name(), cause)

    async def cancel_all(self) -> None:
        """Cancel every task and wait for them to finish; a failure among them is logged, not lost."""
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            try:
                await task
            except asyncio.CancelledError:
                continue
            except Exception as error:  # logged with the task's name; run_until raises the first
                self._log.error("task_failed", task=task.get_name(), error=repr(error))
