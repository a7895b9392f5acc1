"""The kernel's mh scheduler against ipvsctl.maglev: the same choice for every client, and what decides it."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import pytest

from ipvsctl.affinity_scope import CLUSTER_FLAGS
from ipvsctl.backend.kernel import NetlinkBackend
from ipvsctl.conntable import parse_connections
from ipvsctl.maglev import Destination, MaglevTable
from ipvsctl.model import (
    AddRealServer,
    DeleteRealServer,
    Persistence,
    Protocol,
    RealServer,
    ServiceKey,
    VirtualService,
)
from tests.contract.values import creation
from tests.kernel.affinity_bed import CLIENTS, CLIENTS4, VIP4, VIP6, Node, build_node, probe
from tests.kernel.netlab import Lab, Netns
from tests.kernel.scenario_support import IPVSCTL

pytestmark = pytest.mark.kernel

REALS4 = tuple(f"198.51.100.{last}" for last in range(11, 21))
REALS6 = tuple(f"2001:db8:5::{last:x}" for last in range(0x11, 0x1B))
REAL_PORT = 8080


def _new_netns(lab: Lab) -> Callable[[Sequence[str]], list[Netns]]:
    return lambda roles: [lab.netns(role) for role in roles]


@pytest.fixture
def node(lab: Lab) -> Node:
    """One node and its 1,000 clients."""
    return build_node(_new_netns(lab), name="n1")


def _vip(real: str) -> str:
    return VIP6 if ":" in real else VIP4


def _add_service(node: Node, *, port: int, flags: str = "mh-fallback") -> None:
    for vip in (VIP4, VIP6):
        node.node.ipvsadm("-A", "-t", f"[{vip}]:{port}" if ":" in vip else f"{vip}:{port}", "-s", "mh", "-b", flags)


def _target(vip: str, port: int) -> str:
    return f"[{vip}]:{port}" if ":" in vip else f"{vip}:{port}"


def _add_real(node: Node, real: str, *, port: int, weight: int = 1) -> None:
    rs = f"[{real}]:{REAL_PORT}" if ":" in real else f"{real}:{REAL_PORT}"
    node.node.ipvsadm("-a", "-t", _target(_vip(real), port), "-r", rs, "-m", "-w", str(weight))


def _edit_real(node: Node, real: str, *, port: int, weight: int) -> None:
    rs = f"[{real}]:{REAL_PORT}" if ":" in real else f"{real}:{REAL_PORT}"
    node.node.ipvsadm("-e", "-t", _target(_vip(real), port), "-r", rs, "-m", "-w", str(weight))


def _listed(node: Node, *, vip: str, port: int) -> list[tuple[str, int]]:
    """The service's real servers and weights in the order ipvsadm -Sn prints them."""
    wanted = f"-a -t {_target(vip, port)} "
    found = []
    for line in node.node.ipvsadm("-Sn").splitlines():
        if line.startswith(wanted):
            words = line.split()
            address = words[words.index("-r") + 1].rsplit(":", 1)[0].strip("[]")
            found.append((address, int(words[words.index("-w") + 1])))
    return found


def _kernel_order(node: Node, *, vip: str, port: int) -> list[tuple[str, int]]:
    """The order the mh table walks the real servers in: newest first, the reverse of ipvsadm's listing."""
    return list(reversed(_listed(node, vip=vip, port=port)))


def _mismatches(node: Node, port: int, tables: dict[str, MaglevTable]) -> list[str]:
    chosen = probe(node, port=port)
    assert len(chosen) == len(CLIENTS), f"{len(chosen)} of {len(CLIENTS)} clients got a connection entry"
    wrong = []
    for client, real in chosen.items():
        picked = tables[_vip(client)].choose(client)
        if picked is None or picked.address != real:
            wrong.append(f"{client}: kernel {real}, model {picked}")
    return wrong


def test_ipvsadm_lists_real_servers_oldest_first(node: Node) -> None:
    """ipvsadm lists real servers in the order they were added (the mh table walks them newest first)."""
    _add_service(node, port=81)
    for real in REALS4[:3]:
        _add_real(node, real, port=81)

    assert [address for address, _ in _listed(node, vip=VIP4, port=81)] == list(REALS4[:3])


def test_the_model_chooses_as_the_kernel_for_every_client(node: Node) -> None:
    """1,000 clients (IPv4 and IPv6), 10 weighted servers each: the model's choice is the kernel's for all."""
    _add_service(node, port=82)
    weights = (1, 2, 3, 1, 1, 5, 1, 2, 1, 1)
    for reals in (REALS4, REALS6):
        for real, weight in zip(reals, weights, strict=True):
            _add_real(node, real, port=82, weight=weight)
    tables = {
        vip: MaglevTable.build(
            [Destination(a, REAL_PORT, w, w) for a, w in _kernel_order(node, vip=vip, port=82)], fallback=True
        )
        for vip in (VIP4, VIP6)
    }

    assert _mismatches(node, 82, tables) == []


def test_a_drained_server_keeps_its_slots_and_fallback_rehashes_its_clients(node: Node) -> None:
    """Edited to weight 0 a server keeps its slots (last_weight); mh-fallback sends its clients as the model says."""
    _add_service(node, port=83)
    for reals in (REALS4, REALS6):
        for real in reals:
            _add_real(node, real, port=83)
        _edit_real(node, reals[4], port=83, weight=0)
    tables = {
        vip: MaglevTable.build(
            [Destination(a, REAL_PORT, w, 1) for a, w in _kernel_order(node, vip=vip, port=83)], fallback=True
        )
        for vip in (VIP4, VIP6)
    }

    assert _mismatches(node, 83, tables) == []


def test_a_server_added_with_weight_0_has_no_slots(node: Node) -> None:
    """Added with weight 0 a server takes no slot: the table is that of the other servers alone."""
    _add_service(node, port=84)
    for reals in (REALS4, REALS6):
        for real in reals[:-1]:
            _add_real(node, real, port=84)
        _add_real(node, reals[-1], port=84, weight=0)
    tables = {
        vip: MaglevTable.build(
            [Destination(a, REAL_PORT, w, w) for a, w in _kernel_order(node, vip=vip, port=84) if w > 0],
            fallback=True,
        )
        for vip in (VIP4, VIP6)
    }

    assert _mismatches(node, 84, tables) == []


async def test_a_real_server_deleted_and_added_back_keeps_its_connections(node: Node) -> None:
    """Delete + add in one apply (a move): the trash gives the server back with its connections and counts."""
    key = ServiceKey(Protocol.TCP, VIP4, 85)
    reals = tuple(RealServer(address, REAL_PORT) for address in REALS4[:3])
    service = VirtualService(
        key, scheduler="mh", sched_flags=CLUSTER_FLAGS, persistence=Persistence(300, 32), reals=reals
    )
    async with NetlinkBackend(netns=node.node.name) as backend:
        assert (await backend.apply(creation(service))).ok
        probe(node, port=85, clients=CLIENTS[:250])
        before = (await backend.read()).connections[key, reals[1].key]
        report = await backend.apply([DeleteRealServer(key, reals[1]), AddRealServer(key, reals[1])])
        after = (await backend.read()).connections[key, reals[1].key]
    entries = [e for e in parse_connections(node.node.proc_net("ip_vs_conn")) if e.real_address == reals[1].address]

    assert report.ok
    assert before.total > 0
    assert after == before
    assert len(entries) == before.total  # its connections and templates (counted as inactive) all still there


async def test_ipvsctl_affinity_names_the_kernels_choice(node: Node) -> None:
    """ipvsctl affinity --client: the cluster-wide choice it prints is the server the kernel picked."""
    key = ServiceKey(Protocol.TCP, VIP4, 86)
    reals = tuple(RealServer(address, REAL_PORT) for address in REALS4)
    service = VirtualService(
        key, scheduler="mh", sched_flags=CLUSTER_FLAGS, persistence=Persistence(300, 32), reals=reals
    )
    async with NetlinkBackend(netns=node.node.name) as backend:
        assert (await backend.apply(creation(service))).ok
    clients = CLIENTS4[:3]
    chosen = probe(node, port=86, clients=clients)
    said = {}
    for client in clients:
        done = node.node.run(IPVSCTL, "affinity", "--client", client, "--vip", f"{VIP4}:86", "-o", "json")
        (choice,) = json.loads(done.stdout)["clusterChoices"]
        said[client] = choice["realServer"]["address"]

    assert said == chosen
