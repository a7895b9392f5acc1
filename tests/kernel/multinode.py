"""Several nodes on one LAN, pods behind each, clients outside: a small cluster of namespaces in the lab VM.

    clients 192.0.2.100.. ─┐
    node k  192.0.2.1k   ──┤ LAN: a bridge in its own namespace (192.0.2.0/24, 2001:db8:a::/64)
                            │
    node k ── veth per pod ── pod 198.51.100.(64(k-1) + 10 + j)   (node k's pod CIDR: 198.51.100.64(k-1)/26,
                                                                   and 2001:db8:b:k::/64 for pods given IPv6)

As a simple CNI would: each pod has its address as /32 and a default route to 169.254.1.1, the node side of
its veth (IPv6: its /128 and a default route to fe80::1, the node side's link-local address); each node
routes its own pods' addresses to their veths and the other nodes' pod CIDRs of both families to those
nodes' LAN addresses. Clients reach nodes on the LAN, and the VIP range 203.0.113.0/24 through the first node.
Every name, address and route is the test's own; the namespaces go with the ``Lab`` that made them.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address

from tests.kernel.netlab import Lab, Netns, delete_netns, run_command

MAX_INTERFACE_NAME = 15  # IFNAMSIZ - 1
LAN = "192.0.2.0/24"
LAN6 = "2001:db8:a::/64"
POD_NETWORK = IPv4Network("198.51.100.0/24")
POD_NETWORK6 = IPv6Network("2001:db8:b::/48")  # node k's pods: 2001:db8:b:k::/64
POD_GATEWAY = "169.254.1.1"  # the node side of every pod's veth (link-local, as Calico does)
POD_GATEWAY6 = "fe80::1"
VIP_RANGE = "203.0.113.0/24"


@dataclass(frozen=True, slots=True)
class Pod:
    """A pod: its namespace, name, address (and IPv6 address, when it has one) and node."""

    netns: Netns
    name: str
    ip: str
    node: str
    ip6: str = ""


@dataclass(frozen=True, slots=True)
class Node:
    """A node: its namespace (own IPVS table), name, LAN addresses and pod CIDRs."""

    netns: Netns
    name: str
    ip: str
    ip6: str
    pod_cidr: str
    pod_cidr6: str = ""


@dataclass(frozen=True, slots=True)
class Client:
    """A client outside the cluster, on the LAN."""

    netns: Netns
    name: str
    ip: str
    ip6: str = ""


@dataclass(frozen=True, slots=True)
class Cluster:
    """The LAN, its nodes with their pods, and the clients."""

    lan: Netns
    nodes: tuple[Node, ...]
    pods: tuple[Pod, ...]
    clients: tuple[Client, ...]

    def pods_of(self, node: str) -> list[Pod]:
        """The pods on one node."""
        return [pod for pod in self.pods if pod.node == node]

    def pod(self, name: str) -> Pod:
        """A pod by name."""
        return next(pod for pod in self.pods if pod.name == name)


def build_cluster(lab: Lab, *, nodes: int = 2, pods_per_node: int = 2, clients: int = 2) -> Cluster:
    """Create and wire the namespaces (see the module docstring)."""
    if not 1 <= nodes <= 3 or not 0 <= pods_per_node <= 20 or not 1 <= clients <= 20:
        raise ValueError("1..3 nodes, 0..20 pods per node (add_pod adds more), 1..20 clients")
    lan = lab.netns("lan")
    lan.ip("link", "add", "br0", "type", "bridge")
    lan.ip("link", "set", "br0", "up")
    node_list = []
    for k in range(1, nodes + 1):
        cidr = str(list(POD_NETWORK.subnets(new_prefix=26))[k - 1])
        cidr6 = str(IPv6Network((int(POD_NETWORK6.network_address) + (k << 64), 64)))
        node_list.append(
            Node(lab.netns(f"node{k}"), f"node{k}", f"192.0.2.{10 + k}", f"2001:db8:a::{10 + k}", cidr, cidr6)
        )
    client_list = [
        Client(lab.netns(f"client{c}"), f"client{c}", f"192.0.2.{99 + c}", f"2001:db8:a::{99 + c}")
        for c in range(1, clients + 1)
    ]
    members = [(n.netns, n.ip, n.ip6) for n in node_list]
    members += [(c.netns, c.ip, c.ip6) for c in client_list]
    for index, (netns, address, address6) in enumerate(members):
        attach_to_lan(lan, netns, port=f"lan{index}", address=address, address6=address6)
    pod_list: list[Pod] = []
    for k, node in enumerate(node_list, start=1):
        node.netns.sysctl("net.ipv4.ip_forward", "1")
        node.netns.sysctl("net.ipv6.conf.all.forwarding", "1")
        others = [other for other in node_list if other is not node]
        routes = [f"route add {other.pod_cidr} via {other.ip}" for other in others]
        routes += [f"route add {other.pod_cidr6} via {other.ip6}" for other in others]
        node.netns.ip("-batch", "-", input="".join(f"{route}\n" for route in routes))
        first = IPv4Network(node.pod_cidr).network_address
        pod_list += [
            add_pod(lab, node, name=f"pod{k}{chr(ord('a') + j - 1)}", ip=str(first + 9 + j))
            for j in range(1, pods_per_node + 1)
        ]
    for client in client_list:
        client.netns.ip("route", "add", VIP_RANGE, "via", node_list[0].ip)
        client.netns.ip("route", "add", str(POD_NETWORK), "via", node_list[0].ip)
    return Cluster(lan=lan, nodes=tuple(node_list), pods=tuple(pod_list), clients=tuple(client_list))


def attach_to_lan(lan: Netns, netns: Netns, *, port: str, address: str, address6: str) -> None:
    """Plug `netns` into the LAN bridge: its `lan0` gets the addresses, the bridge's side is named `port`."""
    lan.ip("link", "add", port, "type", "veth", "peer", "name", "lan0", "netns", netns.name)
    lan.ip("link", "set", port, "master", "br0")
    lan.ip("link", "set", port, "up")
    netns.ip(
        "-batch",
        "-",
        input=f"addr add {address}/24 dev lan0\naddr add {address6}/64 dev lan0 nodad\nlink set lan0 up\n",
    )


def attach_caller_to_lan(lan: Netns, *, interface: str, address: str) -> None:
    """Plug the calling process's own namespace (the lab guest's root one) into the LAN as `interface`.

    Deleting the LAN's namespace takes the link away with it.
    """
    port = f"{interface[: MAX_INTERFACE_NAME - 2]}-p"
    run_command(["ip", "link", "add", interface, "type", "veth", "peer", "name", port, "netns", lan.name])
    lan.ip("link", "set", port, "master", "br0")
    lan.ip("link", "set", port, "up")
    run_command(["ip", "-batch", "-"], input=f"addr add {address}/24 dev {interface}\nlink set {interface} up\n")


def add_pod(lab: Lab, node: Node, *, name: str, ip: str, ip6: str = "") -> Pod:
    """A pod namespace behind `node`, as a simple CNI wires one: a veth, the pod's /32 (and /128 with `ip6`)
    and its routes."""
    veth = f"p-{name}"
    if len(veth) > MAX_INTERFACE_NAME or ip_address(ip) not in IPv4Network(node.pod_cidr):
        raise ValueError(f"pod {name!r} at {ip}: the name must fit an interface name, the address {node.pod_cidr}")
    if ip6 and (not node.pod_cidr6 or ip_address(ip6) not in IPv6Network(node.pod_cidr6)):
        raise ValueError(f"pod {name!r} at {ip6}: the address must be in {node.name}'s IPv6 pod CIDR")
    netns = lab.netns(name)
    node_side = [
        f"link add {veth} type veth peer name eth0 netns {netns.name}",
        f"addr add {POD_GATEWAY}/32 dev {veth}",
        f"link set {veth} up",
        f"route add {ip}/32 dev {veth}",
    ]
    pod_side = [
        f"addr add {ip}/32 dev eth0",
        "link set eth0 up",
        f"route add {POD_GATEWAY} dev eth0 scope link",
        f"route add default via {POD_GATEWAY} dev eth0",
    ]
    if ip6:
        node_side[2:2] = [f"addr add {POD_GATEWAY6}/64 dev {veth} nodad"]
        node_side.append(f"route add {ip6}/128 dev {veth}")
        pod_side[1:1] = [f"addr add {ip6}/128 dev eth0 nodad"]
        pod_side.append(f"route add ::/0 via {POD_GATEWAY6} dev eth0")
    node.netns.ip("-batch", "-", input="".join(f"{line}\n" for line in node_side))
    netns.ip("-batch", "-", input="".join(f"{line}\n" for line in pod_side))
    node.netns.sysctl(f"net.ipv4.conf.{veth}.proxy_arp", "1")  # the pod's gateway answers for every address
    return Pod(netns, name, ip, node.name, ip6)


def remove_pod(node: Node, pod: Pod) -> None:
    """Take a pod away: its veth (and route) from the node, then its namespace."""
    node.netns.ip("link", "delete", f"p-{pod.name}")
    delete_netns([pod.netns])
