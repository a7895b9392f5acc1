"""Sets of chart values shared by the chart tests."""

from __future__ import annotations

from typing import Any

import pytest

__all__ = ["NON_DEFAULT", "VALUE_SETS"]

# Values far from the defaults: every option that changes what is rendered is on or changed.
NON_DEFAULT: dict[str, Any] = {
    "image": {"digest": "sha256:" + "ab" * 32, "pullPolicy": "Always"},
    "imagePullSecrets": ["registry-credentials"],
    "agent": {
        "interface": "kube-ipvs1",
        "scheduler": "mh",
        "persistenceNetmaskV4": 24,
        "persistenceNetmaskV6": 64,
        "nodePortRange": "20000-22767",
        "externalIPCIDRs": ["203.0.113.0/24", "2001:db8::/64"],
        "loadBalancerIPCIDRs": ["198.51.100.0/24", "2001:db8:1::/64"],
        "nodePortAddresses": ["primary", "192.0.2.0/24"],
        "minSyncInterval": 0.5,
        "resyncInterval": 120,
        "maxDrainSeconds": 0,
        "healthCheckAddress": "::",
        "backend": "memory",
        "netfilter": False,
        "clusterCIDRs": ["10.244.0.0/16", "fd00:10:244::/56"],
        "masqueradeBit": 5,
        "strictARP": True,
        "ipvsTCPTimeout": 3600,
        "ipvsTCPFinTimeout": 30,
        "ipvsUDPTimeout": 7,
        "trafficMetrics": "endpoint",
        "trafficMetricsMaxSeries": 5000,
        "trafficStatsMinAge": 30,
        "extraArgs": ["--kubeconfig=/etc/ipvsctl/kubeconfig"],
    },
    "apiServer": {"host": "192.0.2.10", "port": 443},
    "health": {"bindAddress": "::", "port": 20256},
    "metrics": {"port": 20249},
    "prometheus": {
        "serviceMonitor": {
            "enabled": True,
            "labels": {"release": "kube-prometheus-stack"},
            "annotations": {"example.com/owner": "network"},
            "jobLabel": "app.kubernetes.io/name",
            "relabelings": [{"targetLabel": "job", "replacement": "kube-proxy"}],
            "metricRelabelings": [{"sourceLabels": ["__name__"], "regex": "ipvsctl_endpoint_.*", "action": "drop"}],
        },
        "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    },
    "log": {"format": "console", "level": "debug"},
    "sysctls": {"skip": ["net.ipv4.ip_forward"]},
    "modules": {"load": True},
    "serviceAccount": {"name": "lb-agent", "annotations": {"example.com/owner": "network"}},
    "dnsPolicy": "Default",
    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}},
    "podAnnotations": {"example.com/scrape": "false"},
    "priorityClassName": "network-critical",
    "extraEnv": [{"name": "TZ", "value": "UTC"}],
    "extraVolumes": [{"name": "kubeconfig", "secret": {"secretName": "ipvsctl-kubeconfig"}}],
    "extraVolumeMounts": [{"name": "kubeconfig", "mountPath": "/etc/ipvsctl", "readOnly": True}],
    "podLabels": {"team": "network"},
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "lb", "operator": "In", "values": ["ipvsctl"]}]}]
            }
        }
    },
}

VALUE_SETS: list[Any] = [
    pytest.param(None, id="defaults"),
    pytest.param(NON_DEFAULT, id="non-default"),
    pytest.param({"prometheus": {"podMonitor": {"enabled": True}}}, id="pod-monitor"),
    pytest.param({"metrics": {"service": {"enabled": True}}}, id="metrics-service"),
    pytest.param({"sysctls": {"mode": "none"}, "rbac": {"create": False}}, id="no-init-no-rbac"),
    pytest.param({"agent": {"strictARP": True}, "sysctls": {"mode": "none"}}, id="strict-arp-no-init"),
]
