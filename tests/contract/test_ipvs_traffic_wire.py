"""A stats dump's replies decode to every counter and rate (``ipvsadm -Ln --stats --rate``), as pyroute2 reads them."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from pyroute2.netlink.generic.ipvs import ipvsmsg

from ipvsctl.backend.base import Traffic
from ipvsctl.backend.ipvs.attributes import DEST_STATS_NESTS, SERVICE_STATS_NESTS
from ipvsctl.backend.ipvs.codec import decode_traffic, traffic_record
from ipvsctl.backend.ipvs.pyroute2 import _attributes
from ipvsctl.backend.ipvs.wire import decode_dest_traffic_reply, decode_service_traffic_reply
from ipvsctl.model import ConnectionCounts, VirtualService
from tests.contract.test_ipvs_wire import (
    counter_values,
    dest_reply,
    kernel_dest,
    kernel_service,
    our_payload,
    service_reply,
)
from tests.contract.values import TCP80, real


def pyroute2_traffic(data: bytes, nest: str, nests: tuple[str, ...]) -> dict[str, Any]:
    """What the pyroute2 transport makes of a stats-dump reply."""
    message = ipvsmsg(data)
    message.decode()
    return _attributes(message.get_attr(nest), traffic=nests)


@given(counters=counter_values)
def test_a_service_reply_gives_its_64_bit_counters_and_rates(counters: tuple[int, ...]) -> None:
    """A dumped service's STATS64 nest decodes to Traffic field by field, by both transports alike."""
    data = service_reply(kernel_service(VirtualService(TCP80), counters))
    ours = decode_service_traffic_reply(our_payload(data))
    theirs = pyroute2_traffic(data, "IPVS_CMD_ATTR_SERVICE", SERVICE_STATS_NESTS)
    assert decode_traffic(ours) == decode_traffic(theirs) == Traffic(*counters)


@given(counters=counter_values)
def test_a_dest_reply_gives_its_counters_rates_and_connections(counters: tuple[int, ...]) -> None:
    """A dumped destination decodes to its key, Traffic and connection counts (templates count as inactive)."""
    service = decode_service_traffic_reply(our_payload(service_reply(kernel_service(VirtualService(TCP80)))))
    dest = decode_dest_traffic_reply(
        our_payload(dest_reply(kernel_dest(real(11), key=TCP80, conns=(3, 4, 5), counters=counters)))
    )
    found = traffic_record(TCP80, service, [dest])
    assert found == (TCP80, Traffic(), [(real(11).key, Traffic(*counters), ConnectionCounts(3, 9))])


def test_without_stats64_the_32_bit_nest_is_read() -> None:
    """An older kernel's service reply (no STATS64) gives the 32-bit counters and rates."""
    attributes = [a for a in kernel_service(VirtualService(TCP80), tuple(range(1, 11))) if not a[0].endswith("64")]
    decoded = decode_service_traffic_reply(our_payload(service_reply(attributes)))
    assert decode_traffic(decoded) == Traffic(*range(1, 11))


def test_a_dest_without_stats_reads_zero() -> None:
    """No stats nest at all: every counter and rate is 0, by both transports."""
    data = dest_reply(kernel_dest(real(11), key=TCP80, counters=None))
    ours = decode_dest_traffic_reply(our_payload(data))
    theirs = pyroute2_traffic(data, "IPVS_CMD_ATTR_DEST", DEST_STATS_NESTS)
    assert decode_traffic(ours) == decode_traffic(theirs) == Traffic()
