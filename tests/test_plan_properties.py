"""Planner properties (hypothesis): applying a plan reaches the desired table and spares foreign entries."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from ipvsctl.model import (
    AddVirtualService,
    ConnectionCounts,
    DeleteVirtualService,
    RealServer,
    RealServerKey,
    ServiceKey,
    Table,
    VirtualService,
)
from ipvsctl.plan import Connections, Ownership, Settled, apply_operations, plan
from tests.strategies import real_servers, service_keys, virtual_services


@dataclass(frozen=True)
class Case:
    """A current table, a desired table and what the agent owns, sharing keys and real servers."""

    current: Table
    desired: Table
    ownership: Ownership


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """Current and desired tables drawn over one pool of keys, so that adds, edits and deletes all occur."""
    keys = draw(st.lists(service_keys(), min_size=1, max_size=6, unique=True))
    current: list[VirtualService] = []
    desired: list[VirtualService] = []
    for key in keys:
        pool = draw(st.lists(real_servers(key=key), max_size=4, unique_by=lambda real: real.key))
        for side in (current, desired):
            if draw(st.booleans()):
                service = draw(virtual_services(key=key, max_reals=0))
                chosen = draw(st.lists(st.sampled_from(pool), unique_by=lambda r: r.key)) if pool else []
                side.append(replace(service, reals=tuple(_jiggle(draw, chosen))))
    owned_addresses = draw(st.frozensets(st.sampled_from([k.address for k in keys])))
    return Case(Table.of(current), Table.of(desired), Ownership(addresses=owned_addresses))


def _jiggle(draw: st.DrawFn, reals: list[RealServer]) -> list[RealServer]:
    """Sometimes change a chosen real server's weight, so both sides disagree on shared servers."""
    return [real.with_weight(draw(st.sampled_from((real.weight, 0, 1)))) for real in reals]


def zero_connections(table: Table) -> Connections:
    """Connection counts of zero for every real server: drains complete at once."""
    return {(vs.key, real.key): ConnectionCounts(0, 0) for vs in table for real in vs.reals}


def is_owned(key: ServiceKey, case: Case) -> bool:
    """The ownership rules alone: wanting a key does not make an existing entry the agent's."""
    return case.ownership.owns(key)


def reachable(case: Case) -> dict[ServiceKey, VirtualService]:
    """What the plan can make of the desired table: its keys that are new or already the agent's."""
    return {key: vs for key, vs in case.desired.services.items() if key not in case.current or is_owned(key, case)}


def owned_part(table: Table, case: Case) -> dict[ServiceKey, VirtualService]:
    """Entries the agent manages: owned ones, and those that were not there before (its adds)."""
    return {key: vs for key, vs in table.services.items() if is_owned(key, case) or key not in case.current}


def foreign_part(table: Table, case: Case) -> dict[ServiceKey, VirtualService]:
    """Entries that were there before and are not the agent's."""
    return {key: vs for key, vs in table.services.items() if not is_owned(key, case) and key in case.current}


@settings(max_examples=150)
@given(cases())
def test_applying_plan_yields_desired_on_owned_entries(case: Case) -> None:
    """apply(current, plan(current, desired)) equals desired on the entries the agent manages (drained)."""
    operations = plan(case.current, case.desired, ownership=case.ownership, connections=zero_connections(case.current))
    after = apply_operations(case.current, operations)
    assert owned_part(after, case) == reachable(case)


@settings(max_examples=150)
@given(cases(), st.data())
def test_applying_plan_leaves_foreign_entries_unchanged(case: Case, data: st.DataObject) -> None:
    """Virtual services the agent does not own are exactly as they were, whatever is desired or refused."""
    refused = (
        data.draw(st.frozensets(st.sampled_from(sorted(case.desired.services, key=ServiceKey.sort_key))))
        if case.desired.services
        else frozenset()
    )
    operations = plan(case.current, case.desired, ownership=case.ownership, refused=refused)
    after = apply_operations(case.current, operations)
    assert foreign_part(after, case) == foreign_part(case.current, case)


@given(cases())
def test_plan_of_desired_against_itself_is_empty(case: Case) -> None:
    """plan(desired, desired) is empty."""
    assert plan(case.desired, case.desired, ownership=case.ownership) == ()


@settings(max_examples=150)
@given(cases())
def test_never_deletes_and_adds_the_same_service(case: Case) -> None:
    """A service that exists on both sides is edited, never deleted and re-added."""
    operations = plan(case.current, case.desired, ownership=case.ownership)
    deleted = {op.key for op in operations if isinstance(op, DeleteVirtualService)}
    added = {op.key for op in operations if isinstance(op, AddVirtualService)}
    assert not deleted & added


@settings(max_examples=150)
@given(cases())
def test_second_plan_is_empty_after_drains_finish(case: Case) -> None:
    """Once applied and drained, planning again finds nothing to do."""
    first = plan(case.current, case.desired, ownership=case.ownership, connections=zero_connections(case.current))
    after = apply_operations(case.current, first)
    assert plan(after, case.desired, ownership=case.ownership, connections=zero_connections(after)) == ()


@settings(max_examples=100)
@given(cases())
def test_drains_converge_when_connections_end(case: Case) -> None:
    """With unknown counts a first pass drains; when connections end, a second pass reaches desired."""
    after_drain = apply_operations(case.current, plan(case.current, case.desired, ownership=case.ownership))
    final = apply_operations(
        after_drain,
        plan(after_drain, case.desired, ownership=case.ownership, connections=zero_connections(after_drain)),
    )
    assert owned_part(final, case) == reachable(case)


@settings(max_examples=100)
@given(cases())
def test_draining_keeps_live_servers_at_weight_zero(case: Case) -> None:
    """With connections everywhere, no TCP real server is deleted from a kept service: it drains at weight 0."""
    busy: dict[tuple[ServiceKey, RealServerKey], ConnectionCounts] = {
        (vs.key, real.key): ConnectionCounts(1, 0) for vs in case.current for real in vs.reals
    }
    after = apply_operations(case.current, plan(case.current, case.desired, ownership=case.ownership, connections=busy))
    for key, wanted in case.desired.services.items():
        if key.protocol.value != "tcp" or key not in case.current or not is_owned(key, case):
            continue
        kept = after.services[key].real_map()
        for real_key, old in case.current.services[key].real_map().items():
            if real_key not in wanted.real_map():
                assert kept[real_key].weight == 0, f"{old} should drain, not go"


@settings(max_examples=150)
@given(cases(), st.data())
def test_refused_keys_are_never_added_or_edited(case: Case, data: st.DataObject) -> None:
    """A refused desired key gets no add or edit: at most its owned stale entry is deleted."""
    keys = sorted(case.desired.services, key=ServiceKey.sort_key)
    refused = data.draw(st.frozensets(st.sampled_from(keys))) if keys else frozenset()
    operations = plan(case.current, case.desired, ownership=case.ownership, refused=refused)
    touched = [op for op in operations if op.key in refused]
    assert all(isinstance(op, DeleteVirtualService) and is_owned(op.key, case) for op in touched)


@settings(max_examples=150)
@given(cases())
def test_operations_come_grouped_by_key_in_key_order(case: Case) -> None:
    """Each key's operations are together, and keys follow ServiceKey.sort_key."""
    operations = plan(case.current, case.desired, ownership=case.ownership)
    runs = [
        key for index, key in enumerate(op.key for op in operations) if index == 0 or operations[index - 1].key != key
    ]
    assert runs == sorted(set(runs), key=ServiceKey.sort_key)


@settings(max_examples=150)
@given(cases(), cases())
def test_plans_sharing_settled_pairs_equal_plans_without(first: Case, second: Case) -> None:
    """Plans that keep a Settled memory between them give exactly the operations of plans that do not."""
    settled: Settled = {}
    after = apply_operations(first.current, plan(first.current, first.desired, ownership=first.ownership))
    steps = [
        (first.current, first.desired, first.ownership),
        (first.current, first.desired, first.ownership),
        (after, first.desired, first.ownership),
        (second.current, first.desired, second.ownership),
        (first.current, second.desired, first.ownership),
    ]
    for current, desired, ownership in steps:
        remembered = plan(current, desired, ownership=ownership, settled=settled)
        assert remembered == plan(current, desired, ownership=ownership)
