"""A node's state saved to files, as the offline commands read it: ``ipvsadm -Sn`` (``--current-save``) and
``nft -j list table inet ipvsctl`` (``--current-nftables``); errors name the flag, the file and the line."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from ipvsctl.errors import InputError, LineFormatError, UsageError
from ipvsctl.inputs import STDIN, read_input
from ipvsctl.ipvsadm import parse_save
from ipvsctl.model import Table
from ipvsctl.netfilter.elements import Element
from ipvsctl.netfilter.listing import elements_from_json
from ipvsctl.netfilter.ruleset import TABLE

__all__ = ["SavedElements", "read_nftables", "read_save"]


@dataclass(frozen=True, slots=True)
class SavedElements:
    """ipvsctl's nftables elements as found: what the table holds, and whether it is there."""

    current: frozenset[Element]
    present: bool


def read_nftables(path: str, *, max_bytes: int, flag: str = "--current-nftables") -> SavedElements:
    """``nft -j list table inet ipvsctl`` output (a file, or - for stdin) → ipvsctl's elements."""
    try:
        data = read_input(path, max_bytes=max_bytes, stdin=sys.stdin.buffer)
    except InputError as error:
        raise UsageError(f"cannot read {error.source}: {error.message}", flag=flag) from None
    source = "<stdin>" if path == STDIN else path
    text = LineFormatError.decode(data, source=source)
    elements = elements_from_json(text, source=source)
    return SavedElements(frozenset(elements), bool(elements) or f'"name": "{TABLE}"' in text)


def read_save(path: str, *, max_bytes: int, flag: str = "--current-save") -> Table:
    """An ``ipvsadm -Sn`` save file (or - for stdin) → the table it holds."""
    try:
        data = read_input(path, max_bytes=max_bytes, stdin=sys.stdin.buffer)
    except InputError as error:
        raise UsageError(f"cannot read {error.source}: {error.message}", flag=flag) from None
    # parse_save names the line of a byte that is not UTF-8
    return parse_save(data, source="<stdin>" if path == STDIN else path)
