"""The chart is valid to the tools that judge it: helm lint --strict, and Kubernetes' own schemas."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.render import INSTALL_SCRIPT, lint, render, render_text, require_helm
from tests.chart.values import NON_DEFAULT, VALUE_SETS

HELM_VERSION = "v4.1.4"
KUBERNETES_VERSION = "1.32.0"
# No Kubernetes schema exists for prometheus-operator's kinds; tests/chart/test_metrics.py checks their shape.
CUSTOM_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


def test_install_script_reuses_its_cached_helm() -> None:
    """A second run of tools/helm/install.sh prints the same cached helm at once, and it is the pinned version."""
    first = require_helm()
    started = time.monotonic()
    again = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, check=True, timeout=60)
    assert Path(again.stdout.split()[-1]) == first
    assert time.monotonic() - started < 5
    version = subprocess.run(
        [str(first), "version", "--template", "{{.Version}}"], capture_output=True, text=True, check=True
    )
    assert version.stdout.strip() == HELM_VERSION


@pytest.mark.parametrize("values", VALUE_SETS)
def test_helm_lint_strict_passes(values: dict[str, Any] | None) -> None:
    """`helm lint --strict` reports no chart as failed."""
    assert "0 chart(s) failed" in lint(values)


@pytest.mark.parametrize("values", VALUE_SETS)
def test_rendered_objects_are_valid_kubernetes(values: dict[str, Any] | None, tmp_path: Path) -> None:
    """kubernetes-validate --strict accepts every rendered object for Kubernetes 1.32 (and knows each kind)."""
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(render_text(values))
    kinds = [doc["kind"] for doc in yaml.safe_load_all(rendered.read_text()) if doc]
    done = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", KUBERNETES_VERSION, str(rendered)],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert sum(line.startswith("INFO") and "passed" in line for line in lines) == len(
        [kind for kind in kinds if kind not in CUSTOM_KINDS]
    )
    assert all(any(kind in line for kind in CUSTOM_KINDS) for line in lines if line.startswith("WARN"))


def test_every_object_names_its_namespace_or_is_cluster_scoped() -> None:
    """Namespaced objects carry the release namespace, so `helm template | kubectl apply` lands them right."""
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    for manifest in render(NON_DEFAULT, namespace="lb-system"):
        expected = None if manifest["kind"] in cluster_scoped else "lb-system"
        assert manifest["metadata"].get("namespace") == expected, manifest["kind"]
