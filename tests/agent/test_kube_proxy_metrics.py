"""kube-proxy's metric names, types, labels and buckets, fed from the same observations as ipvsctl's own."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ipvsctl.agent.metrics import KUBE_PROXY_SYNC_BUCKETS, AgentMetrics
from ipvsctl.agent.node import NodeAgent
from tests.agent.conftest import StartAgent
from tests.agent.fakes import FakeClock, endpoint_slice, list_everything, service, settle
from tests.agent.test_metrics import samples
from tests.agent.test_network_programming import triggered

# kube-proxy's pkg/proxy/metrics: name → (type, label names besides le).
KUBE_PROXY = {
    "kubeproxy_sync_proxy_rules_duration_seconds": ("histogram", ()),
    "kubeproxy_sync_full_proxy_rules_duration_seconds": ("histogram", ()),
    "kubeproxy_sync_partial_proxy_rules_duration_seconds": ("histogram", ()),
    "kubeproxy_sync_proxy_rules_last_timestamp_seconds": ("gauge", ()),
    "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds": ("gauge", ()),
    "kubeproxy_sync_proxy_rules_endpoint_changes_pending": ("gauge", ()),
    "kubeproxy_sync_proxy_rules_endpoint_changes": ("counter", ()),
    "kubeproxy_sync_proxy_rules_service_changes_pending": ("gauge", ()),
    "kubeproxy_sync_proxy_rules_service_changes": ("counter", ()),
    "kubeproxy_sync_proxy_rules_no_local_endpoints_total": ("gauge", ("traffic_policy",)),
    "kubeproxy_network_programming_duration_seconds": ("histogram", ()),
}


def families() -> dict[str, tuple[str, set[str]]]:
    """Each exported family's type and the label names of its samples (le excluded)."""
    text = AgentMetrics().exposition().decode()
    return {
        family.name: (family.type, {name for sample in family.samples for name in sample.labels} - {"le"})
        for family in text_string_to_metric_families(text)
    }


@pytest.mark.parametrize("name", sorted(KUBE_PROXY), ids=sorted(KUBE_PROXY))
def test_kube_proxy_metric_has_its_type_and_labels(name: str) -> None:
    """Each kube-proxy metric is exported under its name with kube-proxy's type and label names."""
    kind, labels = KUBE_PROXY[name]
    assert families()[name] == (kind, set(labels))


def test_sync_buckets_are_kube_proxys() -> None:
    """The sync histograms use ExponentialBuckets(0.001, 2, 15): 1 ms to 16.384 s."""
    assert (len(KUBE_PROXY_SYNC_BUCKETS), KUBE_PROXY_SYNC_BUCKETS[0], KUBE_PROXY_SYNC_BUCKETS[-1]) == (
        15,
        0.001,
        pytest.approx(16.384),
    )


def test_exported_sync_buckets_are_the_declared_ones() -> None:
    """The exposition's le edges of the sync histogram are the kube-proxy edges (and +Inf)."""
    text = AgentMetrics().exposition().decode()
    edges = [
        float(sample.labels["le"])
        for family in text_string_to_metric_families(text)
        if family.name == "kubeproxy_sync_proxy_rules_duration_seconds"
        for sample in family.samples
        if sample.name.endswith("_bucket")
    ]
    assert edges == [*(pytest.approx(edge) for edge in KUBE_PROXY_SYNC_BUCKETS), float("inf")]


async def synced_agent(start_agent: StartAgent, clock: FakeClock) -> NodeAgent:
    agent = start_agent()
    web = service("web", cluster_ip="10.0.0.10")
    list_everything(agent, services=[web], slices=[endpoint_slice("web-1", service="web", endpoints=[])])
    await clock.advance(2.0)
    return agent


async def test_every_sync_is_observed_in_total_and_by_kind(start_agent: StartAgent, clock: FakeClock) -> None:
    """The first (full) sync and a later incremental one: 2 in the total histogram, 1 in each kind's."""
    agent = await synced_agent(start_agent, clock)
    agent.handlers["EndpointSlice"].upsert(endpoint_slice("web-1", service="web", endpoints=[("10.1.0.1", "n2")]))
    await clock.advance(2.0)
    values = samples(agent.metrics.exposition())
    assert (
        values[("kubeproxy_sync_proxy_rules_duration_seconds_count", ())],
        values[("kubeproxy_sync_full_proxy_rules_duration_seconds_count", ())],
        values[("kubeproxy_sync_partial_proxy_rules_duration_seconds_count", ())],
    ) == (2, 1, 1)


async def test_last_sync_timestamp_matches_ipvsctls(start_agent: StartAgent, clock: FakeClock) -> None:
    """kube-proxy's last-sync timestamp is set with ipvsctl's, from the same success."""
    agent = await synced_agent(start_agent, clock)
    values = samples(agent.metrics.exposition())
    assert (
        values[("kubeproxy_sync_proxy_rules_last_timestamp_seconds", ())]
        == values[("ipvsctl_last_successful_sync_timestamp_seconds", ())]
        > 0
    )


async def test_pending_changes_are_counted_until_a_sync_takes_them(start_agent: StartAgent, clock: FakeClock) -> None:
    """A slice change and a Service change inside the minimum interval: pending 1 each, then 0 after the sync."""
    agent = await synced_agent(start_agent, clock)
    agent.handlers["EndpointSlice"].upsert(endpoint_slice("web-1", service="web", endpoints=[("10.1.0.1", "n2")]))
    await clock.advance(0.0)
    agent.handlers["Service"].upsert(service("api", cluster_ip="10.0.0.20"))
    await settle()
    before = samples(agent.metrics.exposition())
    await clock.advance(2.0)
    after = samples(agent.metrics.exposition())
    names = [f"kubeproxy_sync_proxy_rules_{kind}_changes_pending" for kind in ("endpoint", "service")]
    assert [before[(name, ())] for name in names] + [after[(name, ())] for name in names] == [0, 1, 0, 0]


async def test_change_totals_count_each_service_a_change_affects(start_agent: StartAgent, clock: FakeClock) -> None:
    """The initial lists (one Service, one slice) and one slice event: endpoint total 2, service total 1."""
    agent = await synced_agent(start_agent, clock)
    agent.handlers["EndpointSlice"].upsert(endpoint_slice("web-1", service="web", endpoints=[("10.1.0.1", "n2")]))
    await clock.advance(2.0)
    values = samples(agent.metrics.exposition())
    assert (
        values[("kubeproxy_sync_proxy_rules_endpoint_changes_total", ())],
        values[("kubeproxy_sync_proxy_rules_service_changes_total", ())],
    ) == (2, 1)


async def test_queued_timestamp_is_the_wall_time_of_the_last_change(start_agent: StartAgent, clock: FakeClock) -> None:
    """The last-queued timestamp is the wall time at which the last change arrived."""
    agent = await synced_agent(start_agent, clock)
    await clock.advance(10.0)
    agent.handlers["Service"].upsert(service("api", cluster_ip="10.0.0.20"))
    values = samples(agent.metrics.exposition())
    assert values[("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds", ())] == clock.wall().timestamp()


async def test_no_local_endpoints_by_traffic_policy(start_agent: StartAgent, clock: FakeClock) -> None:
    """An internalTrafficPolicy Local and an externalTrafficPolicy Local Service, neither with a local endpoint."""
    agent = start_agent()
    internal = service("internal", cluster_ip="10.0.0.30", internalTrafficPolicy="Local")
    external = service(
        "lb",
        cluster_ip="10.0.0.50",
        type="LoadBalancer",
        externalTrafficPolicy="Local",
        ports=[{"port": 80, "protocol": "TCP", "nodePort": 30080}],
    )
    remote = [("10.1.0.9", "worker2")]
    list_everything(
        agent,
        services=[internal, external],
        slices=[
            endpoint_slice("internal-1", service="internal", endpoints=remote),
            endpoint_slice("lb-1", service="lb", endpoints=remote),
        ],
    )
    await clock.advance(2.0)
    values = samples(agent.metrics.exposition())
    name = "kubeproxy_sync_proxy_rules_no_local_endpoints_total"
    assert (values[(name, (("traffic_policy", "internal"),))], values[(name, (("traffic_policy", "external"),))]) == (
        1,
        1,
    )


async def test_network_programming_is_observed_under_both_names(start_agent: StartAgent, clock: FakeClock) -> None:
    """One slice change with a trigger time: the same sample in ipvsctl's and kube-proxy's histogram."""
    agent = start_agent()
    await clock.advance(5.0)
    list_everything(agent, services=[service("web", cluster_ip="10.0.0.10")], slices=[])
    await clock.advance(2.0)
    agent.handlers["EndpointSlice"].upsert(triggered(clock, 1.5))
    await clock.advance(2.0)
    values = samples(agent.metrics.exposition())
    ours = [values[(f"ipvsctl_network_programming_duration_seconds_{part}", ())] for part in ("count", "sum")]
    theirs = [values[(f"kubeproxy_network_programming_duration_seconds_{part}", ())] for part in ("count", "sum")]
    assert ours == theirs
    assert ours[0] == 1
