"""bench/fleet_stats.py: the pure arithmetic behind the fleet bench (issue 18)."""

from __future__ import annotations

import ipaddress

import pytest

from bench.fleet_stats import (
    ENDPOINT_SLOTS,
    SERVICE_CIDR,
    buckets,
    endpoint_address,
    held_split,
    latency_summary,
    metric_sum,
    per_hour,
    percentile,
    rollout_requests_per_second,
    watch_events_per_change,
)

METRICS = """\
# HELP apiserver_request_total Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",resource="services",verb="LIST",version="v1"} 3
apiserver_request_total{code="200",resource="services",verb="WATCH",version="v1"} 4
apiserver_request_total{code="410",resource="services",verb="LIST",version="v1"} 2
apiserver_request_total{code="200",resource="nodes",verb="LIST",version="v1"} 7
process_cpu_seconds_total 12.5
"""


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"resource": "services", "verb": "LIST"}, 5.0),
        ({"resource": "services"}, 9.0),
        ({"code": "410"}, 2.0),
        (None, 16.0),
    ],
    ids=["by-verb-and-resource", "by-resource", "by-code", "all-series"],
)
def test_metric_sum_adds_the_matching_series(labels: dict[str, str] | None, expected: float) -> None:
    """metric_sum adds every series of the name whose labels include the ones asked for."""
    assert metric_sum(METRICS, name="apiserver_request_total", labels=labels) == expected


def test_metric_sum_reads_an_unlabelled_sample() -> None:
    """A sample without labels (process CPU seconds) is read as is."""
    assert metric_sum(METRICS, name="process_cpu_seconds_total") == 12.5


def test_metric_sum_of_an_absent_metric_is_zero() -> None:
    """A metric the text does not carry sums to zero."""
    assert metric_sum(METRICS, name="etcd_requests_total") == 0.0


def test_percentile_is_nearest_rank() -> None:
    """p50 of 1..10 is 5 and p99 is 10 (nearest rank, no interpolation)."""
    values = [float(v) for v in range(10, 0, -1)]
    assert (percentile(values, fraction=0.5), percentile(values, fraction=0.99)) == (5.0, 10.0)


def test_latency_summary_reports_count_p50_p99_max() -> None:
    """The summary carries count, p50, p99 and max."""
    assert latency_summary([0.2, 0.1, 0.3]) == {"count": 3.0, "p50": 0.2, "p99": 0.3, "max": 0.3}


def test_buckets_count_offsets_per_second() -> None:
    """Offsets fall into whole-width buckets from zero, empty buckets included."""
    assert buckets([0.1, 0.9, 2.5], width=1.0) == [2, 0, 1]


def test_per_hour_scales_a_window() -> None:
    """Two requests in 30 s are 240 an hour."""
    assert per_hour(2.0, seconds=30.0) == 240.0


def test_rollout_rate_spreads_requests_over_the_rollout() -> None:
    """5,000 agents of 6 requests each restarting over 300 s ask 100 requests/s."""
    assert rollout_requests_per_second(nodes=5000, requests_per_agent=6.0, rollout_seconds=300.0) == 100.0


def test_one_change_is_one_watch_event_per_agent() -> None:
    """One EndpointSlice change is sent to every watching agent once."""
    assert watch_events_per_change(nodes=5000) == 5000


DOCUMENTATION = ipaddress.IPv6Network("2001:db8::/32")


def test_service_range_is_documentation_space_large_enough_for_ten_thousand_services() -> None:
    """The ClusterIP range lies in 2001:db8::/32 and holds 10,000 Services."""
    assert (SERVICE_CIDR.subnet_of(DOCUMENTATION), SERVICE_CIDR.num_addresses >= 10_000) == (True, True)


def test_endpoint_addresses_are_unique_documentation_addresses_in_canonical_text() -> None:
    """Every slot of 10,000 Services is a distinct 2001:db8::/32 address, written as the agent writes it."""
    addresses = [endpoint_address(index, slot=slot) for index in range(10_000) for slot in range(ENDPOINT_SLOTS)]
    parsed = [ipaddress.IPv6Address(address) for address in addresses]
    assert len(set(parsed)) == len(addresses)
    assert all(address in DOCUMENTATION for address in parsed)
    assert [str(address) for address in parsed] == addresses


@pytest.mark.parametrize("slot", [-1, ENDPOINT_SLOTS], ids=["negative", "past-the-last"])
def test_endpoint_slot_outside_the_reserved_ones_is_refused(slot: int) -> None:
    """A slot outside 0..15 would take another Service's address: refused."""
    with pytest.raises(ValueError, match="slot"):
        endpoint_address(3, slot=slot)


def test_held_split_counts_held_agents_and_the_slowest_of_each_side() -> None:
    """Two agents held by the interval, one not: the count and each side's slowest."""
    split = held_split([0.9, 0.02, 0.6], held=[True, False, True])
    assert split == {"held": 2.0, "slowest_held": 0.9, "slowest_other": 0.02}


def test_held_split_of_a_side_without_agents_is_zero() -> None:
    """No agent held: the held side's slowest is 0."""
    assert held_split([0.01, 0.03], held=[False, False])["slowest_held"] == 0.0


def test_held_split_refuses_lists_of_different_lengths() -> None:
    """One completion time per agent, or a ValueError."""
    with pytest.raises(ValueError, match="agents"):
        held_split([0.1], held=[True, False])


def test_the_bench_gives_the_apiserver_only_documentation_service_ranges() -> None:
    """Every range bench/fleet.py hands the apiserver for ClusterIPs is in 2001:db8::/32."""
    from bench.fleet import SERVICE_CIDRS  # noqa: PLC0415 (the bench module loads the apiserver harness)

    networks = [ipaddress.ip_network(cidr) for cidr in SERVICE_CIDRS.split(",")]
    assert all(isinstance(net, ipaddress.IPv6Network) and net.subnet_of(DOCUMENTATION) for net in networks)
