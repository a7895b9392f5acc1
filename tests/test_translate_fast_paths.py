"""The usual-case shortcuts of translate give what the general rules give, for any input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ipvsctl.translate import NodeContext, Policy, _ServiceBuilder
from tests.builders import svc

_CLUSTER_IPS = st.lists(st.sampled_from(["203.0.113.10", "203.0.113.11", "2001:db8:1::10", "None"]), max_size=3)
_FAMILIES = st.lists(st.sampled_from(["IPv4", "IPv6", "IPv5", ""]), max_size=3)


@given(_CLUSTER_IPS, _FAMILIES)
def test_families_shortcut_equals_every_rule(cluster_ips: list[str], families: list[str]) -> None:
    """Any cluster IPs and ipFamilies: the families set and the rejections are those of the full check."""
    service = svc(cluster_ips=cluster_ips, ip_families=families)
    short = _ServiceBuilder(service, node=NodeContext("worker1"), policy=Policy())
    full = _ServiceBuilder(service, node=NodeContext("worker1"), policy=Policy())
    assert (short._families(), short.families) == (full._families_checked(), full.families)
