"""model.canonical_ip: its inet_pton fast path gives exactly what ipaddress gives, for any text."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvsctl.model import canonical_ip


def reference(text: str) -> str | None:
    """What ipaddress makes of ``text`` (None: not an address)."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def ours(text: str) -> str | None:
    """What canonical_ip makes of ``text`` (None: ValueError)."""
    try:
        return canonical_ip(text)
    except ValueError:
        return None


def spellings(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[str]:
    """Ways to write an address: canonical, exploded, upper case, with spaces."""
    text = str(address)
    return [text, address.exploded, text.upper(), f" {text} ", address.exploded.upper()]


@given(st.ip_addresses())
def test_any_address_in_any_spelling_is_read_as_ipaddress_reads_it(address: ipaddress.IPv4Address) -> None:
    """Every spelling of every address gives ipaddress's canonical form."""
    for text in spellings(address):
        assert ours(text) == reference(text)


@given(st.text(alphabet="0123456789abcdefABCDEF:.% \x00²", max_size=45))
def test_any_text_is_read_as_ipaddress_reads_it(text: str) -> None:
    """Any text of address characters: the same address, or the same refusal."""
    assert ours(text) == reference(text)


@pytest.mark.parametrize(
    "text",
    ["::ffff:192.0.2.1", "::192.0.2.1", "::ffff:c000:201", "2001:db8:0:1:1:1:1:1", "2001:db8::1:0:0:1", "fe80::1%eth0"],
    ids=["v4-mapped", "v4-compatible", "v4-mapped-hex", "single-zero-group", "two-zero-runs", "zone-id"],
)
def test_forms_where_inet_ntop_differs_are_read_as_ipaddress_reads_them(text: str) -> None:
    """Embedded IPv4, single zero groups, ties between zero runs and zone ids: ipaddress's answer."""
    assert ours(text) == reference(text)


def test_canonical_text_is_returned_itself() -> None:
    """An address already canonical comes back as the same string object (no copy is kept)."""
    text = "".join(["2001:db8::", "10"])
    assert canonical_ip(text) is text
