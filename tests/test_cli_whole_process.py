"""A one-shot command run as a whole ``ipvsctl`` process ends the moment it is done (``cli.oneshot``), with all
of its output out and its exit code; run in process it returns and raises as before."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from ipvsctl.cli import oneshot
from ipvsctl.cli.oneshot import one_shot, whole_process

ROOT = Path(__file__).resolve().parents[1]
DIFF = ["diff", "--manifests", "examples/cluster", "--node", "worker1", "--current-save", "examples/empty.save"]
# A process that is `ipvsctl` with one thing more: an exit handler that says when it runs.
WITH_EXIT_HANDLER = """
import atexit, sys
atexit.register(lambda: print("exit handlers ran", file=sys.stderr))
from ipvsctl.cli import main
sys.argv = ["ipvsctl", *sys.argv[1:]]
main()
"""


class ProcessEndedError(Exception):
    """What the stand-in for ``os._exit`` raises, with the code it was given."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@pytest.fixture
def ending(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """A whole process whose ``os._exit`` is a stand-in recording its code; in process again afterwards."""
    codes: list[int] = []

    def leave(code: int) -> None:
        codes.append(code)
        raise ProcessEndedError(code)

    monkeypatch.setattr(os, "_exit", leave)
    whole_process()
    yield codes
    oneshot._ending["at_once"] = False


def run_ipvsctl(*args: str, code: str = WITH_EXIT_HANDLER) -> subprocess.CompletedProcess[str]:
    """``ipvsctl ARGS`` as a process of its own, from the repository's root."""
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_a_whole_diff_process_ends_without_taking_itself_apart() -> None:
    """`ipvsctl diff` as a process: its exit code is diff's (1, changes pending), and exit handlers never run."""
    done = run_ipvsctl(*DIFF)
    assert (done.returncode, "exit handlers ran" in done.stderr) == (1, False)


def test_all_of_a_whole_process_output_reaches_a_pipe() -> None:
    """Ending at once loses no output: the pipe gets what the same diff prints in process, line for line."""
    in_process = run_ipvsctl(*DIFF, code=WITH_EXIT_HANDLER.replace("main()", "from ipvsctl.cli import app; app()"))
    whole = run_ipvsctl(*DIFF)
    assert "exit handlers ran" in in_process.stderr  # the comparison is with a process that did take itself apart
    assert whole.stdout.splitlines() == in_process.stdout.splitlines() != []


def test_a_command_that_exits_with_a_code_ends_the_process_with_it(ending: list[int]) -> None:
    """typer.Exit(1) from a one-shot command in a whole process: the process ends with 1."""

    @one_shot
    def command() -> None:
        raise typer.Exit(1)

    with pytest.raises(ProcessEndedError):
        command()
    assert ending == [1]


def test_a_command_that_returns_ends_the_process_with_0(ending: list[int]) -> None:
    """A one-shot command that returns, in a whole process: the process ends with 0."""
    with pytest.raises(ProcessEndedError):
        one_shot(lambda: "done")()
    assert ending == [0]


def test_an_error_that_is_not_an_exit_is_left_to_the_group(ending: list[int]) -> None:
    """Any other exception goes on up (the command group reports it), and the process is not ended here."""

    @one_shot
    def command() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        command()
    assert ending == []


def test_in_process_a_command_returns_as_before() -> None:
    """Without ``whole_process`` (tests, CliRunner) a one-shot command returns its value."""
    assert one_shot(lambda: 7)() == 7
