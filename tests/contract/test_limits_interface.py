"""Names of the agent's link: the kernel's dev_valid_name rules (and two stricter ones), on the host.

tests/kernel/test_interface_kernel.py checks the same table against the kernel itself.
"""

from __future__ import annotations

import pytest

from ipvsctl.backend.limits import foreign_interface_error, interface_name_problem

VALID = {
    "default": "ipvs0",
    "fifteen-bytes": "a" * 15,
    "dash-and-dot": "kube-ipvs.0",
    "two-byte-character": "vip\u00e9",  # é is C3 A9: no byte the kernel objects to
    "dots-inside": "a..b",
}
INVALID = {
    "empty": ("", "is empty"),
    "sixteen-bytes": ("a" * 16, "is 16 bytes long: at most 15"),
    "fifteen-characters-sixteen-bytes": ("a" * 14 + "\u00e9", "is 16 bytes long: at most 15"),
    "dot": (".", "cannot be . or .."),
    "dot-dot": ("..", "cannot be . or .."),
    "slash": ("a/b", "cannot hold '/'"),
    "colon": ("eth0:1", "cannot hold ':'"),
    "space": ("a b", "cannot hold whitespace"),
    "tab": ("a\tb", "cannot hold whitespace"),
    "newline": ("a\n", "cannot hold whitespace"),
    "vertical-tab": ("a\vb", "cannot hold whitespace"),
    "no-break-space-byte": ("vip\u00e0", "cannot hold whitespace"),  # à is C3 A0; the kernel's isspace(0xA0)
    "percent": ("ipvs%d", "cannot hold '%'"),
    "escape": ("a\x1b[2J", "cannot hold control characters"),
    "nul": ("a\x00b", "cannot hold control characters"),
    "c1-control": ("a\u009bb", "cannot hold control characters"),
    "lone-surrogate": ("a\udcff", "is not valid text"),
}


@pytest.mark.parametrize("name", VALID.values(), ids=VALID.keys())
def test_a_name_the_kernel_takes_has_no_problem(name: str) -> None:
    """A valid link name gets no problem."""
    assert interface_name_problem(name) is None


@pytest.mark.parametrize(("name", "problem"), INVALID.values(), ids=INVALID.keys())
def test_a_name_the_kernel_refuses_has_its_problem(name: str, problem: str) -> None:
    """An invalid link name gets the reason it is invalid."""
    assert interface_name_problem(name) == problem


@pytest.mark.parametrize(
    ("kind", "words"),
    [("veth", "is an interface of kind 'veth', not a dummy"), ("", "is a device without a link kind")],
    ids=["veth", "kindless"],
)
def test_the_refusal_of_a_foreign_link_names_it_and_its_kind(kind: str, words: str) -> None:
    """The refusal starts with the interface's name and says what kind it is."""
    assert str(foreign_interface_error(interface="eth0", kind=kind)).startswith(f"eth0: {words}")
