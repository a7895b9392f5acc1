"""values.schema.json: helm refuses values the agent or Kubernetes would choke on, before anything is applied."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import pytest
import yaml

from ipvsctl.agent.config import LOG_FORMATS, LOG_LEVELS
from ipvsctl.annotations import AFFINITY_SCOPES
from ipvsctl.backend.sysctl import STARTUP_SYSCTLS
from ipvsctl.cli.agent import BackendKind
from ipvsctl.model import DEFAULT_SCHEDULERS
from ipvsctl.options import MASQUERADE_BIT_DEFAULT, MAX_IPVS_TIMEOUT
from tests.chart.render import CHART, HelmRefusedError, render

REJECTED = [
    pytest.param({"agent": {"scheduler": "random"}}, "/agent/scheduler", id="unknown-scheduler"),
    pytest.param({"agent": {"affinityScope": "global"}}, "/agent/affinityScope", id="unknown-affinity-scope"),
    pytest.param({"agent": {"affinitySwitchDelay": 61}}, "/agent/affinitySwitchDelay", id="switch-delay-above-60"),
    pytest.param({"agent": {"persistenceNetmaskV4": 33}}, "/agent/persistenceNetmaskV4", id="netmask-v4-33"),
    pytest.param({"agent": {"persistenceNetmaskV4": 0}}, "/agent/persistenceNetmaskV4", id="netmask-v4-0"),
    pytest.param({"agent": {"persistenceNetmaskV6": 129}}, "/agent/persistenceNetmaskV6", id="netmask-v6-129"),
    pytest.param({"agent": {"persistenceNetmaskV4": "24"}}, "/agent/persistenceNetmaskV4", id="netmask-string"),
    pytest.param({"agent": {"nodePortRange": "30000:32767"}}, "/agent/nodePortRange", id="port-range-colon"),
    pytest.param({"agent": {"nodePortRange": "30000"}}, "/agent/nodePortRange", id="port-range-single"),
    pytest.param({"agent": {"externalIPCIDRs": ["203.0.113.0"]}}, "/agent/externalIPCIDRs/0", id="cidr-no-prefix"),
    pytest.param({"agent": {"externalIPCIDRs": ["10.0.0.0/33"]}}, "/agent/externalIPCIDRs/0", id="cidr-v4-33"),
    pytest.param({"agent": {"externalIPCIDRs": ["300.0.0.0/8"]}}, "/agent/externalIPCIDRs/0", id="cidr-bad-octet"),
    pytest.param({"agent": {"externalIPCIDRs": ["2001:db8::/129"]}}, "/agent/externalIPCIDRs/0", id="cidr-v6-129"),
    pytest.param({"agent": {"externalIPCIDRs": "10.0.0.0/8"}}, "/agent/externalIPCIDRs", id="cidrs-not-a-list"),
    pytest.param(
        {"agent": {"loadBalancerIPCIDRs": ["198.51.100.7"]}}, "/agent/loadBalancerIPCIDRs/0", id="lb-cidr-no-prefix"
    ),
    pytest.param(
        {"agent": {"loadBalancerIPCIDRs": "198.51.100.0/24"}}, "/agent/loadBalancerIPCIDRs", id="lb-not-a-list"
    ),
    pytest.param(
        {"agent": {"nodePortAddresses": ["main"]}}, "/agent/nodePortAddresses/0", id="nodeport-addresses-keyword"
    ),
    pytest.param(
        {"agent": {"nodePortAddresses": ["primary", "primary"]}},
        "/agent/nodePortAddresses",
        id="nodeport-addresses-repeated",
    ),
    pytest.param(
        {"agent": {"loadBalancerIPCIDRs": ["198.51.100.0/24", "198.51.100.0/24"]}},
        "/agent/loadBalancerIPCIDRs",
        id="lb-cidr-twice",
    ),
    pytest.param({"agent": {"minSyncInterval": -1}}, "/agent/minSyncInterval", id="negative-min-sync"),
    pytest.param({"agent": {"minSyncInterval": 0}}, "/agent/minSyncInterval", id="zero-min-sync"),
    pytest.param({"agent": {"resyncInterval": -30}}, "/agent/resyncInterval", id="negative-resync"),
    pytest.param({"agent": {"resyncInterval": 0.5}}, "/agent/resyncInterval", id="sub-second-resync"),
    pytest.param({"agent": {"resyncInterval": "30s"}}, "/agent/resyncInterval", id="resync-duration-string"),
    pytest.param({"agent": {"maxDrainSeconds": -1}}, "/agent/maxDrainSeconds", id="negative-drain"),
    pytest.param({"agent": {"interface": "a-very-long-interface"}}, "/agent/interface", id="interface-too-long"),
    pytest.param({"agent": {"backend": "iptables"}}, "/agent/backend", id="unknown-backend"),
    pytest.param({"agent": {"schedular": "rr"}}, "/agent", id="unknown-agent-key"),
    pytest.param({"replicas": 3}, "'replicas' not allowed", id="unknown-top-level-key"),
    pytest.param({"log": {"format": "yaml"}}, "/log/format", id="unknown-log-format"),
    pytest.param({"log": {"level": "verbose"}}, "/log/level", id="unknown-log-level"),
    pytest.param({"health": {"port": 70000}}, "/health/port", id="port-out-of-range"),
    pytest.param({"metrics": {"bindAddress": "localhost"}}, "/metrics/bindAddress", id="bind-not-an-ip"),
    pytest.param({"metrics": {"bindAddress": " "}}, "/metrics/bindAddress", id="bind-blank"),
    pytest.param({"metrics": {"monitor": {"enabled": True}}}, "/metrics", id="old-monitor-key"),
    pytest.param(
        {"prometheus": {"serviceMonitor": {"interval": "30"}}},
        "/prometheus/serviceMonitor/interval",
        id="interval-no-unit",
    ),
    pytest.param({"prometheus": {"podMonitor": {"kind": "Probe"}}}, "/prometheus/podMonitor", id="monitor-unknown-key"),
    pytest.param({"prometheus": {"probe": {"enabled": True}}}, "/prometheus", id="prometheus-unknown-key"),
    pytest.param(
        {"prometheus": {"serviceMonitor": {"relabelings": [{"target_label": "job"}]}}},
        "/prometheus/serviceMonitor/relabelings/0",
        id="relabeling-unknown-field",
    ),
    pytest.param(
        {"prometheus": {"serviceMonitor": {"metricRelabelings": [{"action": "delete"}]}}},
        "/prometheus/serviceMonitor/metricRelabelings/0/action",
        id="relabeling-unknown-action",
    ),
    pytest.param({"prometheus": {"prometheusRule": {"severity": "page"}}}, "/prometheus/prometheusRule", id="rule-key"),
    pytest.param({"agent": {"trafficMetrics": "pods"}}, "/agent/trafficMetrics", id="traffic-mode"),
    pytest.param({"agent": {"trafficMetricsMaxSeries": -1}}, "/agent/trafficMetricsMaxSeries", id="traffic-cap"),
    pytest.param({"agent": {"trafficStatsMinAge": "15s"}}, "/agent/trafficStatsMinAge", id="traffic-age-string"),
    pytest.param({"extraEnv": [{"value": "UTC"}]}, "/extraEnv/0", id="env-without-name"),
    pytest.param({"extraEnv": {"TZ": "UTC"}}, "/extraEnv", id="env-as-a-map"),
    pytest.param(
        {"extraVolumeMounts": [{"name": "kc", "mountPath": "etc"}]},
        "/extraVolumeMounts/0/mountPath",
        id="relative-mount",
    ),
    pytest.param(
        {"extraVolumeMounts": [{"name": "kc", "mountPath": "/etc/kc", "readonly": True}]},
        "/extraVolumeMounts/0",
        id="mount-typo",
    ),
    pytest.param({"extraVolumes": [{"secret": {"secretName": "kc"}}]}, "/extraVolumes/0", id="volume-without-name"),
    pytest.param({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy", id="unknown-pull-policy"),
    pytest.param({"image": {"digest": "sha256:abc"}}, "/image/digest", id="short-digest"),
    pytest.param({"image": {"tag": "1.0 beta"}}, "/image/tag", id="tag-with-space"),
    pytest.param({"image": {"registry": "ghcr.io"}}, "/image", id="unknown-image-key"),
    pytest.param({"sysctls": {"skip": ["net.ipv4.conf.all.rp_filter"]}}, "/sysctls/skip/0", id="unknown-sysctl"),
    pytest.param({"sysctls": {"mode": "privileged"}}, "/sysctls/mode", id="privileged-sysctl-mode"),
    pytest.param(
        {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 0}}},
        "/updateStrategy/rollingUpdate/maxUnavailable",
        id="unavailable-0",
    ),
    pytest.param({"updateStrategy": {"maxUnavailable": 1}}, "/updateStrategy", id="old-update-strategy-shape"),
    pytest.param({"updateStrategy": {"type": "Recreate"}}, "/updateStrategy/type", id="deployment-strategy"),
    pytest.param(
        {"updateStrategy": {"rollingUpdate": {"maxSurge": 1}}}, "/updateStrategy/rollingUpdate/maxSurge", id="surge"
    ),
    pytest.param({"dnsPolicy": "None"}, "/dnsPolicy", id="dns-none"),
    pytest.param({"resources": {"limits": {"memory": "lots"}}}, "/resources/limits/memory", id="bad-quantity"),
    pytest.param({"podLabels": {"tier": 1}}, "/podLabels/tier", id="label-not-a-string"),
    pytest.param({"agent": {"netfilter": "false"}}, "/agent/netfilter", id="netfilter-string"),
    pytest.param({"agent": {"clusterCIDRs": ["10.244.0.0"]}}, "/agent/clusterCIDRs/0", id="cluster-cidr-no-prefix"),
    pytest.param({"agent": {"clusterCIDRs": "10.244.0.0/16"}}, "/agent/clusterCIDRs", id="cluster-cidrs-not-a-list"),
    pytest.param(
        {"agent": {"clusterCIDRs": ["10.244.0.0/16", "10.244.0.0/16"]}}, "/agent/clusterCIDRs", id="cluster-cidr-twice"
    ),
    pytest.param({"agent": {"masqueradeBit": 32}}, "/agent/masqueradeBit", id="masquerade-bit-32"),
    pytest.param({"agent": {"masqueradeBit": -1}}, "/agent/masqueradeBit", id="masquerade-bit-negative"),
    pytest.param({"agent": {"masqueradeBit": "14"}}, "/agent/masqueradeBit", id="masquerade-bit-string"),
    pytest.param({"agent": {"strictARP": "yes"}}, "/agent/strictARP", id="strict-arp-string"),
    pytest.param({"agent": {"ipvsTCPTimeout": -1}}, "/agent/ipvsTCPTimeout", id="tcp-timeout-negative"),
    pytest.param({"agent": {"ipvsTCPFinTimeout": 2147484}}, "/agent/ipvsTCPFinTimeout", id="tcpfin-timeout-over"),
    pytest.param({"agent": {"ipvsUDPTimeout": 1.5}}, "/agent/ipvsUDPTimeout", id="udp-timeout-fraction"),
    pytest.param({"agent": {"ipvsUDPTimeout": "300s"}}, "/agent/ipvsUDPTimeout", id="udp-timeout-duration"),
]

ACCEPTED = [
    pytest.param({"agent": {"persistenceNetmaskV4": 1, "persistenceNetmaskV6": 1}}, id="netmask-min"),
    pytest.param({"agent": {"persistenceNetmaskV4": 32, "persistenceNetmaskV6": 128}}, id="netmask-max"),
    pytest.param({"agent": {"externalIPCIDRs": ["0.0.0.0/0", "::/0", "fd00::1/128"]}}, id="cidr-edges"),
    pytest.param({"agent": {"loadBalancerIPCIDRs": ["0.0.0.0/0", "::/0", "fd00::1/128"]}}, id="lb-cidr-edges"),
    pytest.param({"agent": {"nodePortAddresses": ["primary", "192.0.2.0/24", "2001:db8::/64"]}}, id="nodeport-addr"),
    pytest.param({"metrics": {"bindAddress": "::"}}, id="metrics-bind-v6"),
    pytest.param({"agent": {"maxDrainSeconds": 0, "minSyncInterval": 0.01}}, id="no-drain-fast-sync"),
    pytest.param({"updateStrategy": {"rollingUpdate": {"maxUnavailable": "10%"}}}, id="unavailable-percent"),
    pytest.param({"updateStrategy": {"type": "OnDelete"}}, id="on-delete"),
    pytest.param({"agent": {"trafficMetrics": "off", "trafficMetricsMaxSeries": 0}}, id="traffic-off"),
    pytest.param({"apiServer": {"host": "api.example.internal"}}, id="api-server-name"),
    pytest.param({"apiServer": {"host": "fd00::10"}}, id="api-server-v6"),
    pytest.param({"global": {"imageRegistry": "mirror.example"}}, id="parent-chart-global"),
    pytest.param({"agent": {"masqueradeBit": 0}}, id="masquerade-bit-0"),
    pytest.param({"agent": {"masqueradeBit": 31}}, id="masquerade-bit-31"),
    pytest.param({"agent": {"clusterCIDRs": ["0.0.0.0/0", "::/0"]}}, id="cluster-cidr-edges"),
    pytest.param(
        {"agent": {"ipvsTCPTimeout": 2147483, "ipvsTCPFinTimeout": 2147483, "ipvsUDPTimeout": 2147483}},
        id="timeouts-max",
    ),
    pytest.param({"agent": {"ipvsTCPTimeout": 1, "ipvsTCPFinTimeout": 0, "ipvsUDPTimeout": 1}}, id="timeouts-min"),
]


@pytest.mark.parametrize(("values", "where"), REJECTED)
def test_schema_rejects_bad_value(values: dict[str, Any], where: str) -> None:
    """helm refuses to render, and its message points at the offending value."""
    with pytest.raises(HelmRefusedError, match="schema") as refused:
        render(values)
    assert where in str(refused.value)


@pytest.mark.parametrize("values", ACCEPTED)
def test_schema_accepts_edge_value(values: dict[str, Any]) -> None:
    """Values at the edges of what is allowed still render."""
    assert render(values)


def _enum(*path: str) -> list[str]:
    node = json.loads((CHART / "values.schema.json").read_text())
    for key in path:
        node = node["properties"][key]
    enum: list[str] = node["items"]["enum"] if "items" in node else node["enum"]
    return enum


@pytest.mark.parametrize(
    ("path", "agents"),
    [
        pytest.param(("agent", "scheduler"), DEFAULT_SCHEDULERS, id="schedulers"),
        pytest.param(("agent", "affinityScope"), AFFINITY_SCOPES, id="affinity-scopes"),
        pytest.param(("log", "format"), LOG_FORMATS, id="log-formats"),
        pytest.param(("log", "level"), LOG_LEVELS, id="log-levels"),
        pytest.param(("agent", "backend"), [kind.value for kind in BackendKind], id="backends"),
        pytest.param(("sysctls", "skip"), STARTUP_SYSCTLS, id="sysctls"),
    ],
)
def test_schema_choices_are_the_agents(path: tuple[str, ...], agents: Collection[str]) -> None:
    """Each enum of the schema allows exactly what the agent accepts."""
    assert sorted(_enum(*path)) == sorted(agents)


def test_min_sync_longer_than_resync_is_refused() -> None:
    """agent.minSyncInterval above agent.resyncInterval fails the render with both values named."""
    with pytest.raises(
        HelmRefusedError, match=r"agent.minSyncInterval \(60\) must not be longer than agent.resyncInterval"
    ):
        render({"agent": {"minSyncInterval": 60, "resyncInterval": 30}})


def _definition(name: str) -> dict[str, Any]:
    definition: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())["definitions"][name]
    return definition


def test_the_timeout_range_is_the_agents() -> None:
    """ipvsTimeout allows exactly the agent's 0..MAX_IPVS_TIMEOUT, whole seconds."""
    timeout = _definition("ipvsTimeout")
    assert (timeout["type"], timeout["minimum"], timeout["maximum"]) == ("integer", 0, MAX_IPVS_TIMEOUT)


def test_the_masquerade_bit_range_is_the_agents() -> None:
    """masqueradeBit allows a bit of the 32-bit mark (the agent's 0..31), and its default is the agent's."""
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["agent"]["properties"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert (schema["masqueradeBit"]["minimum"], schema["masqueradeBit"]["maximum"]) == (0, 31)
    assert values["agent"]["masqueradeBit"] == MASQUERADE_BIT_DEFAULT
