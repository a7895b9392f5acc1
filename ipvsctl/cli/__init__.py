"""The ``ipvsctl`` command line (typer): thin shells over the core and the backends."""

# Each module registers its command on import; the import order is the order of `ipvsctl --help`.
from ipvsctl.cli import apply, show, affinity, cleanup  # noqa: I001
from ipvsctl.cli import agent, diff, explain
from ipvsctl.cli.app import app, main

__all__ = ["affinity", "agent", "app", "apply", "cleanup", "diff", "explain", "main", "show"]
