"""Reading the table again (the agent's resync) on the lean transport: what it reuses, and what it must not.

A second read sends each service's destination dump with the same sequence number as before, so an
unchanged table answers the same bytes and gives back the very records of the first read. These tests
show that any change made behind the backend's back still reads as changed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ipvsctl.backend.ipvs.layout import LayoutDecoder
from ipvsctl.backend.kernel import NetlinkBackend
from ipvsctl.backend.netlink.message import WireFormatError
from ipvsctl.errors import BackendError
from ipvsctl.model import Protocol, RealServer, ServiceKey, Table, VirtualService
from tests.contract.values import creation
from tests.kernel.netlab import Lab, Netns, Topology, http_get

pytestmark = pytest.mark.kernel

WEB = ServiceKey(Protocol.TCP, "203.0.113.10", 80)
DNS = ServiceKey(Protocol.UDP, "203.0.113.10", 53)
EMPTY = ServiceKey(Protocol.TCP, "203.0.113.11", 443)
TABLE = Table.of(
    [
        VirtualService(WEB, reals=(RealServer("198.51.100.11", 8080), RealServer("198.51.100.12", 8080))),
        VirtualService(DNS, scheduler="wrr", reals=(RealServer("198.51.100.13", 53, weight=2),)),
        VirtualService(EMPTY),  # no destinations: its dump answers a lone NLMSG_DONE
    ]
)


@pytest.fixture
async def backend(netns: Netns) -> AsyncIterator[NetlinkBackend]:
    """A lean NetlinkBackend on the test's namespace, holding TABLE."""
    async with NetlinkBackend(netns=netns.name, wire="lean") as opened:
        report = await opened.apply(creation(*TABLE))
        assert report.ok, report.failures
        yield opened


async def test_a_second_read_of_an_unchanged_table_gives_the_same_objects(backend: NetlinkBackend) -> None:
    """Reading an unchanged table again gives the very service objects of the first read, equal to the table."""
    first = (await backend.read()).table
    second = (await backend.read()).table

    assert second == TABLE
    assert all(second.services[key] is first.services[key] for key in TABLE.services)


async def test_a_weight_changed_by_ipvsadm_reads_as_changed(backend: NetlinkBackend, netns: Netns) -> None:
    """A weight edited behind the backend's back shows in the next read."""
    await backend.read()
    netns.ipvsadm("-e", "-t", "203.0.113.10:80", "-r", "198.51.100.12:8080", "-m", "-w", "5")

    second = (await backend.read()).table

    assert {real.address: real.weight for real in second.services[WEB].reals} == {
        "198.51.100.11": 1,
        "198.51.100.12": 5,
    }


async def test_services_left_alone_stay_the_same_objects(backend: NetlinkBackend, netns: Netns) -> None:
    """When one service changes behind the backend's back, the others read back as the very same objects."""
    first = (await backend.read()).table
    netns.ipvsadm("-e", "-t", "203.0.113.10:80", "-r", "198.51.100.12:8080", "-m", "-w", "5")

    second = (await backend.read()).table

    assert second.services[DNS] is first.services[DNS]
    assert second.services[EMPTY] is first.services[EMPTY]


async def test_a_threshold_changed_by_ipvsadm_reads_as_changed(backend: NetlinkBackend, netns: Netns) -> None:
    """An upper connection threshold (in no /proc file, only in the netlink answer) set behind its back is read."""
    await backend.read()
    netns.ipvsadm("-e", "-u", "203.0.113.10:53", "-r", "198.51.100.13:53", "-m", "-w", "2", "-x", "100")

    (real,) = (await backend.read()).table.services[DNS].reals

    assert real.upper_threshold == 100


async def test_a_scheduler_changed_by_ipvsadm_reads_as_changed(backend: NetlinkBackend, netns: Netns) -> None:
    """A service's own settings edited behind its back show in the next read."""
    await backend.read()
    netns.ipvsadm("-E", "-t", "203.0.113.11:443", "-s", "wlc")

    assert (await backend.read()).table.services[EMPTY].scheduler == "wlc"


async def test_a_server_added_to_an_empty_service_reads_as_added(backend: NetlinkBackend, netns: Netns) -> None:
    """A destination added behind its back to a service whose last answer was a lone NLMSG_DONE is read."""
    await backend.read()
    netns.ipvsadm("-a", "-t", "203.0.113.11:443", "-r", "198.51.100.14:443", "-m")

    assert (await backend.read()).table.services[EMPTY].reals == (RealServer("198.51.100.14", 443),)


async def test_a_service_deleted_and_made_again_reads_anew(backend: NetlinkBackend, netns: Netns) -> None:
    """A service deleted and created again (other servers) behind its back reads with its new servers."""
    await backend.read()
    netns.ipvsadm("-D", "-t", "203.0.113.10:80")
    netns.ipvsadm("-A", "-t", "203.0.113.10:80", "-s", "rr")
    netns.ipvsadm("-a", "-t", "203.0.113.10:80", "-r", "198.51.100.15:8080", "-m")

    assert (await backend.read()).table.services[WEB].reals == (RealServer("198.51.100.15", 8080),)


async def test_a_read_broken_off_part_way_leaves_the_next_read_whole(
    backend: NetlinkBackend, netns: Netns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a read that failed in the middle of a destination dump, the next read is the whole, right table."""
    await backend.read()
    netns.ipvsadm("-e", "-t", "203.0.113.10:80", "-r", "198.51.100.12:8080", "-m", "-w", "5")
    monkeypatch.setattr(LayoutDecoder, "many_dests", _unreadable)  # the changed service's answer must be decoded
    with pytest.raises(BackendError, match="unreadable"):
        await backend.read()
    monkeypatch.undo()

    weights = {real.address: real.weight for real in (await backend.read()).table.services[WEB].reals}

    assert weights == {"198.51.100.11": 1, "198.51.100.12": 5}


async def test_a_decoding_bug_reaches_the_caller_as_itself(
    backend: NetlinkBackend, netns: Netns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug met while decoding is not passed off as a kernel error: its own type and traceback go up, and
    the next read is whole."""
    await backend.read()
    netns.ipvsadm("-e", "-t", "203.0.113.10:80", "-r", "198.51.100.12:8080", "-m", "-w", "5")
    monkeypatch.setattr(LayoutDecoder, "many_dests", _buggy)
    with pytest.raises(TypeError, match="a bug") as raised:
        await backend.read()
    monkeypatch.undo()

    assert raised.traceback[-1].name == "_buggy"
    assert (await backend.read()).table.services[WEB].real_map()[RealServer("198.51.100.12", 8080).key].weight == 5


def _unreadable(*_args: object, **_kwargs: object) -> None:
    raise WireFormatError("answer cut short")


def _buggy(*_args: object, **_kwargs: object) -> None:
    raise TypeError("a bug")


async def test_an_answer_of_several_buffers_reads_whole_every_time(netns: Netns) -> None:
    """A service with 400 destinations (an answer of several buffers) reads whole, twice."""
    reals = tuple(RealServer(f"2001:db8:5::{index + 1:x}", 80) for index in range(400))
    table = Table.of([VirtualService(ServiceKey(Protocol.TCP, "2001:db8:f::10", 80), reals=reals)])
    async with NetlinkBackend(netns=netns.name, wire="lean") as backend:
        report = await backend.apply(creation(*table))
        assert report.ok, report.failures

        reads = [(await backend.read()).table for _ in range(2)]

    assert reads == [table, table]


async def test_connections_made_after_a_read_show_in_the_next(lab: Lab, topology: Topology) -> None:
    """Traffic between two reads shows in the second one's connection counts."""
    for server in topology.servers:
        lab.serve_http(server.netns, identity=server.name, port=80)
    key = ServiceKey(Protocol.TCP, topology.vip, 80)
    vs = VirtualService(key, reals=tuple(RealServer(server.ipv4, 80) for server in topology.servers))
    async with NetlinkBackend(netns=topology.node.name, wire="lean") as backend:
        await backend.apply(creation(vs))
        before = (await backend.read()).connections
        http_get(topology.client.netns, topology.vip, port=80, count=6)

        after = (await backend.read()).connections

    assert sum(each.total for each in before.values()) == 0
    assert sum(each.total for each in after.values()) == 6
