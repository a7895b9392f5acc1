"""The typer application, its root options and the exit codes every command shares."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer

from ipvsctl import __version__
from ipvsctl.errors import IpvsctlError

__all__ = ["EXIT_CHANGES", "EXIT_ERROR", "EXIT_IN_SYNC", "app", "fail", "main"]

EXIT_IN_SYNC, EXIT_CHANGES, EXIT_ERROR = 0, 1, 2

app = typer.Typer(
    name="ipvsctl",
    help="IPVS load-balancer node agent for Kubernetes, and the tools to inspect it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ipvsctl {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """IPVS load-balancer node agent for Kubernetes."""


def fail(error: IpvsctlError) -> NoReturn:
    """Print an error and exit 2."""
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(EXIT_ERROR)


def main() -> None:
    """Console-script entry point."""
    app()
