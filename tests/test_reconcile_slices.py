"""reconcile.slices: a resync's keys cut into slices of about a size, each address whole in one slice."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ipvsctl.model import ServiceKey
from ipvsctl.reconcile import slices
from tests.strategies import service_keys

KEYS = st.lists(service_keys(), max_size=60, unique=True)


@given(keys=KEYS, size=st.integers(min_value=1, max_value=10))
def test_every_key_is_in_exactly_one_slice(keys: list[ServiceKey], size: int) -> None:
    """The slices hold each key once, and nothing else."""
    cut = [key for part in slices(keys, size=size) for key in part]
    assert (sorted(cut, key=str), len(cut)) == (sorted(keys, key=str), len(keys))


@given(keys=KEYS, size=st.integers(min_value=1, max_value=10))
def test_an_address_is_never_split_between_slices(keys: list[ServiceKey], size: int) -> None:
    """All the keys at one address are planned in the same slice (a slice binds its addresses)."""
    where = {key.address: index for index, part in enumerate(slices(keys, size=size)) for key in part}
    assert all(where[key.address] == index for index, part in enumerate(slices(keys, size=size)) for key in part)


@given(keys=KEYS, size=st.integers(min_value=1, max_value=10))
def test_a_slice_is_cut_as_soon_as_it_reaches_the_size(keys: list[ServiceKey], size: int) -> None:
    """Every slice but the last holds at least ``size`` keys, and fewer without its last address."""
    parts = slices(keys, size=size)
    for part in parts[:-1]:
        before_last = [key for key in part if key.address != part[-1].address]
        assert len(before_last) < size <= len(part)
