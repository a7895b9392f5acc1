"""The usual add of a real server is checked inline (``limits.encoding_problem``): the same answer as the walk."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ipvsctl.backend.limits import _problem, encoding_problem
from ipvsctl.model import AddRealServer, Forwarding, Protocol, RealServer, ServiceKey

NUMBERS = st.one_of(st.integers(-2, 70_000), st.integers(-(2**40), 2**40), st.sampled_from([0, 65535, 2**31, 2**32]))


@settings(max_examples=500, deadline=None)
@given(
    protocol=st.sampled_from(Protocol),
    port=NUMBERS,
    real_port=NUMBERS,
    weight=NUMBERS,
    upper=NUMBERS,
    lower=NUMBERS,
    forwarding=st.sampled_from(Forwarding),
)
def test_an_add_of_a_real_server_is_refused_as_the_walk_refuses_it(
    protocol: Protocol, port: int, real_port: int, weight: int, upper: int, lower: int, forwarding: Forwarding
) -> None:
    """Any key and real server: refused (or not) with the same errno and message as the general walk."""
    key = ServiceKey(protocol, "::" if protocol is Protocol.FWMARK else "203.0.113.10", port)
    real = RealServer("198.51.100.10", real_port, weight, forwarding, upper, lower)
    operation = AddRealServer(key, real)
    assert encoding_problem(operation) == _problem(operation)


def test_a_usual_add_passes() -> None:
    """A plain add of a real server has no problem."""
    key = ServiceKey(Protocol.TCP, "203.0.113.10", 80)
    assert encoding_problem(AddRealServer(key, RealServer("198.51.100.10", 8080))) is None
