"""Cluster-scope tables switch at trigger time + delay on every node, so nodes agree while a change spreads."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ipvsctl.affinity_scope import CLUSTER_FLAGS
from ipvsctl.affinity_switch import due_holds, hold, serving_addresses, switch_time
from ipvsctl.kube.views import EndpointSliceView, EndpointView, ObjectRef
from ipvsctl.model import Persistence, Protocol, RealServer, ServiceKey, VirtualService
from ipvsctl.translate import ServiceResult

KEY = ServiceKey(Protocol.TCP, "203.0.113.10", 80)
REF = ObjectRef("shop", "web")
AGE = ("2026-12-01T00:00:00Z", "shop", "web")
OLD = tuple(RealServer(f"198.51.100.{last}", 8080) for last in (11, 12, 13))
NEW = (*OLD[:2], RealServer("198.51.100.14", 8080))  # .13 replaced by .14


def cluster(reals: Sequence[RealServer], *, key: ServiceKey = KEY) -> VirtualService:
    """A cluster-scope virtual service as translate makes it."""
    return VirtualService(
        key, scheduler="mh", sched_flags=CLUSTER_FLAGS, persistence=Persistence(10800, 32), reals=tuple(reals)
    )


def result(*services: VirtualService) -> ServiceResult:
    """One Service's translation, naming each real server's pod by its last octet."""
    reals = [real for vs in services for real in vs.reals]
    pods = {real.address: ObjectRef("shop", f"web-{real.address.rsplit('.', 1)[1]}") for real in reals}
    return ServiceResult(ref=REF, age=AGE, services=services, pods=pods)


def a_slice(*endpoints: EndpointView, trigger: float | None = 1000.0) -> EndpointSliceView:
    """An IPv4 slice of shop/web."""
    return EndpointSliceView(
        ObjectRef("shop", "web-abc"), "web", "IPv4", endpoints=tuple(endpoints), trigger_time=trigger
    )


SERVING = frozenset(real.address for real in (*OLD, *NEW))


def test_a_change_before_its_moment_keeps_the_old_servers() -> None:
    """Before trigger time + delay, a cluster-scope virtual service keeps the servers it had."""
    held = hold(result(cluster(NEW)), old=result(cluster(OLD)), switch_at=1003.0, now=1001.0, serving=SERVING)
    assert (held.result.services[0].reals, held.until) == (OLD, 1003.0)


def test_a_change_at_its_moment_takes_effect() -> None:
    """At trigger time + delay the new servers are the table."""
    held = hold(result(cluster(NEW)), old=result(cluster(OLD)), switch_at=1003.0, now=1003.0, serving=SERVING)
    assert (held.result.services[0].reals, held.until) == (NEW, None)


def test_held_servers_keep_their_pod_names() -> None:
    """A held server is still named by its pod (explain, Events and metrics say which pod it is)."""
    held = hold(result(cluster(NEW)), old=result(cluster(OLD)), switch_at=1003.0, now=1001.0, serving=SERVING)
    assert held.result.pods["198.51.100.13"] == ObjectRef("shop", "web-13")


def test_a_server_that_stopped_serving_leaves_at_once() -> None:
    """An old server no longer serving in any slice is not held: a dead pod leaves at once."""
    serving = SERVING - {"198.51.100.13"}
    held = hold(result(cluster(NEW)), old=result(cluster(OLD)), switch_at=1003.0, now=1001.0, serving=serving)
    assert held.result.services[0].reals == OLD[:2]


def test_nothing_is_held_when_no_old_server_serves() -> None:
    """A virtual service none of whose old servers serves switches at once (holding would hold nothing)."""
    only_new = frozenset({NEW[2].address})
    held = hold(result(cluster(NEW)), old=result(cluster(OLD)), switch_at=1003.0, now=1001.0, serving=only_new)
    assert (held.result.services[0].reals, held.until) == (NEW, None)


def test_a_service_that_is_not_cluster_scope_changes_at_once() -> None:
    """Only cluster-scope virtual services are held: rr with persistence decides per node anyway."""
    plain_old, plain_new = VirtualService(KEY, reals=OLD), VirtualService(KEY, reals=NEW)
    held = hold(result(plain_new), old=result(plain_old), switch_at=1003.0, now=1001.0, serving=SERVING)
    assert (held.result.services[0].reals, held.until) == (NEW, None)


def test_a_new_virtual_service_is_not_held() -> None:
    """A VIP the old translation did not have gets its servers at once."""
    other = ServiceKey(Protocol.TCP, "203.0.113.11", 80)
    held = hold(
        result(cluster(OLD), cluster(NEW, key=other)),
        old=result(cluster(OLD)),
        switch_at=1003.0,
        now=1001.0,
        serving=SERVING,
    )
    assert (held.result.services[1].reals, held.until) == (NEW, None)


def test_settings_change_at_once_while_servers_are_held() -> None:
    """A held virtual service has the new settings (a new timeout) with the old servers."""
    new = VirtualService(KEY, scheduler="mh", sched_flags=CLUSTER_FLAGS, persistence=Persistence(300, 32), reals=NEW)
    held = hold(result(new), old=result(cluster(OLD)), switch_at=1003.0, now=1001.0, serving=SERVING)
    assert (held.result.services[0].persistence, held.result.services[0].reals) == (Persistence(300, 32), OLD)


def test_without_an_old_translation_nothing_is_held() -> None:
    """The first translation after a start programs what the slices say."""
    held = hold(result(cluster(NEW)), old=None, switch_at=1003.0, now=1001.0, serving=SERVING)
    assert held.until is None


@pytest.mark.parametrize(
    ("triggers", "delay", "expected"),
    [
        pytest.param((1000.0, 990.0), 3.0, 1003.0, id="latest-trigger-plus-delay"),
        pytest.param((1000.0, None), 3.0, 1003.0, id="slices-without-a-trigger-ignored"),
        pytest.param((None,), 3.0, None, id="no-trigger-no-hold"),
        pytest.param((1000.0,), 0.0, None, id="delay-0-off"),
        pytest.param((9_999_999_999.0,), 3.0, 1004.0, id="future-trigger-capped-at-now-plus-delay"),
    ],
)
def test_switch_time(triggers: tuple[float | None, ...], delay: float, expected: float | None) -> None:
    """The moment is the latest trigger time plus the delay, never later than now plus the delay."""
    slices = [a_slice(trigger=trigger) for trigger in triggers]
    assert switch_time(slices, delay=delay, now=1001.0) == expected


def test_serving_addresses_include_terminating_serving_endpoints() -> None:
    """A terminating pod that still serves can be held; one that does not serve cannot."""
    view = a_slice(
        EndpointView("198.51.100.11"),
        EndpointView("198.51.100.12", ready=False, serving=True, terminating=True),
        EndpointView("198.51.100.13", ready=False, serving=False, terminating=True),
    )
    assert serving_addresses([view]) == {"198.51.100.11", "198.51.100.12"}


def test_due_holds_are_taken_once() -> None:
    """Services whose moment came are handed out and forgotten; later ones stay."""
    holds = {REF: 1003.0, ObjectRef("shop", "api"): 1010.0}
    assert (due_holds(holds, now=1005.0), holds) == ({REF}, {ObjectRef("shop", "api"): 1010.0})
