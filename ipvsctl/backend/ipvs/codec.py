"""IPVS attributes ⇄ model values: what the numbers and encodings the kernel speaks mean.

Pure (no pyroute2, no I/O). Requests are built here as attribute lists (values as pyroute2's ``ipvsmsg``
nla map takes them, so both transports send the same); answers come back as plain mappings, decoded here
into model values. Every field of a service or real server is sent, because ``SET`` resets what it is not
given. Netmask: IPv4 as a dotted mask; IPv6 as the prefix length in a host-order u32 that pyroute2 types as
an IPv4 address (prefix 64 travels as ``"64.0.0.0"``), and dumps return it the same way.

A destination read back is a ``DecodedDest``; the fields it is made of are ``DEST_FIELDS``, read by one
function (``dest_from_fields``) whichever decoder unpacked them.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ipvsctl.backend.base import IpvsTimeouts, Traffic
from ipvsctl.backend.ipvs.attributes import (
    ALL_FLAGS,
    CMD_DEL_DEST,
    CMD_DEL_SERVICE,
    CMD_GET_CONFIG,
    CMD_GET_DEST,
    CMD_GET_SERVICE,
    CMD_NEW_DEST,
    CMD_NEW_SERVICE,
    CMD_SET_CONFIG,
    CMD_SET_DEST,
    CMD_SET_SERVICE,
    DEST_STATS_NESTS,
    FLAG_ONEPACKET,
    FLAG_PERSISTENT,
    FORWARDING_MASK,
    LOCAL_NODE,
    MASQ,
    ROUTE,
    SCHED_FLAG_SHIFT,
    STATS_COUNTERS,
    TIMEOUT_ATTRIBUTES,
    TRAFFIC,
    TRAFFIC_COUNTERS,
    TUNNEL,
)
from ipvsctl.backend.limits import UINT_MAX, sched_flag_names
from ipvsctl.backend.netlink.message import ADDRESS_SIZES, WireFormatError
from ipvsctl.model import (
    AddRealServer,
    AddVirtualService,
    ConnectionCounts,
    DeleteRealServer,
    DeleteVirtualService,
    EditRealServer,
    EditVirtualService,
    Forwarding,
    Operation,
    Persistence,
    Protocol,
    RealServer,
    RealServerKey,
    ServiceKey,
    VirtualService,
    family_of,
    max_prefix,
)

__all__ = [
    "DEST_FIELDS",
    "DEST_KEY_SENT",
    "DEST_SENT",
    "FWMARK_KEY_SENT",
    "SERVICE_FIELDS",
    "SERVICE_KEY_SENT",
    "SETTINGS_SENT",
    "Attributes",
    "DecodedDest",
    "DestValues",
    "Request",
    "ServiceRecord",
    "TrafficRecord",
    "decode_dest",
    "decode_service",
    "decode_timeouts",
    "decode_traffic",
    "dest_dump_request",
    "dest_from_fields",
    "dest_from_wire",
    "dest_values",
    "record",
    "request_for",
    "service_dump_request",
    "service_from_wire",
    "service_get_request",
    "service_key",
    "service_key_values",
    "settings_values",
    "timeouts_get_request",
    "timeouts_set_request",
    "traffic_record",
]

_FAMILIES: Mapping[int, int] = {4: int(socket.AF_INET), 6: int(socket.AF_INET6)}
_VERSIONS: Mapping[int, int] = {number: version for version, number in _FAMILIES.items()}
_PROTOCOL_NUMBERS: Mapping[Protocol, int] = {
    Protocol.TCP: socket.IPPROTO_TCP,
    Protocol.UDP: socket.IPPROTO_UDP,
    Protocol.SCTP: socket.IPPROTO_SCTP,
}
_PROTOCOLS = {number: protocol for protocol, number in _PROTOCOL_NUMBERS.items()}
_FORWARDING_CODES: Mapping[Forwarding, int] = {
    Forwarding.MASQ: MASQ,
    Forwarding.TUNNEL: TUNNEL,
    Forwarding.ROUTE: ROUTE,
}
_FORWARDINGS = {code: method for method, code in _FORWARDING_CODES.items()} | {LOCAL_NODE: Forwarding.MASQ}

DEST_FIELDS: tuple[str, ...] = (
    "IPVS_DEST_ATTR_ADDR",
    "IPVS_DEST_ATTR_PORT",
    "IPVS_DEST_ATTR_ADDR_FAMILY",
    "IPVS_DEST_ATTR_FWD_METHOD",
    "IPVS_DEST_ATTR_WEIGHT",
    "IPVS_DEST_ATTR_U_THRESH",
    "IPVS_DEST_ATTR_L_THRESH",
    "IPVS_DEST_ATTR_ACTIVE_CONNS",
    "IPVS_DEST_ATTR_INACT_CONNS",
    "IPVS_DEST_ATTR_PERSIST_CONNS",
)
"""The attributes a destination's model values are made of, in ``dest_from_fields``'s order."""
_DEST_DEFAULTS: tuple[object, ...] = ("", *(0,) * (len(DEST_FIELDS) - 1))  # when the kernel leaves one out
SERVICE_FIELDS: tuple[str, ...] = (
    "IPVS_SVC_ATTR_AF",
    "IPVS_SVC_ATTR_PROTOCOL",
    "IPVS_SVC_ATTR_ADDR",
    "IPVS_SVC_ATTR_PORT",
    "IPVS_SVC_ATTR_SCHED_NAME",
    "IPVS_SVC_ATTR_FLAGS",
    "IPVS_SVC_ATTR_TIMEOUT",
    "IPVS_SVC_ATTR_NETMASK",
)
"""The attributes of the kernel's usual service reply (a protocol's, not a mark's; no persistence engine), in
``service_from_wire``'s order: a learnt layout of exactly these hands their values over unconverted."""
_STATS = DEST_STATS_NESTS[-1]
_NO_SCHED_FLAGS: frozenset[str] = frozenset()
_SCHED_FLAG_BITS = 0b111 << SCHED_FLAG_SHIFT  # IP_VS_SVC_F_SCHED1..3

Attributes = list[tuple[str, object]]
"""Attributes of one nested netlink attribute, in order: (IPVS_*_ATTR_ name, value) pairs."""
DestValues = tuple[RealServer, int, int]
"""A destination's model values: its real server, and its active and inactive (templates included) connections."""


class DecodedDest(NamedTuple):
    """A destination read back. A named tuple of what the read gives, its key and connection counts made when
    asked for: a read makes one per destination, and a sync asks for a few (each frozen dataclass built costs
    a fresh read of 30,000 destinations a tenth of a second in the lab)."""

    real: RealServer
    active: int
    inactive: int  # persistence templates included
    counters: tuple[int, ...]  # in STATS_COUNTERS order: RealServerStats(*counters)

    @property
    def key(self) -> RealServerKey:
        """The real server's key."""
        return self.real.key

    @property
    def connections(self) -> ConnectionCounts:
        """The connection counts."""
        return ConnectionCounts(self.active, self.inactive)


ServiceRecord = tuple[VirtualService, list[DecodedDest]]
"""A service (with its real servers) and its destinations."""


@dataclass(frozen=True, slots=True)
class Request:
    """One generic-netlink IPVS command with its top-level attributes."""

    command: int
    attributes: Attributes


# --- encoding ----------------------------------------------------------------------------------------


def _netmask_attr(prefix: int, *, family: int) -> str:
    if family == 6:
        return socket.inet_ntoa(struct.pack("=I", prefix))
    return socket.inet_ntoa(struct.pack(">I", (UINT_MAX << (32 - prefix)) & UINT_MAX))


SERVICE_KEY_SENT: tuple[str, ...] = (
    "IPVS_SVC_ATTR_AF",
    "IPVS_SVC_ATTR_PROTOCOL",
    "IPVS_SVC_ATTR_ADDR",
    "IPVS_SVC_ATTR_PORT",
)
"""The attributes that name a service of a protocol, in the order they are sent (``service_key_values``)."""
FWMARK_KEY_SENT: tuple[str, ...] = ("IPVS_SVC_ATTR_AF", "IPVS_SVC_ATTR_FWMARK")
"""The attributes that name a firewall-mark service, in the order they are sent."""
DEST_KEY_SENT: tuple[str, ...] = ("IPVS_DEST_ATTR_ADDR_FAMILY", "IPVS_DEST_ATTR_ADDR", "IPVS_DEST_ATTR_PORT")
"""The attributes that name a destination, in the order they are sent (``dest_values``)."""
DEST_SENT: tuple[str, ...] = (
    *DEST_KEY_SENT,
    "IPVS_DEST_ATTR_FWD_METHOD",
    "IPVS_DEST_ATTR_WEIGHT",
    "IPVS_DEST_ATTR_U_THRESH",
    "IPVS_DEST_ATTR_L_THRESH",
    "IPVS_DEST_ATTR_TUN_TYPE",
    "IPVS_DEST_ATTR_TUN_PORT",
    "IPVS_DEST_ATTR_TUN_FLAGS",
)
"""Every attribute of a destination an add or edit sends (a ``SET`` resets what it is not given), in order."""


def service_key_values(key: ServiceKey) -> tuple[Any, ...]:
    """The values of ``FWMARK_KEY_SENT`` (a firewall-mark key) or ``SERVICE_KEY_SENT`` (any other) for ``key``."""
    family = _FAMILIES[key.family]
    if key.is_fwmark:
        return (family, key.port)
    return (family, _PROTOCOL_NUMBERS[key.protocol], key.address, key.port)


def dest_values(real: RealServer, *, full: bool) -> tuple[Any, ...]:
    """The values of ``DEST_SENT`` (``full``: an add or edit) or ``DEST_KEY_SENT`` (a delete) for ``real``."""
    key = (_FAMILIES[family_of(real.address)], real.address, real.port)
    if not full:
        return key
    forwarding = _FORWARDING_CODES[real.forwarding]
    # The tunnel: ipip (0), the only one the model knows, with no port and no flags.
    return (*key, forwarding, real.weight, real.upper_threshold, real.lower_threshold, 0, 0, 0)


def _service_key_attrs(key: ServiceKey) -> Attributes:
    names = FWMARK_KEY_SENT if key.is_fwmark else SERVICE_KEY_SENT
    return list(zip(names, service_key_values(key), strict=True))


SETTINGS_SENT: tuple[str, ...] = (
    "IPVS_SVC_ATTR_SCHED_NAME",
    "IPVS_SVC_ATTR_FLAGS",
    "IPVS_SVC_ATTR_TIMEOUT",
    "IPVS_SVC_ATTR_NETMASK",
    "IPVS_SVC_ATTR_PE_NAME",
)
"""The attributes an add or edit of a service sends after its key (``settings_values``), in order; its flags go
with the mask ``ALL_FLAGS``."""


def settings_values(service: VirtualService) -> tuple[Any, ...]:
    """The values of ``SETTINGS_SENT`` for ``service``, its flags as a number."""
    key = service.key
    flags = 0
    timeout, prefix = 0, max_prefix(key.family)
    if service.persistence is not None:
        flags |= FLAG_PERSISTENT
        timeout, prefix = service.persistence.timeout, service.persistence.netmask
    if service.one_packet:
        flags |= FLAG_ONEPACKET
    if service.sched_flags:
        names = sched_flag_names(service.scheduler)
        for name in service.sched_flags:
            flags |= 1 << (SCHED_FLAG_SHIFT + names.index(name))
    return (service.scheduler, flags, timeout, _netmask_attr(prefix, family=key.family), service.pe_name)


def _service_attrs(service: VirtualService) -> Attributes:
    scheduler, flags, timeout, netmask, pe_name = settings_values(service)
    values = (scheduler, {"flags": flags, "mask": ALL_FLAGS}, timeout, netmask, pe_name)
    return [*_service_key_attrs(service.key), *zip(SETTINGS_SENT, values, strict=True)]


def _dest_key_attrs(real: RealServer) -> Attributes:
    return list(zip(DEST_KEY_SENT, dest_values(real, full=False), strict=True))


def _dest_attrs(real: RealServer) -> Attributes:
    return list(zip(DEST_SENT, dest_values(real, full=True), strict=True))


def _nested(name: str, attributes: Attributes) -> tuple[str, object]:
    return (f"IPVS_CMD_ATTR_{name}", {"attrs": attributes})


def request_for(operation: Operation) -> Request:
    """The command and attributes that perform an operation (check ``encoding_problem`` first)."""
    match operation:
        case AddVirtualService(service=service):
            return Request(CMD_NEW_SERVICE, [_nested("SERVICE", _service_attrs(service))])
        case EditVirtualService(service=service):
            return Request(CMD_SET_SERVICE, [_nested("SERVICE", _service_attrs(service))])
        case DeleteVirtualService(service=service):
            return Request(CMD_DEL_SERVICE, [_nested("SERVICE", _service_key_attrs(service.key))])
        case AddRealServer(service=key, real=real):
            command, dest = CMD_NEW_DEST, _dest_attrs(real)
        case EditRealServer(service=key, real=real):
            command, dest = CMD_SET_DEST, _dest_attrs(real)
        case DeleteRealServer(service=key, real=real):
            command, dest = CMD_DEL_DEST, _dest_key_attrs(real)
    return Request(command, [_nested("SERVICE", _service_key_attrs(key)), _nested("DEST", dest)])


def dest_dump_request(key: ServiceKey) -> Request:
    """The request that dumps the real servers of one service."""
    return Request(CMD_GET_DEST, [_nested("SERVICE", _service_key_attrs(key))])


def service_get_request(key: ServiceKey) -> Request:
    """The request that gets one service (ESRCH when there is none)."""
    return Request(CMD_GET_SERVICE, [_nested("SERVICE", _service_key_attrs(key))])


def service_dump_request() -> Request:
    """The request that dumps every service."""
    return Request(CMD_GET_SERVICE, [])


def timeouts_set_request(timeouts: IpvsTimeouts) -> Request:
    """The request that sets the connection timeouts: all three sent, as ``ipvsadm --set`` does, a 0 keeping the
    kernel's value (check ``check_timeouts`` first)."""
    values = (timeouts.tcp, timeouts.tcp_fin, timeouts.udp)
    return Request(CMD_SET_CONFIG, list(zip(TIMEOUT_ATTRIBUTES, values, strict=True)))


def timeouts_get_request() -> Request:
    """The request that reads the connection timeouts (one reply, no dump)."""
    return Request(CMD_GET_CONFIG, [])


# --- decoding -----------------------------------------------------------------------------------------
# The decoders trust their input's types: numbers are ints and addresses, names and netmasks strs.
# ``wire`` and ``layout`` produce them so by construction; the pyroute2 transport checks what pyroute2
# gives (``pyroute2._attributes``). A read turns thousands of these: no checks per field.


def _canonical(address: str) -> str:
    """The model's spelling of an address as inet_ntop(3) wrote it.

    inet_ntop and ``ipaddress`` agree (RFC 5952) except where inet_ntop embeds an IPv4 address in
    an IPv6 one; only those, rare, take the slow path (a read turns thousands of addresses).
    """
    if "." in address and ":" in address:
        return str(ipaddress.ip_address(address))
    return address


def _prefix_of(netmask: str, *, family: int) -> int:
    return _prefix_of_packed(socket.inet_aton(netmask), family=family)


def _prefix_of_packed(packed: bytes, *, family: int) -> int:
    if family == 6:
        prefix: int = struct.unpack("=I", packed)[0]
        return prefix
    bits = int.from_bytes(packed, "big")
    return 32 - (~bits & UINT_MAX).bit_length()  # leading ones (a non-contiguous mask is cut at its first 0)


def service_key(attributes: Mapping[str, Any]) -> ServiceKey | None:
    """The key of a dumped service; None if the model cannot hold it (another protocol or family)."""
    family = _VERSIONS.get(attributes.get("IPVS_SVC_ATTR_AF", 0))
    if family is None:
        return None
    if "IPVS_SVC_ATTR_FWMARK" in attributes:
        return ServiceKey.fwmark(attributes.get("IPVS_SVC_ATTR_FWMARK", 0), family=family)
    protocol = _PROTOCOLS.get(attributes.get("IPVS_SVC_ATTR_PROTOCOL", 0))
    if protocol is None:
        return None
    address = _canonical(attributes.get("IPVS_SVC_ATTR_ADDR", ""))
    return ServiceKey(protocol, address, attributes.get("IPVS_SVC_ATTR_PORT", 0))


def decode_service(attributes: Mapping[str, Any]) -> VirtualService | None:
    """The service (without real servers) of a dumped service; None if the model cannot hold it."""
    key = service_key(attributes)
    if key is None:
        return None
    flags = attributes.get("IPVS_SVC_ATTR_FLAGS", 0)
    persistence = None
    if flags & FLAG_PERSISTENT:
        netmask = _prefix_of(attributes.get("IPVS_SVC_ATTR_NETMASK", ""), family=key.family)
        persistence = Persistence(timeout=attributes.get("IPVS_SVC_ATTR_TIMEOUT", 0), netmask=netmask)
    scheduler = attributes.get("IPVS_SVC_ATTR_SCHED_NAME", "")
    return _service(key, scheduler, flags, persistence, attributes.get("IPVS_SVC_ATTR_PE_NAME", ""))


def service_from_wire(values: tuple[Any, ...]) -> VirtualService | None:
    """``decode_service``'s answer for a reply of exactly ``SERVICE_FIELDS``, from their values as a learnt layout
    unpacks them (the address and netmask packed, the port in network order, the scheduler's name with its
    padding), in fewer calls: a fresh read makes one per service. None for what it leaves to the walk, as
    ``dest_from_wire`` does: a family without an address size or an address too short for it (the walk names
    them), and a protocol the model cannot hold (``decode_service`` leaves it out)."""
    family, protocol_number, packed, port, name, flags, timeout, netmask = values
    size = ADDRESS_SIZES.get(family)
    protocol = _PROTOCOLS.get(protocol_number)
    if size is None or len(packed) < size or protocol is None:
        return None
    address = socket.inet_ntop(family, packed[:size])
    if family != socket.AF_INET and "." in address:
        address = _canonical(address)
    key = ServiceKey(protocol, address, ((port & 0xFF) << 8) | (port >> 8))
    persistence = None
    if flags & FLAG_PERSISTENT:
        persistence = Persistence(timeout, _prefix_of_packed(netmask, family=_VERSIONS[family]))
    return _service(key, name.strip(b"\0").decode("utf-8", "replace"), flags, persistence, "")


def _service(
    key: ServiceKey, scheduler: str, flags: int, persistence: Persistence | None, pe_name: str
) -> VirtualService:
    """A read service from its decoded parts and its flags word."""
    sched_flags = _NO_SCHED_FLAGS
    if flags & _SCHED_FLAG_BITS:
        names = sched_flag_names(scheduler)
        sched_flags = frozenset(name for bit, name in enumerate(names) if flags & (1 << (SCHED_FLAG_SHIFT + bit)))
    # Positionally (VirtualService's field order): keywords cost a read of 10,000 services measurably.
    return VirtualService(key, scheduler, persistence, sched_flags, bool(flags & FLAG_ONEPACKET), pe_name)


def dest_from_fields(fields: tuple[Any, ...], *, key: ServiceKey) -> DestValues:
    """A destination of the service ``key`` from the values of its ``DEST_FIELDS``, in that order (the address
    as text, the port in host order, the family as AF_*, 0 when absent); WireFormatError for an address that
    is not of its family."""
    address, port, family, forwarding, weight, upper, lower, active, inactive, persistent = fields
    version = _VERSIONS.get(family, key.family)
    address = _canonical(address)
    if family_of(address) != version:
        raise WireFormatError(f"destination {address} is not of address family {version}")
    # Positionally (RealServer's field order: address, port, weight, forwarding, thresholds): a read makes 30,000.
    method = _FORWARDINGS.get(forwarding & FORWARDING_MASK, Forwarding.ROUTE)
    return RealServer(address, port, weight, method, upper, lower), active, inactive + persistent  # templates: inactive


def dest_from_wire(values: tuple[Any, ...]) -> DestValues | None:
    """A destination from its ``DEST_FIELDS`` as a learnt layout unpacks them: the address packed (padded to
    16 bytes), the port in network order. None for a family without an address size, or an address too short
    for its family: the walk names either.

    ``dest_from_fields``' answer for the same destination, in one call: a fresh read makes one per destination
    (30,000 at 10,000 Services), and under the lab's emulation each Python call of the three it took costs.
    No family check: inet_ntop writes an address of the family it is given.
    """
    packed, port, family, forwarding, weight, upper, lower, active, inactive, persistent = values
    size = ADDRESS_SIZES.get(family)
    if size is None or len(packed) < size:
        return None
    address = socket.inet_ntop(family, packed[:size])
    if family != socket.AF_INET and "." in address:
        address = _canonical(address)
    method = _FORWARDINGS.get(forwarding & FORWARDING_MASK, Forwarding.ROUTE)
    real = RealServer(address, ((port & 0xFF) << 8) | (port >> 8), weight, method, upper, lower)
    return real, active, inactive + persistent  # templates: inactive


def decode_dest(attributes: Mapping[str, Any], *, key: ServiceKey) -> DecodedDest:
    """A destination of the service ``key`` from its decoded attributes (counters under ``IPVS_DEST_ATTR_STATS``,
    absent ones 0)."""
    fields = tuple([attributes.get(name, default) for name, default in zip(DEST_FIELDS, _DEST_DEFAULTS, strict=True)])
    stats = attributes.get(_STATS, {})
    return DecodedDest(*dest_from_fields(fields, key=key), tuple([stats.get(name, 0) for name in STATS_COUNTERS]))


def decode_timeouts(attributes: Mapping[str, Any]) -> IpvsTimeouts:
    """The timeouts of a GET_CONFIG reply's attributes (one the kernel leaves out, without its protocol, is 0)."""
    tcp, tcp_fin, udp = (attributes.get(name, 0) for name in TIMEOUT_ATTRIBUTES)
    return IpvsTimeouts(tcp=tcp, tcp_fin=tcp_fin, udp=udp)


def record(service: VirtualService, dests: list[DecodedDest]) -> ServiceRecord:
    """A service's record: the service (its settings) with the real servers of ``dests``, and ``dests``."""
    return service.with_reals(tuple([dest.real for dest in dests])), dests


TrafficRecord = tuple[ServiceKey, Traffic, list[tuple[RealServerKey, Traffic, ConnectionCounts]]]
"""A service's key and traffic, with each destination's key, traffic and connection counts (a stats dump)."""


def decode_traffic(attributes: Mapping[str, Any]) -> Traffic:
    """The counters and rates a traffic decoding left under ``TRAFFIC`` (absent ones 0)."""
    counters = attributes.get(TRAFFIC, {})
    return Traffic(*[counters.get(name, 0) for name in TRAFFIC_COUNTERS])


def traffic_record(key: ServiceKey, service: Mapping[str, Any], dests: Sequence[Mapping[str, Any]]) -> TrafficRecord:
    """The traffic record of the service ``key`` from its and its destinations' traffic decodings (only what a
    stats dump needs of a destination: its key and connection counts; WireFormatError for an address that is not
    of its family)."""
    reals = []
    for attributes in dests:
        address = _canonical(attributes.get("IPVS_DEST_ATTR_ADDR", ""))
        version = _VERSIONS.get(attributes.get("IPVS_DEST_ATTR_ADDR_FAMILY", 0), key.family)
        if family_of(address) != version:
            raise WireFormatError(f"destination {address} is not of address family {version}")
        counts = ConnectionCounts(
            attributes.get("IPVS_DEST_ATTR_ACTIVE_CONNS", 0),
            attributes.get("IPVS_DEST_ATTR_INACT_CONNS", 0) + attributes.get("IPVS_DEST_ATTR_PERSIST_CONNS", 0),
        )
        reals.append(
            (RealServerKey(address, attributes.get("IPVS_DEST_ATTR_PORT", 0)), decode_traffic(attributes), counts)
        )
    return key, decode_traffic(service), reals
