"""Translation rules: Services + EndpointSlices + node → desired virtual services."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import netaddr
import pytest

from ipvsctl.kube.views import EndpointSliceView, ObjectRef, ServiceView, SlicePortView
from ipvsctl.model import Persistence, Protocol, ServiceKey
from ipvsctl.translate import NodeContext, Policy, Translation, translate
from tests.builders import ep, eps, port, svc

NODE = NodeContext("worker1", ("192.0.2.11",))
ANN_SCHED = "ipvsctl.io/scheduler"
ANN_MASK = "ipvsctl.io/persistence-netmask"


def run(
    services: Sequence[ServiceView],
    slices: Sequence[EndpointSliceView] = (),
    *,
    node: NodeContext = NODE,
    policy: Policy | None = None,
) -> Translation:
    return translate(services, slices, node=node, policy=policy or Policy())


def summary(translation: Translation) -> dict[str, list[str]]:
    """VIP → its real servers, as strings."""
    return {str(vs.key): [str(r) for r in vs.reals] for vs in translation.table}


THREE = eps(
    ep("198.51.100.10", node="worker1", pod="p1"),
    ep("198.51.100.20", node="worker2", pod="p2"),
    ep("198.51.100.21", node="worker2", pod="p3"),
)
ALL3 = ["198.51.100.10:8080", "198.51.100.20:8080", "198.51.100.21:8080"]
LOCAL1 = ["198.51.100.10:8080"]


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        pytest.param(svc(), {"tcp/203.0.113.10:80": ALL3}, id="cluster-ip"),
        pytest.param(
            svc(type="NodePort", ports=[port(node_port=30080)]),
            {"tcp/203.0.113.10:80": ALL3, "tcp/192.0.2.11:30080": ALL3},
            id="node-port-on-node-ip",
        ),
        pytest.param(
            svc(type="ClusterIP", ports=[port(node_port=30080)]),
            {"tcp/203.0.113.10:80": ALL3},
            id="node-port-ignored-for-cluster-ip-type",
        ),
        pytest.param(
            svc(type="LoadBalancer", ports=[port(node_port=30080)], load_balancer_ips=["192.0.2.100"]),
            {"tcp/203.0.113.10:80": ALL3, "tcp/192.0.2.11:30080": ALL3, "tcp/192.0.2.100:80": ALL3},
            id="load-balancer-ingress",
        ),
        pytest.param(
            svc(type="LoadBalancer", load_balancer_ips=["192.0.2.100"]),
            {"tcp/203.0.113.10:80": ALL3, "tcp/192.0.2.100:80": ALL3},
            id="load-balancer-without-node-port",
        ),
        pytest.param(
            svc(external_ips=["192.0.2.50"]),
            {"tcp/203.0.113.10:80": ALL3, "tcp/192.0.2.50:80": ALL3},
            id="external-ip",
        ),
        pytest.param(
            svc(type="NodePort", ports=[port(node_port=30085)], etp="Local"),
            {"tcp/203.0.113.10:80": ALL3, "tcp/192.0.2.11:30085": LOCAL1},
            id="etp-local-trims-node-port-not-cluster-ip",
        ),
        pytest.param(
            svc(type="LoadBalancer", load_balancer_ips=["192.0.2.100"], external_ips=["192.0.2.50"], etp="Local"),
            {"tcp/203.0.113.10:80": ALL3, "tcp/192.0.2.50:80": LOCAL1, "tcp/192.0.2.100:80": LOCAL1},
            id="etp-local-trims-external-and-ingress",
        ),
        pytest.param(
            svc(itp="Local", type="NodePort", ports=[port(node_port=30080)]),
            {"tcp/203.0.113.10:80": LOCAL1, "tcp/192.0.2.11:30080": ALL3},
            id="itp-local-trims-cluster-ip-only",
        ),
        pytest.param(
            svc(ports=[port(53, name="dns", protocol=Protocol.UDP)]),
            {"udp/203.0.113.10:53": []},
            id="port-name-must-match-slice",
        ),
    ],
)
def test_virtual_services_per_vip_kind(service: ServiceView, expected: dict[str, list[str]]) -> None:
    """Each VIP kind becomes a virtual service with the right real servers for its traffic policy."""
    result = run([service], [THREE])
    assert summary(result) == expected
    assert not result.rejections


@pytest.mark.parametrize(
    "service",
    [
        pytest.param(svc(type="ExternalName", cluster_ips=()), id="external-name"),
        pytest.param(svc(cluster_ips=("None",)), id="headless"),
        pytest.param(svc(labels={"service.kubernetes.io/service-proxy-name": "other"}), id="other-proxy"),
    ],
)
def test_skipped_services_make_nothing(service: ServiceView) -> None:
    """ExternalName, headless and other proxies' Services get no virtual services and no error."""
    result = run([service], [THREE])
    assert len(result.table) == 0
    assert not result.rejections
    assert result.results[service.ref].skipped


def test_etp_local_without_local_endpoints_has_no_real_servers() -> None:
    """No local endpoints: the external VIP exists with no real servers (dropped, no fallback)."""
    remote = eps(ep("198.51.100.20", node="worker2"))
    result = run([svc(type="NodePort", ports=[port(node_port=30085)], etp="Local")], [remote])
    assert summary(result)["tcp/192.0.2.11:30085"] == []


def test_etp_local_without_local_endpoints_is_noticed() -> None:
    """An eTP=Local Service with nothing on this node gets a notice saying traffic is dropped."""
    remote = eps(ep("198.51.100.20", node="worker2"))
    result = run([svc(type="NodePort", ports=[port(node_port=30085)], etp="Local")], [remote])
    assert any("dropped" in notice.message for notice in result.notices)


@pytest.mark.parametrize(
    ("service", "endpoints"),
    [
        pytest.param(svc(type="NodePort", ports=[port(node_port=30085)], etp="Local"), THREE, id="local-endpoint"),
        pytest.param(svc(etp="Local"), eps(ep("198.51.100.20", node="worker2")), id="cluster-ip-only"),
        pytest.param(
            svc(type="NodePort", ports=[port(node_port=30085)]),
            eps(ep("198.51.100.20", node="worker2")),
            id="etp-cluster",
        ),
    ],
)
def test_no_dropped_traffic_notice_otherwise(service: ServiceView, endpoints: EndpointSliceView) -> None:
    """No such notice with a local endpoint, without an external VIP, or with an externalTrafficPolicy of Cluster."""
    result = run([service], [endpoints])
    assert not any("dropped" in notice.message for notice in result.notices)


@pytest.mark.parametrize(
    ("endpoints", "cluster", "local"),
    [
        pytest.param(
            [ep("198.51.100.10"), ep("198.51.100.20", node="worker2", ready=False)],
            ["198.51.100.10:8080"],
            ["198.51.100.10:8080"],
            id="not-ready-excluded",
        ),
        pytest.param(
            [ep("198.51.100.10", ready=False, serving=True, terminating=True), ep("198.51.100.20", node="worker2")],
            ["198.51.100.20:8080"],
            ["198.51.100.10:8080"],
            id="terminating-fallback-decided-per-set",
        ),
        pytest.param(
            [
                ep("198.51.100.10", ready=False, serving=True, terminating=True),
                ep("198.51.100.20", node="worker2", ready=False, serving=False, terminating=True),
            ],
            ["198.51.100.10:8080"],
            ["198.51.100.10:8080"],
            id="only-serving-terminating-used",
        ),
        pytest.param(
            [ep("198.51.100.10", ready=False, serving=False)],
            [],
            [],
            id="not-serving-never-used",
        ),
    ],
)
def test_endpoint_conditions(endpoints: list[object], cluster: list[str], local: list[str]) -> None:
    """Ready endpoints are used; serving+terminating only when none are ready, per cluster/local set."""
    service = svc(type="NodePort", ports=[port(node_port=30085)], etp="Local")
    result = run([service], [eps(*endpoints)])  # type: ignore[arg-type]
    got = summary(result)
    assert got["tcp/203.0.113.10:80"] == cluster
    assert got["tcp/192.0.2.11:30085"] == local


def test_fqdn_and_other_family_slices_ignored() -> None:
    """An IPv6 slice gives no real servers to an IPv4 VIP."""
    v6 = eps(ep("2001:db8::10"), address_type="IPv6", name="web-v6")
    assert summary(run([svc()], [v6])) == {"tcp/203.0.113.10:80": []}


def test_dual_stack_service_pairs_families() -> None:
    """Each cluster IP gets the real servers of its own family."""
    v4 = eps(ep("198.51.100.10"), name="web-a")
    v6 = eps(ep("2001:db8::10"), address_type="IPv6", name="web-b")
    result = run([svc(cluster_ips=("203.0.113.10", "2001:db8:1::10"))], [v4, v6])
    assert summary(result) == {
        "tcp/203.0.113.10:80": ["198.51.100.10:8080"],
        "tcp/[2001:db8:1::10]:80": ["[2001:db8::10]:8080"],
    }


def test_dual_stack_node_ports_on_both_families() -> None:
    """Node IPs of each family carry the NodePort with same-family real servers."""
    node = NodeContext("worker1", ("192.0.2.11", "2001:db8::11"))
    v6 = eps(ep("2001:db8::10"), address_type="IPv6", name="web-b")
    service = svc(cluster_ips=("203.0.113.10", "2001:db8:1::10"), type="NodePort", ports=[port(node_port=30080)])
    result = run([service], [THREE, v6], node=node)
    assert summary(result)["tcp/[2001:db8::11]:30080"] == ["[2001:db8::10]:8080"]
    assert summary(result)["tcp/192.0.2.11:30080"] == ALL3


def test_slice_of_other_namespace_ignored() -> None:
    """A slice with the same service-name label in another namespace is not used."""
    other = eps(ep("198.51.100.99"), namespace="other")
    assert summary(run([svc()], [other])) == {"tcp/203.0.113.10:80": []}


def test_endpoint_in_two_slices_listed_once() -> None:
    """An endpoint repeated across slices appears once, with its best conditions."""
    first = eps(ep("198.51.100.10", ready=False), name="web-1")
    second = eps(ep("198.51.100.10"), name="web-2")
    assert summary(run([svc()], [first, second])) == {"tcp/203.0.113.10:80": ["198.51.100.10:8080"]}


def test_slice_port_matches_protocol_too() -> None:
    """A slice port of the same name but another protocol does not match."""
    udp = eps(ep("198.51.100.10"), ports=[SlicePortView("http", Protocol.UDP, 8080)])
    assert summary(run([svc()], [udp])) == {"tcp/203.0.113.10:80": []}


def test_unnamed_ports_match() -> None:
    """A single unnamed Service port matches the unnamed slice port."""
    unnamed = eps(ep("198.51.100.10"), ports=[SlicePortView("", Protocol.TCP, 9090)])
    result = run([svc(ports=[port(name="")])], [unnamed])
    assert summary(result) == {"tcp/203.0.113.10:80": ["198.51.100.10:9090"]}


@pytest.mark.parametrize("protocol", [Protocol.TCP, Protocol.UDP, Protocol.SCTP])
def test_protocols(protocol: Protocol) -> None:
    """TCP, UDP and SCTP ports become virtual services of that protocol."""
    slice_ = eps(ep("198.51.100.10"), ports=[SlicePortView("p", protocol, 5000)])
    result = run([svc(ports=[port(5000, name="p", protocol=protocol)])], [slice_])
    assert summary(result) == {f"{protocol.value}/203.0.113.10:5000": ["198.51.100.10:5000"]}


def test_real_servers_are_masq_weight_one() -> None:
    """Real servers get weight 1 and masquerading."""
    (virtual,) = run([svc()], [THREE]).table
    assert {(r.weight, r.forwarding.value) for r in virtual.reals} == {(1, "masq")}


def test_client_ip_affinity_defaults() -> None:
    """ClientIP without timeout: persistent 10800 s, netmask /32."""
    (virtual,) = run([svc(affinity="ClientIP")], [THREE]).table
    assert virtual.persistence == Persistence(timeout=10800, netmask=32)


def test_client_ip_affinity_timeout() -> None:
    """timeoutSeconds becomes the persistence timeout."""
    (virtual,) = run([svc(affinity="ClientIP", timeout=600)], [THREE]).table
    assert virtual.persistence == Persistence(timeout=600, netmask=32)


def test_no_affinity_no_persistence() -> None:
    """sessionAffinity None leaves the service non-persistent."""
    (virtual,) = run([svc(timeout=600)], [THREE]).table
    assert virtual.persistence is None


@pytest.mark.parametrize(
    ("annotation", "cluster_ips", "expected"),
    [
        pytest.param("24", ("203.0.113.10",), {4: 24}, id="prefix"),
        pytest.param("/24", ("203.0.113.10",), {4: 24}, id="slash-prefix"),
        pytest.param("255.255.0.0", ("203.0.113.10",), {4: 16}, id="dotted"),
        pytest.param("64", ("2001:db8:1::10",), {6: 64}, id="ipv6-prefix"),
        pytest.param("ipv4=24,ipv6=48", ("203.0.113.10", "2001:db8:1::10"), {4: 24, 6: 48}, id="dual-stack"),
        pytest.param("ipv6=48", ("203.0.113.10", "2001:db8:1::10"), {4: 32, 6: 48}, id="dual-stack-one-family"),
    ],
)
def test_persistence_netmask_annotation(
    annotation: str, cluster_ips: tuple[str, ...], expected: dict[int, int]
) -> None:
    """The netmask annotation sets the persistence granularity per family."""
    service = svc(affinity="ClientIP", cluster_ips=cluster_ips, annotations={ANN_MASK: annotation})
    result = run([service])
    assert {vs.key.family: vs.persistence.netmask for vs in result.table if vs.persistence} == expected


def test_agent_default_netmask() -> None:
    """The agent-wide default netmask applies without an annotation."""
    result = run([svc(affinity="ClientIP")], policy=Policy(netmask_v4=24))
    (virtual,) = result.table
    assert virtual.persistence == Persistence(timeout=10800, netmask=24)


def test_scheduler_annotation() -> None:
    """The scheduler annotation picks the IPVS scheduler."""
    (virtual,) = run([svc(annotations={ANN_SCHED: "mh"})]).table
    assert virtual.scheduler == "mh"


def test_agent_default_scheduler() -> None:
    """Without an annotation the agent default scheduler is used."""
    (virtual,) = run([svc()], policy=Policy(default_scheduler="wlc")).table
    assert virtual.scheduler == "wlc"


BAD = [
    pytest.param(svc(affinity="ClientIP", timeout=0), "timeoutSeconds", "outside 1..86400", id="timeout-zero"),
    pytest.param(svc(affinity="ClientIP", timeout=86401), "timeoutSeconds", "86401", id="timeout-too-big"),
    pytest.param(svc(affinity="Sticky"), "spec.sessionAffinity", "not None or ClientIP", id="affinity-value"),
    pytest.param(svc(annotations={ANN_SCHED: "fastest"}), ANN_SCHED, "unknown scheduler", id="scheduler"),
    pytest.param(svc(annotations={ANN_SCHED: ""}), ANN_SCHED, "unknown scheduler", id="scheduler-empty"),
    pytest.param(svc(affinity="ClientIP", annotations={ANN_MASK: "33"}), ANN_MASK, "outside 1..32", id="mask-33"),
    pytest.param(svc(affinity="ClientIP", annotations={ANN_MASK: "0"}), ANN_MASK, "outside 1..32", id="mask-0"),
    pytest.param(svc(affinity="ClientIP", annotations={ANN_MASK: "abc"}), ANN_MASK, "not a prefix", id="mask-text"),
    pytest.param(
        svc(affinity="ClientIP", annotations={ANN_MASK: "255.0.255.0"}), ANN_MASK, "contiguous", id="mask-holes"
    ),
    pytest.param(
        svc(affinity="ClientIP", annotations={ANN_MASK: "0.0.0.255"}), ANN_MASK, "contiguous", id="mask-hostmask"
    ),
    pytest.param(
        svc(affinity="ClientIP", cluster_ips=("203.0.113.10", "2001:db8:1::10"), annotations={ANN_MASK: "24"}),
        ANN_MASK,
        "ambiguous",
        id="mask-dual-stack-bare",
    ),
    pytest.param(
        svc(affinity="ClientIP", annotations={ANN_MASK: "ipv7=3"}), ANN_MASK, "unknown family", id="mask-family"
    ),
    pytest.param(
        svc(affinity="ClientIP", annotations={ANN_MASK: "ipv6=64"}), ANN_MASK, "no IPv6 address", id="mask-no-family"
    ),
    pytest.param(
        svc(affinity="ClientIP", annotations={ANN_MASK: "24,"}), ANN_MASK, "empty entry", id="mask-empty-entry"
    ),
    pytest.param(
        svc(affinity="ClientIP", annotations={ANN_MASK: "ipv4=24,255.0.0.0"}), ANN_MASK, "twice", id="mask-twice"
    ),
    pytest.param(svc(etp="Locale"), "spec.externalTrafficPolicy", "not Cluster or Local", id="etp"),
    pytest.param(svc(itp="Nowhere"), "spec.internalTrafficPolicy", "not Cluster or Local", id="itp"),
    pytest.param(
        svc(type="NodePort", ports=[port(node_port=8080)]), "spec.ports[0].nodePort", "node-port range", id="nodeport"
    ),
    pytest.param(svc(ports=[port(80), port(80, name="b")]), "spec.ports[1]", "duplicates", id="duplicate-port"),
]


@pytest.mark.parametrize(("bad", "field", "phrase"), BAD)
def test_invalid_service_is_rejected_by_field(bad: ServiceView, field: str, phrase: str) -> None:
    """An invalid Service gets a rejection naming it, the field and the problem; it makes no VIPs."""
    bad = replace(bad, ref=ObjectRef("default", "bad"))
    result = run([bad], [THREE])
    assert len(result.table) == 0
    (rejection,) = result.rejections
    assert rejection.service == ObjectRef("default", "bad")
    assert field in rejection.field
    assert phrase in rejection.message


@pytest.mark.parametrize(("bad", "field", "phrase"), BAD)
def test_invalid_service_leaves_others_alone(bad: ServiceView, field: str, phrase: str) -> None:
    """A rejected Service does not change what a good Service gets."""
    bad = replace(bad, ref=ObjectRef("default", "bad"), creation_timestamp="2020-01-01")
    good = svc()
    alone = summary(run([good], [THREE]))
    assert summary(run([bad, good], [THREE])) == alone


def test_vip_conflict_older_service_wins() -> None:
    """Two Services on one VIP:port: the older keeps it, the newer gets a conflict error for that VIP."""
    old = svc("old", created="2025-01-01T00:00:00Z")
    new = svc("new", created="2026-06-01T00:00:00Z", external_ips=["192.0.2.50"])
    result = run([new, old], [THREE, eps(ep("198.51.100.30"), service="new")])
    assert result.owners[ServiceKey(Protocol.TCP, "203.0.113.10", 80)] == ObjectRef("default", "old")
    (rejection,) = result.rejections
    assert rejection.service == ObjectRef("default", "new")
    assert "already used by older Service default/old" in rejection.message


def test_vip_conflict_loser_keeps_other_vips() -> None:
    """The newer Service of a conflict keeps its VIPs that do not conflict."""
    old = svc("old", created="2025-01-01T00:00:00Z")
    new = svc("new", created="2026-06-01T00:00:00Z", external_ips=["192.0.2.50"])
    result = run([new, old], [THREE, eps(ep("198.51.100.30"), service="new")])
    assert result.owners[ServiceKey(Protocol.TCP, "192.0.2.50", 80)] == ObjectRef("default", "new")


def test_vip_conflict_same_age_tie_broken_by_name() -> None:
    """With equal creation times, namespace/name order decides the winner."""
    a = svc("a", created="2025-01-01T00:00:00Z")
    b = svc("b", created="2025-01-01T00:00:00Z")
    result = run([b, a])
    assert result.owners[ServiceKey(Protocol.TCP, "203.0.113.10", 80)] == ObjectRef("default", "a")


def test_external_ip_outside_allow_list_ignored() -> None:
    """An externalIP outside --external-ip-cidrs is not programmed and is noticed."""
    policy = Policy(external_ip_cidrs=netaddr.IPSet(["192.0.2.0/28"]))
    result = run([svc(external_ips=["192.0.2.5", "192.0.2.50"])], policy=policy)
    assert set(summary(result)) == {"tcp/203.0.113.10:80", "tcp/192.0.2.5:80"}
    assert any("192.0.2.50" in notice.message for notice in result.notices)


def test_unknown_ipvsctl_annotation_noticed() -> None:
    """A misspelt ipvsctl.io annotation is reported, the Service still programmed."""
    result = run([svc(annotations={"ipvsctl.io/schedular": "mh"})])
    assert len(result.table) == 1
    assert "ipvsctl.io/schedular" in result.notices[0].field


def test_pods_named_by_real_server_address() -> None:
    """Real server addresses map to the Pod of their targetRef."""
    result = run([svc()], [THREE])
    assert result.pods["198.51.100.20"] == ObjectRef("default", "p2")


def test_local_endpoint_count() -> None:
    """The result counts distinct usable endpoint addresses on this node (health checks use it)."""
    result = run([svc(etp="Local", type="LoadBalancer")], [THREE])
    assert result.results[ObjectRef("default", "web")].local_endpoints == 1
