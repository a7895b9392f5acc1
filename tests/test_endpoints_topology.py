"""Topology hints narrow the cluster-wide endpoints as kube-proxy's CategorizeEndpoints does (1.33+)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ipvsctl.endpoints import PREFER_SAME_NODE, PREFER_SAME_ZONE, PortEndpoint, select
from ipvsctl.kube.views import EndpointView
from tests.builders import ep

NODE = "worker1"


def backends(*endpoints: EndpointView) -> list[PortEndpoint]:
    return [(endpoint, 8080) for endpoint in endpoints]


def addresses(chosen: Sequence[PortEndpoint]) -> list[str]:
    return [endpoint.address for endpoint, _ in chosen]


A_ZONE_A = ep("198.51.100.1", node="worker1", zones=["zone-a"], nodes=["worker1"])
B_ZONE_A = ep("198.51.100.2", node="worker2", zones=["zone-a"], nodes=["worker2"])
C_ZONE_B = ep("198.51.100.3", node="worker3", zones=["zone-b"], nodes=["worker3"])
ALL = ["198.51.100.1", "198.51.100.2", "198.51.100.3"]


@pytest.mark.parametrize(
    ("endpoints", "zone", "mode", "expected"),
    [
        pytest.param(
            [
                ep("198.51.100.1", zones=["zone-a"]),
                ep("198.51.100.2", zones=["zone-a"]),
                ep("198.51.100.3", zones=["zone-b"]),
            ],
            "zone-a",
            PREFER_SAME_ZONE,
            ["198.51.100.1", "198.51.100.2"],
            id="zone-hints-for-this-zone",
        ),
        pytest.param(
            [A_ZONE_A, B_ZONE_A, C_ZONE_B],
            "zone-a",
            PREFER_SAME_NODE,
            ["198.51.100.1"],
            id="node-hints-win-over-zone-hints",
        ),
        pytest.param(
            [
                ep("198.51.100.2", zones=["zone-a"], nodes=["worker2"]),
                ep("198.51.100.3", zones=["zone-b"], nodes=["worker3"]),
            ],
            "zone-a",
            PREFER_SAME_ZONE,
            ["198.51.100.2"],
            id="no-node-hint-for-this-node-falls-back-to-zone",
        ),
        pytest.param(
            [ep("198.51.100.1", zones=["zone-a"]), ep("198.51.100.2", zones=["zone-a"]), ep("198.51.100.3")],
            "zone-a",
            "",
            ALL,
            id="one-ready-endpoint-without-hints-uses-all",
        ),
        pytest.param(
            [
                ep("198.51.100.1", zones=["zone-b"]),
                ep("198.51.100.2", zones=["zone-b"]),
                ep("198.51.100.3", zones=["zone-c"]),
            ],
            "zone-a",
            "",
            ALL,
            id="nothing-hinted-for-this-zone-uses-all",
        ),
        pytest.param(
            [
                ep("198.51.100.1", zones=["zone-a"]),
                ep("198.51.100.2", zones=["zone-a"]),
                ep("198.51.100.3", zones=["zone-b"]),
            ],
            "",
            "",
            ALL,
            id="node-without-zone-label-uses-all",
        ),
        pytest.param(
            [
                ep("198.51.100.1", zones=["zone-a"]),
                ep("198.51.100.2", zones=["zone-b"]),
                ep("198.51.100.3", ready=False),
            ],
            "zone-a",
            PREFER_SAME_ZONE,
            ["198.51.100.1"],
            id="unready-endpoint-without-hints-does-not-count",
        ),
        pytest.param(
            [ep("198.51.100.1", zones=["zone-a", "zone-b"]), ep("198.51.100.2", zones=["zone-b"])],
            "zone-a",
            PREFER_SAME_ZONE,
            ["198.51.100.1"],
            id="endpoint-hinted-for-two-zones",
        ),
    ],
)
def test_cluster_set_follows_hints(endpoints: list[EndpointView], zone: str, mode: str, expected: list[str]) -> None:
    """The cluster-wide set is the hinted subset when every ready endpoint is hinted and one is for here."""
    selection = select(backends(*endpoints), node_name=NODE, zone=zone)
    assert (selection.topology, addresses(selection.cluster)) == (mode, expected)


@pytest.mark.parametrize(
    ("endpoints", "zone", "why"),
    [
        pytest.param(
            [ep("198.51.100.1", zones=["zone-b"])], "zone-a", "no ready endpoint is hinted for zone zone-a", id="zone"
        ),
        pytest.param([ep("198.51.100.1", zones=["zone-a"])], "", "no topology.kubernetes.io/zone label", id="no-label"),
        pytest.param(
            [ep("198.51.100.1", zones=["zone-a"]), ep("198.51.100.2")],
            "zone-a",
            "not every ready endpoint",
            id="partial",
        ),
        pytest.param(
            [ep("198.51.100.1", nodes=["worker9"])], "zone-a", "no ready endpoint is hinted for node worker1", id="node"
        ),
    ],
)
def test_unusable_hints_say_why(endpoints: list[EndpointView], zone: str, why: str) -> None:
    """Hints that cannot be used leave every endpoint in, and the selection says why."""
    selection = select(backends(*endpoints), node_name=NODE, zone=zone)
    assert selection.topology == ""
    assert why in selection.hints_ignored
    assert len(selection.cluster) == len(endpoints)


def test_no_hints_means_nothing_to_say() -> None:
    """Without hints the selection carries no topology mode and no reason."""
    selection = select(backends(ep("198.51.100.1"), ep("198.51.100.2")), node_name=NODE, zone="zone-a")
    assert (selection.topology, selection.hints_ignored) == ("", "")


def test_terminating_fallback_ignores_topology() -> None:
    """With no ready endpoint anywhere, serving-terminating ones are used whatever their hints."""
    endpoints = [
        ep("198.51.100.1", ready=False, serving=True, terminating=True, zones=["zone-b"]),
        ep("198.51.100.2", ready=False, serving=True, terminating=True, zones=["zone-a"]),
    ]
    selection = select(backends(*endpoints), node_name=NODE, zone="zone-a")
    assert addresses(selection.cluster) == ["198.51.100.1", "198.51.100.2"]


def test_local_set_ignores_hints() -> None:
    """The node-local set (traffic policy Local) is every usable endpoint on this node, hinted elsewhere or not."""
    endpoints = [
        ep("198.51.100.1", node="worker1", zones=["zone-b"]),
        ep("198.51.100.2", node="worker2", zones=["zone-a"]),
    ]
    selection = select(backends(*endpoints), node_name=NODE, zone="zone-a")
    assert addresses(selection.local) == ["198.51.100.1"]
    assert addresses(selection.cluster) == ["198.51.100.2"]
