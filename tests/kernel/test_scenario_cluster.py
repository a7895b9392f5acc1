"""Scenarios on one node with real traffic: `ipvsctl apply` programs Services, the client's requests prove it.

One topology and one `ipvsctl apply` serve the whole module (each CLI run costs seconds under emulation).
Every test owns its Services and VIPs; tests that change the manifests change only their own objects.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.kernel.netlab import Lab, Netns, Topology, http_get
from tests.kernel.scenario_support import (
    NODE_IP,
    NODE_NAME,
    OTHER_NODE,
    Agent,
    Gate,
    HttpSession,
    KeepAliveServer,
    Manifest,
    connection_entries,
    endpoint_slice,
    http_get_from,
    node,
    require_ipvs,
    service,
    service_rule,
    wait_until,
)

pytestmark = pytest.mark.kernel

SERVERS = ("198.51.100.11", "198.51.100.12", "198.51.100.13")  # netlab's server1..3
EVERYWHERE = dict.fromkeys(SERVERS, NODE_NAME)
SECOND_CLIENT = "192.0.2.3"  # shares 192.0.2.0/24 with the client's own 192.0.2.2
HTTP, KEEPALIVE = 80, 8080  # netlab's identity servers; scenario_support's keep-alive servers
NODE_PORT = 30080
CLOSE_STATE_SECONDS = 10  # IPVS keeps a reset TCP entry in CLOSE this long

STICKY_VIP, SPREAD_VIP, OFFICE_VIP, LOCAL_VIP = "203.0.113.21", "203.0.113.22", "203.0.113.23", "203.0.113.24"
TIMEOUT_VIP, SCHEDULER_VIP, DRAIN_VIP = "203.0.113.25", "203.0.113.26", "203.0.113.27"
OFFICE_TIMEOUT = 300


def _timeout_service(timeout: int) -> Manifest:
    return service("edit-timeout", cluster_ips=[TIMEOUT_VIP], affinity_timeout=timeout)


def _scheduler_service(scheduler: str) -> Manifest:
    return service("edit-scheduler", cluster_ips=[SCHEDULER_VIP], annotations={"ipvsctl.io/scheduler": scheduler})


def _drain_slice(addresses: tuple[str, ...]) -> Manifest:
    return endpoint_slice("drain", endpoints=dict.fromkeys(addresses, NODE_NAME), target_port=KEEPALIVE)


OBJECTS = [
    node(NODE_NAME, NODE_IP),
    service("sticky", cluster_ips=[STICKY_VIP], affinity_timeout=600),
    endpoint_slice("sticky", endpoints=EVERYWHERE, target_port=HTTP),
    service("spread", cluster_ips=[SPREAD_VIP]),
    endpoint_slice("spread", endpoints=EVERYWHERE, target_port=HTTP),
    service(
        "office",
        cluster_ips=[OFFICE_VIP],
        affinity_timeout=OFFICE_TIMEOUT,
        annotations={"ipvsctl.io/persistence-netmask": "24"},
    ),
    endpoint_slice("office", endpoints=EVERYWHERE, target_port=HTTP),
    service("local", cluster_ips=[LOCAL_VIP], node_port=NODE_PORT, external_traffic_policy="Local"),
    endpoint_slice(
        "local", endpoints={SERVERS[0]: NODE_NAME, SERVERS[1]: OTHER_NODE, SERVERS[2]: OTHER_NODE}, target_port=HTTP
    ),
    _timeout_service(600),
    endpoint_slice("edit-timeout", endpoints=EVERYWHERE, target_port=KEEPALIVE),
    _scheduler_service("rr"),
    endpoint_slice("edit-scheduler", endpoints=EVERYWHERE, target_port=KEEPALIVE),
    service("drain", cluster_ips=[DRAIN_VIP]),
    _drain_slice(SERVERS),
]


@dataclass(frozen=True, slots=True)
class Cluster:
    """The module's node (with every Service applied), its client and servers, and the servers' gate."""

    topology: Topology
    agent: Agent
    gate: Gate

    @property
    def node(self) -> Netns:
        """The node's namespace, where IPVS and the CLI run."""
        return self.topology.node

    @property
    def client(self) -> Netns:
        """The client's namespace (192.0.2.2 and 192.0.2.3)."""
        return self.topology.client.netns

    def name_of(self, address: str) -> str:
        """The identity of the server at `address`."""
        return next(server.name for server in self.topology.servers if server.ipv4 == address)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A topology whose node has had `ipvsctl apply` of OBJECTS; identity and keep-alive servers on every server."""
    require_ipvs()
    with contextlib.ExitStack() as cleanup:
        lab = Lab(cleanup)
        topology = lab.topology(servers=3)
        gate = Gate()
        for server in topology.servers:
            lab.serve_http(server.netns, identity=server.name, port=HTTP)
            cleanup.callback(KeepAliveServer(server.netns, identity=server.name, port=KEEPALIVE, gate=gate).close)
        topology.client.netns.ip("addr", "add", f"{SECOND_CLIENT}/24", "dev", "eth0")
        agent = Agent.create(topology.node, tmp_path_factory.mktemp("cluster") / "manifests.json", OBJECTS)
        agent.apply()
        yield Cluster(topology, agent, gate)


def _established(cluster: Cluster, session: HttpSession) -> list[tuple[str, str, int, str, int, str, int]]:
    """The identities of the node's ESTABLISHED entries for the session's client port."""
    return [
        entry.identity
        for entry in connection_entries(cluster.node)
        if entry.client_port == session.local_port and entry.state == "ESTABLISHED"
    ]


def test_client_ip_affinity_pins_every_request_and_plain_service_spreads(cluster: Cluster) -> None:
    """30 requests to a ClientIP Service hit one backend; 30 to the same Service without affinity hit all 3."""
    sticky = http_get(cluster.client, STICKY_VIP, count=30)
    spread = http_get(cluster.client, SPREAD_VIP, count=30)

    assert len({reply.server for reply in sticky}) == 1
    assert {reply.server for reply in spread} == {server.name for server in cluster.topology.servers}


def test_persistence_netmask_pins_two_clients_of_one_network_to_one_backend(cluster: Cluster) -> None:
    """With persistence-netmask 24, requests from 192.0.2.2 and 192.0.2.3 all reach the same backend."""
    replies = [
        reply
        for _ in range(3)
        for source in (cluster.topology.client.ipv4, SECOND_CLIENT)
        for reply in http_get_from(cluster.client, OFFICE_VIP, source=source, count=2)
    ]

    assert {reply.client for reply in replies} == {cluster.topology.client.ipv4, SECOND_CLIENT}
    assert len({reply.server for reply in replies}) == 1


def test_affinity_command_shows_the_network_template_as_ipvsadm_does(cluster: Cluster) -> None:
    """`ipvsctl affinity --client 192.0.2.77` names the /24 template, its backend and time left, like ipvsadm -Lnc."""
    (first,) = http_get_from(cluster.client, OFFICE_VIP, source=SECOND_CLIENT)

    pins = cluster.agent.affinity("--client", "192.0.2.77", "--vip", f"{OFFICE_VIP}:{HTTP}")["pins"]
    templates = [e for e in connection_entries(cluster.node) if e.is_template and e.virtual == OFFICE_VIP]

    (pin,) = pins
    assert cluster.name_of(pin["realServer"]["address"]) == first.server
    assert pin["service"] == {"namespace": "default", "name": "office"}
    assert pin["clientNetwork"] == "192.0.2.0/24"
    assert pin["realServer"]["port"] == HTTP
    assert pin["timeoutSeconds"] == OFFICE_TIMEOUT
    assert 0 < pin["expiresSeconds"] <= OFFICE_TIMEOUT
    (template,) = templates
    assert (template.client, template.real, template.real_port) == ("192.0.2.0", pin["realServer"]["address"], HTTP)
    assert pin["expiresSeconds"] - 60 <= template.expires <= pin["expiresSeconds"]  # read a CLI start later


def test_external_traffic_policy_local_sends_node_port_traffic_only_to_this_nodes_endpoint(cluster: Cluster) -> None:
    """NODEIP:nodePort reaches only the endpoint on this node; the ClusterIP of the same Service reaches all 3."""
    via_node_port = http_get(cluster.client, NODE_IP, port=NODE_PORT, count=9)
    via_cluster_ip = http_get(cluster.client, LOCAL_VIP, count=9)

    assert {reply.server for reply in via_node_port} == {cluster.name_of(SERVERS[0])}
    assert {reply.server for reply in via_cluster_ip} == {server.name for server in cluster.topology.servers}


@pytest.mark.parametrize(
    ("vip", "changed", "setting"),
    [
        pytest.param(TIMEOUT_VIP, _timeout_service(900), ["-p", "900"], id="affinity-timeout"),
        pytest.param(SCHEDULER_VIP, _scheduler_service("wlc"), ["-s", "wlc"], id="scheduler"),
    ],
)
def test_in_place_edit_keeps_an_established_connection(
    cluster: Cluster, vip: str, changed: Manifest, setting: list[str]
) -> None:
    """A changed Service setting is an in-place edit: the kernel has it, and an open connection keeps working."""
    session = HttpSession(cluster.client, vip)
    try:
        first = session.ask()
        before = _established(cluster, session)

        cluster.agent.replace(changed)
        summary = cluster.agent.apply()["summary"]
        rule = service_rule(cluster.node, f"{vip}:{HTTP}")
        again = session.ask()

        assert summary == {"edit-service": 1}
        assert any(rule[i : i + 2] == setting for i in range(len(rule))), rule
        assert again == first
        assert len(before) == 1
        assert _established(cluster, session) == before
    finally:
        session.close()


def test_removed_backend_drains_until_its_in_flight_request_ends_then_is_deleted(cluster: Cluster) -> None:
    """A removed backend goes to weight 0, finishes its in-flight request, and is deleted once it has no connections."""
    cluster.gate.close()
    session = HttpSession(cluster.client, DRAIN_VIP)
    try:
        session.send("/hold")
        assert cluster.gate.entered.wait(10), "the request never reached a backend"
        (entry,) = [e for e in connection_entries(cluster.node) if e.client_port == session.local_port]
        backend = entry.real

        cluster.agent.replace(_drain_slice(tuple(a for a in SERVERS if a != backend)))
        drained = cluster.agent.apply()["changes"]
        shown = cluster.agent.show()["virtualServices"]
        cluster.gate.open()
        answer = session.receive()
    finally:
        session.abort()
    closed = wait_until(
        lambda: not any(e.real == backend and e.virtual == DRAIN_VIP for e in connection_entries(cluster.node)),
        timeout=CLOSE_STATE_SECONDS * 3,
    )
    deleted = cluster.agent.apply()["changes"]

    assert [(c["op"], c["realServer"]["address"]) for c in drained] == [("drain-real-server", backend)]
    (drain_vs,) = [vs for vs in shown if vs["address"] == DRAIN_VIP]
    (real,) = [r for r in drain_vs["realServers"] if r["address"] == backend]
    assert (real["weight"], real["draining"], real["activeConnections"]) == (0, True, 1)
    assert answer == cluster.name_of(backend)
    assert closed, "the drained connection never left the table"
    assert [(c["op"], c["realServer"]["address"]) for c in deleted] == [("delete-real-server", backend)]
    assert f"-a -t {DRAIN_VIP}:{HTTP} -r {backend}:{KEEPALIVE}" not in cluster.node.ipvsadm("-Sn")
