"""ipvsctl's nftables table created where there was none: defined dormant by ``nft -f``, then filled and woken
by one netlink transaction (``backend.nft.kernel``). Checked against the lab kernel's nf_tables."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import AsyncIterator

import pytest

from ipvsctl.backend.nft import kernel, wire
from ipvsctl.backend.nft.kernel import KernelNetfilter
from ipvsctl.errors import BackendError
from ipvsctl.netfilter.elements import Element
from ipvsctl.netfilter.ruleset import DEFAULT_MASQUERADE_BIT
from tests.kernel.netlab import Netns

pytestmark = pytest.mark.kernel

ALLOWED = ("allowed4", ("203.0.113.20", "tcp", 443, "192.0.2.0/24"))
UNKNOWN_TABLE_FLAG = 1 << 31  # outside NFT_TABLE_F_MASK: the kernel refuses the update (EOPNOTSUPP)


@pytest.fixture
async def table(netns: Netns) -> AsyncIterator[KernelNetfilter]:
    """A KernelNetfilter handle on a fresh lab namespace (``netns``, tests/kernel/conftest.py): no table yet."""
    handle = KernelNetfilter(netns=netns.name, masquerade_bit=DEFAULT_MASQUERADE_BIT)
    yield handle
    await handle.close()


def tables(netns: Netns) -> list[dict[str, object]]:
    """The namespace's tables as ``nft -j list tables`` gives them."""
    listing = json.loads(netns.run("nft", "-j", "list", "tables").stdout)
    return [entry["table"] for entry in listing["nftables"] if "table" in entry]


def services(count: int) -> set[Element]:
    """``count`` distinct IPv6 service elements."""
    base = int(ipaddress.ip_address("2001:db8:7::"))
    return {("services6", (str(ipaddress.ip_address(base + n // 4)), "tcp", 80 + n % 4)) for n in range(count)}


async def test_a_created_table_is_awake_with_its_elements(table: KernelNetfilter, netns: Netns) -> None:
    """After a creation the table is not dormant and holds what was written, as defined."""
    await table.replace({ALLOWED, ("vips4", ("203.0.113.20",))})
    [found] = tables(netns)
    assert (found["name"], found.get("flags", [])) == ("ipvsctl", [])
    state = await table.read()
    assert (state.defined, state.elements) == (True, frozenset({ALLOWED, ("vips4", ("203.0.113.20",))}))


async def test_a_refused_creation_leaves_no_table(
    table: KernelNetfilter, netns: Netns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the kernel refuses the filling transaction: BackendError, and no table (not even a dormant one)."""

    def refused_waking(**fields: int | str) -> bytes:  # the waking message with a flag the kernel refuses
        return wire.table_flags_message(**{**fields, "flags": UNKNOWN_TABLE_FLAG})  # type: ignore[arg-type]

    monkeypatch.setattr(kernel, "table_flags_message", refused_waking)
    with pytest.raises(BackendError, match="change refused"):
        await table.replace({ALLOWED})
    assert tables(netns) == []
    assert (await table.read()).present is False


async def test_sixty_thousand_elements_are_created_in_one_transaction(table: KernelNetfilter) -> None:
    """60,000 elements (about 2.5 MiB of messages, past the socket's first send buffer) go in and read back."""
    wanted = services(60_000)
    await table.replace(wanted)
    state = await table.read()
    assert (state.defined, len(state.elements)) == (True, 60_000)
    assert state.elements == wanted


async def test_a_change_of_thirty_thousand_elements_goes_at_once(table: KernelNetfilter) -> None:
    """A change larger than the first send buffer is one transaction that the kernel takes whole."""
    await table.replace(set())
    wanted = services(30_000)
    await table.change(add=wanted, delete=())
    assert (await table.read()).elements == wanted


async def test_a_table_made_dormant_by_hand_reads_not_defined(table: KernelNetfilter, netns: Netns) -> None:
    """A table put to sleep behind the agent's back (its chains off their hooks) is not as defined."""
    await table.replace({ALLOWED})
    netns.run("nft", "add", "table", "inet", "ipvsctl", "{ flags dormant; }")
    state = await table.read()
    assert (state.defined, state.present, state.elements) == (False, True, frozenset({ALLOWED}))


async def test_a_replace_over_a_dormant_table_wakes_it(table: KernelNetfilter, netns: Netns) -> None:
    """The rewrite of a dormant table (as a resync makes it) leaves it awake, with the elements written."""
    await table.replace({ALLOWED})
    netns.run("nft", "add", "table", "inet", "ipvsctl", "{ flags dormant; }")
    await table.replace({ALLOWED})
    [found] = tables(netns)
    assert found.get("flags", []) == []
    state = await table.read()
    assert (state.defined, state.elements) == (True, frozenset({ALLOWED}))
