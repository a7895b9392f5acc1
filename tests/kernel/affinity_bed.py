"""Nodes with an IPVS table each and the same clients in front of each: which server does each client get?

Each node is a namespace with the VIPs on a dummy ``ipvs0`` and a dummy ``rs0`` routing the real servers'
networks (nothing answers there: the kernel's choice is read from its connection table after the first
SYN). In front of each node a client namespace holds every client address on one veth. A probe opens one
connection from every client address and reads which real server the node's IPVS picked for it.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ipvsctl.conntable import parse_connections
from tests.kernel.netlab import Netns

VIP4 = "203.0.113.10"
VIP6 = "2001:db8:f::10"
CLIENTS4 = tuple(f"192.0.2.{last}" for last in range(2, 252))  # 250
CLIENTS6 = tuple(f"2001:db8:c::{index:x}" for index in range(1, 751))  # 750: 1,000 clients in all
CLIENTS = CLIENTS4 + CLIENTS6
WARM = tuple(f"2001:db8:c::{index:x}" for index in range(0x1001, 0x1001 + 250))  # connections kept open elsewhere
SETTLE_SECONDS = 5.0  # bound on waiting for a probe's entries to show in the connection table


@dataclass(frozen=True, slots=True)
class Node:
    """A node namespace and the client namespace in front of it."""

    name: str
    node: Netns
    clients: Netns


def build_node(new_netns: Callable[[Sequence[str]], list[Netns]], *, name: str) -> Node:
    """A node with VIPs and real-server routes, and a client namespace holding every client address."""
    node, clients = new_netns([f"{name}", f"{name}c"])
    node.ip("link", "add", "ipvs0", "type", "dummy")
    node.ip("link", "add", "rs0", "type", "dummy")
    node.ip("link", "add", "up0", "type", "veth", "peer", "name", "down0", "netns", clients.name)
    commands = [
        "link set ipvs0 up",
        "link set rs0 up",
        "link set up0 up",
        f"addr add {VIP4}/32 dev ipvs0",
        f"addr add {VIP6}/128 dev ipvs0 nodad",
        "addr add 192.0.2.254/24 dev up0",
        "addr add 2001:db8:c::fffe/64 dev up0 nodad",
        "route add 198.51.100.0/24 dev rs0",
        "route add 2001:db8:5::/64 dev rs0",
    ]
    node.ip("-batch", "-", input="".join(f"{line}\n" for line in commands))
    client_commands = ["link set down0 up"]
    client_commands += [f"addr add {address}/24 dev down0" for address in CLIENTS4]
    client_commands += [f"addr add {address}/64 dev down0 nodad" for address in CLIENTS6 + WARM]
    client_commands += [f"route add {VIP4}/32 via 192.0.2.254", f"route add {VIP6}/128 via 2001:db8:c::fffe"]
    clients.ip("-batch", "-", input="".join(f"{line}\n" for line in client_commands))
    node.sysctl("net.ipv4.ip_forward", "1")
    node.sysctl("net.ipv6.conf.all.forwarding", "1")
    return Node(name, node, clients)


def _connect_once(client: str, vip: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in client else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setblocking(False)
        sock.bind((client, 0))
        code = sock.connect_ex((vip, port))  # the SYN is sent now; closing a SYN_SENT socket sends nothing
        if code not in (errno.EINPROGRESS, 0):
            raise OSError(code, f"connect from {client} to {vip}: {errno.errorcode.get(code, code)}")


def probe(node: Node, *, port: int, clients: Sequence[str] = CLIENTS) -> dict[str, str]:
    """One new connection from every client address to the VIPs' ``port``: the real server chosen for each."""
    with node.clients.entered():
        for client in clients:
            _connect_once(client, VIP6 if ":" in client else VIP4, port)
    wanted = set(clients)
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        chosen = {
            entry.client_address: entry.real_address
            for entry in parse_connections(node.node.proc_net("ip_vs_conn"))
            if not entry.is_template and entry.virtual_port == port and entry.client_address in wanted
        }
        if len(chosen) == len(wanted) or time.monotonic() > deadline:
            return chosen
        time.sleep(0.2)


def agreement(choices: Sequence[dict[str, str]]) -> float:
    """The share of clients that every node sent to one real server."""
    clients = set().union(*choices)
    same = sum(1 for client in clients if len({each.get(client) for each in choices}) == 1)
    return same / len(clients)
