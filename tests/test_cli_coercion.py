"""Command-line values without pydantic (``cli.coercion``): each shortcut answers as typer's coercion, or defers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer._adapters import try_build_adapter
from typer.models import OptionInfo
from typer.testing import CliRunner

from ipvsctl.cli import app
from ipvsctl.cli.coercion import UNSURE, fast_converter
from ipvsctl.cli.diff import DiffFormat
from ipvsctl.cli.live import Format

ANNOTATIONS: list[Any] = [str, int, float, bool, DiffFormat, Format, list[str], list[int]]
NUMERIC = st.text(alphabet="0123456789.-+_ eE\u0663", max_size=24)
VALUES = st.one_of(
    NUMERIC,
    st.text(max_size=12),
    st.sampled_from(["text", "json", "ipvsadm", "TEXT", " json", "Json"]),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.sampled_from([*DiffFormat, *Format]),
)


def typer_answer(annotation: Any, value: Any) -> Any:
    """What typer's own (pydantic) coercion makes of ``value``, or UNSURE if it refuses it."""
    adapter = try_build_adapter(annotation, OptionInfo())
    assert adapter is not None
    try:
        return adapter.validate_python(value)
    except ValueError:  # pydantic's ValidationError is one
        return UNSURE


@settings(max_examples=400, deadline=None)
@given(annotation=st.sampled_from(ANNOTATIONS), value=VALUES | st.lists(VALUES, max_size=3).map(tuple))
def test_a_shortcut_answers_as_typer_or_defers(annotation: Any, value: Any) -> None:
    """For any value, the shortcut's answer is typer's (same type and value), or it leaves the value to typer."""
    convert = fast_converter(annotation)
    assert convert is not None
    answer = convert(value)
    if answer is not UNSURE:
        expected = typer_answer(annotation, value)
        assert type(answer) is type(expected)
        assert answer == expected


@pytest.mark.parametrize(
    ("annotation", "value", "expected"),
    [
        (int, "30", 30),
        (float, "2.5", 2.5),
        (str, "worker1", "worker1"),
        (DiffFormat, "json", DiffFormat.JSON),
        (list[str], ("a", "b"), ["a", "b"]),
    ],
    ids=["int", "float", "str", "choice", "list"],
)
def test_the_usual_values_take_the_shortcut(annotation: Any, value: Any, expected: Any) -> None:
    """The values a command line usually holds are converted without typer's coercion."""
    convert = fast_converter(annotation)
    assert convert is not None
    assert convert(value) == expected


def test_a_bad_choice_is_still_named_by_typer() -> None:
    """A value the shortcut defers keeps typer's message and exit code."""
    result = CliRunner().invoke(app, ["diff", "-f", "x.json", "--node", "n", "-o", "yaml"])
    assert result.exit_code == 2
    assert "'yaml' is not one of 'text', 'json', 'ipvsadm'" in result.output


def test_an_offline_diff_does_not_import_pydantic(tmp_path: Path) -> None:
    """``ipvsctl diff`` converts its options without pydantic (typer's coercion imports it: 0.7 s in the lab)."""
    manifests = tmp_path / "node.json"
    manifests.write_text(
        '{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker1"}, '
        '"status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.11"}]}}'
    )
    save = tmp_path / "empty.save"
    save.write_text("")
    argv = ["diff", "-f", str(manifests), "--node", "worker1", "--current-save", str(save), "--scheduler", "wrr"]
    code = (
        "import sys\nfrom ipvsctl.cli import app\n"
        f"try:\n    app({argv!r})\nexcept SystemExit as done:\n    print(done.code, 'pydantic' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60)
    assert done.stdout.splitlines()[-1] == "0 False"
