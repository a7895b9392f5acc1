"""The chart under test, rendered by a real helm: the helper every chart test (and the RBAC test) goes through.

helm comes from tools/helm/install.sh (cached after the first run). When it cannot be installed on this
machine, `require_helm()` skips the calling test, or fails it when IPVSCTL_REQUIRE_HELM=1 (CI).

For the agent's RBAC test against a real apiserver::

    from tests.chart.render import cluster_role_rules
    rules = cluster_role_rules()  # [{"apiGroups": [""], "resources": [...], "verbs": [...]}, ...]
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

__all__ = [
    "CHART",
    "INSTALL_SCRIPT",
    "REPO_ROOT",
    "HelmRefusedError",
    "HelmUnavailableError",
    "Manifest",
    "cluster_role_rules",
    "container",
    "find_helm",
    "helm",
    "install_notes",
    "lint",
    "only",
    "pod_spec",
    "render",
    "render_text",
    "require_helm",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "ipvsctl"
INSTALL_SCRIPT = REPO_ROOT / "tools" / "helm" / "install.sh"
RELEASE = "ipvsctl"
NAMESPACE = "kube-system"

Manifest = dict[str, Any]


class HelmUnavailableError(Exception):
    """helm cannot be installed on this machine."""


class HelmRefusedError(Exception):
    """helm ran and refused (lint failure, schema violation, template error); the message is its stderr."""


def find_helm() -> Path:
    """Install helm with tools/helm/install.sh (instant when cached) and return the path it prints last."""
    found = _install()
    if isinstance(found, HelmUnavailableError):
        raise found
    return found


@functools.cache
def _install() -> Path | HelmUnavailableError:
    """One attempt per test session: a machine without npm access should not retry for every test."""
    try:
        done = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return HelmUnavailableError(f"{INSTALL_SCRIPT} could not run: {err}")
    lines = done.stdout.split()
    if done.returncode != 0 or not lines:
        return HelmUnavailableError(f"{INSTALL_SCRIPT} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return Path(lines[-1])


def require_helm() -> Path:
    """The helm binary; skip the calling test when it cannot be installed (fail if IPVSCTL_REQUIRE_HELM=1)."""
    try:
        return find_helm()
    except HelmUnavailableError as err:
        if os.environ.get("IPVSCTL_REQUIRE_HELM") == "1":
            pytest.fail(f"helm unavailable and IPVSCTL_REQUIRE_HELM=1: {err}")
        pytest.skip(f"helm cannot be installed on this machine: {err}")


def helm(*args: str, values: Mapping[str, Any] | None = None) -> str:
    """Run helm offline with `values` on stdin (`-f -`); return stdout, or raise HelmRefusedError."""
    binary = require_helm()
    with tempfile.TemporaryDirectory(prefix="ipvsctl-helm-") as home:
        # helm's own cache, config and data under a throwaway home: nothing from the user's setup leaks in.
        env = {**os.environ, "HELM_CACHE_HOME": home, "HELM_CONFIG_HOME": home, "HELM_DATA_HOME": home}
        env["KUBECONFIG"] = str(Path(home) / "no-cluster")
        command = [str(binary), *args, *(["--values", "-"] if values is not None else [])]
        done = subprocess.run(
            command,
            input=yaml.safe_dump(dict(values)) if values is not None else None,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    if done.returncode != 0:
        raise HelmRefusedError(done.stderr.strip() or done.stdout.strip())
    return done.stdout


def render_text(values: Mapping[str, Any] | None = None, *, namespace: str = NAMESPACE) -> str:
    """`helm template` of the chart: the YAML stream as helm prints it."""
    return helm("template", RELEASE, str(CHART), "--namespace", namespace, values=values)


def render(values: Mapping[str, Any] | None = None, *, namespace: str = NAMESPACE) -> list[Manifest]:
    """`helm template` of the chart, parsed: one dict per Kubernetes object, in helm's order."""
    return [doc for doc in yaml.safe_load_all(render_text(values, namespace=namespace)) if doc]


def lint(values: Mapping[str, Any] | None = None) -> str:
    """`helm lint --strict` of the chart; its report, or HelmRefusedError."""
    return helm("lint", "--strict", str(CHART), values=values)


def install_notes(values: Mapping[str, Any] | None = None) -> str:
    """NOTES.txt as `helm install` prints it (a client-side dry run: no cluster)."""
    out = helm("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client", values=values)
    return out.partition("\nNOTES:\n")[2]


def only(manifests: Sequence[Manifest], kind: str) -> Manifest:
    """The one object of this kind; AssertionError if there is not exactly one."""
    found = [m for m in manifests if m["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]


def cluster_role_rules(values: Mapping[str, Any] | None = None) -> list[dict[str, list[str]]]:
    """The rules of the chart's ClusterRole, as rendered by helm (default values unless given)."""
    rules: list[dict[str, list[str]]] = only(render(values), "ClusterRole")["rules"]
    return rules


def pod_spec(manifests: Sequence[Manifest]) -> Manifest:
    """The pod template spec of the chart's DaemonSet."""
    spec: Manifest = only(manifests, "DaemonSet")["spec"]["template"]["spec"]
    return spec


def container(manifests: Sequence[Manifest], name: str) -> Manifest | None:
    """The DaemonSet's container or init container of this name, or None."""
    spec = pod_spec(manifests)
    found = [c for c in [*spec.get("initContainers", []), *spec["containers"]] if c["name"] == name]
    return found[0] if found else None
