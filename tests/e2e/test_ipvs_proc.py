"""/proc/net/ip_vs as data."""

from __future__ import annotations

from tests.e2e.ipvs_proc import RealState, parse_ip_vs, weights

SAMPLE = """IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  CB00710A:1F90 rr persistent 10800
  -> C6336402:0050      Masq    1      0          0
  -> C633640A:0050      Masq    0      2          5
UDP  CB007114:0035 rr
FWM  00000001 rr
  -> C6336403:0050      Masq    1      0          0
TCP  [2001:0db8:000f:0000:0000:0000:0000:0010]:0050 rr
  -> [2001:0db8:0005:0000:0000:0000:0000:0011]:1F90      Masq    1      0          0
"""


def test_services_and_their_real_servers_are_read_with_weights_and_counts() -> None:
    """IPv4 in network-order hex, IPv6 in brackets; a service without real servers is kept, empty."""
    table = parse_ip_vs(SAMPLE)
    assert table[("TCP", "203.0.113.10", 8080)] == {
        ("198.51.100.2", 80): RealState(1, 0, 0),
        ("198.51.100.10", 80): RealState(0, 2, 5),
    }
    assert table[("UDP", "203.0.113.20", 53)] == {}
    assert table[("TCP", "2001:db8:f::10", 80)] == {("2001:db8:5::11", 8080): RealState(1, 0, 0)}


def test_firewall_mark_services_are_left_out() -> None:
    """The bed has none; their real servers are not mistaken for the previous service's."""
    table = parse_ip_vs(SAMPLE)
    assert len(table) == 3
    assert ("198.51.100.3", 80) not in table[("UDP", "203.0.113.20", 53)]


def test_weights_name_each_real_server_of_one_service() -> None:
    """Address → weight; an absent service has none."""
    table = parse_ip_vs(SAMPLE)
    assert weights(table, ("TCP", "203.0.113.10", 8080)) == {"198.51.100.2": 1, "198.51.100.10": 0}
    assert weights(table, ("TCP", "203.0.113.99", 80)) == {}


def test_an_empty_table_has_no_service() -> None:
    """Just the three header lines."""
    assert parse_ip_vs("\n".join(SAMPLE.splitlines()[:3])) == {}
