"""The interface name rules against the kernel itself: what ``interface_name_problem`` refuses, the kernel refuses.

Links are created over rtnetlink with pyroute2 (``ip`` checks names itself and would refuse first).
"""

from __future__ import annotations

import pytest
from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ipvsctl.backend.netlink.netns import NETLINK_ROUTE, netlink_descriptor
from tests.contract.test_limits_interface import INVALID, VALID
from tests.kernel.netlab import Netns

pytestmark = pytest.mark.kernel

# Refused by ipvsctl although the kernel takes them (see interface_name_problem), or not sendable at all.
STRICTER = {"percent", "escape", "c1-control", "nul", "lone-surrogate"}
KERNEL_REFUSES = {case: name for case, (name, _) in INVALID.items() if case not in STRICTER}


async def _create_dummy(netns: Netns, name: str) -> set[str]:
    """Ask the kernel for a dummy link `name`; the names of the namespace's links afterwards."""
    ipr = AsyncIPRoute(fileno=netlink_descriptor(netns=netns.name, protocol=NETLINK_ROUTE))
    try:
        await ipr.link("add", ifname=name, kind="dummy")
        return {str(link.get("IFLA_IFNAME")) async for link in await ipr.get_links()}
    finally:
        ipr.close()


@pytest.mark.parametrize("name", VALID.values(), ids=VALID.keys())
async def test_the_kernel_makes_a_link_of_every_name_ipvsctl_accepts(netns: Netns, name: str) -> None:
    """A name with no problem becomes a dummy link of exactly that name."""
    assert name in await _create_dummy(netns, name)


@pytest.mark.parametrize("name", KERNEL_REFUSES.values(), ids=KERNEL_REFUSES.keys())
async def test_the_kernel_refuses_every_name_dev_valid_name_refuses(netns: Netns, name: str) -> None:
    """A name refused by the kernel's rules is refused by the kernel (EINVAL, or ERANGE when too long)."""
    with pytest.raises(NetlinkError):
        await _create_dummy(netns, name)


async def test_a_percent_name_becomes_another_name(netns: Netns) -> None:
    """The kernel reads `%d` as a template: `ipvs%d` is created as `ipvs0`, which is why ipvsctl refuses '%'."""
    names = await _create_dummy(netns, INVALID["percent"][0])

    assert "ipvs0" in names
    assert "ipvs%d" not in names
