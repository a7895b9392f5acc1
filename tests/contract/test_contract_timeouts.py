"""Contract: the IPVS connection timeouts (``ipvsadm --set``) are read and set; a 0 keeps the kernel's value.

The kernel (``ip_vs_genl_set_config``, ``ip_vs_set_timeout``) fills a SET_CONFIG's absent timeouts with the
current ones, skips each 0, and refuses the whole change with EINVAL when one is over INT_MAX / HZ seconds
(it keeps them in jiffies in an int; the lab's Debian kernel has HZ 250, the memory fake's default).
"""

from __future__ import annotations

import errno

import pytest

from ipvsctl.backend.base import KERNEL_INT_MAX, Backend, IpvsTimeouts, change_timeouts
from ipvsctl.backend.memory import KERNEL_HZ
from ipvsctl.errors import BackendError
from tests.contract.values import TCP80, install, real, service, table_of

FRESH = IpvsTimeouts(tcp=900, tcp_fin=120, udp=300)  # every new network namespace's
LARGEST = KERNEL_INT_MAX // KERNEL_HZ  # 8,589,934 s with HZ 250


async def test_a_fresh_namespace_has_the_kernels_default_timeouts(backend: Backend) -> None:
    """tcp 900 s, tcpfin 120 s, udp 300 s, as `ipvsadm -L --timeout` shows them in a new namespace."""
    assert await backend.timeouts() == FRESH


SETTINGS = {
    "udp-only": (IpvsTimeouts(udp=7), IpvsTimeouts(tcp=900, tcp_fin=120, udp=7)),
    "tcp-only": (IpvsTimeouts(tcp=3600), IpvsTimeouts(tcp=3600, tcp_fin=120, udp=300)),
    "tcpfin-only": (IpvsTimeouts(tcp_fin=30), IpvsTimeouts(tcp=900, tcp_fin=30, udp=300)),
    "all-three": (IpvsTimeouts(tcp=1, tcp_fin=2, udp=3), IpvsTimeouts(tcp=1, tcp_fin=2, udp=3)),
    "largest": (IpvsTimeouts(udp=LARGEST), IpvsTimeouts(tcp=900, tcp_fin=120, udp=LARGEST)),
}


@pytest.mark.parametrize(("change", "after"), SETTINGS.values(), ids=SETTINGS.keys())
async def test_the_timeouts_given_are_set_and_each_zero_keeps_its_own(
    backend: Backend, change: IpvsTimeouts, after: IpvsTimeouts
) -> None:
    """Each nonzero timeout takes its value; the ones given as 0 keep the kernel's."""
    await backend.set_timeouts(change)

    assert await backend.timeouts() == after


async def test_all_zeros_change_nothing(backend: Backend) -> None:
    """SET_CONFIG with 0, 0, 0 after a change leaves the changed values as they are (0 is not a reset)."""
    await backend.set_timeouts(IpvsTimeouts(tcp=60, tcp_fin=10, udp=5))

    await backend.set_timeouts(IpvsTimeouts())

    assert await backend.timeouts() == IpvsTimeouts(tcp=60, tcp_fin=10, udp=5)


async def test_the_timeouts_are_the_namespaces_not_the_handles(backend: Backend, meddler: Backend) -> None:
    """What one handle sets, another handle on the same namespace reads (nothing is cached)."""
    await backend.set_timeouts(IpvsTimeouts(udp=9))

    assert await meddler.timeouts() == IpvsTimeouts(tcp=900, tcp_fin=120, udp=9)


REFUSED = {
    "over-int-max-over-hz": IpvsTimeouts(tcp=60, udp=LARGEST + 1),
    "negative-in-the-kernels-int": IpvsTimeouts(tcp=60, tcp_fin=2**31),
    "over-u32": IpvsTimeouts(tcp=60, udp=2**32),
    "negative": IpvsTimeouts(tcp=60, tcp_fin=-1),
}


@pytest.mark.parametrize("change", REFUSED.values(), ids=REFUSED.keys())
async def test_a_timeout_out_of_range_is_einval_and_changes_none(backend: Backend, change: IpvsTimeouts) -> None:
    """One timeout out of the kernel's range refuses the whole change with EINVAL: the valid tcp 60 is not set."""
    with pytest.raises(BackendError, match="timeouts") as refused:
        await backend.set_timeouts(change)

    assert refused.value.errno == errno.EINVAL
    assert await backend.timeouts() == FRESH


async def test_setting_the_timeouts_leaves_the_table_alone(backend: Backend) -> None:
    """The timeouts are a setting beside the table: changing them adds, edits and deletes nothing."""
    await install(backend, service(TCP80, real(11)))
    before = await table_of(backend)

    await backend.set_timeouts(IpvsTimeouts(tcp=10, tcp_fin=10, udp=10))

    assert await table_of(backend) == before


async def test_a_closed_backend_refuses_to_read_the_timeouts(backend: Backend) -> None:
    """After close, reading the timeouts raises BackendError, as every other call does."""
    await backend.close()

    with pytest.raises(BackendError):
        await backend.timeouts()


async def test_a_start_up_change_reports_the_timeouts_it_replaced(backend: Backend) -> None:
    """change_timeouts sets what differs and gives back the timeouts before it."""
    before = await change_timeouts(backend, IpvsTimeouts(udp=7))

    assert before == FRESH
    assert await backend.timeouts() == IpvsTimeouts(tcp=900, tcp_fin=120, udp=7)


@pytest.mark.parametrize(
    "wanted",
    [pytest.param(IpvsTimeouts(), id="nothing-asked"), pytest.param(IpvsTimeouts(tcp=900, udp=300), id="as-they-are")],
)
async def test_a_start_up_change_to_what_is_there_changes_nothing(backend: Backend, wanted: IpvsTimeouts) -> None:
    """Nothing asked, or only values the kernel has: change_timeouts says so (None) and the timeouts stay."""
    assert await change_timeouts(backend, wanted) is None
    assert await backend.timeouts() == FRESH


async def test_with_nothing_asked_the_kernel_is_not_asked_either(backend: Backend) -> None:
    """All three 0: change_timeouts sends no request at all (even a closed backend is never called)."""
    await backend.close()

    assert await change_timeouts(backend, IpvsTimeouts()) is None
