"""The netfilter half with real traffic: two nodes on a LAN, pods behind each, clients outside (issue 15).

Each node runs `ipvsctl apply` with its own node name; the nftables table it writes is what makes these work:
masquerade of Cluster-policy NodePorts (the reply of a pod on another node finds its way back), the client
address kept under Local, hairpin, the VIP filter, UDP endpoints replaced mid-stream, and other tables
left exactly as they were.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.kernel.multinode import Cluster, Pod, build_cluster
from tests.kernel.netlab import Lab, Netns, http_get
from tests.kernel.scenario_support import Agent, Manifest, endpoint_slice, node, require_ipvs, service

pytestmark = pytest.mark.kernel

HTTP, UDP = 8080, 5353  # what every pod serves
CLUSTER_VIP, LOCAL_VIP, HAIRPIN_VIP, DNS_VIP = "203.0.113.31", "203.0.113.32", "203.0.113.33", "203.0.113.34"
RANGED_VIP, RANGED_INGRESS = "203.0.113.35", "203.0.113.60"
CLUSTER_PORT, LOCAL_PORT = 30080, 30081
KUBELET = 10250
FLAGS = ("--cluster-cidr", "198.51.100.0/24", "--load-balancer-ip-cidr", "203.0.113.0/24")


def web(name: str, vip: str, *, node_port: int, policy: str, endpoints: dict[str, str]) -> list[Manifest]:
    return [
        service(name, cluster_ips=[vip], node_port=node_port, external_traffic_policy=policy),
        endpoint_slice(name, endpoints=endpoints, target_port=HTTP),
    ]


def ranged(pod: Pod, *, allowed: str) -> list[Manifest]:
    """A LoadBalancer Service whose owner lets only ``allowed`` in through its ingress IP."""
    manifest = service("ranged", cluster_ips=[RANGED_VIP], port=80)
    manifest["spec"] |= {"type": "LoadBalancer", "loadBalancerSourceRanges": [allowed]}
    manifest["status"] = {"loadBalancer": {"ingress": [{"ip": RANGED_INGRESS}]}}
    return [manifest, endpoint_slice("ranged", endpoints={pod.ip: pod.node}, target_port=HTTP)]


def dns(pod: Pod) -> list[Manifest]:
    return [
        service("dns", cluster_ips=[DNS_VIP], port=53, protocol="UDP", port_name="dns"),
        endpoint_slice("dns", endpoints={pod.ip: pod.node}, target_port=UDP, protocol="UDP", port_name="dns"),
    ]


@dataclass(frozen=True, slots=True)
class Bed:
    cluster: Cluster
    agents: dict[str, Agent]

    def client(self, index: int = 0) -> Netns:
        return self.cluster.clients[index].netns


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    """Two nodes, two pods each, two clients; Services applied on both nodes; HTTP and UDP on every pod."""
    require_ipvs()
    with contextlib.ExitStack() as cleanup:
        lab = Lab(cleanup)
        cluster = build_cluster(lab, nodes=2, pods_per_node=2, clients=2)
        for pod in cluster.pods:
            lab.serve_http(pod.netns, identity=pod.name, port=HTTP)
            lab.serve_udp_echo(pod.netns, identity=pod.name, port=UDP)
        lab.serve_http(cluster.nodes[0].netns, identity="kubelet", port=KUBELET)
        pod1a, pod2a = cluster.pod("pod1a"), cluster.pod("pod2a")
        objects = [
            *(node(n.name, n.ip) for n in cluster.nodes),
            *web("cluster", CLUSTER_VIP, node_port=CLUSTER_PORT, policy="Cluster", endpoints={pod2a.ip: pod2a.node}),
            *web(
                "local",
                LOCAL_VIP,
                node_port=LOCAL_PORT,
                policy="Local",
                endpoints={pod1a.ip: pod1a.node, pod2a.ip: pod2a.node},
            ),
            service("hairpin", cluster_ips=[HAIRPIN_VIP], port=80),
            endpoint_slice("hairpin", endpoints={pod1a.ip: pod1a.node}, target_port=HTTP),
            *dns(pod1a),
            *ranged(pod1a, allowed=f"{cluster.clients[0].ip}/32"),
        ]
        agents = {}
        for cluster_node in cluster.nodes:
            agent = Agent.create(
                cluster_node.netns, tmp_path_factory.mktemp(cluster_node.name) / "objects.json", objects
            )
            agent = Agent(agent.netns, agent.manifests, agent.objects, node_name=cluster_node.name)
            agent.apply(*FLAGS)
            agents[cluster_node.name] = agent
        yield Bed(cluster, agents)


def test_cluster_node_port_reaches_a_pod_on_another_node_which_sees_the_entry_node(bed: Bed) -> None:
    """(1) Cluster policy: via node1's NodePort to the pod on node2; the pod sees node1's address (masquerade)."""
    (reply,) = http_get(bed.client(), bed.cluster.nodes[0].ip, port=CLUSTER_PORT)
    assert (reply.server, reply.client) == ("pod2a", bed.cluster.nodes[0].ip)


def test_local_node_port_keeps_the_client_address(bed: Bed) -> None:
    """(2) Local policy: via node1's NodePort to node1's pod, which sees the client's own address."""
    (reply,) = http_get(bed.client(), bed.cluster.nodes[0].ip, port=LOCAL_PORT)
    assert (reply.server, reply.client) == ("pod1a", bed.cluster.clients[0].ip)


def test_a_pod_reaches_itself_through_its_service(bed: Bed) -> None:
    """(3) Hairpin: pod1a calls the ClusterIP whose only endpoint is pod1a, and gets its own answer."""
    (reply,) = http_get(bed.cluster.pod("pod1a").netns, HAIRPIN_VIP, port=80, timeout=5.0)
    assert reply.server == "pod1a"
    assert reply.client != bed.cluster.pod("pod1a").ip  # masqueraded, else the pod would answer itself locally


def test_a_host_socket_answers_on_the_node_ip_but_not_on_a_vip(bed: Bed) -> None:
    """(4) kubelet's port: open on node1's own address, refused on a ClusterIP bound to node1's ipvsctl interface."""
    (reply,) = http_get(bed.client(), bed.cluster.nodes[0].ip, port=KUBELET)
    assert reply.server == "kubelet"
    with pytest.raises(ConnectionRefusedError):
        http_get(bed.client(), CLUSTER_VIP, port=KUBELET, timeout=3.0)


def test_source_ranges_let_in_only_the_allowed_client(bed: Bed) -> None:
    """(5) loadBalancerSourceRanges: client1 (allowed) reaches the ingress IP; client2 is dropped."""
    (reply,) = http_get(bed.client(0), RANGED_INGRESS, port=80)
    assert reply.server == "pod1a"
    with pytest.raises(TimeoutError):
        http_get(bed.client(1), RANGED_INGRESS, port=80, timeout=2.0)


def test_the_table_holds_exactly_the_elements_of_node1(bed: Bed) -> None:
    """nft -j list table: node1's VIPs under the filter with their ports, the Cluster NodePort masqueraded."""
    listing = json.loads(bed.cluster.nodes[0].netns.run("nft", "-j", "list", "table", "inet", "ipvsctl").stdout)
    sets = {entry["set"]["name"]: entry["set"].get("elem", []) for entry in listing["nftables"] if "set" in entry}
    assert sorted(sets["vips4"]) == sorted([CLUSTER_VIP, LOCAL_VIP, HAIRPIN_VIP, DNS_VIP, RANGED_VIP, RANGED_INGRESS])
    assert {"concat": [bed.cluster.nodes[0].ip, "tcp", CLUSTER_PORT]} in sets["masquerade4"]
    assert {"concat": [bed.cluster.nodes[0].ip, "tcp", LOCAL_PORT]} not in sets["masquerade4"]
    assert {"concat": [DNS_VIP, "udp", 53]} in sets["services4"]


def _udp_stream(client: Netns, *, until: threading.Event, answers: list[tuple[float, str]]) -> None:
    """Datagrams from one source port every 50 ms (as a DNS client keeping its socket), for at most 60 s."""
    with client.entered():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.settimeout(0.05)
        sock.connect((DNS_VIP, 53))
        deadline = time.monotonic() + 60
        while not until.is_set() and time.monotonic() < deadline:
            sock.send(b"q")
            with contextlib.suppress(TimeoutError, ConnectionRefusedError):
                answers.append((time.monotonic(), sock.recv(512).split(b" ", 1)[0].decode()))
            time.sleep(0.05)


def test_a_udp_client_reaches_the_replacement_endpoint_within_a_second(bed: Bed) -> None:
    """(6) The DNS pod replaced while a client keeps sending from one port: within 1 s it gets the new pod."""
    answers: list[tuple[float, str]] = []
    stop = threading.Event()
    stream = threading.Thread(target=_udp_stream, args=(bed.client(),), kwargs={"until": stop, "answers": answers})
    stream.start()
    try:
        time.sleep(1.0)
        agent = bed.agents["node1"]
        agent.replace(*dns(bed.cluster.pod("pod1b")))
        agent.apply(*FLAGS)
        applied = time.monotonic()
        time.sleep(2.0)
    finally:
        stop.set()
        stream.join(timeout=10)
        bed.agents["node1"].replace(*dns(bed.cluster.pod("pod1a")))
        bed.agents["node1"].apply(*FLAGS)
    assert any(server == "pod1a" for _, server in answers)
    first_new = next(at for at, server in answers if server == "pod1b")
    assert first_new - applied < 1.0


def _snapshot(netns: Netns) -> tuple[Any, list[str]]:
    """A foreign nftables table and iptables-nft's rules, as they list (without iptables-save's comments and
    chain counters, which change with time and traffic, not with ipvsctl)."""
    table = json.loads(netns.run("nft", "-j", "list", "table", "inet", "filter").stdout)
    saved = netns.run("iptables-nft-save", "-t", "filter").stdout.splitlines()
    rules = [line.split(" [", 1)[0] for line in saved if not line.startswith("#")]
    return table["nftables"][1:], rules


def test_other_tables_stay_exactly_as_they_were(bed: Bed, tmp_path_factory: pytest.TempPathFactory) -> None:
    """(7) A foreign inet filter table and an iptables-nft rule: unchanged by apply, a second apply and cleanup."""
    netns = bed.cluster.nodes[1].netns
    netns.run("nft", "add", "table", "inet", "filter")
    netns.run("nft", "add", "chain", "inet", "filter", "input", "{ type filter hook input priority 0; }")
    netns.run("nft", "add", "rule", "inet", "filter", "input", "tcp", "dport", "9999", "counter", "accept")
    netns.run("iptables-nft", "-A", "INPUT", "-p", "tcp", "--dport", "9998", "-j", "ACCEPT")
    before = _snapshot(netns)
    agent = bed.agents["node2"]
    agent.apply(*FLAGS)
    after_apply = _snapshot(netns)
    agent.apply(*FLAGS)
    after_resync = _snapshot(netns)
    cleanup = agent.run("cleanup", "--node-ip", bed.cluster.nodes[1].ip, "--interface", agent.interface, check=False)
    after_cleanup = _snapshot(netns)
    ours_after_cleanup = netns.run("nft", "list", "table", "inet", "ipvsctl", check=False).returncode
    agent.apply(*FLAGS)  # leave node2 as the other tests found it
    assert cleanup.returncode == 0, cleanup.stderr
    assert before == after_apply == after_resync == after_cleanup
    assert ours_after_cleanup != 0  # ipvsctl's own table is gone
