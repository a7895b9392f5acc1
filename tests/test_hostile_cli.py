"""The command line under hostile input: one escaped error line and exit 2, never a traceback or exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from ipvsctl.cli import app
from ipvsctl.cli.app import EXIT_ERROR, GuardedGroup

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "cluster"


def guarded_app(error: Exception) -> typer.Typer:
    """An app with ipvsctl's root group, --debug option and one command ``crash`` that raises ``error``."""
    crashing = typer.Typer(cls=GuardedGroup, pretty_exceptions_enable=False)

    @crashing.callback()
    def _root(debug: bool = typer.Option(False, "--debug")) -> None:
        """Root."""

    @crashing.command()
    def crash() -> None:
        """Raise the error."""
        raise error

    return crashing


def test_the_ipvsctl_app_uses_the_guarded_group() -> None:
    """Every ipvsctl command runs inside GuardedGroup, so the behaviours below are the real app's."""
    assert isinstance(get_command(app), GuardedGroup)


def test_unexpected_error_is_one_line_and_exit_2() -> None:
    """An exception that is not ours exits 2 (never 1) with one line naming its type and message."""
    result = runner.invoke(guarded_app(KeyError("spec")), ["crash"])
    assert (result.exit_code, result.stdout) == (EXIT_ERROR, "")
    assert result.stderr == "error: unexpected KeyError: 'spec' (--debug shows the traceback)\n"


def test_unexpected_error_line_is_escaped() -> None:
    """The message of an unexpected error cannot print a second line or an escape sequence."""
    result = runner.invoke(guarded_app(ValueError("bad\n  + add    service tcp/192.0.2.1:80\x1b[2J")), ["crash"])
    assert result.stderr.splitlines() == [
        "error: unexpected ValueError: bad\\n  + add    service tcp/192.0.2.1:80\\x1b[2J (--debug shows the traceback)"
    ]


def test_unexpected_error_without_message_shows_its_repr() -> None:
    """An exception with an empty message is shown by its repr."""
    result = runner.invoke(guarded_app(RuntimeError()), ["crash"])
    assert result.stderr == "error: unexpected RuntimeError() (--debug shows the traceback)\n"


def test_unexpected_error_whose_message_cannot_be_built_is_still_one_line() -> None:
    """An exception whose str() itself raises (it holds an int past 4300 digits) is named by its type."""
    result = runner.invoke(guarded_app(ValueError(10**5000)), ["crash"])
    assert (
        result.stderr == "error: unexpected ValueError (its message cannot be printed) (--debug shows the traceback)\n"
    )


def test_debug_prints_the_traceback_and_still_exits_2() -> None:
    """With --debug the whole traceback is printed, ending with the error, and the exit code is still 2."""
    result = runner.invoke(guarded_app(ValueError("boom")), ["--debug", "crash"])
    lines = result.stderr.splitlines()
    assert (result.exit_code, lines[0], lines[-1]) == (
        EXIT_ERROR,
        "Traceback (most recent call last):",
        "ValueError: boom",
    )
    assert any("raise error" in line for line in lines)


def test_exit_codes_of_commands_pass_through() -> None:
    """typer.Exit from a command (diff's 1 for changes pending) is not an unexpected error."""
    result = runner.invoke(guarded_app(typer.Exit(1)), ["crash"])
    assert (result.exit_code, result.stderr) == (1, "")


def test_usage_errors_stay_clicks() -> None:
    """A bad option is still click's usage error, exit 2, not an unexpected error."""
    result = runner.invoke(app, ["diff", "--bogus"])
    assert result.exit_code == 2
    assert "No such option" in result.stderr
    assert "unexpected" not in result.stderr


def test_debug_is_a_root_option_of_ipvsctl() -> None:
    """``ipvsctl --debug COMMAND`` is accepted."""
    result = runner.invoke(app, ["--debug", "diff", "--help"])
    assert result.exit_code == 0


def test_our_error_line_is_escaped(tmp_path: Path) -> None:
    """An error quoting a file name with a newline and an escape sequence prints one escaped line."""
    missing = tmp_path / "web\n+ add    service tcp/192.0.2.1:80\x1b[2J.yaml"
    result = runner.invoke(app, ["diff", "--manifests", str(missing), "--node", "worker1"])
    assert result.exit_code == EXIT_ERROR
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ")
    assert "web\\n+ add    service tcp/192.0.2.1:80\\x1b[2J.yaml" in line
    assert "\x1b" not in line


@pytest.mark.parametrize("data", [b"-A -t 192.0.2.10:80 -s rr # caf\xe9\n", b"\xff\xfe"], ids=["latin-1", "utf-16-bom"])
def test_non_utf8_save_file_is_one_error_line(tmp_path: Path, data: bytes) -> None:
    """diff --current-save with a file that is not UTF-8: one error line naming the file and line, exit 2."""
    save = tmp_path / "node.save"
    save.write_bytes(data)
    examples = Path(__file__).resolve().parent.parent / "examples" / "cluster"
    result = runner.invoke(
        app, ["diff", "--manifests", str(examples), "--node", "worker1", "--current-save", str(save)]
    )
    assert result.exit_code == EXIT_ERROR
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {save}:1: not UTF-8 text (byte 0x")


def test_non_utf8_save_on_stdin_is_one_error_line() -> None:
    """diff --current-save - with bytes that are not UTF-8 on stdin: one error line naming stdin, exit 2."""
    args = ["diff", "--manifests", str(EXAMPLES), "--node", "worker1", "--current-save", "-"]
    result = runner.invoke(app, args, input=b"-A -t 192.0.2.10:80 -s rr\n\xff\n")
    assert result.exit_code == EXIT_ERROR
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: <stdin>:2: not UTF-8 text (byte 0xff at column 1)")


def test_non_utf8_connection_table_is_one_error_line(tmp_path: Path) -> None:
    """affinity --conn-file with bytes that are not UTF-8: one error line naming the file and line, exit 2."""
    conn = tmp_path / "ip_vs_conn"
    conn.write_bytes(b"Pro FromIP FPrt ToIP TPrt DestIP DPrt State Expires PEName PEData\n\xff\n")
    result = runner.invoke(app, ["affinity", "--conn-file", str(conn)])
    assert result.exit_code == EXIT_ERROR
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {conn}:2: not UTF-8 text (byte 0xff at column 1)")


def test_a_reader_that_goes_away_ends_the_command_quietly_with_exit_2() -> None:
    """`ipvsctl diff | head` with head gone: no traceback, no error line, exit 2 (the output is incomplete)."""
    root = Path(__file__).resolve().parents[1]
    ipvsctl = str(Path(sys.prefix) / "bin" / "ipvsctl")
    command = [ipvsctl, "diff", "--manifests", "examples/cluster", "--node", "worker1",
               "--current-save", "examples/empty.save"]  # fmt: skip
    with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None
        process.stdout.close()  # before the command writes its first line
        _, stderr = process.communicate(timeout=60)
    assert (process.returncode, stderr.decode()) == (EXIT_ERROR, "")
