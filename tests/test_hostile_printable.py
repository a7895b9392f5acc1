"""ipvsctl.printable: text from Services, Pods, files and messages cannot forge lines or drive the terminal."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvsctl.printable import printable


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("web\n  + add    service tcp/192.0.2.1:80", "web\\n  + add    service tcp/192.0.2.1:80"),
        ("a\rb", "a\\rb"),
        ("a\tb", "a\\tb"),
        ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),
        ("\x00\x7f\x85\x9b", "\\x00\\x7f\\x85\\x9b"),
        ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),
        ("abc\u202edef", "abc\\u202edef"),
        ("\U000e0041", "\\U000e0041"),
    ],
    ids=["newline", "carriage-return", "tab", "ansi", "c0-del-c1", "line-separators", "bidi-override", "tag"],
)
def test_control_characters_are_escaped(text: str, expected: str) -> None:
    """Controls, separators and format characters become visible escapes."""
    assert printable(text) == expected


@pytest.mark.parametrize(
    "text",
    ["default/web", "Service kube-system/kube-dns", "wörker-ñ", "名前", "a\\nb", "'quoted'"],
    ids=["ref", "title", "latin", "cjk", "literal-backslash", "quotes"],
)
def test_printable_text_is_unchanged(text: str) -> None:
    """Printable text, Unicode letters and a literal backslash included, is kept as it is."""
    assert printable(text) == text


@given(st.text())
def test_output_is_always_one_printable_line(text: str) -> None:
    """Whatever goes in, what comes out is printable: no line breaks, no escape sequences."""
    assert printable(text).isprintable()
