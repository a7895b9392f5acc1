"""bench/fleet_stats.py: the pure arithmetic behind the fleet bench (issue 18)."""

from __future__ import annotations

import pytest

from bench.fleet_stats import (
    buckets,
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
