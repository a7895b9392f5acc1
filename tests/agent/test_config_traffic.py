"""The traffic-metrics flags, checked once: each bad value names its flag."""

from __future__ import annotations

from typing import Any

import pytest

from ipvsctl.agent.config import agent_config
from ipvsctl.agent.traffic import TrafficMode
from ipvsctl.errors import UsageError


def test_traffic_defaults() -> None:
    """Service mode, 20,000 series, one dump per 15 s at most."""
    config = agent_config(node_name="worker1")
    assert (config.traffic_metrics, config.traffic_max_series, config.traffic_min_age) == (
        TrafficMode.SERVICE,
        20_000,
        15.0,
    )


@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        pytest.param({"traffic_metrics": "pods"}, "--traffic-metrics", id="unknown-mode"),
        pytest.param({"traffic_max_series": -1}, "--traffic-metrics-max-series", id="negative-cap"),
        pytest.param({"traffic_max_series": 10**12}, "--traffic-metrics-max-series", id="huge-cap"),
        pytest.param({"traffic_min_age": float("nan")}, "--traffic-stats-min-age", id="nan-age"),
        pytest.param({"traffic_min_age": -1.0}, "--traffic-stats-min-age", id="negative-age"),
    ],
)
def test_bad_traffic_flag_is_named(flags: dict[str, Any], flag: str) -> None:
    """A bad traffic flag is a UsageError naming it."""
    with pytest.raises(UsageError, match=flag):
        agent_config(node_name="worker1", **flags)
