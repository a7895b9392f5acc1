"""`--interface` naming a link that is not a dummy: every command stops at start-up and leaves it as it was.

The node's namespace holds a veth with the node's own addresses and a hand-made IPVS service on one of them:
if those addresses were taken for the agent's VIPs, a bind would strip them and `cleanup` would delete the
service and the veth. Each command must exit 2 with one line before it reads, binds or deletes anything.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

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

VETH = "v-agent"
VETH_ADDRESSES = ("198.51.100.7/24", "2001:db8:7::7/64")
HAND_MADE = ("-t", "198.51.100.7:80", "-s", "rr")
REFUSAL = f"error: {VETH}: is an interface of kind 'veth', not a dummy"
OBJECTS = [
    node(NODE_NAME, NODE_IP),
    service("web", cluster_ips=["203.0.113.31"]),
    endpoint_slice("web", endpoints={"198.51.100.11": NODE_NAME}, target_port=8080),
]
COMMANDS = {
    "apply": ("apply", "-f", "{manifests}", "--node", NODE_NAME),
    "diff": ("diff", "-f", "{manifests}", "--node", NODE_NAME),
    "show": ("show",),
    "affinity": ("affinity",),
    "cleanup": ("cleanup", "--node-ip", NODE_IP),
}


def _veth(netns: Netns) -> dict[str, object]:
    """The veth as `ip -d addr` shows it: kind, flags and every address with its prefix length."""
    (link,) = json.loads(netns.ip("-j", "-d", "addr", "show", "dev", VETH))
    return {
        "kind": link["linkinfo"]["info_kind"],
        "flags": sorted(link["flags"]),
        "addresses": sorted(f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"]),
    }


@pytest.fixture
def node_with_a_veth(netns: Netns) -> Netns:
    """The node's namespace: a veth holding the node's addresses, and a hand-made IPVS service on one of them."""
    netns.ip(
        "-batch",
        "-",
        input=(
            f"link add {VETH} type veth peer name v-peer\n"
            f"addr add {VETH_ADDRESSES[0]} dev {VETH}\n"
            f"addr add {VETH_ADDRESSES[1]} dev {VETH} nodad\n"
        ),
    )
    netns.ipvsadm("-A", *HAND_MADE)
    return netns


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_a_command_on_a_veth_exits_2_and_leaves_it_alone(
    node_with_a_veth: Netns, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """The command exits 2 with one line naming the veth and its kind; the veth, its addresses and the table stay."""
    netns = node_with_a_veth
    agent = Agent.create(netns, tmp_path / "objects.json", OBJECTS)
    before = (_veth(netns), saved_rules(netns))
    argv = [part.format(manifests=agent.manifests) for part in command]

    done = netns.run(IPVSCTL, *argv, "--interface", VETH, check=False)

    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(REFUSAL)
    assert done.stdout == ""
    assert (_veth(netns), saved_rules(netns)) == before


def test_the_agent_on_a_veth_exits_2_at_start_up(node_with_a_veth: Netns) -> None:
    """`ipvsctl agent --interface VETH` fails before it starts its loop; the veth and the table stay."""
    netns = node_with_a_veth
    before = (_veth(netns), saved_rules(netns))

    done = netns.run(IPVSCTL, "agent", "--node-name", NODE_NAME, "--interface", VETH, check=False, timeout=120)

    entries = [json.loads(line) for line in done.stdout.splitlines() + done.stderr.splitlines()]
    assert done.returncode == 2, done.stdout + done.stderr
    assert [entry["event"] for entry in entries] == ["agent_failed"]
    assert f"{VETH}: is an interface of kind 'veth', not a dummy" in entries[-1]["error"]
    assert (_veth(netns), saved_rules(netns)) == before


SYSCTL = "net.ipv4.vs.expire_quiescent_template"


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(("apply", "-f", "{manifests}", "--node", NODE_NAME), id="apply"),
        pytest.param(("agent", "--node-name", NODE_NAME), id="agent"),
    ],
)
def test_a_refused_interface_leaves_the_startup_sysctls_as_they_were(
    node_with_a_veth: Netns, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """apply and the agent check the interface before they set a start-up sysctl: a refusal changes none."""
    netns = node_with_a_veth
    netns.sysctl(SYSCTL, "0")
    agent = Agent.create(netns, tmp_path / "objects.json", OBJECTS)
    argv = [part.format(manifests=agent.manifests) for part in command]

    done = netns.run(IPVSCTL, *argv, "--interface", VETH, check=False, timeout=120)

    assert done.returncode == 2, done.stdout + done.stderr
    assert netns.sysctl(SYSCTL) == "0"


def test_cleanup_deletes_a_dummy_and_says_so(netns: Netns, tmp_path: Path) -> None:
    """After an apply, cleanup reports the dummy it deleted; a second cleanup reports there was none."""
    give_node_addresses(netns)
    agent = Agent.create(netns, tmp_path / "objects.json", OBJECTS)
    agent.apply()

    first = agent.cleanup("--node-ip", NODE_IP)
    second: subprocess.CompletedProcess[str] = agent.run("cleanup", "--interface", agent.interface)

    assert first["interface"] == {"name": agent.interface, "deleted": True}
    assert f"interface {agent.interface}: absent, nothing to delete" in second.stdout.splitlines()
