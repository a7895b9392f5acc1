"""Arbitrary JSON in any field of a Service, EndpointSlice or Node: kube/parse.py answers only with our errors.

Whatever a tenant (or a manifest) puts in an object, ``parse_service``, ``parse_endpoint_slice`` and
``parse_node`` return a view, None (an FQDN slice) or raise an ``IpvsctlError`` naming the object and the
field; any other exception would escape as a traceback, or, in the agent, end the task that read it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipvsctl.errors import IpvsctlError, ObjectError
from ipvsctl.kube.parse import OversizedInteger, parse_endpoint_slice, parse_node, parse_service

Raw = dict[str, Any]
Parser = Callable[[Mapping[str, object]], object]
Path = tuple[str | int, ...]
MAX_PATH_DEPTH = 7  # spec.sessionAffinityConfig.clientIP.timeoutSeconds is 4 deep, endpoints[0].topology[...] 4

# Every field parse.py reads, each set to a valid value.
FULL_SERVICE: Raw = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "name": "web",
        "namespace": "default",
        "uid": "u-1",
        "creationTimestamp": "2024-05-01T10:00:00Z",
        "labels": {"app": "web"},
        "annotations": {"ipvsctl.io/scheduler": "wlc", "ipvsctl.io/persistence-netmask": "ipv4=24,ipv6=64"},
    },
    "spec": {
        "type": "LoadBalancer",
        "clusterIP": "203.0.113.10",
        "clusterIPs": ["203.0.113.10", "2001:db8::10"],
        "ports": [
            {"name": "http", "protocol": "TCP", "port": 80, "nodePort": 30080},
            {"name": "dns", "protocol": "UDP", "port": 53, "nodePort": 30053},
        ],
        "externalIPs": ["192.0.2.100"],
        "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
        "externalTrafficPolicy": "Local",
        "internalTrafficPolicy": "Cluster",
        "healthCheckNodePort": 30999,
        "loadBalancerSourceRanges": ["192.0.2.0/24", "2001:db8::/32"],
    },
    "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.200"}, {"hostname": "lb.example"}]}},
}
FULL_SLICE: Raw = {
    "apiVersion": "discovery.k8s.io/v1",
    "kind": "EndpointSlice",
    "metadata": {"name": "web-abc12", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
    "addressType": "IPv4",
    "ports": [{"name": "http", "protocol": "TCP", "port": 8080}, {"name": "all"}],
    "endpoints": [
        {
            "addresses": ["198.51.100.10"],
            "conditions": {"ready": True, "serving": True, "terminating": False},
            "nodeName": "worker1",
            "targetRef": {"kind": "Pod", "namespace": "default", "name": "web-1"},
        },
        {
            "addresses": ["198.51.100.11"],
            "conditions": {"ready": False},
            "topology": {"kubernetes.io/hostname": "worker2"},
            "targetRef": {"name": "web-2"},
        },
    ],
}
FULL_NODE: Raw = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "worker1"},
    "status": {
        "addresses": [
            {"type": "InternalIP", "address": "192.0.2.11"},
            {"type": "ExternalIP", "address": "2001:db8::11"},
            {"type": "Hostname", "address": "worker1"},
        ]
    },
}


def paths(value: object, prefix: Path = ()) -> Iterator[Path]:
    """Every path into a JSON value down to the depth parse.py reads, the value itself (the empty path) first."""
    yield prefix
    if len(prefix) == MAX_PATH_DEPTH:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


def replaced(obj: object, path: Path, value: object) -> object:
    """``obj`` with the value at ``path`` replaced, copying only the containers on the path (shared otherwise)."""
    if not path:
        return value
    step, rest = path[0], path[1:]
    if isinstance(obj, dict) and step in obj:
        return {**obj, step: replaced(obj[step], rest, value)}
    if isinstance(obj, list) and isinstance(step, int) and step < len(obj):
        return [*obj[:step], replaced(obj[step], rest, value), *obj[step + 1 :]]
    return obj  # an earlier replacement removed the path


def nested(depth: int, *, in_list: bool) -> object:
    """A list (or object) nested ``depth`` levels deep."""
    value: object = "bottom"
    for _ in range(depth):
        value = [value] if in_list else {"spec": value}
    return value


HOSTILE_TEXT = st.sampled_from(
    [
        "",
        " ",
        "²",
        "\u0661\u0662",
        "\uff18\uff10",
        "9" * 5000,
        "-1",
        "0x50",
        "1:20",
        "80",
        "None",
        "fe80::1%eth0",
        "::ffff:192.0.2.1",
        "192.0.2.1\n",
        "web\n  + add    service tcp/192.0.2.1:80",
        "\x1b[2J",
        "\x00",
        "TCP",
        "IPv6",
        "FQDN",
        "ClientIP",
        "Local",
    ]
) | st.text(max_size=12)


def power(base_exponent_sign: tuple[int, int, int]) -> int:
    """``sign * base**exponent`` (hypothesis cannot print a strategy holding ints of thousands of digits)."""
    base, exponent, sign = base_exponent_sign
    return sign * int(base**exponent)  # int ** int is Any to mypy (a negative exponent gives a float)


HUGE_INTEGERS = (
    st.tuples(st.sampled_from([2, 10]), st.sampled_from([31, 63, 5000, 70000]), st.sampled_from([1, -1])).map(power)
    | st.integers()
)
OVERSIZED = st.builds(OversizedInteger, st.integers(min_value=4301, max_value=10**6))  # what manifests.py loads
SCALARS = st.none() | st.booleans() | HUGE_INTEGERS | OVERSIZED | st.floats() | HOSTILE_TEXT
KEYS = st.sampled_from(["name", "port", "ip", "addresses", "type", "kubernetes.io/service-name"]) | st.text(max_size=4)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(KEYS | HUGE_INTEGERS | OVERSIZED, children, max_size=3)
    ),
    max_leaves=8,
)
HOSTILE = JSON_VALUES | st.builds(nested, st.integers(min_value=1, max_value=900), in_list=st.booleans())

CASES = [
    pytest.param(parse_service, FULL_SERVICE, id="service"),
    pytest.param(parse_endpoint_slice, FULL_SLICE, id="endpoint-slice"),
    pytest.param(parse_node, FULL_NODE, id="node"),
]


@pytest.mark.parametrize(("parse", "full"), CASES)
def test_full_objects_parse(parse: Parser, full: Raw) -> None:
    """The objects the property starts from are valid: every error below comes from a hostile value."""
    assert parse(full) is not None


@pytest.mark.parametrize(("parse", "full"), CASES)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_json_in_any_field_gives_a_view_or_our_error(parse: Parser, full: Raw, data: st.DataObject) -> None:
    """One to three fields replaced by arbitrary JSON: a view, None or an IpvsctlError, never another exception."""
    obj: object = full
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="replacements")):
        path = data.draw(st.sampled_from(list(paths(obj))), label="path")
        obj = replaced(obj, path, data.draw(HOSTILE, label="value"))
    with contextlib.suppress(IpvsctlError):
        parse(obj)  # type: ignore[arg-type]  # any JSON, not only objects


PORT = "must be a port between 1 and 65535"
HUGE_FIELDS = [
    pytest.param(parse_service, FULL_SERVICE, ("spec", "ports", 0, "port"), "spec.ports[0].port", PORT, id="port"),
    pytest.param(
        parse_service, FULL_SERVICE, ("spec", "ports", 1, "nodePort"), "spec.ports[1].nodePort", PORT, id="node-port"
    ),
    pytest.param(
        parse_service,
        FULL_SERVICE,
        ("spec", "sessionAffinityConfig", "clientIP", "timeoutSeconds"),
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
        "must be a 32-bit integer",
        id="timeout",
    ),
    pytest.param(
        parse_service, FULL_SERVICE, ("spec", "healthCheckNodePort"), "spec.healthCheckNodePort", PORT, id="health-port"
    ),
    pytest.param(parse_endpoint_slice, FULL_SLICE, ("ports", 0, "port"), "ports[0].port", PORT, id="slice-port"),
]


@pytest.mark.parametrize(("parse", "full", "path", "field", "requirement"), HUGE_FIELDS)
@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (10**5000, "an integer of 16610 bits"),
        (-(2**70000), "an integer of 70001 bits"),
        (OversizedInteger(5000), "an integer of 5000 digits"),
        (2**31, "2147483648"),
    ],
    ids=["5001-digits", "70001-bits", "too-long-to-read", "2-to-the-31"],
)
def test_integer_too_large_is_an_object_error(
    parse: Parser, full: Raw, path: Path, field: str, requirement: str, value: object, shown: str
) -> None:
    """An integer too large for its field is refused naming the field, and by its size when it is huge."""
    with pytest.raises(ObjectError) as caught:
        parse(replaced(full, path, value))  # type: ignore[arg-type]
    assert (caught.value.field, caught.value.message) == (field, f"{requirement}, got {shown}")


def test_label_with_a_huge_integer_key_is_an_object_error() -> None:
    """A map key that is a huge integer (YAML can write one) is refused without printing its digits."""
    with pytest.raises(ObjectError, match="keys must be strings, got integer"):
        parse_service(replaced(FULL_SERVICE, ("metadata", "labels"), {10**5000: "x"}))  # type: ignore[arg-type]
