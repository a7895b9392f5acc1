"""Start-up: ``ipvsctl --help`` and an offline ``diff`` import only what they need, not the agent's libraries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
AGENT_LIBRARIES = ("structlog", "kubernetes_asyncio", "aiohttp", "prometheus_client", "pyroute2", "rich")
# The app, not the entry point ``main``: a whole process would end as soon as ``diff`` is done (``cli.oneshot``),
# before the modules could be listed.
PROBE = """
import json, sys
from ipvsctl.cli import app
sys.argv = ["ipvsctl", *json.loads(sys.argv[1])]
try:
    app()
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})), file=sys.stderr)
"""


def loaded_by(*args: str) -> set[str]:
    """The top-level modules a fresh interpreter has loaded after running ``ipvsctl ARGS``."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(args))], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["diff", "-f", str(EXAMPLES / "cluster"), "--node", "worker1", "--current-save", str(EXAMPLES / "empty.save")],
    ],
    ids=["help", "offline-diff"],
)
def test_command_does_not_load_the_agents_libraries(args: list[str]) -> None:
    """Neither --help nor an offline diff loads structlog, kubernetes-asyncio, aiohttp, prometheus-client,
    pyroute2 or rich."""
    assert loaded_by(*args) & set(AGENT_LIBRARIES) == set()


def test_help_does_not_load_the_decoders() -> None:
    """--help does not even load msgspec and yaml-rs: only the commands that read manifests do."""
    assert loaded_by("--help") & {"msgspec", "yaml_rs"} == set()
