"""The harness cuts its kube-apiserver command line to what a binary of any version accepts (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.apiserver.harness import (
    APISERVER_ENV,
    ETCD_ENV,
    HarnessError,
    UnavailableError,
    accepted_flags,
    accepted_gates,
    etcd_lists,
    find_binaries,
    listed_feature_gates,
    parse_version,
    pick_slice_version,
)

HELP_1_20 = """\
      --feature-gates mapStringBool   A set of key=value pairs that describe feature gates for alpha/experimental
                                      features. Options are:
                                      APIListChunking=true|false (BETA - default=true)
                                      EndpointSliceNodeName=true|false (ALPHA - default=false)
                                      IPv6DualStack=true|false (ALPHA - default=false)
      --secure-port int               The port on which to serve HTTPS (default 6443)
"""


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("Kubernetes v1.20.2\n", (1, 20)),
        ("Kubernetes v1.31.0-rc.1", (1, 31)),
        ("Kubernetes v1.34.2+k3s1", (1, 34)),
    ],
    ids=["release", "pre-release", "distribution-suffix"],
)
def test_parse_version(text: str, version: tuple[int, int]) -> None:
    """`kube-apiserver --version` output gives (major, minor)."""
    assert parse_version(text) == version


def test_parse_version_without_a_version_is_unavailable() -> None:
    """Output without a version is a clear UnavailableError quoting it."""
    with pytest.raises(UnavailableError, match="printed no version: 'garbage'"):
        parse_version("garbage")


@pytest.mark.parametrize(
    ("version", "kept"),
    [((1, 20), True), ((1, 23), True), ((1, 24), False), ((1, 34), False), ((2, 0), False)],
    ids=["1.20", "1.23", "1.24", "1.34", "2.0"],
)
def test_insecure_port_is_passed_only_to_servers_that_accept_it(version: tuple[int, int], kept: bool) -> None:
    """--insecure-port (removed in 1.24) is dropped from 1.24 on; the other flags always stay."""
    argv = ["--secure-port=6443", "--insecure-port=0", "--authorization-mode=RBAC"]
    expected = argv if kept else ["--secure-port=6443", "--authorization-mode=RBAC"]
    assert accepted_flags(argv, version=version) == expected


def test_listed_feature_gates_reads_the_help_text() -> None:
    """The gates --help lists under --feature-gates are found, nothing else."""
    assert listed_feature_gates(HELP_1_20) == {"APIListChunking", "EndpointSliceNodeName", "IPv6DualStack"}


def test_gates_the_binary_does_not_list_are_dropped() -> None:
    """A gate --help does not list (GA and on by default, or removed) is not passed; listed ones keep their value."""
    listed = listed_feature_gates(HELP_1_20)
    gates = "EndpointSliceNodeName=true,EndpointSliceTerminatingCondition=true,IPv6DualStack=true"
    assert accepted_gates(gates, listed=listed) == "EndpointSliceNodeName=true,IPv6DualStack=true"


def test_no_gate_listed_gives_no_gates() -> None:
    """A binary listing none of the gates gets an empty --feature-gates value (the flag is then left out)."""
    assert accepted_gates("IPv6DualStack=true", listed=frozenset()) == ""


@pytest.mark.parametrize(
    ("served", "version"),
    [(["v1", "v1beta1"], "v1"), (["v1beta1"], "v1beta1"), (["v1"], "v1"), (["v1beta1", "v1"], "v1")],
    ids=["both", "v1beta1-only", "v1-only", "order-ignored"],
)
def test_slices_are_written_in_v1_when_served_else_v1beta1(served: list[str], version: str) -> None:
    """Discovery's versions decide the EndpointSlice version tests write."""
    assert pick_slice_version(served) == version


def test_no_known_slice_version_is_an_error() -> None:
    """A server serving neither v1 nor v1beta1 is a HarnessError naming what it serves."""
    with pytest.raises(HarnessError, match="v2alpha1"):
        pick_slice_version(["v2alpha1"])


def tool(directory: Path, name: str) -> Path:
    """An executable file (never run) standing in for a binary."""
    path = directory / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_binaries_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """IPVSCTL_KUBE_APISERVER and IPVSCTL_ETCD (etcdctl beside it) are used as given, nothing is built."""
    apiserver, etcd, etcdctl = (tool(tmp_path, name) for name in ("kube-apiserver", "etcd", "etcdctl"))
    monkeypatch.setenv(APISERVER_ENV, str(apiserver))
    monkeypatch.setenv(ETCD_ENV, str(etcd))
    found = find_binaries()
    assert (found.apiserver, found.etcd, found.etcdctl) == (apiserver, etcd, etcdctl)


def test_a_given_binary_that_is_not_executable_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A path in IPVSCTL_KUBE_APISERVER that is no executable file is an UnavailableError naming the variable."""
    monkeypatch.setenv(ETCD_ENV, str(tool(tmp_path, "etcd")))
    tool(tmp_path, "etcdctl")
    monkeypatch.setenv(APISERVER_ENV, str(tmp_path / "missing"))
    with pytest.raises(UnavailableError, match=rf"\${APISERVER_ENV}=.*missing is not an executable file"):
        find_binaries()


METRICS = """\
# TYPE etcd_request_duration_seconds histogram
etcd_request_duration_seconds_bucket{operation="list",type="*[]core.Service",le="0.005"} 5
etcd_request_duration_seconds_count{operation="list",type="*[]core.Service"} 6
etcd_request_duration_seconds_count{operation="list",type="*[]core.ServiceAccount"} 1
etcd_request_duration_seconds_count{operation="get",type="*core.Service"} 9
etcd_request_duration_seconds_count{operation="list",type="*[]discovery.EndpointSlice"} 2
etcd_request_duration_seconds_count{operation="listWithCount",type="/registry/services/specs/"} 1
"""


@pytest.mark.parametrize(("kind", "lists"), [("Service", 6), ("EndpointSlice", 2), ("Node", 0)])
def test_etcd_lists_counts_only_list_requests_of_that_kind(kind: str, lists: int) -> None:
    """From /metrics, only operation="list" series of exactly that kind count (not ServiceAccount, get, buckets)."""
    assert etcd_lists(METRICS, kind=kind) == lists
