"""The two proxies' command lines in the side-by-side bench (issue 18). Pure.

Both run with their defaults for what they decide (scheduler, sync periods, minimum sync interval) and
only the flags a node needs: its name, its address for health checks, the pod network for masquerading,
the kubeconfig. kube-proxy is also told to leave the host-wide conntrack table size alone
(`--conntrack-max-per-core=0`: the lab's guest is one machine shared by both) and not to lower its own
OOM score (the bench reads its RSS, it does not protect it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

HEALTH_PORT = 10256
METRICS_BIND = "127.0.0.1:10249"
# What kube-proxy's IPVS mode checks /proc/modules for before it starts (v1.20, kernel >= 4.19); its own
# `modprobe` cannot find the lab kernel's modules, so the bench loads them first.
KUBE_PROXY_MODULES = ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack")


def in_netns(netns: str, argv: Sequence[str]) -> list[str]:
    """`argv` run inside a named network namespace (`ip netns exec` execs it: the PID stays the command's)."""
    return ["ip", "netns", "exec", netns, *argv]


def kube_proxy_argv(*, binary: Path, kubeconfig: Path, node: str, node_ip: str, cluster_cidr: str) -> list[str]:
    """kube-proxy in IPVS mode for one node."""
    return [
        str(binary),
        "--proxy-mode=ipvs",
        f"--kubeconfig={kubeconfig}",
        f"--hostname-override={node}",
        f"--bind-address={node_ip}",
        f"--healthz-bind-address={node_ip}:{HEALTH_PORT}",
        f"--metrics-bind-address={METRICS_BIND}",
        f"--cluster-cidr={cluster_cidr}",
        "--conntrack-max-per-core=0",
        "--oom-score-adj=0",
        "--v=2",
    ]


def agent_argv(*, ipvsctl: Path, kubeconfig: Path, node: str, node_ip: str, cluster_cidr: str) -> list[str]:
    """ipvsctl's agent (netlink backend) for one node."""
    return [
        str(ipvsctl),
        "agent",
        *("--kubeconfig", str(kubeconfig), "--node-name", node),
        *("--health-bind", f"{node_ip}:{HEALTH_PORT}", "--health-check-address", node_ip),
        *("--metrics-bind", METRICS_BIND, "--cluster-cidr", cluster_cidr),
        *("--log-format", "json"),
    ]
