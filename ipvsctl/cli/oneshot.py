"""How the one-shot commands (``diff``, ``apply``) run: without cyclic garbage collection, and, as a whole
process, ending the moment they are done.

Each builds a few hundred thousand objects (the desired table, the kernel's, the plan), all of which live
until it ends, and makes no garbage cycles worth finding: each collection walked them all for nothing (1.6 s
of a 19 s ``diff`` of 10,000 Services in the lab).

Once such a command has printed everything, what is left of the process is taking those objects apart, one
by one as its frames unwind, then the interpreter's finalisation: work for nobody, since the kernel takes
the whole memory back at once (an offline ``diff`` of 10,000 Services on the host: 0.14 s of 1.8 s after
its last line). So when ``ipvsctl`` runs as a process (``whole_process``, called by the console-script entry
point only), a one-shot command that is done flushes stdout and stderr and leaves with ``os._exit`` and its
exit code. A flush that fails (the reader went away) is left to raise as it would have, so the command
group's message and exit code stay as they were. In process (tests, ``CliRunner``) nothing changes.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

__all__ = ["one_shot", "whole_process"]

_T = TypeVar("_T")
_P = ParamSpec("_P")

_ending = {"at_once": False}  # set once, by the entry point of a process that is ipvsctl alone


def whole_process() -> None:
    """This process is one ``ipvsctl`` command: a one-shot command may end it as soon as it is done."""
    _ending["at_once"] = True


def one_shot(command: Callable[_P, _T]) -> Callable[_P, _T]:
    """``command`` runs without cyclic garbage collection (the collector's state is restored afterwards) and,
    in a whole process, ends it when done (see the module docstring)."""

    @functools.wraps(command)
    def without_collections(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        enabled = gc.isenabled()
        gc.disable()
        try:
            result = command(*args, **kwargs)
        except typer.Exit as done:
            _end(done.exit_code)
            raise
        finally:
            if enabled:
                gc.enable()
        _end(0)
        return result

    return without_collections


def _end(code: int) -> None:
    """Leave the process now with ``code``, if it is a whole ``ipvsctl`` process and its output is out."""
    if not _ending["at_once"]:
        return
    sys.stdout.flush()  # an OSError (a reader gone) raises from here, to be handled as before
    sys.stderr.flush()
    os._exit(code)
