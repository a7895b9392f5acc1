"""The lean rtnetlink address codec against pyroute2, on the host: the same bytes out, the same addresses in.

The reference request is what ``AsyncIPRoute.addr()`` sends, made by the lines of ``addr()`` themselves
(pyroute2's request filters and ``NetlinkRequest``) short of the socket; messages captured from a live
``AsyncIPRoute`` (pyroute2 0.9.7) anchor that reference. Replies are built with pyroute2's ``ifaddrmsg`` in
the attribute order of the kernel's ``inet_fill_ifaddr``/``inet6_fill_ifaddr``, then read both by
``rtnl.addresses`` and by pyroute2 as pyroute2's ``addr()`` dump reads them.
"""

from __future__ import annotations

import socket
import struct
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyroute2.iproute.linux import get_arguments_processor, get_dump_filter
from pyroute2.netlink import nlmsg
from pyroute2.netlink.nlsocket import NetlinkRequest
from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD, IFA_F_PERMANENT, ifaddrmsg

from ipvsctl.backend.netlink.message import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    NLMSG_DONE,
    WireFormatError,
    iter_replies,
)
from ipvsctl.backend.rtnl.addresses import (
    ADDRESS_ATTRIBUTES,
    RTM_DELADDR,
    RTM_GETADDR,
    RTM_NEWADDR,
    AddressReply,
    decode_address_reply,
    encode_address_dump,
    encode_address_request,
)
from ipvsctl.model import canonical_ip
from tests.strategies import addresses

SEQ, PORT_ID, INDEX = 4242, 77, 7
U32 = 2**32 - 1
NLM_F_MULTI = 0x2
AF_MCTP = 45
NLMSGHDR = struct.Struct("=IHHII")
IFADDRMSG = struct.Struct("=BBBBI")
NLA = struct.Struct("=HH")
RT_SCOPE_LINK = 253
IPV4 = socket.inet_pton(socket.AF_INET, "192.0.2.1")
IPV6 = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
COMMANDS = {"add": RTM_NEWADDR, "del": RTM_DELADDR}
REQUEST_FLAGS = {"add": NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, "del": NLM_F_REQUEST | NLM_F_ACK}


# --- pyroute2 as the reference ------------------------------------------------------------------------

# addr()'s command_map, and the little of a socket NetlinkRequest reads when given a sequence number.
_PYROUTE2_COMMANDS = {"add": (RTM_NEWADDR, "create"), "del": (RTM_DELADDR, "req"), "dump": (RTM_GETADDR, "dump")}
_NO_SOCKET = SimpleNamespace(addr_pool=None, status={"nlm_echo": False}, epid=PORT_ID, marshal=None)


def pyroute2_request(command: str, *, seq: int = SEQ, **kwarg: Any) -> bytes:
    """The message ``AsyncIPRoute.addr(command, **kwarg)`` sends (addr()'s own steps, then encode())."""
    dump_filter, kwarg = get_dump_filter("addr", command, kwarg)
    arguments = get_arguments_processor("addr", command, kwarg)
    request = NetlinkRequest(
        _NO_SOCKET, ifaddrmsg(), command, _PYROUTE2_COMMANDS, dump_filter, arguments, msg_seq=seq, msg_pid=PORT_ID
    )
    request.msg.encode()
    return bytes(request.msg.data)


def ours(command: str, address: str, *, prefix: int | None = None, nodad: bool = False, seq: int = SEQ) -> bytes:
    """An add or del request as rtnl.addresses encodes it (full-length prefix unless given)."""
    return encode_address_request(
        COMMANDS[command],
        index=INDEX,
        address=address,
        prefix=(128 if ":" in address else 32) if prefix is None else prefix,
        flags=REQUEST_FLAGS[command],
        seq=seq,
        ifa_flags=IFA_F_NODAD if nodad else 0,
        port_id=PORT_ID,
    )


def theirs(command: str, address: str, *, prefix: int | None = None, nodad: bool = False, seq: int = SEQ) -> bytes:
    """The same request as pyroute2's AsyncIPRoute.addr() sends it."""
    extra = {"flags": IFA_F_NODAD} if nodad else {}
    prefixlen = (128 if ":" in address else 32) if prefix is None else prefix
    return pyroute2_request(command, seq=seq, index=INDEX, address=address, prefixlen=prefixlen, **extra)


class KernelAddress(nlmsg):  # type: ignore[misc]
    """ifaddrmsg with one attribute type past pyroute2's map, as a newer kernel may send (a fresh class:
    a subclass would inherit pyroute2's compiled tables)."""

    fields = ifaddrmsg.fields
    nla_map = (*ifaddrmsg.nla_map, ("IFA_NEWER", "uint32"))
    cacheinfo = ifaddrmsg.cacheinfo


CACHEINFO = {"ifa_preferred": U32, "ifa_valid": U32, "cstamp": 1234, "tstamp": 5678}


def kernel_reply(
    family: int, attributes: list[tuple[str, Any]], *, prefix: int = 32, scope: int = 0, index: int = INDEX
) -> bytes:
    """One RTM_NEWADDR dump message with ``attributes`` in the given order."""
    message = KernelAddress()
    message["family"], message["prefixlen"], message["flags"] = family, prefix, IFA_F_PERMANENT
    message["scope"], message["index"] = scope, index
    message["attrs"] = attributes
    header = message["header"]
    header["type"], header["flags"], header["sequence_number"], header["pid"] = RTM_NEWADDR, NLM_F_MULTI, SEQ, PORT_ID
    message.encode()
    return bytes(message.data)


def ipv4_attributes(address: str, *, label: str = "ipvs0", proto: int = 0) -> list[tuple[str, Any]]:
    """inet_fill_ifaddr's attributes of a local address (IFA_PROTO only when set)."""
    protocol = [("IFA_PROTO", proto)] if proto else []
    return [
        ("IFA_ADDRESS", address),
        ("IFA_LOCAL", address),
        ("IFA_LABEL", label),
        *protocol,
        ("IFA_FLAGS", IFA_F_PERMANENT | IFA_F_NODAD),
        ("IFA_CACHEINFO", CACHEINFO),
    ]


def ipv6_attributes(address: str, *, peer: str | None = None, proto: int = 0) -> list[tuple[str, Any]]:
    """inet6_fill_ifaddr's attributes: IFA_ADDRESS, or IFA_LOCAL then the peer as IFA_ADDRESS."""
    addressed = [("IFA_ADDRESS", address)] if peer is None else [("IFA_LOCAL", address), ("IFA_ADDRESS", peer)]
    protocol = [("IFA_PROTO", proto)] if proto else []
    return [*addressed, ("IFA_CACHEINFO", CACHEINFO), ("IFA_FLAGS", IFA_F_PERMANENT | IFA_F_NODAD), *protocol]


def pyroute2_reads(data: bytes) -> AddressReply:
    """What pyroute2's decoding of the message gives (IFA_LOCAL when IFA_ADDRESS is absent)."""
    message = ifaddrmsg(data)
    message.decode()
    address = message.get_attr("IFA_ADDRESS") or message.get_attr("IFA_LOCAL")
    index, family, prefix, scope = (int(message[name]) for name in ("index", "family", "prefixlen", "scope"))
    return AddressReply(index, family, prefix, scope, canonical_ip(str(address)))


def decoded(data: bytes) -> AddressReply:
    """The single message of ``data``, split by iter_replies and decoded by rtnl.addresses."""
    (reply,) = iter_replies(data)
    assert reply.type == RTM_NEWADDR
    return decode_address_reply(reply.payload)


def attribute(number: int, value: bytes) -> bytes:
    """One raw attribute, padded."""
    return NLA.pack(NLA.size + len(value), number) + value + b"\0" * (-len(value) % 4)


def raw_payload(family: int, *attributes: bytes) -> bytes:
    """An RTM_NEWADDR payload: ifaddrmsg (prefix 32, scope 0) and raw attributes."""
    return IFADDRMSG.pack(family, 32, 0, 0, INDEX) + b"".join(attributes)


# --- encoding -----------------------------------------------------------------------------------------


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, int, bool, int]:
    """A command, an address, a prefix length of its family, NODAD or not, a sequence number."""
    address = draw(addresses())
    prefix = draw(st.integers(min_value=0, max_value=128 if ":" in address else 32))
    command = draw(st.sampled_from(sorted(COMMANDS)))
    return command, address, prefix, draw(st.booleans()), draw(st.integers(min_value=0, max_value=U32))


@given(request=requests())
def test_every_request_encodes_as_pyroute2_does(request: tuple[str, str, int, bool, int]) -> None:
    """Adds and deletes of any address and prefix, with or without IFA_F_NODAD, give pyroute2's bytes."""
    command, address, prefix, nodad, seq = request

    assert ours(command, address, prefix=prefix, nodad=nodad, seq=seq) == theirs(
        command, address, prefix=prefix, nodad=nodad, seq=seq
    )


CASES = {
    "ipv4-add": ("add", "203.0.113.10", False),
    "ipv4-add-nodad": ("add", "203.0.113.10", True),
    "ipv4-del": ("del", "192.0.2.1", False),
    "ipv6-add-nodad": ("add", "2001:db8:f::10", True),
    "ipv6-add": ("add", "2001:db8:f::10", False),
    "ipv6-del": ("del", "2001:db8:f::10", False),
    "ipv6-long-spelling": ("add", "2001:0db8:000f:0000:0000:0000:0000:0010", True),
}


@pytest.mark.parametrize(("command", "address", "nodad"), CASES.values(), ids=CASES.keys())
def test_each_kind_of_request_encodes_as_pyroute2_does(command: str, address: str, nodad: bool) -> None:
    """The requests bind_addresses makes (/32, /128 with NODAD, deletes) give pyroute2's bytes."""
    assert ours(command, address, nodad=nodad) == theirs(command, address, nodad=nodad)


# Sent by a live AsyncIPRoute (pyroute2 0.9.7) for addr(command, index=7, address=, prefixlen=[, flags=2]).
CAPTURED = {
    "ipv4-add": (
        ("add", "192.0.2.1", False, 0xFF),
        "2800000014000506ff000000ce010000022000000700000008000100c000020108000200c0000201",
    ),
    "ipv4-add-nodad": (
        ("add", "192.0.2.1", True, 0x103),
        "300000001400050603010000ce010000022000000700000008000100c0000201080008000200000008000200c0000201",
    ),
    "ipv6-add-nodad": (
        ("add", "2001:db8::1", True, 0x100),
        "340000001400050600010000ce0100000a800000070000001400010020010db80000000000000000000000010800080002000000",
    ),
    "ipv4-del": (
        ("del", "192.0.2.1", False, 0x101),
        "280000001500050001010000ce010000022000000700000008000100c000020108000200c0000201",
    ),
    "ipv6-del": (
        ("del", "2001:db8::1", False, 0x102),
        "2c0000001500050002010000ce0100000a800000070000001400010020010db8000000000000000000000001",
    ),
}
CAPTURED_PORT_ID = 462


def with_port_id(data: bytes, port_id: int) -> bytes:
    """The message with another nlmsg_pid (the capture's was the capturing process's pid)."""
    return data[:12] + struct.pack("=I", port_id) + data[16:]


@pytest.mark.parametrize(("request_", "captured"), CAPTURED.values(), ids=CAPTURED.keys())
def test_requests_match_a_live_pyroute2_capture(request_: tuple[str, str, bool, int], captured: str) -> None:
    """Our encoding equals the bytes a live AsyncIPRoute.addr() handed to its socket."""
    command, address, nodad, seq = request_

    assert ours(command, address, nodad=nodad, seq=seq) == with_port_id(bytes.fromhex(captured), PORT_ID)


@pytest.mark.parametrize(("request_", "captured"), CAPTURED.values(), ids=CAPTURED.keys())
def test_the_reference_matches_a_live_pyroute2_capture(request_: tuple[str, str, bool, int], captured: str) -> None:
    """The socket-less reference pipeline gives the bytes a live AsyncIPRoute.addr() handed to its socket."""
    command, address, nodad, seq = request_

    assert theirs(command, address, nodad=nodad, seq=seq) == with_port_id(bytes.fromhex(captured), PORT_ID)


def test_nodad_travels_in_ifa_flags_not_in_ifaddrmsg() -> None:
    """IFA_F_NODAD is the u32 IFA_FLAGS attribute; the u8 ifaddrmsg.flags stays 0 (the kernel prefers IFA_FLAGS)."""
    data = ours("add", "2001:db8::1", nodad=True)

    assert data[16 + 2] == 0
    assert data[-8:] == struct.pack("=HHI", 8, ADDRESS_ATTRIBUTES["IFA_FLAGS"], IFA_F_NODAD)


@pytest.mark.parametrize(
    ("address", "locals_"), [("192.0.2.1", 1), ("2001:db8::1", 0)], ids=["ipv4-has-local", "ipv6-has-none"]
)
def test_only_ipv4_requests_carry_ifa_local(address: str, locals_: int) -> None:
    """IPv4 requests repeat the address as IFA_LOCAL (pyroute2 injects it); IPv6 ones send IFA_ADDRESS alone."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    packed = socket.inet_pton(family, address)
    local = NLA.pack(NLA.size + len(packed), ADDRESS_ATTRIBUTES["IFA_LOCAL"]) + packed

    assert ours("add", address).count(local) == locals_


def test_the_header_counts_the_whole_message() -> None:
    """nlmsg_len is the message's length, and the header carries type, flags, sequence number and port id."""
    data = ours("add", "2001:db8::1", nodad=True)

    assert NLMSGHDR.unpack_from(data) == (len(data), RTM_NEWADDR, REQUEST_FLAGS["add"], SEQ, PORT_ID)


@pytest.mark.parametrize("family", [0, socket.AF_INET, socket.AF_INET6], ids=["all", "ipv4", "ipv6"])
def test_a_dump_of_index_zero_encodes_as_pyroute2_does(family: int) -> None:
    """A dump request without an interface index is pyroute2's addr("dump", family=) message."""
    extra = {"family": family} if family else {}

    assert encode_address_dump(index=0, family=family, seq=SEQ, port_id=PORT_ID) == pyroute2_request("dump", **extra)


def test_a_dump_names_its_interface_where_pyroute2_leaves_zero() -> None:
    """The one difference from pyroute2's addr("dump", index=): ifa_index holds the index (strict kernels filter)."""
    ours_ = encode_address_dump(index=INDEX, seq=SEQ, port_id=PORT_ID)
    theirs_ = pyroute2_request("dump", index=INDEX)

    assert ours_[:20] + ours_[24:] == theirs_[:20] + theirs_[24:]
    assert struct.unpack_from("=I", ours_, 20) == (INDEX,)
    assert struct.unpack_from("=I", theirs_, 20) == (0,)


REFUSED = {
    "bad-address": {"address": "198.51.100.300"},
    "ipv4-prefix-33": {"prefix": 33},
    "ipv6-prefix-129": {"address": "2001:db8::1", "prefix": 129},
    "negative-prefix": {"prefix": -1},
    "index-out-of-range": {"index": 2**32},
    "seq-out-of-range": {"seq": -1},
    "flags-out-of-range": {"ifa_flags": 2**32},
    "dump-command": {"command": RTM_GETADDR},
}


@pytest.mark.parametrize("change", REFUSED.values(), ids=REFUSED.keys())
def test_what_cannot_be_encoded_is_refused_with_our_error(change: dict[str, Any]) -> None:
    """Bad addresses, prefixes past the family's length, numbers out of range and other commands: WireFormatError."""
    arguments: dict[str, Any] = {
        "command": RTM_NEWADDR,
        "index": INDEX,
        "address": "192.0.2.1",
        "prefix": 32,
        "flags": NLM_F_REQUEST,
        "seq": SEQ,
        **change,
    }
    command = arguments.pop("command")

    with pytest.raises(WireFormatError):
        encode_address_request(command, **arguments)


def test_a_dump_of_an_impossible_index_is_refused_with_our_error() -> None:
    """An index past u32 raises WireFormatError, not struct.error."""
    with pytest.raises(WireFormatError):
        encode_address_dump(index=2**32, seq=SEQ)


# --- decoding -----------------------------------------------------------------------------------------


@st.composite
def kernel_replies(draw: st.DrawFn) -> bytes:
    """An address dump message of either family, with any prefix, scope, index, label and protocol."""
    address = draw(addresses())
    proto = draw(st.integers(min_value=0, max_value=255))
    if ":" in address:
        family, attributes = socket.AF_INET6, ipv6_attributes(address, proto=proto)
    else:
        label = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789:.", min_size=1, max_size=15))
        family, attributes = socket.AF_INET, ipv4_attributes(address, label=label, proto=proto)
    if draw(st.booleans()):
        attributes.append(("IFA_NEWER", draw(st.integers(min_value=0, max_value=U32))))
    return kernel_reply(
        family,
        attributes,
        prefix=draw(st.integers(min_value=0, max_value=128 if ":" in address else 32)),
        scope=draw(st.integers(min_value=0, max_value=255)),
        index=draw(st.integers(min_value=1, max_value=U32)),
    )


@given(data=kernel_replies())
def test_a_reply_reads_as_pyroute2_reads_it(data: bytes) -> None:
    """Index, family, prefix, scope and address of any dumped address equal pyroute2's reading."""
    assert decoded(data) == pyroute2_reads(data)


KERNEL_REPLIES = {
    "ipv4": kernel_reply(socket.AF_INET, ipv4_attributes("203.0.113.10")),
    "ipv4-proto": kernel_reply(socket.AF_INET, ipv4_attributes("203.0.113.10", proto=3)),
    "ipv6": kernel_reply(socket.AF_INET6, ipv6_attributes("2001:db8:f::10"), prefix=128),
    "ipv6-link-local": kernel_reply(socket.AF_INET6, ipv6_attributes("fe80::1"), prefix=64, scope=RT_SCOPE_LINK),
    "ipv6-proto": kernel_reply(socket.AF_INET6, ipv6_attributes("2001:db8:f::10", proto=3), prefix=128),
}
EXPECTED = {
    "ipv4": AddressReply(INDEX, socket.AF_INET, 32, 0, "203.0.113.10"),
    "ipv4-proto": AddressReply(INDEX, socket.AF_INET, 32, 0, "203.0.113.10"),
    "ipv6": AddressReply(INDEX, socket.AF_INET6, 128, 0, "2001:db8:f::10"),
    "ipv6-link-local": AddressReply(INDEX, socket.AF_INET6, 64, RT_SCOPE_LINK, "fe80::1"),
    "ipv6-proto": AddressReply(INDEX, socket.AF_INET6, 128, 0, "2001:db8:f::10"),
}


@pytest.mark.parametrize("name", KERNEL_REPLIES)
def test_each_kind_of_reply_decodes_to_its_address(name: str) -> None:
    """IPv4 and IPv6 replies, with IFA_PROTO or a link scope, decode to the expected values."""
    assert decoded(KERNEL_REPLIES[name]) == EXPECTED[name]


def test_a_dump_stream_splits_into_replies_then_done() -> None:
    """iter_replies splits a dump buffer; each RTM_NEWADDR decodes; NLMSG_DONE ends it without error."""
    done = NLMSGHDR.pack(20, NLMSG_DONE, NLM_F_MULTI, SEQ, PORT_ID) + struct.pack("=i", 0)
    data = KERNEL_REPLIES["ipv4"] + KERNEL_REPLIES["ipv6"] + KERNEL_REPLIES["ipv6-link-local"] + done

    replies = list(iter_replies(data))

    assert [decode_address_reply(reply.payload) for reply in replies[:-1]] == [
        EXPECTED["ipv4"],
        EXPECTED["ipv6"],
        EXPECTED["ipv6-link-local"],
    ]
    assert (replies[-1].type, replies[-1].error) == (NLMSG_DONE, 0)


def test_ifa_address_wins_over_ifa_local() -> None:
    """A point-to-point IPv6 address reads as its peer (IFA_ADDRESS), as pyroute2 and netlink read it."""
    data = kernel_reply(socket.AF_INET6, ipv6_attributes("2001:db8::1", peer="2001:db8::2"), prefix=128)

    assert decoded(data).address == "2001:db8::2" == pyroute2_reads(data).address


def test_ifa_local_stands_in_for_a_missing_ifa_address() -> None:
    """A reply with IFA_LOCAL alone reads as that address."""
    data = kernel_reply(socket.AF_INET, [("IFA_LOCAL", "192.0.2.1"), ("IFA_FLAGS", 0)])

    assert decoded(data) == pyroute2_reads(data) == AddressReply(INDEX, socket.AF_INET, 32, 0, "192.0.2.1")


def test_a_zero_ipv4_address_reads_as_0_0_0_0() -> None:
    """inet_fill_ifaddr leaves out a zero IFA_ADDRESS and IFA_LOCAL: the address is 0.0.0.0."""
    data = kernel_reply(socket.AF_INET, [("IFA_LABEL", "ipvs0"), ("IFA_FLAGS", 0), ("IFA_CACHEINFO", CACHEINFO)])

    assert decoded(data).address == "0.0.0.0"


@pytest.mark.parametrize("address", ["::ffff:192.0.2.1", "::192.0.2.1"], ids=["mapped", "compatible"])
def test_embedded_ipv4_forms_take_the_models_spelling(address: str) -> None:
    """Where inet_ntop writes a dotted quad in an IPv6 address, the text is canonical_ip's, as netlink reads it."""
    data = kernel_reply(socket.AF_INET6, ipv6_attributes(address), prefix=128)

    assert decoded(data).address == canonical_ip(address) == pyroute2_reads(data).address


def test_unknown_attribute_types_before_the_address_are_skipped() -> None:
    """Attribute types this module does not know, even first and flagged NLA_F_NESTED, are stepped over."""
    unknown = attribute(0x8000 | 30, b"\1\2\3") + attribute(12, b"\0" * 8)
    payload = raw_payload(socket.AF_INET, unknown, attribute(ADDRESS_ATTRIBUTES["IFA_ADDRESS"], IPV4))

    assert decode_address_reply(payload) == AddressReply(INDEX, socket.AF_INET, 32, 0, "192.0.2.1")


def test_other_families_keep_an_empty_address() -> None:
    """An AF_MCTP reply (an AF_UNSPEC dump returns them) decodes with its header fields and an empty address."""
    payload = raw_payload(AF_MCTP, attribute(2, b"\x08"))

    assert decode_address_reply(payload) == AddressReply(INDEX, AF_MCTP, 32, 0, "")


def test_attribute_numbers_agree_with_pyroute2() -> None:
    """Each attribute's number is its position in pyroute2's ifaddrmsg nla map (the enum order of if_addr.h)."""
    positions = {name: number for number, (name, _) in enumerate(ifaddrmsg.nla_map)}

    assert {name: positions[name] for name in ADDRESS_ATTRIBUTES} == ADDRESS_ATTRIBUTES


IPV4_PAYLOAD = KERNEL_REPLIES["ipv4"][NLMSGHDR.size :]
IPV6_PAYLOAD = KERNEL_REPLIES["ipv6"][NLMSGHDR.size :]
CORRUPT = {
    "shorter-than-ifaddrmsg": IFADDRMSG.pack(socket.AF_INET, 32, 0, 0, INDEX)[:7],
    "attribute-shorter-than-its-header": raw_payload(socket.AF_INET, NLA.pack(3, 1) + IPV4),
    "attribute-overruns-the-payload": raw_payload(socket.AF_INET, NLA.pack(12, 1) + IPV4),
    "ipv4-truncated-in-its-address": IPV4_PAYLOAD[:14],
    "ipv6-truncated-in-its-address": IPV6_PAYLOAD[:20],
    "ipv4-address-of-16-bytes": raw_payload(socket.AF_INET, attribute(1, IPV6)),
    "ipv6-address-of-4-bytes": raw_payload(socket.AF_INET6, attribute(1, IPV4)),
    "ipv6-local-of-4-bytes": raw_payload(socket.AF_INET6, attribute(2, IPV4), attribute(1, IPV6)),
    "ipv6-without-address": raw_payload(socket.AF_INET6, attribute(8, b"\0" * 4)),
}


@pytest.mark.parametrize("payload", CORRUPT.values(), ids=CORRUPT.keys())
def test_truncated_or_corrupt_replies_are_refused_with_our_error(payload: bytes) -> None:
    """A short header, a bad attribute length, an address of the wrong size or none (IPv6): WireFormatError."""
    with pytest.raises(WireFormatError):
        decode_address_reply(payload)
