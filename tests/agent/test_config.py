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
from ipvsctl.backend.base import IpvsTimeouts
from ipvsctl.backend.sysctl import STARTUP_SYSCTLS
from ipvsctl.errors import UsageError
from ipvsctl.options import MAX_IPVS_TIMEOUT, IpvsTimeoutFlags, PolicyFlags


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
        pytest.param({"affinity_switch_delay": -1.0}, "--affinity-switch-delay", id="switch-delay-negative"),
        pytest.param({"affinity_switch_delay": 61.0}, "--affinity-switch-delay", id="switch-delay-above-60"),
        pytest.param({"affinity_switch_delay": float("nan")}, "--affinity-switch-delay", id="switch-delay-nan"),
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
        pytest.param(
            {"policy": PolicyFlags(node_port_addresses=["primary", "eth0"])},
            "--nodeport-addresses",
            id="nodeport-addresses",
        ),
        pytest.param({"ipvs_timeouts": IpvsTimeoutFlags(tcp=-1)}, "--ipvs-tcp-timeout", id="tcp-timeout-negative"),
        pytest.param(
            {"ipvs_timeouts": IpvsTimeoutFlags(tcp_fin=MAX_IPVS_TIMEOUT + 1)},
            "--ipvs-tcpfin-timeout",
            id="tcpfin-timeout-over-the-kernels",
        ),
        pytest.param({"ipvs_timeouts": IpvsTimeoutFlags(udp=2**32 + 7)}, "--ipvs-udp-timeout", id="udp-timeout-huge"),
        pytest.param(
            {"no_sysctl": ["net.ipv4.conf.all.arp_ignore"], "strict_arp": True}, "--no-sysctl", id="skip-strict-arp"
        ),
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


def test_strict_arp_and_only_strict_arp_adds_arp_ignore_and_arp_announce() -> None:
    """--strict-arp sets arp_ignore=1 and arp_announce=2 on all interfaces after the start-up sysctls; without
    it (the default) the start-up sysctls are all."""
    with_flag = agent_config(node_name="n", strict_arp=True, environ={})
    without = agent_config(node_name="n", strict_arp=False, environ={})

    assert without.sysctls == dict(STARTUP_SYSCTLS)
    assert with_flag.sysctls == {
        **STARTUP_SYSCTLS,
        "net.ipv4.conf.all.arp_ignore": "1",
        "net.ipv4.conf.all.arp_announce": "2",
    }


def test_strict_arp_goes_with_the_sysctls_left_out() -> None:
    """--no-sysctl still removes a start-up sysctl when --strict-arp adds the arp ones."""
    config = agent_config(node_name="n", strict_arp=True, no_sysctl=["net.ipv4.ip_forward"], environ={})

    assert "net.ipv4.ip_forward" not in config.sysctls
    assert config.sysctls["net.ipv4.conf.all.arp_ignore"] == "1"


def test_ipvs_timeouts_keep_the_kernels_by_default() -> None:
    """No IPVS timeout flag: all three 0, the kernel's values are left alone."""
    assert agent_config(node_name="n", environ={}).ipvs_timeouts == IpvsTimeouts()


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(IpvsTimeoutFlags(tcp=3600, tcp_fin=30, udp=7), id="each"),
        pytest.param(IpvsTimeoutFlags(udp=MAX_IPVS_TIMEOUT), id="largest"),
        pytest.param(IpvsTimeoutFlags(tcp=0, tcp_fin=1), id="zero-and-one"),
    ],
)
def test_ipvs_timeouts_reach_the_config(flags: IpvsTimeoutFlags) -> None:
    """Timeouts in 0..MAX_IPVS_TIMEOUT are kept as given, each in its place."""
    config = agent_config(node_name="n", ipvs_timeouts=flags, environ={})

    assert config.ipvs_timeouts == IpvsTimeouts(tcp=flags.tcp, tcp_fin=flags.tcp_fin, udp=flags.udp)


def test_the_largest_timeout_is_what_every_kernel_takes() -> None:
    """MAX_IPVS_TIMEOUT is INT_MAX / 1000: the kernel's limit (INT_MAX / HZ seconds) with the highest HZ, 1000."""
    assert MAX_IPVS_TIMEOUT == (2**31 - 1) // 1000


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
