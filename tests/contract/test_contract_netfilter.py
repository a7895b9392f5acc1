"""Contract: ipvsctl's nftables table, on every NetfilterTable (memory everywhere, the kernel in the lab).

What is written reads back exactly; a change is all or nothing; a table changed behind the agent's back
reads as "not defined" until it is rewritten.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest

from ipvsctl.backend.nft.base import NetfilterTable
from ipvsctl.backend.nft.memory import MemoryNetfilter
from ipvsctl.errors import DriftError
from ipvsctl.netfilter.elements import Element
from ipvsctl.netfilter.ruleset import DEFAULT_MASQUERADE_BIT
from tests.contract.conftest import HAS_IPVS, LAB_COMMAND
from tests.kernel.netlab import Lab, Netns

SERVICE: Element = ("services4", ("203.0.113.10", "tcp", 80))
EVERY_KIND: frozenset[Element] = frozenset(
    {
        ("vips4", ("203.0.113.10",)),
        ("vips6", ("2001:db8::10",)),
        SERVICE,
        ("services6", ("2001:db8::10", "udp", 53)),
        ("masquerade4", ("192.0.2.11", "tcp", 30080)),
        ("masquerade6", ("2001:db8::11", "sctp", 30081)),
        ("cluster4", ("203.0.113.10", "tcp", 80)),
        ("cluster6", ("2001:db8::10", "tcp", 80)),
        ("hairpin4", ("198.51.100.10", "tcp", 8080, "198.51.100.10")),
        ("hairpin6", ("2001:db8:5::10", "udp", 53, "2001:db8:5::10")),
        ("ranged4", ("203.0.113.20", "tcp", 443)),
        ("ranged6", ("2001:db8::20", "tcp", 443)),
        ("allowed4", ("203.0.113.20", "tcp", 443, "192.0.2.0/24")),
        ("allowed4", ("203.0.113.20", "tcp", 443, "198.51.100.7/32")),
        ("allowed6", ("2001:db8::20", "tcp", 443, "2001:db8:c::/48")),
    }
)


@dataclass(frozen=True, slots=True)
class Subject:
    """A table under test and the hands of an operator changing it behind the agent's back."""

    table: NetfilterTable
    tamper_add: Callable[[Element], object]
    drop_table: Callable[[], object]
    edit_definition: Callable[[], object]


@pytest.fixture
def lab_netns() -> Iterator[Netns]:
    """A fresh network namespace in the lab (the kernel's nf_tables)."""
    if not HAS_IPVS or shutil.which("nft") is None:
        pytest.skip(f"needs the kernel lab with nft: {LAB_COMMAND}")
    with contextlib.ExitStack() as cleanup:
        yield Lab(cleanup).netns("nft")


@pytest.fixture(params=["memory", pytest.param("kernel", marks=pytest.mark.kernel)])
async def subject(request: pytest.FixtureRequest) -> AsyncIterator[Subject]:
    """Each NetfilterTable, with an operator's hands on the same table."""
    if request.param == "memory":
        memory = MemoryNetfilter()
        yield Subject(memory, lambda e: memory.tamper(add=[e]), memory.drop_table, memory.edit_definition)
        return
    from ipvsctl.backend.nft.kernel import KernelNetfilter  # noqa: PLC0415  (nft only where it runs)
    from ipvsctl.netfilter.ruleset import element_text  # noqa: PLC0415

    netns: Netns = request.getfixturevalue("lab_netns")
    kernel = KernelNetfilter(netns=netns.name, masquerade_bit=DEFAULT_MASQUERADE_BIT)
    yield Subject(
        kernel,
        lambda e: netns.run("nft", "add", "element", "inet", "ipvsctl", e[0], f"{{ {element_text(e[1])} }}"),
        lambda: netns.run("nft", "flush", "ruleset"),
        lambda: netns.run("nft", "add", "rule", "inet", "ipvsctl", "input", "counter"),
    )
    await kernel.close()


async def test_a_table_never_written_is_not_defined(subject: Subject) -> None:
    """A fresh handle has written nothing: the table reads as not defined, with no elements."""
    state = await subject.table.read()
    assert (state.defined, state.present, state.elements) == (False, False, frozenset())


async def test_what_replace_writes_reads_back_exactly(subject: Subject) -> None:
    """Elements of every kind and family, ranges included, read back as written; the table is as defined."""
    await subject.table.replace(EVERY_KIND)
    state = await subject.table.read()
    assert (state.defined, state.present, state.elements) == (True, True, EVERY_KIND)


async def test_a_change_adds_and_deletes_in_one_go(subject: Subject) -> None:
    """Deleted elements are gone and added ones there, the rest untouched."""
    await subject.table.replace(EVERY_KIND)
    added: Element = ("services4", ("203.0.113.11", "tcp", 8443))
    await subject.table.change(add=[added], delete=[SERVICE])
    assert (await subject.table.read()).elements == (EVERY_KIND - {SERVICE}) | {added}


async def test_a_table_changed_by_the_agent_is_still_as_defined(subject: Subject) -> None:
    """Element changes bump the ruleset's generation, not the definition: a resync must not rewrite the table."""
    await subject.table.replace({SERVICE})
    await subject.table.change(add=[("vips4", ("203.0.113.10",))], delete=[])
    await subject.table.change(add=[], delete=[SERVICE])
    assert (await subject.table.read()).defined is True


async def test_a_change_deleting_a_missing_element_changes_nothing(subject: Subject) -> None:
    """All or nothing: one refused deletion and the additions of the same change do not go in either."""
    await subject.table.replace({SERVICE})
    with pytest.raises(DriftError):
        await subject.table.change(add=[("vips4", ("203.0.113.10",))], delete=[("vips4", ("203.0.113.99",))])
    assert (await subject.table.read()).elements == {SERVICE}


async def test_a_dropped_table_reads_not_defined_and_refuses_changes(subject: Subject) -> None:
    """nft flush ruleset behind the agent's back: not defined, a change is a DriftError, a replace repairs."""
    await subject.table.replace({SERVICE})
    subject.drop_table()
    assert (await subject.table.read()).defined is False
    with pytest.raises(DriftError):
        await subject.table.change(add=[SERVICE], delete=[])
    await subject.table.replace({SERVICE})
    assert (await subject.table.read()).defined is True


async def test_an_edited_definition_reads_not_defined(subject: Subject) -> None:
    """A rule added by hand to the agent's chain: the table is no longer as defined."""
    await subject.table.replace({SERVICE})
    subject.edit_definition()
    state = await subject.table.read()
    assert (state.defined, state.present) == (False, True)


async def test_a_replace_over_an_edited_table_reads_back_exactly(subject: Subject) -> None:
    """A table edited by hand is rewritten whole: the edit is gone, the elements are exactly the new ones."""
    await subject.table.replace({SERVICE})
    subject.edit_definition()
    await subject.table.replace(EVERY_KIND)
    state = await subject.table.read()
    assert (state.defined, state.present, state.elements) == (True, True, EVERY_KIND)


async def test_elements_added_by_hand_are_read(subject: Subject) -> None:
    """An element someone else added is in what a read returns (so a resync deletes it)."""
    await subject.table.replace({SERVICE})
    extra: Element = ("services4", ("203.0.113.12", "udp", 53))
    subject.tamper_add(extra)
    assert (await subject.table.read()).elements == {SERVICE, extra}


async def test_remove_deletes_the_table_once(subject: Subject) -> None:
    """remove says there was a table, and the second time that there was none."""
    await subject.table.replace({SERVICE})
    assert await subject.table.remove() is True
    assert await subject.table.remove() is False
    assert (await subject.table.read()).defined is False
