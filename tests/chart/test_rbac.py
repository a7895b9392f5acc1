"""The chart grants the agent exactly what it reads and writes in the API, and nothing more."""

from __future__ import annotations

from ipvsctl.agent.rbac import CLUSTER_ROLE_RULES
from tests.chart.render import cluster_role_rules, only, pod_spec, render

# (apiGroup, resource) -> verbs: list/watch what the agent translates; record Events (core/v1 only).
GRANTS = {
    ("", "services"): {"get", "list", "watch"},
    ("", "nodes"): {"get", "list", "watch"},
    ("discovery.k8s.io", "endpointslices"): {"get", "list", "watch"},
    ("", "events"): {"create", "patch"},
}


def _grants(rules: list[dict[str, list[str]]]) -> dict[tuple[str, str], set[str]]:
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


def test_cluster_role_grants_exactly_the_agents_verbs() -> None:
    """The ClusterRole allows get/list/watch services, nodes, endpointslices and create/patch events, only."""
    assert _grants(cluster_role_rules()) == GRANTS


def test_cluster_role_is_the_agents_own_rule_list() -> None:
    """The chart's rules are ipvsctl.agent.rbac.CLUSTER_ROLE_RULES, rule for rule, in the same order."""
    assert cluster_role_rules() == [rule.as_json() for rule in CLUSTER_ROLE_RULES]


def test_cluster_role_rules_name_only_groups_resources_and_verbs() -> None:
    """No rule uses resourceNames, nonResourceURLs or wildcards that would widen the grant."""
    for rule in cluster_role_rules():
        assert set(rule) == {"apiGroups", "resources", "verbs"}
        assert "*" not in [*rule["apiGroups"], *rule["resources"], *rule["verbs"]]


def test_binding_gives_the_role_to_the_daemonsets_service_account() -> None:
    """The ClusterRoleBinding binds the ClusterRole to the ServiceAccount the agent pods run as."""
    manifests = render({"serviceAccount": {"name": "lb-agent"}}, namespace="lb-system")
    binding = only(manifests, "ClusterRoleBinding")
    account = only(manifests, "ServiceAccount")["metadata"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": only(manifests, "ClusterRole")["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "lb-agent", "namespace": "lb-system"}]
    assert account == {**account, "name": "lb-agent", "namespace": "lb-system"}
    assert pod_spec(manifests)["serviceAccountName"] == "lb-agent"


def test_rbac_create_false_renders_no_role_and_no_binding() -> None:
    """With rbac.create=false the chart leaves RBAC to the cluster's owner."""
    kinds = {m["kind"] for m in render({"rbac": {"create": False}})}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
