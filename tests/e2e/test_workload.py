"""The objects the bed writes as the control plane would: EndpointSlices in either served version, Services."""

from __future__ import annotations

import pytest

from tests.e2e import workload
from tests.e2e.workload import MY_SERVICE, SAMPLE_SESSION_AFFINITY, SAMPLE_WEB, UDP_ECHO, PodInfo, PodState

ZONES = {"node1": "zone-a", "node2": "zone-b"}
PODS = [
    PodInfo("sample-1a", "sample", "node1", "198.51.100.10"),
    PodInfo("sample-2a", "sample", "node2", "198.51.100.74", PodState.TERMINATING),
    PodInfo("sample-2b", "sample", "node2", "198.51.100.75", PodState.PENDING),
    PodInfo("udp-echo-1a", "udp-echo", "node1", "198.51.100.11"),
]
NOW = "2024-05-07T09:22:31Z"


def slice_of(version: str) -> workload.Manifest:
    return workload.endpoint_slice_manifest(SAMPLE_WEB, pods=PODS, zones=ZONES, api_version=version, changed_at=NOW)


@pytest.mark.parametrize("version", workload.SLICE_VERSIONS)
def test_a_slice_lists_only_the_pods_its_service_selects(version: str) -> None:
    """Every pod of the Service's app, whatever its state, and no other app's pod."""
    addresses = [endpoint["addresses"] for endpoint in slice_of(version)["endpoints"]]
    assert addresses == [["198.51.100.10"], ["198.51.100.74"], ["198.51.100.75"]]


@pytest.mark.parametrize(
    ("pod", "conditions"),
    [
        (0, {"ready": True, "serving": True, "terminating": False}),
        (1, {"ready": False, "serving": True, "terminating": True}),
        (2, {"ready": False, "serving": False, "terminating": False}),
    ],
    ids=["ready", "terminating", "pending"],
)
def test_conditions_follow_the_pod_state_as_the_controller_writes_them(pod: int, conditions: dict[str, bool]) -> None:
    """ready / serving / terminating of each pod state (KEP-1672)."""
    assert slice_of(workload.SLICE_V1)["endpoints"][pod]["conditions"] == conditions


def test_a_v1_slice_carries_node_name_and_zone_fields() -> None:
    """discovery.k8s.io/v1: nodeName and zone on each endpoint, no topology map."""
    endpoint = slice_of(workload.SLICE_V1)["endpoints"][0]
    assert (endpoint["nodeName"], endpoint["zone"], "topology" in endpoint) == ("node1", "zone-a", False)


def test_a_v1beta1_slice_carries_the_zone_as_a_topology_label() -> None:
    """discovery.k8s.io/v1beta1 (Kubernetes 1.20): nodeName, and the hostname and zone under topology."""
    endpoint = slice_of(workload.SLICE_V1BETA1)["endpoints"][1]
    assert endpoint["nodeName"] == "node2"
    assert endpoint["topology"] == {workload.HOSTNAME_LABEL: "node2", workload.ZONE_LABEL: "zone-b"}
    assert "zone" not in endpoint


def test_a_slice_is_labelled_with_its_service_and_controller() -> None:
    """The service-name label ties it to the Service; the ports are the Service's target port."""
    manifest = slice_of(workload.SLICE_V1)
    assert manifest["metadata"]["labels"] == {
        workload.SERVICE_NAME_LABEL: "sample-web",
        workload.MANAGED_BY_LABEL: workload.CONTROLLER,
    }
    assert manifest["ports"] == [{"name": "http", "port": 80, "protocol": "TCP"}]
    assert manifest["metadata"]["annotations"][workload.TRIGGER_TIME_ANNOTATION] == NOW


def test_an_unknown_slice_version_is_refused() -> None:
    """Only the versions the agent reads can be written."""
    with pytest.raises(ValueError, match="unknown EndpointSlice version"):
        slice_of("discovery.k8s.io/v2")


@pytest.mark.parametrize(
    ("served", "chosen"),
    [(["v1", "v1beta1"], workload.SLICE_V1), (["v1beta1"], workload.SLICE_V1BETA1), (["v1"], workload.SLICE_V1)],
    ids=["both", "1.20", "1.25+"],
)
def test_the_slice_version_is_the_newest_the_server_serves(served: list[str], chosen: str) -> None:
    """v1 when served, else v1beta1 (discovery decides, not the server's version)."""
    assert workload.slice_version(served) == chosen


def test_a_server_serving_no_known_slice_version_is_an_error() -> None:
    """Nothing to write then: say so."""
    with pytest.raises(ValueError, match="serves no EndpointSlice version"):
        workload.slice_version(["v1alpha1"])


def test_pod_names_count_letters_per_app_and_node() -> None:
    """<app>-<node><letter>, as the seeds' two pods on worker2."""
    named = workload.pod_names([("sample", 1), ("sample", 2), ("sample", 2), ("udp-echo", 1)])
    assert [name for name, _, _ in named] == ["sample-1a", "sample-2a", "sample-2b", "udp-echo-1a"]


def test_a_client_ip_service_without_a_timeout_leaves_it_to_the_api() -> None:
    """my-service (seed): ClientIP with no sessionAffinityConfig; Local with its healthCheckNodePort."""
    spec = workload.service_manifest(MY_SERVICE)["spec"]
    assert (spec["sessionAffinity"], "sessionAffinityConfig" in spec) == ("ClientIP", False)
    assert (spec["externalTrafficPolicy"], spec["healthCheckNodePort"]) == ("Local", 32000)


def test_a_client_ip_service_with_a_timeout_says_it() -> None:
    """sample-session-affinity (seed): ClientIP for 10800 s; its ingress IP goes to the status subresource."""
    spec = workload.service_manifest(SAMPLE_SESSION_AFFINITY)["spec"]
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    assert workload.ingress_status(SAMPLE_SESSION_AFFINITY) == {
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.130"}]}}
    }


def test_the_cluster_affinity_service_carries_the_scope_annotation() -> None:
    """sample-affinity-cluster: the ipvsctl.io/affinity-scope annotation; its rr twin has no annotations."""
    cluster = workload.service_manifest(workload.SAMPLE_AFFINITY_CLUSTER)["metadata"]
    node = workload.service_manifest(workload.SAMPLE_AFFINITY_NODE)["metadata"]
    assert (cluster["annotations"], "annotations" in node) == ({"ipvsctl.io/affinity-scope": "cluster"}, False)


def test_a_udp_service_maps_its_port_to_the_pods_port() -> None:
    """udp-echo: UDP 53 on the VIPs, 5353 in the pods; no load-balancer status."""
    port = workload.service_manifest(UDP_ECHO)["spec"]["ports"][0]
    assert (port["protocol"], port["port"], port["targetPort"], port["nodePort"]) == ("UDP", 53, 5353, 30053)
    assert workload.ingress_status(UDP_ECHO) is None


def test_every_address_is_in_a_documentation_range() -> None:
    """ClusterIPs inside the apiserver's service range, ingress IPs inside the agents' load-balancer range."""
    from ipaddress import ip_address, ip_network  # noqa: PLC0415  (this test only)

    for spec in workload.SERVICES:
        assert ip_address(spec.cluster_ip) in ip_network(workload.SERVICE_CIDR), spec.name
        if spec.ingress_ip is not None:
            assert ip_address(spec.ingress_ip) in ip_network(workload.LOAD_BALANCER_CIDR), spec.name
        if spec.cluster_ip6:
            assert ip_address(spec.cluster_ip6) in ip_network(workload.SERVICE_CIDR6), spec.name


def test_a_dual_stack_service_asks_for_both_families_ipv4_first() -> None:
    """The affinity twins: RequireDualStack with both ClusterIPs, IPv4 (the primary) first."""
    spec = workload.service_manifest(workload.SAMPLE_AFFINITY_CLUSTER)["spec"]
    assert (spec["ipFamilyPolicy"], spec["ipFamilies"], spec["clusterIPs"]) == (
        "RequireDualStack",
        ["IPv4", "IPv6"],
        ["203.0.113.15", "2001:db8:96::15"],
    )


def test_a_single_stack_service_leaves_the_families_to_the_api() -> None:
    """A Service without an IPv6 ClusterIP names no family (the API defaults it to the cluster's primary)."""
    spec = workload.service_manifest(SAMPLE_WEB)["spec"]
    assert not {"ipFamilyPolicy", "ipFamilies", "clusterIPs"} & set(spec)


def test_an_ipv6_slice_lists_the_pods_ipv6_addresses_under_its_own_name() -> None:
    """The IPv6 EndpointSlice of a dual-stack Service: addressType IPv6, each pod's IPv6 address."""
    pods = [PodInfo("sample-1a", "sample", "node1", "198.51.100.10", ip6="2001:db8:b:1::a")]
    manifest = workload.endpoint_slice_manifest(
        workload.SAMPLE_AFFINITY_NODE,
        pods=pods,
        zones=ZONES,
        api_version=workload.SLICE_V1,
        changed_at=NOW,
        family="IPv6",
    )
    addresses = [endpoint["addresses"] for endpoint in manifest["endpoints"]]
    assert (manifest["metadata"]["name"], manifest["addressType"], addresses) == (
        "sample-affinity-node-e2e6",
        "IPv6",
        [["2001:db8:b:1::a"]],
    )


def test_an_ipv6_slice_of_a_pod_without_an_ipv6_address_is_an_error() -> None:
    """A pod with no IPv6 address cannot be listed in an IPv6 slice: the bed's mistake, said at once."""
    with pytest.raises(ValueError, match="sample-1a has no IPv6 address"):
        workload.endpoint_slice_manifest(
            workload.SAMPLE_AFFINITY_NODE,
            pods=PODS[:1],
            zones=ZONES,
            api_version=workload.SLICE_V1,
            changed_at=NOW,
            family="IPv6",
        )


def test_a_single_stack_service_has_no_ipv6_slice() -> None:
    """Asking for an IPv6 slice of an IPv4-only Service is refused."""
    with pytest.raises(ValueError, match="sample-web has no IPv6 family"):
        workload.endpoint_slice_manifest(
            SAMPLE_WEB, pods=PODS, zones=ZONES, api_version=workload.SLICE_V1, changed_at=NOW, family="IPv6"
        )


def test_a_dual_stack_node_lists_both_internal_ips_and_pod_cidrs() -> None:
    """A Node with IPv6: InternalIPs IPv4 first (the primary), then IPv6; both pod CIDRs."""
    node = workload.NodeInfo("node1", "192.0.2.11", "zone-a", "198.51.100.0/26", "2001:db8:a::11", "2001:db8:b:1::/64")
    manifest = workload.node_manifest(node)
    internal = [a["address"] for a in manifest["status"]["addresses"] if a["type"] == "InternalIP"]
    assert (internal, manifest["spec"]["podCIDRs"]) == (
        ["192.0.2.11", "2001:db8:a::11"],
        ["198.51.100.0/26", "2001:db8:b:1::/64"],
    )
