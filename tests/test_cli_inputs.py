"""The commands' inputs: regular files or ``-`` (once), each under --max-input-size, refused before any is read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ipvsctl.cli import app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CLUSTER = str(EXAMPLES / "cluster")
EMPTY = str(EXAMPLES / "empty.save")
runner = CliRunner()


def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    """Run ipvsctl; its exit code and stderr."""
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.stderr


def test_stdin_for_both_manifests_and_save_is_refused() -> None:
    """``-f - --current-save -`` exits 2 naming both flags (the save used to be read as an empty table)."""
    code, err = run("diff", "-f", "-", "--node", "worker1", "--current-save", "-", stdin="")
    assert code == 2
    assert "stdin (-) can be read only once, but --manifests and --current-save both name it" in err


def test_fifo_as_save_is_refused_before_the_manifests_are_read(tmp_path: Path) -> None:
    """A FIFO as --current-save exits 2 at once, before a broken manifest is even read."""
    fifo = tmp_path / "current.save"
    os.mkfifo(fifo)
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [\n")
    code, err = run("diff", "-f", str(broken), "--node", "worker1", "--current-save", str(fifo))
    assert (code, err) == (
        2,
        f"error: --current-save: cannot read {fifo}: is a FIFO: only regular files and - (stdin) are read\n",
    )


def test_directory_as_save_is_refused(tmp_path: Path) -> None:
    """A directory is not a save file."""
    code, err = run("diff", "-f", CLUSTER, "--node", "worker1", "--current-save", str(tmp_path))
    assert (code, "is a directory" in err) == (2, True)


def test_device_as_connection_table_is_refused() -> None:
    """``affinity --conn-file /dev/zero`` exits 2 naming the device, instead of reading for ever."""
    code, err = run("affinity", "--conn-file", "/dev/zero")
    assert (code, err) == (
        2,
        "error: --conn-file: cannot read /dev/zero: is a character device: only regular files and - (stdin) are read\n",
    )


def test_manifest_over_the_cap_is_refused_naming_the_limit(tmp_path: Path) -> None:
    """A manifest larger than --max-input-size exits 2 naming the file and the limit."""
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 200)
    code, err = run("diff", "-f", str(big), "--node", "worker1", "--current-save", EMPTY, "--max-input-size", "1K")
    assert code == 2
    assert f"{big}: is 2000 bytes, more than the limit of 1024 bytes (raise it with --max-input-size)" in err


def test_save_over_the_cap_on_stdin_is_refused() -> None:
    """A save on stdin longer than --max-input-size exits 2 once the cap is passed."""
    code, err = run(
        "diff", "-f", CLUSTER, "--node", "worker1", "--current-save", "-", "--max-input-size", "8K", stdin="#\n" * 5000
    )
    assert (code, "holds more than the limit of 8192 bytes" in err) == (2, True)


def test_raising_the_cap_lets_a_large_input_through(tmp_path: Path) -> None:
    """The same file under a raised --max-input-size is read."""
    save = tmp_path / "padded.save"
    save.write_text("#\n" * 5000)
    refused, _ = run("diff", "-f", CLUSTER, "--node", "worker1", "--current-save", str(save), "--max-input-size", "8K")
    code, _ = run("diff", "-f", CLUSTER, "--node", "worker1", "--current-save", str(save), "--max-input-size", "16K")
    assert (refused, code) == (2, 1)  # then changes pending: the example's whole table against an empty one


@pytest.mark.parametrize("size", ["lots", "0", "1T", "1.5M"], ids=["word", "zero", "tera", "fraction"])
def test_bad_size_is_a_usage_error_naming_the_flag(size: str) -> None:
    """A --max-input-size that is not a size exits 2 naming the flag."""
    code, err = run("diff", "-f", CLUSTER, "--node", "worker1", "--current-save", EMPTY, "--max-input-size", size)
    assert (code, err.startswith("error: --max-input-size: ")) == (2, True)
