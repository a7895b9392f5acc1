"""Applying in waves (several services' operations together) ends exactly as applying in order."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from ipvsctl.backend.base import OperationFailure, apply_in_order, apply_in_waves
from ipvsctl.model import AddRealServer, AddVirtualService, Operation, Protocol, RealServer, ServiceKey, VirtualService

KEYS = [ServiceKey(Protocol.TCP, f"203.0.113.{n}", 80) for n in range(1, 5)]


@st.composite
def operation_lists(draw: st.DrawFn) -> tuple[list[Operation], frozenset[int]]:
    """Operations over a few services, interleaved, and which of them (by position) the kernel refuses."""
    operations: list[Operation] = []
    for _ in range(draw(st.integers(0, 16))):
        key = draw(st.sampled_from(KEYS))
        if draw(st.booleans()):
            operations.append(AddVirtualService(VirtualService(key)))
        else:
            real = RealServer(f"198.51.100.{draw(st.integers(1, 9))}", 8080)
            operations.append(AddRealServer(key, real))
    failing = draw(st.frozensets(st.integers(0, max(len(operations) - 1, 0))))
    return operations, failing


def refusing(operations: list[Operation], failing: frozenset[int]) -> dict[int, int]:
    """Identity of each operation object → errno to refuse it with (only those in ``failing``)."""
    return {id(operation): 17 for index, operation in enumerate(operations) if index in failing}


@given(operation_lists())
async def test_waves_report_what_in_order_reports(case: tuple[list[Operation], frozenset[int]]) -> None:
    """Applied and skipped counts and the failures (in operation order) are the same both ways."""
    operations, failing = case
    refused = refusing(operations, failing)
    attempted_in_order: list[Operation] = []
    attempted_in_waves: list[Operation] = []

    async def one(operation: Operation) -> OperationFailure | None:
        attempted_in_order.append(operation)
        code = refused.get(id(operation))
        return None if code is None else OperationFailure(operation, code, "refused")

    async def many(wave: Sequence[Operation]) -> list[OperationFailure | None]:
        attempted_in_waves.extend(wave)
        return [None if id(op) not in refused else OperationFailure(op, refused[id(op)], "refused") for op in wave]

    assert await apply_in_waves(operations, many) == await apply_in_order(operations, one)
    assert sorted(map(id, attempted_in_waves)) == sorted(map(id, attempted_in_order))


async def test_a_wave_holds_one_operation_per_service() -> None:
    """Three services of two operations each go in two waves of three."""
    operations: list[Operation] = []
    for key in KEYS[:3]:
        operations += [AddVirtualService(VirtualService(key)), AddRealServer(key, RealServer("198.51.100.1", 80))]
    waves: list[list[ServiceKey]] = []

    async def many(wave: Sequence[Operation]) -> list[OperationFailure | None]:
        waves.append([operation.key for operation in wave])
        return [None] * len(wave)

    report = await apply_in_waves(operations, many)
    assert (report.applied, waves) == (6, [KEYS[:3], KEYS[:3]])
