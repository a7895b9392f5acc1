"""The agent's settings, checked once: flags → ``AgentConfig`` (errors name the flag)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import netaddr

from ipvsctl.agent.http import Bind
from ipvsctl.agent.traffic import TrafficMode
from ipvsctl.backend.base import IpvsTimeouts
from ipvsctl.backend.limits import DEFAULT_INTERFACE
from ipvsctl.backend.sysctl import STARTUP_SYSCTLS, startup_settings
from ipvsctl.errors import UsageError
from ipvsctl.model import canonical_ip
from ipvsctl.options import (
    AFFINITY_SWITCH_DELAY,
    IPVS_TIMEOUT_DEFAULTS,
    NETFILTER_DEFAULTS,
    POLICY_DEFAULTS,
    IpvsTimeoutFlags,
    NetfilterFlags,
    PolicyFlags,
    parse_port,
)
from ipvsctl.translate import Policy

__all__ = ["LOG_FORMATS", "AgentConfig", "agent_config", "parse_bind"]

LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
NODE_NAME_ENV = "NODE_NAME"
# Probes come from the kubelet, off-host: every address.
DEFAULT_HEALTH_BIND = Bind("0.0.0.0", 10256)  # noqa: S104
# Metrics stay on the node unless asked (kube-proxy's 10249 is 127.0.0.1 too): the chart widens the bind
# only when its metrics Service or monitor is enabled, so that a scraper can reach it.
DEFAULT_METRICS_BIND = Bind("127.0.0.1", 10249)
MAX_AFFINITY_SWITCH_DELAY = 60.0  # a new pod waits at most this long for its cluster-scope clients
MAX_TRAFFIC_SERIES = 10_000_000  # a bound on --traffic-metrics-max-series (memory of one exposition)
KERNELS_TIMEOUTS = IpvsTimeouts()  # all 0: the kernel's IPVS timeouts are left as they are


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """Everything ``ipvsctl agent`` was told."""

    node_name: str
    # No externalIP or ingress IP is honoured unless allowed (CVE-2020-8554).
    policy: Policy = field(
        default_factory=lambda: Policy(external_ip_cidrs=netaddr.IPSet(), load_balancer_ip_cidrs=netaddr.IPSet())
    )
    kubeconfig: str | None = None  # None: the pod's service account
    interface: str = DEFAULT_INTERFACE
    min_sync_interval: float = 1.0
    resync_interval: float = 30.0
    max_drain_seconds: float = 900.0
    affinity_switch_delay: float = AFFINITY_SWITCH_DELAY  # ipvsctl.affinity_switch; 0: switch at once
    health_bind: Bind = DEFAULT_HEALTH_BIND
    metrics_bind: Bind = DEFAULT_METRICS_BIND
    health_check_address: str = "0.0.0.0"  # noqa: S104 (cloud load balancers probe from off-host)
    log_format: str = "auto"
    log_level: str = "info"
    sysctls: Mapping[str, str] = field(default_factory=lambda: dict(STARTUP_SYSCTLS))  # with --strict-arp's
    backend: str = "netlink"
    netfilter: NetfilterFlags = NETFILTER_DEFAULTS
    ipvs_timeouts: IpvsTimeouts = KERNELS_TIMEOUTS  # set at start-up; 0 keeps the kernel's
    traffic_metrics: TrafficMode = TrafficMode.SERVICE
    traffic_max_series: int = 20_000
    traffic_min_age: float = 15.0  # seconds a stats dump answers scrapes


def parse_bind(text: str, *, flag: str) -> Bind:
    """``host:port`` or ``[v6]:port`` → Bind."""
    host, sep, port_text = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep:
        raise UsageError(f"{text!r} is not host:port (like 0.0.0.0:10256)", flag=flag)
    port = parse_port(port_text, flag=flag, allow_zero=True)
    try:
        host = canonical_ip(host)
    except ValueError:
        raise UsageError(f"{host!r} is not an IP address", flag=flag) from None
    return Bind(host, port)


def _seconds(value: float, *, flag: str, minimum: float = 0.0) -> float:
    if not math.isfinite(value) or value < minimum:
        raise UsageError(f"{value} must be a number of seconds >= {minimum}", flag=flag)
    return value


def agent_config(
    *,
    node_name: str | None,
    kubeconfig: str | None = None,
    interface: str = DEFAULT_INTERFACE,
    policy: PolicyFlags = POLICY_DEFAULTS,
    min_sync_interval: float = 1.0,
    resync_interval: float = 30.0,
    max_drain_seconds: float = 900.0,
    affinity_switch_delay: float = AFFINITY_SWITCH_DELAY,
    health_bind: str = "0.0.0.0:10256",
    metrics_bind: str = "127.0.0.1:10249",
    health_check_address: str = "0.0.0.0",  # noqa: S104 (load balancers probe from off-host)
    log_format: str = "auto",
    log_level: str = "info",
    no_sysctl: Sequence[str] = (),
    strict_arp: bool = False,
    backend: str = "netlink",
    netfilter: NetfilterFlags = NETFILTER_DEFAULTS,
    ipvs_timeouts: IpvsTimeoutFlags = IPVS_TIMEOUT_DEFAULTS,
    traffic_metrics: str = "service",
    traffic_max_series: int = 20_000,
    traffic_min_age: float = 15.0,
    environ: Mapping[str, str] = os.environ,
) -> AgentConfig:
    """Check every flag and build the config; UsageError names the first bad one."""
    name = node_name or environ.get(NODE_NAME_ENV, "")
    if not name:
        raise UsageError(f"is required (or set {NODE_NAME_ENV}, e.g. from the downward API)", flag="--node-name")
    if log_format not in LOG_FORMATS:
        raise UsageError(f"must be one of {', '.join(LOG_FORMATS)}", flag="--log-format")
    if log_level.lower() not in LOG_LEVELS:
        raise UsageError(f"must be one of {', '.join(LOG_LEVELS)}", flag="--log-level")
    if backend not in ("netlink", "memory"):
        raise UsageError("must be netlink or memory", flag="--backend")
    try:
        check_address = canonical_ip(health_check_address)
    except ValueError:
        raise UsageError(f"{health_check_address!r} is not an IP address", flag="--health-check-address") from None
    resync = _seconds(resync_interval, flag="--resync-interval", minimum=1.0)
    min_sync = _seconds(min_sync_interval, flag="--min-sync-interval")
    if min_sync > resync:
        raise UsageError(f"{min_sync} is longer than --resync-interval {resync}", flag="--min-sync-interval")
    timeouts = ipvs_timeouts.checked()
    switch_delay = _seconds(affinity_switch_delay, flag="--affinity-switch-delay")
    if switch_delay > MAX_AFFINITY_SWITCH_DELAY:
        raise UsageError(
            f"{switch_delay} is more than {MAX_AFFINITY_SWITCH_DELAY:g} seconds", flag="--affinity-switch-delay"
        )
    if traffic_metrics not in set(TrafficMode):
        raise UsageError(f"must be one of {', '.join(TrafficMode)}", flag="--traffic-metrics")
    if not 0 <= traffic_max_series <= MAX_TRAFFIC_SERIES:
        raise UsageError(
            f"{traffic_max_series} is not within 0..{MAX_TRAFFIC_SERIES}", flag="--traffic-metrics-max-series"
        )
    return AgentConfig(
        node_name=name,
        policy=policy.policy(),
        kubeconfig=kubeconfig,
        interface=interface,
        min_sync_interval=min_sync,
        resync_interval=resync,
        max_drain_seconds=_seconds(max_drain_seconds, flag="--max-drain-seconds"),
        affinity_switch_delay=switch_delay,
        health_bind=parse_bind(health_bind, flag="--health-bind"),
        metrics_bind=parse_bind(metrics_bind, flag="--metrics-bind"),
        health_check_address=check_address,
        log_format=log_format,
        log_level=log_level.lower(),
        sysctls=startup_settings(no_sysctl, strict_arp=strict_arp),
        backend=backend,
        netfilter=netfilter.checked(),
        ipvs_timeouts=IpvsTimeouts(tcp=timeouts.tcp, tcp_fin=timeouts.tcp_fin, udp=timeouts.udp),
        traffic_metrics=TrafficMode(traffic_metrics),
        traffic_max_series=traffic_max_series,
        traffic_min_age=_seconds(traffic_min_age, flag="--traffic-stats-min-age"),
    )
