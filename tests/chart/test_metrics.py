"""Metrics: the port is always served; a Service and a prometheus-operator monitor only when asked for."""

from __future__ import annotations

from tests.chart.render import only, pod_spec, render

SELECTOR = {"app.kubernetes.io/name": "ipvsctl", "app.kubernetes.io/instance": "ipvsctl"}


def test_no_service_and_no_monitor_by_default() -> None:
    """Default values render no Service, ServiceMonitor or PodMonitor."""
    assert not {m["kind"] for m in render()} & {"Service", "ServiceMonitor", "PodMonitor"}


def test_metrics_service_is_headless_and_selects_the_agents() -> None:
    """metrics.service.enabled renders a headless Service whose port targets the pods' metrics port."""
    manifests = render({"metrics": {"service": {"enabled": True}, "port": 20249}})
    service = only(manifests, "Service")["spec"]
    assert service["clusterIP"] == "None"
    assert service["selector"] == SELECTOR
    assert service["ports"] == [{"name": "metrics", "port": 20249, "targetPort": "metrics", "protocol": "TCP"}]
    assert pod_spec(manifests)["containers"][0]["ports"][1] == {
        "name": "metrics",
        "containerPort": 20249,
        "protocol": "TCP",
    }


def test_service_monitor_scrapes_the_metrics_service() -> None:
    """A ServiceMonitor (monitoring.coreos.com/v1) selects the metrics Service and scrapes its metrics port."""
    manifests = render({"metrics": {"monitor": {"enabled": True, "labels": {"release": "prom"}}}})
    monitor = only(manifests, "ServiceMonitor")
    service = only(manifests, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["kube-system"]}
    assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [("metrics", "/metrics")]


def test_pod_monitor_scrapes_the_pods_without_a_service() -> None:
    """A PodMonitor selects the agent pods' metrics port directly, and no Service is rendered."""
    manifests = render({"metrics": {"monitor": {"enabled": True, "kind": "PodMonitor"}}})
    monitor = only(manifests, "PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"] == SELECTOR
    assert [(e["port"], e["path"]) for e in monitor["spec"]["podMetricsEndpoints"]] == [("metrics", "/metrics")]
    assert "Service" not in {m["kind"] for m in manifests}


def test_monitor_interval_and_timeout_are_passed_on() -> None:
    """metrics.monitor.interval and scrapeTimeout reach the scrape endpoint."""
    values = {"metrics": {"monitor": {"enabled": True, "interval": "15s", "scrapeTimeout": "5s"}}}
    endpoint = only(render(values), "ServiceMonitor")["spec"]["endpoints"][0]
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("15s", "5s")
