"""ipvsctl's nftables table in the kernel: its definition through ``nft -f``, its elements over netlink.

The definition (sets and chains, ``netfilter.ruleset``) is written rarely: when this handle first writes
the table, and whenever a read finds it changed (``nft flush ruleset``, a rule edited by hand). A table
that is there (as defined or not) is rewritten whole, definition and every element, by one ``nft -f``
transaction, so it never goes from one state to another through a half-written one. A table that is not
there is created in two transactions, because ``nft`` parsing tens of thousands of elements is most of
its cost (1.9 s of 50,000 under the lab's emulation): ``nft -f`` writes the definition dormant (its chains
off their hooks, so no packet meets them), then one netlink transaction adds every element and wakes the
table. Until that commits the node behaves as without the table, as it did before; if it is refused, the
dormant table is deleted again. A read compares the table's flags, chains and rules, as the kernel gives
them, with what it gave right after the handle's own write: any difference means "not as defined".

Elements change with the Services and go over netlink in one nf_tables transaction per change
(``wire.py``), without a process per change. The ``nft`` binary comes from Debian's ``nftables``
package; ``check`` refuses to start without it or without the kernel's support (``nft -c``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import shutil
from collections.abc import Collection, Sequence
from functools import partial
from itertools import chain, repeat
from typing import Final

from ipvsctl.backend.netlink.channel import NetlinkChannel, blocking
from ipvsctl.backend.netlink.message import (
    NLM_F_ACK,
    NLMSG_ERROR,
    Buffer,
    KernelRefusalError,
    Reply,
    WireFormatError,
    iter_replies,
)
from ipvsctl.backend.netlink.netns import netlink_descriptor
from ipvsctl.backend.nft.base import NetfilterState
from ipvsctl.backend.nft.wire import (
    NETLINK_NETFILTER,
    NFGENMSG_SIZE,
    batch_begin,
    batch_end,
    chunks,
    decode_elements,
    definition_dump_request,
    dump_request,
    element_message,
    encode_element,
    table_flags,
    table_flags_message,
    table_request,
)
from ipvsctl.errors import BackendError, DriftError
from ipvsctl.netfilter.elements import Element, Kind, set_name
from ipvsctl.netfilter.ruleset import FAMILY, TABLE, create_dormant, replace_table, table_definition

__all__ = ["KernelNetfilter"]

TARGET: Final = f"{FAMILY} {TABLE}"
NFT_TIMEOUT_SECONDS: Final = 120.0
_SETS: Final = tuple(set_name(kind, family) for family in (4, 6) for kind in Kind)
_DRIFT: Final = frozenset({errno.ENOENT, errno.ESRCH, errno.EEXIST})
_OUTPUT_LINES = 4  # of nft's complaint, in an error message
_Message = tuple[str, list[bytes], bool]  # an element message's set, its encoded elements, whether it deletes


class KernelNetfilter:
    """The NetfilterTable protocol over the kernel, optionally in another network namespace (a name)."""

    def __init__(
        self,
        *,
        netns: str | None = None,
        masquerade_bit: int,
        cluster_cidrs: Sequence[str] = (),
        nft: str = "nft",
    ) -> None:
        self._netns = netns
        self._masquerade_bit = masquerade_bit
        self._cluster_cidrs = tuple(cluster_cidrs)
        self._nft = nft
        self._channel: NetlinkChannel | None = None
        self._written: bytes | None = None  # the definition as dumped right after this handle wrote it
        self._last_count = 0  # elements found by the last read: a large read runs in a worker thread
        self._lock = asyncio.Lock()
        self._closed = False

    # --- the protocol ------------------------------------------------------------------------------------

    async def check(self) -> None:
        """BackendError when ``nft`` is missing or the kernel cannot hold the table (nothing is changed)."""
        if shutil.which(self._nft) is None:
            raise BackendError(
                f"{self._nft} not found: install Debian's nftables package (or run with --no-netfilter)",
                target=TARGET,
                errno=errno.ENOENT,
            )
        definition = table_definition(masquerade_bit=self._masquerade_bit, cluster_cidrs=self._cluster_cidrs)
        await self._run_nft("-c", "-f", "-", text=definition, what="check the table against this kernel")

    async def read(self) -> NetfilterState:
        """Whether the table is as this handle wrote it, and its elements (none when it is not there)."""
        async with self._lock:
            channel = self._open()
            definition = await blocking(lambda: self._definition(channel), size=0)
            elements: set[Element] = set()
            for name in _SETS:
                try:
                    values = await blocking(partial(self._elements_of, channel, name), size=self._last_count)
                except KernelRefusalError as refusal:
                    if refusal.errno in _DRIFT:
                        return NetfilterState(
                            defined=False, elements=frozenset(elements), present=definition is not None
                        )
                    raise self._kernel_error(refusal, f"read set {name}") from refusal
                elements.update(zip(repeat(name), values))
            self._last_count = len(elements)
        defined = definition is not None and definition == self._written
        return NetfilterState(defined=defined, elements=frozenset(elements), present=definition is not None)

    async def replace(self, elements: Collection[Element]) -> None:
        """The table re-created with its definition and ``elements``: one ``nft -f`` transaction when a table
        is there; when none is, a dormant definition, then the elements and the waking in one transaction."""
        messages = _changes(elements, delete=False)  # refuse what the kernel would, before anything is written
        async with self._lock:
            channel = self._open()
            present = await blocking(lambda: self._definition(channel), size=0) is not None
            if present:
                text = replace_table(elements, masquerade_bit=self._masquerade_bit, cluster_cidrs=self._cluster_cidrs)
                await self._run_nft("-f", "-", text=text, what="write the table")
            else:
                await self._create(channel, messages, count=len(elements))
            self._written = await blocking(lambda: self._definition(channel), size=0)

    async def change(self, *, add: Collection[Element], delete: Collection[Element]) -> None:
        """Delete and add elements in one transaction (deletes first); DriftError when the kernel refuses."""
        messages = _changes(delete, delete=True) + _changes(add, delete=False)
        if not messages:
            return
        async with self._lock:
            channel = self._open()
            await blocking(lambda: self._transaction(channel, messages), size=len(add) + len(delete))

    async def remove(self) -> bool:
        """``nft delete table inet ipvsctl``; whether there was one to delete."""
        async with self._lock:
            channel = self._open()
            present = await blocking(lambda: self._definition(channel), size=0) is not None
            if present:
                await self._run_nft("delete", "table", FAMILY, TABLE, text=None, what="delete the table")
            self._written = None
            return present

    async def close(self) -> None:
        """Close the socket; later calls raise BackendError."""
        self._closed = True
        async with self._lock:
            if self._channel is not None:
                self._channel.close()
                self._channel = None

    async def _create(self, channel: NetlinkChannel, messages: list[_Message], *, count: int) -> None:
        """The table where there was none: defined dormant, then filled and woken in one transaction.

        A refused transaction leaves nothing: the dormant table (never on a hook) is deleted again.
        """
        self._written = None
        text = create_dormant(masquerade_bit=self._masquerade_bit, cluster_cidrs=self._cluster_cidrs)
        await self._run_nft("-f", "-", text=text, what="write the table")
        try:
            await blocking(lambda: self._transaction(channel, messages, wake=True), size=count)
        except BackendError:
            with contextlib.suppress(BackendError):
                await self._run_nft("delete", "table", FAMILY, TABLE, text=None, what="delete the table")
            raise

    # --- netlink -----------------------------------------------------------------------------------------

    def _open(self) -> NetlinkChannel:
        if self._closed:
            raise BackendError("closed", target=TARGET)
        if self._channel is None:
            descriptor = netlink_descriptor(netns=self._netns, protocol=NETLINK_NETFILTER)
            self._channel = NetlinkChannel(descriptor, protocol=NETLINK_NETFILTER, target=TARGET)
        return self._channel

    def _definition(self, channel: NetlinkChannel) -> bytes | None:
        """The table's flags, chains and rules as the kernel gives them; None when the table has no chain.

        The flags make a table left dormant (by hand, or by a process stopped between the two steps of a
        creation) read as changed: its chains are off their hooks, whatever they say.
        """
        parts: list[bytes] = []
        try:
            flags = channel.request(lambda _, seq, extra: table_request(table=TABLE, seq=seq, flags=extra), _flags)
            for rules in (False, True):
                request = definition_dump_request(table=TABLE, rules=rules, seq=channel.sequences(1))
                replies, _ = channel.dump(request, one=_definition_part, context=None)
                parts.extend(replies)
        except KernelRefusalError as refusal:
            if refusal.errno in _DRIFT:
                return None
            raise self._kernel_error(refusal, "read the table") from refusal
        return b"".join([*flags, *parts]) if parts else None

    def _elements_of(self, channel: NetlinkChannel, name: str) -> list[tuple[str | int, ...]]:
        request = dump_request(table=TABLE, name=name, seq=channel.sequences(1))
        try:
            pages, _ = channel.dump(request, one=decode_elements, context=name)
        except WireFormatError as error:
            raise BackendError(f"unreadable elements of set {name}: {error}", target=TARGET) from error
        return list(chain.from_iterable(pages))

    def _transaction(self, channel: NetlinkChannel, messages: list[_Message], *, wake: bool = False) -> None:
        """Begin, the element messages (then, when ``wake``, the table's flags cleared), end, in one sendmsg
        (the kernel needs the whole batch at once).

        Each message asks for an acknowledgement; the kernel answers them (and errors) once it has
        committed or aborted the batch. The first refusal means nothing went in (the kernel's rule).
        """
        extra = 1 if wake else 0
        first = channel.sequences(len(messages) + extra + 2)
        last = first + len(messages) + extra  # the last message before the end
        parts = [batch_begin(first)]
        for offset, (name, elements, delete) in enumerate(messages, start=1):
            parts.append(
                element_message(
                    table=TABLE, name=name, elements=elements, delete=delete, seq=first + offset, flags=NLM_F_ACK
                )
            )
        if wake:
            parts.append(table_flags_message(table=TABLE, flags=0, seq=last, message_flags=NLM_F_ACK))
        parts.append(batch_end(last + 1))
        channel.send(b"".join(parts))
        refusal = 0
        while True:
            for reply in iter_replies(channel.receive()):
                if reply.type != NLMSG_ERROR or not first <= reply.seq <= last:
                    continue  # not an answer of this batch
                if reply.error and not refusal:
                    refusal = reply.error
                if reply.seq == last or (reply.seq == first and reply.error):
                    if refusal:
                        error_type = DriftError if refusal in _DRIFT else BackendError
                        raise error_type(
                            f"change refused: {KernelRefusalError(refusal).message}", target=TARGET, errno=refusal
                        )
                    return

    def _kernel_error(self, refusal: KernelRefusalError, what: str) -> BackendError:
        return BackendError(f"{what}: {refusal.message}", target=TARGET, errno=refusal.errno)

    # --- nft -----------------------------------------------------------------------------------------------

    async def _run_nft(self, *args: str, text: str | None, what: str) -> None:
        """Run ``nft ARGS`` (in the namespace), ``text`` on its standard input; BackendError with its complaint."""
        argv = [self._nft, *args]
        if self._netns is not None:
            argv = ["ip", "netns", "exec", self._netns, *argv]
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if text is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as error:
            raise BackendError(f"cannot run {argv[0]}: {error.strerror or error}", target=TARGET) from error
        try:
            async with asyncio.timeout(NFT_TIMEOUT_SECONDS):
                _, stderr = await process.communicate(text.encode() if text is not None else None)
        except TimeoutError as error:
            process.kill()
            await process.wait()
            raise BackendError(f"nft did not {what} within {NFT_TIMEOUT_SECONDS:g} s", target=TARGET) from error
        if process.returncode:
            complaint = " / ".join(stderr.decode(errors="replace").strip().splitlines()[:_OUTPUT_LINES])
            raise BackendError(f"nft could not {what}: {complaint or f'exit {process.returncode}'}", target=TARGET)


def _flags(reply: Reply) -> bytes:
    """The table's flags, as the first bytes of its definition."""
    try:
        return table_flags(reply.payload).to_bytes(4, "big")
    except WireFormatError as error:
        raise BackendError(f"unreadable table: {error}", target=TARGET) from error


def _definition_part(payload: Buffer, _context: None) -> bytes:
    """A chain or rule as dumped, less its nfgenmsg header: that carries the ruleset's generation (res_id),
    which every element change bumps, and is no part of the definition."""
    return bytes(payload[NFGENMSG_SIZE:])


def _changes(elements: Collection[Element], *, delete: bool) -> list[_Message]:
    """Element messages, one per set and run of at most ELEMENTS_PER_MESSAGE: (set, encoded elements, delete)."""
    by_set: dict[str, list[bytes]] = {}
    for name, value in elements:
        by_set.setdefault(name, []).append(encode_element(name, value))
    return [(name, list(run), delete) for name in sorted(by_set) for run in chunks(by_set[name])]
