"""The documentation stays true to the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ipvsctl.annotations import KNOWN_ANNOTATIONS

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_matches_the_typer_app() -> None:
    """docs/cli.md is exactly what the typer app generates (run `make docs` after changing a flag)."""
    generated = subprocess.run(
        [sys.executable, "-m", "typer", "ipvsctl.cli", "utils", "docs", "--name", "ipvsctl",
         "--title", "ipvsctl CLI reference"],
        check=True, capture_output=True, text=True, cwd=ROOT,
    ).stdout  # fmt: skip
    assert (ROOT / "docs" / "cli.md").read_text().strip() == generated.strip()


def test_every_annotation_is_documented() -> None:
    """Each ipvsctl.io annotation the code knows appears in docs/semantics.md."""
    semantics = (ROOT / "docs" / "semantics.md").read_text()
    assert all(annotation in semantics for annotation in KNOWN_ANNOTATIONS)
