"""The commands' event loop: ``run_async`` gives back what the coroutine returns, and never formats it."""

from __future__ import annotations

import pytest

from ipvsctl.cli.common import run_async
from ipvsctl.errors import UsageError


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
