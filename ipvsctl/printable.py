"""Untrusted text made safe to print as part of one line of terminal output (pure).

Names of Services, Pods and namespaces, annotation values, file names and messages that quote input
may hold newlines, carriage returns, ANSI escape sequences or bidirectional overrides; printed as they
are, they forge plan lines or rewrite the terminal. ``printable`` writes every character that
``str.isprintable`` refuses (controls, format characters, line and paragraph separators, non-space
separators, surrogates, private and unassigned code points) as a Python-style escape. JSON output needs
none of this: ``json.dumps`` escapes control characters itself.
"""

from __future__ import annotations

__all__ = ["printable"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` with each non-printable character escaped (``\\n``, ``\\x1b``, ``\\u202e``); printable text as is."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
