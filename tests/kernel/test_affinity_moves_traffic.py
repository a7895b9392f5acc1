"""Moves under traffic: real servers deleted and added back (the plan's moves and drains) while connections talk.

A TCP echo server in each server namespace; open connections from the client through the node's VIP each
send a line and read it back in a loop, while the main thread moves every real server again and again
(delete + add in one apply, as the plan does for cluster-scope services), with the node's
net.ipv4.vs.expire_nodest_conn=1 as ipvsctl's start-up sysctls set it. Every connection must survive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipvsctl.affinity_scope import CLUSTER_FLAGS
from ipvsctl.backend.kernel import NetlinkBackend
from ipvsctl.model import AddRealServer, DeleteRealServer, Persistence, Protocol, RealServer, ServiceKey, VirtualService
from tests.contract.values import creation
from tests.kernel.netlab import Lab, Netns, Topology, start_serving

pytestmark = pytest.mark.kernel

PORT = 7000
CONNECTIONS = 12
MOVES = 60  # rounds of moving every real server
ROUND_SECONDS = 60.0  # bound on the whole exchange


class _Echo(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextlib.contextmanager
def _serving_echo(netns: Netns) -> Iterator[None]:
    with netns.entered():
        server = _EchoServer(("0.0.0.0", PORT), _Echo)
    thread = start_serving(server, name=f"echo-{netns.name}")
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _write(figures: dict[str, object]) -> None:
    if os.environ.get("LAB_RESULTS"):
        Path(os.environ["LAB_RESULTS"], f"affinity-moves-{figures['expire_nodest_conn']}.json").write_text(
            json.dumps(figures, indent=1)
        )


def _talk(client: Netns, vip: str, stop: threading.Event, results: list[str]) -> None:
    with client.entered():
        sock = socket.create_connection((vip, PORT), timeout=5)
    exchanged = 0
    try:
        with sock, sock.makefile("rwb") as stream:
            while not stop.is_set():
                stream.write(b"ping\n")
                stream.flush()
                if stream.readline() != b"ping\n":
                    results.append(f"broken after {exchanged}: closed")
                    return
                exchanged += 1
                time.sleep(0.005)
    except OSError as error:
        results.append(f"broken after {exchanged}: {error}")
        return
    results.append(f"ok {exchanged}")


@pytest.mark.parametrize("expire_nodest_conn", ["0", "1"])
async def test_moves_under_traffic(lab: Lab, expire_nodest_conn: str) -> None:
    """Moving all three servers again and again under 12 talking connections: all survive only with 0."""
    topology: Topology = lab.topology(servers=3)
    topology.node.sysctl("net.ipv4.vs.expire_nodest_conn", expire_nodest_conn)
    servers = contextlib.ExitStack()
    for host in topology.servers:
        servers.enter_context(_serving_echo(host.netns))
    key = ServiceKey(Protocol.TCP, topology.vip, PORT)
    reals = tuple(RealServer(host.ipv4, PORT) for host in topology.servers)
    service = VirtualService(
        key, scheduler="mh", sched_flags=CLUSTER_FLAGS, persistence=Persistence(300, 32), reals=reals
    )
    async with NetlinkBackend(netns=topology.node.name) as backend:
        assert (await backend.apply(creation(service))).ok
        stop, results = threading.Event(), list[str]()
        talkers = [
            threading.Thread(target=_talk, args=(topology.client.netns, topology.vip, stop, results), daemon=True)
            for _ in range(CONNECTIONS)
        ]
        for talker in talkers:
            talker.start()
        await asyncio.sleep(1.0)
        deadline = time.monotonic() + ROUND_SECONDS
        moved = 0
        for _ in range(MOVES):
            if time.monotonic() > deadline:
                break
            for real in reversed(reals):
                report = await backend.apply([DeleteRealServer(key, real), AddRealServer(key, real)])
                assert report.ok, report.failures
                moved += 1
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        stop.set()
        for talker in talkers:
            talker.join(10)
        servers.close()
    exchanges = sum(int(result.split()[1]) for result in results if result.startswith("ok"))
    figures: dict[str, object] = {
        "expire_nodest_conn": expire_nodest_conn,
        "moves": moved,
        "connections": CONNECTIONS,
        "exchanges": exchanges,
        "results": sorted(results),
    }
    _write(figures)

    assert len(results) == CONNECTIONS
    broken = [result for result in results if not result.startswith("ok")]
    # expire_nodest_conn=0: a packet that finds its server gone is dropped and sent again; =1: its connection
    # is expired and the next packet reset. So ipvsctl moves servers with connections only with 0.
    assert (broken == []) is (expire_nodest_conn == "0")
    assert moved >= 3 * 10
