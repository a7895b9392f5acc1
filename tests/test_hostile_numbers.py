"""ipvsctl.numbers: only short runs of ASCII digits are numbers; everything else is refused, never raised on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvsctl.numbers import parse_decimal


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("24", 24), ("007", 7), ("4294967295", 4294967295)],
    ids=["zero", "two-digits", "leading-zeros", "ten-digits"],
)
def test_ascii_digits_are_read(text: str, expected: int) -> None:
    """Up to max_digits ASCII digits give their value."""
    assert parse_decimal(text, max_digits=10) == expected


@pytest.mark.parametrize(
    "text",
    [
        *("", "²", "¹²", "\u0661\u0662", "\uff12\uff14", "24²", " 24", "24 "),
        *("2_4", "+24", "-24", "0x18", "24\n", "9" * 11, "9" * 5000),
    ],
    ids=[
        "empty",
        "superscript",
        "superscripts",
        "arabic-indic",
        "fullwidth",
        "digits-then-superscript",
        "leading-space",
        "trailing-space",
        "underscore",
        "plus",
        "minus",
        "hex",
        "trailing-newline",
        "one-digit-too-many",
        "past-int-limit",
    ],
)
def test_anything_else_is_refused(text: str) -> None:
    """Unicode digits, signs, spaces, underscores and too many digits are not numbers (None, no exception)."""
    assert parse_decimal(text, max_digits=10) is None


@given(st.text())
def test_any_text_is_a_number_or_none(text: str) -> None:
    """No text makes parse_decimal raise; a number is read only from ASCII digits, as int() reads them."""
    value = parse_decimal(text, max_digits=10)
    if value is not None:
        assert text.isascii()
        assert int(text) == value
