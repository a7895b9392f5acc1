"""bench/fleet.py end to end on its documentation addresses: IPv6 ClusterIPs and slices from 2001:db8::/32."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.fleet import SERVICE_CIDRS, fan_out, fleet, holds_all, populate, until
from ipvsctl.kube.client import connect
from tests.apiserver.harness import Binaries, ControlPlane

pytestmark = pytest.mark.apiserver

DOCUMENTATION = ipaddress.IPv6Network("2001:db8::/32")


@pytest.fixture(scope="module")
def fleet_plane(control_plane_binaries: Binaries, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """An apiserver with the bench's service range (the session's has another): started for this module only."""
    with ControlPlane(
        binaries=control_plane_binaries, workdir=tmp_path_factory.mktemp("fleet"), service_cidrs=SERVICE_CIDRS
    ) as plane:
        yield plane


async def test_fleet_bench_programs_documentation_addresses_and_fans_a_change_out(fleet_plane: ControlPlane) -> None:
    """Two bench agents hold every Service (ClusterIPs in 2001:db8::/32) and both get one EndpointSlice change."""
    kubeconfig: Path = fleet_plane.kubeconfig(fleet_plane.admin)
    async with connect(str(kubeconfig)) as api:
        ips = await populate(api, plane=fleet_plane, nodes=2, services=5, endpoints=3)
        async with fleet(kubeconfig, count=2, stop=asyncio.Event(), settings={}) as members:
            await until(
                lambda: all(m.agent.status.ready and holds_all(m, ips=ips) for m in members), within=60.0, what="ready"
            )
            changes = await fan_out(
                api, plane=fleet_plane, members=members, ips=ips, changes=1, nodes=2, within=30.0, slot=15
            )
    assert all(ipaddress.ip_address(ip) in DOCUMENTATION for ip in ips)
    assert [len(change.done) for change in changes] == [2]
