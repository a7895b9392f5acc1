"""Loading the command line (``import ipvsctl.cli``): the commands import with the collector off, left as it was."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run(code: str) -> str:
    """The last line ``code`` prints in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return done.stdout.splitlines()[-1]


def test_the_commands_load_with_the_collector_off() -> None:
    """Every command module is imported with the collector off (its collections were a fifth of the import)."""
    code = (
        "import gc, sys\nseen = set()\n"
        "class Recorder:\n"
        "    @staticmethod\n"
        "    def find_spec(name, path=None, target=None):\n"
        "        if name.startswith('ipvsctl.cli.'):\n"
        "            seen.add(gc.isenabled())\n"
        "sys.meta_path.insert(0, Recorder)\n"
        "import ipvsctl.cli\nprint(sorted(seen))"
    )
    assert run(code) == "[False]"


@pytest.mark.parametrize("enabled", [True, False], ids=["on", "off"])
def test_the_collector_is_left_as_it_was(enabled: bool) -> None:
    """On before the import, on after it; off before, off after."""
    code = f"import gc\n{'gc.enable()' if enabled else 'gc.disable()'}\nimport ipvsctl.cli\nprint(gc.isenabled())"
    assert run(code) == str(enabled)
