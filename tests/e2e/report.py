"""The bed's report: one row per scenario (requests sent, failed, p50/p99 latency, verdict, figures). Pure.

Scenarios record their figures before they assert, so a failing scenario still has its row; the verdict is
set from the test's outcome (conftest.py). The rows go to `report.json` in the lab's results directory and are
printed as a table by the guest and again by `python -m tests.e2e` on the host.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request of a load: when it started (monotonic s), how long it took, and what answered."""

    flow: str  # which stream of the load sent it (e.g. the client's name)
    started: float
    seconds: float
    ok: bool
    server: str = ""  # the pod that answered
    seen: str = ""  # the client address that pod saw
    error: str = ""


@dataclass(frozen=True, slots=True)
class Summary:
    """Requests sent, failed, and latency percentiles (milliseconds, None without a successful request)."""

    requests: int
    failed: int
    p50_ms: float | None
    p99_ms: float | None


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of `values` (0 < fraction <= 1)."""
    if not values:
        raise ValueError("no values")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be within (0, 1], got {fraction}")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summarize(outcomes: Iterable[Outcome]) -> Summary:
    """Count and time a load: the latency of the successful requests, the number of failed ones."""
    done = list(outcomes)
    times = [outcome.seconds * 1000 for outcome in done if outcome.ok]
    failed = sum(1 for outcome in done if not outcome.ok)
    if not times:
        return Summary(len(done), failed, None, None)
    return Summary(len(done), failed, round(percentile(times, 0.5), 1), round(percentile(times, 0.99), 1))


PASS, FAIL, PENDING = "PASS", "FAIL", "-"


@dataclass(frozen=True, slots=True)
class Row:
    """A scenario's line in the report."""

    scenario: str
    title: str
    requests: int = 0
    failed: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    verdict: str = PENDING
    figures: dict[str, Any] = field(default_factory=dict)  # convergence times, counts, shares


class Report:
    """Rows by scenario, in the order the scenarios ran."""

    def __init__(self) -> None:
        self._rows: dict[str, Row] = {}

    def record(self, scenario: str, title: str, summary: Summary, **figures: Any) -> None:
        """Set a scenario's counts and figures (again: the later call wins, figures merge)."""
        previous = self._rows.get(scenario)
        merged = {**(previous.figures if previous else {}), **figures}
        self._rows[scenario] = Row(
            scenario, title, summary.requests, summary.failed, summary.p50_ms, summary.p99_ms, PENDING, merged
        )

    def note(self, scenario: str, title: str, **figures: Any) -> None:
        """Add figures to a scenario's row without touching its counts."""
        row = self._rows.get(scenario, Row(scenario, title))
        self._rows[scenario] = replace(row, figures={**row.figures, **figures})

    def conclude(self, scenario: str, *, passed: bool) -> None:
        """Set the verdict of a scenario that recorded a row."""
        if scenario in self._rows:
            self._rows[scenario] = replace(self._rows[scenario], verdict=PASS if passed else FAIL)

    @property
    def rows(self) -> list[Row]:
        """The rows, in the order they were first recorded."""
        return list(self._rows.values())

    def to_json(self) -> str:
        """The rows as a JSON document."""
        return json.dumps({"scenarios": [asdict(row) for row in self.rows]}, indent=1)


def rows_from_json(text: str) -> list[Row]:
    """Rows back from `Report.to_json`."""
    return [Row(**row) for row in json.loads(text)["scenarios"]]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def render(rows: Sequence[Row]) -> str:
    """The report as a text table, then each scenario's figures."""
    header = ("scenario", "requests", "failed", "p50 ms", "p99 ms", "verdict")
    table = [list(header)] + [
        [row.scenario, str(row.requests), str(row.failed), _ms(row.p50_ms), _ms(row.p99_ms), row.verdict]
        for row in rows
    ]
    widths = [max(len(line[column]) for line in table) for column in range(len(header))]
    text = []
    for line in table:
        cells = [line[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)
        ]
        text.append("  ".join(cells).rstrip())
    for row in rows:
        if row.figures:
            figures = ", ".join(f"{name} {_figure(value)}" for name, value in row.figures.items())
            text.append(f"{row.scenario} ({row.title}): {figures}")
    return "\n".join(text)
