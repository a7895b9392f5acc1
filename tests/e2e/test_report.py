"""The report: percentiles, counts, verdicts, the table and its JSON."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.e2e.report import FAIL, PASS, Outcome, Report, percentile, render, rows_from_json, summarize


def outcome(seconds: float, *, ok: bool = True) -> Outcome:
    return Outcome("client1", 0.0, seconds, ok=ok, server="sample-1a" if ok else "", error="" if ok else "reset")


@pytest.mark.parametrize(
    ("fraction", "expected"), [(0.5, 50.0), (0.99, 99.0), (1.0, 100.0), (0.01, 1.0)], ids=["p50", "p99", "max", "p1"]
)
def test_percentiles_are_nearest_rank(fraction: float, expected: float) -> None:
    """Of 1..100, the p-th percentile is p (nearest rank: always a value that occurred)."""
    assert percentile([float(v) for v in range(100, 0, -1)], fraction) == expected


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1), st.floats(min_value=0.001, max_value=1.0))
def test_a_percentile_is_one_of_the_values(values: list[float], fraction: float) -> None:
    """Whatever the values and fraction, the percentile is among them."""
    assert percentile(values, fraction) in values


def test_no_values_have_no_percentile() -> None:
    """An empty sample is an error, not zero."""
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_a_summary_times_only_the_requests_that_succeeded() -> None:
    """Failed requests are counted, their time (a timeout) stays out of the latency."""
    summary = summarize([outcome(0.010), outcome(0.020), outcome(5.0, ok=False)])
    assert (summary.requests, summary.failed, summary.p50_ms, summary.p99_ms) == (3, 1, 10.0, 20.0)


def test_a_summary_without_a_success_has_no_latency() -> None:
    """All failed: no p50/p99 to show."""
    summary = summarize([outcome(5.0, ok=False)])
    assert (summary.failed, summary.p50_ms, summary.p99_ms) == (1, None, None)


def test_a_verdict_goes_to_the_row_of_its_scenario() -> None:
    """Recorded figures merge; the verdict comes last; notes keep counts."""
    report = Report()
    report.record("1-affinity", "affinity", summarize([outcome(0.01)]), pods=1)
    report.note("1-affinity", "affinity", converged_s=0.5)
    report.record("2-cluster", "cluster", summarize([outcome(0.01, ok=False)]))
    report.conclude("1-affinity", passed=True)
    report.conclude("2-cluster", passed=False)
    first, second = report.rows
    assert (first.verdict, first.requests, first.figures) == (PASS, 1, {"pods": 1, "converged_s": 0.5})
    assert (second.verdict, second.failed) == (FAIL, 1)


def test_the_report_survives_its_json() -> None:
    """The host reads back what the guest wrote."""
    report = Report()
    report.record("9-drain", "drain", summarize([outcome(6.1)]), deleted_after_completion_s=131.0)
    assert rows_from_json(report.to_json()) == report.rows


def test_the_table_shows_each_scenario_and_its_figures() -> None:
    """One line per scenario with its counts and latency, then its figures."""
    report = Report()
    report.record("5-rolling", "rolling update", summarize([outcome(0.0123), outcome(0.0456)]), pods_replaced=3)
    report.conclude("5-rolling", passed=True)
    lines = render(report.rows).splitlines()
    assert lines[0].split() == ["scenario", "requests", "failed", "p50", "ms", "p99", "ms", "verdict"]
    assert lines[1].split() == ["5-rolling", "2", "0", "12.3", "45.6", "PASS"]
    assert lines[2] == "5-rolling (rolling update): pods_replaced 3"
