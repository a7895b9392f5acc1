"""`--interface` on the host: a bad name is a usage error, and a link that is not a dummy stops a command first.

The host kernel has no IPVS; that these commands fail on the interface rather than on the missing IPVS
shows the interface is checked before anything is read. The kernel lab checks the same against a veth
(tests/kernel/test_interface_cli.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ipvsctl.backend.sysctl import STARTUP_SYSCTLS
from ipvsctl.cli import app

runner = CliRunner()
EMPTY_FILE = str(Path(__file__).resolve().parent.parent / "examples" / "empty.save")  # a device is refused
COMMANDS = {
    "show": ["show"],
    "cleanup": ["cleanup"],
    "affinity": ["affinity", "--conn-file", EMPTY_FILE],
}
BAD_NAMES = {
    "empty": ("", "'' is empty"),
    "long": ("a" * 16, "is 16 bytes long: at most 15"),
    "slash": ("a/b", "cannot hold '/'"),
    "space": ("a b", "cannot hold whitespace"),
    "colon": ("eth0:1", "cannot hold ':'"),
    "escape": ("a\x1b[2J", "cannot hold control characters"),
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
@pytest.mark.parametrize(("name", "reason"), BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_a_name_the_kernel_would_refuse_is_a_usage_error(command: list[str], name: str, reason: str) -> None:
    """A bad --interface name exits 2 with one line naming the flag and the reason."""
    result = runner.invoke(app, [*command, "--interface", name])

    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: --interface: ")
    assert reason in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_loopback_is_refused_before_anything_is_read(command: list[str]) -> None:
    """--interface lo exits 2 with one line saying lo is not a dummy (and not that IPVS is missing)."""
    result = runner.invoke(app, [*command, "--interface", "lo"])

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: lo: is a device without a link kind")
    assert "not a dummy" in result.stderr


def test_the_agent_refuses_loopback_at_start_up() -> None:
    """`ipvsctl agent --interface lo` exits 2 at once with one error log line naming lo and its kind."""
    no_sysctls = [argument for name in STARTUP_SYSCTLS for argument in ("--no-sysctl", name)]
    done = subprocess.run(
        [str(Path(sys.prefix) / "bin" / "ipvsctl"), "agent", "--node-name", "node-a", "--interface", "lo", *no_sysctls],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2, done.stderr
    (line,) = (done.stdout + done.stderr).splitlines()
    entry = json.loads(line)
    assert entry["event"] == "agent_failed"
    assert entry["error"].startswith("lo: is a device without a link kind")
