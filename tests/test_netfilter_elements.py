"""The netfilter half's set elements: what each kind of VIP needs, and the multiset kept across changes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvsctl.model import Forwarding, Protocol, RealServer, ServiceKey, VirtualService
from ipvsctl.netfilter.elements import (
    DesiredElements,
    Element,
    ElementCounts,
    desired_elements,
    key_elements,
    vip_element,
)
from ipvsctl.translate import VipKind, VipRole

VIP = ServiceKey(Protocol.TCP, "203.0.113.10", 80)
VIP6 = ServiceKey(Protocol.UDP, "2001:db8::10", 53)
POD = RealServer("198.51.100.10", 8080)
POD6 = RealServer("2001:db8:5::10", 53)


def sets(elements: list[Element]) -> list[str]:
    return sorted(name for name, _ in elements)


@pytest.mark.parametrize(
    ("role", "filtered", "cluster_masquerade", "expected"),
    [
        pytest.param(VipRole(VipKind.CLUSTER_IP), True, False, ["hairpin4", "services4"], id="cluster-ip"),
        pytest.param(
            VipRole(VipKind.CLUSTER_IP), True, True, ["cluster4", "hairpin4", "services4"], id="cluster-ip-cidrs"
        ),
        pytest.param(VipRole(VipKind.NODE_PORT), False, True, ["hairpin4", "masquerade4"], id="node-port-cluster"),
        pytest.param(VipRole(VipKind.NODE_PORT, local=True), False, True, ["hairpin4"], id="node-port-local"),
        pytest.param(
            VipRole(VipKind.EXTERNAL_IP), True, True, ["hairpin4", "masquerade4", "services4"], id="external-ip"
        ),
        pytest.param(
            VipRole(VipKind.LOAD_BALANCER, local=True), True, True, ["hairpin4", "services4"], id="load-balancer-local"
        ),
        pytest.param(
            VipRole(VipKind.LOAD_BALANCER, local=True, source_ranges=("192.0.2.0/24", "2001:db8::/32")),
            True,
            False,
            ["allowed4", "hairpin4", "ranged4", "services4"],
            id="source-ranges-of-its-family",
        ),
        pytest.param(
            VipRole(VipKind.LOAD_BALANCER, source_ranges=()),
            True,
            False,
            ["hairpin4", "masquerade4", "ranged4", "services4"],
            id="no-valid-range-fails-closed",
        ),
    ],
)
def test_each_kind_of_vip_needs_its_elements(
    role: VipRole, filtered: bool, cluster_masquerade: bool, expected: list[str]
) -> None:
    """Filter, masquerade, cluster, range and hairpin elements follow the VIP's kind and policy."""
    service = VirtualService(VIP, reals=(POD,))
    assert sets(key_elements(service, role, filtered=filtered, cluster_masquerade=cluster_masquerade)) == expected


def test_element_values_are_written_as_nft_does() -> None:
    """Values are address . protocol name . port (and the source range or the pod again)."""
    role = VipRole(VipKind.LOAD_BALANCER, source_ranges=("192.0.2.0/24",))
    elements = key_elements(VirtualService(VIP, reals=(POD,)), role, filtered=True, cluster_masquerade=False)
    assert ("allowed4", ("203.0.113.10", "tcp", 80, "192.0.2.0/24")) in elements
    assert ("hairpin4", ("198.51.100.10", "tcp", 8080, "198.51.100.10")) in elements


def test_ipv6_vips_use_the_ipv6_sets() -> None:
    """An IPv6 VIP's elements are in the sets of family 6."""
    elements = key_elements(
        VirtualService(VIP6, reals=(POD6,)), VipRole(VipKind.CLUSTER_IP), filtered=True, cluster_masquerade=False
    )
    assert sets(elements) == ["hairpin6", "services6"]


def test_routed_real_servers_need_no_hairpin() -> None:
    """Only masquerading real servers can hairpin: a direct-routing one needs no element."""
    routed = RealServer("198.51.100.11", 80, forwarding=Forwarding.ROUTE)
    elements = key_elements(
        VirtualService(VIP, reals=(routed,)), VipRole(VipKind.CLUSTER_IP), filtered=False, cluster_masquerade=False
    )
    assert elements == []


def test_fwmark_services_need_nothing() -> None:
    """A firewall-mark service is not ipvsctl's: no element."""
    service = VirtualService(ServiceKey.fwmark(7), reals=(POD,))
    assert key_elements(service, VipRole(VipKind.CLUSTER_IP), filtered=True, cluster_masquerade=True) == []


def test_desired_elements_of_a_table() -> None:
    """A whole table: VIP addresses under the filter, and each service's elements (cluster ones by family)."""
    elements = desired_elements(
        {VIP: VirtualService(VIP, reals=(POD,)), VIP6: VirtualService(VIP6)},
        {VIP: VipRole(VipKind.CLUSTER_IP), VIP6: VipRole(VipKind.CLUSTER_IP)},
        filtered_addresses={VIP.address},
        cluster_families={4},
    )
    assert vip_element(VIP.address) in elements
    assert ("cluster4", ("203.0.113.10", "tcp", 80)) in elements
    assert ("cluster6", ("2001:db8::10", "udp", 53)) not in elements


HAIRPIN: Element = ("hairpin4", ("198.51.100.10", "tcp", 8080, "198.51.100.10"))


def test_a_shared_element_stays_while_one_contributor_needs_it() -> None:
    """Two VIPs share a pod's hairpin element: it vanishes only with the second."""
    counts = ElementCounts()
    counts.replace((), [HAIRPIN])
    counts.replace((), [HAIRPIN])
    assert counts.replace([HAIRPIN], ()) == (set(), set())
    assert counts.replace([HAIRPIN], ()) == (set(), {HAIRPIN})


@given(st.lists(st.lists(st.sampled_from([HAIRPIN, vip_element("203.0.113.1"), vip_element("203.0.113.2")]))))
def test_counts_hold_exactly_the_union_of_the_contributors(contributions: list[list[Element]]) -> None:
    """Adding each contribution and then removing every other one leaves exactly what the rest need."""
    counts = ElementCounts()
    present: set[Element] = set()
    for contribution in contributions:
        appeared, vanished = counts.replace((), contribution)
        present = (present | appeared) - vanished
    for contribution in contributions[::2]:
        appeared, vanished = counts.replace(contribution, ())
        present = (present | appeared) - vanished
    remaining = {element for contribution in contributions[1::2] for element in contribution}
    assert present == remaining == set(counts)


ROLES = [VipRole(VipKind.CLUSTER_IP), VipRole(VipKind.NODE_PORT), VipRole(VipKind.LOAD_BALANCER, local=True)]
KEYS = [ServiceKey(Protocol.TCP, "203.0.113.10", 80), ServiceKey(Protocol.UDP, "203.0.113.10", 53),
        ServiceKey(Protocol.TCP, "203.0.113.11", 80), ServiceKey(Protocol.TCP, "2001:db8::10", 80)]  # fmt: skip
FILTERED = {"203.0.113.10", "2001:db8::10"}  # on the agent's interface (a property of the address, not the key)
PODS = [RealServer("198.51.100.10", 8080), RealServer("198.51.100.11", 8080), RealServer("2001:db8:5::1", 8080)]


@st.composite
def updates(draw: st.DrawFn) -> tuple[ServiceKey, VirtualService | None, VipRole, bool]:
    key = draw(st.sampled_from(KEYS))
    family_reals = [real for real in PODS if (":" in real.address) == (":" in key.address)]
    reals = draw(st.lists(st.sampled_from(family_reals), unique=True))
    service = draw(st.none() | st.just(VirtualService(key, reals=tuple(reals))))
    return key, service, draw(st.sampled_from(ROLES)), key.address in FILTERED


@given(st.lists(updates(), max_size=12))
def test_desired_elements_kept_by_key_equal_those_of_the_whole_table(steps: list[tuple[Any, ...]]) -> None:
    """Any sequence of per-key updates leaves exactly the elements of the final table, computed at once."""
    desired = DesiredElements(cluster_families={4})
    final: dict[ServiceKey, tuple[VirtualService, VipRole, bool]] = {}
    for key, service, role, filtered in steps:
        desired.update(key, service, role, filtered=filtered)
        if service is None:
            final.pop(key, None)
        else:
            final[key] = (service, role, filtered)
    whole = desired_elements(
        {key: service for key, (service, _, _) in final.items()},
        {key: role for key, (_, role, _) in final.items()},
        filtered_addresses={key.address for key, (_, _, filtered) in final.items() if filtered},
        cluster_families={4},
    )
    assert set(desired) == whole
