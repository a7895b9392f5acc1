"""One-shot commands: no garbage collection while they run (``one_shot``), and an event loop that gives back
what the coroutine returns without formatting it (``run_async``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ipvsctl.cli.common import run_async
from ipvsctl.cli.oneshot import one_shot
from ipvsctl.errors import UsageError


@pytest.fixture
def collecting() -> Iterator[None]:
    """The collector enabled, as in a fresh interpreter, and left as it was found."""
    enabled = gc.isenabled()
    gc.enable()
    yield
    if not enabled:
        gc.disable()


def test_a_one_shot_command_runs_without_collections(collecting: None) -> None:
    """Inside the command the collector is off; after it, on again."""
    seen: list[bool] = []

    @one_shot
    def command() -> int:
        seen.append(gc.isenabled())
        return 7

    assert command() == 7
    assert (seen, gc.isenabled()) == ([False], True)


def test_the_collector_comes_back_after_an_error(collecting: None) -> None:
    """A command that raises still leaves the collector on."""

    @one_shot
    def command() -> None:
        raise UsageError("refused", flag="--node")

    with pytest.raises(UsageError):
        command()
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    """one_shot restores the state it found: off stays off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        one_shot(lambda: None)()
        assert not gc.isenabled()
    finally:
        if enabled:
            gc.enable()


class Counted:
    """A value that counts how often its repr is built (a read table's repr took seconds in the lab)."""

    def __init__(self) -> None:
        self.formatted = 0

    def __repr__(self) -> str:
        self.formatted += 1
        return "Counted()"


def test_the_result_is_never_formatted() -> None:
    """asyncio.run builds the repr of its main task's result twice (CPython 112559); run_async never does."""
    value = Counted()

    async def produce() -> tuple[Counted, int]:
        return value, 1

    assert run_async(produce()) == (value, 1)
    assert value.formatted == 0


def test_an_error_reaches_the_caller() -> None:
    """An exception of the coroutine is raised by run_async itself."""

    async def refuse() -> None:
        raise UsageError("refused", flag="--node")

    with pytest.raises(UsageError, match="refused"):
        run_async(refuse())
