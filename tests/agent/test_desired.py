"""The incremental desired state always equals ``resolve`` over every Service's translation."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ipvsctl.agent.desired import DesiredState
from ipvsctl.kube.views import ObjectRef
from ipvsctl.model import Protocol, RealServer, ServiceKey, VirtualService
from ipvsctl.translate import Rejection, ServiceResult, resolve

KEYS = [ServiceKey(Protocol.TCP, f"10.0.0.{n}", 80) for n in range(1, 5)]
REFS = [ObjectRef("default", name) for name in ("a", "b", "c", "d")]


def result(ref: ObjectRef, *, created: str, keys: list[ServiceKey], weight: int = 1) -> ServiceResult:
    return ServiceResult(
        ref=ref,
        age=(created, ref.namespace, ref.name),
        services=tuple(VirtualService(key, reals=(RealServer("10.1.0.1", 8080, weight=weight),)) for key in keys),
        sources=dict.fromkeys(keys, "spec.clusterIPs[0]"),
    )


updates = st.lists(
    st.tuples(
        st.sampled_from(REFS),
        st.none()
        | st.tuples(
            st.sampled_from(["2026-01-01", "2026-01-02", "2026-01-03"]),
            st.lists(st.sampled_from(KEYS), unique=True, max_size=3),
            st.integers(min_value=1, max_value=3),
        ),
    ),
    max_size=25,
)


@given(updates)
@settings(max_examples=300, deadline=None)
def test_incremental_state_equals_resolve_over_all_results(
    steps: list[tuple[ObjectRef, tuple[str, list[ServiceKey], int] | None]],
) -> None:
    """After any sequence of updates and removals: same table, same owners, same rejections as resolve()."""
    state = DesiredState()
    current: dict[ObjectRef, ServiceResult] = {}
    for ref, spec in steps:
        if spec is None:
            current.pop(ref, None)
            state.update(ref, None)
            continue
        created, keys, weight = spec
        current[ref] = result(ref, created=created, keys=keys, weight=weight)
        state.update(ref, current[ref])
        expected = resolve(current.values())
        assert dict(state.table.services) == dict(expected.table.services)
        assert state.owners == dict(expected.owners)
        assert {r: set(rs) for r, rs in state.all_rejections().items()} == _by_service(expected.rejections)
        assert state.addresses() == {key.address for key in expected.table.services}
        assert state.real_servers == expected.table.real_server_count()


def _by_service(rejections: tuple[Rejection, ...]) -> dict[ObjectRef, set[Rejection]]:
    grouped: dict[ObjectRef, set[Rejection]] = {}
    for rejection in rejections:
        grouped.setdefault(rejection.service, set()).add(rejection)
    return grouped


def test_update_reports_old_and_new_keys_and_every_claimant() -> None:
    """Moving a Service from one VIP to another changes both keys and touches the other claimant."""
    state = DesiredState()
    state.update(REFS[0], result(REFS[0], created="2026-01-01", keys=[KEYS[0]]))
    state.update(REFS[1], result(REFS[1], created="2026-01-02", keys=[KEYS[1]]))
    change = state.update(REFS[0], result(REFS[0], created="2026-01-01", keys=[KEYS[1]]))
    assert change.keys == {KEYS[0], KEYS[1]}
    assert change.services == {REFS[0], REFS[1]}


def test_younger_service_gets_the_vip_when_the_older_one_goes() -> None:
    """A conflict's loser takes over the VIP, and its rejection is withdrawn, once the winner is deleted."""
    state = DesiredState()
    state.update(REFS[0], result(REFS[0], created="2026-01-01", keys=[KEYS[0]]))
    state.update(REFS[1], result(REFS[1], created="2026-01-02", keys=[KEYS[0]], weight=2))
    assert (state.owners[KEYS[0]], len(state.rejections(REFS[1]))) == (REFS[0], 1)
    state.update(REFS[0], None)
    assert (state.owners[KEYS[0]], state.rejections(REFS[1])) == (REFS[1], ())
    assert state.table.services[KEYS[0]].reals[0].weight == 2
