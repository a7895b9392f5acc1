"""A node's table read through netlink, as the bed's table data."""

from __future__ import annotations

from ipvsctl.backend.base import KernelState
from ipvsctl.model import ConnectionCounts, Protocol, RealServer, ServiceKey, Table, VirtualService
from tests.e2e.ipvs_proc import RealState
from tests.e2e.ipvs_read import table_from_state

WEB = ServiceKey(Protocol.TCP, "203.0.113.10", 80)
DNS = ServiceKey(Protocol.UDP, "2001:db8:f::10", 53)
POD = RealServer("198.51.100.2", 8080, weight=0)


def _state(*services: VirtualService, counts: dict[tuple[ServiceKey, RealServer], ConnectionCounts]) -> KernelState:
    table = Table({service.key: service for service in services})
    return KernelState(table, connections={(key, real.key): value for (key, real), value in counts.items()})


def test_real_servers_carry_their_weight_and_the_kernels_connection_counts() -> None:
    """Weight from the table, active and inactive connections from the kernel's counts."""
    state = _state(VirtualService(WEB, reals=(POD,)), counts={(WEB, POD): ConnectionCounts(active=2, inactive=5)})
    assert table_from_state(state) == {("TCP", "203.0.113.10", 80): {("198.51.100.2", 8080): RealState(0, 2, 5)}}


def test_a_service_without_real_servers_is_kept_empty_under_its_upper_case_protocol() -> None:
    """An empty UDP service reads as ("UDP", address, port) with no real servers, as /proc/net/ip_vs did."""
    assert table_from_state(_state(VirtualService(DNS), counts={})) == {("UDP", "2001:db8:f::10", 53): {}}


def test_firewall_mark_services_are_left_out() -> None:
    """A FWM service is not a (protocol, address, port) service."""
    assert table_from_state(_state(VirtualService(ServiceKey.fwmark(1)), counts={})) == {}
