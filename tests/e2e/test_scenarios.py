"""The scenarios of the e2e bed (issues 16 and 20), each a row of the report: requests, failed, p50/p99, verdict.

They run in this order on one bed (bed.py) inside the kernel lab: `make e2e`, or `python -m tests.e2e -k NAME`
for one of them (docs/e2e.md). Every load is bounded in count and time; every address is the bed's own.
Each scenario leaves the bed with the workload it found (pods it replaced have successors, pods it added are
gone), so any one of them can run alone.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence

import pytest

from tests.e2e import control, workload
from tests.e2e.bed import Bed, cluster_ip_key, http_status
from tests.e2e.haproxy import CHECK_INTERVAL, FALL, is_up
from tests.e2e.ipvs_proc import IpvsTable, weights
from tests.e2e.load import Connect, Flow, Load, burst, connect_each, request
from tests.e2e.observe import TableWatch
from tests.e2e.pods import MAX_SLEEP
from tests.e2e.report import Outcome, Report, summarize
from tests.e2e.workload import (
    LB_IP,
    MY_SERVICE,
    SAMPLE_AFFINITY_CLUSTER,
    SAMPLE_AFFINITY_NODE,
    SAMPLE_NODEPORT_LOCAL,
    SAMPLE_SESSION_AFFINITY,
    SAMPLE_WEB,
    UDP_ECHO,
    PodState,
)
from tests.kernel.multinode import POD_GATEWAY

pytestmark = [pytest.mark.e2e, pytest.mark.kernel]

CLIENTS = range(5)
AFTER_OUT = 3  # requests of each client that must finish after a change before a scenario judges it
SETTLE_LIMIT = 60.0  # seconds those requests may take on a slow guest
PRE_STOP = 1.0  # a pod keeps serving this long after every node stopped sending it new connections
DRAIN_REQUEST = 6.0  # at least this long in flight: the pod holds it until node1's draining table was read (a
# fixed 6 s sleep ended as the table was read on a slow machine, where the successor's start took 4.6 s of it)
DRAIN_DELETE_LIMIT = 200.0  # IPVS keeps a closed connection in TIME_WAIT for 120 s, then a resync deletes
HAPROXY_LIMIT = 20.0


# --- helpers ------------------------------------------------------------------------------------


def flows(bed: Bed, host: str, port: int, *, clients: Sequence[int] = CLIENTS, udp: bool = False) -> list[Flow]:
    """One flow per client (from 0) to host:port."""
    return [Flow(f"client{index + 1}", bed.client(index), host, port, udp=udp) for index in clients]


def servers_by_flow(outcomes: Sequence[Outcome]) -> dict[str, set[str]]:
    """Which pods answered each flow."""
    answered: dict[str, set[str]] = defaultdict(set)
    for outcome in outcomes:
        if outcome.ok:
            answered[outcome.flow].add(outcome.server)
    return dict(answered)


def failures(outcomes: Sequence[Outcome]) -> list[str]:
    """The failed requests, said briefly (for assertion messages)."""
    return [f"{outcome.flow}: {outcome.error}" for outcome in outcomes if not outcome.ok][:10]


def node_of(bed: Bed, pod: str) -> str:
    """The node a pod runs on (its name says so: <app>-<node index><letter>)."""
    return f"node{pod.rsplit('-', 1)[1][0]}"


def serving_reals(table: IpvsTable) -> int:
    """How many real servers of a table take new connections (weight above 0)."""
    return sum(1 for reals in table.values() for state in reals.values() if state.weight > 0)


def _address_lines(verb: str, sources: Sequence[str]) -> str:
    """`ip -batch` lines adding or deleting `sources` on lan0 (IPv6 without duplicate detection)."""
    lines = []
    for source in sources:
        if ":" in source:
            lines.append(f"addr {verb} {source}/128 dev lan0" + (" nodad" if verb == "add" else ""))
        else:
            lines.append(f"addr {verb} {source}/32 dev lan0")
    return "".join(f"{line}\n" for line in lines)


@contextlib.contextmanager
def client_sources(bed: Bed, sources: Sequence[str]) -> Iterator[None]:
    """`sources` on client1's LAN interface for the block."""
    client = bed.cluster.clients[0]
    client.netns.ip("-batch", "-", input=_address_lines("add", sources))
    try:
        yield
    finally:
        client.netns.ip("-batch", "-", input=_address_lines("del", sources))


Condition = Callable[[str, IpvsTable], bool]


def has_weight(key: tuple[str, str, int], address: str) -> Condition:
    """A convergence condition: `address` serves `key` (weight above 0)."""
    return lambda _node, table: weights(table, key).get(address, 0) > 0


def serves_not(key: tuple[str, str, int], address: str) -> Condition:
    """A convergence condition: `address` takes no new connections of `key` (absent, or draining at weight 0)."""
    return lambda _node, table: weights(table, key).get(address, 0) == 0


def replace_pod(bed: Bed, name: str) -> dict[str, float]:
    """Roll one pod: a successor on the same node becomes ready, then `name` terminates, leaves the slices and
    stops. The convergence times (API write → every node's table) of each step."""
    app, node_index = bed.pods[name].info.app, int(node_of(bed, name).removeprefix("node"))
    key = cluster_ip_key(SAMPLE_WEB if app == "sample" else UDP_ECHO)
    successor = bed.start_pod(app, node_index)  # written not ready, as a starting pod is
    bed.set_state(successor, PodState.READY)
    times = {"ready": bed.wait_tables(has_weight(key, bed.pods[successor].info.ip))}
    old_ip = bed.pods[name].info.ip
    bed.set_state(name, PodState.TERMINATING)
    times["terminating"] = bed.wait_tables(serves_not(key, old_ip))
    live = bed.forget_pod(name)
    time.sleep(PRE_STOP)
    bed.stop_pod(live)
    return times


# --- 1 ------------------------------------------------------------------------------------------


@pytest.mark.scenario("1-affinity", "ClientIP affinity through the agent")
def test_1_client_ip_affinity_pins_each_client_and_without_it_requests_spread(bed: Bed, report: Report) -> None:
    """5 clients x 30 requests to node1's NodePort: with ClientIP each client lands on one pod; without
    affinity the requests spread over every pod."""
    node1 = bed.node("node1").ip
    affine = burst(flows(bed, node1, SAMPLE_SESSION_AFFINITY.node_port), count=30)
    spread = burst(flows(bed, node1, SAMPLE_WEB.node_port), count=30)
    pods = {pod.name for pod in bed.pods_of("sample")}
    pinned = servers_by_flow(affine)
    spread_by_flow = servers_by_flow(spread)
    reached = {server for servers in spread_by_flow.values() for server in servers}
    report.record(
        "1-affinity",
        "ClientIP affinity through the agent",
        summarize(affine + spread),
        pods_per_affine_client=sorted(len(servers) for servers in pinned.values()),
        pods_per_client_without_affinity=sorted(len(servers) for servers in spread_by_flow.values()),
    )
    assert not failures(affine + spread), failures(affine + spread)
    assert all(len(servers) == 1 for servers in pinned.values()), pinned
    assert reached == pods, spread_by_flow
    assert all(len(servers) >= 2 for servers in spread_by_flow.values()), spread_by_flow


# --- 2 ------------------------------------------------------------------------------------------


@pytest.mark.scenario("2-cluster", "externalTrafficPolicy Cluster: every node's pods, masqueraded")
def test_2_cluster_policy_reaches_pods_on_every_node_and_they_see_the_entry_node(bed: Bed, report: Report) -> None:
    """NodePort of a Cluster Service via node1 and via node3 (no pod of its own): pods on node1 and node2
    answer, each sees the entry node's address, never the client's (masqueraded: a pod on another node sees
    the entry node's LAN address, a pod on the entry node the node's side of its veth, 169.254.1.1); the UDP
    Service via node2 the same."""
    client = bed.client(0)
    outcomes: list[Outcome] = []
    entries: dict[str, set[tuple[str, str]]] = {}
    for entry in ("node1", "node3"):
        done = burst([Flow(entry, client, bed.node(entry).ip, SAMPLE_WEB.node_port)], count=30)
        outcomes += done
        entries[entry] = {(node_of(bed, o.server), o.seen) for o in done if o.ok}
    datagrams = burst([Flow("node2-udp", client, bed.node("node2").ip, UDP_ECHO.node_port, udp=True)], count=20)
    outcomes += datagrams
    udp_seen = {(node_of(bed, o.server), o.seen) for o in datagrams if o.ok}
    report.record(
        "2-cluster",
        "externalTrafficPolicy Cluster: every node's pods, masqueraded",
        summarize(outcomes),
        pod_nodes_via_node1=sorted({node for node, _ in entries["node1"]}),
        pod_nodes_via_node3=sorted({node for node, _ in entries["node3"]}),
        udp_pod_nodes_via_node2=sorted({node for node, _ in udp_seen}),
    )
    assert not failures(outcomes), failures(outcomes)
    sample_nodes = {pod.node for pod in bed.pods_of("sample")}
    udp_nodes = {pod.node for pod in bed.pods_of("udp-echo")}
    for entry, seen in entries.items():
        assert {node for node, _ in seen} == sample_nodes, (entry, seen)
        assert all(address == entry_address(bed, entry, pod_node) for pod_node, address in seen), (entry, seen)
    assert {node for node, _ in udp_seen} == udp_nodes, udp_seen
    assert all(address == entry_address(bed, "node2", pod_node) for pod_node, address in udp_seen), udp_seen


def entry_address(bed: Bed, entry: str, pod_node: str) -> str:
    """The source a pod sees when the entry node masquerades: the address of the interface toward the pod."""
    return POD_GATEWAY if pod_node == entry else bed.node(entry).ip


# --- 3 ------------------------------------------------------------------------------------------


def wait_haproxy(bed: Bed, section: str, node: str, *, up: bool, timeout: float = HAPROXY_LIMIT) -> float:
    """Wait until haproxy has `node` up (or down) in `section`; the seconds it took."""
    started = time.monotonic()
    while is_up(bed.haproxy.servers().get((section, node), "")) != up:
        if time.monotonic() - started > timeout:
            raise AssertionError(f"haproxy: {section}/{node} not {'up' if up else 'down'} within {timeout:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - started


def health_check(bed: Bed, node: str) -> int:
    """The status of my-service's healthCheckNodePort on a node (asked from the guest, on the LAN)."""
    assert MY_SERVICE.health_check_node_port is not None
    return http_status(bed.node(node).ip, MY_SERVICE.health_check_node_port, "/")[0]


@pytest.mark.scenario("3-local", "externalTrafficPolicy Local, behind haproxy")
def test_3_local_policy_keeps_the_client_address_and_haproxy_avoids_nodes_without_a_pod(
    bed: Bed, report: Report
) -> None:
    """Local: via a node with a pod the pod sees the client; via node3 (none) the connection fails, node3's
    healthCheckNodePort answers 503 and haproxy keeps it out; when node1 loses its pod, haproxy takes node1 out
    too, with no failed request once it has."""
    client, client_ip = bed.client(0), bed.cluster.clients[0].ip
    direct = []
    for entry in ("node1", "node2"):
        direct += burst([Flow(entry, client, bed.node(entry).ip, SAMPLE_NODEPORT_LOCAL.node_port)], count=10)
    with client.entered():
        refused = request(Flow("node3", client, bed.node("node3").ip, SAMPLE_NODEPORT_LOCAL.node_port), timeout=3.0)
    checks = {node: health_check(bed, node) for node in bed.nodes}
    wait_haproxy(bed, "my-service", "node3", up=False)
    steady = burst(flows(bed, LB_IP, 80), count=20, interval=0.05)

    # node1 loses its only pod (its successor comes up on node2) while the clients go through haproxy.
    leaving = next(pod.name for pod in bed.pods_of("sample") if pod.node == "node1")
    successor = bed.start_pod("sample", 2, state=PodState.READY)
    bed.wait_tables(has_weight(cluster_ip_key(SAMPLE_WEB), bed.pods[successor].info.ip))
    with Load(flows(bed, LB_IP, 80), interval=0.05, seconds=180) as load:
        time.sleep(1.0)
        lost_at = time.monotonic()
        bed.set_state(leaving, PodState.TERMINATING)
        # The pod still serves through its grace period: long enough for haproxy to take node1 out if node1's
        # health check stops counting a terminating pod (KEP-1669: only ready endpoints count).
        time.sleep(CHECK_INTERVAL * (FALL + 1) + 1.0)
        check_while_terminating = health_check(bed, "node1")
        live = bed.forget_pod(leaving)
        bed.wait_tables(serves_not(cluster_ip_key(SAMPLE_WEB), live.info.ip))
        wait_haproxy(bed, "my-service", "node1", up=False, timeout=30)
        down_at = time.monotonic()
        # Evidence, not a fixed pause: every client's requests after haproxy took node1 out, while node1's pod
        # still runs and once it has gone (a slow guest may take seconds per request).
        load.wait_for(since=down_at, per_flow=AFTER_OUT, timeout=SETTLE_LIMIT)
        time.sleep(PRE_STOP)
        bed.stop_pod(live)
        load.wait_for(since=time.monotonic(), per_flow=AFTER_OUT, timeout=SETTLE_LIMIT)
    during = load.outcomes
    down_after = down_at - lost_at
    after_down = [o for o in during if o.started > down_at]
    replacement = bed.start_pod("sample", 1, state=PodState.READY)  # node1 gets a pod again: haproxy brings it back
    up_after = wait_haproxy(bed, "my-service", "node1", up=True, timeout=30)
    retire = bed.forget_pod(successor)
    bed.wait_tables(serves_not(cluster_ip_key(SAMPLE_WEB), retire.info.ip))
    time.sleep(PRE_STOP)
    bed.stop_pod(retire)

    outcomes = direct + steady + during
    report.record(
        "3-local",
        "externalTrafficPolicy Local, behind haproxy",
        summarize(outcomes),
        health_checks=dict(sorted(checks.items())),
        node1_check_while_its_pod_terminates=check_while_terminating,
        node3_direct=refused.error or "answered",
        haproxy_out_after_s=round(down_after, 2),
        failed_before_out=sum(not o.ok for o in during if o.started <= down_at),
        requests_after_out=len(after_down),
        failed_after_out=sum(not o.ok for o in after_down),
        haproxy_back_after_s=round(up_after, 2),
        replacement=replacement,
    )
    assert all(o.ok and o.seen == client_ip for o in direct), failures(direct)
    assert {node_of(bed, o.server) for o in direct if o.server} == {"node1", "node2"}
    assert not refused.ok
    assert checks == {"node1": 200, "node2": 200, "node3": 503}
    assert not failures(steady), failures(steady)
    assert {node_of(bed, o.server) for o in steady} <= {"node1", "node2"}
    assert not failures(after_down), failures(after_down)


# --- 4 ------------------------------------------------------------------------------------------


@pytest.mark.scenario("4-stickiness", "haproxy stick on src + ClientIP")
def test_4_two_layers_of_stickiness_keep_every_client_on_its_pod(bed: Bed, report: Report) -> None:
    """Through haproxy (stick on src) to a Cluster + ClientIP Service: each of 5 clients x 30 requests keeps
    one entry node and one pod for its whole run."""
    for node in bed.nodes:
        wait_haproxy(bed, "sample-session-affinity", node, up=True)
    outcomes = burst(flows(bed, LB_IP, 8080), count=30, interval=0.05)
    pods = servers_by_flow(outcomes)
    entry_nodes: dict[str, set[str]] = defaultdict(set)
    for outcome in outcomes:
        if outcome.ok:
            entry_nodes[outcome.flow].add(outcome.seen)  # Cluster: the pod sees the entry node's address
    report.record(
        "4-stickiness",
        "haproxy stick on src + ClientIP",
        summarize(outcomes),
        pods_used=len({pod for servers in pods.values() for pod in servers}),
        entry_nodes_used=len({node for nodes in entry_nodes.values() for node in nodes}),
    )
    assert not failures(outcomes), failures(outcomes)
    assert all(len(servers) == 1 for servers in pods.values()), pods
    assert all(len(nodes) == 1 for nodes in entry_nodes.values()), entry_nodes


# --- 5 ------------------------------------------------------------------------------------------


def moves(outcomes: Sequence[Outcome]) -> list[tuple[str, float, str, str]]:
    """Each time a flow's pod changed: (flow, when, from, to)."""
    last: dict[str, str] = {}
    changes = []
    for outcome in sorted(outcomes, key=lambda o: o.started):
        if not outcome.ok:
            continue
        before = last.get(outcome.flow)
        if before is not None and before != outcome.server:
            changes.append((outcome.flow, outcome.started, before, outcome.server))
        last[outcome.flow] = outcome.server
    return changes


@pytest.mark.scenario("5-rolling", "rolling update under load")
def test_5_rolling_update_fails_no_request_and_moves_affine_clients_only_off_leaving_pods(
    bed: Bed, report: Report
) -> None:
    """Every sample pod replaced one at a time (successor ready, then terminating, gone) under load through
    node1 and node2: no request fails; an affine client changes pod only after its pod started terminating."""
    old = [pod.name for pod in bed.pods_of("sample")]
    web = flows(bed, bed.node("node1").ip, SAMPLE_WEB.node_port, clients=(0, 1, 2))
    web += flows(bed, bed.node("node2").ip, SAMPLE_WEB.node_port, clients=(3, 4))
    affine = flows(bed, bed.node("node1").ip, SAMPLE_SESSION_AFFINITY.node_port)
    affine = [Flow(f"affine-{f.name}", f.client, f.host, f.port) for f in affine]
    terminating_at: dict[str, float] = {}
    steps = []
    with Load(web, interval=0.05, seconds=240) as web_load, Load(affine, interval=0.1, seconds=240) as affine_load:
        time.sleep(1.0)
        for name in old:
            terminating_at[name] = time.monotonic()  # a little early: set just before the write
            steps.append(replace_pod(bed, name))
        time.sleep(1.0)
    web_outcomes, affine_outcomes = web_load.outcomes, affine_load.outcomes
    wrong_moves = [
        (flow, source, target)
        for flow, at, source, target in moves(affine_outcomes)
        if source not in terminating_at or at < terminating_at[source]
    ]
    report.record(
        "5-rolling",
        "rolling update under load",
        summarize(web_outcomes + affine_outcomes),
        pods_replaced=len(old),
        converged_ready_s=max(step["ready"] for step in steps),
        converged_terminating_s=max(step["terminating"] for step in steps),
        affine_failed=sum(not o.ok for o in affine_outcomes),
        affine_moves=len(moves(affine_outcomes)),
    )
    assert not failures(web_outcomes), failures(web_outcomes)
    assert not failures(affine_outcomes), failures(affine_outcomes)
    assert not wrong_moves, wrong_moves


# --- 6 ------------------------------------------------------------------------------------------


@pytest.mark.scenario("6-restart", "agent restart under load (SIGTERM, SIGKILL)")
def test_6_agent_restarts_fail_no_request_and_never_flush_the_table(bed: Bed, report: Report) -> None:
    """node1's agent stopped by SIGTERM, started, killed by SIGKILL, started, under TCP and UDP load through
    node1: no request fails, node1's IPVS table never shrinks and its nftables table never disappears."""
    node1 = bed.node("node1")
    load_flows = flows(bed, node1.ip, SAMPLE_WEB.node_port, clients=(0, 1, 2))
    load_flows += flows(bed, node1.ip, SAMPLE_SESSION_AFFINITY.node_port, clients=(3,))
    load_flows += flows(bed, node1.ip, UDP_ECHO.node_port, clients=(4,), udp=True)
    before = bed.table("node1")
    agent = bed.agents["node1"]
    restarts = {}
    with TableWatch([("node1", node1.netns)]) as watch, Load(load_flows, interval=0.05, seconds=240) as load:
        time.sleep(1.0)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            stopped = agent.stop(sig)
            agent.start()
            restarts[sig.name] = (stopped, round(agent.wait_ready(), 1))
            time.sleep(2.0)
    after = bed.table("node1")
    seen = watch.nodes["node1"]
    report.record(
        "6-restart",
        "agent restart under load (SIGTERM, SIGKILL)",
        summarize(load.outcomes),
        exit_and_ready_s=restarts,
        table_samples=seen.samples,
        fewest_virtual_services=seen.fewest_services,
        virtual_services=len(before),
        fewest_serving_reals=seen.fewest_serving,
        serving_reals=serving_reals(before),
        nft_missing=f"{seen.nft_missing}/{seen.nft_checks}",
    )
    assert not failures(load.outcomes), failures(load.outcomes)
    assert restarts["SIGTERM"][0] == 0
    assert seen.fewest_services == len(before)
    assert seen.fewest_serving == serving_reals(before)
    assert seen.nft_missing == 0
    assert set(after) == set(before)


# --- 7 ------------------------------------------------------------------------------------------


def agents_ready(bed: Bed) -> dict[str, bool]:
    """Each agent's /readyz."""
    return {name: agent.ready() for name, agent in bed.agents.items()}


@pytest.mark.scenario("7-apiserver", "kube-apiserver stopped 30 s under load")
def test_7_apiserver_stopped_for_30_s_fails_no_request_and_a_later_change_converges(bed: Bed, report: Report) -> None:
    """The apiserver stopped for 30 s under load through node1 and node2: no request fails, no table shrinks,
    the agents say not ready; once it is back, a new pod converges on every node."""
    settings = bed.settings
    load_flows = flows(bed, bed.node("node1").ip, SAMPLE_WEB.node_port, clients=(0, 1))
    load_flows += flows(bed, bed.node("node2").ip, SAMPLE_SESSION_AFFINITY.node_port, clients=(2, 3))
    load_flows += flows(bed, bed.node("node2").ip, UDP_ECHO.node_port, clients=(4,), udp=True)
    nodes = [(node.name, node.netns) for node in bed.cluster.nodes]
    figures: dict[str, object] = {}
    with TableWatch(nodes) as watch, Load(load_flows, interval=0.1, seconds=240) as load:
        time.sleep(1.0)
        before = {name: bed.table(name) for name in bed.nodes}
        stopped_at = time.monotonic()
        control.ask(host=settings.forward_address, port=settings.control_port, action="stop")
        while any(agents_ready(bed).values()) and time.monotonic() - stopped_at < 30:
            time.sleep(0.5)
        figures["agents_unready_after_s"] = round(time.monotonic() - stopped_at, 1)
        unready = agents_ready(bed)
        time.sleep(max(0.0, 30 - (time.monotonic() - stopped_at)))
        figures["apiserver_restart_s"] = control.ask(
            host=settings.forward_address, port=settings.control_port, action="start"
        )
        changed_at = time.monotonic()
        added = bed.start_pod("sample", 3, state=PodState.READY)
        key = cluster_ip_key(SAMPLE_WEB)
        figures["change_converged_s"] = round(bed.wait_tables(has_weight(key, bed.pods[added].info.ip)), 2)
        while not all(agents_ready(bed).values()) and time.monotonic() - changed_at < 60:
            time.sleep(0.5)
        figures["agents_ready_again_s"] = round(time.monotonic() - changed_at, 1)
        time.sleep(1.0)
    live = bed.forget_pod(added)
    bed.wait_tables(serves_not(key, live.info.ip))
    time.sleep(PRE_STOP)
    bed.stop_pod(live)
    shrunk = {
        name: (watch.nodes[name].fewest_services, len(before[name]), watch.nodes[name].gaps)
        for name in bed.nodes
        if (watch.nodes[name].fewest_services or 0) < len(before[name])
    }
    report.record("7-apiserver", "kube-apiserver stopped 30 s under load", summarize(load.outcomes), **figures)
    assert not failures(load.outcomes), failures(load.outcomes)
    assert not shrunk, shrunk
    assert not any(unready.values()), unready
    assert all(agents_ready(bed).values())


# --- 8 ------------------------------------------------------------------------------------------

CROSS_NODE_CLIENTS = 40


@pytest.mark.scenario("8-cross-node", "one client through node1, node2 and node3")
def test_8_a_client_entering_through_each_node_gets_a_pod_per_node(bed: Bed, report: Report) -> None:
    """40 client addresses each connect once through node1, node2 and node3 to the ClientIP Service: every
    request answered; the share of clients given the same pod through all nodes is recorded (the baseline
    for cluster-wide affinity; per-node persistence promises nothing across nodes)."""
    client = bed.cluster.clients[0]
    sources = [f"192.0.2.{150 + index}" for index in range(CROSS_NODE_CLIENTS)]
    outcomes: list[Outcome] = []
    pods: dict[str, dict[str, str]] = defaultdict(dict)
    with client_sources(bed, sources):
        for node in bed.cluster.nodes:
            done = burst(
                [
                    Flow(source, client.netns, node.ip, SAMPLE_SESSION_AFFINITY.node_port, source=source)
                    for source in sources
                ],
                count=1,
            )
            outcomes += done
            for outcome in done:
                pods[outcome.flow][node.name] = outcome.server
    same_all = sum(1 for by_node in pods.values() if len(set(by_node.values())) == 1)
    same_12 = sum(1 for by_node in pods.values() if by_node.get("node1") == by_node.get("node2"))
    report.record(
        "8-cross-node",
        "one client through node1, node2 and node3",
        summarize(outcomes),
        clients=len(sources),
        same_pod_node1_node2=f"{same_12}/{len(sources)}",
        same_pod_all_nodes=f"{same_all}/{len(sources)}",
    )
    assert not failures(outcomes), failures(outcomes)
    assert len(pods) == len(sources)


# --- 9 ------------------------------------------------------------------------------------------


@pytest.mark.scenario("9-drain", "a removed pod's long request finishes, then its real server goes")
def test_9_a_removed_pods_long_request_completes_then_its_real_server_is_deleted(bed: Bed, report: Report) -> None:
    """A request held in flight (at least 6 s) by a pod that is then removed (a successor ready first) completes;
    meanwhile node1 keeps the pod at weight 0 (draining) and sends it nothing new; once the connection is gone a
    resync deletes it. Other clients keep going through node1 without a failure."""
    node1 = bed.node("node1")
    key = ("TCP", node1.ip, SAMPLE_WEB.node_port)
    long_flow = Flow("long", bed.client(0), node1.ip, SAMPLE_WEB.node_port, path="/hold")
    counts = {name: live.servers.long_requests for name, live in bed.pods.items()}
    result: list[Outcome] = []

    def long_request() -> None:
        with long_flow.client.entered():
            result.append(request(long_flow, timeout=MAX_SLEEP + 15))

    with Load(flows(bed, node1.ip, SAMPLE_WEB.node_port, clients=(1, 2, 3, 4)), interval=0.1, seconds=60) as load:
        holder = threading.Thread(target=long_request, name="long-request", daemon=True)
        held_from = time.monotonic()
        holder.start()
        deadline = time.monotonic() + 5
        target = None
        while target is None and time.monotonic() < deadline:
            target = next((n for n, live in bed.pods.items() if live.servers.long_requests > counts.get(n, 0)), None)
            time.sleep(0.05)
        assert target is not None, "the long request reached no pod"
        successor = bed.start_pod("sample", int(node_of(bed, target)[-1]), state=PodState.READY)
        bed.wait_tables(has_weight(cluster_ip_key(SAMPLE_WEB), bed.pods[successor].info.ip))
        address = bed.pods[target].info.ip
        bed.set_state(target, PodState.TERMINATING)
        live = bed.forget_pod(target)
        removed_at = time.monotonic()
        bed.wait_tables(serves_not(key, address))
        draining: IpvsTable = bed.table("node1")
        time.sleep(max(0.0, DRAIN_REQUEST - (time.monotonic() - held_from)))
        released_at = time.monotonic()
        live.servers.release()
        holder.join(timeout=MAX_SLEEP + 20)
        done_at = time.monotonic()
    (long,) = result
    deleted_after = None
    if long.ok:
        bed.wait_tables(lambda _node, table: address not in weights(table, key), timeout=DRAIN_DELETE_LIMIT)
        deleted_after = round(time.monotonic() - done_at, 1)
    bed.stop_pod(live)
    state = draining.get(key, {}).get((address, workload.HTTP_PORT))
    report.record(
        "9-drain",
        "a removed pod's long request finishes, then its real server goes",
        summarize([*load.outcomes, long]),
        long_request_s=round(long.seconds, 1),
        in_flight_when_removed_s=round(done_at - removed_at, 1),
        draining_on_node1=None if state is None else f"weight {state.weight} active {state.active}",
        deleted_after_completion_s=deleted_after,
    )
    assert not failures(load.outcomes), failures(load.outcomes)
    assert long.ok, long
    # Held until the test let it go (its own clock starts a little after held_from, inside the request).
    assert (long.server, long.started + long.seconds >= released_at) == (target, True), (long, released_at)
    assert state is not None, f"{address} was not on node1 while its request was in flight"
    assert (state.weight, state.active >= 1) == (0, True), state
    assert deleted_after is not None


# --- 10 -----------------------------------------------------------------------------------------

# Issue 20 asks for 1,000 clients. 1,000 distinct IPv4 sources do not fit in the documentation ranges beside
# the bed's own addresses (the LAN is 192.0.2.0/24; pods, ClusterIPs and ingress IPs hold the other two /24s):
# every free LAN address is an IPv4 client, and the twins are dual-stack so that 1,000 IPv6 clients come from
# 2001:db8:c:R::/64 (a /64 per round: a client seen in an earlier round would follow its template), which
# every node routes to client1.
AGREEMENT_SOURCES = tuple(f"192.0.2.{last}" for last in range(110, 250))
AGREEMENT_CLIENTS6 = 1000
CLIENT_NETWORK6 = "2001:db8:c::/48"
IN_FLIGHT = 16  # connections at a time from the one client thread (more only queue: one emulated CPU)


def sources6(round_: int) -> tuple[str, ...]:
    """The IPv6 client addresses of one round."""
    return tuple(f"2001:db8:c:{round_}::{index:x}" for index in range(1, AGREEMENT_CLIENTS6 + 1))


def agreement_through_nodes(bed: Bed, node_port: int, sources: Sequence[str]) -> tuple[list[Outcome], int]:
    """Every source connects once through each node to `node_port` (at the node's address of the source's
    family), each node seeing the sources in its own order (as behind a load balancer, which hands a node its
    clients as they come): the outcomes and how many sources got one pod through all nodes."""
    client = bed.cluster.clients[0]
    outcomes: list[Outcome] = []
    pods: dict[str, set[str]] = defaultdict(set)
    for index, node in enumerate(bed.cluster.nodes):
        shift = index * len(sources) // len(bed.cluster.nodes)
        ordered = [*sources[shift:], *sources[:shift]]
        connects = [Connect(s, s, node.ip6 if ":" in s else node.ip, node_port) for s in ordered]
        for outcome in connect_each(client.netns, connects, in_flight=IN_FLIGHT):
            outcomes.append(outcome)
            pods[outcome.flow].add(outcome.server if outcome.ok else f"failed:{node.name}")
    return outcomes, sum(1 for answered in pods.values() if len(answered) == 1)


@contextlib.contextmanager
def routes_to_clients6(bed: Bed) -> Iterator[None]:
    """Every node routes CLIENT_NETWORK6 to client1 for the block."""
    via = bed.cluster.clients[0].ip6
    for node in bed.cluster.nodes:
        node.netns.ip("-6", "route", "add", CLIENT_NETWORK6, "via", via)
    try:
        yield
    finally:
        for node in bed.cluster.nodes:
            node.netns.ip("-6", "route", "del", CLIENT_NETWORK6, "via", via)


def rejoin_late(bed: Bed, name: str) -> float:
    """A node that joins after the others: its agent stopped, its IPVS table emptied, the agent started again
    (so it adds every real server now, long after the other nodes did); the seconds until it was ready."""
    agent = bed.agents[name]
    agent.stop()
    bed.node(name).netns.ipvsadm("-C")
    agent.start()
    return agent.wait_ready()


@pytest.mark.scenario("10-cluster-affinity", "affinity-scope cluster vs per-node rr persistence, across nodes")
def test_10_cluster_affinity_scope_gives_a_client_one_pod_through_every_node(bed: Bed, report: Report) -> None:
    """140 IPv4 and 1,000 IPv6 client addresses each connect once through node1, node2 and node3 (each node
    seeing them in its own order) to two dual-stack ClientIP Services over the same pods, in one run: with
    `ipvsctl.io/affinity-scope: cluster` every client reaches the same pod through all nodes (issue 20's
    target: 100 % when the nodes hold the same endpoints); the rr baseline's agreement is recorded next to it."""
    agreement: dict[str, str] = {}
    outcomes: list[Outcome] = []
    cluster_rounds: dict[str, tuple[int, int]] = {}  # (agreed, clients) of each cluster-scope measurement
    with routes_to_clients6(bed):
        for label, sources in (("ipv4", AGREEMENT_SOURCES), ("ipv6", sources6(1))):
            with client_sources(bed, sources):
                done, same = agreement_through_nodes(bed, SAMPLE_AFFINITY_NODE.node_port, sources)
                outcomes += done
                agreement[f"rr_{label}"] = f"{same}/{len(sources)}"
                done, same = agreement_through_nodes(bed, SAMPLE_AFFINITY_CLUSTER.node_port, sources)
                outcomes += done
                agreement[f"cluster_{label}"] = f"{same}/{len(sources)}"
                cluster_rounds[label] = (same, len(sources))
    report.record(
        "10-cluster-affinity",
        "affinity-scope cluster vs per-node rr persistence, across nodes",
        summarize(outcomes),
        clients=len(AGREEMENT_SOURCES) + AGREEMENT_CLIENTS6,
        **{f"agreement_{key}": value for key, value in agreement.items()},
    )
    assert not failures(outcomes), failures(outcomes)
    assert all(same == clients for same, clients in cluster_rounds.values()), agreement


# --- 11 -----------------------------------------------------------------------------------------

EXTRA_PODS = ((1, 2), (2, 2), (3, 3))  # (node index, count): 7 more `sample` pods, 10 in all
KEEP_CONNECTIONS = "net.ipv4.vs.expire_nodest_conn"


def serves_exactly6(bed: Bed, names: Sequence[str]) -> Condition:
    """A convergence condition: the cluster-scope Service's IPv6 NodePort serves the IPv6 addresses of `names`."""
    wanted = {bed.pods[name].info.ip6 for name in names}
    key_of = {node: ("TCP", bed.node(node).ip6, SAMPLE_AFFINITY_CLUSTER.node_port) for node in bed.nodes}
    return lambda node, table: {a for a, w in weights(table, key_of[node]).items() if w > 0} == wanted


def roll(bed: Bed, name: str, *, nodes: Sequence[str], serving: list[str]) -> str:
    """Replace pod `name` by a successor on its node (ready first, then `name` gone and stopped), waiting for
    `nodes` to serve the new set; `serving` is updated in place. The successor's name."""
    node_index = int(node_of(bed, name).removeprefix("node"))
    successor = bed.start_pod("sample", node_index, state=PodState.READY)
    serving[serving.index(name)] = successor
    live = bed.forget_pod(name)
    bed.wait_tables(serves_exactly6(bed, serving), nodes=nodes)
    bed.stop_pod(live, grace=1.0)
    return successor


def cluster_agreement(bed: Bed, round_: int) -> tuple[list[Outcome], int]:
    """1,000 new IPv6 clients (round `round_`'s) through every node to the cluster-scope Service."""
    sources = sources6(round_)
    with routes_to_clients6(bed), client_sources(bed, sources):
        return agreement_through_nodes(bed, SAMPLE_AFFINITY_CLUSTER.node_port, sources)


@pytest.mark.slow
@pytest.mark.scenario("11-cluster-affinity-history", "affinity-scope cluster whatever each node's history")
def test_11_cluster_affinity_agrees_after_restarts_late_joins_different_histories_and_during_a_drain(
    bed: Bed, report: Report
) -> None:
    """Issue 20's cases through the real agents, each measured with 1,000 new IPv6 clients through every node
    to the cluster-scope Service, each asserted at 100 %: (a) after node2's agent was killed and started; (b)
    after node3 joined late (agent stopped, table emptied, agent started); (c) with ten pods, after three were
    replaced while node1 saw each step, node2 the first and then the other two at once (its agent stopped
    meanwhile) and node3 only the end (stopped throughout); (d) while a pod drains (terminating, still
    serving), and none of the new clients reaches it. The nodes run with expire_nodest_conn=0, the setting
    docs/semantics.md gives for exact agreement through changes (a busy server may then be moved)."""
    previous = {name: bed.node(name).netns.sysctl(KEEP_CONNECTIONS) for name in bed.nodes}
    for name in bed.nodes:
        bed.node(name).netns.sysctl(KEEP_CONNECTIONS, "0")
        bed.agents[name].extra_args = ("--no-sysctl", KEEP_CONNECTIONS)
    originals = [pod.name for pod in bed.pods_of("sample")]
    outcomes: list[Outcome] = []
    figures: dict[str, object] = {}
    agreed: dict[str, int] = {}

    def measure(case: str, round_: int) -> list[Outcome]:
        done, same = cluster_agreement(bed, round_)
        outcomes.extend(done)
        agreed[case] = same
        figures[f"agreement_{case}"] = f"{same}/{AGREEMENT_CLIENTS6}"
        return done

    try:
        agent = bed.agents["node2"]
        agent.stop(signal.SIGKILL)
        agent.start()
        figures["node2_ready_after_sigkill_s"] = round(agent.wait_ready(), 1)
        measure("a_node2_restarted", 2)
        figures["node3_ready_after_late_join_s"] = round(rejoin_late(bed, "node3"), 1)
        measure("b_node3_late", 3)
        extra = [  # sample-1b, -1c on node1; -2c, -2d on node2; -3a..-3c on node3
            bed.start_pod("sample", node, state=PodState.READY, write=False)
            for node, count in EXTRA_PODS
            for _ in range(count)
        ]
        serving = [*originals, *extra]
        bed.write_slices({"sample"})
        figures["ten_pods_converged_s"] = round(bed.wait_tables(serves_exactly6(bed, serving)), 1)
        bed.agents["node3"].stop()
        roll(bed, extra[0], nodes=("node1", "node2"), serving=serving)
        bed.agents["node2"].stop()
        roll(bed, extra[2], nodes=("node1",), serving=serving)
        roll(bed, extra[5], nodes=("node1",), serving=serving)
        for name in ("node2", "node3"):
            bed.agents[name].start()
        for name in ("node2", "node3"):
            bed.agents[name].wait_ready()
        figures["replaced_converged_s"] = round(bed.wait_tables(serves_exactly6(bed, serving)), 1)
        measure("c_three_histories", 4)
        draining = serving[4]
        bed.set_state(draining, PodState.TERMINATING)
        serving.remove(draining)
        figures["drain_converged_s"] = round(bed.wait_tables(serves_exactly6(bed, serving)), 1)
        done = measure("d_drain", 5)
        figures["new_clients_on_draining_pod"] = reached_draining = sum(1 for o in done if o.server == draining)
    finally:
        for name, value in previous.items():
            bed.agents[name].extra_args = ()
            bed.node(name).netns.sysctl(KEEP_CONNECTIONS, value)
        for name in [pod.name for pod in bed.pods_of("sample", state=None) if pod.name not in originals]:
            bed.stop_pod(bed.forget_pod(name), grace=1.0)
    bed.wait_tables(serves_exactly6(bed, originals))
    report.record(
        "11-cluster-affinity-history",
        "affinity-scope cluster whatever each node's history",
        summarize(outcomes),
        clients=len(agreed) * AGREEMENT_CLIENTS6,
        **figures,
    )
    assert not failures(outcomes), failures(outcomes)
    cases = ("a_node2_restarted", "b_node3_late", "c_three_histories", "d_drain")
    assert (agreed, reached_draining) == (dict.fromkeys(cases, AGREEMENT_CLIENTS6), 0), figures
