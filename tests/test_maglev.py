"""The pure model of the kernel's mh scheduler (ipvsctl.maglev); tests/kernel/test_affinity_mh.py proves it equal
to the kernel's choice for 1,000 clients."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipvsctl.maglev import TABLE_SIZE, Destination, MaglevTable, hsiphash32, inputs_digest
from ipvsctl.model import RealServerKey

TEN = tuple(Destination(f"198.51.100.{last}", 8080) for last in range(11, 21))
CLIENTS = tuple(f"192.0.2.{last}" for last in range(2, 252))


def test_every_slot_goes_to_a_destination_in_near_equal_shares() -> None:
    """Ten equal servers share the 4,093 slots within one slot of each other."""
    shares = MaglevTable.build(TEN).shares()

    assert sum(shares.values()) == TABLE_SIZE
    assert max(shares.values()) - min(shares.values()) <= 1


def test_hsiphash_is_siphash_1_3_of_four_bytes() -> None:
    """Pinned values of the kernel's hsiphash with ip_vs_mh.c's first key (the lab proves the choices they make)."""
    key = (2654435761, 2654435761)

    assert [hsiphash32(value, key=key) for value in (0, 1, 0xC0000202)] == [492468162, 384591538, 4179178861]


def test_weights_share_slots_in_proportion() -> None:
    """A server of weight 3 gets three times the slots of a server of weight 1."""
    table = MaglevTable.build([Destination("198.51.100.11", 80, 3, 3), Destination("198.51.100.12", 80, 1, 1)])
    shares = table.shares()

    assert shares[RealServerKey("198.51.100.11", 80)] == pytest.approx(3 * TABLE_SIZE / 4, abs=2)


def test_a_server_added_with_weight_0_takes_no_slot() -> None:
    """last_weight 0 (added with weight 0): the table is that of the others alone."""
    added_at_zero = MaglevTable.build([*TEN, Destination("198.51.100.99", 8080, 0, 0)])

    assert added_at_zero.slots == MaglevTable.build(TEN).slots


def test_a_drained_server_keeps_its_slots() -> None:
    """Edited to weight 0 (last_weight 1) a server keeps every slot it had."""
    drained = (*TEN[:3], Destination(TEN[3].address, 8080, 0, 1), *TEN[4:])

    assert MaglevTable.build(drained).slots == MaglevTable.build(TEN).slots


def test_without_fallback_a_drained_servers_clients_get_nothing() -> None:
    """Without mh-fallback a client whose slot is a weight-0 server is not scheduled."""
    drained = (Destination(TEN[0].address, 8080, 0, 1), *TEN[1:])
    table = MaglevTable.build(drained)
    victims = [client for client in CLIENTS if MaglevTable.build(TEN).choose(client) == TEN[0]]

    assert victims
    assert {table.choose(client) for client in victims} == {None}


def test_with_fallback_a_drained_servers_clients_go_to_available_servers() -> None:
    """With mh-fallback every client gets a server of weight > 0, and the others keep theirs."""
    full = MaglevTable.build(TEN)
    table = MaglevTable.build((Destination(TEN[0].address, 8080, 0, 1), *TEN[1:]), fallback=True)

    for client in CLIENTS:
        chosen = table.choose(client)
        assert chosen is not None
        assert chosen.weight > 0
        if full.choose(client) != TEN[0]:
            assert chosen == full.choose(client)


def test_the_order_of_the_list_changes_a_few_slots() -> None:
    """The same servers walked in another order give a table that differs in a few slots, not none."""
    forward, backward = MaglevTable.build(TEN), MaglevTable.build(tuple(reversed(TEN)))
    differ = sum(
        1
        for a, b in zip(forward.slots, backward.slots, strict=True)
        if forward.destinations[a] != backward.destinations[b]
    )

    assert 0 < differ < TABLE_SIZE // 20


def test_mh_port_hashes_the_source_port_too() -> None:
    """With mh-port one client's connections from different ports spread; without, they all hash alike."""
    plain, with_port = MaglevTable.build(TEN), MaglevTable.build(TEN, port=True)

    assert len({plain.choose("192.0.2.7", client_port=p) for p in range(1000, 1050)}) == 1
    assert len({with_port.choose("192.0.2.7", client_port=p) for p in range(1000, 1050)}) > 1


def test_no_destination_means_no_choice() -> None:
    """An empty list (or only weight-0 adds) chooses nothing."""
    assert MaglevTable.build([Destination("198.51.100.11", 80, 0, 0)]).choose("192.0.2.2") is None


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=11, max_value=60), min_size=1, max_size=8, unique=True), st.data())
def test_removing_a_server_moves_mostly_its_own_clients(lasts: list[int], data: st.DataObject) -> None:
    """Removing one server moves its own slots and fewer others than it had (Maglev: near-minimal disruption)."""
    dests = [Destination(f"198.51.100.{last}", 80) for last in lasts]
    gone = data.draw(st.sampled_from(dests))
    before = MaglevTable.build(dests)
    after = MaglevTable.build([d for d in dests if d != gone])
    moved = sum(
        1
        for a, b in zip(before.slots, after.slots, strict=True)
        if before.destinations[a] != gone and before.destinations[a] != after.destinations[b]
    )

    assert moved < before.shares()[gone.key]  # fewer than its own; not none: Maglev is not perfectly minimal


def test_the_digest_follows_every_input() -> None:
    """Order, weights, fallback and port each change the digest; equal inputs give equal digests."""
    base = inputs_digest(TEN, fallback=True, port=False)

    assert base == inputs_digest(tuple(TEN), fallback=True, port=False)
    assert (
        len(
            {
                base,
                inputs_digest(tuple(reversed(TEN)), fallback=True, port=False),
                inputs_digest((Destination(TEN[0].address, 8080, 0, 1), *TEN[1:]), fallback=True, port=False),
                inputs_digest(TEN, fallback=False, port=False),
                inputs_digest(TEN, fallback=True, port=True),
            }
        )
        == 5
    )
