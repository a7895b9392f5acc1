"""Start-up settings on the real kernel: `--strict-arp`'s sysctls, the IPVS timeouts, and the agent container's
privileges (issue 15).

`ipvsadm -L --timeout` and the namespace's /proc/sys are the oracles. The last test runs `ipvsctl apply` as the
chart runs the agent: CAP_NET_ADMIN alone (no other capability, no new privileges) and no writable path at
all, /proc/sys included; it programs IPVS, the timeouts and the nftables table (through `nft`) all the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ipvsctl.backend.sysctl import STARTUP_SYSCTLS, STRICT_ARP_SYSCTLS
from tests.kernel.netlab import Netns
from tests.kernel.scenario_support import (
    IPVSCTL,
    NODE_IP,
    NODE_NAME,
    Agent,
    endpoint_slice,
    give_node_addresses,
    node,
    saved_rules,
    service,
)

pytestmark = pytest.mark.kernel

OBJECTS = [
    node(NODE_NAME, NODE_IP),
    service("web", cluster_ips=["203.0.113.31"]),
    endpoint_slice("web", endpoints={"198.51.100.11": NODE_NAME}, target_port=8080),
]
WEB_RULE = "-A -t 203.0.113.31:80 -s rr"
ARP = tuple(STRICT_ARP_SYSCTLS)
NET_ADMIN = 1 << 12  # CAP_NET_ADMIN's bit in CapEff
# As a container runtime starts the chart's agent: every mount read-only in a mount namespace of its own
# (/proc/sys too, as for any unprivileged container), then only CAP_NET_ADMIN and no_new_privs. A path still
# writable fails the run with exit 99 before the command starts.
AS_THE_AGENT_CONTAINER = r"""
set -u
for target in $(awk '$4 ~ /(^|,)rw(,|$)/ && $2 !~ "^/proc" {print $2}' /proc/self/mounts); do
    mount -o remount,bind,ro "$target"
done
mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys
for directory in /tmp /run /dev/shm "$HOME"; do
    if touch "$directory/.rw-probe" 2>/dev/null; then echo "$directory is writable" >&2; exit 99; fi
done
if (echo 1 >/proc/sys/net/ipv4/ip_forward) 2>/dev/null; then echo "/proc/sys is writable" >&2; exit 99; fi
exec setpriv --bounding-set=-all,+net_admin --inh-caps=-all --no-new-privs -- "$@"
"""


def timeouts(netns: Netns) -> str:
    """`ipvsadm -L --timeout`'s one line: `Timeout (tcp tcpfin udp): TCP TCPFIN UDP`."""
    return netns.ipvsadm("-L", "--timeout").strip()


def arp(netns: Netns) -> tuple[str, str]:
    """arp_ignore and arp_announce of all interfaces in the namespace."""
    return netns.sysctl(ARP[0]), netns.sysctl(ARP[1])


@pytest.fixture
def agent(netns: Netns, tmp_path: Path) -> Agent:
    """`ipvsctl` on a node with its addresses, the web Service in its manifests, timeouts not the kernel's own
    defaults (so that "left alone" cannot be mistaken for "reset"), and arp_* at 0."""
    give_node_addresses(netns)
    netns.ipvsadm("--set", "1000", "100", "50")
    assert arp(netns) == ("0", "0")
    return Agent.create(netns, tmp_path / "objects.json", OBJECTS)


def test_apply_sets_the_udp_timeout_and_leaves_the_others(agent: Agent) -> None:
    """`apply --ipvs-udp-timeout 7`: udp becomes 7 s, tcp and tcpfin stay as they were (the 0s keep them); an
    apply without the flag changed none of them."""
    agent.apply()
    untouched = timeouts(agent.netns)

    agent.apply("--ipvs-udp-timeout", "7")

    assert untouched == "Timeout (tcp tcpfin udp): 1000 100 50"
    assert timeouts(agent.netns) == "Timeout (tcp tcpfin udp): 1000 100 7"


def test_apply_sets_every_timeout_given(agent: Agent) -> None:
    """`apply` with all three timeout flags sets all three."""
    agent.apply("--ipvs-tcp-timeout", "3600", "--ipvs-tcpfin-timeout", "30", "--ipvs-udp-timeout", "5")

    assert timeouts(agent.netns) == "Timeout (tcp tcpfin udp): 3600 30 5"


def test_apply_with_strict_arp_sets_arp_ignore_and_arp_announce(agent: Agent) -> None:
    """`apply --strict-arp` sets net.ipv4.conf.all.arp_ignore=1 and arp_announce=2 in the node's namespace; an
    apply without the flag left both at 0."""
    agent.apply()
    untouched = arp(agent.netns)

    agent.apply("--strict-arp")

    assert untouched == ("0", "0")
    assert arp(agent.netns) == ("1", "2")


def test_the_agent_sets_strict_arp_and_the_timeouts_at_start_up(agent: Agent) -> None:
    """The agent sets --strict-arp's sysctls and its timeouts, logging each, before it reaches the cluster (here
    an unreadable kubeconfig stops it right after)."""
    done = agent.netns.run(
        IPVSCTL,
        "agent",
        "--node-name",
        NODE_NAME,
        "--kubeconfig",
        "/nonexistent/kubeconfig",
        "--interface",
        agent.interface,
        "--strict-arp",
        "--ipvs-tcp-timeout",
        "1800",
        check=False,
        timeout=180,
    )

    entries = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 2, done.stdout + done.stderr
    assert {entry["name"] for entry in entries if entry["event"] == "sysctl_set"} >= set(ARP)
    (changed,) = [entry for entry in entries if entry["event"] == "ipvs_timeouts_set"]
    assert (changed["previous"], changed["value"]) == (
        "tcp 1000 s, tcpfin 100 s, udp 50 s",
        "tcp 1800 s, tcpfin 100 s, udp 50 s",
    )
    assert entries[-1]["event"] == "agent_failed"
    assert arp(agent.netns) == ("1", "2")
    assert timeouts(agent.netns) == "Timeout (tcp tcpfin udp): 1800 100 50"


def test_the_agent_containers_privileges_are_enough(agent: Agent) -> None:
    """With only CAP_NET_ADMIN, no new privileges and nothing writable, `apply` (as the chart's agent: every
    start-up sysctl skipped) programs IPVS, sets a timeout and writes the nftables table with `nft`."""
    netns = agent.netns
    for name, value in STARTUP_SYSCTLS.items():
        netns.sysctl(name, value)  # kernel-setup's job in the chart
    capabilities = netns.run(
        "unshare", "--mount", "sh", "-c", AS_THE_AGENT_CONTAINER, "wrapper", "cat", "/proc/self/status"
    )
    skipped = [f"--no-sysctl={name}" for name in STARTUP_SYSCTLS]

    done = netns.run(
        "unshare",
        "--mount",
        "sh",
        "-c",
        AS_THE_AGENT_CONTAINER,
        "wrapper",
        IPVSCTL,
        "apply",
        "-f",
        str(agent.manifests),
        "--node",
        NODE_NAME,
        "--interface",
        agent.interface,
        *skipped,
        "--ipvs-udp-timeout",
        "7",
        check=False,
        timeout=180,
    )

    effective = next(line for line in capabilities.stdout.splitlines() if line.startswith("CapEff:"))
    assert int(effective.split()[1], 16) == NET_ADMIN
    assert done.returncode == 0, done.stdout + done.stderr
    assert WEB_RULE in saved_rules(netns)
    assert timeouts(netns) == "Timeout (tcp tcpfin udp): 1000 100 7"
    assert "203.0.113.31" in netns.run("nft", "list", "table", "inet", "ipvsctl").stdout
