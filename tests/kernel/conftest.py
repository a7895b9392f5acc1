"""Fixtures for kernel tests: real IPVS in fresh network namespaces, inside the kernel lab VM.

Run them with `python3 lab/run.py -- .venv/bin/pytest -m kernel tests/kernel`; anywhere without IPVS
(the host) they skip. See tests/kernel/netlab.py for the helpers behind the fixtures.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel.netlab import Lab, Netns, Topology

LAB_COMMAND = "python3 lab/run.py -- .venv/bin/pytest -q -p no:hypothesispytest -m kernel tests/kernel"


@pytest.fixture(autouse=True)
def _needs_ipvs() -> None:
    """Skip kernel tests where the kernel has no IPVS (the host): they belong in the lab VM."""
    if not Path("/proc/net/ip_vs").exists():
        pytest.skip(f"needs real IPVS (no /proc/net/ip_vs): run inside the kernel lab: {LAB_COMMAND}")
    if os.geteuid() != 0:
        pytest.skip(f"needs root to create network namespaces: run inside the kernel lab: {LAB_COMMAND}")


@pytest.fixture
def lab() -> Iterator[Lab]:
    """Create namespaces, topologies and servers for one test; tear them all down after it."""
    with contextlib.ExitStack() as cleanup:
        yield Lab(cleanup)


@pytest.fixture
def netns(lab: Lab) -> Netns:
    """Return a fresh network namespace with `lo` up and an empty IPVS table of its own."""
    return lab.netns()


@pytest.fixture
def topology(lab: Lab) -> Topology:
    """Return a client, a node and three servers wired through the node (see netlab.Topology)."""
    return lab.topology(servers=3)
