"""`ipvsctl explain` on a real node: a client pinned by real traffic, read back from the live kernel.

One topology and one `ipvsctl apply` serve the module (each CLI run costs seconds under emulation). The client
sends requests through the node's IPVS; `explain` must name the real server that answered, as the kernel's
template pins it, and say what the nftables table does to the client.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.kernel.netlab import Lab, Topology
from tests.kernel.scenario_support import (
    NODE_IP,
    NODE_NAME,
    OTHER_NODE,
    Agent,
    connection_entries,
    endpoint_slice,
    http_get_from,
    node,
    require_ipvs,
    service,
)

pytestmark = pytest.mark.kernel

SERVERS = ("198.51.100.11", "198.51.100.12", "198.51.100.13")  # netlab's server1..3
EVERYWHERE = dict.fromkeys(SERVERS, NODE_NAME)
CLIENT, SECOND_CLIENT = "192.0.2.2", "192.0.2.3"  # the client's own address, and one more of its /24
HTTP = 80
NODE_PORT = 30081
STICKY_VIP, OFFICE_VIP, LOCAL_VIP = "203.0.113.51", "203.0.113.52", "203.0.113.53"
STICKY_TIMEOUT, OFFICE_TIMEOUT = 600, 300

OBJECTS = [
    node(NODE_NAME, NODE_IP),
    service("sticky", cluster_ips=[STICKY_VIP], affinity_timeout=STICKY_TIMEOUT),
    endpoint_slice("sticky", endpoints=EVERYWHERE, target_port=HTTP),
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
]


@dataclass(frozen=True, slots=True)
class Bed:
    """The module's node (every Service applied), its client and servers."""

    topology: Topology
    agent: Agent

    def explain(self, *args: str) -> tuple[int, dict[str, Any]]:
        """`ipvsctl explain ARGS... -o json` on the node (from the live kernel unless ARGS say otherwise)."""
        scope = ("-f", str(self.agent.manifests), "--node", self.agent.node_name, "--interface", self.agent.interface)
        done: subprocess.CompletedProcess[str] = self.agent.run("explain", *args, *scope, "-o", "json", check=False)
        assert done.returncode in (0, 1), done.stderr
        document = json.loads(done.stdout)
        assert isinstance(document, dict)
        return done.returncode, document

    def name_of(self, address: str) -> str:
        """The identity of the server at `address`."""
        return next(server.name for server in self.topology.servers if server.ipv4 == address)


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    """A topology whose node has had `ipvsctl apply` of OBJECTS; identity servers on every server."""
    require_ipvs()
    with contextlib.ExitStack() as cleanup:
        lab = Lab(cleanup)
        topology = lab.topology(servers=3)
        for server in topology.servers:
            lab.serve_http(server.netns, identity=server.name, port=HTTP)
        topology.client.netns.ip("addr", "add", f"{SECOND_CLIENT}/24", "dev", "eth0")
        agent = Agent.create(topology.node, tmp_path_factory.mktemp("explain") / "manifests.json", OBJECTS)
        agent.apply()
        yield Bed(topology, agent)


def test_a_pinned_client_is_explained_with_the_server_that_answered_it(bed: Bed) -> None:
    """After real requests, explain names the template's real server (the one that answered) and its time left."""
    replies = http_get_from(bed.topology.client.netns, STICKY_VIP, source=CLIENT, count=5)

    code, document = bed.explain("--client", CLIENT, "--to", f"{STICKY_VIP}:{HTTP}")

    decision = document["decision"]
    assert code == 0
    assert {reply.server for reply in replies} == {bed.name_of(decision["pin"]["realServer"]["address"])}
    assert (document["service"]["name"], document["virtualService"]["owner"]) == ("sticky", "service")
    assert (decision["by"], decision["pin"]["clientNetwork"], decision["pin"]["timeoutSeconds"]) == (
        "template",
        f"{CLIENT}/32",
        STICKY_TIMEOUT,
    )
    assert 0 < decision["pin"]["expiresSeconds"] <= STICKY_TIMEOUT
    assert {each["realServer"]["address"] for each in document["connections"]} == {
        decision["pin"]["realServer"]["address"]
    }


def test_the_template_of_a_network_pins_another_client_of_it(bed: Bed) -> None:
    """With netmask /24, the template made by 192.0.2.2's traffic pins 192.0.2.3, which sent nothing yet."""
    (reply,) = http_get_from(bed.topology.client.netns, OFFICE_VIP, source=CLIENT)
    templates = [e for e in connection_entries(bed.topology.node) if e.is_template and e.virtual == OFFICE_VIP]

    _, document = bed.explain("--client", SECOND_CLIENT, "--to", f"{OFFICE_VIP}:{HTTP}")

    pin = document["decision"]["pin"]
    (template,) = templates
    assert (pin["clientNetwork"], template.client) == ("192.0.2.0/24", "192.0.2.0")
    assert bed.name_of(pin["realServer"]["address"]) == reply.server
    assert document["connections"] == []


def test_an_unpinned_client_is_left_to_the_scheduler(bed: Bed) -> None:
    """A client that never connected to the sticky VIP: the scheduler decides, and its /32 would be pinned."""
    _, document = bed.explain("--client", "192.0.2.99", "--to", f"{STICKY_VIP}:{HTTP}")

    decision = document["decision"]
    assert (decision["by"], decision["scheduler"], decision["clientNetwork"]) == ("scheduler", "rr", "192.0.2.99/32")
    assert len(decision["candidates"]) == len(SERVERS)


def test_the_local_node_port_names_the_endpoints_it_leaves_out(bed: Bed) -> None:
    """The eTP Local NodePort has this node's endpoint only; the other node's two are left out, saying so."""
    replies = http_get_from(bed.topology.client.netns, NODE_IP, source=CLIENT, port=NODE_PORT, count=3)

    _, document = bed.explain("--client", CLIENT, "--to", f"{NODE_IP}:{NODE_PORT}")

    assert [real["address"] for real in document["realServers"]] == [SERVERS[0]]
    assert {reply.server for reply in replies} == {bed.name_of(SERVERS[0])}
    assert [(left["address"], left["reason"]) for left in document["leftOut"]] == [
        (SERVERS[1], "other-node"),
        (SERVERS[2], "other-node"),
    ]
    assert document["service"]["trafficPolicy"] == "Local"


def test_the_live_nftables_table_is_read_for_the_client(bed: Bed) -> None:
    """The verdict comes from the kernel's table: the VIP filter lets the ClusterIP's port through, no source range,
    and no masquerade (applied without --cluster-cidr, the table masquerades no ClusterIP traffic)."""
    _, document = bed.explain("--client", CLIENT, "--to", f"{STICKY_VIP}:{HTTP}")

    verdict = document["netfilter"]
    assert (verdict["source"], verdict["tablePresent"], verdict["vipFilter"], verdict["portOpen"]) == (
        "kernel",
        True,
        True,
        True,
    )
    assert (verdict["sourceRanges"], verdict["sourceAllowed"], verdict["masquerade"]) == (None, None, False)


def test_a_port_nobody_programs_exits_1(bed: Bed) -> None:
    """No virtual service at the VIP's port 443: exit 1, and the VIP filter rejects the port."""
    code, document = bed.explain("--client", CLIENT, "--to", f"{STICKY_VIP}:443")

    assert code == 1
    assert document["found"] is False
    assert (document["netfilter"]["vipFilter"], document["netfilter"]["portOpen"]) == (True, False)


def test_offline_from_the_nodes_saved_state_answers_as_live(bed: Bed, tmp_path: Path) -> None:
    """`ipvsadm -Sn`, /proc/net/ip_vs_conn and `nft -j list table` copied off the node give the live answer."""
    http_get_from(bed.topology.client.netns, STICKY_VIP, source=CLIENT)
    node_ns = bed.topology.node
    save, conn, listing = tmp_path / "table.save", tmp_path / "ip_vs_conn", tmp_path / "nft.json"
    save.write_text(node_ns.ipvsadm("-Sn"))
    conn.write_text(node_ns.proc_net("ip_vs_conn"))
    listing.write_text(node_ns.run("nft", "-j", "list", "table", "inet", "ipvsctl").stdout)
    ask = ("--client", CLIENT, "--to", f"{STICKY_VIP}:{HTTP}")

    _, live = bed.explain(*ask)
    code, offline = bed.explain(
        *ask, "--current-save", str(save), "--conn-file", str(conn), "--current-nftables", str(listing)
    )

    assert code == 0
    assert offline["decision"]["pin"]["realServer"] == live["decision"]["pin"]["realServer"]
    assert [real["address"] for real in offline["realServers"]] == [real["address"] for real in live["realServers"]]
    assert offline["virtualService"]["owner"] == live["virtualService"]["owner"] == "service"
    assert {**offline["netfilter"], "source": "kernel"} == live["netfilter"]
