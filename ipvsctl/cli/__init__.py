"""The ``ipvsctl`` command line (typer): thin shells over the core and the backends."""

from ipvsctl.cli import agent, diff, explain, kernel
from ipvsctl.cli.app import app, main

__all__ = ["agent", "app", "diff", "explain", "kernel", "main"]
