"""IPVS generic-netlink messages ⇄ bytes, without pyroute2: the encoder and decoder the hot paths use.

Pure (no I/O). Owns the wire layout: netlink and generic-netlink headers, and the IPVS attribute
tables below (numbers and encodings of ``include/uapi/linux/ip_vs.h``), compiled once at import into
per-attribute packers and readers. ``netlink_codec`` still owns what the attributes mean: this module
takes its ``Request`` objects (values as pyroute2 takes them) and gives back the mappings its
``decode_*`` functions read (values as ``netlink._attributes`` makes them from pyroute2).

Encoding is byte for byte pyroute2's ``ipvsmsg`` (IPv4 addresses in 4 bytes, strings NUL-terminated,
nests without ``NLA_F_NESTED``, zero padding). Decoding skips attribute types it does not know (newer
kernels add some) and refuses, with ``WireFormatError``, lengths that run past their container.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Mapping
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton
from typing import Any, Final, NamedTuple

from ipvsctl.backend.netlink_codec import STATS_COUNTERS, Request
from ipvsctl.errors import IpvsctlError

__all__ = [
    "COMMAND_ATTRIBUTES",
    "DEST_ATTRIBUTES",
    "GENL_VERSION",
    "NLMSG_DONE",
    "NLMSG_ERROR",
    "NLM_F_ACK",
    "NLM_F_DUMP",
    "NLM_F_REQUEST",
    "SERVICE_ATTRIBUTES",
    "STATS64_ATTRIBUTES",
    "STATS_ATTRIBUTES",
    "Buffer",
    "Reply",
    "Table",
    "WireFormatError",
    "decode_dest_reply",
    "decode_service_reply",
    "encode_request",
    "iter_replies",
    "nest_table",
]

# Netlink message flags (include/uapi/linux/netlink.h), shared by every request this project encodes.
NLM_F_REQUEST: Final = 0x1
NLM_F_ACK: Final = 0x4
NLM_F_DUMP: Final = 0x300
NLMSG_ERROR: Final = 2
NLMSG_DONE: Final = 3
GENL_VERSION: Final = 1  # IPVS_GENL_VERSION

Buffer = bytes | bytearray | memoryview

# Encoding kinds. Numbers are host order except BE16 (ports, as the kernel's nla_get_be16 reads them).
U8, U16, U32, U64, BE16 = "u8", "u16", "u32", "u64", "be16"
FLAGS = "flags"  # struct ip_vs_flags {u32 flags; u32 mask}; read back as the flags alone
ADDRESS = "address"  # union nf_inet_addr: 4 or 16 bytes sent, 16 read back, per the family attribute
DOTTED = "dotted"  # a u32 shown as a dotted quad (the netmask; for IPv6 a prefix length, see netlink_codec)
NAME = "name"  # NUL-terminated string
NESTED = "nested"  # nested attributes of the table named in _NESTS

Table = Mapping[str, tuple[int, str]]
"""Attribute name → (nla type number, encoding kind)."""

# The attribute tables: enum order of include/uapi/linux/ip_vs.h. Unlisted numbers are skipped on read.
STATS_ATTRIBUTES: Table = {
    "IPVS_STATS_ATTR_CONNS": (1, U32),
    "IPVS_STATS_ATTR_INPKTS": (2, U32),
    "IPVS_STATS_ATTR_OUTPKTS": (3, U32),
    "IPVS_STATS_ATTR_INBYTES": (4, U64),
    "IPVS_STATS_ATTR_OUTBYTES": (5, U64),
    "IPVS_STATS_ATTR_CPS": (6, U32),
    "IPVS_STATS_ATTR_INPPS": (7, U32),
    "IPVS_STATS_ATTR_OUTPPS": (8, U32),
    "IPVS_STATS_ATTR_INBPS": (9, U32),
    "IPVS_STATS_ATTR_OUTBPS": (10, U32),
}  # 11 is IPVS_STATS_ATTR_PAD: alignment filler for the u64 values
STATS64_ATTRIBUTES: Table = {name: (number, U64) for name, (number, _) in STATS_ATTRIBUTES.items()}
SERVICE_ATTRIBUTES: Table = {
    "IPVS_SVC_ATTR_AF": (1, U16),
    "IPVS_SVC_ATTR_PROTOCOL": (2, U16),
    "IPVS_SVC_ATTR_ADDR": (3, ADDRESS),
    "IPVS_SVC_ATTR_PORT": (4, BE16),
    "IPVS_SVC_ATTR_FWMARK": (5, U32),
    "IPVS_SVC_ATTR_SCHED_NAME": (6, NAME),
    "IPVS_SVC_ATTR_FLAGS": (7, FLAGS),
    "IPVS_SVC_ATTR_TIMEOUT": (8, U32),
    "IPVS_SVC_ATTR_NETMASK": (9, DOTTED),
    "IPVS_SVC_ATTR_STATS": (10, NESTED),
    "IPVS_SVC_ATTR_PE_NAME": (11, NAME),
    "IPVS_SVC_ATTR_STATS64": (12, NESTED),
}
DEST_ATTRIBUTES: Table = {
    "IPVS_DEST_ATTR_ADDR": (1, ADDRESS),
    "IPVS_DEST_ATTR_PORT": (2, BE16),
    "IPVS_DEST_ATTR_FWD_METHOD": (3, U32),
    "IPVS_DEST_ATTR_WEIGHT": (4, U32),
    "IPVS_DEST_ATTR_U_THRESH": (5, U32),
    "IPVS_DEST_ATTR_L_THRESH": (6, U32),
    "IPVS_DEST_ATTR_ACTIVE_CONNS": (7, U32),
    "IPVS_DEST_ATTR_INACT_CONNS": (8, U32),
    "IPVS_DEST_ATTR_PERSIST_CONNS": (9, U32),
    "IPVS_DEST_ATTR_STATS": (10, NESTED),
    "IPVS_DEST_ATTR_ADDR_FAMILY": (11, U16),
    "IPVS_DEST_ATTR_STATS64": (12, NESTED),
    "IPVS_DEST_ATTR_TUN_TYPE": (13, U8),
    "IPVS_DEST_ATTR_TUN_PORT": (14, BE16),  # the kernel's nla_put_be16 (pyroute2 says host-order uint16)
    "IPVS_DEST_ATTR_TUN_FLAGS": (15, U16),
}
COMMAND_ATTRIBUTES: Table = {
    "IPVS_CMD_ATTR_SERVICE": (1, NESTED),
    "IPVS_CMD_ATTR_DEST": (2, NESTED),
    "IPVS_CMD_ATTR_TIMEOUT_TCP": (4, U32),  # 3 (DAEMON) has no use here
    "IPVS_CMD_ATTR_TIMEOUT_TCP_FIN": (5, U32),
    "IPVS_CMD_ATTR_TIMEOUT_UDP": (6, U32),
}
_NESTS: Mapping[str, Table] = {
    "IPVS_CMD_ATTR_SERVICE": SERVICE_ATTRIBUTES,
    "IPVS_CMD_ATTR_DEST": DEST_ATTRIBUTES,
    "IPVS_SVC_ATTR_STATS": STATS_ATTRIBUTES,
    "IPVS_SVC_ATTR_STATS64": STATS64_ATTRIBUTES,
    "IPVS_DEST_ATTR_STATS": STATS_ATTRIBUTES,
    "IPVS_DEST_ATTR_STATS64": STATS64_ATTRIBUTES,
}
_FAMILY_OF = {"IPVS_SVC_ATTR_ADDR": "IPVS_SVC_ATTR_AF", "IPVS_DEST_ATTR_ADDR": "IPVS_DEST_ATTR_ADDR_FAMILY"}

# Layouts of the fixed-size kinds (read; written with zero padding to a multiple of 4 bytes).
_NUMBER_FORMATS = {U8: "=B", U16: "=H", U32: "=I", U64: "=Q", BE16: ">H"}
_READ_FORMATS = {**_NUMBER_FORMATS, FLAGS: "=I4x", DOTTED: "=4s"}
_ADDRESS_SIZES: Mapping[int, int] = {AF_INET: 4, AF_INET6: 16}

_NLMSGHDR = struct.Struct("=IHHII")
_GENLMSGHDR = struct.Struct("=BBH")
_NLA = struct.Struct("=HH")
_FLAGS = struct.Struct("=II")
_ERRNO = struct.Struct("=i")
_NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER


class WireFormatError(IpvsctlError, ValueError):
    """Values that cannot be encoded as IPVS attributes, or bytes that do not form the messages they claim to."""


class Reply(NamedTuple):
    """One netlink message read back; ``error`` is the positive errno of an NLMSG_ERROR (0: ack) or
    NLMSG_DONE (0: the dump ended well), None for other types.

    A named tuple rather than a frozen dataclass: a read makes one per message, and a tuple is built
    in C (a frozen dataclass sets each field through a Python call; measured 3x slower under the lab).
    """

    type: int
    flags: int
    seq: int
    port_id: int
    error: int | None
    payload: bytes | memoryview  # after the nlmsghdr: for IPVS, genlmsghdr then attributes


# --- encoding -----------------------------------------------------------------------------------------

_Encoder = Callable[[Any], bytes]


def _encoder(name: str, number: int, kind: str) -> _Encoder:
    header = _NLA.pack
    if kind in _NUMBER_FORMATS:
        size = struct.calcsize(_NUMBER_FORMATS[kind])
        fixed, pack = header(4 + size, number), struct.Struct(f"{_NUMBER_FORMATS[kind]}{-size % 4}x").pack
        return lambda value: fixed + pack(value)
    if kind == FLAGS:
        fixed, pack = header(4 + _FLAGS.size, number), _FLAGS.pack
        return lambda value: fixed + pack(value["flags"], value["mask"])
    if kind == DOTTED:
        fixed = header(8, number)
        return lambda value: fixed + inet_pton(AF_INET, value)
    if kind == ADDRESS:  # pyroute2 takes the family from the AF attribute; the address itself tells the same

        def address(value: str) -> bytes:
            packed = inet_pton(AF_INET6 if ":" in value else AF_INET, value)
            return header(4 + len(packed), number) + packed

        return address
    if kind == NAME:

        def name_(value: str) -> bytes:
            data = value.encode()
            return header(5 + len(data), number) + data + b"\0" * (4 - len(data) % 4)  # NUL, then padding

        return name_
    encoders = _encoders(_NESTS[name])

    def nested(value: Mapping[str, Any]) -> bytes:
        body = _encode_attributes(encoders, value["attrs"])
        return header(4 + len(body), number) + body

    return nested


def _encoders(table: Table) -> Mapping[str, _Encoder]:
    return {name: _encoder(name, number, kind) for name, (number, kind) in table.items()}


def _encode_attributes(encoders: Mapping[str, _Encoder], attributes: list[tuple[str, Any]]) -> bytes:
    try:
        return b"".join([encoders[name](value) for name, value in attributes])
    except KeyError as error:
        raise WireFormatError(f"unknown IPVS attribute (or missing field) {error} at this level") from None
    except (struct.error, OSError, TypeError) as error:  # a number out of range, a bad address, a wrong type
        raise WireFormatError(f"cannot encode IPVS attributes {attributes!r}: {error}") from None


_COMMAND_ENCODERS = _encoders(COMMAND_ATTRIBUTES)


def encode_request(request: Request, *, family_id: int, flags: int, seq: int, port_id: int = 0) -> bytes:
    """A full netlink message: nlmsghdr, genlmsghdr (command, GENL_VERSION) and the attributes."""
    body = _encode_attributes(_COMMAND_ENCODERS, request.attributes)
    length = _NLMSGHDR.size + _GENLMSGHDR.size + len(body)
    return (
        _NLMSGHDR.pack(length, family_id, flags, seq, port_id)
        + _GENLMSGHDR.pack(request.command, GENL_VERSION, 0)
        + body
    )


# --- decoding -----------------------------------------------------------------------------------------

_Field = tuple[str, str, struct.Struct | None, int]
"""name, kind, reader of a fixed-size value (None for the others), least payload size."""


def nest_table(name: str) -> Table | None:
    """The attribute table of a nested attribute, None for a name that is not a nest."""
    return _NESTS.get(name)


def _fields(table: Table, *, only: frozenset[str] | None = None) -> Mapping[int, _Field]:
    fields: dict[int, _Field] = {}
    for name, (number, kind) in table.items():
        if only is None or name in only:
            reader = struct.Struct(_READ_FORMATS[kind]) if kind in _READ_FORMATS else None
            fields[number] = (name, kind, reader, 0 if reader is None else reader.size)
    return fields


def _read(fields: Mapping[int, _Field], data: Buffer, offset: int, end: int) -> dict[str, Any]:
    """The known attributes between offset and end (nests and addresses as their (start, stop) span).

    Stops once every field is read: the stats counters wanted come first in the kernel's order."""
    attributes: dict[str, Any] = {}
    wanted = len(fields)
    while end - offset >= 4:
        length, number = _NLA.unpack_from(data, offset)
        stop = offset + length
        if length < 4 or stop > end:
            raise WireFormatError(f"netlink attribute of length {length} at offset {offset} overruns {end}")
        field = fields.get(number & _NLA_TYPE_MASK)
        if field is not None:
            name, kind, reader, size = field
            if length - 4 < size:
                raise WireFormatError(f"{name}: {length - 4} bytes, {kind} needs {size}")
            if reader is not None:
                value = reader.unpack_from(data, offset + 4)[0]
                attributes[name] = inet_ntop(AF_INET, value) if kind == DOTTED else value
            elif kind == NAME:
                attributes[name] = bytes(data[offset + 4 : stop]).strip(b"\0").decode("utf-8", "replace")
            else:
                attributes[name] = (offset + 4, stop)
            if len(attributes) == wanted:
                break
        offset += (length + 3) & ~3
    return attributes


def _address(attributes: dict[str, Any], name: str, data: Buffer) -> None:
    """Replace the span of an address by its text, in the family its sibling attribute gives."""
    span = attributes.get(name)
    if span is None:
        return
    family: int = attributes.get(_FAMILY_OF[name], 0)
    size = _ADDRESS_SIZES.get(family)
    start, stop = span
    if size is None or stop - start < size:
        raise WireFormatError(f"{name}: {stop - start} bytes in address family {family}")
    attributes[name] = inet_ntop(family, data[start : start + size])


def _nested(payload: Buffer, nest: str) -> dict[str, Any]:
    """The attributes of a top-level nest of a generic-netlink payload (spans index the payload)."""
    span = _read(_TOP_FIELDS, payload, _GENLMSGHDR.size, len(payload)).get(nest)
    if span is None:
        raise WireFormatError(f"reply without {nest}")
    return _read(_NEST_FIELDS[nest], payload, *span)


_TOP_FIELDS = _fields(COMMAND_ATTRIBUTES)
_NEST_FIELDS = {nest: _fields(_NESTS[nest]) for nest in ("IPVS_CMD_ATTR_SERVICE", "IPVS_CMD_ATTR_DEST")}
_STATS_FIELDS = {
    name: _fields(_NESTS[name], only=frozenset(STATS_COUNTERS))
    for name in ("IPVS_DEST_ATTR_STATS64", "IPVS_DEST_ATTR_STATS")  # preference order
}


def decode_service_reply(payload: Buffer) -> dict[str, object]:
    """The attributes of the IPVS_CMD_ATTR_SERVICE of a reply, as ``netlink_codec.decode_service`` reads them."""
    attributes = _nested(payload, "IPVS_CMD_ATTR_SERVICE")
    attributes.pop("IPVS_SVC_ATTR_STATS", None)
    attributes.pop("IPVS_SVC_ATTR_STATS64", None)
    _address(attributes, "IPVS_SVC_ATTR_ADDR", payload)
    return attributes


def decode_dest_reply(payload: Buffer) -> dict[str, object]:
    """The attributes of the IPVS_CMD_ATTR_DEST of a reply, with the counters of ``STATS_COUNTERS`` from the
    64-bit stats (else the 32-bit ones) under ``IPVS_DEST_ATTR_STATS``."""
    attributes = _nested(payload, "IPVS_CMD_ATTR_DEST")
    spans = {name: attributes.pop(name, None) for name in _STATS_FIELDS}
    for name, fields in _STATS_FIELDS.items():
        span = spans[name]
        if span is not None:
            attributes["IPVS_DEST_ATTR_STATS"] = _read(fields, payload, *span)
            break
    _address(attributes, "IPVS_DEST_ATTR_ADDR", payload)
    return attributes


def iter_replies(data: Buffer) -> Iterator[Reply]:
    """The netlink messages of one recv() buffer, in order; WireFormatError if one is cut short or corrupt."""
    view = memoryview(data)
    offset, end = 0, len(view)
    while offset < end:
        if end - offset < _NLMSGHDR.size:
            raise WireFormatError(f"truncated netlink header at offset {offset}: {end - offset} bytes left")
        length, kind, flags, seq, port_id = _NLMSGHDR.unpack_from(view, offset)
        if length < _NLMSGHDR.size or offset + length > end:
            raise WireFormatError(f"netlink message of length {length} at offset {offset}: {end - offset} bytes left")
        payload = view[offset + _NLMSGHDR.size : offset + length]
        error = None
        if kind == NLMSG_ERROR or (kind == NLMSG_DONE and len(payload) >= _ERRNO.size):
            if len(payload) < _ERRNO.size:
                raise WireFormatError(f"NLMSG_ERROR at offset {offset} without an error code")
            error = -_ERRNO.unpack_from(payload)[0]  # the kernel sends -errno
        yield Reply(kind, flags, seq, port_id, error, payload)
        offset += (length + 3) & ~3
