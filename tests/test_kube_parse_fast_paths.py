"""The usual-case shortcuts of kube/parse.py give what every check gives, for any value."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from ipvsctl.errors import ObjectError
from ipvsctl.kube import parse, wire
from ipvsctl.kube.checks import Checker
from ipvsctl.kube.views import ObjectRef

_PROTOCOLS = st.sampled_from([None, "TCP", "UDP", "SCTP", "tcp", "", "ICMP"])
_NUMBERS = st.sampled_from([None, -1, 0, 1, 80, 65535, 65536, 2**40])
_ADDRESSES = st.sampled_from(["203.0.113.10", "2001:db8::0010", "2001:DB8::10", "None", "", "300.1.1.1", " 1.2.3.4"])
_TYPES = st.sampled_from(["ClusterIP", "ExternalName"])


def _outcome(action: Callable[[], object]) -> object:
    """What an action returns, or the message and field of the ObjectError it raises."""
    try:
        return action()
    except ObjectError as error:
        return ("error", error.message, error.field)


def _checker() -> Checker:
    return Checker("Service", ObjectRef("default", "web"))


@given(_PROTOCOLS, _NUMBERS, _NUMBERS, st.sampled_from([None, "", "http"]))
def test_service_port_shortcut(
    protocol: str | None, number: int | None, node_port: int | None, name: str | None
) -> None:
    """Any entry of spec.ports: the same view, or the same error on the same field."""
    port = wire.ServicePort(name=name, protocol=protocol, port=number, node_port=node_port)
    fast = _outcome(lambda: parse._service_port(port, _checker(), "spec.ports[0]"))
    full = _outcome(lambda: parse._service_port_checked(port, _checker(), "spec.ports[0]"))
    assert fast == full


@given(st.lists(st.builds(wire.SlicePort, st.sampled_from([None, "http"]), _PROTOCOLS, _NUMBERS), max_size=3))
def test_slice_ports_shortcut(ports: list[wire.SlicePort]) -> None:
    """Any slice ports: the views of the entries with a port, or the same error on the same field."""
    fast = _outcome(lambda: parse._slice_ports(ports, _checker()))
    full = _outcome(
        lambda: [
            parse._slice_port_checked(port, _checker(), f"ports[{n}]")
            for n, port in enumerate(ports)
            if port.port is not None
        ]
    )
    assert fast == full


@given(st.one_of(st.none(), st.lists(_ADDRESSES, max_size=3)), st.one_of(st.none(), _ADDRESSES), _TYPES)
def test_cluster_ips_shortcut(cluster_ips: list[str | None] | None, cluster_ip: str | None, service_type: str) -> None:
    """Any clusterIPs and clusterIP: the same canonical addresses, or the same error on the same field."""
    spec = wire.ServiceSpec(cluster_ips=cluster_ips, cluster_ip=cluster_ip)
    fast = _outcome(lambda: parse._cluster_ips(spec, check=_checker(), service_type=service_type))
    full = _outcome(lambda: parse._cluster_ips_checked(spec, check=_checker(), service_type=service_type))
    assert fast == full
