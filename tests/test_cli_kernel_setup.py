"""--strict-arp and the IPVS timeout flags on the command line: a bad value is one error line naming its flag,
exit 2, before anything reads or changes the kernel (these tests run on a host without IPVS)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ipvsctl.cli import app
from ipvsctl.cli.app import EXIT_ERROR
from ipvsctl.options import MAX_IPVS_TIMEOUT

runner = CliRunner()
EXAMPLES = str(Path(__file__).resolve().parent.parent / "examples" / "cluster")
COMMANDS = {
    "apply": ["apply", "-f", EXAMPLES, "--node", "worker1"],
    "agent": ["agent", "--node-name", "worker1", "--backend", "memory"],
}
TIMEOUT_FLAGS = ["--ipvs-tcp-timeout", "--ipvs-tcpfin-timeout", "--ipvs-udp-timeout"]


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
@pytest.mark.parametrize("flag", TIMEOUT_FLAGS)
@pytest.mark.parametrize("value", [-1, MAX_IPVS_TIMEOUT + 1, 2**32], ids=["negative", "over-the-kernels", "over-u32"])
def test_a_timeout_out_of_range_is_refused_naming_its_flag(command: list[str], flag: str, value: int) -> None:
    """A timeout below 0 or above MAX_IPVS_TIMEOUT: exit 2 and one line naming the flag and the range."""
    result = runner.invoke(app, [*command, f"{flag}={value}"])

    assert result.exit_code == EXIT_ERROR
    assert result.stdout == ""
    assert result.stderr == (
        f"error: {flag}: {value} is not a number of seconds 0..{MAX_IPVS_TIMEOUT} (0 keeps the kernel's)\n"
    )


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_skipping_a_strict_arp_sysctl_is_refused(command: list[str]) -> None:
    """--no-sysctl cannot take out one of --strict-arp's two sysctls: the error says to leave --strict-arp out."""
    result = runner.invoke(app, [*command, "--strict-arp", "--no-sysctl", "net.ipv4.conf.all.arp_ignore"])

    assert result.exit_code == EXIT_ERROR
    assert result.stderr == (
        "error: --no-sysctl: net.ipv4.conf.all.arp_ignore: set only by --strict-arp (leave that flag out instead)\n"
    )


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_the_new_flags_are_in_the_help(command: list[str]) -> None:
    """Both commands list --strict-arp and the three timeouts."""
    result = runner.invoke(app, [command[0], "--help"], terminal_width=200)

    assert [flag for flag in ["--strict-arp", *TIMEOUT_FLAGS] if flag not in result.stdout] == []
