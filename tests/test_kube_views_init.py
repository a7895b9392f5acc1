"""The views' ``__init__`` (slots set through their descriptors) behaves as the frozen dataclass's own."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvsctl.kube import views

VIEWS = [
    views.ObjectRef,
    views.ServicePortView,
    views.LoadBalancerIngressView,
    views.ServiceView,
    views.SlicePortView,
    views.EndpointView,
    views.EndpointSliceView,
    views.NodeView,
]


@pytest.mark.parametrize("view", VIEWS, ids=lambda view: view.__name__)
def test_signature_is_the_fields(view: type) -> None:
    """Parameters in field order, with the fields' defaults (a factory's field has a default too)."""
    parameters = list(inspect.signature(view).parameters.values())
    assert [parameter.name for parameter in parameters] == [item.name for item in dataclasses.fields(view)]
    for parameter, item in zip(parameters, dataclasses.fields(view), strict=True):
        if item.default is not dataclasses.MISSING:
            assert parameter.default == item.default
        elif item.default_factory is dataclasses.MISSING:
            assert parameter.default is inspect.Parameter.empty


@given(st.data())
@pytest.mark.parametrize("view", VIEWS, ids=lambda view: view.__name__)
def test_every_field_is_set_as_given(view: type, data: st.DataObject) -> None:
    """Any values, by position or by keyword: each field holds its value, and the two are equal views."""
    values = [data.draw(st.one_of(st.text(max_size=3), st.integers(), st.none())) for _ in dataclasses.fields(view)]
    by_position = view(*values)
    by_keyword = view(**{item.name: value for item, value in zip(dataclasses.fields(view), values, strict=True)})
    assert dataclasses.astuple(by_position) == tuple(values)
    assert by_position == by_keyword


def test_defaults_and_a_fresh_factory_value_each_time() -> None:
    """Omitted fields take their defaults; a default factory makes a new value for each view."""
    first, second = views.ServiceView(views.ObjectRef("a", "b")), views.ServiceView(views.ObjectRef("a", "b"))
    assert (first.type, first.cluster_ips, first.labels) == ("ClusterIP", (), {})
    assert first.labels is not second.labels


def test_still_frozen() -> None:
    """Assigning a field still fails as on any frozen dataclass."""
    ref = views.ObjectRef("a", "b")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.name = "c"  # type: ignore[misc]  # the assignment under test


@pytest.mark.parametrize(
    ("arguments", "keywords"), [((), {}), (("a", "b", "c"), {}), (("a",), {"other": 1})], ids=["few", "many", "unknown"]
)
def test_wrong_arguments_are_refused(arguments: tuple[object, ...], keywords: dict[str, object]) -> None:
    """Missing, extra or unknown arguments raise TypeError, as the dataclass's own ``__init__`` does."""
    with pytest.raises(TypeError):
        views.ObjectRef(*arguments, **keywords)  # type: ignore[arg-type]  # the wrong call under test


def test_replace_uses_it() -> None:
    """``dataclasses.replace`` still makes a view with the one field changed."""
    view = views.EndpointView("192.0.2.1", node_name="worker1")
    assert dataclasses.replace(view, ready=False) == views.EndpointView("192.0.2.1", ready=False, node_name="worker1")
