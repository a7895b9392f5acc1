"""Scale: 1000 TCP services x 3 masquerading real servers through NetlinkBackend, against ipvsadm (rough timings).

Takes minutes under emulation, so it runs only when asked:
`python3 lab/run.py --env IPVSCTL_SCALE=1 -- .venv/bin/pytest -q -s -m kernel tests/kernel/test_netlink_scale.py`
(IPVSCTL_SCALE_SERVICES changes the size). The timings print to the console and land in
$LAB_RESULTS/netlink-scale.json.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ipvsctl.backend.kernel import NetlinkBackend
from ipvsctl.ipvsadm import parse_save, render_restore
from ipvsctl.model import Protocol, RealServer, ServiceKey, Table, VirtualService
from ipvsctl.plan import Ownership, plan
from tests.contract.values import creation
from tests.kernel.netlab import Lab

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not os.environ.get("IPVSCTL_SCALE"), reason="slow: set IPVSCTL_SCALE=1 to measure"),
]

SERVICES = int(os.environ.get("IPVSCTL_SCALE_SERVICES", "1000"))
PORTS = (80, 443, 8080, 8443)


def scale_table(services: int) -> Table:
    """``services`` TCP services on 203.0.113.x, four ports each, with three masquerading real servers."""
    reals = tuple(RealServer(f"198.51.100.{last}", 8080) for last in (11, 12, 13))
    keys = (
        ServiceKey(Protocol.TCP, f"203.0.113.{1 + i // len(PORTS)}", PORTS[i % len(PORTS)]) for i in range(services)
    )
    return Table.of(VirtualService(key, scheduler="rr", reals=reals) for key in keys)


def publish(summary: dict[str, object]) -> None:
    """Print the timings and write them to the lab's results share, if there is one."""
    text = json.dumps(summary, indent=2)
    print(f"\nscale {text}")
    if results := os.environ.get("LAB_RESULTS"):
        Path(results, "netlink-scale.json").write_text(f"{text}\n")


def timed(started: float) -> float:
    """Seconds since ``started``, rounded for the report."""
    return round(time.perf_counter() - started, 2)


async def test_scale_netlink_backend_against_ipvsadm(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    """Create and read back the table through the backend and through ipvsadm; both give the same table."""
    table = scale_table(SERVICES)
    operations = creation(*table)
    ours, theirs = lab.netns("scale-netlink"), lab.netns("scale-ipvsadm")
    timings: dict[str, float] = {}

    async with NetlinkBackend(netns=ours.name) as backend:
        started = time.perf_counter()
        report = await backend.apply(operations)
        timings["netlink create"] = timed(started)
        started = time.perf_counter()
        state = await backend.read()
        timings["netlink read"] = timed(started)
        started = time.perf_counter()
        again = await backend.read()
        pending = plan(again.table, table, ownership=Ownership(), connections=again.connections)
        timings["netlink no-op diff (read + plan)"] = timed(started)
    restore = render_restore(operations)
    started = time.perf_counter()
    theirs.ipvsadm("-R", input=restore)
    timings["ipvsadm -R create"] = timed(started)
    started = time.perf_counter()
    saved = theirs.ipvsadm("-Sn")
    timings["ipvsadm -Sn dump"] = timed(started)

    with capsys.disabled():
        publish({"services": SERVICES, "real_servers": table.real_server_count(), "seconds": timings})
    assert (report.ok, state.table, pending) == (True, table, ())
    assert parse_save(saved) == table
