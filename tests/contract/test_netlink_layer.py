"""The netlink layer on the host: message pieces, the controller's family look-up, links, and what a failure means.

The request bytes are compared with pyroute2's (the reference); the look-ups run against the host kernel's
own netlink, read-only: the controller family, the loopback link, a name no link has.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Iterator

import pytest
from pyroute2.netlink import CTRL_CMD_GETFAMILY, GENL_ID_CTRL, ctrlmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from ipvsctl.backend.kernel import kernel_answers
from ipvsctl.backend.netlink.channel import NetlinkChannel
from ipvsctl.backend.netlink.genl import decode_family_id, encode_family_request, family_id
from ipvsctl.backend.netlink.message import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    KernelRefusalError,
    WireFormatError,
    attribute,
    iter_attributes,
    iter_replies,
    message,
    sequence_of,
)
from ipvsctl.backend.netlink.netns import NETLINK_GENERIC, NETLINK_ROUTE, netlink_descriptor
from ipvsctl.backend.rtnl.interface import Interface
from ipvsctl.backend.rtnl.links import (
    IFF_UP,
    RTM_DELLINK,
    RTM_GETLINK,
    RTM_NEWLINK,
    LinkReply,
    decode_link_reply,
    encode_link_request,
)
from ipvsctl.errors import BackendError

SEQ = 4242


def pyroute2_bytes(msg: ctrlmsg | ifinfmsg, *, kind: int, flags: int) -> bytes:
    """A pyroute2 message's bytes with the header its socket would set."""
    msg["header"]["type"], msg["header"]["flags"], msg["header"]["sequence_number"] = kind, flags, SEQ
    msg.encode()
    return bytes(msg.data)


def payload(data: bytes) -> bytes:
    """The payload of the single message in ``data``."""
    (reply,) = iter_replies(data)
    return bytes(reply.payload)


# --- message pieces -----------------------------------------------------------------------------------


def test_an_attribute_counts_its_header_and_is_padded() -> None:
    """An attribute's length is header + value (unpadded); the value is followed by zeros to 4 bytes."""
    assert attribute(3, b"ipvs0\0") == struct.pack("=HH", 10, 3) + b"ipvs0\0" + b"\0\0"


def test_attributes_come_back_without_their_flag_bits() -> None:
    """NLA_F_NESTED and NLA_F_NET_BYTEORDER are not part of an attribute's type; its value span is given."""
    inner = attribute(1, b"abc\0")
    data = struct.pack("=HH", 4 + len(inner), 0x8000 | 18) + inner + attribute(0x4000 | 3, b"lo\0")

    assert list(iter_attributes(data, 0, len(data))) == [(18, 4, 12), (3, 16, 19)]


def test_an_attribute_past_its_container_is_refused() -> None:
    """An attribute whose length runs past the end raises WireFormatError."""
    with pytest.raises(WireFormatError, match="overruns"):
        list(iter_attributes(struct.pack("=HH", 12, 1) + b"abcd", 0, 8))


def test_a_message_counts_its_header_and_carries_its_sequence_number() -> None:
    """``message`` writes nlmsg_len over header and body; ``sequence_of`` reads the number back."""
    data = message(RTM_GETLINK, flags=NLM_F_REQUEST, seq=SEQ, body=bytes(16))

    assert struct.unpack_from("=IHHI", data) == (32, RTM_GETLINK, NLM_F_REQUEST, SEQ)
    assert sequence_of(data) == SEQ


def test_a_header_that_cannot_be_packed_is_our_error() -> None:
    """A sequence number beyond 32 bits raises WireFormatError, not struct.error."""
    with pytest.raises(WireFormatError):
        message(RTM_GETLINK, flags=0, seq=2**32, body=b"")


# --- the controller -----------------------------------------------------------------------------------


def test_the_family_request_is_pyroute2s() -> None:
    """CTRL_CMD_GETFAMILY of "IPVS" is byte for byte what pyroute2's GenericNetlinkSocket sends."""
    reference = ctrlmsg()
    reference["cmd"], reference["version"] = CTRL_CMD_GETFAMILY, 1
    reference["attrs"] = [("CTRL_ATTR_FAMILY_NAME", "IPVS")]

    ours = encode_family_request("IPVS", seq=SEQ, flags=NLM_F_REQUEST | NLM_F_ACK)

    assert ours == pyroute2_bytes(reference, kind=GENL_ID_CTRL, flags=NLM_F_REQUEST | NLM_F_ACK)


def test_the_family_id_is_read_from_the_controllers_answer() -> None:
    """The answer's CTRL_ATTR_FAMILY_ID is the family's message type, whatever attributes come before it."""
    answer = ctrlmsg()
    answer["cmd"], answer["version"] = 1, 2
    answer["attrs"] = [("CTRL_ATTR_FAMILY_NAME", "IPVS"), ("CTRL_ATTR_FAMILY_ID", 0x25), ("CTRL_ATTR_VERSION", 1)]

    assert decode_family_id(payload(pyroute2_bytes(answer, kind=GENL_ID_CTRL, flags=0))) == 0x25


def test_an_answer_without_a_family_id_is_refused() -> None:
    """No CTRL_ATTR_FAMILY_ID in the answer: WireFormatError."""
    with pytest.raises(WireFormatError, match="CTRL_ATTR_FAMILY_ID"):
        decode_family_id(bytes(4) + attribute(2, b"IPVS\0"))


@pytest.fixture
def generic() -> Iterator[NetlinkChannel]:
    """A generic-netlink channel in the host's namespace."""
    channel = NetlinkChannel(
        netlink_descriptor(netns=None, protocol=NETLINK_GENERIC), protocol=NETLINK_GENERIC, target="test"
    )
    yield channel
    channel.close()


def test_the_controller_names_its_own_family(generic: NetlinkChannel) -> None:
    """The host kernel's controller answers "nlctrl" with GENL_ID_CTRL."""
    assert family_id(generic, "nlctrl") == GENL_ID_CTRL


def test_an_unknown_family_is_a_refusal(generic: NetlinkChannel) -> None:
    """A family the kernel does not have is a KernelRefusalError (ENOENT)."""
    with pytest.raises(KernelRefusalError) as refused:
        family_id(generic, "no-such-family")

    assert refused.value.errno == errno.ENOENT


# --- links --------------------------------------------------------------------------------------------

LINK_REQUESTS = {
    "get-by-name": (RTM_GETLINK, {"name": "ipvs0"}, {"index": 0, "flags": 0, "change": 0}, {"IFLA_IFNAME": "ipvs0"}),
    "create-dummy": (
        RTM_NEWLINK,
        {"name": "ipvs0", "kind": "dummy"},
        {"index": 0, "flags": 0, "change": 0},
        {"IFLA_IFNAME": "ipvs0", "IFLA_INFO_KIND": "dummy"},
    ),
    "set-up": (RTM_NEWLINK, {"index": 7, "up": True}, {"index": 7, "flags": IFF_UP, "change": IFF_UP}, {}),
    "delete": (RTM_DELLINK, {"index": 7}, {"index": 7, "flags": 0, "change": 0}, {}),
}


@pytest.mark.parametrize(("command", "arguments", "header", "attributes"), LINK_REQUESTS.values(), ids=LINK_REQUESTS)
def test_link_requests_read_back_through_pyroute2(
    command: int, arguments: dict[str, object], header: dict[str, int], attributes: dict[str, str]
) -> None:
    """Each link request, decoded by pyroute2's ifinfmsg, names the link, kind and flags it should."""
    flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL
    data = encode_link_request(command, seq=SEQ, flags=flags, **arguments)  # type: ignore[arg-type]
    decoded = ifinfmsg(data)
    decoded.decode()
    kind = decoded.get(("IFLA_LINKINFO", "IFLA_INFO_KIND"))

    assert (decoded["header"]["type"], decoded["header"]["flags"]) == (command, flags)
    assert {name: decoded[name] for name in header} == header
    assert {"IFLA_IFNAME": decoded.get("IFLA_IFNAME"), "IFLA_INFO_KIND": kind} == {
        "IFLA_IFNAME": attributes.get("IFLA_IFNAME"),
        "IFLA_INFO_KIND": attributes.get("IFLA_INFO_KIND"),
    }


def test_a_create_is_byte_for_byte_pyroute2s() -> None:
    """RTM_NEWLINK of a dummy carries IFLA_IFNAME then IFLA_LINKINFO/IFLA_INFO_KIND, as pyroute2 encodes them."""
    reference = ifinfmsg()
    reference["attrs"] = [("IFLA_IFNAME", "ipvs0"), ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "dummy")]})]
    flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL

    ours = encode_link_request(RTM_NEWLINK, seq=SEQ, flags=flags, name="ipvs0", kind="dummy")

    assert ours == pyroute2_bytes(reference, kind=RTM_NEWLINK, flags=flags)


@pytest.mark.parametrize("kind", ["dummy", "veth", ""], ids=["dummy", "veth", "no-kind"])
def test_a_link_reply_gives_its_index_flags_and_kind(kind: str) -> None:
    """A reply (built by pyroute2, with more attributes than are read) decodes to index, flags and kind."""
    reply = ifinfmsg()
    reply["index"], reply["flags"] = 9, IFF_UP | 0x40
    info = [("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", kind)]})] if kind else []
    reply["attrs"] = [("IFLA_IFNAME", "ipvs0"), ("IFLA_MTU", 1500), *info, ("IFLA_TXQLEN", 1000)]

    assert decode_link_reply(payload(pyroute2_bytes(reply, kind=RTM_NEWLINK, flags=0))) == LinkReply(
        9, IFF_UP | 0x40, kind
    )


def test_a_link_reply_cut_short_is_refused() -> None:
    """A reply shorter than struct ifinfomsg raises WireFormatError."""
    with pytest.raises(WireFormatError, match="ifinfomsg"):
        decode_link_reply(bytes(8))


def test_a_link_request_of_another_type_is_refused() -> None:
    """Only RTM_GETLINK, RTM_NEWLINK and RTM_DELLINK are link requests."""
    with pytest.raises(WireFormatError):
        encode_link_request(20, seq=SEQ, flags=NLM_F_REQUEST, index=1)


@pytest.fixture
def loopback() -> Iterator[Interface]:
    """The host's loopback link, looked at (never changed) over rtnetlink."""
    interface = Interface(netlink_descriptor(netns=None, protocol=NETLINK_ROUTE), name="lo")
    yield interface
    interface.close()


def test_the_host_loopback_reads_as_a_link_without_kind(loopback: Interface) -> None:
    """The kernel's own answer for ``lo``: index 1, up, and no link kind (what ``limits`` refuses to adopt)."""
    link = loopback.link()

    assert link is not None
    assert (link.index, bool(link.flags & IFF_UP), link.kind) == (1, True, "")


def test_a_name_no_link_has_reads_as_none() -> None:
    """RTM_GETLINK of an absent name (ENODEV) is None, not an error."""
    interface = Interface(netlink_descriptor(netns=None, protocol=NETLINK_ROUTE), name="ipvsctl-none0")
    try:
        assert interface.link() is None
    finally:
        interface.close()


def test_loopbacks_global_addresses_are_none(loopback: Interface) -> None:
    """The address dump keeps global-scope addresses only: loopback's are host-scope."""
    assert loopback.addresses(1) == {}


# --- what a failure means -----------------------------------------------------------------------------

ANSWERS = {
    "refusal": (KernelRefusalError(errno.EBUSY), errno.EBUSY),
    "wire-format": (WireFormatError("attribute overruns"), errno.EPROTO),
    "struct": (struct.error("unpack requires a buffer of 4 bytes"), errno.EPROTO),
    "socket": (OSError(errno.ENOBUFS, "No buffer space available"), errno.ENOBUFS),
}


@pytest.mark.parametrize(("answer", "code"), ANSWERS.values(), ids=ANSWERS)
async def test_a_kernel_answer_is_a_backend_error_that_keeps_its_cause(answer: Exception, code: int) -> None:
    """Refusals, unreadable answers and socket failures become BackendErrors with their errno and cause."""
    with pytest.raises(BackendError) as raised:
        async with kernel_answers("IPVS"):
            raise answer

    assert (raised.value.errno, raised.value.__cause__) == (code, answer)


@pytest.mark.parametrize("bug", [TypeError("a bug"), KeyError("a bug"), ValueError("a bug")], ids=repr)
async def test_a_bug_is_no_kernel_answer(bug: Exception) -> None:
    """Any other exception goes up as itself, not as a kernel error: the supervisor logs its traceback."""
    with pytest.raises(type(bug)) as raised:
        async with kernel_answers("IPVS"):
            raise bug

    assert raised.value is bug
