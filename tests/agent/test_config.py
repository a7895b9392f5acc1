"""Flags → AgentConfig: defaults, and errors that name the flag; logs as JSON lines off a TTY."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import structlog

from ipvsctl.agent.config import agent_config
from ipvsctl.agent.http import Bind
from ipvsctl.agent.logs import configure_logging
from ipvsctl.errors import UsageError
from ipvsctl.options import PolicyFlags


def test_defaults_match_the_documented_flags() -> None:
    """Node name from NODE_NAME; no externalIP honoured; binds and intervals as documented."""
    config = agent_config(node_name=None, environ={"NODE_NAME": "worker1"})
    assert (config.node_name, config.min_sync_interval, config.resync_interval, config.max_drain_seconds) == (
        "worker1",
        1.0,
        30.0,
        900.0,
    )
    assert (config.health_bind, config.metrics_bind) == (Bind("0.0.0.0", 10256), Bind("127.0.0.1", 10249))
    assert config.policy.external_ip_cidrs is not None
    assert "203.0.113.1" not in config.policy.external_ip_cidrs
    assert config.policy.load_balancer_ip_cidrs is not None
    assert "203.0.113.1" not in config.policy.load_balancer_ip_cidrs
    assert config.kubeconfig is None


@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        pytest.param({"node_name": None}, "--node-name", id="no-node"),
        pytest.param({"health_bind": "10256"}, "--health-bind", id="bind-without-host"),
        pytest.param({"metrics_bind": "localhost:10249"}, "--metrics-bind", id="bind-host-not-ip"),
        pytest.param({"health_check_address": "any"}, "--health-check-address", id="check-address"),
        pytest.param({"min_sync_interval": 60.0}, "--min-sync-interval", id="min-above-resync"),
        pytest.param({"resync_interval": 0.0}, "--resync-interval", id="resync-zero"),
        pytest.param({"max_drain_seconds": -1.0}, "--max-drain-seconds", id="negative-drain"),
        pytest.param({"no_sysctl": ["net.ipv4.tcp_syncookies"]}, "--no-sysctl", id="unknown-sysctl"),
        pytest.param({"log_format": "xml"}, "--log-format", id="log-format"),
        pytest.param({"log_level": "loud"}, "--log-level", id="log-level"),
        pytest.param({"policy": PolicyFlags(scheduler="fastest")}, "--scheduler", id="scheduler"),
        pytest.param({"policy": PolicyFlags(external_ip_cidrs=["not-a-cidr"])}, "--external-ip-cidr", id="cidr"),
        pytest.param(
            {"policy": PolicyFlags(load_balancer_ip_cidrs=["300.0.0.0/8"])}, "--load-balancer-ip-cidr", id="lb-cidr"
        ),
        pytest.param({"health_bind": "0.0.0.0:\u00b2"}, "--health-bind", id="bind-port-superscript-digit"),
        pytest.param({"health_bind": "0.0.0.0:\u0661\u0660"}, "--health-bind", id="bind-port-arabic-indic-digits"),
        pytest.param({"metrics_bind": "127.0.0.1:" + "9" * 5000}, "--metrics-bind", id="bind-port-huge"),
        pytest.param({"health_bind": "0.0.0.0:65536"}, "--health-bind", id="bind-port-above-range"),
        pytest.param(
            {"policy": PolicyFlags(node_port_range="\u00b9-\u00b2")}, "--node-port-range", id="range-superscript-digits"
        ),
        pytest.param({"policy": PolicyFlags(node_port_range="1-" + "9" * 5000)}, "--node-port-range", id="range-huge"),
        pytest.param({"policy": PolicyFlags(node_port_range="2-1")}, "--node-port-range", id="range-reversed"),
    ],
)
def test_bad_flag_is_named(flags: dict[str, Any], flag: str) -> None:
    """Each invalid value is refused with the flag's name."""
    values: dict[str, Any] = {"node_name": "worker1", "environ": {}}
    values.update(flags)
    with pytest.raises(UsageError) as raised:
        agent_config(**values)
    assert raised.value.flag == flag


def test_ipv6_bind_and_skipped_sysctl() -> None:
    """[::1]:9000 is an IPv6 bind; --no-sysctl removes one start-up sysctl."""
    config = agent_config(node_name="n", metrics_bind="[::1]:9000", no_sysctl=["net.ipv4.ip_forward"], environ={})
    assert config.metrics_bind == Bind("::1", 9000)
    assert "net.ipv4.ip_forward" not in config.sysctls


def test_logs_are_json_lines_off_a_terminal() -> None:
    """Not a TTY: one JSON object per line with event, level, timestamp and the given keys."""
    out = io.StringIO()
    configure_logging(log_format="auto", level="info", stream=out)
    try:
        structlog.get_logger("test").info("sync_done", full=True, operations=2)
        structlog.get_logger("test").debug("operation_applied")
    finally:
        structlog.reset_defaults()
    (line,) = out.getvalue().splitlines()
    entry = json.loads(line)
    assert (entry["event"], entry["level"], entry["full"], entry["operations"]) == ("sync_done", "info", True, 2)
    assert "timestamp" in entry
