"""Duplicate keys in a JSON document, refused as the apiserver's strict decoding refuses them.

msgspec (and every fast JSON reader on PyPI but one) lets the last of two equal keys win. The check is in
two steps so that a document without duplicates costs two C-speed counts and one encode:

1. Sound quick test, on the document as msgspec decoded it (the decoding the load itself uses). Outside
   strings, a colon in JSON can only end a key, whatever the whitespace. So the text's colons are its keys
   plus the colons written inside its strings; an encoding of the decoded document (one key per name) has
   its kept keys plus the colons of its kept strings. A string's colons are the ones written in it unless
   it spells one as ``\\u003a``: without that escape, equal counts mean no key was dropped, and a dropped
   key (with everything its value held) makes the decoded count smaller.
2. Otherwise (the counts differ, or the text has a ``\\u003a``) the exact walk: the standard library's
   parser with a hook on every object, which names the first duplicate key and where it is.
"""

from __future__ import annotations

import json
import re

import msgspec

from ipvsctl.kube.checks import bounded_json_integer

__all__ = ["duplicate_key", "exact_duplicate_key"]

_COLON = b":"
_ESCAPED_COLON = re.compile(rb"\\u003[aA]")


class _Duplicate(Exception):  # noqa: N818 (a signal inside the walk, never raised out of this module)
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def duplicate_key(data: bytes | bytearray, *, decoded: object) -> str | None:
    """A description of the first duplicate key of the JSON ``data`` (``key "port" in $.items[3].spec``), or
    None when it has none; ``decoded`` is ``data`` as ``msgspec.json.decode`` read it."""
    kept = msgspec.json.encode(decoded)
    if data.count(_COLON) == kept.count(_COLON) and _ESCAPED_COLON.search(data) is None:
        return None
    return exact_duplicate_key(data)


def exact_duplicate_key(data: bytes | bytearray) -> str | None:
    """The walk of step 2 (see the module docstring), for any text; None also when it is not valid JSON."""
    try:
        json.loads(data, object_pairs_hook=_checked, parse_int=bounded_json_integer)
    except _Duplicate as duplicate:
        return f"key {json.dumps(duplicate.key)} in {_where(data, duplicate.key)}"
    except (ValueError, RecursionError):
        return None
    return None


def _checked(pairs: list[tuple[str, object]]) -> dict[str, object]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key)
            seen.add(key)
    return value


def _where(data: bytes | bytearray, key: str) -> str:
    """The JSON path of the first object holding ``key`` twice (msgspec's ``$``-path notation)."""
    found = _find(json.loads(data, object_pairs_hook=_Pairs, parse_int=bounded_json_integer), key, "$")
    return found or "the document"


class _Pairs(list[tuple[str, object]]):
    """An object's pairs in order, duplicates kept (what ``_where`` walks)."""

    __slots__ = ()


def _find(value: object, key: str, path: str) -> str | None:
    if isinstance(value, _Pairs):
        keys = [name for name, _ in value]
        if keys.count(key) > 1:
            return path
        for name, item in value:
            found = _find(item, key, f"{path}.{name}")
            if found:
                return found
        return None
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _find(item, key, f"{path}[{index}]")
            if found:
                return found
    return None
