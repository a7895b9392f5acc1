"""YAML manifests → documents, with yaml-rs: YAML 1.2 scalars, duplicate keys refused, every limit checked first.

yaml-rs reads scalars by YAML 1.2 (``1:20`` and ``yes`` are text; timestamps stay text), refuses a key given
twice in one mapping and bounds the events its aliases replay. What it cannot bound is checked before it
reads anything: it recurses once per level of nesting and crashes the process past ~8,000 levels, so a line
indented more than 1000 columns is refused (a node is at most two levels deeper than its indentation leaves
it, and flow collections stop at 255 levels in yaml-rs itself); it converts every integer it meets in time
quadratic in its length, so a run of more than 4300 digits (Python's own limit) is refused; and it takes a
NUL for the end of the text, so a character YAML does not allow (controls, NUL) is refused.

A stream is read one document at a time, and a List as kubectl writes it (``items:`` followed by ``- ``
entries at the start of their lines) one item at a time: only the views made of them are kept, not the
whole stream's values (15x the text's size for 10,000 Services). A piece that does not parse on its own
(an alias to an anchor in another item, a directive) raises ``PieceRefused``; the caller then reads the
stream whole (``whole_stream``), which reports any real error with its line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ipvsctl.errors import ManifestError

if TYPE_CHECKING:
    import yaml_rs

__all__ = [
    "MAX_DIGITS",
    "MAX_INDENT",
    "MAX_WHOLE",
    "LazyList",
    "PieceRefused",
    "check_yaml",
    "documents",
    "whole_stream",
]

MAX_INDENT = 1000
MAX_DIGITS = 4300
# yaml-rs's values cost 15x the text they come from, and a piece is read into values whole: no piece, and no
# stream read whole, may be larger than this (etcd stores no object over 1.5 MiB).
MAX_WHOLE = 2 * 2**20
_TOO_DEEP_LINE = re.compile(rf"^[ \t?:-]{{{MAX_INDENT + 1}}}", re.MULTILINE)
_TOO_MANY_DIGITS = re.compile(rf"[0-9_]{{{MAX_DIGITS + 1}}}")
# YAML 1.2's c-printable: tab, line breaks and the printable characters (go-yaml refuses the rest too).
_NOT_PRINTABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_YAML_AT = re.compile(r"YAML parse error at line (\d+), column (\d+)")
_YAML_TAG = re.compile(r"Invalid value '.*' for '(![^']*)' tag", re.DOTALL)
# "---" then a space or the line's end starts a document wherever it is: YAML forbids it in any content.
_MARKER = re.compile(r"^---(?=[ \t\r\n]|\Z)", re.MULTILINE)
# A directive applies across documents; after "..." a document may start unmarked; a lone CR breaks lines in YAML
# but not for these expressions.
_NOT_IN_PIECES = re.compile(r"^(%|\.\.\.(?=[ \t\r\n]|\Z))|\r(?!\n)", re.MULTILINE)
_CONTENT = re.compile(r"^[ \t]*[^# \t\r\n]", re.MULTILINE)  # a line neither blank nor a comment (YAML blanks)
_ITEMS = re.compile(r"^items:([ \t]+(#[^\n]*)?)?\r?$", re.MULTILINE)
_ENTRY = re.compile(r"^-", re.MULTILINE)
_OUT_OF_ITEMS = re.compile(r"^[^- \t\r\n#]", re.MULTILINE)  # back at column 0: the List's next key
# Aliases replay events; their number is bounded by the text's size, so a few bytes of aliases cannot expand
# into gigabytes (a "billion laughs").
# What yaml-rs raises besides its own error when it builds a value: TypeError for a key that is a mapping or a
# list, ValueError and OverflowError for numbers Python refuses.
_VALUE_ERRORS = (TypeError, ValueError, OverflowError)
_ALIAS_EVENTS_MIN = 10_000
_ALIAS_BYTES_PER_EVENT = 16


class PieceRefused(Exception):  # noqa: N818 (a signal to read the stream whole, not an error to report)
    """A document or List item did not parse on its own: read the whole stream instead (when it is small).

    ``problem`` is yaml-rs's error about the piece, its line counted in the whole text, when it had one.
    """

    def __init__(self, reason: str, *, problem: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.problem = problem


@dataclass(frozen=True, slots=True)
class LazyList:
    """A List document read item by item: its other fields (``items`` empty), and its items as they parse."""

    head: dict[str, object]
    items: Iterator[object]


def check_yaml(text: str, *, source: str) -> None:
    """Refuse, before yaml-rs reads it, what would crash it or cost it quadratic time."""
    deep = _TOO_DEEP_LINE.search(text)
    if deep is not None:
        line = text.count("\n", 0, deep.start()) + 1
        raise ManifestError(
            f"nested too deeply to read: line {line} is indented more than {MAX_INDENT} columns", source=source
        )
    unprintable = _NOT_PRINTABLE.search(text)
    if unprintable is not None:  # yaml-rs takes a NUL for the end of the text, and the rest for nothing
        line = text.count("\n", 0, unprintable.start()) + 1
        character = f"U+{ord(unprintable[0]):04X}"
        raise ManifestError(
            f"invalid YAML at line {line}: a character YAML does not allow ({character})", source=source
        )
    digits = _TOO_MANY_DIGITS.search(text)
    if digits is not None:
        line = text.count("\n", 0, digits.start()) + 1
        raise ManifestError(f"a number of more than {MAX_DIGITS} digits at line {line}: not read", source=source)


def documents(text: str) -> Iterator[object]:
    """The stream's documents, each parsed on its own; a List's items parsed one by one (``LazyList``).

    Raises PieceRefused as soon as a piece does not parse alone.
    """
    if _NOT_IN_PIECES.search(text):
        raise PieceRefused("a directive, a document end marker (...) or a lone carriage return")
    for start, end in _document_spans(text):
        yield _document(text, start, end)


def whole_stream(text: str, *, source: str, refused: PieceRefused) -> list[object]:
    """Every document of the stream, read in one piece; ManifestError naming the line of what is wrong.

    A stream over MAX_WHOLE is not read whole: ManifestError with the piece's own error, or why it was refused.
    """
    import yaml_rs  # noqa: PLC0415 (JSON manifests never pay for it)

    if len(text) > MAX_WHOLE:
        raise ManifestError(
            refused.problem
            or f"cannot be read a document or List item at a time ({refused.reason}), and YAML over "
            f"{MAX_WHOLE} bytes is read no other way: write it as kubectl get -o yaml or -o json does",
            source=source,
        )

    try:
        loaded = yaml_rs.loads(text, parse_datetime=False, alias_limits=_limits(text))
    except yaml_rs.YAMLDecodeError as exc:
        raise ManifestError(_problem(str(exc), text=text), source=source) from exc
    except _VALUE_ERRORS as exc:  # a mapping or list as a key (unhashable), or a value Python cannot hold
        raise ManifestError(f"invalid YAML: {type(exc).__name__}: {exc}", source=source) from exc
    # yaml-rs answers a stream of several documents with their list, and one document with itself.
    return list(loaded) if isinstance(loaded, list) and _document_count(text) > 1 else [loaded]


def _limits(text: str) -> yaml_rs.AliasLimits:
    import yaml_rs  # noqa: PLC0415 (see whole_stream)

    return yaml_rs.AliasLimits(max_total_replayed_events=max(_ALIAS_EVENTS_MIN, len(text) // _ALIAS_BYTES_PER_EVENT))


def _piece(text: str, start: int, end: int, *, prefix: str = "", suffix: str = "", followed: bool) -> object:
    """``text[start:end]`` (between ``prefix`` and ``suffix``) as one YAML stream; PieceRefused if it is not.

    ``followed``: more of the stream comes after the piece. yaml-rs reads an empty block scalar (``key: |``) as
    ``"\\n"`` at the end of its text but as ``""`` (YAML's answer) before anything else, so a piece that the
    whole stream continues is closed with a document end marker to be read as the whole stream reads it.
    """
    import yaml_rs  # noqa: PLC0415 (see whole_stream)

    if end - start > MAX_WHOLE:
        raise PieceRefused(f"a document or List item of more than {MAX_WHOLE} bytes")
    piece = prefix + text[start:end] + suffix + ("...\n" if followed else "")
    try:
        return yaml_rs.loads(piece, parse_datetime=False, alias_limits=_limits(piece))
    except yaml_rs.YAMLDecodeError as exc:
        if "unknown anchor" in str(exc):
            raise PieceRefused("an alias to an anchor in another document or List item") from None
        problem = "" if prefix else _problem(str(exc), text=piece, first_line=text.count("\n", 0, start) + 1)
        raise PieceRefused("it does not parse alone", problem=problem) from None
    except _VALUE_ERRORS as exc:
        raise PieceRefused("it does not parse alone", problem=f"invalid YAML: {type(exc).__name__}: {exc}") from None


def _document_spans(text: str) -> list[tuple[int, int]]:
    """Where each document is: a marker opens one, and content before the first marker is one."""
    starts = [match.start() for match in _MARKER.finditer(text)]
    if _CONTENT.search(text, 0, starts[0] if starts else len(text)):
        starts.insert(0, 0)
    return list(zip(starts, [*starts[1:], len(text)][: len(starts)], strict=True))


def _document(text: str, start: int, end: int) -> object:
    """One document: a List's items lazily when kubectl's layout allows it, else the whole document."""
    items = _ITEMS.search(text, start, end)
    if items is None or not text.startswith("-", items.end() + 1):
        return _piece(text, start, end, followed=end < len(text))
    first = items.end() + 1
    after = _OUT_OF_ITEMS.search(text, first, end)
    stop = after.start() if after is not None else end
    # The List's own fields: what is before its items, and after them (kubectl writes kind and metadata there).
    head = _piece(text, start, items.start(), suffix="items: []\n" + text[stop:end], followed=end < len(text))
    if not isinstance(head, dict):
        raise PieceRefused("a List whose document is not a mapping")
    return LazyList(head, _entries(text, first, stop))


def _entries(text: str, start: int, end: int) -> Iterator[object]:
    """Each ``- `` entry of a block sequence at column 0, parsed on its own."""
    starts = [match.start() for match in _ENTRY.finditer(text, start, end)]
    for first, last in zip(starts, [*starts[1:], end][: len(starts)], strict=True):
        parsed = _piece(text, first, last, followed=last < len(text))
        if not isinstance(parsed, list) or len(parsed) != 1:
            raise PieceRefused("an item that is not one entry")
        yield parsed[0]


def _document_count(text: str) -> int:
    """How many documents a YAML stream holds: its markers, and one before the first if it has content."""
    return len(_document_spans(text))


def _problem(message: str, *, text: str, first_line: int = 1) -> str:
    """yaml-rs's error in one line: ``invalid YAML at line N: what (column C)``; ``text`` starts at ``first_line``."""
    lines = message.splitlines()
    at = _YAML_AT.match(lines[0]) if lines else None
    if at is not None:
        what = "nested too deeply to read" if lines[-1] == "recursion limit exceeded" else lines[-1]
        return f"invalid YAML at line {int(at[1]) + first_line - 1}: {what} (column {at[2]})"
    tag = _YAML_TAG.match(message)
    if tag is not None:  # yaml-rs does not say where: the first line using the tag
        where = text.find(tag[1])
        if where >= 0:
            return f"invalid YAML at line {text.count(chr(10), 0, where) + first_line}: {lines[0]}"
    return f"invalid YAML: {lines[0] if lines else message}"
