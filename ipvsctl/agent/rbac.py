"""The agent's ClusterRole rules, as data: exactly what it reads and writes, nothing more.

The Helm chart's ClusterRole must equal these rules (its test compares them), and the apiserver
tests bind a token user to a ClusterRole built from them to prove they suffice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["CLUSTER_ROLE_RULES", "PolicyRule", "cluster_role"]


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One rule of a ClusterRole."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]

    def as_json(self) -> dict[str, list[str]]:
        """The rule as it appears in a ClusterRole manifest."""
        return {"apiGroups": list(self.api_groups), "resources": list(self.resources), "verbs": list(self.verbs)}


CLUSTER_ROLE_RULES: tuple[PolicyRule, ...] = (
    PolicyRule(api_groups=("",), resources=("services",), verbs=("get", "list", "watch")),
    PolicyRule(api_groups=("discovery.k8s.io",), resources=("endpointslices",), verbs=("get", "list", "watch")),
    PolicyRule(api_groups=("",), resources=("nodes",), verbs=("get", "list", "watch")),
    PolicyRule(api_groups=("",), resources=("events",), verbs=("create", "patch")),
)


def cluster_role(name: str, *, rules: Sequence[PolicyRule] = CLUSTER_ROLE_RULES) -> Mapping[str, object]:
    """A rbac.authorization.k8s.io/v1 ClusterRole manifest with these rules."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": [rule.as_json() for rule in rules],
    }
