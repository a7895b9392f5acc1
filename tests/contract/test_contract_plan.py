"""Contract: applying plan(current, desired) through a backend gives the table the pure apply_operations gives."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hypothesis import given
from hypothesis import strategies as st

from ipvsctl.backend.base import Backend
from ipvsctl.model import DeleteVirtualService, Table, VirtualService
from ipvsctl.plan import Ownership, apply_operations, plan
from tests.contract.conftest import PLAN_SETTINGS
from tests.contract.values import creation, table_of
from tests.strategies import real_servers, service_keys, virtual_services


@dataclass(frozen=True)
class Tables:
    """A current and a desired table over one pool of keys and real servers (so edits occur)."""

    current: Table
    desired: Table


@st.composite
def table_pairs(draw: st.DrawFn) -> Tables:
    """Current and desired tables sharing keys and real servers, small enough for the kernel lab."""
    keys = draw(st.lists(service_keys(), min_size=1, max_size=4, unique=True))
    sides: tuple[list[VirtualService], list[VirtualService]] = ([], [])
    for key in keys:
        pool = draw(st.lists(real_servers(key=key), max_size=3, unique_by=lambda real: real.key))
        for side in sides:
            if draw(st.booleans()):
                settings_only = draw(virtual_services(key=key, max_reals=0))
                chosen = draw(st.lists(st.sampled_from(pool), unique_by=lambda real: real.key)) if pool else []
                weights = [real.with_weight(draw(st.sampled_from((real.weight, 0, 7)))) for real in chosen]
                side.append(replace(settings_only, reals=tuple(weights)))
    return Tables(Table.of(sides[0]), Table.of(sides[1]))


async def reset(backend: Backend, table: Table) -> None:
    """Make the backend hold exactly ``table``."""
    await backend.apply([DeleteVirtualService(vs.settings()) for vs in await table_of(backend)])
    report = await backend.apply(creation(*table))
    assert report.ok, report.failures


@PLAN_SETTINGS
@given(tables=table_pairs())
async def test_applying_a_plan_reaches_the_table_apply_operations_computes(backend: Backend, tables: Tables) -> None:
    """Through the backend, plan(current, desired) turns current into apply_operations(current, plan)."""
    await reset(backend, tables.current)
    state = await backend.read()
    owned = Ownership(addresses=frozenset(vs.key.address for vs in tables.current))
    operations = plan(state.table, tables.desired, ownership=owned, connections=state.connections)

    report = await backend.apply(operations)

    assert report.ok, report.failures
    assert await table_of(backend) == apply_operations(tables.current, operations)
