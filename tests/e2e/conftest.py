"""Fixtures of the e2e bed: one bed per session, and the report every scenario writes a row of.

The scenarios run only inside the kernel lab started by `python -m tests.e2e` (`make e2e`), which names the
host's settings in IPVSCTL_E2E_CONFIG; elsewhere they skip. IPVSCTL_E2E_KEEP=SECONDS keeps the bed up after
the scenarios and serves tests/e2e/poke.py's commands meanwhile.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.e2e import poke
from tests.e2e.bed import Bed, Settings, running_bed
from tests.e2e.report import Report, render

CONFIG_VARIABLE = "IPVSCTL_E2E_CONFIG"
KEEP_VARIABLE = "IPVSCTL_E2E_KEEP"
RUN_COMMAND = "make e2e (python -m tests.e2e)"
REPORT_KEY = pytest.StashKey[Report]()
SETTINGS_KEY = pytest.StashKey[Settings]()


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker naming a test's scenario (its row in the report)."""
    config.addinivalue_line("markers", "scenario(name, title): the e2e scenario a test is, for the report")
    config.stash[REPORT_KEY] = Report()


@pytest.fixture(scope="session")
def report(request: pytest.FixtureRequest) -> Report:
    """The session's report."""
    return request.config.stash[REPORT_KEY]


@pytest.fixture(scope="session")
def bed(request: pytest.FixtureRequest, report: Report) -> Iterator[Bed]:
    """The bed, built once for the session (skip outside `make e2e`)."""
    path = os.environ.get(CONFIG_VARIABLE)
    if not path or not Path("/proc/net/ip_vs").exists() or os.geteuid() != 0:
        pytest.skip(f"the e2e bed runs inside the kernel lab: {RUN_COMMAND}")
    settings = Settings.load(Path(path))
    request.config.stash[SETTINGS_KEY] = settings
    settings.logs.mkdir(parents=True, exist_ok=True)
    with running_bed(settings) as built:
        report.note("bed", "the bed coming up", **{name: round(value, 1) for name, value in built.timings.items()})
        yield built
        keep = os.environ.get(KEEP_VARIABLE)
        if keep:
            _keep(built, settings, seconds=float(keep))


def _keep(bed: Bed, settings: Settings, *, seconds: float) -> None:
    """Serve poke commands until `seconds` pass or the host says stop."""
    namespaces = {node.name: node.netns.name for node in bed.cluster.nodes}
    namespaces |= {client.name: client.netns.name for client in bed.cluster.clients}
    namespaces |= {name: live.pod.netns.name for name, live in bed.pods.items()}
    namespaces["lb"] = bed.lb.name
    message = f"\ne2e: the bed stays up for {seconds:.0f} s: python -m tests.e2e.poke TARGET 'COMMAND'\n"
    os.write(2, message.encode())  # past pytest's capture: the console is where the user looks
    poke.serve(
        inbox=settings.results / "inbox",
        namespaces=namespaces,
        env={"KUBECONFIG": str(settings.agent_kubeconfig), "PATH": f"{Path(sys.prefix) / 'bin'}:{os.environ['PATH']}"},
        seconds=seconds,
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Give a scenario's row its verdict from the test's outcome."""
    result = yield
    marker = item.get_closest_marker("scenario")
    if marker is not None and result.when == "call":
        item.config.stash[REPORT_KEY].conclude(marker.args[0], passed=result.passed)
    return result


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Print the report, and write it (report.json) where the host reads it."""
    report = config.stash[REPORT_KEY]
    if not report.rows:
        return
    terminalreporter.write_sep("=", "e2e report")
    terminalreporter.write_line(render(report.rows))
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is not None:
        (settings.results / "report.json").write_text(report.to_json())
