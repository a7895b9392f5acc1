"""Cluster-scope services: the plan keeps every node's mh table identical whatever the node's history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipvsctl.affinity_scope import CLUSTER_FLAGS, digest, is_cluster_scope, lookup_table, netmask_notice
from ipvsctl.kube.views import ServiceView
from ipvsctl.maglev import Destination, MaglevTable
from ipvsctl.model import (
    AddRealServer,
    AddVirtualService,
    ConnectionCounts,
    DeleteRealServer,
    DeleteVirtualService,
    EditRealServer,
    EditVirtualService,
    Operation,
    Persistence,
    Protocol,
    RealServer,
    RealServerKey,
    ServiceKey,
    Table,
    VirtualService,
)
from ipvsctl.plan import Ownership, apply_operations, plan
from ipvsctl.translate import NodeContext, NoticeKind, Policy, Translation, translate
from tests.builders import ep, eps, svc

KEY = ServiceKey(Protocol.TCP, "203.0.113.10", 80)
OWNED = Ownership(addresses=frozenset({"203.0.113.10"}))
NODE = NodeContext("worker1", ("192.0.2.11",))
PODS = tuple(RealServer(f"198.51.100.{last}", 8080) for last in range(11, 31))


def cluster(reals: Sequence[RealServer], *, key: ServiceKey = KEY) -> VirtualService:
    """A cluster-scope virtual service as translate makes it."""
    return VirtualService(
        key, scheduler="mh", sched_flags=CLUSTER_FLAGS, persistence=Persistence(10800, 32), reals=tuple(reals)
    )


@dataclass
class KernelList:
    """svc->destinations as ip_vs_ctl.c keeps it: adds at the head, edits in place, last non-zero weight kept."""

    entries: list[Destination]

    def apply(self, operations: Sequence[Operation]) -> None:
        """Apply a plan's operations for KEY as the kernel would."""
        for operation in operations:
            match operation:
                case AddVirtualService() | EditVirtualService():
                    pass
                case DeleteVirtualService():
                    self.entries.clear()
                case AddRealServer(real=real):
                    self.entries.insert(0, Destination(real.address, real.port, real.weight, real.weight))
                case DeleteRealServer(real=real):
                    self.entries = [d for d in self.entries if d.key != real.key]
                case EditRealServer(real=real):
                    self.entries = [
                        Destination(d.address, d.port, real.weight, real.weight or d.last_weight)
                        if d.key == real.key
                        else d
                        for d in self.entries
                    ]

    def table(self) -> MaglevTable:
        """The lookup table the kernel builds from the list."""
        return MaglevTable.build(self.entries, fallback=True)


class Node:
    """One node: its kernel list and its table as ipvsctl's plan leaves them."""

    def __init__(self, *, moves: bool = True) -> None:
        self.moves = moves  # a node with net.ipv4.vs.expire_nodest_conn=0: moves keep connections
        self.kernel = KernelList([])
        self.table = Table()

    def sync(self, wanted: Sequence[RealServer], *, busy: frozenset[RealServerKey] = frozenset()) -> None:
        """Plan from the current table to ``wanted`` (``busy`` servers report connections) and apply."""
        counts = {(KEY, real.key): ConnectionCounts(1 if real.key in busy else 0, 0) for real in PODS}
        desired = Table.of([cluster(wanted)])
        operations = plan(self.table, desired, ownership=OWNED, connections=counts, cluster_moves=self.moves)
        self.kernel.apply(operations)
        self.table = apply_operations(self.table, operations)


def visible_order(node: Node) -> list[RealServerKey]:
    """The servers that hold slots, in the order the table walks them."""
    return [d.key for d in node.kernel.entries if d.last_weight > 0]


def test_a_new_service_is_added_so_the_kernel_walks_it_in_key_order() -> None:
    """Real servers of a new cluster-scope service are added in descending key order (each add is a head)."""
    node = Node()
    node.sync(PODS[:10])

    assert visible_order(node) == [real.key for real in PODS[:10]]


def test_a_server_that_sorts_first_is_just_added() -> None:
    """A new server before every present one needs no move: one add (at the head), nothing deleted."""
    node = Node()
    node.sync(PODS[1:5])
    operations = plan(node.table, Table.of([cluster(PODS[:5])]), ownership=OWNED, connections={}, cluster_moves=True)

    assert operations == (AddRealServer(KEY, PODS[0]),)


def test_a_server_that_sorts_last_moves_the_others_before_it() -> None:
    """A new server after present ones: each is deleted and added back right after, in descending order."""
    node = Node()
    node.sync(PODS[:3])
    operations = plan(node.table, Table.of([cluster(PODS[:4])]), ownership=OWNED, connections={}, cluster_moves=True)

    assert operations == (
        AddRealServer(KEY, PODS[3]),
        DeleteRealServer(KEY, PODS[2]),
        AddRealServer(KEY, PODS[2]),
        DeleteRealServer(KEY, PODS[1]),
        AddRealServer(KEY, PODS[1]),
        DeleteRealServer(KEY, PODS[0]),
        AddRealServer(KEY, PODS[0]),
    )


def test_a_removed_server_with_connections_is_moved_to_weight_0() -> None:
    """A drain is delete + add with weight 0 (no slot), never an edit to 0 (which keeps its slots)."""
    node = Node()
    node.sync(PODS[:4])
    counts = {(KEY, PODS[2].key): ConnectionCounts(3, 0)}
    operations = plan(
        node.table, Table.of([cluster((*PODS[:2], PODS[3]))]), ownership=OWNED, connections=counts, cluster_moves=True
    )

    assert operations == (DeleteRealServer(KEY, PODS[2]), AddRealServer(KEY, PODS[2].with_weight(0)))


def test_a_drained_server_that_comes_back_is_placed_as_a_new_one() -> None:
    """Wanted again, a weight-0 server is moved into its place, not edited where it is."""
    node = Node()
    node.sync(PODS[:4])
    node.sync((*PODS[:2], PODS[3]), busy=frozenset({PODS[2].key}))
    node.sync(PODS[:4], busy=frozenset({PODS[2].key}))

    assert visible_order(node) == [real.key for real in PODS[:4]]


def test_a_service_switched_to_cluster_scope_is_reordered_whole() -> None:
    """A service whose list ipvsctl did not keep (rr before) has every server moved into key order."""
    node = Node()
    before = VirtualService(KEY, scheduler="rr", persistence=Persistence(10800, 32), reals=PODS[:3])
    node.kernel.apply([AddRealServer(KEY, PODS[0]), AddRealServer(KEY, PODS[1]), AddRealServer(KEY, PODS[2])])
    node.table = Table.of([before])
    node.sync(PODS[:3])

    assert visible_order(node) == [real.key for real in PODS[:3]]


histories = st.lists(
    st.tuples(st.sets(st.integers(min_value=0, max_value=len(PODS) - 1), max_size=12), st.sets(st.integers(0, 19))),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(histories, histories, st.sets(st.integers(min_value=0, max_value=len(PODS) - 1), min_size=1, max_size=12))
def test_any_two_histories_end_with_the_same_table(
    first: list[tuple[set[int], set[int]]], second: list[tuple[set[int], set[int]]], final: set[int]
) -> None:
    """Two nodes with any histories of endpoints and busy servers build identical tables for the same endpoints."""
    tables = []
    for history in (first, second):
        node = Node()
        for wanted, busy in history:
            node.sync([PODS[i] for i in sorted(wanted)], busy=frozenset(PODS[i].key for i in busy))
        node.sync([PODS[i] for i in sorted(final)], busy=frozenset(real.key for real in PODS))
        tables.append(node.kernel.table())

    assert [tables[0].destinations[i].key for i in tables[0].slots] == [
        tables[1].destinations[i].key for i in tables[1].slots
    ]
    assert lookup_table(cluster([PODS[i] for i in sorted(final)])).shares() == tables[0].shares()


@settings(max_examples=40, deadline=None)
@given(histories)
def test_a_server_with_connections_is_never_left_deleted(history: list[tuple[set[int], set[int]]]) -> None:
    """Every delete of a server that has connections is followed at once by its add (the trash brings it back)."""
    node = Node()
    for wanted, busy in history:
        busy_keys = frozenset(PODS[i].key for i in busy)
        counts = {(KEY, real.key): ConnectionCounts(1 if real.key in busy_keys else 0, 0) for real in PODS}
        operations = plan(
            node.table,
            Table.of([cluster([PODS[i] for i in sorted(wanted)])]),
            ownership=OWNED,
            connections=counts,
            cluster_moves=True,
        )
        for index, operation in enumerate(operations):
            if isinstance(operation, DeleteRealServer) and operation.real.key in busy_keys:
                following = operations[index + 1] if index + 1 < len(operations) else None
                assert isinstance(following, AddRealServer)
                assert following.real.key == operation.real.key
        node.kernel.apply(operations)
        node.table = apply_operations(node.table, operations)


def test_without_safe_moves_a_drain_is_an_edit_to_weight_0() -> None:
    """Where a move would reset connections, a removed server with connections is edited to weight 0 in place."""
    node = Node(moves=False)
    node.sync(PODS[:4])
    counts = {(KEY, PODS[2].key): ConnectionCounts(3, 0)}
    operations = plan(node.table, Table.of([cluster((*PODS[:2], PODS[3]))]), ownership=OWNED, connections=counts)

    assert operations == (EditRealServer(KEY, PODS[2].with_weight(0), previous=PODS[2], drain=True),)


def test_without_safe_moves_busy_servers_stay_and_the_new_one_is_added() -> None:
    """Where a move would reset connections, servers with connections are not moved: the new one is just added."""
    node = Node(moves=False)
    node.sync(PODS[:3])
    counts = {(KEY, real.key): ConnectionCounts(1, 0) for real in PODS[:3]}
    operations = plan(node.table, Table.of([cluster(PODS[:4])]), ownership=OWNED, connections=counts)

    assert operations == (AddRealServer(KEY, PODS[3]),)


def test_without_safe_moves_idle_servers_are_still_moved() -> None:
    """Servers without connections are moved into key order even where moves are not safe for busy ones."""
    node = Node(moves=False)
    node.sync(PODS[:3])
    node.sync(PODS[:4])

    assert visible_order(node) == [real.key for real in PODS[:4]]


@settings(max_examples=40, deadline=None)
@given(histories)
def test_without_safe_moves_no_server_with_connections_is_ever_deleted(
    history: list[tuple[set[int], set[int]]],
) -> None:
    """Where moves are not safe, a plan never deletes a server the kernel reports connections through."""
    node = Node(moves=False)
    for wanted, busy in history:
        busy_keys = frozenset(PODS[i].key for i in busy)
        counts = {(KEY, real.key): ConnectionCounts(1 if real.key in busy_keys else 0, 0) for real in PODS}
        desired = Table.of([cluster([PODS[i] for i in sorted(wanted)])])
        operations = plan(node.table, desired, ownership=OWNED, connections=counts)

        assert not [op for op in operations if isinstance(op, DeleteRealServer) and op.real.key in busy_keys]
        node.kernel.apply(operations)
        node.table = apply_operations(node.table, operations)


def test_only_mh_with_fallback_and_persistence_is_cluster_scope() -> None:
    """The planner recognises a cluster-scope service by mh, mh-fallback alone, and persistence."""
    assert is_cluster_scope(cluster(PODS[:2]))
    assert not is_cluster_scope(VirtualService(KEY, scheduler="mh", sched_flags=CLUSTER_FLAGS))
    assert not is_cluster_scope(
        VirtualService(
            KEY, scheduler="mh", sched_flags=frozenset({"mh-fallback", "mh-port"}), persistence=Persistence(1, 32)
        )
    )


@pytest.mark.parametrize(
    ("family", "netmask", "said"),
    [(4, 32, False), (4, 24, True), (6, 128, False), (6, 64, True)],
    ids=["v4-host", "v4-net", "v6-host", "v6-net"],
)
def test_a_netmask_wider_than_a_host_is_noticed(family: int, netmask: int, said: bool) -> None:
    """Only a persistence netmask wider than one host weakens the cluster-wide choice."""
    assert bool(netmask_notice(family=family, netmask=netmask)) is said


def test_the_digest_is_the_same_for_equal_endpoints_and_differs_otherwise() -> None:
    """Two nodes' digests agree for the same real servers and differ when one is missing."""
    assert digest(cluster(PODS[:5])) == digest(cluster(tuple(reversed(PODS[:5]))))
    assert digest(cluster(PODS[:5])) != digest(cluster(PODS[:4]))


ANN_SCOPE = "ipvsctl.io/affinity-scope"


def _translate(service: ServiceView, *, policy: Policy | None = None) -> Translation:
    return translate([service], [eps(ep("198.51.100.10"), ep("198.51.100.20"))], node=NODE, policy=policy or Policy())


def test_cluster_scope_makes_a_client_ip_service_mh_with_fallback() -> None:
    """ipvsctl.io/affinity-scope: cluster → mh, mh-fallback, and persistence with its timeout and netmask."""
    service = svc(affinity="ClientIP", timeout=600, annotations={ANN_SCOPE: "cluster"})
    (virtual,) = _translate(service).table

    assert (virtual.scheduler, virtual.sched_flags, virtual.persistence) == ("mh", CLUSTER_FLAGS, Persistence(600, 32))


def test_the_chart_default_applies_to_client_ip_services() -> None:
    """--affinity-scope cluster makes every ClientIP Service cluster-scope, with no notice."""
    translation = _translate(svc(affinity="ClientIP"), policy=Policy(affinity_scope="cluster"))

    assert [vs.scheduler for vs in translation.table] == ["mh"]
    assert translation.notices == ()


def test_the_default_leaves_services_without_affinity_alone() -> None:
    """--affinity-scope cluster does nothing to a Service without sessionAffinity (and says nothing)."""
    translation = _translate(svc(), policy=Policy(affinity_scope="cluster"))

    assert [vs.scheduler for vs in translation.table] == ["rr"]
    assert translation.notices == ()


def test_cluster_scope_without_client_ip_is_noticed_and_ignored() -> None:
    """The annotation on a Service without ClientIP affinity: a notice naming the field; rr as before."""
    translation = _translate(svc(annotations={ANN_SCOPE: "cluster"}))

    assert [vs.scheduler for vs in translation.table] == ["rr"]
    assert [(n.field, n.kind) for n in translation.notices] == [
        (f"metadata.annotations[{ANN_SCOPE}]", NoticeKind.AFFINITY_SCOPE)
    ]
    assert "spec.sessionAffinity: ClientIP" in translation.notices[0].message


def test_node_scope_overrides_the_default() -> None:
    """ipvsctl.io/affinity-scope: node keeps a Service on the default scheduler under a cluster default."""
    service = svc(affinity="ClientIP", annotations={ANN_SCOPE: "node"})

    assert [vs.scheduler for vs in _translate(service, policy=Policy(affinity_scope="cluster")).table] == ["rr"]


@pytest.mark.parametrize("value", ["global", "", "clusters"], ids=["global", "empty", "typo"])
def test_an_unknown_scope_rejects_the_service(value: str) -> None:
    """Anything but node or cluster rejects the Service, naming the annotation."""
    translation = _translate(svc(affinity="ClientIP", annotations={ANN_SCOPE: value}))

    assert len(translation.table) == 0
    assert [r.field for r in translation.rejections] == [f"metadata.annotations[{ANN_SCOPE}]"]


def test_another_scheduler_asked_for_rejects_the_service() -> None:
    """Cluster scope with ipvsctl.io/scheduler: wrr contradicts itself: rejected, naming both annotations."""
    service = svc(affinity="ClientIP", annotations={ANN_SCOPE: "cluster", "ipvsctl.io/scheduler": "wrr"})
    translation = _translate(service)

    assert len(translation.table) == 0
    assert "ipvsctl.io/scheduler" in translation.rejections[0].message


def test_a_wide_netmask_is_noticed() -> None:
    """A /24 persistence netmask with cluster scope gets a notice: the first client of a /24 decides per node."""
    service = svc(affinity="ClientIP", annotations={ANN_SCOPE: "cluster", "ipvsctl.io/persistence-netmask": "24"})
    translation = _translate(service)

    assert [vs.persistence for vs in translation.table] == [Persistence(10800, 24)]
    assert [n.kind for n in translation.notices] == [NoticeKind.AFFINITY_SCOPE]
