"""The cluster cache answers "which Services does this change affect?"."""

from __future__ import annotations

from ipvsctl.agent.cache import ClusterCache, Invalid, ObjectHandler, Subject
from ipvsctl.kube.views import ObjectRef
from tests.agent.fakes import endpoint_slice, node, service

WEB, API = ObjectRef("default", "web"), ObjectRef("default", "api")


class Recorder:
    def __init__(self) -> None:
        self.changes: list[set[ObjectRef]] = []
        self.invalid: list[Invalid] = []
        self.valid: list[Subject] = []


def handler(kind: str, cache: ClusterCache, seen: Recorder) -> ObjectHandler:
    return ObjectHandler(
        kind=kind,
        cache=cache,
        on_change=seen.changes.append,
        on_invalid=seen.invalid.append,
        on_valid=seen.valid.append,
    )


def test_relist_reports_added_changed_and_vanished_services_only() -> None:
    """A relist after missed events: web changed, api vanished, db added; unchanged ones are not reported."""
    cache, seen = ClusterCache(node_name="worker1"), Recorder()
    services = handler("Service", cache, seen)
    same = service("same", cluster_ip="10.0.0.5")
    services.replace([service("web", cluster_ip="10.0.0.10"), service("api", cluster_ip="10.0.0.20"), same])
    services.replace([service("web", cluster_ip="10.0.0.11"), service("db", cluster_ip="10.0.0.30"), same])
    assert seen.changes[-1] == {WEB, API, ObjectRef("default", "db")}
    assert set(cache.services) == {WEB, ObjectRef("default", "db"), ObjectRef("default", "same")}


def test_slice_moving_to_another_service_affects_both() -> None:
    """A slice relabelled from web to api: both Services are translated again."""
    cache, seen = ClusterCache(node_name="worker1"), Recorder()
    slices = handler("EndpointSlice", cache, seen)
    slices.upsert(endpoint_slice("s-1", service="web", endpoints=[("10.1.0.1", "worker1")]))
    slices.upsert(endpoint_slice("s-1", service="api", endpoints=[("10.1.0.1", "worker1")]))
    assert seen.changes == [{WEB}, {WEB, API}]
    assert (cache.slices_for(WEB), len(cache.slices_for(API))) == ([], 1)


def test_identical_event_affects_nothing() -> None:
    """A MODIFIED event that changes nothing the proxy reads (a resync, a status write) affects no Service."""
    cache, seen = ClusterCache(node_name="worker1"), Recorder()
    services = handler("Service", cache, seen)
    services.upsert(service("web", cluster_ip="10.0.0.10"))
    services.upsert(service("web", cluster_ip="10.0.0.10"))
    assert seen.changes == [{WEB}, set()]


def test_node_address_change_affects_every_service() -> None:
    """This Node's addresses change (NodePort VIPs move): every Service; another Node: none."""
    cache, seen = ClusterCache(node_name="worker1"), Recorder()
    handler("Service", cache, seen).replace([service("web", cluster_ip="10.0.0.10")])
    nodes = handler("Node", cache, seen)
    nodes.upsert(node(addresses=["192.0.2.1"]))
    nodes.upsert(node(addresses=["192.0.2.2"]))
    nodes.upsert(node("worker2", addresses=["192.0.2.9"]))
    assert seen.changes[1:] == [{WEB}, {WEB}, set()]


def test_malformed_object_is_reported_and_treated_as_absent() -> None:
    """A Service that no longer parses is removed from the cache and reported with its field."""
    cache, seen = ClusterCache(node_name="worker1"), Recorder()
    services = handler("Service", cache, seen)
    services.upsert(service("web", cluster_ip="10.0.0.10"))
    services.upsert(service("web", cluster_ip="10.0.0.10", ports=[{"port": 0}]))
    (invalid,) = seen.invalid
    assert (invalid.subject.ref, invalid.error.field, WEB in cache.services) == (WEB, "spec.ports[0].port", False)
    assert seen.changes == [{WEB}, {WEB}]
