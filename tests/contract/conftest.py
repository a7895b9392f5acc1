"""Fixtures of the contract suite: the same tests against every Backend implementation.

``backend`` is a MemoryBackend everywhere and a NetlinkBackend on a fresh network namespace inside the kernel
lab (``python3 lab/run.py -- .venv/bin/pytest -m kernel tests/contract``); on the host the netlink cases skip.
``meddler`` is a second handle on the same table: what it changes happens behind ``backend``'s back.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from ipvsctl.backend.base import Backend
from ipvsctl.backend.memory import MemoryBackend
from tests.kernel.netlab import Lab, Netns

HAS_IPVS = Path("/proc/net/ip_vs").exists()
IN_LAB_VM = bool(os.environ.get("IPVSCTL_LAB"))
LAB_COMMAND = "python3 lab/run.py -- .venv/bin/pytest -m kernel tests/contract"
# An example of the plan property costs about half a second through pyroute2 under emulation: fewer
# examples in the lab, whose read-only root also has no room for hypothesis's example database.
_PLAN_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PLAN_SETTINGS = settings(_PLAN_SETTINGS, max_examples=25, database=None) if IN_LAB_VM else _PLAN_SETTINGS


@dataclass(frozen=True, slots=True)
class Subject:
    """A backend under test and a second handle on the same table."""

    backend: Backend
    meddler: Backend


@pytest.fixture
def lab_netns() -> Iterator[Netns]:
    """A fresh network namespace (lo up, empty IPVS table), deleted after the test; skips without IPVS."""
    if not HAS_IPVS:
        pytest.skip(f"needs real IPVS (no /proc/net/ip_vs): run inside the kernel lab: {LAB_COMMAND}")
    with contextlib.ExitStack() as cleanup:
        yield Lab(cleanup).netns("contract")


@pytest.fixture(
    params=[
        "memory",
        pytest.param("lean", marks=pytest.mark.kernel, id="netlink-lean"),
        pytest.param("pyroute2", marks=pytest.mark.kernel, id="netlink-pyroute2"),
    ]
)
async def subject(request: pytest.FixtureRequest) -> AsyncIterator[Subject]:
    """Each backend implementation (netlink over both IPVS transports), with a meddler on the same table."""
    if request.param == "memory":
        memory = MemoryBackend()
        yield Subject(backend=memory, meddler=memory)
        await memory.close()
        return
    from ipvsctl.backend.kernel import NetlinkBackend  # noqa: PLC0415  the kernel backend only where it is used

    netns: Netns = request.getfixturevalue("lab_netns")
    wire = request.param
    async with (
        NetlinkBackend(netns=netns.name, wire=wire) as backend,
        NetlinkBackend(netns=netns.name, wire="pyroute2") as meddler,
    ):
        yield Subject(backend=backend, meddler=meddler)


@pytest.fixture
def backend(subject: Subject) -> Backend:
    """The backend under test, on an empty table."""
    return subject.backend


@pytest.fixture
def meddler(subject: Subject) -> Backend:
    """Another handle on the backend's table (someone else changing the kernel)."""
    return subject.meddler
