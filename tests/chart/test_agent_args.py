"""Each value of the chart reaches the agent as the flag it stands for."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.core import TyperGroup

from ipvsctl.agent.config import agent_config
from ipvsctl.backend.base import IpvsTimeouts
from ipvsctl.backend.sysctl import STARTUP_SYSCTLS, STRICT_ARP_SYSCTLS
from ipvsctl.cli import app
from ipvsctl.options import IpvsTimeoutFlags, NetfilterFlags, PolicyFlags
from tests.chart.render import container, render
from tests.chart.values import VALUE_SETS

DEFAULT_ARGS = [
    "agent",
    "--interface=ipvs0",
    "--scheduler=rr",
    "--persistence-netmask-v4=32",
    "--persistence-netmask-v6=128",
    "--affinity-scope=node",
    "--affinity-switch-delay=3",
    "--node-port-range=30000-32767",
    "--min-sync-interval=1",
    "--resync-interval=30",
    "--max-drain-seconds=900",
    "--health-bind=0.0.0.0:10256",
    "--metrics-bind=127.0.0.1:10249",
    "--health-check-address=0.0.0.0",
    "--log-format=json",
    "--log-level=info",
    "--backend=netlink",
    "--masquerade-bit=14",
    "--ipvs-tcp-timeout=0",
    "--ipvs-tcpfin-timeout=0",
    "--ipvs-udp-timeout=0",
    "--traffic-metrics=service",
    "--traffic-metrics-max-series=20000",
    "--traffic-stats-min-age=15",
    "--no-sysctl=net.ipv4.ip_forward",
    "--no-sysctl=net.ipv4.vs.conntrack",
    "--no-sysctl=net.ipv4.vs.expire_nodest_conn",
    "--no-sysctl=net.ipv4.vs.expire_quiescent_template",
]


def _args(values: dict[str, Any] | None = None) -> list[str]:
    agent = container(render(values), "agent")
    assert agent is not None
    assert agent["command"] == ["ipvsctl"]
    args: list[str] = agent["args"]
    return args


def test_default_values_give_the_agents_own_defaults() -> None:
    """With default values the agent runs with its documented defaults, each spelled out."""
    assert _args() == DEFAULT_ARGS


@pytest.mark.parametrize(
    ("values", "flags"),
    [
        pytest.param({"agent": {"interface": "kube-ipvs1"}}, ["--interface=kube-ipvs1"], id="interface"),
        pytest.param({"agent": {"scheduler": "mh"}}, ["--scheduler=mh"], id="scheduler"),
        pytest.param({"agent": {"affinityScope": "cluster"}}, ["--affinity-scope=cluster"], id="affinity-scope"),
        pytest.param({"agent": {"affinitySwitchDelay": 0.5}}, ["--affinity-switch-delay=0.5"], id="switch-delay"),
        pytest.param({"agent": {"persistenceNetmaskV4": 24}}, ["--persistence-netmask-v4=24"], id="netmask-v4"),
        pytest.param({"agent": {"persistenceNetmaskV6": 64}}, ["--persistence-netmask-v6=64"], id="netmask-v6"),
        pytest.param({"agent": {"nodePortRange": "20000-22767"}}, ["--node-port-range=20000-22767"], id="ports"),
        pytest.param(
            {"agent": {"externalIPCIDRs": ["203.0.113.0/24", "2001:db8::/64"]}},
            ["--external-ip-cidr=203.0.113.0/24", "--external-ip-cidr=2001:db8::/64"],
            id="external-ip-cidrs",
        ),
        pytest.param(
            {"agent": {"loadBalancerIPCIDRs": ["198.51.100.0/24", "2001:db8:1::/64"]}},
            ["--load-balancer-ip-cidr=198.51.100.0/24", "--load-balancer-ip-cidr=2001:db8:1::/64"],
            id="load-balancer-ip-cidrs",
        ),
        pytest.param({"agent": {"minSyncInterval": 0.25}}, ["--min-sync-interval=0.25"], id="min-sync"),
        pytest.param({"agent": {"resyncInterval": 120}}, ["--resync-interval=120"], id="resync"),
        pytest.param({"agent": {"resyncInterval": 45.0}}, ["--resync-interval=45"], id="whole-float"),
        pytest.param({"agent": {"maxDrainSeconds": 0}}, ["--max-drain-seconds=0"], id="no-drain"),
        pytest.param({"agent": {"maxDrainSeconds": 86400}}, ["--max-drain-seconds=86400"], id="long-drain"),
        pytest.param({"agent": {"healthCheckAddress": "::"}}, ["--health-check-address=::"], id="hc-address"),
        pytest.param({"agent": {"backend": "memory"}}, ["--backend=memory"], id="backend"),
        pytest.param({"health": {"bindAddress": "::", "port": 20256}}, ["--health-bind=[::]:20256"], id="health-v6"),
        pytest.param(
            {"metrics": {"bindAddress": "192.0.2.1", "port": 20249}}, ["--metrics-bind=192.0.2.1:20249"], id="metrics"
        ),
        pytest.param({"log": {"format": "console"}}, ["--log-format=console"], id="log-format"),
        pytest.param({"log": {"level": "debug"}}, ["--log-level=debug"], id="log-level"),
        pytest.param({"agent": {"netfilter": False}}, ["--no-netfilter"], id="no-netfilter"),
        pytest.param(
            {"agent": {"clusterCIDRs": ["10.244.0.0/16", "fd00:10:244::/56"]}},
            ["--cluster-cidr=10.244.0.0/16", "--cluster-cidr=fd00:10:244::/56"],
            id="cluster-cidrs",
        ),
        pytest.param({"agent": {"masqueradeBit": 3}}, ["--masquerade-bit=3"], id="masquerade-bit"),
        pytest.param({"agent": {"strictARP": True}}, ["--strict-arp"], id="strict-arp"),
        pytest.param({"agent": {"ipvsTCPTimeout": 3600}}, ["--ipvs-tcp-timeout=3600"], id="tcp-timeout"),
        pytest.param({"agent": {"ipvsTCPFinTimeout": 30}}, ["--ipvs-tcpfin-timeout=30"], id="tcpfin-timeout"),
        pytest.param({"agent": {"ipvsUDPTimeout": 2147483}}, ["--ipvs-udp-timeout=2147483"], id="udp-timeout-max"),
        pytest.param({"agent": {"trafficMetrics": "endpoint"}}, ["--traffic-metrics=endpoint"], id="traffic-metrics"),
        pytest.param(
            {"agent": {"trafficMetricsMaxSeries": 500}}, ["--traffic-metrics-max-series=500"], id="traffic-cap"
        ),
        pytest.param({"agent": {"trafficStatsMinAge": 7.5}}, ["--traffic-stats-min-age=7.5"], id="traffic-min-age"),
        pytest.param(
            {"agent": {"nodePortAddresses": ["primary", "2001:db8::/64"]}},
            ["--nodeport-addresses=primary", "--nodeport-addresses=2001:db8::/64"],
            id="nodeport-addresses",
        ),
    ],
)
def test_value_becomes_its_flag(values: dict[str, Any], flags: list[str]) -> None:
    """The value appears as its flag (in order, for repeated flags)."""
    args = _args(values)
    assert [a for a in args if a.split("=", 1)[0] == flags[0].split("=", 1)[0]] == flags


def test_external_ip_cidrs_default_to_none() -> None:
    """No --external-ip-cidr by default: the externalIP allow-list is closed."""
    assert not [a for a in _args() if a.startswith("--external-ip-cidr")]


def test_load_balancer_ip_cidrs_default_to_none() -> None:
    """No --load-balancer-ip-cidr by default: no LoadBalancer ingress IP is programmed (CVE-2020-8554)."""
    assert not [a for a in _args() if a.startswith("--load-balancer-ip-cidr")]


def test_nodeport_addresses_default_to_none() -> None:
    """No --nodeport-addresses by default: NodePorts on every node address, as before."""
    assert not [a for a in _args() if a.startswith("--nodeport-addresses")]


def test_extra_args_come_last_and_verbatim() -> None:
    """agent.extraArgs are appended after the chart's own flags, unchanged."""
    assert _args({"agent": {"extraArgs": ["--future-flag=a b", "--other"]}})[-2:] == ["--future-flag=a b", "--other"]


@pytest.mark.parametrize("values", VALUE_SETS)
def test_agent_accepts_the_rendered_args(values: dict[str, Any] | None) -> None:
    """`ipvsctl agent` parses the rendered arguments and its own checks (agent_config) accept them."""
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    context = root.commands["agent"].make_context("agent", _args(values)[1:])
    params = dict(context.params)
    params["policy"] = PolicyFlags(
        scheduler=params.pop("scheduler"),
        netmask_v4=params.pop("netmask_v4"),
        netmask_v6=params.pop("netmask_v6"),
        affinity_scope=params.pop("affinity_scope"),
        node_port_range=params.pop("node_port_range"),
        external_ip_cidrs=params.pop("external_ip_cidr") or [],
        load_balancer_ip_cidrs=params.pop("load_balancer_ip_cidr") or [],
        node_port_addresses=params.pop("nodeport_addresses") or [],
    )
    params["netfilter"] = NetfilterFlags(
        enabled=not params.pop("no_netfilter"),
        cluster_cidrs=params.pop("cluster_cidr") or [],
        masquerade_bit=params.pop("masquerade_bit"),
    )
    params["ipvs_timeouts"] = IpvsTimeoutFlags(
        tcp=params.pop("ipvs_tcp_timeout"),
        tcp_fin=params.pop("ipvs_tcpfin_timeout"),
        udp=params.pop("ipvs_udp_timeout"),
    )
    params["no_sysctl"] = params["no_sysctl"] or []
    params["traffic_metrics"] = params["traffic_metrics"].value
    config = agent_config(**params, environ={"NODE_NAME": "node-1"})
    # The agent writes no sysctl of its own; with --strict-arp it checks the two kernel-setup wrote.
    assert config.sysctls == (dict(STRICT_ARP_SYSCTLS) if params["strict_arp"] else {})
    assert set(params["no_sysctl"]) == set(STARTUP_SYSCTLS)


def test_the_agent_gets_the_charts_netfilter_arp_and_timeout_values() -> None:
    """Non-default values of issue 15 reach the agent's checked config as given."""
    values = {
        "agent": {
            "netfilter": False,
            "clusterCIDRs": ["10.244.0.0/16"],
            "masqueradeBit": 5,
            "strictARP": True,
            "ipvsTCPTimeout": 3600,
            "ipvsTCPFinTimeout": 30,
            "ipvsUDPTimeout": 7,
        }
    }
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    params = root.commands["agent"].make_context("agent", _args(values)[1:]).params

    assert (params["no_netfilter"], params["cluster_cidr"], params["masquerade_bit"], params["strict_arp"]) == (
        True,
        ["10.244.0.0/16"],
        5,
        True,
    )
    timeouts = IpvsTimeoutFlags(
        tcp=params["ipvs_tcp_timeout"], tcp_fin=params["ipvs_tcpfin_timeout"], udp=params["ipvs_udp_timeout"]
    )
    config = agent_config(node_name="node-1", ipvs_timeouts=timeouts, environ={})
    assert config.ipvs_timeouts == IpvsTimeouts(tcp=3600, tcp_fin=30, udp=7)
