"""Scale: what one stats dump (``Backend.traffic``) costs at 10,000 TCP services x 3 real servers, beside a full
``read`` and ``ipvsadm -Ln --stats --rate --exact`` of the same table (rough timings under emulation).

Runs only when asked:
`python3 lab/run.py --env IPVSCTL_SCALE=1 -- .venv/bin/pytest -q -s -m kernel tests/kernel/test_traffic_scale.py`
(IPVSCTL_SCALE_SERVICES changes the size). The timings print and land in $LAB_RESULTS/traffic-scale.json.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ipvsctl.backend.kernel import WIRES, NetlinkBackend
from ipvsctl.model import Protocol, RealServer, ServiceKey, Table, VirtualService
from tests.contract.values import creation
from tests.kernel.netlab import Lab
from tests.kernel.test_netlink_scale import timed

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not os.environ.get("IPVSCTL_SCALE"), reason="slow: set IPVSCTL_SCALE=1 to measure"),
]

SERVICES = int(os.environ.get("IPVSCTL_SCALE_SERVICES", "10000"))
PORTS = 40  # per VIP: 254 addresses of 203.0.113.0/24 x 40 ports hold 10,160 services


def scale_table(services: int) -> Table:
    """``services`` TCP services on 203.0.113.x, ports 1000 up, each with three masquerading real servers."""
    reals = tuple(RealServer(f"198.51.100.{last}", 8080) for last in (11, 12, 13))
    keys = (ServiceKey(Protocol.TCP, f"203.0.113.{1 + i // PORTS}", 1000 + i % PORTS) for i in range(services))
    return Table.of(VirtualService(key, scheduler="rr", reals=reals) for key in keys)


def publish(summary: dict[str, object]) -> None:
    """Print the timings and write them to the lab's results share, if there is one."""
    text = json.dumps(summary, indent=2)
    print(f"\ntraffic scale {text}")
    if results := os.environ.get("LAB_RESULTS"):
        Path(results, "traffic-scale.json").write_text(f"{text}\n")


async def test_scale_stats_dump(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    """Dump the stats of the whole table through each transport; every service and real server is in it."""
    table = scale_table(SERVICES)
    netns = lab.netns("scale-traffic")
    timings: dict[str, float] = {}
    sizes: dict[str, int] = {}
    async with NetlinkBackend(netns=netns.name) as backend:
        report = await backend.apply(creation(*table))
        started = time.perf_counter()
        await backend.read()
        timings["read (full, first)"] = timed(started)
        started = time.perf_counter()
        await backend.read()
        timings["read (full, again)"] = timed(started)
    for wire in WIRES:
        async with NetlinkBackend(netns=netns.name, wire=wire) as backend:
            started = time.perf_counter()
            stats = await backend.traffic()
            timings[f"traffic ({wire})"] = timed(started)
            sizes[wire] = len(stats.services) + len(stats.real_servers)
    started = time.perf_counter()
    listing = netns.ipvsadm("-Ln", "--stats", "--rate", "--exact")
    timings["ipvsadm -Ln --stats --rate --exact"] = timed(started)
    summary = {"services": SERVICES, "real_servers": table.real_server_count(), "seconds": timings}
    with capsys.disabled():
        publish(summary)
    assert report.ok
    assert set(sizes.values()) == {SERVICES + table.real_server_count()}
    assert listing.count("->") >= table.real_server_count()
