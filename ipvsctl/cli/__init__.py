"""The ``ipvsctl`` command line (typer): thin shells over the core and the backends."""

import gc

# No cyclic garbage collection while the commands' modules load: importing them makes no cycles worth finding,
# and the collections that walked the new modules and classes were a fifth of the import (host: 108 -> 86 ms;
# ~0.25 s of every command in the kernel lab). The collector's state is put back once they are loaded.
_COLLECTING = gc.isenabled()
gc.disable()

# Each module registers its command on import; the import order is the order of `ipvsctl --help`.
from ipvsctl.cli import apply, show, affinity, cleanup  # noqa: E402, I001 (after the collector is off)
from ipvsctl.cli import agent, diff, explain  # noqa: E402 (after the collector is off)
from ipvsctl.cli.app import app, main  # noqa: E402 (after the collector is off)

if _COLLECTING:
    gc.enable()

__all__ = ["affinity", "agent", "app", "apply", "cleanup", "diff", "explain", "main", "show"]
