"""The pod in the shape users of comparable charts know: updateStrategy as Kubernetes spells it, extraEnv,
extraVolumes, extraVolumeMounts, podAnnotations, priorityClassName."""

from __future__ import annotations

from typing import Any

from tests.chart.render import container, only, pod_spec, render

KUBECONFIG_VOLUME = {"name": "kubeconfig", "secret": {"secretName": "ipvsctl-kubeconfig"}}
KUBECONFIG_MOUNT = {"name": "kubeconfig", "mountPath": "/etc/ipvsctl", "readOnly": True}


def strategy(values: dict[str, Any]) -> Any:
    return only(render({"updateStrategy": values}), "DaemonSet")["spec"]["updateStrategy"]


def test_rolling_update_is_passed_as_kubernetes_spells_it() -> None:
    """type RollingUpdate with rollingUpdate.maxUnavailable 10% reaches the DaemonSet as given."""
    given = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}}
    assert strategy(given) == given


def test_on_delete_drops_the_rolling_update_settings() -> None:
    """type OnDelete: no rollingUpdate (the API refuses one with OnDelete), even with the default's still set."""
    assert strategy({"type": "OnDelete"}) == {"type": "OnDelete"}


def test_extra_env_follows_the_charts_own() -> None:
    """extraEnv entries come after NODE_NAME, as given."""
    agent = container(render({"extraEnv": [{"name": "TZ", "value": "UTC"}]}), "agent")
    assert agent is not None
    assert [entry["name"] for entry in agent["env"]] == ["NODE_NAME", "TZ"]
    assert agent["env"][-1] == {"name": "TZ", "value": "UTC"}


def test_extra_volumes_and_mounts_follow_the_charts_own() -> None:
    """extraVolumes join the pod's volumes and extraVolumeMounts the agent's mounts, after the chart's tmp."""
    manifests = render({"extraVolumes": [KUBECONFIG_VOLUME], "extraVolumeMounts": [KUBECONFIG_MOUNT]})
    agent = container(manifests, "agent")
    assert agent is not None
    assert [volume["name"] for volume in pod_spec(manifests)["volumes"]][-1] == "kubeconfig"
    assert pod_spec(manifests)["volumes"][-1] == KUBECONFIG_VOLUME
    assert agent["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}, KUBECONFIG_MOUNT]


def test_pod_annotations_and_priority_class_reach_the_pod() -> None:
    """podAnnotations on the pod template, priorityClassName on its spec."""
    manifests = render({"podAnnotations": {"example.com/scrape": "false"}, "priorityClassName": "network-critical"})
    template = only(manifests, "DaemonSet")["spec"]["template"]
    assert template["metadata"]["annotations"] == {"example.com/scrape": "false"}
    assert template["spec"]["priorityClassName"] == "network-critical"
