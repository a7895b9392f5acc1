"""prometheus-operator resources in the shape comparable charts use: prometheus.serviceMonitor / podMonitor with
interval, labels, annotations, jobLabel, relabelings, metricRelabelings; an optional PrometheusRule carrying the
alerts docs/operations.md recommends, checked by promtool and kept equal to the docs."""

from __future__ import annotations

import functools
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.render import REPO_ROOT, only, render

OPERATIONS = REPO_ROOT / "docs" / "operations.md"
PROMTOOL_INSTALL = REPO_ROOT / "tools" / "promtool" / "install.sh"
RELABELING = [{"targetLabel": "job", "replacement": "kube-proxy"}]
METRIC_RELABELING = [{"sourceLabels": ["__name__"], "regex": "ipvsctl_endpoint_.*", "action": "drop"}]
MONITORS = [
    pytest.param("serviceMonitor", "ServiceMonitor", "endpoints", id="service-monitor"),
    pytest.param("podMonitor", "PodMonitor", "podMetricsEndpoints", id="pod-monitor"),
]


def monitor(key: str, kind: str, **settings: Any) -> dict[str, Any]:
    """The rendered monitor of ``kind`` with these ``prometheus.<key>`` settings (enabled)."""
    return only(render({"prometheus": {key: {"enabled": True, **settings}}}), kind)


@pytest.mark.parametrize(("key", "kind", "endpoints"), MONITORS)
def test_monitor_labels_and_annotations_go_on_its_metadata(key: str, kind: str, endpoints: str) -> None:
    """labels join the chart's labels (a Prometheus selects monitors by them); annotations are the object's."""
    metadata = monitor(key, kind, labels={"release": "prom"}, annotations={"example.com/team": "net"})["metadata"]
    assert (metadata["labels"]["release"], metadata["annotations"]) == ("prom", {"example.com/team": "net"})


@pytest.mark.parametrize(("key", "kind", "endpoints"), MONITORS)
def test_monitor_job_label_is_its_spec_job_label(key: str, kind: str, endpoints: str) -> None:
    """jobLabel becomes spec.jobLabel; unset, there is none (the operator's default job name)."""
    assert monitor(key, kind, jobLabel="app.kubernetes.io/name")["spec"]["jobLabel"] == "app.kubernetes.io/name"
    assert "jobLabel" not in monitor(key, kind)["spec"]


@pytest.mark.parametrize(("key", "kind", "endpoints"), MONITORS)
def test_user_relabelings_follow_the_charts_node_label(key: str, kind: str, endpoints: str) -> None:
    """relabelings come after the chart's node relabeling; metricRelabelings are passed on as given."""
    spec = monitor(key, kind, relabelings=RELABELING, metricRelabelings=METRIC_RELABELING)["spec"]
    (endpoint,) = spec[endpoints]
    assert endpoint["relabelings"] == [
        {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"},
        *RELABELING,
    ]
    assert endpoint["metricRelabelings"] == METRIC_RELABELING


@pytest.mark.parametrize(("key", "kind", "endpoints"), MONITORS)
def test_monitor_interval_and_timeout_reach_the_endpoint(key: str, kind: str, endpoints: str) -> None:
    """interval and scrapeTimeout are the scrape endpoint's."""
    (endpoint,) = monitor(key, kind, interval="15s", scrapeTimeout="5s")["spec"][endpoints]
    assert (endpoint["interval"], endpoint["scrapeTimeout"], "metricRelabelings" in endpoint) == ("15s", "5s", False)


def test_no_prometheus_rule_by_default() -> None:
    """Default values render no PrometheusRule."""
    assert "PrometheusRule" not in {manifest["kind"] for manifest in render()}


def rule(**settings: Any) -> dict[str, Any]:
    return only(render({"prometheus": {"prometheusRule": {"enabled": True, **settings}}}), "PrometheusRule")


def documented_alerts() -> list[dict[str, Any]]:
    """The alerts of docs/operations.md's "Alerts worth setting" block."""
    text = OPERATIONS.read_text()
    block = re.search(r"Alerts worth setting.*?```yaml\n(.*?)```", text, re.DOTALL)
    assert block is not None, "docs/operations.md lost its alerts block"
    alerts = yaml.safe_load(block.group(1))
    assert isinstance(alerts, list)
    return alerts


def test_the_rule_carries_exactly_the_documented_alerts() -> None:
    """Each alert of docs/operations.md, with the same expression and duration, and no other."""
    (group,) = rule()["spec"]["groups"]
    rendered = [(r["alert"], r["expr"], r.get("for")) for r in group["rules"]]
    assert rendered == [(a["alert"], a["expr"], a.get("for")) for a in documented_alerts()]


def test_every_alert_has_a_severity_and_a_summary() -> None:
    """Alertmanager routes by severity; the summary says what to look at."""
    (group,) = rule()["spec"]["groups"]
    assert all(r["labels"]["severity"] in ("warning", "info") and r["annotations"]["summary"] for r in group["rules"])


def test_rule_labels_select_it_and_alert_labels_reach_every_alert() -> None:
    """labels go on the object (ruleSelector); alertLabels on every alert, beside its severity."""
    rendered = rule(labels={"release": "prom"}, alertLabels={"team": "network"})
    (group,) = rendered["spec"]["groups"]
    assert rendered["metadata"]["labels"]["release"] == "prom"
    assert {r["labels"]["team"] for r in group["rules"]} == {"network"}


@functools.cache
def promtool() -> str:
    """promtool, installed by tools/promtool/install.sh when missing (skip where it cannot be, unless
    IPVSCTL_REQUIRE_PROMTOOL=1)."""
    done = subprocess.run(["bash", str(PROMTOOL_INSTALL)], capture_output=True, text=True, check=False)
    if done.returncode:
        if os.environ.get("IPVSCTL_REQUIRE_PROMTOOL") == "1":
            pytest.fail(f"promtool cannot be installed: {done.stderr}")
        pytest.skip(f"promtool cannot be installed here: {done.stderr.strip()[-200:]}")
    return done.stdout.strip().splitlines()[-1]


def promtool_check(spec: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`promtool check rules` of a PrometheusRule's spec (a Prometheus rule file: {groups: [...]})."""
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(spec))
    return subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False)


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    """promtool check rules finds every rule valid (PromQL syntax, durations, labels)."""
    checked = promtool_check(rule()["spec"], tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(documented_alerts())} rules found" in checked.stdout


def test_promtool_refuses_a_broken_expression(tmp_path: Path) -> None:
    """The check can fail: one expression made invalid PromQL is refused."""
    spec = rule()["spec"]
    spec["groups"][0]["rules"][0]["expr"] = "ipvsctl_ready =="
    assert promtool_check(spec, tmp_path).returncode != 0
