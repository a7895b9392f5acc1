"""The kernel backend: the IPVS table over generic netlink and the agent's dummy interface over rtnetlink.

Owns the two netlink sockets and everything pyroute2: only this module imports it, and no pyroute2
exception leaves it — a kernel refusal of one operation (``NetlinkError``) becomes an
``OperationFailure`` in the ApplyReport, anything else a ``BackendError``. The attribute encoding is
``netlink_codec``'s; see PYROUTE2-IPVS.md for the traps it avoids (``update`` deletes, ``set`` resets
omitted fields, dumps on one socket must not overlap).

Network namespaces: with ``netns=`` (a name under /run/netns, or a path to a namespace file) both
sockets are opened inside that namespace. A short-lived helper thread enters it with setns(2), creates
the sockets and ends; a socket stays in the namespace it was created in, so the event loop's thread never
changes namespace. (pyroute2's own ``netns=`` forks a child process per socket instead.)
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import socket
import threading
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pyroute2 import AsyncIPRoute
from pyroute2.ipvs import AsyncIPVS
from pyroute2.netlink import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic.ipvs import GENL_VERSION, ipvsmsg

from ipvsctl.backend.base import ApplyReport, KernelState, OperationFailure, RealServerStats, apply_in_order
from ipvsctl.backend.netlink_codec import (
    STATS_COUNTERS,
    Request,
    decode_connections,
    decode_real,
    decode_service,
    decode_stats,
    dest_dump_request,
    encoding_problem,
    request_for,
    service_dump_request,
)
from ipvsctl.errors import BackendError
from ipvsctl.model import (
    ConnectionCounts,
    Operation,
    RealServer,
    RealServerKey,
    ServiceKey,
    Table,
    VirtualService,
    canonical_ip,
)

__all__ = ["DEFAULT_INTERFACE", "NetlinkBackend"]

DEFAULT_INTERFACE = "ipvs0"
NETNS_DIR = Path("/run/netns")

_CLONE_NEWNET = 0x40000000
_NETLINK_ROUTE = 0
_NETLINK_GENERIC = 16
_IFF_UP = 0x1
_IFA_F_NODAD = 0x02  # a VIP is usable at once, without duplicate address detection
_RT_SCOPE_UNIVERSE = 0  # the agent's addresses; link-scope ones (IPv6 fe80::) are the kernel's
_GONE_ERRNOS = frozenset({errno.ENODEV, errno.EADDRNOTAVAIL, errno.ENOENT})

_RealRef = tuple[ServiceKey, RealServerKey]


class NetlinkBackend:
    """The Backend protocol over the kernel: IPVS through ``AsyncIPVS``, VIPs on a dummy interface.

    Sockets open on first use. Requests on each socket run one at a time (two dumps at once on one
    socket fail with EBUSY, and concurrency would not speed anything up).
    """

    def __init__(self, *, interface: str = DEFAULT_INTERFACE, netns: str | None = None) -> None:
        self._interface = interface
        self._netns = netns
        self._ipvs: Any = None  # pyroute2 AsyncIPVS, untyped: kept inside this class
        self._ipr: Any = None  # pyroute2 AsyncIPRoute
        self._ipvs_lock = asyncio.Lock()
        self._link_lock = asyncio.Lock()
        self._closed = False

    @property
    def interface(self) -> str:
        """Name of the dummy interface that holds the VIPs."""
        return self._interface

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()

    # --- IPVS -------------------------------------------------------------------------------------------

    async def read(self) -> KernelState:
        """The whole table with connection counts, stats and the addresses bound to the interface."""
        async with self._ipvs_lock, _translated("read IPVS table"):
            services: dict[ServiceKey, VirtualService] = {}
            connections: dict[_RealRef, ConnectionCounts] = {}
            stats: dict[_RealRef, RealServerStats] = {}
            for message in await self._exchange(service_dump_request(), dump=True):
                service = decode_service(_attributes(message.get_attr("IPVS_CMD_ATTR_SERVICE")))
                if service is None:  # a protocol or family the model cannot hold: not ours to touch
                    continue
                reals: list[RealServer] = []
                for dest in await self._exchange(dest_dump_request(service.key), dump=True):
                    attributes = _attributes(dest.get_attr("IPVS_CMD_ATTR_DEST"))
                    real = decode_real(attributes, key=service.key)
                    reals.append(real)
                    connections[(service.key, real.key)] = decode_connections(attributes)
                    counters = attributes.get("IPVS_DEST_ATTR_STATS", {})
                    stats[(service.key, real.key)] = decode_stats(counters if isinstance(counters, Mapping) else {})
                services[service.key] = replace(service, reals=tuple(reals))
        bound = await self._bound_addresses()
        return KernelState(table=Table(services), connections=connections, stats=stats, bound_addresses=bound)

    async def apply(self, operations: Sequence[Operation]) -> ApplyReport:
        """Apply operations in order; a refused one is reported and the rest of its service skipped."""
        async with self._ipvs_lock:
            return await apply_in_order(operations, self._attempt)

    async def _attempt(self, operation: Operation) -> OperationFailure | None:
        problem = encoding_problem(operation)
        if problem is not None:
            return OperationFailure(operation, problem.errno, problem.message)
        try:
            async with _translated(f"{type(operation).__name__} {operation.key}", refusal_is_fatal=False):
                await self._exchange(request_for(operation), dump=False)
        except _KernelRefusalError as refusal:
            return OperationFailure(operation, refusal.errno, refusal.message)
        return None

    async def _exchange(self, request: Request, *, dump: bool) -> list[Any]:
        """Send one request on the IPVS socket and collect its answers (the caller holds the lock)."""
        ipvs = await self._ipvs_socket()
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else NLM_F_ACK)
        try:
            answers = await ipvs.nlm_request(_message(request), msg_type=ipvs.prid, msg_flags=flags)
            return [answer async for answer in answers]
        except NetlinkError as error:
            raise _KernelRefusalError(error.code) from None

    async def _ipvs_socket(self) -> Any:
        if self._ipvs is None:
            self._check_open()
            descriptor = _netlink_descriptor(netns=self._netns, protocol=_NETLINK_GENERIC)
            ipvs = _adopt(AsyncIPVS, descriptor)
            try:
                await ipvs.setup_endpoint()
            except NetlinkError as error:
                ipvs.close()
                raise BackendError("no IPVS in this kernel (modprobe ip_vs)", target="IPVS", errno=error.code) from None
            except BaseException:
                ipvs.close()
                raise
            self._ipvs = ipvs
        return self._ipvs

    # --- the interface ----------------------------------------------------------------------------------

    async def bind_addresses(self, addresses: Collection[str]) -> None:
        """Make the interface hold exactly ``addresses`` (/32 or /128), creating it (up) if missing."""
        wanted: set[str] = set()
        for address in addresses:
            try:
                wanted.add(canonical_ip(address))
            except ValueError:
                raise BackendError("not an IP address", target=address, errno=errno.EINVAL) from None
        async with self._link_lock, _translated(self._interface):
            ipr = await self._route_socket()
            index = await self._ensure_interface(ipr)
            current = await self._addresses(ipr, index)
            for address in sorted(wanted - set(current)):
                prefix = 128 if ":" in address else 32
                extra = {"flags": _IFA_F_NODAD} if prefix == 128 else {}
                await _tolerating(
                    ipr.addr("add", index=index, address=address, prefixlen=prefix, **extra), errno.EEXIST
                )
            for address in sorted(set(current) - wanted):
                await _tolerating(
                    ipr.addr("del", index=index, address=address, prefixlen=current[address]), *_GONE_ERRNOS
                )

    async def remove_interface(self) -> None:
        """Delete the interface and its addresses; nothing to do if it is absent."""
        async with self._link_lock, _translated(self._interface):
            ipr = await self._route_socket()
            index = await self._interface_index(ipr)
            if index is not None:
                await _tolerating(ipr.link("del", index=index), *_GONE_ERRNOS)

    async def _bound_addresses(self) -> frozenset[str]:
        async with self._link_lock, _translated(self._interface):
            ipr = await self._route_socket()
            index = await self._interface_index(ipr)
            return frozenset() if index is None else frozenset(await self._addresses(ipr, index))

    async def _interface_index(self, ipr: Any) -> int | None:
        indices = await ipr.link_lookup(ifname=self._interface)
        return int(indices[0]) if indices else None

    async def _ensure_interface(self, ipr: Any) -> int:
        index = await self._interface_index(ipr)
        if index is None:
            await _tolerating(ipr.link("add", ifname=self._interface, kind="dummy"), errno.EEXIST)
            index = await self._interface_index(ipr)
            if index is None:
                raise BackendError("interface vanished right after it was created", target=self._interface)
        (link,) = await ipr.link("get", index=index)
        if not int(link["flags"]) & _IFF_UP:
            await ipr.link("set", index=index, state="up")
        return index

    async def _addresses(self, ipr: Any, index: int) -> dict[str, int]:
        """The agent's addresses on the interface, with their prefix lengths."""
        found: dict[str, int] = {}
        async for message in await ipr.addr("dump", index=index):
            if int(message["index"]) == index and int(message["scope"]) == _RT_SCOPE_UNIVERSE:
                found[canonical_ip(str(message.get_attr("IFA_ADDRESS")))] = int(message["prefixlen"])
        return found

    async def _route_socket(self) -> Any:
        if self._ipr is None:
            self._check_open()
            self._ipr = _adopt(AsyncIPRoute, _netlink_descriptor(netns=self._netns, protocol=_NETLINK_ROUTE))
        return self._ipr

    # --- lifecycle --------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close both sockets; later calls raise BackendError."""
        self._closed = True
        async with self._ipvs_lock, self._link_lock:
            for sock in (self._ipvs, self._ipr):
                if sock is not None:
                    with contextlib.suppress(Exception):  # closing is best effort: the fds go either way
                        sock.close()
            self._ipvs = self._ipr = None

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError("backend closed", target="netlink")


class _KernelRefusalError(Exception):
    """The kernel refused one request (a NetlinkError), as our own type."""

    def __init__(self, code: int) -> None:
        self.errno = code
        self.message = os.strerror(code)
        super().__init__(code, self.message)


@contextlib.asynccontextmanager
async def _translated(target: str, *, refusal_is_fatal: bool = True) -> AsyncIterator[None]:
    """Let our own errors through; turn every pyroute2 (or socket) error into a BackendError."""
    try:
        yield
    except (BackendError, _KernelRefusalError) as error:
        if isinstance(error, _KernelRefusalError) and refusal_is_fatal:
            raise BackendError(error.message, target=target, errno=error.errno) from None
        raise
    except NetlinkError as error:
        raise BackendError(os.strerror(error.code), target=target, errno=error.code) from None
    except OSError as error:
        raise BackendError(error.strerror or str(error), target=target, errno=error.errno or 0) from None
    except Exception as error:  # pyroute2 raises a zoo of types (struct.error, KeyError, ...): wrap them all
        raise BackendError(f"{type(error).__name__}: {error}", target=target) from None


async def _tolerating(request: Any, *codes: int) -> None:
    """Await a pyroute2 request; a NetlinkError with one of ``codes`` means it is already done."""
    try:
        await request
    except NetlinkError as error:
        if error.code not in codes:
            raise _KernelRefusalError(error.code) from None


def _adopt(socket_class: Any, descriptor: int) -> Any:
    """A pyroute2 socket object over an already open netlink socket (closing the descriptor on failure)."""
    try:
        return socket_class(fileno=descriptor)
    except BaseException:
        os.close(descriptor)
        raise


def _netlink_descriptor(*, netns: str | None, protocol: int) -> int:
    """A new netlink socket's descriptor, created inside ``netns`` when given (see the module docstring)."""

    path = None if netns is None else Path(netns) if "/" in netns else NETNS_DIR / netns
    outcome: list[int | OSError] = []

    def create() -> None:
        try:
            if path is not None:
                _enter_netns(path)
            outcome.append(socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, protocol).detach())
        except OSError as error:
            outcome.append(error)

    if path is None:
        create()
    else:
        helper = threading.Thread(target=create, name=f"netns-{path.name}", daemon=True)
        helper.start()
        helper.join()  # a setns and a socket(): microseconds
    (result,) = outcome
    if isinstance(result, OSError):
        where = "netlink socket" if netns is None else f"netns {netns}"
        raise BackendError(result.strerror or str(result), target=where, errno=result.errno or 0)
    return result


def _enter_netns(path: Path) -> None:
    """Move the calling thread (only) into the network namespace at ``path``."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(descriptor, _CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"setns: {os.strerror(code)}")
    finally:
        os.close(descriptor)


def _message(request: Request) -> Any:
    """The pyroute2 ``ipvsmsg`` of a request (its nla map does the encoding)."""
    message = ipvsmsg()
    message["cmd"] = request.command
    message["version"] = GENL_VERSION
    message["attrs"] = request.attributes
    return message


def _attributes(nested: Any) -> dict[str, object]:
    """A dumped service or destination as plain values: flags as an int, stats as a mapping.

    pyroute2 decodes an attribute when its value is first touched; decoding every stats attribute of
    thousands of destinations dominated ``read``, so only the values used are touched: the counters
    the model keeps, from the 64-bit stats (else the 32-bit ones), under ``IPVS_DEST_ATTR_STATS``.
    """
    slots = {slot.name: slot for slot in nested["attrs"]}
    attributes: dict[str, object] = {}
    for name, slot in slots.items():
        if name == "IPVS_SVC_ATTR_FLAGS":
            attributes[name] = int(slot.value["flags"])
        elif not name.endswith(("_ATTR_STATS", "_ATTR_STATS64")):
            attributes[name] = slot.value
    stats = slots.get("IPVS_DEST_ATTR_STATS64") or slots.get("IPVS_DEST_ATTR_STATS")
    if stats is not None:
        counters = {counter.name: counter for counter in stats.value["attrs"]}
        attributes["IPVS_DEST_ATTR_STATS"] = {
            name: int(counters[name].value) for name in STATS_COUNTERS if name in counters
        }
    return attributes
