"""Links over rtnetlink ⇄ bytes, without pyroute2: the agent's interface looked up, created, set up, deleted.

Pure (no I/O). Owns the layout of RTM_GETLINK, RTM_NEWLINK and RTM_DELLINK messages (``struct ifinfomsg`` and
the IFLA_* attributes of ``include/uapi/linux/if_link.h`` this project writes or reads). A link is looked up
by name (IFLA_IFNAME), created with its kind (IFLA_LINKINFO → IFLA_INFO_KIND), brought up by index
(``ifi_flags`` and ``ifi_change`` IFF_UP, the rest unchanged) and deleted by index, as pyroute2's
``AsyncIPRoute.link("get"/"add"/"set"/"del")`` does. A reply gives the index, the flags and the kind ("" for a
device without one, as a NIC or ``lo``).
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from ipvsctl.backend.netlink.message import Buffer, WireFormatError, attribute, iter_attributes, message

__all__ = [
    "IFF_UP",
    "RTM_DELLINK",
    "RTM_GETLINK",
    "RTM_NEWLINK",
    "LinkReply",
    "decode_link_reply",
    "encode_link_request",
]

RTM_NEWLINK: Final = 16
RTM_DELLINK: Final = 17
RTM_GETLINK: Final = 18
IFF_UP: Final = 0x1

IFLA_IFNAME: Final = 3
IFLA_LINKINFO: Final = 18
IFLA_INFO_KIND: Final = 1  # nested in IFLA_LINKINFO

_IFINFOMSG = struct.Struct("=BxHiII")  # struct ifinfomsg: family, pad, type, index, flags, change
_COMMANDS = frozenset({RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK})


class LinkReply(NamedTuple):
    """A link as RTM_GETLINK answers it."""

    index: int  # type: ignore[assignment]  # the field hides tuple.index(), which nothing here wants
    flags: int
    kind: str  # IFLA_INFO_KIND; "" for a device without one


def _string(value: str) -> bytes:
    return value.encode() + b"\0"


def encode_link_request(
    command: int, *, seq: int, flags: int, index: int = 0, name: str = "", kind: str = "", up: bool = False
) -> bytes:
    """An RTM_GETLINK, RTM_NEWLINK or RTM_DELLINK message with netlink ``flags``: of the link ``index`` or,
    when it is 0, of the one named ``name``; with its ``kind`` (creating one) and IFF_UP set (``up``)."""
    if command not in _COMMANDS:
        raise WireFormatError(f"link request of message type {command}: RTM_GETLINK, RTM_NEWLINK or RTM_DELLINK only")
    change = IFF_UP if up else 0
    try:
        head = _IFINFOMSG.pack(0, 0, index, change, change)
    except struct.error as error:
        raise WireFormatError(f"cannot encode the link request of interface {index}: {error}") from error
    body = head
    if name:
        body += attribute(IFLA_IFNAME, _string(name))
    if kind:
        body += attribute(IFLA_LINKINFO, attribute(IFLA_INFO_KIND, _string(kind)))
    return message(command, flags=flags, seq=seq, body=body)


def decode_link_reply(payload: Buffer) -> LinkReply:
    """The link of one RTM_NEWLINK message (``payload``: the bytes after its nlmsghdr); WireFormatError for a
    header or attribute cut short."""
    if len(payload) < _IFINFOMSG.size:
        raise WireFormatError(f"link reply of {len(payload)} bytes: shorter than struct ifinfomsg")
    _, _, index, flags, _ = _IFINFOMSG.unpack_from(payload)
    kind = ""
    for number, start, stop in iter_attributes(payload, _IFINFOMSG.size, len(payload)):
        if number == IFLA_LINKINFO:
            for inner, value_start, value_stop in iter_attributes(payload, start, stop):
                if inner == IFLA_INFO_KIND:
                    kind = bytes(payload[value_start:value_stop]).rstrip(b"\0").decode("utf-8", "replace")
    return LinkReply(index, flags, kind)
