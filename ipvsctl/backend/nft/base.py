"""The one interface to ipvsctl's nftables table: the ``NetfilterTable`` protocol and what it reads.

Two implementations, checked by one contract suite (``tests/contract/test_contract_netfilter.py``):
``backend.nft.kernel`` (``nft -f`` for the table's definition, netlink for its elements) and
``backend.nft.memory`` (a stateful fake that can be tampered with, as an operator might).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Protocol

from ipvsctl.netfilter.elements import Element

__all__ = ["NetfilterState", "NetfilterTable"]


@dataclass(frozen=True, slots=True)
class NetfilterState:
    """What a read finds: whether the table is there exactly as the agent defined it, and its elements.

    ``defined`` False (absent, edited, flushed, or never written by this handle): only a rewrite of the
    whole table (``replace``) makes it right; ``elements`` is then what could be read, if anything.
    """

    defined: bool
    elements: frozenset[Element] = field(default_factory=frozenset)
    present: bool = False  # the table exists (as defined or not)


class NetfilterTable(Protocol):
    """ipvsctl's own nftables table; no other table, chain or rule is ever read or changed."""

    async def check(self) -> None:
        """Refuse to start (BackendError naming what is missing) when the table cannot be written here."""
        ...

    async def read(self) -> NetfilterState:
        """The table's state now."""
        ...

    async def replace(self, elements: Collection[Element]) -> None:
        """Make the table exactly its definition holding ``elements``, in one transaction."""
        ...

    async def change(self, *, add: Collection[Element], delete: Collection[Element]) -> None:
        """Add and delete elements in one transaction: all or nothing.

        DriftError when the kernel refuses it (an element to delete is gone, the table is gone): the caller
        reads the table again and plans from what is there.
        """
        ...

    async def remove(self) -> bool:
        """Delete the table (``ipvsctl cleanup``); whether there was one."""
        ...

    async def close(self) -> None:
        """Release sockets; later calls raise BackendError."""
        ...
