"""--nodeport-addresses values → the NodePort address policy, as kube-proxy reads its flag of the same name."""

from __future__ import annotations

import pytest

from ipvsctl.errors import UsageError
from ipvsctl.options import PolicyFlags, parse_node_port_addresses
from ipvsctl.translate import NodePortAddresses


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([], None, id="none-every-address"),
        pytest.param(["192.0.2.0/24"], NodePortAddresses(cidrs=("192.0.2.0/24",)), id="one-cidr"),
        pytest.param(
            ["192.0.2.0/24,2001:db8::/64"], NodePortAddresses(cidrs=("192.0.2.0/24", "2001:db8::/64")), id="comma"
        ),
        pytest.param(
            ["192.0.2.7/24", "192.0.2.0/24"], NodePortAddresses(cidrs=("192.0.2.0/24",)), id="canonical-dedup"
        ),
        pytest.param(["primary"], NodePortAddresses(primary=True), id="primary"),
        pytest.param(
            [" primary , 198.51.100.0/28 "],
            NodePortAddresses(cidrs=("198.51.100.0/28",), primary=True),
            id="primary-and-cidr",
        ),
    ],
)
def test_values_parse(values: list[str], expected: NodePortAddresses | None) -> None:
    """Repeatable and comma-separated entries: canonical CIDRs in order, `primary` as a keyword."""
    assert parse_node_port_addresses(values) == expected


@pytest.mark.parametrize("value", ["10.0.0/8", "Primary", "", "192.0.2.0/33", "eth0"])
def test_bad_entry_names_the_flag(value: str) -> None:
    """Anything else is a usage error naming --nodeport-addresses and the entry."""
    with pytest.raises(UsageError) as caught:
        parse_node_port_addresses([value])
    assert caught.value.flag == "--nodeport-addresses"
    assert repr(value) in str(caught.value)


def test_policy_carries_the_addresses() -> None:
    """PolicyFlags.policy() hands the parsed value to translation."""
    policy = PolicyFlags(node_port_addresses=["primary"]).policy()
    assert policy.node_port_addresses == NodePortAddresses(primary=True)
