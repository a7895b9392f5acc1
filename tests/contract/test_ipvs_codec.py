"""The IPVS codec through pyroute2's nla map, on the host: encode, decode, and get the model value back.

White-box: it uses the pyroute2 transport's private message helpers, because the pyroute2 boundary is where
the netmask and flag encodings can go wrong without a kernel to notice.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import fields
from typing import Any

import pytest
from hypothesis import given
from pyroute2.netlink.generic.ipvs import ipvsmsg

from ipvsctl.backend.base import RealServerStats
from ipvsctl.backend.ipvs.attributes import STATS_COUNTERS, STATS_FIELDS
from ipvsctl.backend.ipvs.codec import DEST_FIELDS, DecodedDest, decode_dest, decode_service, request_for
from ipvsctl.backend.ipvs.pyroute2 import _attributes, _message
from ipvsctl.backend.limits import encoding_problem
from ipvsctl.backend.netlink.message import WireFormatError
from ipvsctl.model import (
    AddRealServer,
    AddVirtualService,
    ConnectionCounts,
    DeleteRealServer,
    EditVirtualService,
    Forwarding,
    Persistence,
    RealServer,
    ServiceKey,
    VirtualService,
)
from tests.contract.values import TCP80, TCP80_V6, real, service
from tests.strategies import real_servers, service_keys, virtual_services

HASHED = 0x2


def wire_round_trip(message: Any) -> Any:
    """The message as the other end of the socket decodes it."""
    message.encode()
    decoded = ipvsmsg(message.data)
    decoded.decode()
    return decoded


def nested(message: Any, name: str) -> dict[str, object]:
    """One nested attribute of a decoded message, as the pyroute2 transport reads it."""
    return _attributes(message.get_attr(f"IPVS_CMD_ATTR_{name}"))


@given(vs=virtual_services(max_reals=0))
def test_a_service_survives_the_wire(vs: VirtualService) -> None:
    """Every service setting decodes to the value encoded, with the kernel's HASHED flag ignored."""
    attributes = nested(wire_round_trip(_message(request_for(AddVirtualService(vs)))), "SERVICE")
    attributes["IPVS_SVC_ATTR_FLAGS"] = int(str(attributes["IPVS_SVC_ATTR_FLAGS"])) | HASHED

    assert decode_service(attributes) == vs


@given(data=service_keys().flatmap(lambda key: real_servers(key=key).map(lambda real: (key, real))))
def test_a_real_server_survives_the_wire(data: tuple[Any, RealServer]) -> None:
    """Every real server setting decodes to the value encoded."""
    key, written = data
    attributes = nested(wire_round_trip(_message(request_for(AddRealServer(key, written)))), "DEST")

    assert decode_dest(attributes, key=key).real == written


@pytest.mark.parametrize(
    ("persistence", "service_key", "netmask"),
    [
        (Persistence(timeout=300, netmask=24), TCP80, "255.255.255.0"),
        (Persistence(timeout=300, netmask=0), TCP80, "0.0.0.0"),
        (Persistence(timeout=300, netmask=64), TCP80_V6, "64.0.0.0"),
        (None, TCP80_V6, "128.0.0.0"),
        (None, TCP80, "255.255.255.255"),
    ],
    ids=["ipv4-24", "ipv4-0", "ipv6-64", "ipv6-plain", "ipv4-plain"],
)
def test_the_netmask_travels_as_the_kernel_wants_it(
    persistence: Persistence | None, service_key: Any, netmask: str
) -> None:
    """IPv4 netmasks are dotted; IPv6 prefixes ride in a host-order u32 typed as an IPv4 address."""
    vs = service(service_key, persistence=persistence)

    attributes = nested(wire_round_trip(_message(request_for(AddVirtualService(vs)))), "SERVICE")

    assert attributes["IPVS_SVC_ATTR_NETMASK"] == netmask


def test_an_edit_sends_every_field_with_a_full_flag_mask() -> None:
    """A SET carries scheduler, flags (all-ones mask), timeout, netmask and engine, so nothing resets."""
    vs = service(TCP80, persistence=Persistence(timeout=60, netmask=32))

    attributes = nested(wire_round_trip(_message(request_for(EditVirtualService(vs, previous=vs)))), "SERVICE")

    assert {name.removeprefix("IPVS_SVC_ATTR_") for name in attributes} >= {
        "SCHED_NAME",
        "FLAGS",
        "TIMEOUT",
        "NETMASK",
        "PE_NAME",
    }


@pytest.mark.parametrize(
    ("forwarding", "code"), [(Forwarding.MASQ, 0), (Forwarding.TUNNEL, 2), (Forwarding.ROUTE, 3)], ids=str
)
def test_forwarding_methods_use_the_kernels_codes(forwarding: Forwarding, code: int) -> None:
    """masq 0, tunnel 2, route 3 (IP_VS_CONN_F_*), never pyroute2's default of 3."""
    request = request_for(AddRealServer(TCP80, real(11, forwarding=forwarding)))

    assert nested(wire_round_trip(_message(request)), "DEST")["IPVS_DEST_ATTR_FWD_METHOD"] == code


def test_a_delete_names_only_the_real_server() -> None:
    """A real server delete carries its address, port and family, not its settings."""
    request = request_for(DeleteRealServer(TCP80, real(11)))

    assert set(nested(wire_round_trip(_message(request)), "DEST")) == {
        "IPVS_DEST_ATTR_ADDR_FAMILY",
        "IPVS_DEST_ATTR_ADDR",
        "IPVS_DEST_ATTR_PORT",
    }


def test_local_node_forwarding_reads_as_masquerading() -> None:
    """Forwarding code 1 (local node) is the kernel's view of a masqueraded local address."""
    attributes = nested(wire_round_trip(_message(request_for(AddRealServer(TCP80, real(11))))), "DEST")
    attributes["IPVS_DEST_ATTR_FWD_METHOD"] = 1

    assert decode_dest(attributes, key=TCP80).real.forwarding is Forwarding.MASQ


def test_a_weight_pyroute2_cannot_pack_is_refused_before_sending() -> None:
    """Weights beyond an unsigned 32-bit field fail as ERANGE instead of a struct.error."""
    problem = encoding_problem(AddRealServer(TCP80, RealServer("198.51.100.11", 80, weight=2**32)))

    assert problem is not None
    assert problem.errno == errno.ERANGE


@pytest.mark.parametrize(
    "address",
    ["198.51.100.7", "2001:db8::1", "2001:db8:0:1:0:0:0:1", "::ffff:198.51.100.7", "::198.51.100.7", "fe80::1:0:0:1"],
)
def test_a_dumped_address_reads_in_the_models_spelling(address: str) -> None:
    """Whatever inet_ntop wrote, a decoded real server's address is ipaddress's canonical spelling."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    written = socket.inet_ntop(family, socket.inet_pton(family, address))
    attributes = {"IPVS_DEST_ATTR_ADDR": written, "IPVS_DEST_ATTR_PORT": 80, "IPVS_DEST_ATTR_ADDR_FAMILY": int(family)}
    key = ServiceKey.fwmark(1, family=6 if family == socket.AF_INET6 else 4)

    assert decode_dest(attributes, key=key).real.address == str(ipaddress.ip_address(address))


def test_the_counters_kept_are_real_server_stats_fields() -> None:
    """STATS_FIELDS names RealServerStats's fields in order: ``RealServerStats(*counters)`` is positional."""
    assert tuple(STATS_FIELDS) == tuple(field.name for field in fields(RealServerStats))
    assert tuple(STATS_FIELDS.values()) == STATS_COUNTERS


def test_a_destination_is_made_of_its_dest_fields() -> None:
    """Each of DEST_FIELDS lands where it belongs: address, port, family, forwarding, weight, thresholds, counts."""
    values = dict(zip(DEST_FIELDS, ["198.51.100.7", 80, socket.AF_INET, 2, 3, 4, 5, 6, 7, 8], strict=True))
    stats = {name: index for index, name in enumerate(STATS_COUNTERS, start=10)}

    dest = decode_dest({**values, "IPVS_DEST_ATTR_STATS": stats}, key=TCP80)

    expected = RealServer(
        "198.51.100.7", 80, weight=3, forwarding=Forwarding.TUNNEL, upper_threshold=4, lower_threshold=5
    )
    assert dest == DecodedDest(expected, 6, 15, (10, 11, 12, 13, 14))
    assert (dest.key, dest.connections) == (expected.key, ConnectionCounts(active=6, inactive=15))


def test_a_destination_not_of_its_family_is_unreadable() -> None:
    """An IPv6 address sent with the IPv4 family is a WireFormatError (an answer, not a bug)."""
    attributes = {"IPVS_DEST_ATTR_ADDR": "2001:db8::1", "IPVS_DEST_ATTR_ADDR_FAMILY": int(socket.AF_INET)}

    with pytest.raises(WireFormatError, match="address family"):
        decode_dest(attributes, key=TCP80)
