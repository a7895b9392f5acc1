"""``ipvsctl.explain``: one client and one VIP:port joined with the node's tables and the cluster (pure)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import netaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvsctl.conntable import Connection, ConnectionProtocol
from ipvsctl.explain import (
    ClusterInput,
    DecidedBy,
    EntryOwner,
    Explanation,
    KernelInput,
    LeftOutReason,
    NetfilterInput,
    RealServerState,
    explain,
    explanation_json,
    explanation_text,
)
from ipvsctl.kube.views import EndpointSliceView, EndpointView, ObjectRef, ServiceView
from ipvsctl.model import ConnectionCounts, Protocol, RealServer, RealServerKey, ServiceKey, Table, VirtualService
from ipvsctl.netfilter.elements import desired_elements
from ipvsctl.translate import NodeContext, Policy, group_slices, translate
from tests.builders import ep, eps, port, svc

NODE = NodeContext("worker1", ("192.0.2.11",), zone="zone-a")
VIP = "203.0.113.10"
WEB = ServiceKey(Protocol.TCP, VIP, 80)
CLIENT = "192.0.2.50"
NETMASK = "ipvsctl.io/persistence-netmask"
TWO_PODS = eps(ep("198.51.100.10", pod="web-1"), ep("198.51.100.11", node="worker2", pod="web-2"))


def _template(client: str, real: str, *, expires: int = 295, vip: str = VIP, port: int = 80) -> Connection:
    """A persistence template as /proc/net/ip_vs_conn lists it (client port 0, client already masked)."""
    return Connection(ConnectionProtocol.TCP, client, 0, vip, port, real, 8080, "NONE", expires)


def _connection(client: str, real: str, *, client_port: int = 43210) -> Connection:
    return Connection(ConnectionProtocol.TCP, client, client_port, VIP, 80, real, 8080, "ESTABLISHED", 880)


def _explain(
    services: Sequence[ServiceView],
    slices: Sequence[EndpointSliceView],
    *,
    client: str = CLIENT,
    target: ServiceKey = WEB,
    live: Table | None = None,
    owned: Callable[[ServiceKey], bool] = lambda _key: True,
    connections: Sequence[Connection] | None = (),
    counts: dict[tuple[ServiceKey, RealServerKey], ConnectionCounts] | None = None,
    policy: Policy | None = None,
    netfilter: bool = False,
    cluster_cidrs: tuple[str, ...] = (),
) -> Explanation:
    """Translate the objects for worker1 and explain; the live table is the desired one unless given."""
    translation = translate(services, slices, node=NODE, policy=policy or Policy())
    cluster = ClusterInput(
        node=NODE,
        translation=translation,
        services={view.ref: view for view in services},
        slices=group_slices(slices),
    )
    table = translation.table if live is None else live
    kernel = KernelInput(table, owned, counts=counts, connections=connections)
    filtering = None
    if netfilter:
        roles = {key: role for result in translation.results.values() for key, role in result.roles.items()}
        filtered = {key.address for key in translation.table.services if key.address not in NODE.addresses}
        elements = desired_elements(
            translation.table.services,
            roles,
            filtered_addresses=filtered,
            cluster_families={4} if cluster_cidrs else (),
        )
        filtering = NetfilterInput("desired", elements, None, cluster_cidrs)
    return explain(client=client, target=target, kernel=kernel, cluster=cluster, netfilter=filtering)


def _sticky(**annotations: str) -> ServiceView:
    return svc(affinity="ClientIP", timeout=600, annotations=annotations or None)


# --- the match --------------------------------------------------------------------------------------


def test_the_matching_virtual_service_is_named_by_its_service_and_port() -> None:
    """The exact protocol/VIP/port matches, owned by the Service, from its clusterIP and port http."""
    answer = _explain([svc()], [TWO_PODS])

    assert answer.found
    assert answer.owner is EntryOwner.SERVICE
    assert answer.service is not None
    assert (answer.service.service, answer.service.source) == (ObjectRef("default", "web"), "spec.clusterIPs[0]")
    assert answer.service.port is not None
    assert answer.service.port.name == "http"


def test_no_virtual_service_at_the_port_is_not_found() -> None:
    """Another port of the VIP matches nothing: found is False, and no Service asks for it."""
    answer = _explain([svc()], [TWO_PODS], target=ServiceKey(Protocol.TCP, VIP, 443))

    assert not answer.found
    assert answer.candidates == ()


def test_another_protocol_at_the_vip_port_is_not_found() -> None:
    """UDP to a TCP Service's VIP:port matches nothing."""
    assert not _explain([svc()], [TWO_PODS], target=ServiceKey(Protocol.UDP, VIP, 80)).found


def test_a_rejected_service_asking_for_the_vip_is_a_candidate_with_its_rejection() -> None:
    """No match, and the Service whose spec asks for the VIP:port is named with why it was rejected."""
    rejected = svc(affinity="ClientIP", timeout=999_999)

    answer = _explain([rejected], [TWO_PODS])

    assert not answer.found
    (candidate,) = answer.candidates
    assert candidate.service == ObjectRef("default", "web")
    assert [rejection.field for rejection in candidate.rejections] == [
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
    ]


def test_a_desired_entry_missing_from_the_kernel_is_not_found_but_said_desired() -> None:
    """An empty kernel table: nothing matches, and the explanation holds what the agent wants there."""
    answer = _explain([svc()], [TWO_PODS], live=Table())

    assert not answer.found
    assert answer.desired is not None
    assert answer.desired.key == WEB


def test_a_foreign_entry_is_marked_foreign() -> None:
    """An entry the agent does not own (keepalived's) at the VIP:port is foreign, with no Service."""
    foreign = Table.of([VirtualService(WEB, scheduler="wlc", reals=(RealServer("198.51.100.99", 80),))])

    answer = _explain([], [], live=foreign, owned=lambda _key: False)

    assert answer.owner is EntryOwner.FOREIGN
    assert answer.service is None
    assert [view.state for view in answer.real_servers] == [RealServerState.SERVING]


def test_a_foreign_entry_where_a_service_wants_the_key_leaves_the_service_a_candidate() -> None:
    """A foreign entry holds the Service's VIP:port: it is not the Service's; the Service is named as a candidate."""
    foreign = Table.of([VirtualService(WEB, scheduler="wlc", reals=(RealServer("198.51.100.99", 80),))])

    answer = _explain([svc()], [TWO_PODS], live=foreign, owned=lambda _key: False)

    assert (answer.owner, answer.service, answer.left_out) == (EntryOwner.FOREIGN, None, ())
    (candidate,) = answer.candidates
    assert (candidate.service, candidate.desired) == (ObjectRef("default", "web"), True)


def test_an_owned_entry_no_service_wants_is_stale() -> None:
    """An owned entry that no Service asks for is stale: the agent deletes it."""
    stale = Table.of([VirtualService(WEB, reals=(RealServer("198.51.100.10", 8080),))])

    assert _explain([], [], live=stale).owner is EntryOwner.STALE


def test_the_port_zero_catch_all_matches_when_the_port_has_no_entry() -> None:
    """As ip_vs_service_find: no entry at the port, the VIP's port-0 service matches."""
    catch_all = Table.of([VirtualService(ServiceKey(Protocol.TCP, VIP, 0), reals=(RealServer("198.51.100.9", 0),))])

    answer = _explain([], [], live=catch_all, owned=lambda _key: False, target=ServiceKey(Protocol.TCP, VIP, 8443))

    assert answer.found
    assert answer.port_zero


# --- real servers and left-out endpoints ------------------------------------------------------------


def test_real_servers_carry_pod_node_weight_and_counts() -> None:
    """Each real server is named by its Pod and node, with the kernel's connection counts."""
    counts = {(WEB, RealServerKey("198.51.100.11", 8080)): ConnectionCounts(2, 5)}

    answer = _explain([svc()], [TWO_PODS], counts=counts)

    second = answer.real_servers[1]
    assert (second.pod, second.node, second.real.weight) == (ObjectRef("default", "web-2"), "worker2", 1)
    assert second.counts == ConnectionCounts(2, 5)
    assert answer.real_servers[0].counts == ConnectionCounts(0, 0)


def test_a_real_server_at_weight_zero_is_draining() -> None:
    """A real server the kernel holds at weight 0 (its endpoint gone) is draining, with its connections."""
    live = Table.of(
        [VirtualService(WEB, reals=(RealServer("198.51.100.10", 8080), RealServer("198.51.100.12", 8080, weight=0)))]
    )
    counts = {(WEB, RealServerKey("198.51.100.12", 8080)): ConnectionCounts(1, 3)}

    answer = _explain([svc()], [eps(ep("198.51.100.10"))], live=live, counts=counts)

    draining = answer.real_servers[1]
    assert (draining.state, draining.counts) == (RealServerState.DRAINING, ConnectionCounts(1, 3))


def test_a_desired_real_server_not_in_the_kernel_is_missing() -> None:
    """A desired real server the kernel lacks is listed as missing (not programmed yet)."""
    live = Table.of([VirtualService(WEB, reals=(RealServer("198.51.100.10", 8080),))])

    answer = _explain([svc()], [TWO_PODS], live=live)

    assert [(view.real.address, view.state) for view in answer.real_servers] == [
        ("198.51.100.10", RealServerState.SERVING),
        ("198.51.100.11", RealServerState.MISSING),
    ]


def test_a_real_server_with_a_weight_that_is_no_longer_an_endpoint_is_unwanted() -> None:
    """A real server in the kernel with a weight whose endpoint is gone is unwanted (the agent drains it)."""
    live = Table.of([VirtualService(WEB, reals=(RealServer("198.51.100.10", 8080), RealServer("198.51.100.13", 8080)))])

    answer = _explain([svc()], [eps(ep("198.51.100.10"))], live=live)

    assert answer.real_servers[1].state is RealServerState.UNWANTED


LOCAL_NODE_PORT = ServiceKey(Protocol.TCP, "192.0.2.11", 30080)
ZONED = [
    eps(
        ep("198.51.100.10", pod="web-1", zones=["zone-a"]),
        ep("198.51.100.11", node="worker2", pod="web-2", zones=["zone-b"]),
    )
]


@pytest.mark.parametrize(
    ("service", "slices", "target", "expected"),
    [
        pytest.param(
            svc(type="NodePort", ports=[port(node_port=30080)], etp="Local"),
            [TWO_PODS],
            LOCAL_NODE_PORT,
            [("198.51.100.11", LeftOutReason.OTHER_NODE)],
            id="local-policy-other-node",
        ),
        pytest.param(
            svc(),
            [eps(ep("198.51.100.10"), ep("198.51.100.11", ready=False))],
            WEB,
            [("198.51.100.11", LeftOutReason.NOT_READY)],
            id="not-ready",
        ),
        pytest.param(
            svc(),
            [eps(ep("198.51.100.10"), ep("198.51.100.11", ready=False, serving=True, terminating=True))],
            WEB,
            [("198.51.100.11", LeftOutReason.TERMINATING)],
            id="terminating-while-others-ready",
        ),
        pytest.param(
            svc(cluster_ips=[VIP, "2001:db8:f::10"]),
            [eps(ep("198.51.100.10")), eps(ep("2001:db8:5::10"), address_type="IPv6")],
            WEB,
            [("2001:db8:5::10", LeftOutReason.OTHER_FAMILY)],
            id="other-family",
        ),
        pytest.param(svc(), ZONED, WEB, [("198.51.100.11", LeftOutReason.TOPOLOGY)], id="topology-zone-hints"),
        pytest.param(
            svc(),
            [eps(ep("198.51.100.10"), ep("127.0.0.1"))],
            WEB,
            [("127.0.0.1", LeftOutReason.REFUSED_ADDRESS)],
            id="refused-address",
        ),
    ],
)
def test_left_out_endpoints_carry_their_reason(
    service: ServiceView, slices: list[EndpointSliceView], target: ServiceKey, expected: list[tuple[str, LeftOutReason]]
) -> None:
    """Each endpoint that is not a real server of the VIP is listed with why, as translation left it out."""
    answer = _explain([service], slices, target=target)

    assert [(left.address, left.reason) for left in answer.left_out] == expected
    assert {view.real.address for view in answer.real_servers}.isdisjoint(address for address, _ in expected)


def test_an_ipv6_endpoint_of_an_ipv4_only_service_says_the_service_has_no_ipv6_cluster_ip() -> None:
    """The other-family reason says when the Service has no cluster IP of the endpoint's family at all."""
    answer = _explain([svc()], [eps(ep("198.51.100.10")), eps(ep("2001:db8:5::10"), address_type="IPv6")])

    (left,) = answer.left_out
    assert "no IPv6 cluster IP" in left.detail


def test_the_services_notices_come_with_it() -> None:
    """Translation's notices about the Service (here topology) are part of the explanation, unchanged."""
    answer = _explain([svc()], ZONED)

    assert [notice.kind.value for notice in answer.notices] == ["topology"]


def test_the_cluster_ip_of_a_local_policy_service_keeps_every_endpoint() -> None:
    """externalTrafficPolicy Local does not narrow the ClusterIP: no endpoint is left out of it."""
    service = svc(type="NodePort", ports=[port(node_port=30080)], etp="Local")

    assert _explain([service], [TWO_PODS]).left_out == ()


# --- who decides -----------------------------------------------------------------------------------


def test_a_pinned_client_names_its_template_pod_and_time_left() -> None:
    """A template covering the client decides: its real server, Pod and seconds left."""
    answer = _explain([_sticky()], [TWO_PODS], connections=[_template(CLIENT, "198.51.100.11", expires=295)])

    decision = answer.decision
    assert decision is not None
    assert decision.by is DecidedBy.TEMPLATE
    assert decision.pin is not None
    assert (decision.pin.real_server, decision.pin.pod) == (
        RealServerKey("198.51.100.11", 8080),
        ObjectRef("default", "web-2"),
    )
    assert (decision.pin.expires, decision.pin.timeout, decision.pinned_weight) == (295, 600, 1)


@pytest.mark.parametrize(
    ("client", "pinned"),
    [
        pytest.param("192.0.2.77", True, id="same-24"),
        pytest.param("192.0.2.0", True, id="network-address"),
        pytest.param("192.0.3.77", False, id="next-24"),
    ],
)
def test_the_persistence_netmask_decides_which_clients_a_template_covers(client: str, pinned: bool) -> None:
    """With netmask /24, the template of 192.0.2.0 pins every client of 192.0.2.0/24, and no other."""
    answer = _explain(
        [_sticky(**{NETMASK: "24"})], [TWO_PODS], client=client, connections=[_template("192.0.2.0", "198.51.100.10")]
    )

    assert answer.decision is not None
    assert (answer.decision.by is DecidedBy.TEMPLATE) == pinned


def test_an_unpinned_client_of_a_persistent_service_is_scheduled_and_told_its_network() -> None:
    """No template covers the client: the scheduler decides, and the choice will pin its /24."""
    answer = _explain([_sticky(**{NETMASK: "24"})], [TWO_PODS], client="192.0.2.77", connections=[])

    decision = answer.decision
    assert decision is not None
    assert (decision.by, decision.scheduler, decision.client_network) == (DecidedBy.SCHEDULER, "rr", "192.0.2.0/24")
    assert len(decision.candidates) == 2


def test_a_service_without_persistence_is_decided_by_its_scheduler() -> None:
    """No session affinity: the scheduler decides each connection, and no network is pinned."""
    decision = _explain([svc(annotations={"ipvsctl.io/scheduler": "wlc"})], [TWO_PODS]).decision

    assert decision is not None
    assert (decision.by, decision.scheduler, decision.persistence, decision.client_network) == (
        DecidedBy.SCHEDULER,
        "wlc",
        None,
        None,
    )


def test_without_the_connection_table_a_pin_is_unknown() -> None:
    """A persistent service and no connection table read: whether the client is pinned is unknown."""
    decision = _explain([_sticky()], [TWO_PODS], connections=None).decision

    assert decision is not None
    assert decision.by is DecidedBy.UNKNOWN


def test_a_pin_to_a_draining_server_reports_its_weight_zero() -> None:
    """A template pointing at a real server drained to weight 0 is reported with that weight."""
    live = Table.of(
        [
            VirtualService(
                WEB,
                persistence=_explain([_sticky()], [TWO_PODS]).virtual_service.persistence,  # type: ignore[union-attr]
                reals=(RealServer("198.51.100.10", 8080), RealServer("198.51.100.11", 8080, weight=0)),
            )
        ]
    )

    answer = _explain([_sticky()], [TWO_PODS], live=live, connections=[_template(CLIENT, "198.51.100.11")])

    assert answer.decision is not None
    assert answer.decision.pinned_weight == 0


def test_no_real_server_with_a_weight_means_nobody_decides() -> None:
    """A virtual service without real servers schedules nothing."""
    decision = _explain([svc()], []).decision

    assert decision is not None
    assert decision.by is DecidedBy.NOBODY


def test_the_clients_own_connections_are_listed() -> None:
    """The client's live connections through the VIP:port are listed; other clients' are not."""
    connections = [_connection(CLIENT, "198.51.100.10"), _connection("192.0.2.51", "198.51.100.11")]

    answer = _explain([svc()], [TWO_PODS], connections=connections)

    assert answer.connections is not None
    assert [(each.client_port, each.real_server.address) for each in answer.connections] == [(43210, "198.51.100.10")]


# --- nftables ---------------------------------------------------------------------------------------

BALANCER = "203.0.113.20"
RANGED = dataclasses.replace(
    svc(type="LoadBalancer", load_balancer_ips=[BALANCER]), load_balancer_source_ranges=("192.0.2.0/24",)
)
BALANCED = Policy(load_balancer_ip_cidrs=netaddr.IPSet(["203.0.113.0/24"]))


@pytest.mark.parametrize(
    ("client", "allowed"),
    [pytest.param("192.0.2.50", True, id="inside-allowed"), pytest.param("198.51.100.50", False, id="outside-dropped")],
)
def test_source_ranges_are_evaluated_against_the_client(client: str, allowed: bool) -> None:
    """loadBalancerSourceRanges 192.0.2.0/24: a client inside passes, one outside is dropped."""
    target = ServiceKey(Protocol.TCP, BALANCER, 80)

    verdict = _explain([RANGED], [TWO_PODS], client=client, target=target, policy=BALANCED, netfilter=True).netfilter

    assert verdict is not None
    assert (verdict.source_ranges, verdict.source_allowed) == (("192.0.2.0/24",), allowed)


def test_a_vip_without_source_ranges_restricts_no_client() -> None:
    """No source ranges: nothing to evaluate, the VIP filter lets the port through."""
    verdict = _explain([svc()], [TWO_PODS], netfilter=True).netfilter

    assert verdict is not None
    assert (verdict.source_ranges, verdict.source_allowed, verdict.filtered, verdict.port_open) == (
        None,
        None,
        True,
        True,
    )


@pytest.mark.parametrize(
    ("service", "target", "cluster_cidrs", "masquerade"),
    [
        pytest.param(RANGED, ServiceKey(Protocol.TCP, BALANCER, 80), (), True, id="external-cluster-policy"),
        pytest.param(
            dataclasses.replace(RANGED, external_traffic_policy="Local"),
            ServiceKey(Protocol.TCP, BALANCER, 80),
            (),
            False,
            id="external-local-policy",
        ),
        pytest.param(svc(), WEB, ("192.0.2.0/24",), False, id="cluster-ip-from-the-pod-network"),
        pytest.param(svc(), WEB, ("10.244.0.0/16",), True, id="cluster-ip-from-outside-the-pod-network"),
        pytest.param(svc(), WEB, (), False, id="cluster-ip-pod-network-not-given"),
    ],
)
def test_masquerade_is_decided_for_the_client(
    service: ServiceView, target: ServiceKey, cluster_cidrs: tuple[str, ...], masquerade: bool
) -> None:
    """Masquerade follows the VIP's kind, its traffic policy and, for a ClusterIP, the client's network."""
    verdict = _explain(
        [service], [TWO_PODS], target=target, policy=BALANCED, netfilter=True, cluster_cidrs=cluster_cidrs
    ).netfilter

    assert verdict is not None
    assert verdict.masquerade is masquerade


def test_an_address_under_the_vip_filter_with_another_port_is_rejected_there() -> None:
    """No virtual service at the port of an agent VIP: the filter rejects it (and nothing matches)."""
    verdict = _explain([svc()], [TWO_PODS], target=ServiceKey(Protocol.TCP, VIP, 22), netfilter=True).netfilter

    assert verdict is not None
    assert (verdict.filtered, verdict.port_open) == (True, False)


def test_a_pod_reaching_its_own_service_is_hairpin_masqueraded() -> None:
    """The client is a real server of the VIP: its hairpin element NATs it, so it is masqueraded."""
    verdict = _explain([svc()], [TWO_PODS], client="198.51.100.10", netfilter=True).netfilter

    assert verdict is not None
    assert (verdict.hairpin, verdict.masquerade) == (True, True)


@pytest.mark.parametrize(
    ("client", "allowed"),
    [pytest.param("192.0.2.9", True, id="inside-range"), pytest.param("192.0.2.10", False, id="past-range")],
)
def test_a_source_range_nft_lists_as_first_last_is_evaluated(client: str, allowed: bool) -> None:
    """nft lists a range that is no single prefix as first-last: the client is checked against its bounds."""
    key = ("203.0.113.20", "tcp", 80)
    elements = {("ranged4", key), ("allowed4", (*key, "192.0.2.0-192.0.2.9"))}
    answer = explain(
        client=client,
        target=ServiceKey(Protocol.TCP, "203.0.113.20", 80),
        kernel=KernelInput(Table(), lambda _key: True),
        cluster=ClusterInput(
            node=NODE, translation=translate([], [], node=NODE, policy=Policy()), services={}, slices={}
        ),
        netfilter=NetfilterInput("file", elements),
    )

    assert answer.netfilter is not None
    assert answer.netfilter.source_allowed is allowed


# --- rendering --------------------------------------------------------------------------------------

SCHEMA_KEYS = {
    "schema",
    "client",
    "node",
    "found",
    "to",
    "virtualService",
    "service",
    "realServers",
    "leftOut",
    "notices",
    "decision",
    "connections",
    "netfilter",
    "candidates",
}


def test_json_has_the_documented_top_level_keys() -> None:
    """The JSON document is ipvsctl.explain/v1 with exactly the documented top-level keys."""
    document = explanation_json(_explain([_sticky()], [TWO_PODS], connections=[_template(CLIENT, "198.51.100.11")]))

    assert document["schema"] == "ipvsctl.explain/v1"
    assert set(document) == SCHEMA_KEYS


def test_json_of_a_pin_names_the_pod_and_seconds_left() -> None:
    """decision.pin carries the client network, real server, Pod and time left."""
    document = explanation_json(_explain([_sticky()], [TWO_PODS], connections=[_template(CLIENT, "198.51.100.11")]))

    assert document["decision"] == {
        "by": "template",
        "scheduler": "rr",
        "flags": [],
        "persistence": {"timeout": 600, "netmask": 32},
        "clientNetwork": "192.0.2.50/32",
        "pin": {
            "clientNetwork": "192.0.2.50/32",
            "realServer": {"address": "198.51.100.11", "port": 8080},
            "pod": {"namespace": "default", "name": "web-2"},
            "expiresSeconds": 295,
            "timeoutSeconds": 600,
            "weight": 1,
        },
        "candidates": [{"address": "198.51.100.10", "port": 8080}, {"address": "198.51.100.11", "port": 8080}],
    }


def test_text_names_the_pin_and_the_left_out_endpoint() -> None:
    """The text says who is pinned where for how long, and which endpoint is out and why."""
    slices = [eps(ep("198.51.100.10"), ep("198.51.100.11", node="worker2", pod="web-2", ready=False))]

    text = explanation_text(_explain([_sticky()], slices, connections=[_template(CLIENT, "198.51.100.10")]))

    assert "pinned to 198.51.100.10:8080 by the template of 192.0.2.50/32, 295s of 600s left" in text
    assert "198.51.100.11:8080  [pod default/web-2]  node worker2: not-ready: not ready" in text


def test_text_escapes_a_pod_name_that_would_forge_a_line() -> None:
    """A Pod name with a newline cannot add a line to the text."""
    slices = [eps(ep("198.51.100.10", pod="web-1\ndecision: forged"))]

    text = explanation_text(_explain([svc()], slices))

    assert not any(line.startswith("decision: forged") for line in text.splitlines())


# --- a property -------------------------------------------------------------------------------------


@st.composite
def _endpoints(draw: st.DrawFn) -> list[EndpointView]:
    """Up to 8 endpoints at distinct addresses of both families, with any conditions, nodes and zone hints."""
    pool = [f"198.51.100.{n}" for n in range(10, 20)] + [f"2001:db8:5::{n}" for n in range(10, 20)]
    chosen = draw(st.lists(st.sampled_from(pool), max_size=8, unique=True))
    return [
        ep(
            address,
            node=draw(st.sampled_from(["worker1", "worker2"])),
            ready=draw(st.booleans()),
            serving=draw(st.booleans()),
            terminating=draw(st.booleans()),
            zones=draw(st.sampled_from([(), ("zone-a",), ("zone-b",)])),
        )
        for address in chosen
    ]


@given(endpoints=_endpoints(), etp=st.sampled_from(["Cluster", "Local"]), node_port=st.booleans())
def test_every_endpoint_is_a_real_server_or_left_out_once(
    endpoints: list[EndpointView], etp: str, node_port: bool
) -> None:
    """For the VIP asked about, each endpoint of the port is exactly one of: a real server, or left out."""
    service = svc(type="NodePort", ports=[port(node_port=30080)], etp=etp)
    slices = [
        eps(*[e for e in endpoints if ":" not in e.address]),
        eps(*[e for e in endpoints if ":" in e.address], address_type="IPv6"),
    ]
    target = LOCAL_NODE_PORT if node_port else WEB

    answer = _explain([service], slices, target=target)

    reals = [view.real.address for view in answer.real_servers]
    left = [each.address for each in answer.left_out]
    assert sorted(reals + left) == sorted(e.address for e in endpoints)


def test_text_writes_a_left_out_ipv6_endpoint_in_brackets() -> None:
    """An IPv6 endpoint left out of an IPv4 VIP is written [address]:port."""
    answer = _explain([svc()], [eps(ep("198.51.100.10")), eps(ep("2001:db8:5::10"), address_type="IPv6")])

    assert "    [2001:db8:5::10]:8080  node worker1: other-family: " in explanation_text(answer)
