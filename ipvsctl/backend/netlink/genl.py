"""Generic netlink's controller: a family's id by its name (no pyroute2 socket for it).

A generic-netlink family (IPVS is one) has a message type the kernel assigns when its module loads; the
controller (``GENL_ID_CTRL``) answers CTRL_CMD_GETFAMILY with it (``include/uapi/linux/genetlink.h``).
"""

from __future__ import annotations

import struct
from typing import Final

from ipvsctl.backend.netlink.channel import NetlinkChannel
from ipvsctl.backend.netlink.message import (
    GENL_HEADER,
    NLM_F_REQUEST,
    Buffer,
    Reply,
    WireFormatError,
    attribute,
    iter_attributes,
    message,
)

__all__ = ["GENL_ID_CTRL", "decode_family_id", "encode_family_request", "family_id"]

GENL_ID_CTRL: Final = 0x10
CTRL_CMD_GETFAMILY: Final = 3
CTRL_ATTR_FAMILY_ID: Final = 1  # u16
CTRL_ATTR_FAMILY_NAME: Final = 2  # NUL-terminated string
_CTRL_VERSION: Final = 1
_U16 = struct.Struct("=H")


def encode_family_request(name: str, *, seq: int, flags: int = NLM_F_REQUEST) -> bytes:
    """CTRL_CMD_GETFAMILY of the family ``name``."""
    body = GENL_HEADER.pack(CTRL_CMD_GETFAMILY, _CTRL_VERSION, 0) + attribute(
        CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0"
    )
    return message(GENL_ID_CTRL, flags=flags, seq=seq, body=body)


def decode_family_id(payload: Buffer) -> int:
    """The family id in the controller's answer (the payload after its nlmsghdr)."""
    for number, start, stop in iter_attributes(payload, GENL_HEADER.size, len(payload)):
        if number == CTRL_ATTR_FAMILY_ID and stop - start >= _U16.size:
            family: int = _U16.unpack_from(payload, start)[0]
            return family
    raise WireFormatError("generic-netlink family answer without CTRL_ATTR_FAMILY_ID")


def family_id(channel: NetlinkChannel, name: str) -> int:
    """The message type of the generic-netlink family ``name`` (blocking); KernelRefusalError (ENOENT)
    when the kernel has no such family."""

    def decode(reply: Reply) -> int:
        return decode_family_id(reply.payload)

    def encode(_index: int, seq: int, extra: int) -> bytes:
        return encode_family_request(name, seq=seq, flags=NLM_F_REQUEST | extra)

    answers = channel.request(encode, decode)
    if len(answers) != 1:
        raise WireFormatError(f"{len(answers)} answers to the request for generic-netlink family {name}")
    return answers[0]
