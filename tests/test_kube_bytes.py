"""The API's bytes and decoded values go through the same decoder: the agent's watch path parses raw JSON.

``kube/client.py`` hands each listed or watched object over as its JSON bytes (``ApiObject``);
``kube/parse.py`` decodes them straight into typed Structs. Whatever the object holds, its bytes and its
decoded value give the same view, or the same error on the same field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipvsctl.agent.cache import ClusterCache, Invalid, ObjectHandler, Subject
from ipvsctl.errors import IpvsctlError, ObjectError
from ipvsctl.kube.client import SERVICES, SLICES_V1BETA1, ApiError, GoneError, _watch_event
from ipvsctl.kube.parse import ApiObject, parse_endpoint_slice, parse_node, parse_service
from ipvsctl.kube.views import ObjectRef
from tests.test_hostile_objects import FULL_NODE, FULL_SERVICE, FULL_SLICE, HOSTILE_TEXT, paths, replaced

Parser = Callable[[Any], object]
CASES = [
    pytest.param(parse_service, FULL_SERVICE, id="service"),
    pytest.param(parse_endpoint_slice, FULL_SLICE, id="endpoint-slice"),
    pytest.param(parse_node, FULL_NODE, id="node"),
]
# JSON values (no NaN: JSON has none), integers up to 64 digits (longer ones are kept as their size in bytes).
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**64), max_value=10**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | HOSTILE_TEXT,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6) | HOSTILE_TEXT, children, max_size=3)
    ),
    max_leaves=8,
)


def outcome(parse: Parser, obj: object) -> object:
    """The view, or the refusal's object, field and message."""
    try:
        return parse(obj)
    except ObjectError as error:
        return ("refused", error.obj, error.field, error.message)


@pytest.mark.parametrize(("parse", "full"), CASES)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_bytes_and_values_give_the_same_view_or_error(
    parse: Parser, full: Mapping[str, object], data: st.DataObject
) -> None:
    """One to three fields replaced by any JSON: the object's bytes parse exactly as its decoded value does."""
    obj: object = full
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="replacements")):
        path = data.draw(st.sampled_from(list(paths(obj))), label="path")
        obj = replaced(obj, path, data.draw(JSON_VALUES, label="value"))
    encoded = json.dumps(obj).encode()
    assert outcome(parse, encoded) == outcome(parse, json.loads(encoded))


def test_integer_too_long_to_convert_is_named_by_its_digits() -> None:
    """A port of 5000 digits in API bytes is refused by its size, naming the Service and the field."""
    text = json.dumps(FULL_SERVICE).replace('"port": 80', '"port": ' + "9" * 5000)
    assert outcome(parse_service, text.encode()) == (
        "refused",
        "Service default/web",
        "spec.ports[0].port",
        "must be a port between 1 and 65535, got an integer of 5000 digits",
    )


def line(event: object) -> bytes:
    """One line of a watch stream."""
    return json.dumps(event).encode() + b"\n"


def test_watch_line_keeps_the_object_as_its_bytes() -> None:
    """An ADDED line becomes a WatchEvent whose object is the JSON bytes the server sent, with its version."""
    obj = {**FULL_SERVICE, "metadata": {**FULL_SERVICE["metadata"], "resourceVersion": "42"}}
    event = _watch_event(line({"type": "ADDED", "object": obj}), resource=SERVICES)
    assert (event.type, json.loads(event.object.data), event.resource_version) == ("ADDED", obj, "42")
    assert (event.object.kind, event.object.api_version) == ("Service", "v1")


def test_watch_error_410_is_gone() -> None:
    """An ERROR event with code 410 means relist."""
    with pytest.raises(GoneError, match="HTTP 410: too old"):
        _watch_event(line({"type": "ERROR", "object": {"code": 410, "message": "too old"}}), resource=SERVICES)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json\n",
        b"[1, 2]\n",
        line({"type": "ADDED"}),
        line({"type": 5, "object": {}}),
        line({"type": "ADDED", "object": []}),
    ],
    ids=["not-json", "not-an-object", "no-object", "type-not-text", "object-not-an-object"],
)
def test_malformed_watch_line_is_an_api_error(raw: bytes) -> None:
    """A watch line that is not an event object is an ApiError (the watch restarts), never another exception."""
    with pytest.raises(ApiError):
        _watch_event(raw, resource=SERVICES)


def handler(kind: str, cache: ClusterCache, invalid: list[Invalid], valid: list[Subject]) -> ObjectHandler:
    return ObjectHandler(
        kind=kind, cache=cache, on_change=lambda refs: None, on_invalid=invalid.append, on_valid=valid.append
    )


def test_listed_bytes_reach_the_cache_as_views() -> None:
    """API bytes (a list item: no kind, no apiVersion) give the Service view the decoded value gives."""
    cache, invalid, valid = ClusterCache(node_name="worker1"), [], []  # type: ignore[var-annotated]
    item = {key: value for key, value in FULL_SERVICE.items() if key not in ("kind", "apiVersion")}
    handler("Service", cache, invalid, valid).replace([ApiObject(json.dumps(item).encode(), "Service", "v1")])
    assert (cache.services[ObjectRef("default", "web")], invalid) == (parse_service(FULL_SERVICE), [])


def test_malformed_bytes_are_reported_with_their_subject() -> None:
    """A v1beta1 slice whose port is text: reported naming the slice, its uid-less subject and the field."""
    cache, invalid, valid = ClusterCache(node_name="worker1"), [], []  # type: ignore[var-annotated]
    bad = replaced({k: v for k, v in FULL_SLICE.items() if k != "apiVersion"}, ("ports", 0, "port"), "http")
    handler("EndpointSlice", cache, invalid, valid).upsert(
        ApiObject(json.dumps(bad).encode(), "EndpointSlice", SLICES_V1BETA1.api_version)
    )
    (refused,) = invalid
    assert refused.subject == Subject(
        "EndpointSlice", ObjectRef("default", "web-abc12"), "", "discovery.k8s.io/v1beta1"
    )
    assert (refused.error.field, refused.error.message) == ("ports[0].port", "must be an integer, got string")


def test_bytes_that_are_not_json_are_our_error() -> None:
    """Bytes that are not JSON at all are an IpvsctlError naming the kind, not a decoder's exception."""
    with pytest.raises(IpvsctlError):
        parse_service(b"{not json")
