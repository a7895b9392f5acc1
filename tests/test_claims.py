"""Claiming VIP addresses: a foreign virtual service is never the agent's because a Service wants its address."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from ipvsctl.claims import claim, presumed_held, unclaimed_addresses
from ipvsctl.model import Protocol, ServiceKey, Table, VirtualService
from ipvsctl.plan import Ownership, apply_operations, plan
from tests.strategies import real_servers, virtual_services

NODE = "192.0.2.11"


def key(address: str, port: int, protocol: Protocol = Protocol.TCP) -> ServiceKey:
    return ServiceKey(protocol, address, port)


KEEPALIVED = key("192.0.2.50", 443)
WANTED = key("192.0.2.50", 80)


def test_address_with_a_foreign_service_is_refused() -> None:
    """A Service wanting 192.0.2.50:80 where keepalived has :443: refused, nothing taken, keepalived named."""
    claims = claim([WANTED], present=[KEEPALIVED], ownership=Ownership())
    assert claims.taken == frozenset()
    assert "tcp/192.0.2.50:443" in claims.refused[WANTED]


def test_free_address_is_taken() -> None:
    """An address with nothing on it is taken (to be bound before the service is added)."""
    claims = claim([WANTED], present=[key("192.0.2.51", 443)], ownership=Ownership())
    assert (claims.taken, dict(claims.refused)) == (frozenset({"192.0.2.50"}), {})


def test_held_address_needs_no_claim() -> None:
    """An address already on the agent's interface is the agent's: nothing to ask, nothing refused."""
    held = Ownership(addresses=frozenset({"192.0.2.50"}))
    assert unclaimed_addresses([WANTED], ownership=held) == set()
    claims = claim([WANTED], present=[KEEPALIVED], ownership=held)
    assert (claims.taken, dict(claims.refused)) == (frozenset(), {})


def test_same_key_as_a_foreign_service_is_refused() -> None:
    """keepalived's own tcp/192.0.2.50:80 wanted by a Service: refused, not edited."""
    claims = claim([WANTED], present=[WANTED], ownership=Ownership())
    assert WANTED in claims.refused


def test_node_address_outside_the_node_port_range_is_refused() -> None:
    """A wanted key on a node address that is not a NodePort is refused; the node address is never taken."""
    ownership = Ownership(node_addresses=frozenset({NODE}))
    ssh = key(NODE, 22)
    claims = claim([ssh, key(NODE, 30080)], present=[], ownership=ownership)
    assert set(claims.refused) == {ssh}
    assert claims.taken == frozenset()


def test_reason_counts_what_it_does_not_name() -> None:
    """Many foreign services at one address: three named, the rest counted."""
    present = [key("192.0.2.50", port) for port in range(1, 8)]
    assert "and 4 more" in claim([WANTED], present=present, ownership=Ownership()).refused[WANTED]


def test_presumed_held_takes_addresses_whose_every_entry_is_desired() -> None:
    """For a save file: an address is the agent's when all its entries are desired."""
    desired = {WANTED: None, key("192.0.2.60", 80): None}
    current = [WANTED, KEEPALIVED, key("192.0.2.60", 80), key("192.0.2.70", 80)]
    assert presumed_held(current, desired) == {"192.0.2.60"}


# --- the property: for any desired table, every foreign entry survives -------------------------------------

ADDRESSES = ("192.0.2.50", "192.0.2.60", "203.0.113.10", NODE)
PORTS = (80, 443, 30080)


@st.composite
def entries(draw: st.DrawFn) -> list[VirtualService]:
    keys = draw(
        st.lists(
            st.builds(key, st.sampled_from(ADDRESSES), st.sampled_from(PORTS), st.sampled_from(list(Protocol)[:2])),
            unique=True,
            max_size=6,
        )
    )
    services = []
    for each in keys:
        service = draw(virtual_services(key=each, max_reals=0))
        reals = draw(st.lists(real_servers(key=each), max_size=2, unique_by=lambda real: real.key))
        services.append(replace(service, reals=tuple(reals)))
    return services


@settings(max_examples=300)
@given(
    current=entries(),
    desired=entries(),
    held=st.frozensets(st.sampled_from(ADDRESSES[:3])),
)
def test_every_foreign_entry_survives_claim_and_plan(
    current: list[VirtualService], desired: list[VirtualService], held: frozenset[str]
) -> None:
    """Claim, plan and apply: every entry that was not the agent's is unchanged, and no taken address has one."""
    current_table, desired_table = Table.of(current), Table.of(desired)
    ownership = Ownership(addresses=held, node_addresses=frozenset({NODE}))
    foreign = {vs.key: vs for vs in current if not ownership.owns(vs.key)}
    claims = claim(desired_table.services, present=current_table.services, ownership=ownership)
    assert not {found.address for found in foreign} & claims.taken
    owned = ownership.with_addresses(claims.taken)
    after = apply_operations(current_table, plan(current_table, desired_table, ownership=owned, refused=claims.refused))
    assert {found: after.services.get(found) for found in foreign} == foreign
    assert not claims.taken & {NODE}
