"""Frozen value types of an IPVS table and of the operations that change it.

Addresses are kept as canonical strings (``ipaddress`` compressed form) so that
keys hash and compare cheaply; they are validated once at the edges (manifest
views, save-file parser, netlink decoder) and never re-parsed in the core.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from operator import attrgetter
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton  # pure conversions, no I/O (see pyproject.toml)
from typing import Any

__all__ = [
    "DEFAULT_SCHEDULERS",
    "SETTINGS_FIELDS",
    "AddRealServer",
    "AddVirtualService",
    "ConnectionCounts",
    "DeleteRealServer",
    "DeleteVirtualService",
    "EditRealServer",
    "EditVirtualService",
    "Forwarding",
    "Operation",
    "Persistence",
    "Protocol",
    "RealServer",
    "RealServerKey",
    "ServiceKey",
    "Table",
    "VirtualService",
    "canonical_ip",
    "family_of",
    "max_prefix",
    "packed_address",
]

# Schedulers the Linux kernel ships as ip_vs_<name> modules.
DEFAULT_SCHEDULERS: frozenset[str] = frozenset(
    {"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh"}
)


class Protocol(StrEnum):
    """Transport of a virtual service; FWMARK services are keyed by a firewall mark."""

    TCP = "tcp"
    UDP = "udp"
    SCTP = "sctp"
    FWMARK = "fwmark"

    # A member equals its value (str's __eq__), so str's hash is the consistent one; Enum's own __hash__ is a
    # Python function, and every ServiceKey hash (each dict lookup of a key) called it.
    __hash__ = str.__hash__


_PROTOCOL_ORDER = {protocol: index for index, protocol in enumerate(Protocol)}


class Forwarding(StrEnum):
    """How IPVS forwards to a real server (ipvsadm -m, -g, -i)."""

    MASQ = "masq"
    ROUTE = "route"
    TUNNEL = "tunnel"

    __hash__ = str.__hash__  # as Protocol's


def canonical_ip(text: str) -> str:
    """Return the canonical (compressed) form of an IP address; ValueError if it is not one."""
    # inet_pton/inet_ntop agree with ipaddress on every address they both take, at a twentieth of the cost
    # (6 us → 0.3 us, 40,000 addresses per 10,000 Services); ipaddress decides the rest: spaces, zone
    # ids, and an IPv4 address inside IPv6, which inet_ntop writes dotted (tests/test_canonical_ip.py).
    family = AF_INET6 if ":" in text else AF_INET
    try:
        fast = inet_ntop(family, inet_pton(family, text))
    except (OSError, ValueError):  # not an address to inet_pton, or a NUL or a non-ASCII character in the text
        fast = ""
    if fast and (family == AF_INET or "." not in fast):
        return text if fast == text else fast
    canonical = str(ipaddress.ip_address(text.strip()))
    # Most addresses arrive canonical: keeping the given string lets the new copy go at once (7 MB less at the
    # peak of a 100,000-endpoint list).
    return text if canonical == text else canonical


def family_of(address: str) -> int:
    """Address family of a canonical address string: 4 or 6."""
    return 6 if ":" in address else 4


def max_prefix(family: int) -> int:
    """Longest prefix length of a family (32 or 128)."""
    return 128 if family == 6 else 32


@dataclass(frozen=True, slots=True)
class ServiceKey:
    """Identity of a virtual service: protocol + VIP + port, or a firewall mark + family.

    For ``Protocol.FWMARK`` the ``port`` holds the mark and ``address`` is ``0.0.0.0``
    or ``::`` so that the key still carries the address family.
    """

    protocol: Protocol
    address: str
    port: int

    @classmethod
    def fwmark(cls, mark: int, *, family: int = 4) -> ServiceKey:
        """Key of a firewall-mark service of a family."""
        return cls(Protocol.FWMARK, "::" if family == 6 else "0.0.0.0", mark)  # noqa: S104 (a key, not a bind)

    @property
    def family(self) -> int:
        """4 or 6."""
        return family_of(self.address)

    @property
    def is_fwmark(self) -> bool:
        """True for a firewall-mark service."""
        return self.protocol is Protocol.FWMARK

    def endpoint(self) -> str:
        """``VIP:port`` with IPv6 in brackets, or ``fwmark:N``."""
        if self.is_fwmark:
            return f"fwmark:{self.port}" + ("/v6" if self.family == 6 else "")
        return join_host_port(self.address, self.port)

    def __str__(self) -> str:
        if self.is_fwmark:
            return self.endpoint()
        return f"{self.protocol.value}/{self.endpoint()}"

    def sort_key(self) -> tuple[int, int, bytes, int]:
        """Total order across families and protocols (ipaddress objects do not compare across families)."""
        return (self.family, _PROTOCOL_ORDER[self.protocol], packed_address(self.address), self.port)


def join_host_port(address: str, port: int) -> str:
    """``host:port``, with IPv6 hosts in brackets."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


@dataclass(frozen=True, slots=True, order=True)
class RealServerKey:
    """Identity of a real server inside one virtual service."""

    address: str
    port: int

    def __str__(self) -> str:
        return join_host_port(self.address, self.port)


@dataclass(frozen=True, slots=True)
class RealServer:
    """A real server (destination) of a virtual service."""

    address: str
    port: int
    weight: int = 1
    forwarding: Forwarding = Forwarding.MASQ
    upper_threshold: int = 0
    lower_threshold: int = 0

    @property
    def key(self) -> RealServerKey:
        """Identity inside its virtual service."""
        return RealServerKey(self.address, self.port)

    def with_weight(self, weight: int) -> RealServer:
        """The same real server with another weight."""
        return replace(self, weight=weight)

    def __str__(self) -> str:
        return join_host_port(self.address, self.port)


@dataclass(frozen=True, slots=True)
class Persistence:
    """Client affinity: templates live ``timeout`` seconds; clients are grouped by ``netmask`` (prefix length)."""

    timeout: int
    netmask: int


@dataclass(frozen=True, slots=True)
class VirtualService:
    """A virtual service with its settings and real servers (sorted by key, unique)."""

    key: ServiceKey
    scheduler: str = "rr"
    persistence: Persistence | None = None
    sched_flags: frozenset[str] = frozenset()
    one_packet: bool = False
    pe_name: str = ""
    reals: tuple[RealServer, ...] = ()

    def __post_init__(self) -> None:
        if len(self.reals) < 2:  # nothing to order: a read builds every service without its servers first
            return
        ordered = tuple(sorted(self.reals, key=_real_sort_key))
        if ordered != self.reals:
            object.__setattr__(self, "reals", ordered)

    def settings(self) -> VirtualService:
        """The service without its real servers: what an add/edit of the service itself carries."""
        if not self.reals:
            return self
        # Positionally, not dataclasses.replace (twice the cost; a cold plan calls this once per service).
        return VirtualService(self.key, *_settings_of(self))

    def with_reals(self, reals: tuple[RealServer, ...]) -> VirtualService:
        """The service's settings with these real servers (a read builds every service so)."""
        return VirtualService(self.key, *(*_settings_of(self), reals))

    def same_settings(self, other: VirtualService) -> bool:
        """True when everything but the real servers is equal."""
        return _settings_of(self) == _settings_of(other)

    def real_map(self) -> dict[RealServerKey, RealServer]:
        """Real servers by key."""
        return {real.key: real for real in self.reals}


SETTINGS_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(VirtualService) if f.name not in ("key", "reals"))
"""A virtual service's settings: every field but its key and its real servers (between them, in this order)."""
_settings_of: Callable[[VirtualService], tuple[Any, ...]] = attrgetter(*SETTINGS_FIELDS)


def packed_address(address: str) -> bytes:
    """Network-order bytes of a canonical address."""
    # Sorting calls this for every real server. inet_pton is ~30x faster than ipaddress and needs no cache
    # (a cache held 150 bytes per address ever seen, and a cold one made the first translate 2x slower).
    try:
        return inet_pton(AF_INET6 if ":" in address else AF_INET, address)
    except (OSError, TypeError):  # what inet_pton refuses (a scoped IPv6 address): ipaddress's answer or error
        return ipaddress.ip_address(address).packed


def _real_sort_key(real: RealServer) -> tuple[int, bytes, int]:
    packed = packed_address(real.address)
    return (len(packed), packed, real.port)  # 4 bytes before 16: IPv4 before IPv6, as family_of would order them


@dataclass(frozen=True, slots=True)
class ConnectionCounts:
    """Connections through one real server, as the kernel reports them."""

    active: int
    inactive: int

    @property
    def total(self) -> int:
        """Active plus inactive connections."""
        return self.active + self.inactive


@dataclass(frozen=True, slots=True)
class Table:
    """An IPVS table: virtual services by key."""

    services: Mapping[ServiceKey, VirtualService] = field(default_factory=dict)

    @classmethod
    def of(cls, services: Iterable[VirtualService]) -> Table:
        """Build a table; a repeated key is a programming error."""
        by_key: dict[ServiceKey, VirtualService] = {}
        for service in services:
            if service.key in by_key:
                raise ValueError(f"duplicate virtual service {service.key}")
            by_key[service.key] = service
        return cls(by_key)

    def __iter__(self) -> Iterator[VirtualService]:
        return iter(sorted(self.services.values(), key=lambda s: s.key.sort_key()))

    def __len__(self) -> int:
        return len(self.services)

    def __contains__(self, key: object) -> bool:
        return key in self.services

    def get(self, key: ServiceKey) -> VirtualService | None:
        """The virtual service of a key, if present."""
        return self.services.get(key)

    def real_server_count(self) -> int:
        """Total real servers across all services."""
        return sum(len(service.reals) for service in self.services.values())


# --- operations -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddVirtualService:
    """Create a virtual service (settings only; real servers are added by their own operations)."""

    service: VirtualService

    @property
    def key(self) -> ServiceKey:
        """The service changed."""
        return self.service.key


@dataclass(frozen=True, slots=True)
class EditVirtualService:
    """Change a virtual service's settings in place (live connections survive)."""

    service: VirtualService
    previous: VirtualService

    @property
    def key(self) -> ServiceKey:
        """The service changed."""
        return self.service.key


@dataclass(frozen=True, slots=True)
class DeleteVirtualService:
    """Remove a virtual service and, with it, its real servers."""

    service: VirtualService

    @property
    def key(self) -> ServiceKey:
        """The service changed."""
        return self.service.key


@dataclass(frozen=True, slots=True)
class AddRealServer:
    """Add a real server to a virtual service."""

    service: ServiceKey
    real: RealServer

    @property
    def key(self) -> ServiceKey:
        """The service changed."""
        return self.service


@dataclass(frozen=True, slots=True)
class EditRealServer:
    """Change a real server in place; weight 0 with ``drain`` set starts a graceful drain."""

    service: ServiceKey
    real: RealServer
    previous: RealServer
    drain: bool = False

    @property
    def key(self) -> ServiceKey:
        """The service changed."""
        return self.service


@dataclass(frozen=True, slots=True)
class DeleteRealServer:
    """Remove a real server from a virtual service."""

    service: ServiceKey
    real: RealServer

    @property
    def key(self) -> ServiceKey:
        """The service changed."""
        return self.service


Operation = (
    AddVirtualService | EditVirtualService | DeleteVirtualService | AddRealServer | EditRealServer | DeleteRealServer
)
