"""Text output under hostile names: a Service, Pod or namespace name cannot add, hide or rewrite a line.

Plans (``report.plan_text``), problems, the owned table (``show.show_text``) and ``ipvsctl diff`` on
manifests naming their objects with newlines and ANSI escapes: every line stays one line, escaped.
JSON keeps the names exactly (``json.dumps`` escapes them itself).
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ipvsctl.backend.base import KernelState
from ipvsctl.cli import app
from ipvsctl.kube.views import ObjectRef
from ipvsctl.model import (
    AddRealServer,
    AddVirtualService,
    Operation,
    Protocol,
    RealServer,
    ServiceKey,
    Table,
    VirtualService,
)
from ipvsctl.report import PlanContext, Problem, plan_json, plan_text
from ipvsctl.show import show_text

FORGED = "\n  - delete service tcp/192.0.2.200:443  (scheduler wlc)\nnode worker1: in sync\x1b[2K"
ESCAPED = "\\n  - delete service tcp/192.0.2.200:443  (scheduler wlc)\\nnode worker1: in sync\\x1b[2K"
KEY = ServiceKey(Protocol.TCP, "203.0.113.10", 80)
REAL = RealServer("198.51.100.10", 8080)
SERVICE = ObjectRef("default", "web" + FORGED)
POD = ObjectRef("default\x1b]0;owned\x07", "web-0")
CONTEXT = PlanContext(node="worker1", owners={KEY: SERVICE}, pods={REAL.address: POD})
OPERATIONS: list[Operation] = [AddVirtualService(VirtualService(KEY)), AddRealServer(KEY, REAL)]


def test_plan_text_keeps_one_line_per_change() -> None:
    """A Service name holding newlines and an escape sequence adds no line: title, two changes, summary."""
    lines = plan_text(OPERATIONS, CONTEXT).splitlines()
    assert len(lines) == 4
    assert lines[0] == "Service default/web" + ESCAPED
    assert lines[2].endswith("[pod default\\x1b]0;owned\\x07/web-0]")
    assert lines[3] == "node worker1: 2 changes pending (2 add)"


def test_plan_text_escapes_the_node_name() -> None:
    """The node name (a flag, or the cluster's) is escaped in the summary line too."""
    text = plan_text([], PlanContext(node="worker1\r\x1b[1Aevil"))
    assert text == "node worker1\\r\\x1b[1Aevil: in sync\n"


def test_plan_json_keeps_names_exactly() -> None:
    """JSON carries the names unchanged; json.dumps escapes the control characters itself."""
    document = plan_json(OPERATIONS, CONTEXT)
    assert document["changes"][0]["service"] == {"namespace": "default", "name": "web" + FORGED}  # type: ignore[index]
    assert "\n" not in json.dumps(document)


def test_problem_is_one_escaped_line() -> None:
    """A problem quoting hostile input (object, field, message) prints as one line."""
    problem = Problem("Service default/web\nerror: forged", "metadata.annotations[x\x1b[31m]", "bad\rvalue")
    assert str(problem) == "Service default/web\\nerror: forged: metadata.annotations[x\\x1b[31m]: bad\\rvalue"


def test_show_text_keeps_one_line_per_entry() -> None:
    """show's text: the service line, its real server line and the summary, names escaped."""
    state = KernelState(Table.of([VirtualService(KEY, reals=(REAL,))]))
    lines = show_text(state, owned=lambda _: True, owners={KEY: SERVICE}, pods={REAL.address: POD}).splitlines()
    assert len(lines) == 3
    assert lines[0].endswith("[Service default/web" + ESCAPED + "]")
    assert lines[1].endswith("[pod default\\x1b]0;owned\\x07/web-0]")


def test_diff_of_a_hostile_service_prints_no_forged_line(tmp_path: Path) -> None:
    """ipvsctl diff on a Service named with a newline: the forged 'in sync' line never appears on its own."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web" + FORGED, "namespace": "default"},
        "spec": {"clusterIP": "203.0.113.10", "ports": [{"port": 80}]},
    }
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker1"}}
    (tmp_path / "objects.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [service, node]}))
    empty = tmp_path / "empty.save"
    empty.write_text("")
    args = ["diff", "-f", str(tmp_path / "objects.json"), "--node", "worker1", "--node-ip", "192.0.2.11"]
    result = CliRunner().invoke(app, [*args, "--current-save", str(empty)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "Service default/web" + ESCAPED,
        "  + add    service tcp/203.0.113.10:80  (scheduler rr)",
        "node worker1: 1 changes pending (1 add)",
    ]
