"""Endpoint selection for one Service port: merging slices, keeping the best copy of a repeated endpoint."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvsctl.endpoints import backends_for_port, select
from ipvsctl.kube.views import EndpointView, ObjectRef
from tests.builders import ep, eps, port

HTTP = port()


@st.composite
def endpoints(draw: st.DrawFn) -> EndpointView:
    """An IPv4 endpoint from a small pool of addresses (so that repeats occur), with any conditions."""
    ready = draw(st.booleans())
    return EndpointView(
        address=draw(st.sampled_from(["198.51.100.1", "198.51.100.2", "198.51.100.3"])),
        ready=ready,
        serving=draw(st.booleans()),
        terminating=draw(st.booleans()),
        node_name=draw(st.sampled_from(["worker1", "worker2", ""])),
        target=draw(st.none() | st.builds(ObjectRef, st.just("default"), st.sampled_from(["p1", "p2"]))),
    )


@given(st.lists(endpoints(), max_size=6))
def test_one_slice_gives_what_merging_gives(members: list[EndpointView]) -> None:
    """A lone slice (the shortcut) selects what the merge of several slices does when the others add nothing."""
    alone = eps(*members, name="web-a")
    empty_sibling = eps(name="web-b")
    assert backends_for_port(HTTP, [alone], family=4) == backends_for_port(HTTP, [alone, empty_sibling], family=4)


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        pytest.param(
            [ep("198.51.100.1", ready=False, pod="old"), ep("198.51.100.1", pod="new")],
            [("198.51.100.1", True, "new")],
            id="ready-copy-wins",
        ),
        pytest.param(
            [ep("198.51.100.1", pod="first"), ep("198.51.100.1", pod="second")],
            [("198.51.100.1", True, "first")],
            id="first-of-equals-wins",
        ),
        pytest.param(
            [ep("198.51.100.2"), ep("198.51.100.1", ready=False), ep("198.51.100.1")],
            [("198.51.100.2", True, None), ("198.51.100.1", True, None)],
            id="kept-where-first-listed",
        ),
    ],
)
def test_endpoint_repeated_in_one_slice_listed_once(
    members: list[EndpointView], expected: list[tuple[str, bool, str | None]]
) -> None:
    """An address repeated inside one slice appears once, with its best conditions, where it first appeared."""
    backends = backends_for_port(HTTP, [eps(*members)], family=4)
    got = [(e.address, e.ready, e.target.name if e.target else None) for e, _ in backends]
    assert got == expected
    assert {target_port for _, target_port in backends} == {8080}


def test_other_family_addresses_in_a_slice_ignored() -> None:
    """An address of the other family never becomes a backend, even inside a slice of the wanted type."""
    mixed = eps(ep("198.51.100.1"), ep("2001:db8::1"))
    assert [e.address for e, _ in backends_for_port(HTTP, [mixed], family=4)] == ["198.51.100.1"]


def test_no_backends_select_nothing() -> None:
    """No backends: nothing cluster-wide, nothing local."""
    selection = select([], node_name="worker1")
    assert (selection.cluster, selection.local) == ((), ())
