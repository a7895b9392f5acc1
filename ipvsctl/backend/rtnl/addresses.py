"""Interface addresses over rtnetlink ⇄ bytes, without pyroute2: the agent's VIP binds and their dump.

Pure (no I/O). Owns the layout of RTM_NEWADDR, RTM_DELADDR and RTM_GETADDR messages (``struct ifaddrmsg``
and the IFA_* attributes of ``include/uapi/linux/if_addr.h``); the netlink header, attribute headers, flags
and ``WireFormatError`` are ``netlink.message``'s.

A request is byte for byte what pyroute2's ``AsyncIPRoute.addr("add"/"del", index=, address=, prefixlen=,
flags=)`` sends: IFA_ADDRESS; then IFA_FLAGS, the u32 attribute, when flags are given (the u8
``ifaddrmsg.flags`` stays 0: the kernel takes IFA_FLAGS over it); then, for IPv4 only, IFA_LOCAL with the
same address (pyroute2 adds it for AF_INET; the kernel's IPv6 side reads a lone IFA_ADDRESS as the local
address). A dump request differs from pyroute2's in one field: ``ifa_index`` carries the index, which
kernels filter by when the socket asked for strict checking and ignore otherwise.

A reply's address is IFA_ADDRESS (as pyroute2 reads it: the peer on a point-to-point
address), else IFA_LOCAL, else, for IPv4, 0.0.0.0 (the kernel leaves a zero address out). Replies of other
families (an AF_UNSPEC dump also returns AF_MCTP or AF_PHONET ones, of their own interfaces) keep ``""``.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton
from typing import Final, NamedTuple

from ipvsctl.backend.netlink.message import (
    ADDRESS_SIZES,
    ATTRIBUTE,
    ATTRIBUTE_TYPE_MASK,
    HEADER,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    Buffer,
    WireFormatError,
    aligned,
)
from ipvsctl.model import canonical_ip

__all__ = [
    "ADDRESS_ATTRIBUTES",
    "REQUEST_ATTRIBUTES",
    "RTM_DELADDR",
    "RTM_GETADDR",
    "RTM_NEWADDR",
    "AddressReply",
    "decode_address_reply",
    "encode_address_dump",
    "encode_address_request",
]

RTM_NEWADDR: Final = 20
RTM_DELADDR: Final = 21
RTM_GETADDR: Final = 22

ADDRESS_ATTRIBUTES: Mapping[str, int] = {"IFA_ADDRESS": 1, "IFA_LOCAL": 2, "IFA_FLAGS": 8}
"""The IFA_* attributes this module writes or reads, by number (the others are skipped on read)."""

REQUEST_ATTRIBUTES: Mapping[tuple[int, bool], tuple[str, ...]] = {
    (AF_INET, False): ("IFA_ADDRESS", "IFA_LOCAL"),
    (AF_INET, True): ("IFA_ADDRESS", "IFA_FLAGS", "IFA_LOCAL"),
    (AF_INET6, False): ("IFA_ADDRESS",),
    (AF_INET6, True): ("IFA_ADDRESS", "IFA_FLAGS"),
}
"""The attributes of an add or delete request, in pyroute2's order, by (family, IFA_FLAGS sent)."""

_IFADDRMSG = struct.Struct("=BBBBI")  # struct ifaddrmsg: family, prefix length, flags, scope, index
_HEAD = struct.Struct(HEADER.format + _IFADDRMSG.format.lstrip("="))  # a request's nlmsghdr and ifaddrmsg
_U32 = struct.Struct("=I")
_IFA_ADDRESS, _IFA_LOCAL = ADDRESS_ATTRIBUTES["IFA_ADDRESS"], ADDRESS_ATTRIBUTES["IFA_LOCAL"]
_ADDRESS_TYPES = frozenset({_IFA_ADDRESS, _IFA_LOCAL})
_REQUEST_TYPES = frozenset({RTM_NEWADDR, RTM_DELADDR})
_ZERO_IPV4 = inet_ntop(AF_INET, bytes(4))  # what a reply without an address holds (see the module docstring)


class AddressReply(NamedTuple):
    """One address of a dump. A named tuple, as ``netlink.message.Reply``: a frozen dataclass costs 2.5x as much
    to build (0.87 against 0.34 µs on the host), and a read builds 10,000."""

    index: int  # type: ignore[assignment]  # the field hides tuple.index(), which nothing here wants
    family: int
    prefix: int
    scope: int
    address: str  # canonical text; "" for a family other than AF_INET and AF_INET6


# --- encoding -----------------------------------------------------------------------------------------


class _Layout(NamedTuple):
    length: int  # of the whole message
    attributes: tuple[tuple[bytes, bool], ...]  # each attribute's header, and whether it holds the flags


def _layout(family: int, names: tuple[str, ...]) -> _Layout:
    sizes = [_U32.size if name == "IFA_FLAGS" else ADDRESS_SIZES[family] for name in names]
    attributes = tuple(
        (ATTRIBUTE.pack(ATTRIBUTE.size + size, ADDRESS_ATTRIBUTES[name]), name == "IFA_FLAGS")
        for name, size in zip(names, sizes, strict=True)
    )  # every size is a multiple of 4: no padding
    return _Layout(_HEAD.size + sum(ATTRIBUTE.size + size for size in sizes), attributes)


_LAYOUTS = {key: _layout(key[0], names) for key, names in REQUEST_ATTRIBUTES.items()}


def encode_address_request(
    command: int,
    *,
    index: int,
    address: str,
    prefix: int,
    flags: int,
    seq: int,
    ifa_flags: int = 0,
    port_id: int = 0,
) -> bytes:
    """An RTM_NEWADDR or RTM_DELADDR message for ``address``/``prefix`` on interface ``index``, with
    netlink ``flags`` and the IFA_F_* ``ifa_flags`` (0: no IFA_FLAGS attribute, as pyroute2 without flags=)."""
    if command not in _REQUEST_TYPES:
        raise WireFormatError(f"address request of message type {command}: RTM_NEWADDR or RTM_DELADDR only")
    family = AF_INET6 if ":" in address else AF_INET
    try:
        packed = inet_pton(family, address)
    except (OSError, TypeError) as error:
        raise WireFormatError(f"cannot encode address {address!r}: {error}") from error
    if not 0 <= prefix <= 8 * len(packed):
        raise WireFormatError(f"prefix length {prefix} for {address}: 0 to {8 * len(packed)}")
    length, attributes = _LAYOUTS[family, bool(ifa_flags)]
    try:
        head = _HEAD.pack(length, command, flags, seq, port_id, family, prefix, 0, 0, index)
        flag_value = _U32.pack(ifa_flags)
    except struct.error as error:
        raise WireFormatError(f"cannot encode the request for {address}: {error}") from error
    return head + b"".join([header + (flag_value if is_flags else packed) for header, is_flags in attributes])


def encode_address_dump(*, index: int, family: int = 0, seq: int, port_id: int = 0) -> bytes:
    """An RTM_GETADDR dump request of ``family`` (0: all), asking for interface ``index``'s addresses only.

    Only kernels with strict checking on (NETLINK_GET_STRICT_CHK) honour the index: filter the replies."""
    try:
        return _HEAD.pack(_HEAD.size, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq, port_id, family, 0, 0, 0, index)
    except struct.error as error:
        raise WireFormatError(f"cannot encode the address dump of interface {index}: {error}") from error


# --- decoding -----------------------------------------------------------------------------------------


def decode_address_reply(payload: Buffer) -> AddressReply:
    """The address of one RTM_NEWADDR message (``payload``: the bytes after its nlmsghdr).

    Refuses, with WireFormatError, a header or attribute cut short, or an address of the wrong size for
    its family. The walk stops at IFA_ADDRESS, first in the kernel's order: what follows goes unchecked
    (the message's length itself is checked by ``iter_replies``)."""
    end = len(payload)
    if end < _IFADDRMSG.size:
        raise WireFormatError(f"address reply of {end} bytes: shorter than struct ifaddrmsg")
    family, prefix, _, scope, index = _IFADDRMSG.unpack_from(payload)
    size = ADDRESS_SIZES.get(family)
    if size is None:
        return AddressReply(index, family, prefix, scope, "")
    start = local = -1
    offset = _IFADDRMSG.size
    while end - offset >= ATTRIBUTE.size:
        length, number = ATTRIBUTE.unpack_from(payload, offset)
        if length < ATTRIBUTE.size or offset + length > end:
            raise WireFormatError(f"netlink attribute of length {length} at offset {offset} overruns {end}")
        number &= ATTRIBUTE_TYPE_MASK
        if number in _ADDRESS_TYPES:
            if length - ATTRIBUTE.size != size:
                raise WireFormatError(
                    f"address attribute {number} of {length - ATTRIBUTE.size} bytes in family {family}"
                )
            if number == _IFA_ADDRESS:
                start = offset + ATTRIBUTE.size
                break
            local = offset + ATTRIBUTE.size
        offset += aligned(length)
    if start < 0:
        start = local
    if start < 0:
        if family != AF_INET:
            raise WireFormatError(f"IPv6 address reply of interface {index} without IFA_ADDRESS or IFA_LOCAL")
        return AddressReply(index, family, prefix, scope, _ZERO_IPV4)
    text = inet_ntop(family, payload[start : start + size])
    if family == AF_INET6 and "." in text:  # inet_ntop's embedded IPv4 forms are not the model's spelling
        text = canonical_ip(text)
    return AddressReply(index, family, prefix, scope, text)
