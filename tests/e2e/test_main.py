"""`python -m tests.e2e`'s guest command: what runs in the lab."""

from __future__ import annotations

from tests.e2e.__main__ import guest_command


def test_the_slow_scenarios_are_left_out_unless_asked_for() -> None:
    """By default the guest's pytest deselects the slow scenarios (make test's run)."""
    command = guest_command("")
    assert command[command.index("-m") + 1] == "e2e and not slow"


def test_slow_includes_every_scenario_and_keeps_the_keyword() -> None:
    """--slow selects every e2e scenario; -k is passed on."""
    command = guest_command("test_11_", slow=True)
    assert (command[command.index("-m") + 1], command[-2:]) == ("e2e", ["-k", "test_11_"])
