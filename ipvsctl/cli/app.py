"""The typer application, its root options and the exit codes every command shares.

Exit codes: 0 success (``diff``: in sync), 1 changes pending (``diff`` only), 2 any error. An exception
that is not one of ours (a bug) also exits 2, never 1, which a CI gate would read as "changes pending":
one ``error: unexpected ...`` line on stderr, or the traceback with ``ipvsctl --debug`` (also exit 2). Click's
own usage errors keep their message and exit 2; a reader that goes away early (`| head`) ends the command
quietly with exit 2. Every line printed for a person passes through
``printable``, so a name with a newline or an escape sequence cannot forge output.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated, Any, NoReturn

import typer
from typer._click import Context  # the Context TyperGroup.invoke takes; typer vendors click privately
from typer._click.core import Command
from typer.core import TyperGroup

from ipvsctl import __version__
from ipvsctl.cli.coercion import use_fast_coercion
from ipvsctl.cli.oneshot import whole_process
from ipvsctl.errors import IpvsctlError
from ipvsctl.printable import printable

__all__ = ["EXIT_CHANGES", "EXIT_ERROR", "EXIT_IN_SYNC", "GuardedGroup", "app", "fail", "main"]

EXIT_IN_SYNC, EXIT_CHANGES, EXIT_ERROR = 0, 1, 2


class GuardedGroup(TyperGroup):
    """The root command group: an exception that is not ours ends the command with one line and exit 2."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        """The root options, converted without pydantic (``cli.coercion``)."""
        use_fast_coercion(self, ctx=ctx)
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: Context, args: list[str]) -> tuple[str | None, Command | None, list[str]]:
        """The command named, its plain options converted without pydantic (``cli.coercion``)."""
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            use_fast_coercion(command, ctx=ctx)
        return name, command, rest

    def invoke(self, ctx: Context) -> Any:
        """Run the root callback and the command; report an unexpected exception unless ``--debug``."""
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # exits, Ctrl-C, usage errors: click's to report
            raise
        except BrokenPipeError:
            # The reader went away (`ipvsctl diff | head`): nothing is left to say to it. stdout now points at
            # /dev/null, so the interpreter's last flush cannot fail again; exit 2, as the output is incomplete.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(EXIT_ERROR) from None
        except Exception as error:
            if ctx.params.get("debug"):
                for line in "".join(traceback.format_exception(error)).splitlines():
                    typer.echo(printable(line), err=True)
            else:
                typer.echo(printable(f"error: unexpected {_describe(error)} (--debug shows the traceback)"), err=True)
            raise typer.Exit(EXIT_ERROR) from error


def _describe(error: Exception) -> str:
    """``TypeName: message``, or the repr when the message is empty."""
    try:
        text = str(error)
        return f"{type(error).__name__}: {text}" if text else repr(error)
    except Exception:  # its message cannot be built (an int past 4300 digits): the type must still be shown
        return f"{type(error).__name__} (its message cannot be printed)"


app = typer.Typer(
    name="ipvsctl",
    help="IPVS load-balancer node agent for Kubernetes, and the tools to inspect it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: rendering it with rich costs --help 50 ms of imports
    cls=GuardedGroup,
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
    debug: Annotated[
        bool,
        typer.Option("--debug", help="On an unexpected error (a bug), print the traceback instead of one line."),
    ] = False,
) -> None:
    """IPVS load-balancer node agent for Kubernetes."""


def fail(error: IpvsctlError) -> NoReturn:
    """Print an error and exit 2."""
    typer.echo(printable(f"error: {error}"), err=True)
    raise typer.Exit(EXIT_ERROR)


def main() -> None:
    """Console-script entry point: this process is the one command (``cli.oneshot``)."""
    whole_process()
    app()
