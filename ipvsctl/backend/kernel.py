"""The kernel backend: the IPVS table over generic netlink and the agent's dummy interface over rtnetlink.

Owns the backend's logic over both sockets and what their failures mean. A kernel refusal of one operation
becomes an ``OperationFailure`` in the ApplyReport; any other refusal, an answer that is not the netlink it
should be (``WireFormatError``, ``struct.error``) and a socket failure become a ``BackendError`` that keeps
its cause. Anything else is a bug: it goes up as it is, with its traceback, to whoever supervises the call.

IPVS requests go through an ``IpvsTransport`` (``ipvs.transport``): the lean one by default (``wire="lean"``,
batched raw netlink, ``ipvs.lean``) or pyroute2's (``wire="pyroute2"``), the reference, imported only when
asked for. The attribute encoding is ``ipvs.codec``'s; see PYROUTE2-IPVS.md for the traps it avoids
(``update`` deletes, ``set`` resets omitted fields, dumps on one socket must not overlap). Operations are
checked first (``limits``), then applied in waves (``apply_in_waves``): the k-th operation of every service
together, which lets the lean transport send thousands in a few system calls.

The interface (``rtnl.interface``, one rtnetlink socket): only a dummy is the agent's. A link of that name is
looked up with one RTM_GETLINK (its index, flags and kind); any other kind is refused (``limits``) before its
addresses are read, changed or the link deleted. Its addresses: a full read dumps them; a partial read
(``only=``) answers from the record this backend keeps of them (refreshed by every full read and every
bind), so a sync of one Service does not dump 10,000 addresses. A scoped bind (``within=``) adds or removes
just its addresses.

Network namespaces: with ``netns=`` (a name under /run/netns, or a path to a namespace file) every socket
is opened inside that namespace (``netlink.netns``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import struct
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Literal, Self, TypeVar

from ipvsctl.backend.base import (
    ApplyReport,
    IpvsTimeouts,
    KernelState,
    OperationFailure,
    RealServerStats,
    TrafficStats,
    apply_in_waves,
    canonical_addresses,
    check_timeouts,
)
from ipvsctl.backend.ipvs.codec import DecodedDest, ServiceRecord, timeouts_set_request
from ipvsctl.backend.ipvs.lean import LeanTransport
from ipvsctl.backend.ipvs.transport import IpvsTransport
from ipvsctl.backend.limits import (
    DEFAULT_INTERFACE,
    DUMMY_KIND,
    encoding_problem,
    foreign_interface_error,
    valid_interface_name,
)
from ipvsctl.backend.netlink.channel import blocking
from ipvsctl.backend.netlink.collector import collector_paused
from ipvsctl.backend.netlink.message import KernelRefusalError, WireFormatError
from ipvsctl.backend.netlink.netns import NETLINK_GENERIC, NETLINK_ROUTE, netlink_descriptor
from ipvsctl.backend.rtnl.interface import Interface
from ipvsctl.backend.rtnl.links import IFF_UP, LinkReply
from ipvsctl.errors import BackendError
from ipvsctl.model import ConnectionCounts, Operation, RealServerKey, ServiceKey, Table

__all__ = ["WIRES", "NetlinkBackend", "Wire"]

Wire = Literal["lean", "pyroute2"]
WIRES: tuple[Wire, ...] = ("lean", "pyroute2")

_IPVS = "IPVS"
_RealRef = tuple[ServiceKey, RealServerKey]
_V = TypeVar("_V")


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
        self._link: Interface | None = None
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
        with collector_paused():  # what a read makes lives on: collections in the middle would only walk it
            async with self._ipvs_lock, kernel_answers(_IPVS):
                records = await (await self._transport()).read(keys)
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

    async def traffic(self) -> TrafficStats:
        """One stats dump: a service dump and a destination dump per service, every counter and rate decoded."""
        async with self._ipvs_lock, kernel_answers(_IPVS):
            records = await (await self._transport()).traffic()
        return TrafficStats(
            services={key: traffic for key, traffic, _ in records},
            real_servers={(key, real): traffic for key, _, reals in records for real, traffic, _ in reals},
            connections={(key, real): counts for key, _, reals in records for real, _, counts in reals},
        )

    async def service_keys(self, addresses: Collection[str] | None) -> frozenset[ServiceKey]:
        """The keys of every virtual service at ``addresses`` (None: all), from one service dump (no destinations)."""
        async with self._ipvs_lock, kernel_answers(_IPVS):
            keys = await (await self._transport()).service_keys()
        if addresses is None:
            return frozenset(keys)
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
            async with kernel_answers(_IPVS):
                transport = await self._transport()
                codes = await transport.perform([operations[index] for index in sendable])
            for index, code in zip(sendable, codes, strict=True):
                if code:
                    outcomes[index] = OperationFailure(operations[index], code, os.strerror(code))
        return outcomes

    async def timeouts(self) -> IpvsTimeouts:
        """The connection timeouts (GET_CONFIG)."""
        async with self._ipvs_lock, kernel_answers(_IPVS):
            return await (await self._transport()).timeouts()

    async def set_timeouts(self, timeouts: IpvsTimeouts) -> None:
        """SET_CONFIG with all three (0 keeps one); BackendError with the kernel's errno when it refuses them."""
        check_timeouts(timeouts)
        async with self._ipvs_lock, kernel_answers(_IPVS):
            (code,) = await (await self._transport()).execute([timeouts_set_request(timeouts)])
        if code:
            raise BackendError(f"cannot set the timeouts ({timeouts}): {os.strerror(code)}", target=_IPVS, errno=code)

    async def _transport(self) -> IpvsTransport:
        if self._ipvs is None:
            self._check_open()
            descriptor = netlink_descriptor(netns=self._netns, protocol=NETLINK_GENERIC)
            if self._wire == "pyroute2":
                from ipvsctl.backend.ipvs.pyroute2 import open_pyroute2  # noqa: PLC0415  pyroute2 only when asked for

                self._ipvs = await open_pyroute2(descriptor)
            else:
                self._ipvs = LeanTransport(descriptor)
        return self._ipvs

    # --- the interface ----------------------------------------------------------------------------------

    async def bind_addresses(self, addresses: Collection[str], *, within: Collection[str] | None = None) -> None:
        """Make the interface hold exactly ``addresses`` (of ``within``), /32 or /128, creating it if missing."""
        wanted = canonical_addresses(addresses)
        scope = None if within is None else canonical_addresses(within)
        async with self._link_lock, kernel_answers(self._interface):
            link = self._interface_socket()
            index = self._ensure_dummy(link)
            if scope is None:
                current = await asyncio.to_thread(link.addresses, index)
                adding = wanted - set(current)
                removing = {address: current[address] for address in set(current) - wanted}
            else:
                # Small by design: add every wanted address (EEXIST is fine) and remove the rest of the
                # scope, so an address lost behind the record's back is put back too.
                adding = wanted & scope
                removing = {address: 128 if ":" in address else 32 for address in scope - wanted}
            if adding:
                await blocking(lambda: link.add(index, adding), size=len(adding))
            if removing:
                await blocking(lambda: link.remove(index, removing), size=len(removing))
            if scope is None:
                self._bound = frozenset(wanted)
            elif self._bound is not None:
                self._bound = (self._bound - scope) | (wanted & scope)

    async def check_interface(self) -> None:
        """Refuse an interface of this name that is not a dummy (BackendError naming its kind); change nothing."""
        async with self._link_lock, kernel_answers(self._interface):
            self._dummy(self._interface_socket())

    async def remove_interface(self) -> bool:
        """Delete the dummy interface and its addresses; False when it is absent, BackendError for another kind."""
        async with self._link_lock, kernel_answers(self._interface):
            link = self._interface_socket()
            found = self._dummy(link)
            if found is not None:
                link.delete(found.index)
            self._bound = frozenset()
            return found is not None

    async def host_addresses(self) -> frozenset[str]:
        """The global-scope addresses of every interface but the agent's: one address dump."""
        async with self._link_lock, kernel_answers(self._interface):
            link = self._interface_socket()
            found = self._dummy(link)
            return await asyncio.to_thread(link.other_addresses, 0 if found is None else found.index)

    async def _bound_addresses(self) -> frozenset[str]:
        async with self._link_lock, kernel_answers(self._interface):
            link = self._interface_socket()
            found = self._dummy(link)
            if found is None:
                self._bound = frozenset()
            else:
                self._bound = frozenset(await asyncio.to_thread(link.addresses, found.index))
            return self._bound

    def _dummy(self, link: Interface) -> LinkReply | None:
        """The interface, None when there is none; BackendError (and nothing read) when it is not a dummy."""
        found = link.link()
        if found is not None and found.kind != DUMMY_KIND:
            raise foreign_interface_error(interface=self._interface, kind=found.kind)
        return found

    def _ensure_dummy(self, link: Interface) -> int:
        found = self._dummy(link)
        if found is None:
            link.create(DUMMY_KIND)
            found = self._dummy(link)  # one made meanwhile by someone else is checked as well
            if found is None:
                raise BackendError("interface vanished right after it was created", target=self._interface)
        if not found.flags & IFF_UP:
            link.set_up(found.index)
        return found.index

    def _interface_socket(self) -> Interface:
        if self._link is None:
            self._check_open()
            descriptor = netlink_descriptor(netns=self._netns, protocol=NETLINK_ROUTE)
            self._link = Interface(descriptor, name=self._interface)
        return self._link

    # --- lifecycle --------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close both sockets; later calls raise BackendError."""
        self._closed = True
        async with self._ipvs_lock, self._link_lock:
            for sock in (self._ipvs, self._link):
                if sock is not None:
                    with contextlib.suppress(OSError):  # closing is best effort: the descriptors go either way
                        sock.close()
            self._ipvs = self._link = None

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError("backend closed", target="netlink")


@contextlib.asynccontextmanager
async def kernel_answers(target: str) -> AsyncIterator[None]:
    """Name what the kernel answered as a BackendError keeping its cause; let our own errors and bugs through.

    A refusal (KernelRefusalError) keeps its errno; bytes that are not the netlink they claim to be
    (WireFormatError, struct.error) are EPROTO; a socket failure keeps its errno. Any other exception is
    not an answer of the kernel but a bug, and goes up unchanged, traceback and all.
    """
    try:
        yield
    except KernelRefusalError as error:
        raise BackendError(error.message, target=target, errno=error.errno) from error
    except (WireFormatError, struct.error) as error:
        raise BackendError(f"unreadable or unencodable netlink: {error}", target=target, errno=errno.EPROTO) from error
    except OSError as error:
        raise BackendError(error.strerror or str(error), target=target, errno=error.errno or 0) from error


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
            self._index = {(service.key, dest.key): value(dest) for service, dests in self._records for dest in dests}
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
        return dest.connections


class LazyStats(_ByRealServer[RealServerStats]):
    """Stats by real server, made ``RealServerStats`` only when asked for (a sync never looks at them)."""

    __slots__ = ()

    def _value(self, dest: DecodedDest) -> RealServerStats:
        return RealServerStats(*dest.counters)
