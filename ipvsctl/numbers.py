"""Whole numbers in untrusted text: ASCII digits only, and no more of them than the value can need (pure).

``str.isdigit()`` is true for ``²`` (which ``int()`` refuses) and for Arabic-Indic digits (which it
reads); ``int()`` also accepts ``" 7 "`` and ``"1_0"``, and raises ValueError past 4300 digits. A number
read from an annotation, a flag, a save file or the connection table goes through ``parse_decimal``
instead, and its caller raises its own error naming where the text came from.
"""

from __future__ import annotations

import re

__all__ = ["parse_decimal"]

# [0-9], not \d: \d matches every Unicode decimal digit.
_DECIMAL = re.compile(r"[0-9]+")


def parse_decimal(text: str, *, max_digits: int) -> int | None:
    """``text`` as a number when it is 1 to ``max_digits`` ASCII digits (leading zeros allowed), else None."""
    if len(text) > max_digits or not _DECIMAL.fullmatch(text):
        return None
    return int(text)
