"""The pure parts of the side-by-side bench with kube-proxy (bench/peer_*.py, issue 18)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.peer import verdicts
from bench.peer_cluster import (
    ENDPOINTS,
    changes,
    endpoint_addresses,
    expected_table,
    service_manifest,
    service_spec,
    slice_manifest,
    virtual_key,
)
from bench.peer_guest import proc_view
from bench.peer_measure import (
    Difference,
    compare_tables,
    cpu_seconds,
    memory,
    missing,
    poll_delay,
    summary,
    tally,
)
from bench.peer_proxies import agent_argv, in_netns, kube_proxy_argv
from ipvsctl.model import Persistence, Protocol, RealServer, ServiceKey, Table, VirtualService

STAT = (
    "4242 (kube proxy) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 150 30 20 20 0 12 0 1000 800000000 9000 "
    "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0"
)
STATUS = "Name:\tkube-proxy\nVmPeak:\t  900000 kB\nVmHWM:\t   61440 kB\nVmRSS:\t   51200 kB\nThreads:\t12\n"


def service(address: str, *reals: str, persistence: Persistence | None = None) -> VirtualService:
    """A TCP virtual service on port 80 with masquerading real servers on 8080."""
    return VirtualService(
        ServiceKey(Protocol.TCP, address, 80),
        persistence=persistence,
        reals=tuple(RealServer(real, 8080) for real in reals),
    )


def test_cpu_seconds_sum_own_and_reaped_children() -> None:
    """utime + stime + cutime + cstime in ticks, even when the command name holds a space."""
    assert cpu_seconds(STAT, ticks_per_second=100) == pytest.approx(4.5)


def test_memory_reads_rss_and_peak_in_mib() -> None:
    """VmRSS and VmHWM come out in MiB."""
    found = memory(STATUS)
    assert (found.rss_mib, found.peak_mib) == (50.0, 60.0)


def test_memory_without_rss_is_an_error() -> None:
    """A status text without VmRSS (a process gone) is refused, not read as zero."""
    with pytest.raises(ValueError, match="VmRSS"):
        memory("Name:\tx\n")


@pytest.mark.parametrize(
    ("waited", "delay"), [(0.0, 0.005), (1.0, 0.02), (100.0, 0.5)], ids=["first", "proportional", "capped"]
)
def test_poll_delay_stays_within_two_percent_of_the_wait(waited: float, delay: float) -> None:
    """Polls start at 5 ms, then sleep 2 % of the time waited, at most 0.5 s."""
    assert poll_delay(waited) == pytest.approx(delay)


def test_missing_counts_absent_and_different_services() -> None:
    """A virtual service absent or with other real servers is missing; an extra one is not counted."""
    table = {("TCP", "10.0.1.1", 80): {("198.51.100.13", 8080): None}, ("TCP", "10.0.0.1", 443): {}}
    expected = {
        ("TCP", "10.0.1.1", 80): frozenset({("198.51.100.13", 8080), ("198.51.100.14", 8080)}),
        ("UDP", "10.0.1.5", 80): frozenset({("198.51.100.25", 8080)}),
    }
    assert missing(table, expected) == 2


def test_summary_gives_p50_p99_and_max_in_ms() -> None:
    """Latencies in seconds become nearest-rank p50/p99 and max in milliseconds."""
    result = summary([index / 1000 for index in range(1, 101)])
    assert result == {"count": 100, "p50_ms": 51.0, "p99_ms": 99.0, "max_ms": 100.0}


def test_summary_of_nothing_is_a_count_of_zero() -> None:
    """No latency measured gives no percentiles."""
    assert summary([]) == {"count": 0}


def test_equal_tables_have_no_difference() -> None:
    """The same table on both sides compares equal."""
    table = Table.of([service("10.0.1.1", "198.51.100.13")])
    assert compare_tables(ipvsctl=table, kube_proxy=table) == []


def test_a_service_only_one_proxy_holds_is_a_difference() -> None:
    """kube-proxy's `kubernetes` Service without endpoints shows as present on its side only."""
    ours = Table.of([service("10.0.1.1", "198.51.100.13")])
    theirs = Table.of([service("10.0.1.1", "198.51.100.13"), service("10.0.0.1")])
    assert compare_tables(ipvsctl=ours, kube_proxy=theirs) == [
        Difference("tcp/10.0.0.1:80", "virtual service", "absent", "present")
    ]


def test_a_persistence_netmask_difference_is_named() -> None:
    """Two persistence netmasks on one Service show as a persistence_netmask difference."""
    ours = Table.of([service("10.0.1.1", persistence=Persistence(10800, 24))])
    theirs = Table.of([service("10.0.1.1", persistence=Persistence(10800, 32))])
    assert compare_tables(ipvsctl=ours, kube_proxy=theirs) == [
        Difference("tcp/10.0.1.1:80", "persistence_netmask", "/24", "/32")
    ]


def test_a_real_server_weight_difference_is_named() -> None:
    """A real server with another weight shows under its own address."""
    ours = Table.of(
        [VirtualService(ServiceKey(Protocol.TCP, "10.0.1.1", 80), reals=(RealServer("198.51.100.13", 8080),))]
    )
    theirs = Table.of(
        [VirtualService(ServiceKey(Protocol.TCP, "10.0.1.1", 80), reals=(RealServer("198.51.100.13", 8080, 2),))]
    )
    (difference,) = compare_tables(ipvsctl=ours, kube_proxy=theirs)
    assert (difference.field, difference.ipvsctl[:8], difference.kube_proxy[:8]) == (
        "real server 198.51.100.13:8080",
        "weight 1",
        "weight 2",
    )


def test_tally_counts_services_per_kind_of_difference() -> None:
    """Differences of one kind and values are counted together; real servers are one kind."""
    found = tally(
        [
            Difference("a", "scheduler", "rr", "wrr"),
            Difference("b", "scheduler", "rr", "wrr"),
            Difference("c", "real server 198.51.100.1:80", "absent", "weight 1"),
        ]
    )
    assert found == {"real server: absent -> weight 1": 1, "scheduler: rr -> wrr": 2}


def test_every_service_has_three_distinct_endpoints() -> None:
    """The endpoint pool wraps without repeating an address inside one Service."""
    assert all(len(set(endpoint_addresses(index))) == ENDPOINTS for index in range(2000))


def test_changes_touch_distinct_services_across_both_proxies() -> None:
    """The first proxy's changes and the second's never land on the same Service."""
    first = changes(services=1000, count=50)
    second = changes(services=1000, count=50, first=50)
    assert len({change.index for change in [*first, *second]}) == 100


def test_more_changes_than_services_are_refused() -> None:
    """A plan that would touch a Service twice is an error."""
    with pytest.raises(ValueError, match="need as many Services"):
        changes(services=10, count=6, first=5)


def test_expected_table_carries_the_changed_endpoint() -> None:
    """After a change its Service expects the new address in place of its third endpoint."""
    (change,) = changes(services=100, count=1)
    reals = expected_table(services=100, applied=[change])[virtual_key(change.index)]
    assert (change.address, 8080) in reals
    assert len(reals) == ENDPOINTS


def test_service_manifest_is_a_plain_cluster_ip() -> None:
    """A ClusterIP Service carries no nodePort (the API refuses one on a ClusterIP)."""
    spec = service_manifest(service_spec(10))["spec"]
    assert (spec["type"], spec["clusterIP"], spec["sessionAffinity"]) == ("ClusterIP", "10.0.1.10", "ClientIP")
    assert "nodePort" not in spec["ports"][0]


def test_every_twentieth_service_from_the_fifth_is_udp() -> None:
    """The mix has UDP Services so both proxies' UDP handling is compared."""
    assert [virtual_key(index)[0] for index in (4, 5, 25)] == ["TCP", "UDP", "UDP"]


def test_slice_manifest_lists_the_replaced_address() -> None:
    """A changed slice lists the new address as its third endpoint."""
    manifest = slice_manifest(
        7, api_version="discovery.k8s.io/v1beta1", changed_at="2026-12-05T00:00:00Z", replaced="203.0.113.9"
    )
    assert [endpoint["addresses"][0] for endpoint in manifest["endpoints"]][-1] == "203.0.113.9"


def test_proc_view_keys_a_model_table_as_proc_net_ip_vs() -> None:
    """A netlink table becomes (PROTO, address, port) → {(real, port)} as the expected table is keyed."""
    view = proc_view(Table.of([service("10.0.1.1", "198.51.100.13")]))
    assert view == {("TCP", "10.0.1.1", 80): {("198.51.100.13", 8080): None}}


def test_kube_proxy_runs_in_ipvs_mode_on_the_node_address() -> None:
    """kube-proxy is started in IPVS mode, named and bound as its node, leaving conntrack's size alone."""
    argv = kube_proxy_argv(
        binary=Path("/k/kube-proxy"), kubeconfig=Path("/k/c"), node="node2", node_ip="192.0.2.12",
        cluster_cidr="198.51.100.0/24",
    )  # fmt: skip
    assert {"--proxy-mode=ipvs", "--hostname-override=node2", "--bind-address=192.0.2.12"} <= set(argv)
    assert "--conntrack-max-per-core=0" in argv


def test_agent_runs_with_the_same_node_facts() -> None:
    """ipvsctl's agent gets the same node, address and pod network as kube-proxy."""
    argv = agent_argv(
        ipvsctl=Path("/v/ipvsctl"), kubeconfig=Path("/k/c"), node="node1", node_ip="192.0.2.11",
        cluster_cidr="198.51.100.0/24",
    )  # fmt: skip
    assert argv[:2] == ["/v/ipvsctl", "agent"]
    assert argv[argv.index("--node-name") + 1] == "node1"
    assert argv[argv.index("--cluster-cidr") + 1] == "198.51.100.0/24"


def test_in_netns_execs_the_command_itself() -> None:
    """`ip netns exec` wraps the command, so the PID read from /proc is the proxy's."""
    assert in_netns("n1", ["x", "-y"]) == ["ip", "netns", "exec", "n1", "x", "-y"]


def test_verdicts_compare_each_figure_to_its_target() -> None:
    """Ratios ipvsctl / kube-proxy are met when at or under the target; an unmeasured one is None."""
    results = {
        "ipvsctl": {"changes": {"latency": {"p99_ms": 10.0}, "cpu_seconds_per_change": 0.5}, "start_to_full_table": {}},
        "kube-proxy": {"changes": {"latency": {"p99_ms": 200.0}, "cpu_seconds_per_change": 1.0}},
    }
    found = verdicts(results)
    assert found["event_to_kernel_p99"] == {"ratio": 0.05, "target": 0.1, "met": True}
    assert found["cpu_per_change"]["met"] is False
    assert found["start_to_full_table"]["met"] is None
