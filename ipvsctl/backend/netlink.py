"""The kernel backend: the IPVS table over generic netlink and the agent's dummy interface over rtnetlink.

Owns the backend's logic over both sockets; no pyroute2 exception leaves it — a kernel refusal of one
operation becomes an ``OperationFailure`` in the ApplyReport, anything else a ``BackendError``. IPVS
requests go through an ``IpvsTransport`` (``ipvs_transport``): the lean one by default (``wire="lean"``,
batched raw netlink, ``ipvs_lean``) or pyroute2's (``wire="pyroute2"``), the reference. The attribute
encoding is ``netlink_codec``'s; see PYROUTE2-IPVS.md for the traps it avoids (``update`` deletes,
``set`` resets omitted fields, dumps on one socket must not overlap).

Operations are applied in waves (``apply_in_waves``): the k-th operation of every service together,
which lets the lean transport send thousands in a few system calls.

The interface: only a dummy is the agent's. A link of that name is looked up with one RTM_GETLINK (its
index, flags and IFLA_INFO_KIND); any other kind is refused (``rtnl_link``) before its addresses are read,
changed or the link deleted. Its addresses: a full read dumps them; a partial read (``only=``) answers
from the record this backend keeps of them (refreshed by every full read and every bind), so a sync of
one Service does not dump 10,000 addresses. A scoped bind (``within=``) adds or removes just its addresses.

Network namespaces: with ``netns=`` (a name under /run/netns, or a path to a namespace file) every
socket is opened inside that namespace (``netns.netlink_descriptor``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ipvsctl.backend.base import (
    ApplyReport,
    KernelState,
    OperationFailure,
    RealServerStats,
    apply_in_waves,
    canonical_addresses,
)
from ipvsctl.backend.ipvs_lean import LeanTransport
from ipvsctl.backend.ipvs_pyroute2 import Pyroute2Transport, open_pyroute2_ipvs
from ipvsctl.backend.ipvs_transport import DecodedDest, IpvsTransport, KernelRefusalError, ServiceRecord
from ipvsctl.backend.netlink_codec import (
    encoding_problem,
    request_for,
)
from ipvsctl.backend.netns import NETLINK_GENERIC, NETLINK_ROUTE, netlink_descriptor
from ipvsctl.backend.rtnl_lean import LeanAddresses
from ipvsctl.backend.rtnl_link import DEFAULT_INTERFACE, DUMMY_KIND, foreign_interface_error, valid_interface_name
from ipvsctl.errors import BackendError
from ipvsctl.model import (
    ConnectionCounts,
    Operation,
    RealServerKey,
    ServiceKey,
    Table,
)

__all__ = ["DEFAULT_INTERFACE", "WIRES", "NetlinkBackend", "Wire"]

Wire = Literal["lean", "pyroute2"]
WIRES: tuple[Wire, ...] = ("lean", "pyroute2")

_IFF_UP = 0x1
_GONE_ERRNOS = frozenset({errno.ENODEV, errno.EADDRNOTAVAIL, errno.ENOENT})

_RealRef = tuple[ServiceKey, RealServerKey]
_T = TypeVar("_T")
_V = TypeVar("_V")
_THREAD_THRESHOLD = 64


@dataclass(frozen=True, slots=True)
class _Link:
    """The agent's dummy interface as RTM_GETLINK answers it."""

    index: int
    flags: int


class NetlinkBackend:
    """The Backend protocol over the kernel: IPVS through an ``IpvsTransport``, VIPs on a dummy interface.

    Sockets open on first use. Requests on each socket run one at a time (two dumps at once on one
    socket fail with EBUSY, and concurrency would not speed anything up).
    """

    def __init__(self, *, interface: str = DEFAULT_INTERFACE, netns: str | None = None, wire: Wire = "lean") -> None:
        if wire not in WIRES:
            raise BackendError(f"unknown wire {wire!r} (one of {', '.join(WIRES)})", target="netlink")
        self._interface = valid_interface_name(interface)
        self._netns = netns
        self._wire = wire
        self._ipvs: IpvsTransport | None = None
        self._ipr: Any = None  # pyroute2 AsyncIPRoute, for the link itself
        self._addresses_lean: LeanAddresses | None = None  # the link's addresses, many at a time
        self._ipvs_lock = asyncio.Lock()
        self._link_lock = asyncio.Lock()
        self._bound: frozenset[str] | None = None  # the interface's addresses as last read or bound
        self._closed = False

    @property
    def interface(self) -> str:
        """Name of the dummy interface that holds the VIPs."""
        return self._interface

    @property
    def wire(self) -> Wire:
        """Which IPVS transport this backend uses."""
        return self._wire

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()

    # --- IPVS -------------------------------------------------------------------------------------------

    async def read(self, *, only: Collection[ServiceKey] | None = None) -> KernelState:
        """The table (or the ``only`` keys of it) with counts, stats and the bound addresses."""
        keys = None if only is None else list(dict.fromkeys(only))
        async with self._ipvs_lock, _translated("read IPVS table"):
            transport = await self._transport()
            try:
                records = await transport.read(keys)
            except (TypeError, ValueError) as error:  # an answer the decoders cannot read
                raise BackendError(f"unreadable IPVS answer: {error}", target="IPVS", errno=errno.EPROTO) from None
        services = {service.key: service for service, _ in records}
        if keys is None:
            bound = await self._bound_addresses()
        else:
            known = self._bound if self._bound is not None else await self._bound_addresses()
            bound = frozenset(key.address for key in keys if key.address in known)
        return KernelState(
            table=Table(services),
            connections=LazyConnections(records),
            stats=LazyStats(records),
            bound_addresses=bound,
        )

    async def service_keys(self, addresses: Collection[str]) -> frozenset[ServiceKey]:
        """The keys of every virtual service at ``addresses``, from one service dump (no destinations)."""
        async with self._ipvs_lock, _translated("read IPVS services"):
            transport = await self._transport()
            try:
                keys = await transport.service_keys()
            except (TypeError, ValueError) as error:  # an answer the decoders cannot read
                raise BackendError(f"unreadable IPVS answer: {error}", target="IPVS", errno=errno.EPROTO) from None
        return frozenset(key for key in keys if key.address in addresses)

    async def apply(self, operations: Sequence[Operation]) -> ApplyReport:
        """Apply operations (in waves); a refused one is reported and the rest of its service skipped."""
        async with self._ipvs_lock:
            return await apply_in_waves(operations, self._attempt_all)

    async def _attempt_all(self, operations: Sequence[Operation]) -> list[OperationFailure | None]:
        """Attempt independent operations: refuse what cannot be encoded, send the rest together."""
        outcomes: list[OperationFailure | None] = [None] * len(operations)
        sendable: list[int] = []
        for index, operation in enumerate(operations):
            problem = encoding_problem(operation)
            if problem is None:
                sendable.append(index)
            else:
                outcomes[index] = OperationFailure(operation, problem.errno, problem.message)
        if sendable:
            async with _translated("apply IPVS operations"):
                transport = await self._transport()
                codes = await transport.execute([request_for(operations[index]) for index in sendable])
            for index, code in zip(sendable, codes, strict=True):
                if code:
                    outcomes[index] = OperationFailure(operations[index], code, os.strerror(code))
        return outcomes

    async def _transport(self) -> IpvsTransport:
        if self._ipvs is None:
            self._check_open()
            ipvs = await open_pyroute2_ipvs(netlink_descriptor(netns=self._netns, protocol=NETLINK_GENERIC))
            if self._wire == "pyroute2":
                self._ipvs = Pyroute2Transport(ipvs)
            else:
                family_id = int(ipvs.prid)  # pyroute2 resolves the "IPVS" family; the lean socket speaks it
                ipvs.close()
                descriptor = netlink_descriptor(netns=self._netns, protocol=NETLINK_GENERIC)
                try:
                    self._ipvs = LeanTransport(descriptor, family_id=family_id)
                except BaseException:
                    os.close(descriptor)
                    raise
        return self._ipvs

    # --- the interface ----------------------------------------------------------------------------------

    async def bind_addresses(self, addresses: Collection[str], *, within: Collection[str] | None = None) -> None:
        """Make the interface hold exactly ``addresses`` (of ``within``), /32 or /128, creating it if missing."""
        wanted = canonical_addresses(addresses)
        scope = None if within is None else canonical_addresses(within)
        async with self._link_lock, _translated(self._interface):
            ipr = await self._route_socket()
            index = await self._ensure_interface(ipr)
            if scope is None:
                current = await self._addresses(index)
                adding = wanted - set(current)
                removing = {address: current[address] for address in set(current) - wanted}
            else:
                # Small by design: add every wanted address (EEXIST is fine) and remove the rest of the
                # scope, so an address lost behind the record's back is put back too.
                adding = wanted & scope
                removing = {address: 128 if ":" in address else 32 for address in scope - wanted}
            lean = self._address_channel()
            await _maybe_in_thread(lean.add, index, adding, size=len(adding))
            await _maybe_in_thread(lean.delete, index, removing, size=len(removing))
            if scope is None:
                self._bound = frozenset(wanted)
            elif self._bound is not None:
                self._bound = (self._bound - scope) | (wanted & scope)

    async def check_interface(self) -> None:
        """Refuse an interface of this name that is not a dummy (BackendError naming its kind); change nothing."""
        async with self._link_lock, _translated(self._interface):
            await self._link(await self._route_socket())

    async def remove_interface(self) -> bool:
        """Delete the dummy interface and its addresses; False when it is absent, BackendError for another kind."""
        async with self._link_lock, _translated(self._interface):
            ipr = await self._route_socket()
            link = await self._link(ipr)
            if link is not None:
                await _tolerating(ipr.link("del", index=link.index), *_GONE_ERRNOS)
            self._bound = frozenset()
            return link is not None

    async def _bound_addresses(self) -> frozenset[str]:
        async with self._link_lock, _translated(self._interface):
            link = await self._link(await self._route_socket())
            self._bound = frozenset() if link is None else frozenset(await self._addresses(link.index))
            return self._bound

    async def _link(self, ipr: Any) -> _Link | None:
        """The interface, None when there is none; BackendError (and nothing read) when it is not a dummy."""
        try:
            (link,) = await ipr.link("get", ifname=self._interface)
        except NetlinkError as error:
            if error.code == errno.ENODEV:
                return None
            raise
        kind = link.get(("IFLA_LINKINFO", "IFLA_INFO_KIND"))
        if kind != DUMMY_KIND:
            raise foreign_interface_error(interface=self._interface, kind=str(kind or ""))
        return _Link(index=int(link["index"]), flags=int(link["flags"]))

    async def _ensure_interface(self, ipr: Any) -> int:
        link = await self._link(ipr)
        if link is None:
            await _tolerating(ipr.link("add", ifname=self._interface, kind=DUMMY_KIND), errno.EEXIST)
            link = await self._link(ipr)  # one made meanwhile by someone else is checked as well
            if link is None:
                raise BackendError("interface vanished right after it was created", target=self._interface)
        if not link.flags & _IFF_UP:
            await ipr.link("set", index=link.index, state="up")
        return link.index

    async def _addresses(self, index: int) -> dict[str, int]:
        """The agent's addresses on the interface, with their prefix lengths."""
        return await asyncio.to_thread(self._address_channel().dump, index)

    def _address_channel(self) -> LeanAddresses:
        if self._addresses_lean is None:
            self._check_open()
            descriptor = netlink_descriptor(netns=self._netns, protocol=NETLINK_ROUTE)
            try:
                self._addresses_lean = LeanAddresses(descriptor, target=self._interface)
            except BaseException:
                os.close(descriptor)
                raise
        return self._addresses_lean

    async def _route_socket(self) -> Any:
        if self._ipr is None:
            self._check_open()
            self._ipr = _adopt(AsyncIPRoute, netlink_descriptor(netns=self._netns, protocol=NETLINK_ROUTE))
        return self._ipr

    # --- lifecycle --------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close both sockets; later calls raise BackendError."""
        self._closed = True
        async with self._ipvs_lock, self._link_lock:
            for sock in (self._ipvs, self._ipr, self._addresses_lean):
                if sock is not None:
                    with contextlib.suppress(Exception):  # closing is best effort: the fds go either way
                        sock.close()
            self._ipvs = self._ipr = self._addresses_lean = None

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError("backend closed", target="netlink")


@contextlib.asynccontextmanager
async def _translated(target: str, *, refusal_is_fatal: bool = True) -> AsyncIterator[None]:
    """Let our own errors through; turn every pyroute2 (or socket) error into a BackendError."""
    try:
        yield
    except (BackendError, KernelRefusalError) as error:
        if isinstance(error, KernelRefusalError) and refusal_is_fatal:
            raise BackendError(error.message, target=target, errno=error.errno) from None
        raise
    except NetlinkError as error:
        raise BackendError(os.strerror(error.code), target=target, errno=error.code) from None
    except OSError as error:
        raise BackendError(error.strerror or str(error), target=target, errno=error.errno or 0) from None
    except Exception as error:  # pyroute2 raises a zoo of types (struct.error, KeyError, ...): wrap them all
        raise BackendError(f"{type(error).__name__}: {error}", target=target) from None


async def _maybe_in_thread(action: Callable[[int, _T], None], index: int, items: _T, *, size: int) -> None:
    """Run a blocking channel call; in a worker thread when it is large (a full bind of thousands of VIPs)."""
    if size > _THREAD_THRESHOLD:
        await asyncio.to_thread(action, index, items)
    elif size:
        action(index, items)


async def _tolerating(request: Any, *codes: int) -> None:
    """Await a pyroute2 request; a NetlinkError with one of ``codes`` means it is already done."""
    try:
        await request
    except NetlinkError as error:
        if error.code not in codes:
            raise KernelRefusalError(error.code) from None


def _adopt(socket_class: Any, descriptor: int) -> Any:
    """A pyroute2 socket object over an already open netlink socket (closing the descriptor on failure)."""
    try:
        return socket_class(fileno=descriptor)
    except BaseException:
        os.close(descriptor)
        raise


class _ByRealServer(Mapping[_RealRef, _V]):
    """Per-real-server values of a read's records, indexed on first use: a sync reads a few of them at most
    (the connections of removed servers), and indexing 30,000 at every read cost a resync a tenth of its time."""

    __slots__ = ("_index", "_records")

    def __init__(self, records: Sequence[ServiceRecord]) -> None:
        self._records = records
        self._index: dict[_RealRef, _V] | None = None

    def _value(self, dest: DecodedDest) -> _V:
        raise NotImplementedError

    def _indexed(self) -> dict[_RealRef, _V]:
        if self._index is None:
            value = self._value
            self._index = {(service.key, dest[1]): value(dest) for service, dests in self._records for dest in dests}
        return self._index

    def __getitem__(self, ref: _RealRef) -> _V:
        return self._indexed()[ref]

    def __iter__(self) -> Iterator[_RealRef]:
        return iter(self._indexed())

    def __len__(self) -> int:
        return len(self._indexed())


class LazyConnections(_ByRealServer[ConnectionCounts]):
    """Connection counts by real server."""

    __slots__ = ()

    def _value(self, dest: DecodedDest) -> ConnectionCounts:
        return dest[2]


class LazyStats(_ByRealServer[RealServerStats]):
    """Stats by real server, made ``RealServerStats`` only when asked for (a sync never looks at them)."""

    __slots__ = ()

    def _value(self, dest: DecodedDest) -> RealServerStats:
        return RealServerStats(*dest[3])
