"""Netlink messages ⇄ bytes: headers, attributes, flags, replies and errors (``include/uapi/linux/netlink.h``,
``genetlink.h``).

Pure (no I/O). What every netlink protocol this project speaks shares: generic netlink (IPVS, the family
look-up) and rtnetlink (the interface's link and addresses) build their messages from these pieces and read
their answers with ``iter_replies``. Bytes that do not form the messages they claim to, and values that
cannot be encoded, are ``WireFormatError``; a request the kernel refused is a ``KernelRefusalError``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Mapping
from socket import AF_INET, AF_INET6
from typing import Final, NamedTuple

from ipvsctl.errors import IpvsctlError

__all__ = [
    "ADDRESS_SIZES",
    "ATTRIBUTE",
    "ATTRIBUTE_TYPE_MASK",
    "DONE",
    "GENL_HEADER",
    "HEADER",
    "NLMSG_DONE",
    "NLMSG_ERROR",
    "NLM_F_ACK",
    "NLM_F_CREATE",
    "NLM_F_DUMP",
    "NLM_F_EXCL",
    "NLM_F_MULTI",
    "NLM_F_REQUEST",
    "SEQUENCE_OFFSET",
    "Buffer",
    "KernelRefusalError",
    "Reply",
    "WireFormatError",
    "aligned",
    "attribute",
    "iter_attributes",
    "iter_replies",
    "message",
    "sequence_of",
]

# Message flags and types.
NLM_F_REQUEST: Final = 0x1
NLM_F_MULTI: Final = 0x2
NLM_F_ACK: Final = 0x4
NLM_F_DUMP: Final = 0x300
NLM_F_EXCL: Final = 0x200  # of a new object: fail with EEXIST when it exists
NLM_F_CREATE: Final = 0x400  # of a new object: create it when it does not exist
NLMSG_ERROR: Final = 2
NLMSG_DONE: Final = 3

HEADER: Final = struct.Struct("=IHHII")  # struct nlmsghdr: length, type, flags, sequence number, port id
GENL_HEADER: Final = struct.Struct("=BBH")  # struct genlmsghdr (generic netlink, after HEADER): command, version, 0
SEQUENCE_OFFSET: Final = 8  # of the sequence number in struct nlmsghdr
DONE: Final = struct.Struct("=IHHIIi")  # a lone NLMSG_DONE: its header and the dump's status (-errno)
ATTRIBUTE: Final = struct.Struct("=HH")  # struct nlattr: length (header included), type
ATTRIBUTE_TYPE_MASK: Final = 0x3FFF  # the type without NLA_F_NESTED and NLA_F_NET_BYTEORDER
ADDRESS_SIZES: Final[Mapping[int, int]] = {int(AF_INET): 4, int(AF_INET6): 16}  # an address's bytes, by family

_ERRNO = struct.Struct("=i")

Buffer = bytes | bytearray | memoryview


class WireFormatError(IpvsctlError, ValueError):
    """Values that cannot be encoded as netlink attributes, or bytes that do not form the messages they claim to."""


class KernelRefusalError(Exception):
    """The kernel refused one request (its errno), as our own type."""

    def __init__(self, code: int) -> None:
        self.errno = code
        self.message = os.strerror(code)
        super().__init__(code, self.message)


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
    payload: bytes | memoryview  # after the nlmsghdr


def aligned(length: int) -> int:
    """``length`` rounded up to netlink's 4-byte alignment (NLMSG_ALIGN, NLA_ALIGN)."""
    return (length + 3) & ~3


def message(kind: int, *, flags: int, seq: int, body: bytes, port_id: int = 0) -> bytes:
    """A whole netlink message: the header, counting ``body`` (already aligned), then ``body``."""
    try:
        return HEADER.pack(HEADER.size + len(body), kind, flags, seq, port_id) + body
    except struct.error as error:
        raise WireFormatError(f"cannot encode a netlink header of type {kind}: {error}") from error


def sequence_of(data: Buffer) -> int:
    """The sequence number of the message at the start of ``data``."""
    sequence: int = struct.unpack_from("=I", data, SEQUENCE_OFFSET)[0]
    return sequence


def attribute(number: int, value: bytes) -> bytes:
    """One attribute: its header, ``value``, and the zero padding to 4 bytes."""
    return ATTRIBUTE.pack(ATTRIBUTE.size + len(value), number) + value + b"\0" * (-len(value) % 4)


def iter_attributes(data: Buffer, offset: int, end: int) -> Iterator[tuple[int, int, int]]:
    """The attributes between ``offset`` and ``end``: (type without its flag bits, value start, value stop).

    WireFormatError for an attribute shorter than its header or running past ``end``. For the cold paths
    (links, families); the hot decoders walk their attributes inline, a generator per reply costing more.
    """
    while end - offset >= ATTRIBUTE.size:
        length, number = ATTRIBUTE.unpack_from(data, offset)
        stop = offset + length
        if length < ATTRIBUTE.size or stop > end:
            raise WireFormatError(f"netlink attribute of length {length} at offset {offset} overruns {end}")
        yield number & ATTRIBUTE_TYPE_MASK, offset + ATTRIBUTE.size, stop
        offset += aligned(length)


def iter_replies(data: Buffer) -> Iterator[Reply]:
    """The netlink messages of one recv() buffer, in order; WireFormatError if one is cut short or corrupt."""
    view = memoryview(data)
    offset, end = 0, len(view)
    while offset < end:
        if end - offset < HEADER.size:
            raise WireFormatError(f"truncated netlink header at offset {offset}: {end - offset} bytes left")
        length, kind, flags, seq, port_id = HEADER.unpack_from(view, offset)
        if length < HEADER.size or offset + length > end:
            raise WireFormatError(f"netlink message of length {length} at offset {offset}: {end - offset} bytes left")
        payload = view[offset + HEADER.size : offset + length]
        error = None
        if kind == NLMSG_ERROR or (kind == NLMSG_DONE and len(payload) >= _ERRNO.size):
            if len(payload) < _ERRNO.size:
                raise WireFormatError(f"NLMSG_ERROR at offset {offset} without an error code")
            error = -_ERRNO.unpack_from(payload)[0]  # the kernel sends -errno
        yield Reply(kind, flags, seq, port_id, error, payload)
        offset += aligned(length)
