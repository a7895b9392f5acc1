"""A stateful fake of ipvsctl's nftables table, with the kernel's behaviour (all-or-nothing changes)."""

from __future__ import annotations

import errno
from collections.abc import Collection

from ipvsctl.backend.nft.base import NetfilterState
from ipvsctl.backend.nft.wire import encode_element
from ipvsctl.errors import BackendError, DriftError
from ipvsctl.netfilter.elements import Element

__all__ = ["MemoryNetfilter"]


class MemoryNetfilter:
    """The NetfilterTable protocol in memory. ``tamper`` and ``drop_table`` act as an operator would."""

    def __init__(self) -> None:
        self._defined = False  # as written by replace(): a fresh handle has not written it
        self._present = False
        self._elements: set[Element] = set()
        self._closed = False
        self.transactions = 0  # replaces and changes that went in (tests count them)

    @property
    def elements(self) -> frozenset[Element]:
        """The elements now (an empty set when there is no table)."""
        return frozenset(self._elements)

    def tamper(self, *, add: Collection[Element] = (), delete: Collection[Element] = ()) -> None:
        """Change elements behind the agent's back (``nft add/delete element``)."""
        self._elements |= set(add)
        self._elements -= set(delete)

    def drop_table(self) -> None:
        """Delete the table behind the agent's back (``nft flush ruleset``)."""
        self._present = self._defined = False
        self._elements = set()

    def edit_definition(self) -> None:
        """Change a rule behind the agent's back: the table is there but no longer as defined."""
        self._defined = False

    async def check(self) -> None:
        """Nothing is missing in memory."""
        self._check_open()

    async def read(self) -> NetfilterState:
        """Whether the table is as defined, and its elements."""
        self._check_open()
        return NetfilterState(defined=self._defined, elements=frozenset(self._elements), present=self._present)

    async def replace(self, elements: Collection[Element]) -> None:
        """The whole table, now: definition and elements."""
        self._check_open()
        for name, value in elements:
            encode_element(name, value)  # the kernel refuses what does not fit its set: so does the fake
        self._present = self._defined = True
        self._elements = set(elements)
        self.transactions += 1

    async def change(self, *, add: Collection[Element], delete: Collection[Element]) -> None:
        """All or nothing: a missing table or a missing element to delete refuses the whole change."""
        self._check_open()
        if not self._present:
            raise DriftError("no such table", target="inet ipvsctl", errno=errno.ENOENT)
        missing = [element for element in delete if element not in self._elements]
        if missing:
            raise DriftError(f"no such element {missing[0]!r}", target="inet ipvsctl", errno=errno.ENOENT)
        for name, value in add:
            encode_element(name, value)
        self._elements -= set(delete)
        self._elements |= set(add)
        self.transactions += 1

    async def remove(self) -> bool:
        """Delete the table; whether there was one."""
        self._check_open()
        present = self._present
        self.drop_table()
        return present

    async def close(self) -> None:
        """Later calls raise BackendError."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError("closed", target="inet ipvsctl")
