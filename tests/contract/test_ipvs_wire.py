"""The lean IPVS wire codec against pyroute2, on the host: the same bytes out, the same attributes in.

pyroute2's ``ipvsmsg`` is the reference, used as the pyroute2 transport uses it (its ``_message`` and ``_attributes``,
copied here so the reference outlives the switch away from pyroute2). Replies are built as
the kernel writes them (``ip_vs_genl_fill_service``/``_dest``: addresses in 16 bytes, the destination
address before its family, 32- and 64-bit stats with PAD attributes) by a test-only variant of pyroute2's
nla map, then read both by ``ipvs.wire`` and by pyroute2 with the transport's ``_attributes``.
"""

from __future__ import annotations

import copy
import errno
import socket
import struct
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyroute2.netlink import genlmsg, nla
from pyroute2.netlink.generic.ipvs import ipvsmsg, ipvsstats

from ipvsctl.backend.base import RealServerStats
from ipvsctl.backend.ipvs.attributes import (
    CMD_GET_SERVICE,
    CMD_NEW_DEST,
    CMD_NEW_SERVICE,
    COMMAND_ATTRIBUTES,
    DEST_ATTRIBUTES,
    SERVICE_ATTRIBUTES,
    STATS64_ATTRIBUTES,
    STATS_ATTRIBUTES,
    Table,
)
from ipvsctl.backend.ipvs.codec import (
    Request,
    decode_dest,
    decode_service,
    dest_dump_request,
    request_for,
    service_dump_request,
)
from ipvsctl.backend.ipvs.pyroute2 import _attributes, _message
from ipvsctl.backend.ipvs.wire import decode_dest_reply, decode_service_reply, encode_request
from ipvsctl.backend.netlink.message import NLMSG_DONE, NLMSG_ERROR, WireFormatError, iter_replies
from ipvsctl.errors import IpvsctlError
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
)
from tests.contract.values import TCP80, TCP80_V6, real, service
from tests.strategies import real_servers, service_keys, virtual_services

FAMILY_ID = 0x25  # whatever the kernel assigned "IPVS"
SEQ, PORT_ID = 4242, 77
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x2, 0x4, 0x300
HASHED = 0x2
U32 = 2**32 - 1
FWMARK = ServiceKey.fwmark(7)
UDP53 = ServiceKey(Protocol.UDP, "203.0.113.10", 53)
NLMSGHDR = struct.Struct("=IHHII")


# --- pyroute2 as the reference ------------------------------------------------------------------------


def encoded(message: Any, *, flags: int) -> bytes:
    """A pyroute2 message's bytes, with the header nlm_request would set."""
    header = message["header"]
    header["type"], header["flags"], header["sequence_number"], header["pid"] = FAMILY_ID, flags, SEQ, PORT_ID
    message.encode()
    return bytes(message.data)


def pyroute2_request(request: Request, *, flags: int) -> bytes:
    """The request as the pyroute2 transport has pyroute2 encode it."""
    copied = Request(request.command, copy.deepcopy(request.attributes))  # pyroute2 rewrites the list it is given
    return encoded(_message(copied), flags=flags)


def ours(request: Request, *, flags: int) -> bytes:
    """The request as ipvs.wire encodes it."""
    return encode_request(request, family_id=FAMILY_ID, flags=flags, seq=SEQ, port_id=PORT_ID)


_KERNEL_KINDS = {"IPVS_SVC_ATTR_ADDR": "cdata", "IPVS_DEST_ATTR_ADDR": "cdata", "IPVS_DEST_ATTR_TUN_PORT": "be16"}
_CLASS_KINDS = {"service": "Service", "dest": "Dest", "stats": "Stats", "stats64": "Stats64", "flags": "Flags"}


def _kernel_map(nla_map: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """pyroute2's nla map with the kernel's encodings (raw 16-byte addresses, big-endian tunnel port)."""
    return tuple((name, _KERNEL_KINDS.get(name) or _CLASS_KINDS.get(kind, kind)) for name, kind in nla_map)


# Fresh classes (not subclasses of pyroute2's, whose compiled nla tables would be inherited).
class _KernelStats(nla):  # type: ignore[misc]
    nla_map = (*ipvsstats.stats.nla_map, ("IPVS_STATS_ATTR_PAD", "cdata"))


class _KernelStats64(nla):  # type: ignore[misc]
    nla_map = (*ipvsstats.stats64.nla_map, ("IPVS_STATS_ATTR_PAD", "cdata"))


class _KernelService(nla):  # type: ignore[misc]
    nla_map = _kernel_map(ipvsmsg.service.nla_map)
    Stats, Stats64, Flags = _KernelStats, _KernelStats64, ipvsmsg.service.flags


class _KernelDest(nla):  # type: ignore[misc]
    nla_map = _kernel_map(ipvsmsg.dest.nla_map)
    Stats, Stats64 = _KernelStats, _KernelStats64


class KernelReply(genlmsg):  # type: ignore[misc]
    """An IPVS dump reply laid out as the kernel writes it."""

    nla_map = _kernel_map(ipvsmsg.nla_map)
    Service, Dest = _KernelService, _KernelDest


def kernel_reply(nest: str, attributes: list[tuple[str, Any]], *, command: int) -> bytes:
    """One dump message carrying ``nest`` with ``attributes`` (kernel layout)."""
    message = KernelReply()
    message["cmd"], message["version"] = command, 1
    message["attrs"] = [(nest, {"attrs": attributes})]
    return encoded(message, flags=NLM_F_MULTI)


def pyroute2_reads(data: bytes, nest: str) -> dict[str, object]:
    """What the pyroute2 transport makes of a reply pyroute2 decoded: flags as an int, dest counters."""
    message = ipvsmsg(data)
    message.decode()
    return _attributes(message.get_attr(nest))


def our_payload(data: bytes) -> bytes | memoryview:
    """The payload of the single message in ``data``."""
    (reply,) = iter_replies(data)
    return reply.payload


def raw_address(address: str) -> bytes:
    """An address as the kernel's union nf_inet_addr: always 16 bytes."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return socket.inet_pton(family, address).ljust(16, b"\0")


def stats_nest(values: tuple[int, ...], *, wide: bool) -> dict[str, Any]:
    """A stats nest of the 10 counters, with a PAD attribute as nla_put_u64_64bit may add."""
    names = [name for name, _ in ipvsstats.stats.nla_map[1:]]
    widths = [64] * 10 if wide else [32, 32, 32, 64, 64, 32, 32, 32, 32, 32]
    counters = [(name, value % 2**width) for name, value, width in zip(names, values, widths, strict=True)]
    return {"attrs": [*counters[:3], ("IPVS_STATS_ATTR_PAD", b""), *counters[3:]]}


def sent_attributes(request: Request, nest: str) -> dict[str, Any]:
    """The attributes of one nest of a request, by name."""
    value = dict(request.attributes)[nest]
    assert isinstance(value, dict)
    return dict(value["attrs"])


def kernel_service(vs: VirtualService, counters: tuple[int, ...] = (0,) * 10) -> list[tuple[str, Any]]:
    """The service attributes the kernel dumps for ``vs`` (HASHED added, PE_NAME only when set)."""
    sent = sent_attributes(request_for(AddVirtualService(vs)), "IPVS_CMD_ATTR_SERVICE")
    flags = sent["IPVS_SVC_ATTR_FLAGS"]["flags"] | HASHED
    kept = [(name, value) for name, value in sent.items() if name != "IPVS_SVC_ATTR_PE_NAME" or value]
    return [
        (
            name,
            {"flags": flags, "mask": U32}
            if name.endswith("FLAGS")
            else raw_address(value)
            if name.endswith("ADDR")
            else value,
        )
        for name, value in kept
    ] + [
        ("IPVS_SVC_ATTR_STATS", stats_nest(counters, wide=False)),
        ("IPVS_SVC_ATTR_STATS64", stats_nest(counters, wide=True)),
    ]


def kernel_dest(
    real_server: RealServer,
    *,
    key: ServiceKey,
    conns: tuple[int, int, int] = (0, 0, 0),
    counters: tuple[int, ...] | None = (0,) * 10,
    tun_port: int = 0,
) -> list[tuple[str, Any]]:
    """The destination attributes in ip_vs_genl_fill_dest's order (address first, its family after)."""
    sent = sent_attributes(request_for(AddRealServer(key, real_server)), "IPVS_CMD_ATTR_DEST")
    attributes: list[tuple[str, Any]] = [
        ("IPVS_DEST_ATTR_ADDR", raw_address(real_server.address)),
        *[(f"IPVS_DEST_ATTR_{name}", sent[f"IPVS_DEST_ATTR_{name}"]) for name in ("PORT", "FWD_METHOD", "WEIGHT")],
        ("IPVS_DEST_ATTR_TUN_TYPE", 0),
        ("IPVS_DEST_ATTR_TUN_PORT", tun_port),
        ("IPVS_DEST_ATTR_TUN_FLAGS", 0),
        ("IPVS_DEST_ATTR_U_THRESH", real_server.upper_threshold),
        ("IPVS_DEST_ATTR_L_THRESH", real_server.lower_threshold),
        ("IPVS_DEST_ATTR_ACTIVE_CONNS", conns[0]),
        ("IPVS_DEST_ATTR_INACT_CONNS", conns[1]),
        ("IPVS_DEST_ATTR_PERSIST_CONNS", conns[2]),
        ("IPVS_DEST_ATTR_ADDR_FAMILY", sent["IPVS_DEST_ATTR_ADDR_FAMILY"]),
    ]
    if counters is not None:
        attributes.append(("IPVS_DEST_ATTR_STATS", stats_nest(counters, wide=False)))
        attributes.append(("IPVS_DEST_ATTR_STATS64", stats_nest(counters, wide=True)))
    return attributes


def dest_reply(attributes: list[tuple[str, Any]]) -> bytes:
    """A destination dump message."""
    return kernel_reply("IPVS_CMD_ATTR_DEST", attributes, command=CMD_NEW_DEST)


def service_reply(attributes: list[tuple[str, Any]]) -> bytes:
    """A service dump message."""
    return kernel_reply("IPVS_CMD_ATTR_SERVICE", attributes, command=CMD_NEW_SERVICE)


def netlink_message(kind: int, payload: bytes, *, flags: int = 0, seq: int = SEQ) -> bytes:
    """A bare netlink message (padded to 4 bytes, as the kernel aligns them)."""
    body = NLMSGHDR.pack(NLMSGHDR.size + len(payload), kind, flags, seq, PORT_ID) + payload
    return body + b"\0" * (-len(body) % 4)


def error_message(code: int) -> bytes:
    """An NLMSG_ERROR carrying ``-code`` and the echoed request header (0 is an ack)."""
    return netlink_message(NLMSG_ERROR, struct.pack("=i", -code) + NLMSGHDR.pack(36, FAMILY_ID, 5, SEQ, PORT_ID))


# --- encoding -----------------------------------------------------------------------------------------


@st.composite
def operations(draw: st.DrawFn) -> Operation:
    """Any operation on a generated service or real server."""
    vs = draw(virtual_services(max_reals=0))
    other = draw(virtual_services(key=vs.key, max_reals=0))
    one, two = draw(real_servers(key=vs.key)), draw(real_servers(key=vs.key))
    choices: list[Operation] = [
        AddVirtualService(vs),
        EditVirtualService(vs, previous=other),
        DeleteVirtualService(vs),
        AddRealServer(vs.key, one),
        EditRealServer(vs.key, one, previous=two),
        DeleteRealServer(vs.key, one),
    ]
    return draw(st.sampled_from(choices))


@given(operation=operations(), flags=st.sampled_from([NLM_F_REQUEST | NLM_F_ACK, NLM_F_REQUEST]))
def test_every_operation_encodes_as_pyroute2_does(operation: Operation, flags: int) -> None:
    """Any add/edit/delete of a service or real server gives pyroute2's bytes."""
    request = request_for(operation)

    assert ours(request, flags=flags) == pyroute2_request(request, flags=flags)


V4_PERSISTENT = service(TCP80, persistence=Persistence(timeout=300, netmask=24))
V6_PERSISTENT = service(TCP80_V6, persistence=Persistence(timeout=300, netmask=64))
REQUESTS = {
    "ipv4-service": request_for(AddVirtualService(service(TCP80))),
    "ipv6-service": request_for(AddVirtualService(service(TCP80_V6))),
    "fwmark-service": request_for(AddVirtualService(service(FWMARK))),
    "ipv6-fwmark": request_for(
        AddVirtualService(service(ServiceKey.fwmark(U32, family=6))),
    ),
    "persistence-netmask-v4": request_for(EditVirtualService(V4_PERSISTENT, previous=service(TCP80))),
    "persistence-prefix-v6": request_for(AddVirtualService(V6_PERSISTENT)),
    "sched-flags": request_for(
        AddVirtualService(VirtualService(TCP80, scheduler="sh", sched_flags=frozenset({"sh-fallback", "sh-port"})))
    ),
    "one-packet": request_for(AddVirtualService(VirtualService(UDP53, one_packet=True))),
    "pe-name": request_for(AddVirtualService(VirtualService(UDP53, pe_name="sip"))),
    "long-scheduler": request_for(AddVirtualService(VirtualService(TCP80, scheduler="weighted-1234"))),
    "delete-service": request_for(DeleteVirtualService(service(TCP80_V6))),
    **{f"real-{method}": request_for(AddRealServer(TCP80, real(11, forwarding=method))) for method in Forwarding},
    "real-ipv6": request_for(AddRealServer(TCP80_V6, real(11, family=6))),
    "real-ipv4-in-ipv6": request_for(AddRealServer(TCP80_V6, real(11, forwarding=Forwarding.TUNNEL))),
    "thresholds": request_for(EditRealServer(TCP80, real(11, weight=U32 >> 1, upper=U32, lower=7), previous=real(11))),
    "delete-real": request_for(DeleteRealServer(TCP80_V6, real(11, family=6))),
    "dest-dump": dest_dump_request(FWMARK),
    "service-dump": service_dump_request(),
    "service-get": Request(CMD_GET_SERVICE, dest_dump_request(TCP80).attributes),
}


@pytest.mark.parametrize("request_", REQUESTS.values(), ids=REQUESTS.keys())
def test_each_kind_of_request_encodes_as_pyroute2_does(request_: Request) -> None:
    """Families, fwmarks, netmasks, flags, engines, forwarding, thresholds and dumps: pyroute2's bytes."""
    flags = NLM_F_REQUEST | NLM_F_DUMP

    assert ours(request_, flags=flags) == pyroute2_request(request_, flags=flags)


def test_an_ipv4_address_travels_in_four_bytes() -> None:
    """IPv4 service and real server addresses are 4-byte attributes, as pyroute2 sends them."""
    data = ours(request_for(AddRealServer(TCP80, real(11))), flags=NLM_F_REQUEST)

    assert data.count(struct.pack("=HH", 8, 3) + socket.inet_aton(TCP80.address)) == 1
    assert data.count(struct.pack("=HH", 8, 1) + socket.inet_aton("198.51.100.11")) == 1


def test_the_header_counts_the_whole_aligned_message() -> None:
    """nlmsg_len is the message's length, a multiple of 4, and the genl header names command and version 1."""
    data = ours(REQUESTS["pe-name"], flags=NLM_F_REQUEST)

    assert NLMSGHDR.unpack_from(data) == (len(data), FAMILY_ID, NLM_F_REQUEST, SEQ, PORT_ID)
    assert len(data) % 4 == 0
    assert data[16:20] == bytes([CMD_NEW_SERVICE, 1, 0, 0])


def test_timeouts_travel_as_u32_attributes() -> None:
    """SET_CONFIG timeouts (pyroute2 types them as hex) are the u32 the kernel's policy expects."""
    request = Request(12, [("IPVS_CMD_ATTR_TIMEOUT_TCP", 900), ("IPVS_CMD_ATTR_TIMEOUT_UDP", 300)])

    assert ours(request, flags=NLM_F_REQUEST)[20:] == struct.pack("=HHIHHI", 8, 4, 900, 8, 6, 300)


@pytest.mark.parametrize(
    "attributes",
    [
        [("IPVS_SVC_ATTR_AF", 2)],
        [("IPVS_CMD_ATTR_SERVICE", {"attrs": [("IPVS_DEST_ATTR_PORT", 80)]})],
        [("IPVS_CMD_ATTR_DEST", {"attrs": [("IPVS_DEST_ATTR_WEIGHT", 2**32)]})],
        [("IPVS_CMD_ATTR_DEST", {"attrs": [("IPVS_DEST_ATTR_ADDR", "198.51.100.300")]})],
        [("IPVS_CMD_ATTR_DEST", {"attrs": [("IPVS_DEST_ATTR_PORT", "80")]})],
    ],
    ids=["attribute-of-another-level", "attribute-of-another-nest", "out-of-range", "bad-address", "wrong-type"],
)
def test_what_cannot_be_encoded_is_refused_with_our_error(attributes: list[tuple[str, object]]) -> None:
    """Unknown names, numbers out of range, bad addresses and wrong types raise WireFormatError."""
    with pytest.raises(WireFormatError):
        ours(Request(CMD_NEW_DEST, attributes), flags=NLM_F_REQUEST)


PYROUTE2_MAPS = {
    "command": (COMMAND_ATTRIBUTES, ipvsmsg.nla_map),
    "service": (SERVICE_ATTRIBUTES, ipvsmsg.service.nla_map),
    "dest": (DEST_ATTRIBUTES, ipvsmsg.dest.nla_map),
    "stats": (STATS_ATTRIBUTES, ipvsstats.stats.nla_map),
    "stats64": (STATS64_ATTRIBUTES, ipvsstats.stats64.nla_map),
}


@pytest.mark.parametrize(("table", "nla_map"), PYROUTE2_MAPS.values(), ids=PYROUTE2_MAPS.keys())
def test_attribute_numbers_agree_with_pyroute2(table: Table, nla_map: tuple[tuple[str, str], ...]) -> None:
    """Each attribute's number is its position in pyroute2's nla map (the enum order of ip_vs.h)."""
    positions = {name: number for number, (name, _) in enumerate(nla_map)}

    assert {name: number for name, (number, _) in table.items()} == {name: positions[name] for name in table}


# --- decoding -----------------------------------------------------------------------------------------

counter_values = st.tuples(*[st.integers(min_value=0, max_value=2**64 - 1)] * 10)


@given(vs=virtual_services(max_reals=0), counters=counter_values)
def test_a_service_reply_reads_as_pyroute2_reads_it(vs: VirtualService, counters: tuple[int, ...]) -> None:
    """Every attribute of a dumped service decodes to what pyroute2 with ``_attributes`` gives."""
    data = service_reply(kernel_service(vs, counters))

    assert decode_service_reply(our_payload(data)) == pyroute2_reads(data, "IPVS_CMD_ATTR_SERVICE")


@given(vs=virtual_services(max_reals=0))
def test_a_service_reply_decodes_to_the_service(vs: VirtualService) -> None:
    """A dumped service goes through decode_service back to the model value."""
    assert decode_service(decode_service_reply(our_payload(service_reply(kernel_service(vs))))) == vs


dest_cases = service_keys().flatmap(lambda key: real_servers(key=key).map(lambda one: (key, one)))
conns = st.tuples(*[st.integers(min_value=0, max_value=U32)] * 3)


@given(case=dest_cases, connections=conns, counters=counter_values)
def test_a_dest_reply_reads_as_pyroute2_reads_it(
    case: tuple[ServiceKey, RealServer], connections: tuple[int, int, int], counters: tuple[int, ...]
) -> None:
    """Every attribute of a dumped destination, stats64 counters included, decodes as through pyroute2."""
    key, real_server = case
    data = dest_reply(kernel_dest(real_server, key=key, conns=connections, counters=counters))

    assert decode_dest_reply(our_payload(data)) == pyroute2_reads(data, "IPVS_CMD_ATTR_DEST")


@given(case=dest_cases, connections=conns, counters=counter_values)
def test_a_dest_reply_decodes_to_the_real_server_and_its_counts(
    case: tuple[ServiceKey, RealServer], connections: tuple[int, int, int], counters: tuple[int, ...]
) -> None:
    """A dumped destination gives back the real server, its connections and its 64-bit counters."""
    key, real_server = case
    attributes = decode_dest_reply(
        our_payload(dest_reply(kernel_dest(real_server, key=key, conns=connections, counters=counters)))
    )
    dest = decode_dest(attributes, key=key)

    assert dest.real == real_server
    assert dest.key == real_server.key
    assert dest.connections == ConnectionCounts(connections[0], connections[1] + connections[2])
    assert RealServerStats(*dest.counters) == RealServerStats(*counters[:5])


def test_without_stats64_the_32_bit_counters_are_read() -> None:
    """An older kernel's reply (no STATS64) gives the 32-bit counters, as the pyroute2 transport reads them."""
    attributes = [a for a in kernel_dest(real(11), key=TCP80, counters=(2**32 + 5,) * 10) if not a[0].endswith("64")]
    data = dest_reply(attributes)

    decoded = decode_dest_reply(our_payload(data))

    assert decoded == pyroute2_reads(data, "IPVS_CMD_ATTR_DEST")
    assert decoded["IPVS_DEST_ATTR_STATS"] == {
        "IPVS_STATS_ATTR_CONNS": 5,
        "IPVS_STATS_ATTR_INPKTS": 5,
        "IPVS_STATS_ATTR_OUTPKTS": 5,
        "IPVS_STATS_ATTR_INBYTES": 2**32 + 5,
        "IPVS_STATS_ATTR_OUTBYTES": 2**32 + 5,
    }


def test_a_dest_without_stats_has_no_stats_key() -> None:
    """No stats attributes at all: no IPVS_DEST_ATTR_STATS key, as with ``_attributes``."""
    data = dest_reply(kernel_dest(real(11), key=TCP80, counters=None))

    assert "IPVS_DEST_ATTR_STATS" not in decode_dest_reply(our_payload(data))


def test_service_stats_are_left_out() -> None:
    """A service's stats attributes are not decoded (the model keeps none)."""
    decoded = decode_service_reply(our_payload(service_reply(kernel_service(service(TCP80), (9,) * 10))))

    assert not [name for name in decoded if "STATS" in name]


def test_the_tunnel_port_is_read_in_network_order() -> None:
    """IPVS_DEST_ATTR_TUN_PORT is the kernel's be16 (pyroute2 reads it byte-swapped)."""
    data = dest_reply(kernel_dest(real(11, forwarding=Forwarding.TUNNEL), key=TCP80, tun_port=6081))

    assert decode_dest_reply(our_payload(data))["IPVS_DEST_ATTR_TUN_PORT"] == 6081


def with_unknown_attributes(data: bytes) -> bytes:
    """The reply with an unknown attribute type (a newer kernel's) before and after the nest's contents."""
    unknown = struct.pack("=HH", 7, 0x3F) + b"new" + b"\0"
    top = 20  # nlmsghdr + genlmsghdr: the nest's own header starts here
    length = struct.unpack_from("=H", data, top)[0]
    nest = struct.pack("=HH", length + 2 * len(unknown), struct.unpack_from("=H", data, top + 2)[0])
    body = unknown + data[top + 4 : top + length] + unknown
    message = data[:top] + nest + body + unknown
    return struct.pack("=I", len(message)) + message[4:]


@pytest.mark.parametrize(
    ("reply", "decode"),
    [
        (service_reply(kernel_service(service(TCP80_V6))), decode_service_reply),
        (dest_reply(kernel_dest(real(11, family=6), key=TCP80_V6)), decode_dest_reply),
    ],
    ids=["service", "dest"],
)
def test_unknown_attribute_types_are_skipped(reply: bytes, decode: Any) -> None:
    """Attribute types this module does not know are skipped, at the top level and in the nest."""
    assert decode(our_payload(with_unknown_attributes(reply))) == decode(our_payload(reply))


def test_the_nested_flag_on_a_nest_is_ignored() -> None:
    """A nest marked NLA_F_NESTED (newer kernels' nla_nest_start) reads the same."""
    data = dest_reply(kernel_dest(real(11), key=TCP80))
    flagged = bytearray(data)
    struct.pack_into("=H", flagged, 22, 2 | 0x8000)

    assert decode_dest_reply(our_payload(bytes(flagged))) == decode_dest_reply(our_payload(data))


def test_a_reply_without_the_nest_is_refused() -> None:
    """A service decode of a destination reply raises WireFormatError."""
    with pytest.raises(WireFormatError, match="IPVS_CMD_ATTR_SERVICE"):
        decode_service_reply(our_payload(dest_reply(kernel_dest(real(11), key=TCP80))))


def test_an_address_without_its_family_is_refused() -> None:
    """A destination address with no address family attribute cannot be read (4 or 16 bytes?)."""
    attributes = [a for a in kernel_dest(real(11), key=TCP80) if a[0] != "IPVS_DEST_ATTR_ADDR_FAMILY"]

    with pytest.raises(WireFormatError, match="IPVS_DEST_ATTR_ADDR"):
        decode_dest_reply(our_payload(dest_reply(attributes)))


@pytest.mark.parametrize(
    ("offset", "value"),
    [(20, 0xFFF), (24, 0xFFF), (24, 2), (24, 5)],
    ids=["nest-overruns-message", "attribute-overruns-nest", "attribute-shorter-than-header", "address-too-short"],
)
def test_corrupt_attribute_lengths_are_refused(offset: int, value: int) -> None:
    """An attribute length past its container, under 4, or short of its kind raises WireFormatError."""
    data = bytearray(dest_reply(kernel_dest(real(11), key=TCP80)))
    struct.pack_into("=H", data, offset, value)

    with pytest.raises(WireFormatError):
        decode_dest_reply(our_payload(bytes(data)))


# --- iter_replies -------------------------------------------------------------------------------------


def test_several_messages_in_one_buffer_come_out_in_order() -> None:
    """A dump's messages and its NLMSG_DONE, in one buffer, each with its header and payload."""
    first = dest_reply(kernel_dest(real(11), key=TCP80))
    second = dest_reply(kernel_dest(real(12, weight=5), key=TCP80))
    done = netlink_message(NLMSG_DONE, struct.pack("=i", 0), flags=NLM_F_MULTI)

    replies = list(iter_replies(first + second + done))

    assert [(r.type, r.flags, r.seq, r.port_id, r.error) for r in replies] == [
        (FAMILY_ID, NLM_F_MULTI, SEQ, PORT_ID, None),
        (FAMILY_ID, NLM_F_MULTI, SEQ, PORT_ID, None),
        (NLMSG_DONE, NLM_F_MULTI, SEQ, PORT_ID, 0),
    ]
    assert bytes(replies[1].payload) == second[16:]
    assert decode_dest(decode_dest_reply(replies[1].payload), key=TCP80).real == real(12, weight=5)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (error_message(0), 0),
        (error_message(errno.ESRCH), errno.ESRCH),
        (netlink_message(NLMSG_DONE, struct.pack("=i", -errno.EBUSY)), errno.EBUSY),
        (netlink_message(NLMSG_DONE, b""), None),
    ],
    ids=["ack", "esrch", "done-with-dump-error", "done-without-code"],
)
def test_errors_come_back_as_positive_errnos(data: bytes, code: int | None) -> None:
    """NLMSG_ERROR (and NLMSG_DONE) carry -errno; the reply holds the positive errno, 0 for success."""
    (reply,) = iter_replies(data)

    assert reply.error == code


def test_an_ack_keeps_the_echoed_request_in_its_payload() -> None:
    """The payload of an NLMSG_ERROR is the error code then the request's header."""
    (reply,) = iter_replies(error_message(errno.ESRCH))

    assert reply.type == NLMSG_ERROR
    assert NLMSGHDR.unpack_from(reply.payload, 4)[1:] == (FAMILY_ID, 5, SEQ, PORT_ID)


def test_an_empty_buffer_holds_no_replies() -> None:
    """recv() of nothing gives no replies."""
    assert list(iter_replies(b"")) == []


def test_a_message_without_padding_at_the_end_of_the_buffer_is_read() -> None:
    """The last message may end unaligned: its length, not its padding, bounds it."""
    data = NLMSGHDR.pack(18, FAMILY_ID, 0, SEQ, PORT_ID) + b"\x01\x01"

    (reply,) = iter_replies(data)

    assert bytes(reply.payload) == b"\x01\x01"


ACK = error_message(0)
TRUNCATED = {
    "header-cut": ACK + ACK[:10],
    "body-cut": ACK[:-4],
    "length-below-header": NLMSGHDR.pack(8, NLMSG_DONE, 0, SEQ, PORT_ID),
    "error-without-code": netlink_message(NLMSG_ERROR, b""),
}


@pytest.mark.parametrize("data", TRUNCATED.values(), ids=TRUNCATED.keys())
def test_a_truncated_or_corrupt_buffer_is_refused(data: bytes) -> None:
    """A cut header or body, a length under the header's, or an error without its code: WireFormatError."""
    with pytest.raises(WireFormatError, match="offset"):
        list(iter_replies(data))


def test_wire_errors_are_ours_and_value_errors() -> None:
    """WireFormatError is an IpvsctlError (our hierarchy) and a ValueError (what it is)."""
    assert issubclass(WireFormatError, IpvsctlError)
    assert issubclass(WireFormatError, ValueError)


def test_a_memoryview_payload_decodes_like_bytes() -> None:
    """Payloads are views of the recv buffer; decoding a copy gives the same attributes."""
    data = service_reply(kernel_service(replace(service(TCP80_V6), pe_name="sip")))
    payload = our_payload(data)

    assert isinstance(payload, memoryview)
    assert decode_service_reply(payload) == decode_service_reply(bytes(payload))
