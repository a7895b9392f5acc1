"""Metrics: the port is always served; a Service and a prometheus-operator monitor only when asked for."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.render import HelmRefusedError, container, only, pod_spec, render

SCRAPED = [
    pytest.param({"metrics": {"service": {"enabled": True}}}, id="metrics-service"),
    pytest.param({"prometheus": {"serviceMonitor": {"enabled": True}}}, id="service-monitor"),
    pytest.param({"prometheus": {"podMonitor": {"enabled": True}}}, id="pod-monitor"),
]

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
    manifests = render({"prometheus": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}})
    monitor = only(manifests, "ServiceMonitor")
    service = only(manifests, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["kube-system"]}
    assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [("metrics", "/metrics")]


def test_pod_monitor_scrapes_the_pods_without_a_service() -> None:
    """A PodMonitor selects the agent pods' metrics port directly, and no Service is rendered."""
    manifests = render({"prometheus": {"podMonitor": {"enabled": True}}})
    monitor = only(manifests, "PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"] == SELECTOR
    assert [(e["port"], e["path"]) for e in monitor["spec"]["podMetricsEndpoints"]] == [("metrics", "/metrics")]
    assert "Service" not in {m["kind"] for m in manifests}


def test_monitor_interval_and_timeout_are_passed_on() -> None:
    """prometheus.serviceMonitor.interval and scrapeTimeout reach the scrape endpoint."""
    values = {"prometheus": {"serviceMonitor": {"enabled": True, "interval": "15s", "scrapeTimeout": "5s"}}}
    endpoint = only(render(values), "ServiceMonitor")["spec"]["endpoints"][0]
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("15s", "5s")


def metrics_bind(values: dict[str, Any]) -> str:
    """The --metrics-bind flag the agent container gets with these values."""
    agent = container(render(values), "agent")
    assert agent is not None
    args: list[str] = agent["args"]
    return next(a for a in args if a.startswith("--metrics-bind="))


def test_metrics_stay_on_loopback_unless_scraped() -> None:
    """Without a metrics Service or monitor, /metrics listens on 127.0.0.1 only (as kube-proxy's 10249)."""
    assert metrics_bind({"metrics": {"port": 20249}}) == "--metrics-bind=127.0.0.1:20249"


@pytest.mark.parametrize("values", SCRAPED)
def test_metrics_bind_widens_when_the_chart_scrapes_it(values: dict[str, Any]) -> None:
    """A metrics Service, ServiceMonitor or PodMonitor widens the bind to 0.0.0.0, where the scrape arrives."""
    assert metrics_bind(values) == "--metrics-bind=0.0.0.0:10249"


@pytest.mark.parametrize(
    ("values", "flag"),
    [
        pytest.param({"metrics": {"bindAddress": "192.0.2.1"}}, "--metrics-bind=192.0.2.1:10249", id="not-scraped"),
        pytest.param(
            {"metrics": {"bindAddress": "::"}, "prometheus": {"serviceMonitor": {"enabled": True}}},
            "--metrics-bind=[::]:10249",
            id="v6-scraped",
        ),
    ],
)
def test_metrics_bind_address_given_is_used_as_is(values: dict[str, Any], flag: str) -> None:
    """metrics.bindAddress, when set, is the bind whether or not the chart scrapes it."""
    assert metrics_bind(values) == flag


@pytest.mark.parametrize("address", ["127.0.0.1", "127.1.2.3", "::1"])
@pytest.mark.parametrize("values", SCRAPED)
def test_scraping_a_loopback_bind_is_refused(values: dict[str, Any], address: str) -> None:
    """A loopback metrics.bindAddress with a metrics Service or monitor fails the render, naming the value."""
    with pytest.raises(HelmRefusedError, match=f"metrics.bindAddress {address} is a loopback address"):
        render({**values, "metrics": {**values.get("metrics", {}), "bindAddress": address}})
