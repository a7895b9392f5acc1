"""The chart's README, NOTES and metadata say what the chart does."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from typing import Any

import yaml

import ipvsctl
from tests.chart.render import CHART, REPO_ROOT, container, install_notes, render


def _value_paths(values: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted paths of the values, descending into the objects the schema defines key by key."""
    for key, value in values.items():
        own = schema["properties"][key]
        if isinstance(value, dict) and "properties" in own:
            yield from _value_paths(value, own, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def test_readme_lists_every_value() -> None:
    """Each value of values.yaml has a row in the chart README's table."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    readme = (CHART / "README.md").read_text()
    assert [path for path in _value_paths(values, schema) if f"| `{path}` |" not in readme] == []


def test_app_version_is_the_package_version() -> None:
    """Chart.yaml's appVersion is pyproject's version, so the default image tag is the release being packaged."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"] == ipvsctl.__version__


def test_default_image_is_the_projects_image_at_app_version() -> None:
    """Both containers run ghcr.io/ipvsctl/ipvsctl:<appVersion>; a digest replaces the tag."""
    manifests = render()
    images = {c["image"] for c in [container(manifests, "agent"), container(manifests, "kernel-setup")] if c}
    assert images == {f"ghcr.io/ipvsctl/ipvsctl:{ipvsctl.__version__}"}
    pinned = container(render({"image": {"digest": "sha256:" + "0" * 64}}), "agent")
    assert pinned is not None
    assert pinned["image"] == "ghcr.io/ipvsctl/ipvsctl@sha256:" + "0" * 64


def test_notes_show_how_to_check_the_agent() -> None:
    """NOTES.txt gives `ipvsctl show` in a pod, the readiness and metrics endpoints on the configured ports."""
    notes = install_notes({"health": {"port": 20256}, "metrics": {"port": 20249}})
    assert "kubectl -n kube-system exec ds/ipvsctl -c agent -- ipvsctl show --interface=ipvs0" in notes
    assert "localhost:20256/readyz" in notes
    assert "localhost:20249/metrics" in notes


def test_notes_warn_when_the_apiserver_is_reached_through_its_service() -> None:
    """Without apiServer.host, NOTES.txt warns that nothing else programs the `kubernetes` ClusterIP."""
    assert "apiServer.host is not set" in install_notes()
    assert "apiServer.host is not set" not in install_notes({"apiServer": {"host": "192.0.2.10"}})


def test_notes_warn_when_no_load_balancer_ip_is_allowed() -> None:
    """With agent.loadBalancerIPCIDRs empty, NOTES.txt says that no ingress IP is programmed."""
    assert "agent.loadBalancerIPCIDRs is empty" in install_notes()
    assert "loadBalancerIPCIDRs is empty" not in install_notes({"agent": {"loadBalancerIPCIDRs": ["198.51.100.0/24"]}})
