"""NetfilterPlan: refreshing changed keys yields exactly the changes that bring a kernel copy to the wanted elements."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ipvsctl.model import Protocol, RealServer, ServiceKey, VirtualService
from ipvsctl.netfilter.elements import Element, desired_elements, vip_element
from ipvsctl.netfilter.plan import NetfilterPlan
from ipvsctl.translate import VipKind, VipRole

NODE = "192.0.2.11"
KEYS = [
    ServiceKey(Protocol.TCP, "203.0.113.10", 80),
    ServiceKey(Protocol.UDP, "203.0.113.10", 53),
    ServiceKey(Protocol.TCP, "203.0.113.11", 80),
    ServiceKey(Protocol.TCP, NODE, 30080),
]
PODS = [RealServer("198.51.100.10", 8080), RealServer("198.51.100.11", 8080)]
ROLES = [VipRole(VipKind.CLUSTER_IP), VipRole(VipKind.EXTERNAL_IP), VipRole(VipKind.NODE_PORT, local=True)]


def make(services: dict[ServiceKey, VirtualService], roles: dict[ServiceKey, VipRole]) -> NetfilterPlan:
    return NetfilterPlan(services=services, role_of=roles.get, node_addresses=lambda: {NODE}, cluster_families={4})


def test_a_new_vip_brings_its_address_under_the_filter() -> None:
    """The first key at an address adds the address to the VIP filter along with its port."""
    key = KEYS[0]
    plan = make({key: VirtualService(key)}, {key: ROLES[0]})
    appeared, vanished = plan.refresh([key])
    assert vip_element(key.address) in appeared
    assert ("services4", (key.address, "tcp", 80)) in appeared
    assert vanished == set()


def test_a_node_port_is_not_under_the_vip_filter() -> None:
    """A key at a node address adds no VIP-filter element: the node's own address stays as it is."""
    key = KEYS[3]
    plan = make({key: VirtualService(key)}, {key: ROLES[1]})
    appeared, _ = plan.refresh([key])
    assert not any(name.startswith(("vips", "services")) for name, _ in appeared)


def test_a_refused_key_wants_nothing_and_loses_what_it_had() -> None:
    """Refused at the next refresh (a foreign service appeared): its elements vanish."""
    key = KEYS[0]
    plan = make({key: VirtualService(key)}, {key: ROLES[1]})
    appeared, _ = plan.refresh([key])
    _, vanished = plan.refresh([key], refused={key})
    assert vanished == appeared
    assert len(plan.elements()) == 0


def test_an_element_gone_and_back_within_one_refresh_is_no_change() -> None:
    """Two keys swap a shared element within one refresh: nothing to write."""
    first, second = KEYS[0], KEYS[1]
    services = {first: VirtualService(first)}
    plan = make(services, dict.fromkeys(KEYS, ROLES[0]))
    plan.refresh(None)
    del services[first]
    services[second] = VirtualService(second)
    appeared, vanished = plan.refresh([first, second])
    assert vip_element(first.address) not in appeared | vanished


@st.composite
def tables(draw: st.DrawFn) -> tuple[dict[ServiceKey, VirtualService], dict[ServiceKey, VipRole]]:
    keys = draw(st.lists(st.sampled_from(KEYS), unique=True))
    services = {
        key: VirtualService(key, reals=tuple(draw(st.lists(st.sampled_from(PODS), unique=True)))) for key in keys
    }
    return services, {key: draw(st.sampled_from(ROLES)) for key in keys}


@settings(max_examples=200)
@given(st.lists(st.tuples(tables(), st.booleans(), st.frozensets(st.sampled_from(KEYS))), min_size=1, max_size=6))
def test_changes_applied_to_a_copy_keep_it_equal_to_what_is_wanted(
    steps: list[tuple[tuple[dict[ServiceKey, VirtualService], dict[ServiceKey, VipRole]], bool, frozenset[ServiceKey]]],
) -> None:
    """Tables refreshed fully or by the keys that changed: the copy ends equal to the whole table's elements."""
    services: dict[ServiceKey, VirtualService] = {}
    roles: dict[ServiceKey, VipRole] = {}
    plan = NetfilterPlan(services=services, role_of=roles.get, node_addresses=lambda: {NODE}, cluster_families={4})
    kernel: set[Element] = set()
    for (new_services, new_roles), full, refused in steps:
        changed = {key for key in set(services) | set(new_services) if services.get(key) != new_services.get(key)}
        changed |= {key for key in new_roles if roles.get(key) != new_roles[key]}
        services.clear()
        services.update(new_services)
        roles.clear()
        roles.update(new_roles)
        appeared, vanished = plan.refresh(None if full else changed | refused, refused=refused)
        assert not appeared & kernel
        assert vanished <= kernel
        kernel = (kernel | appeared) - vanished
        wanted = {key: service for key, service in services.items() if key not in refused}
        filtered = {key.address for key in wanted if key.address != NODE}
        if not full:
            continue  # refused keys that did not change stay as the last refresh left them
        assert kernel == desired_elements(wanted, roles, filtered_addresses=filtered, cluster_families={4})


@given(tables(), st.frozensets(st.sampled_from(KEYS)))
def test_the_first_full_refresh_answers_what_a_refresh_by_keys_does(
    table: tuple[dict[ServiceKey, VirtualService], dict[ServiceKey, VipRole]], refused: frozenset[ServiceKey]
) -> None:
    """A fresh plan refreshed whole (its shortcut: all it wants appeared) answers as one refreshed key by key."""
    services, roles = table
    whole, by_keys = make(services, roles), make(services, roles)
    assert whole.refresh(None, refused=refused) == by_keys.refresh(list(services), refused=refused)
    assert set(whole.elements()) == set(by_keys.elements())
