"""Contract: only a dummy interface is the agent's; a link of any other kind is refused and left as it was.

Each case starts with the agent's interface name absent, taken by a dummy (a previous agent's, holding its
VIPs), or taken by a link that is not the agent's: a veth, a bridge, or a device without a link kind (``lo``
in the kernel lab, a kind-less fake in memory). ``look`` sees that link from outside the backend (``ip``
in the namespace, the fake's own state), so a refusal can be shown to change nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from ipvsctl.backend.base import Backend
from ipvsctl.backend.memory import MemoryBackend
from ipvsctl.errors import BackendError
from ipvsctl.model import Protocol, ServiceKey
from tests.kernel.netlab import Netns, run_command

ABSENT, DUMMY, VETH, BRIDGE, KINDLESS = None, "dummy", "veth", "bridge", ""
NAMES = {ABSENT: "ipvs0", DUMMY: "ipvs0", VETH: "v-agent", BRIDGE: "br-agent", KINDLESS: "lo"}
# The addresses each link holds before the backend opens: a previous agent's VIPs on the dummy, the node's
# own addresses on the others (lo's are the kernel's own).
ADDRESSES = {
    ABSENT: frozenset[str](),
    DUMMY: frozenset({"203.0.113.20", "2001:db8:f::20"}),
    VETH: frozenset({"198.51.100.7", "2001:db8:7::7"}),
    BRIDGE: frozenset({"192.0.2.7", "2001:db8:8::7"}),
    KINDLESS: frozenset({"127.0.0.1", "::1"}),
}
_IP_COMMANDS = {
    DUMMY: [
        "link add ipvs0 type dummy",
        "addr add 203.0.113.20/32 dev ipvs0",
        "addr add 2001:db8:f::20/128 dev ipvs0 nodad",
        "link set ipvs0 up",
    ],
    VETH: [
        "link add v-agent type veth peer name v-peer",
        "addr add 198.51.100.7/24 dev v-agent",
        "addr add 2001:db8:7::7/64 dev v-agent nodad",
    ],
    BRIDGE: [
        "link add br-agent type bridge",
        "addr add 192.0.2.7/24 dev br-agent",
        "addr add 2001:db8:8::7/64 dev br-agent nodad",
    ],
}
VIPS = frozenset({"203.0.113.10", "2001:db8:f::10"})
VIP_KEY = ServiceKey(Protocol.TCP, "203.0.113.10", 80)


@dataclass(frozen=True, slots=True)
class LinkView:
    """A link as seen from outside the backend: its kind ("" for none), addresses and flags (kernel only)."""

    kind: str
    addresses: frozenset[str]
    flags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Premises:
    """A backend whose interface name was absent or taken before it opened, and a look at that link."""

    backend: Backend
    kind: str | None
    look: Callable[[], LinkView | None]


def _case(backend: str, kind: str | None) -> object:
    marks = [pytest.mark.kernel] if backend == "netlink" else []
    return pytest.param((backend, kind), marks=marks, id=f"{backend}-{'kindless' if kind == '' else kind}")


ABSENT_CASES = [_case("memory", ABSENT), _case("netlink", ABSENT)]
DUMMY_CASES = [_case("memory", DUMMY), _case("netlink", DUMMY)]
FOREIGN_CASES = [_case(backend, kind) for backend in ("memory", "netlink") for kind in (VETH, BRIDGE, KINDLESS)]


def _look_in(netns: Netns, name: str) -> LinkView | None:
    """The link `name` of the namespace as `ip -d addr` shows it; None when there is none."""
    done = run_command(["ip", "-n", netns.name, "-j", "-d", "addr", "show", "dev", name], check=False)
    if done.returncode != 0:
        return None
    (link,) = json.loads(done.stdout)
    return LinkView(
        kind=link.get("linkinfo", {}).get("info_kind", ""),
        addresses=frozenset(address["local"] for address in link["addr_info"] if address["scope"] != "link"),
        flags=frozenset(link["flags"]),
    )


@pytest.fixture
async def premises(request: pytest.FixtureRequest) -> AsyncIterator[Premises]:
    """The backend of one case (``request.param``: backend, kind of the link there first), and a look at it."""
    implementation, kind = request.param
    name = NAMES[kind]
    if implementation == "memory":
        memory = MemoryBackend(interface=name, interface_kind=kind, bound_addresses=ADDRESSES[kind])

        def look_at_memory() -> LinkView | None:
            found = memory.interface_kind
            return None if found is None else LinkView(kind=found, addresses=memory.interface_addresses)

        yield Premises(backend=memory, kind=kind, look=look_at_memory)
        await memory.close()
        return
    from ipvsctl.backend.kernel import NetlinkBackend  # noqa: PLC0415  the kernel backend only where it is used

    netns: Netns = request.getfixturevalue("lab_netns")
    if kind in _IP_COMMANDS:
        netns.ip("-batch", "-", input="".join(f"{command}\n" for command in _IP_COMMANDS[kind]))
    async with NetlinkBackend(netns=netns.name, interface=name) as backend:
        yield Premises(backend=backend, kind=kind, look=lambda: _look_in(netns, name))


def _refusal_pattern(kind: str | None) -> str:
    return "without a link kind" if kind == "" else f"kind '{kind}'"


# --- absent: the first bind makes a dummy ----------------------------------------------------------------


@pytest.mark.parametrize("premises", ABSENT_CASES, indirect=True)
async def test_the_check_passes_an_absent_interface_and_creates_nothing(premises: Premises) -> None:
    """check_interface on a free name succeeds without creating the interface."""
    await premises.backend.check_interface()

    assert premises.look() is None


@pytest.mark.parametrize("premises", ABSENT_CASES, indirect=True)
async def test_the_first_bind_creates_a_dummy(premises: Premises) -> None:
    """Binding to an absent interface creates it as a dummy holding the VIPs."""
    await premises.backend.bind_addresses(VIPS)

    created = premises.look()
    assert created is not None
    assert (created.kind, created.addresses) == (DUMMY, VIPS)


@pytest.mark.parametrize("premises", ABSENT_CASES, indirect=True)
async def test_removing_an_absent_interface_says_none_was_there(premises: Premises) -> None:
    """remove_interface answers False when there was no interface to delete."""
    assert await premises.backend.remove_interface() is False


# --- an existing dummy is adopted -------------------------------------------------------------------------


@pytest.mark.parametrize("premises", DUMMY_CASES, indirect=True)
async def test_the_check_passes_an_existing_dummy(premises: Premises) -> None:
    """check_interface accepts a dummy that is already there and leaves it as it is."""
    before = premises.look()

    await premises.backend.check_interface()

    assert premises.look() == before


@pytest.mark.parametrize("premises", DUMMY_CASES, indirect=True)
async def test_an_existing_dummys_addresses_are_read_as_the_agents(premises: Premises) -> None:
    """A dummy's addresses (a previous agent's VIPs) are read as bound addresses."""
    assert (await premises.backend.read()).bound_addresses == ADDRESSES[DUMMY]


@pytest.mark.parametrize("premises", DUMMY_CASES, indirect=True)
async def test_a_bind_adopts_an_existing_dummy(premises: Premises) -> None:
    """Binding to an existing dummy makes it hold exactly the new VIPs."""
    await premises.backend.bind_addresses(VIPS)

    adopted = premises.look()
    assert adopted is not None
    assert (adopted.kind, adopted.addresses) == (DUMMY, VIPS)


@pytest.mark.parametrize("premises", DUMMY_CASES, indirect=True)
async def test_removing_a_dummy_deletes_it(premises: Premises) -> None:
    """remove_interface deletes an existing dummy and answers True."""
    assert await premises.backend.remove_interface() is True
    assert premises.look() is None


# --- any other kind is refused and left alone -------------------------------------------------------------


@pytest.mark.parametrize("premises", FOREIGN_CASES, indirect=True)
async def test_the_check_refuses_an_interface_that_is_not_a_dummy(premises: Premises) -> None:
    """check_interface raises BackendError naming the interface and its kind."""
    name = NAMES[premises.kind]

    with pytest.raises(BackendError, match=rf"^{name}: is .*{_refusal_pattern(premises.kind)}.*not a dummy"):
        await premises.backend.check_interface()


@pytest.mark.parametrize("premises", FOREIGN_CASES, indirect=True)
async def test_a_read_refuses_it_rather_than_take_its_addresses_for_vips(premises: Premises) -> None:
    """read() raises BackendError: the link's own addresses are never reported as the agent's VIPs."""
    with pytest.raises(BackendError, match=_refusal_pattern(premises.kind)):
        await premises.backend.read()


@pytest.mark.parametrize("premises", FOREIGN_CASES, indirect=True)
async def test_a_partial_read_refuses_it_too(premises: Premises) -> None:
    """read(only=...) raises BackendError as well, even for a key on one of the link's addresses."""
    own = ServiceKey(Protocol.TCP, sorted(ADDRESSES[premises.kind])[0], 80)

    with pytest.raises(BackendError, match=_refusal_pattern(premises.kind)):
        await premises.backend.read(only=[VIP_KEY, own])


@pytest.mark.parametrize("premises", FOREIGN_CASES, indirect=True)
async def test_a_bind_refuses_it_and_keeps_its_addresses(premises: Premises) -> None:
    """bind_addresses raises BackendError and the link keeps its own addresses, kind and flags."""
    before = premises.look()

    with pytest.raises(BackendError, match=_refusal_pattern(premises.kind)):
        await premises.backend.bind_addresses(VIPS)

    assert before is not None
    assert premises.look() == before


@pytest.mark.parametrize("premises", FOREIGN_CASES, indirect=True)
async def test_a_scoped_bind_refuses_it_and_keeps_its_addresses(premises: Premises) -> None:
    """bind_addresses(within=...) raises BackendError, even when the scope names the link's own addresses."""
    before = premises.look()

    with pytest.raises(BackendError, match=_refusal_pattern(premises.kind)):
        await premises.backend.bind_addresses(VIPS, within=VIPS | ADDRESSES[premises.kind])

    assert premises.look() == before


@pytest.mark.parametrize("premises", FOREIGN_CASES, indirect=True)
async def test_removing_it_is_refused_and_it_stays(premises: Premises) -> None:
    """remove_interface raises BackendError and the link is still there, as it was."""
    before = premises.look()

    with pytest.raises(BackendError, match=_refusal_pattern(premises.kind)):
        await premises.backend.remove_interface()

    assert before is not None
    assert premises.look() == before


# --- names the kernel would not take ----------------------------------------------------------------------


def _memory(name: str) -> object:
    return MemoryBackend(interface=name)


def _netlink(name: str) -> object:
    from ipvsctl.backend.kernel import NetlinkBackend  # noqa: PLC0415  the kernel backend only where it is used

    return NetlinkBackend(interface=name)


@pytest.mark.parametrize("make", [_memory, _netlink], ids=["memory", "netlink"])
@pytest.mark.parametrize("name", ["", "a" * 16, "a/b", "a b", "a:1"], ids=["empty", "long", "slash", "space", "colon"])
def test_a_name_the_kernel_would_refuse_is_refused_at_construction(make: Callable[[str], object], name: str) -> None:
    """Constructing a backend on an invalid interface name raises BackendError naming the name."""
    with pytest.raises(BackendError, match=rf"^interface {name!r}: "):
        make(name)
