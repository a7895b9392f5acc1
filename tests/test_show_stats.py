"""`ipvsctl show --stats`: IPVS's counters per virtual service and real server, with rates between two dumps."""

from __future__ import annotations

from typing import Any

import pytest

from ipvsctl.backend.base import KernelState, Traffic, TrafficStats
from ipvsctl.cli.traffic import stats_seconds
from ipvsctl.errors import UsageError
from ipvsctl.kube.views import ObjectRef
from ipvsctl.model import Protocol, RealServer, ServiceKey, Table, VirtualService
from ipvsctl.show import TrafficReads, show_json, show_text

VIP = ServiceKey(Protocol.TCP, "203.0.113.20", 443)
POD = RealServer("198.51.100.10", 8443)
NEW = RealServer("198.51.100.11", 8443)
STATE = KernelState(Table.of([VirtualService(VIP, reals=(POD, NEW))]))
FIRST = TrafficStats(
    services={VIP: Traffic(connections=10, packets_in=100, packets_out=80, bytes_in=1000, bytes_out=8000)},
    real_servers={(VIP, POD.key): Traffic(connections=10, bytes_out=8000)},
)
SECOND = TrafficStats(
    services={VIP: Traffic(connections=14, packets_in=140, packets_out=100, bytes_in=1400, bytes_out=12000)},
    real_servers={(VIP, POD.key): Traffic(connections=12, bytes_out=10000), (VIP, NEW.key): Traffic(connections=2)},
)
READS = TrafficReads(FIRST, SECOND, seconds=2.0)
OWNERS = {VIP: ObjectRef("shop", "web")}
PODS = {POD.address: ObjectRef("shop", "web-0")}


def owned(_key: ServiceKey) -> bool:
    return True


def document() -> dict[str, object]:
    return show_json(STATE, owned=owned, owners=OWNERS, pods=PODS, traffic=READS)


def only_entry(shown: dict[str, object]) -> Any:
    """The one virtual service of a document."""
    services = shown["virtualServices"]
    assert isinstance(services, list)
    (entry,) = services
    return entry


def test_json_has_the_services_totals_and_rates() -> None:
    """The virtual service's stats: the second dump's totals, and (second - first) / 2 s."""
    entry = only_entry(document())
    assert entry["stats"] == {
        "connections": 14,
        "packetsIn": 140,
        "packetsOut": 100,
        "bytesIn": 1400,
        "bytesOut": 12000,
        "perSecond": {"connections": 2.0, "packetsIn": 20.0, "packetsOut": 10.0, "bytesIn": 200.0, "bytesOut": 2000.0},
    }


def test_json_has_each_pods_stats_and_no_rate_for_one_that_just_appeared() -> None:
    """A real server in both dumps has rates; one only in the second has totals and perSecond null."""
    entry = only_entry(document())
    by_pod = {real["address"]: real["stats"] for real in entry["realServers"]}
    assert (by_pod[POD.address]["perSecond"]["connections"], by_pod[POD.address]["perSecond"]["bytesOut"]) == (
        1.0,
        1000.0,
    )
    assert (by_pod[NEW.address]["connections"], by_pod[NEW.address]["perSecond"]) == (2, None)


def test_json_says_the_interval() -> None:
    """The document carries the seconds between the two dumps."""
    assert document()["statsInterval"] == 2.0


def test_a_counter_that_went_back_has_no_rate() -> None:
    """Deleted and made again between the dumps (counters restarted): no rate rather than a negative one."""
    reads = TrafficReads(SECOND, FIRST, seconds=2.0)
    assert reads.of_service(VIP)["perSecond"]["connections"] is None  # type: ignore[index]


def test_without_stats_the_document_is_unchanged() -> None:
    """No --stats: no stats keys and no interval."""
    plain = show_json(STATE, owned=owned, owners=OWNERS, pods=PODS)
    entry = only_entry(plain)
    assert ("statsInterval" in plain, "stats" in entry, "stats" in entry["realServers"][0]) == (False, False, False)


def test_text_has_a_stats_line_under_the_service_and_each_pod() -> None:
    """Text: totals and rates under the virtual service and under each real server, and the interval at the end."""
    lines = show_text(STATE, owned=owned, owners=OWNERS, pods=PODS, traffic=READS).splitlines()
    assert "  stats: conns 14 (2/s)  in 140 pkts 1400 B (20/s, 200 B/s)  out 100 pkts 12000 B (10/s, 2000 B/s)" in lines
    assert "     stats: conns 2 (?)  in 0 pkts 0 B (?, ?)  out 0 pkts 0 B (?, ?)" in lines
    assert lines[-1] == "rates over 2 s between two stats dumps"


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("inf"), float("nan"), 61.0])
def test_a_bad_stats_interval_is_refused(seconds: float) -> None:
    """--stats-interval must be above 0 and at most 60 s."""
    with pytest.raises(UsageError, match="--stats-interval"):
        stats_seconds(seconds)
