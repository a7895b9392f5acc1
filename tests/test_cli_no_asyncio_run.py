"""Every command's kernel work goes through ``cli.common.run_async``: ``asyncio.run`` (Python 3.11) formats its
main task's result twice as it puts its SIGINT handler back (CPython issue 112559), and ``show``, ``affinity``,
``cleanup`` and ``explain`` return read tables, whose repr took seconds at 10,000 Services in the lab."""

from __future__ import annotations

import ast
from pathlib import Path

import ipvsctl.cli

CLI = Path(ipvsctl.cli.__file__).parent
# run_async itself, and the agent, whose coroutine returns None (nothing to format).
ALLOWED = {("common.py", "run_async"), ("agent.py", "agent")}


def asyncio_runs() -> set[tuple[str, str]]:
    """(module, function) of each ``asyncio.run(...)`` call in the command modules."""
    found: set[tuple[str, str]] = set()
    for path in sorted(CLI.glob("*.py")):
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "run"
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "asyncio"
                ):
                    found.add((path.name, function.name))
    return found


def test_only_run_async_and_the_agent_call_asyncio_run() -> None:
    """No command calls asyncio.run with a result to give back: run_async does it for them."""
    assert asyncio_runs() <= ALLOWED


def test_the_check_finds_run_async_itself() -> None:
    """The walk does find asyncio.run calls (it sees run_async's own)."""
    assert ("common.py", "run_async") in asyncio_runs()
