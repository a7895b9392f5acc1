"""IPVS generic-netlink attributes ⇄ model values: the numbers and encodings the kernel speaks.

Pure (no pyroute2, no I/O). ``netlink.py`` hands the attribute lists built here to pyroute2's
``ipvsmsg`` nla map and hands decoded attributes back as plain mappings. Facts followed
(``include/uapi/linux/ip_vs.h``, kernel 6.1, measured in the lab):

- Forwarding codes: masq 0, tunnel 2, route 3 (``IP_VS_CONN_F_*``; 1 is "local node", read as masq).
- Service flags: persistent 0x1, hashed 0x2 (added by the kernel, ignored here), one-packet 0x4,
  scheduler flags 0x8/0x10/0x20. They are sent with an all-ones mask: a ``SET`` replaces them all.
- Every field of a service or real server is sent, because ``SET`` resets what it is not given.
- Netmask: IPv4 as a dotted mask; IPv6 as the prefix length in a host-order u32 that pyroute2 types
  as an IPv4 address (prefix 64 travels as ``"64.0.0.0"``), and dumps return it the same way.

Also owns the client-side checks (``encoding_problem``): what cannot be encoded, or what the kernel
would take silently and not read back as written, is refused with the errno the kernel uses for
such input (EINVAL; ERANGE for numbers out of range). The memory backend applies the same checks,
so both backends refuse the same operations.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
    ServiceKey,
    VirtualService,
    family_of,
    max_prefix,
)

__all__ = [
    "INT_MAX",
    "MAX_PERSISTENCE_TIMEOUT",
    "STATS_COUNTERS",
    "UINT_MAX",
    "Attributes",
    "Refusal",
    "Request",
    "decode_connections",
    "decode_real",
    "decode_service",
    "dest_dump_request",
    "encoding_problem",
    "real_from_fields",
    "request_for",
    "sched_flag_names",
    "service_dump_request",
    "service_get_request",
    "stats_counters",
]

# Commands (enum ipvs_cmd).
CMD_NEW_SERVICE, CMD_SET_SERVICE, CMD_DEL_SERVICE, CMD_GET_SERVICE = 1, 2, 3, 4
CMD_NEW_DEST, CMD_SET_DEST, CMD_DEL_DEST, CMD_GET_DEST = 5, 6, 7, 8

INT_MAX = 2**31 - 1
UINT_MAX = 2**32 - 1
# The kernel keeps timeout * HZ in an unsigned int: with HZ up to 1000 this is the longest safe timeout.
MAX_PERSISTENCE_TIMEOUT = UINT_MAX // 1000
NAME_MAX = 15  # IP_VS_SCHEDNAME_MAXLEN and IP_VS_PENAME_MAXLEN, less the NUL

_FAMILIES: Mapping[int, int] = {4: int(socket.AF_INET), 6: int(socket.AF_INET6)}
_VERSIONS: Mapping[int, int] = {number: version for version, number in _FAMILIES.items()}
_PROTOCOL_NUMBERS: Mapping[Protocol, int] = {Protocol.TCP: 6, Protocol.UDP: 17, Protocol.SCTP: 132}
_PROTOCOLS = {number: protocol for protocol, number in _PROTOCOL_NUMBERS.items()}
_FORWARDING_CODES: Mapping[Forwarding, int] = {Forwarding.MASQ: 0, Forwarding.TUNNEL: 2, Forwarding.ROUTE: 3}
_FORWARDINGS = {code: method for method, code in _FORWARDING_CODES.items()} | {1: Forwarding.MASQ}
_FORWARDING_MASK = 0x7

FLAG_PERSISTENT = 0x1
FLAG_ONEPACKET = 0x4
_SCHED_FLAG_SHIFT = 3  # IP_VS_SVC_F_SCHED1 is 0x8
_ALL_FLAGS = 0xFFFFFFFF

# Names of the three scheduler flag bits, as ipvsadm prints them (sh and mh name the first two).
_GENERIC_FLAG_NAMES = ("flag-1", "flag-2", "flag-3")
_FLAG_NAMES: Mapping[str, tuple[str, ...]] = {
    "sh": ("sh-fallback", "sh-port", "flag-3"),
    "mh": ("mh-fallback", "mh-port", "flag-3"),
}

# The stats counters the model keeps (RealServerStats), by attribute name.
STATS_COUNTERS = (
    "IPVS_STATS_ATTR_CONNS",
    "IPVS_STATS_ATTR_INPKTS",
    "IPVS_STATS_ATTR_OUTPKTS",
    "IPVS_STATS_ATTR_INBYTES",
    "IPVS_STATS_ATTR_OUTBYTES",
)

Attributes = list[tuple[str, object]]
"""Attributes of one nested netlink attribute, in order: (IPVS_*_ATTR_ name, value) pairs."""


@dataclass(frozen=True, slots=True)
class Request:
    """One generic-netlink IPVS command with its top-level attributes."""

    command: int
    attributes: Attributes


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an operation is refused before (or instead of) reaching the kernel."""

    errno: int
    message: str


# --- encoding ----------------------------------------------------------------------------------------


def sched_flag_names(scheduler: str) -> tuple[str, ...]:
    """Names of the scheduler flag bits 1..3 for a scheduler."""
    return _FLAG_NAMES.get(scheduler, _GENERIC_FLAG_NAMES)


def _netmask_attr(prefix: int, *, family: int) -> str:
    if family == 6:
        return socket.inet_ntoa(struct.pack("=I", prefix))
    return str(ipaddress.IPv4Address((UINT_MAX << (32 - prefix)) & UINT_MAX))


def _service_key_attrs(key: ServiceKey) -> Attributes:
    family = _FAMILIES[key.family]
    if key.is_fwmark:
        return [("IPVS_SVC_ATTR_AF", family), ("IPVS_SVC_ATTR_FWMARK", key.port)]
    return [
        ("IPVS_SVC_ATTR_AF", family),
        ("IPVS_SVC_ATTR_PROTOCOL", _PROTOCOL_NUMBERS[key.protocol]),
        ("IPVS_SVC_ATTR_ADDR", key.address),
        ("IPVS_SVC_ATTR_PORT", key.port),
    ]


def _service_attrs(service: VirtualService) -> Attributes:
    key = service.key
    flags = 0
    timeout, prefix = 0, max_prefix(key.family)
    if service.persistence is not None:
        flags |= FLAG_PERSISTENT
        timeout, prefix = service.persistence.timeout, service.persistence.netmask
    if service.one_packet:
        flags |= FLAG_ONEPACKET
    names = sched_flag_names(service.scheduler)
    for name in service.sched_flags:
        flags |= 1 << (_SCHED_FLAG_SHIFT + names.index(name))
    return [
        *_service_key_attrs(key),
        ("IPVS_SVC_ATTR_SCHED_NAME", service.scheduler),
        ("IPVS_SVC_ATTR_FLAGS", {"flags": flags, "mask": _ALL_FLAGS}),
        ("IPVS_SVC_ATTR_TIMEOUT", timeout),
        ("IPVS_SVC_ATTR_NETMASK", _netmask_attr(prefix, family=key.family)),
        ("IPVS_SVC_ATTR_PE_NAME", service.pe_name),
    ]


def _dest_key_attrs(real: RealServer) -> Attributes:
    return [
        ("IPVS_DEST_ATTR_ADDR_FAMILY", _FAMILIES[family_of(real.address)]),
        ("IPVS_DEST_ATTR_ADDR", real.address),
        ("IPVS_DEST_ATTR_PORT", real.port),
    ]


def _dest_attrs(real: RealServer) -> Attributes:
    return [
        *_dest_key_attrs(real),
        ("IPVS_DEST_ATTR_FWD_METHOD", _FORWARDING_CODES[real.forwarding]),
        ("IPVS_DEST_ATTR_WEIGHT", real.weight),
        ("IPVS_DEST_ATTR_U_THRESH", real.upper_threshold),
        ("IPVS_DEST_ATTR_L_THRESH", real.lower_threshold),
        ("IPVS_DEST_ATTR_TUN_TYPE", 0),  # ipip, the only tunnel the model knows
        ("IPVS_DEST_ATTR_TUN_PORT", 0),
        ("IPVS_DEST_ATTR_TUN_FLAGS", 0),
    ]


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


# --- client-side checks -------------------------------------------------------------------------------


def _out_of_range(what: str, value: int, low: int, high: int) -> Refusal | None:
    if low <= value <= high:
        return None
    return Refusal(errno.ERANGE, f"{what} {value} out of range {low}..{high}")


def _bad_name(what: str, name: str, *, optional: bool) -> Refusal | None:
    if (optional and not name) or (name.isascii() and name.isprintable() and 0 < len(name) <= NAME_MAX):
        return None
    return Refusal(errno.EINVAL, f"bad {what} name {name!r}")


def _key_problem(key: ServiceKey) -> Refusal | None:
    if key.is_fwmark:
        return _out_of_range("firewall mark", key.port, 1, UINT_MAX)
    return _out_of_range("port", key.port, 0, 65535)


def _settings_problem(service: VirtualService) -> Refusal | None:
    problem = _bad_name("scheduler", service.scheduler, optional=False) or _bad_name(
        "persistence engine", service.pe_name, optional=True
    )
    if problem is not None:
        return problem
    if service.persistence is not None:
        persistence = service.persistence
        if persistence.timeout == 0:  # the kernel takes a persistent service with timeout 0 silently
            return Refusal(errno.EINVAL, "persistence timeout 0: a persistent service needs a timeout")
        problem = _out_of_range("persistence timeout", persistence.timeout, 1, MAX_PERSISTENCE_TIMEOUT)
        problem = problem or _out_of_range(
            "persistence netmask", persistence.netmask, 0, max_prefix(service.key.family)
        )
        if problem is not None:
            return problem
    names = sched_flag_names(service.scheduler)
    unknown = sorted(service.sched_flags - set(names))
    if unknown:
        return Refusal(errno.EINVAL, f"scheduler flags {', '.join(unknown)} not known to scheduler {service.scheduler}")
    return None


def _real_problem(real: RealServer, *, full: bool) -> Refusal | None:
    problem = _out_of_range("real server port", real.port, 0, 65535)
    if full:
        problem = (
            problem
            or _out_of_range("weight", real.weight, 0, INT_MAX)
            or _out_of_range("upper threshold", real.upper_threshold, 0, UINT_MAX)
            or _out_of_range("lower threshold", real.lower_threshold, 0, UINT_MAX)
        )
    return problem


def encoding_problem(operation: Operation) -> Refusal | None:
    """Why the operation cannot be sent as it is, or None; checked before anything reaches the kernel."""
    problem = _key_problem(operation.key)
    if problem is not None:
        return problem
    match operation:
        case AddVirtualService(service=service) | EditVirtualService(service=service):
            return _settings_problem(service)
        case AddRealServer(real=real) | EditRealServer(real=real):
            return _real_problem(real, full=True)
        case DeleteRealServer(real=real):
            return _real_problem(real, full=False)
    return None


# --- decoding -----------------------------------------------------------------------------------------
# The decoders trust their input's types: numbers are ints and addresses, names and netmasks strs.
# ``ipvs_wire`` and ``ipvs_layout`` produce them so by construction; the pyroute2 transport checks what
# pyroute2 gives (``ipvs_pyroute2._attributes``). A read turns thousands of these: no checks per field.


def _canonical(address: str) -> str:
    """The model's spelling of an address as inet_ntop(3) wrote it.

    inet_ntop and ``ipaddress`` agree (RFC 5952) except where inet_ntop embeds an IPv4 address in
    an IPv6 one; only those, rare, take the slow path (a read turns thousands of addresses).
    """
    if "." in address and ":" in address:
        return str(ipaddress.ip_address(address))
    return address


def _prefix_of(netmask: str, *, family: int) -> int:
    packed = socket.inet_aton(netmask)
    if family == 6:
        prefix: int = struct.unpack("=I", packed)[0]
        return prefix
    bits = int.from_bytes(packed, "big")
    return 32 - (~bits & UINT_MAX).bit_length()  # leading ones (a non-contiguous mask is cut at its first 0)


def decode_service(attributes: Mapping[str, Any]) -> VirtualService | None:
    """The service (without real servers) of a dumped service; None if the model cannot hold it."""
    family = _VERSIONS.get(attributes.get("IPVS_SVC_ATTR_AF", 0))
    if family is None:
        return None
    if "IPVS_SVC_ATTR_FWMARK" in attributes:
        key = ServiceKey.fwmark(attributes.get("IPVS_SVC_ATTR_FWMARK", 0), family=family)
    else:
        protocol = _PROTOCOLS.get(attributes.get("IPVS_SVC_ATTR_PROTOCOL", 0))
        if protocol is None:
            return None
        address = _canonical(attributes.get("IPVS_SVC_ATTR_ADDR", ""))
        key = ServiceKey(protocol, address, attributes.get("IPVS_SVC_ATTR_PORT", 0))
    flags = attributes.get("IPVS_SVC_ATTR_FLAGS", 0)
    persistence = None
    if flags & FLAG_PERSISTENT:
        netmask = _prefix_of(attributes.get("IPVS_SVC_ATTR_NETMASK", ""), family=family)
        persistence = Persistence(timeout=attributes.get("IPVS_SVC_ATTR_TIMEOUT", 0), netmask=netmask)
    scheduler = attributes.get("IPVS_SVC_ATTR_SCHED_NAME", "")
    names = sched_flag_names(scheduler)
    sched_flags = frozenset(name for bit, name in enumerate(names) if flags & (1 << (_SCHED_FLAG_SHIFT + bit)))
    return VirtualService(
        key,
        scheduler=scheduler,
        persistence=persistence,
        sched_flags=sched_flags,
        one_packet=bool(flags & FLAG_ONEPACKET),
        pe_name=attributes.get("IPVS_SVC_ATTR_PE_NAME", ""),
    )


def decode_real(attributes: Mapping[str, Any], *, key: ServiceKey) -> RealServer:
    """The real server of a dumped destination of the service ``key``."""
    return real_from_fields(
        attributes.get("IPVS_DEST_ATTR_ADDR", ""),
        attributes.get("IPVS_DEST_ATTR_PORT", 0),
        family=attributes.get("IPVS_DEST_ATTR_ADDR_FAMILY", 0),
        forwarding=attributes.get("IPVS_DEST_ATTR_FWD_METHOD", 0),
        weight=attributes.get("IPVS_DEST_ATTR_WEIGHT", 0),
        upper=attributes.get("IPVS_DEST_ATTR_U_THRESH", 0),
        lower=attributes.get("IPVS_DEST_ATTR_L_THRESH", 0),
        key=key,
    )


def real_from_fields(
    address: str, port: int, *, family: int, forwarding: int, weight: int, upper: int, lower: int, key: ServiceKey
) -> RealServer:
    """The real server of a destination's fields as the kernel sends them (``family``: AF_*, 0 if absent)."""
    version = _VERSIONS.get(family, key.family)
    address = _canonical(address)
    if family_of(address) != version:
        raise ValueError(f"destination {address} is not of address family {version}")
    return RealServer(
        address,
        port,
        weight=weight,
        forwarding=_FORWARDINGS.get(forwarding & _FORWARDING_MASK, Forwarding.ROUTE),
        upper_threshold=upper,
        lower_threshold=lower,
    )


def decode_connections(attributes: Mapping[str, Any]) -> ConnectionCounts:
    """Connection counts of a dumped destination; persistence templates count as inactive."""
    return ConnectionCounts(
        active=attributes.get("IPVS_DEST_ATTR_ACTIVE_CONNS", 0),
        inactive=attributes.get("IPVS_DEST_ATTR_INACT_CONNS", 0) + attributes.get("IPVS_DEST_ATTR_PERSIST_CONNS", 0),
    )


def stats_counters(stats: Mapping[str, Any]) -> tuple[int, ...]:
    """A destination's counters in ``STATS_COUNTERS`` order (absent ones are 0): ``RealServerStats(*...)``."""
    return tuple(stats.get(name, 0) for name in STATS_COUNTERS)
