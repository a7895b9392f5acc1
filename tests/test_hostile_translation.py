"""Whatever parses, translates: hostile Services, EndpointSlices and Nodes give rejections and notices, never a crash.

The property of test_hostile_objects.py, carried one step further: the views that come out of hostile
objects go through ``translate_service`` (and the claim of their VIPs), which must answer with a
result, never an exception, under every policy the agent can run with.
"""

from __future__ import annotations

import contextlib
from typing import Any

import netaddr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipvsctl.claims import claim
from ipvsctl.errors import IpvsctlError
from ipvsctl.kube.parse import parse_endpoint_slice, parse_node, parse_service
from ipvsctl.kube.views import EndpointSliceView, NodeView, ServiceView
from ipvsctl.plan import Ownership
from ipvsctl.translate import NodeContext, Policy, translate_service
from tests.test_hostile_objects import FULL_NODE, FULL_SERVICE, FULL_SLICE, HOSTILE, paths, replaced

POLICIES = st.sampled_from(
    [
        Policy(),
        Policy(external_ip_cidrs=netaddr.IPSet(), load_balancer_ip_cidrs=netaddr.IPSet()),
        Policy(node_port_range=(1, 65535), netmask_v4=1, netmask_v6=128, default_scheduler="mh"),
    ]
)


def hostile(data: st.DataObject, full: dict[str, Any], label: str) -> object:
    """``full`` with up to three fields replaced by arbitrary JSON."""
    obj: object = full
    for _ in range(data.draw(st.integers(min_value=0, max_value=3), label=f"{label} replacements")):
        path = data.draw(st.sampled_from(list(paths(obj))), label=f"{label} path")
        obj = replaced(obj, path, data.draw(HOSTILE, label=f"{label} value"))
    return obj


def parsed_or_none(parse: Any, obj: object) -> Any:
    with contextlib.suppress(IpvsctlError):
        return parse(obj)
    return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), policy=POLICIES)
def test_any_parsed_hostile_objects_translate_without_an_exception(data: st.DataObject, policy: Policy) -> None:
    """A hostile Service, slice and Node that parse: translate_service and claim answer, whatever is in them."""
    service: ServiceView | None = parsed_or_none(parse_service, hostile(data, FULL_SERVICE, "service"))
    slice_view: EndpointSliceView | None = parsed_or_none(parse_endpoint_slice, hostile(data, FULL_SLICE, "slice"))
    node_view: NodeView | None = parsed_or_none(parse_node, hostile(data, FULL_NODE, "node"))
    if service is None:
        return
    node = NodeContext("worker1", node_view.addresses if node_view is not None else ())
    result = translate_service(service, [slice_view] if slice_view is not None else [], node=node, policy=policy)
    keys = {vs.key for vs in result.services}
    claim(keys, present=keys, ownership=Ownership(node_addresses=frozenset(node.addresses)))
