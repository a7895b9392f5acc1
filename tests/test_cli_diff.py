"""`ipvsctl diff` offline: manifests + a saved table → the plan, with CI-friendly exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ipvsctl.cli import app
from ipvsctl.ipvsadm import write_save
from ipvsctl.kube.manifests import load_manifests
from ipvsctl.translate import NodeContext, Policy, translate

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CLUSTER = str(EXAMPLES / "cluster")
EMPTY = str(EXAMPLES / "empty.save")
runner = CliRunner()


def diff(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """Run `ipvsctl diff` and return (exit code, stdout, stderr)."""
    result = runner.invoke(app, ["diff", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def example_save(tmp_path: Path, extra: str = "") -> str:
    """A save file holding exactly worker1's desired table, plus ``extra`` lines."""
    loaded = load_manifests([CLUSTER])
    table = translate(
        loaded.services, loaded.slices, node=NodeContext("worker1", ("192.0.2.11",)), policy=Policy()
    ).table
    path = tmp_path / "current.save"
    path.write_text(write_save(table) + extra)
    return str(path)


def test_example_plan_from_empty_table() -> None:
    """The embedded example for worker1 from an empty table, as `make run` shows it: 26 adds, exit 1."""
    code, out, _ = diff(
        "--manifests", CLUSTER, "--node", "worker1", "--current-save", EMPTY, "--load-balancer-ip-cidr", "192.0.2.96/28"
    )
    assert code == 1
    assert "node worker1: 26 changes pending (26 add)" in out


def test_example_ingress_ips_need_the_allow_list() -> None:
    """Without --load-balancer-ip-cidr the example's ingress IPs are noticed, not programmed."""
    code, out, err = diff("--manifests", CLUSTER, "--node", "worker1", "--current-save", EMPTY)
    assert code == 1
    assert "192.0.2.100" not in out
    assert "status.loadBalancer.ingress[0].ip: 192.0.2.100 is outside --load-balancer-ip-cidr" in err


def test_text_groups_changes_under_their_service() -> None:
    """Text output groups changes under the owning Service's namespace/name."""
    _, out, _ = diff("--manifests", CLUSTER, "--node", "worker1", "--current-save", EMPTY)
    lines = out.splitlines()
    start = lines.index("Service default/sample-nodeport-local")
    assert lines[start + 1].strip().startswith("+ add    service tcp/192.0.2.11:30085")


def test_etp_local_node_port_only_local_pod() -> None:
    """worker1's NodePort 30085 (eTP Local) reaches only the pod on worker1."""
    _, out, _ = diff("--manifests", CLUSTER, "--node", "worker1", "--current-save", EMPTY)
    reals = [line for line in out.splitlines() if "real    tcp/192.0.2.11:30085" in line]
    assert len(reals) == 1
    assert "198.51.100.10:80" in reals[0]


def test_in_sync_exits_zero(tmp_path: Path) -> None:
    """A current table equal to the desired one: exit 0 and 'in sync'."""
    code, out, _ = diff("--manifests", CLUSTER, "--node", "worker1", "--current-save", example_save(tmp_path))
    assert code == 0
    assert "node worker1: in sync" in out


def test_foreign_service_survives(tmp_path: Path) -> None:
    """A keepalived-style service outside the owned set is not touched."""
    save = example_save(tmp_path, "-A -t 192.0.2.200:443 -s wlc\n-a -t 192.0.2.200:443 -r 198.51.100.77:443 -g -w 1\n")
    code, _, _ = diff("--manifests", CLUSTER, "--node", "worker1", "--current-save", save)
    assert code == 0


def test_owned_cidr_makes_stale_service_deleted(tmp_path: Path) -> None:
    """A stale VIP inside --owned-cidr is deleted."""
    save = example_save(tmp_path, "-A -t 203.0.113.99:80 -s rr\n")
    code, out, _ = diff(
        "--manifests", CLUSTER, "--node", "worker1", "--current-save", save, "--owned-cidr", "203.0.113.0/24"
    )
    assert code == 1
    assert "- delete service tcp/203.0.113.99:80" in out


def test_stale_node_port_deleted(tmp_path: Path) -> None:
    """A node IP at a node-port-range port that no Service wants is deleted."""
    save = example_save(tmp_path, "-A -t 192.0.2.11:31999 -s rr\n")
    code, out, _ = diff("--manifests", CLUSTER, "--node", "worker1", "--current-save", save)
    assert code == 1
    assert "delete service tcp/192.0.2.11:31999" in out


def test_removed_tcp_real_server_drains(tmp_path: Path) -> None:
    """An extra TCP real server in the saved table is drained to weight 0."""
    save = example_save(tmp_path, "-a -t 203.0.113.11:80 -r 198.51.100.30:80 -m -w 1\n")
    code, out, _ = diff("--manifests", CLUSTER, "--node", "worker1", "--current-save", save)
    assert code == 1
    assert "~ drain  real    tcp/203.0.113.11:80 -> 198.51.100.30:80" in out


def test_json_output_schema() -> None:
    """JSON output carries the schema name, inSync, one change per operation and a summary."""
    code, out, _ = diff("--manifests", CLUSTER, "--node", "worker1", "--current-save", EMPTY, "-o", "json",
                        "--load-balancer-ip-cidr", "192.0.2.96/28")  # fmt: skip
    document = json.loads(out)
    assert code == 1
    assert document["schema"] == "ipvsctl.plan/v1"
    assert document["inSync"] is False
    assert document["summary"] == {"add-real-server": 18, "add-service": 8}
    first = document["changes"][0]
    assert set(first) == {"op", "service", "virtualService", "realServer", "previous", "pod"}


def test_json_names_service_and_pod() -> None:
    """Each JSON change names its Service, and real-server changes their Pod."""
    _, out, _ = diff("--manifests", CLUSTER, "--node", "worker1", "--current-save", EMPTY, "-o", "json")
    change = next(c for c in json.loads(out)["changes"] if c["op"] == "add-real-server")
    assert change["service"]["namespace"] == "default"
    assert change["pod"]["name"].startswith("sample-deployment-")


def test_ipvsadm_output_is_restore_commands() -> None:
    """-o ipvsadm prints only -A/-a restore lines."""
    _, out, _ = diff("--manifests", CLUSTER, "--node", "worker1", "--current-save", EMPTY, "-o", "ipvsadm")
    assert {line.split()[0] for line in out.splitlines()} == {"-A", "-a"}
    assert "-A -t 203.0.113.10:8080 -s rr -p 10800 -M 255.255.255.255" in out


def test_current_save_from_stdin(tmp_path: Path) -> None:
    """--current-save - reads the saved table from stdin."""
    text = Path(example_save(tmp_path)).read_text()
    code, _, _ = diff("--manifests", CLUSTER, "--node", "worker1", "--current-save", "-", stdin=text)
    assert code == 0


def test_node_ip_flag_overrides_node_object() -> None:
    """--node-ip replaces the Node's own addresses for NodePort VIPs."""
    _, out, _ = diff("--manifests", CLUSTER, "--node", "worker1", "--node-ip", "192.0.2.99", "--current-save", EMPTY)
    assert "tcp/192.0.2.99:30085" in out
    assert "192.0.2.11" not in out


def test_scheduler_flag_sets_default() -> None:
    """--scheduler changes the default scheduler of planned services."""
    _, out, _ = diff("--manifests", CLUSTER, "--node", "worker1", "--current-save", EMPTY, "--scheduler", "wlc")
    assert "scheduler wlc" in out


def test_external_ips_ignored_by_default(tmp_path: Path) -> None:
    """Without --external-ip-cidr an externalIP is not programmed and a notice says so."""
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SERVICE_WITH_EXTERNAL_IP)
    code, out, err = diff(
        "--manifests", str(manifest), "--node", "n1", "--node-ip", "192.0.2.11", "--current-save", EMPTY
    )
    assert code == 1
    assert "192.0.2.60" not in out
    assert "outside --external-ip-cidr" in err


def test_external_ips_honoured_inside_allow_list(tmp_path: Path) -> None:
    """An externalIP inside --external-ip-cidr becomes a VIP."""
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(SERVICE_WITH_EXTERNAL_IP)
    _, out, _ = diff(
        "--manifests", str(manifest), "--node", "n1", "--node-ip", "192.0.2.11",
        "--current-save", EMPTY, "--external-ip-cidr", "192.0.2.0/26",
    )  # fmt: skip
    assert "tcp/192.0.2.60:80" in out


SERVICE_WITH_EXTERNAL_IP = """
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: default}
spec:
  clusterIP: 203.0.113.20
  externalIPs: [192.0.2.60]
  ports: [{name: http, port: 80}]
"""

BAD_SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: broken, namespace: default}
spec:
  clusterIP: 203.0.113.30
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 90000}}
  ports: [{name: http, port: 80}]
"""


def test_rejected_service_reported_others_planned(tmp_path: Path) -> None:
    """A rejected Service: exit 2, an error naming it and the field, and the rest of the plan still printed."""
    (tmp_path / "bad.yaml").write_text(BAD_SERVICE)
    code, out, err = diff("--manifests", CLUSTER, "--manifests", str(tmp_path / "bad.yaml"), "--node", "worker1",
                          "--current-save", EMPTY)  # fmt: skip
    assert code == 2
    assert "Service default/broken: spec.sessionAffinityConfig.clientIP.timeoutSeconds: 90000 is outside" in err
    assert "20 changes pending" in out


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        pytest.param(["--current-save", "/nonexistent/x.save"], "--current-save: cannot read", id="unreadable-save"),
        pytest.param(["--node-ip", "192.0.2.300"], "--node-ip: '192.0.2.300' is not an IP address", id="bad-node-ip"),
        pytest.param(["--owned-cidr", "10.0.0.0/33"], "--owned-cidr: '10.0.0.0/33' is not a CIDR", id="bad-owned"),
        pytest.param(["--external-ip-cidr", "nope"], "--external-ip-cidr: 'nope' is not a CIDR", id="bad-ext-cidr"),
        pytest.param(["--scheduler", "fastest"], "--scheduler: unknown scheduler 'fastest'", id="bad-scheduler"),
        pytest.param(["--persistence-netmask-v4", "40"], "--persistence-netmask-v4: 40 is outside 1..32", id="mask4"),
        pytest.param(["--persistence-netmask-v6", "0"], "--persistence-netmask-v6: 0 is outside 1..128", id="mask6"),
        pytest.param(["--node-port-range", "32767-30000"], "--node-port-range: '32767-30000' must satisfy", id="range"),
        pytest.param(["--node-port-range", "30000"], "--node-port-range: '30000' is not a port range", id="range-fmt"),
    ],
)
def test_bad_flags_exit_two_naming_the_flag(args: list[str], phrase: str) -> None:
    """A bad flag value exits 2 with an error naming the flag; nothing is printed to stdout."""
    base = ["--manifests", CLUSTER, "--node", "worker1"]
    if "--current-save" not in args:
        base += ["--current-save", EMPTY]
    code, out, err = diff(*base, *args)
    assert code == 2
    assert phrase in err
    assert out == ""


@pytest.mark.skipif(Path("/proc/net/ip_vs").exists(), reason="this kernel has IPVS: diff would read it")
def test_live_diff_without_ipvs_says_so() -> None:
    """Without --current-save on a kernel without IPVS, diff exits 2 saying the kernel has no IPVS."""
    code, out, err = diff("--manifests", CLUSTER, "--node", "worker1")
    assert code == 2
    assert "no IPVS in this kernel" in err
    assert out == ""


def test_unknown_node_exits_two() -> None:
    """A node that is neither in the manifests nor given IPs is an error naming --node."""
    code, _, err = diff("--manifests", CLUSTER, "--node", "worker9", "--current-save", EMPTY)
    assert code == 2
    assert "--node: node 'worker9' is not in the manifests" in err


def test_corrupt_save_exits_two_with_line(tmp_path: Path) -> None:
    """A corrupt save file exits 2 naming the file and line."""
    save = tmp_path / "bad.save"
    save.write_text("-A -t 203.0.113.10:80 -s rr\n-a -t 203.0.113.10:80 -r 198.51.100.10 -m -w x\n")
    code, _, err = diff("--manifests", CLUSTER, "--node", "worker1", "--current-save", str(save))
    assert code == 2
    assert f"{save}:2" in err


def test_missing_manifest_path_exits_two() -> None:
    """A manifests path that does not exist exits 2 naming it."""
    code, _, err = diff("--manifests", "/nonexistent/dir", "--node", "worker1", "--current-save", EMPTY)
    assert code == 2
    assert "/nonexistent/dir" in err


def test_unknown_output_format_exits_two() -> None:
    """An unknown -o value is a usage error (exit 2)."""
    code, _, _ = diff("--manifests", CLUSTER, "--node", "worker1", "--current-save", EMPTY, "-o", "yaml")
    assert code == 2


def test_version_flag() -> None:
    """--version prints the version."""
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("ipvsctl ")


def test_nodeport_addresses_limit_node_ports_to_their_cidrs() -> None:
    """--nodeport-addresses leaves out NodePorts on node addresses outside its CIDRs."""
    args = ("--manifests", CLUSTER, "--node", "worker1", "--node-ip", "192.0.2.11", "--node-ip", "198.51.100.200")
    _, out, _ = diff(*args, "--current-save", EMPTY, "--nodeport-addresses", "198.51.100.0/24")
    assert "tcp/198.51.100.200:30085" in out
    assert "tcp/192.0.2.11:30085" not in out


def test_nodeport_addresses_primary_keeps_the_first_address() -> None:
    """--nodeport-addresses primary programs NodePorts on the node's first address of the family only."""
    args = ("--manifests", CLUSTER, "--node", "worker1", "--node-ip", "192.0.2.11", "--node-ip", "198.51.100.200")
    _, out, _ = diff(*args, "--current-save", EMPTY, "--nodeport-addresses", "primary")
    assert "tcp/192.0.2.11:30085" in out
    assert "198.51.100.200" not in out


def test_nodeport_addresses_rejects_a_bad_entry_naming_the_flag() -> None:
    """A value that is neither a CIDR nor `primary` is a usage error (exit 2) naming --nodeport-addresses."""
    code, out, err = diff(
        "--manifests", CLUSTER, "--node", "worker1", "--current-save", EMPTY, "--nodeport-addresses", "primary,10.0.0/8"
    )
    assert code == 2
    assert "--nodeport-addresses" in err
    assert "'10.0.0/8'" in err
    assert out == ""


ZONED = """\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: worker1, labels: {topology.kubernetes.io/zone: zone-a}}
  status: {addresses: [{type: InternalIP, address: 192.0.2.11}]}
- apiVersion: v1
  kind: Service
  metadata: {name: web, namespace: default}
  spec:
    type: ClusterIP
    clusterIP: 203.0.113.40
    trafficDistribution: PreferClose
    ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080}]
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
  addressType: IPv4
  ports: [{name: http, port: 8080, protocol: TCP}]
  endpoints:
  - addresses: [198.51.100.21]
    conditions: {ready: true}
    zone: zone-a
    hints: {forZones: [{name: zone-a}]}
  - addresses: [198.51.100.22]
    conditions: {ready: true}
    zone: zone-b
    hints: {forZones: [{name: zone-b}]}
"""


@pytest.mark.parametrize("node_ip", [(), ("--node-ip", "192.0.2.11")], ids=["node-object", "node-ip-flag"])
def test_topology_hints_follow_the_node_objects_zone(tmp_path: Path, node_ip: tuple[str, ...]) -> None:
    """The Node's zone label selects the hinted endpoints offline, with or without --node-ip."""
    manifests = tmp_path / "zoned.yaml"
    manifests.write_text(ZONED)
    _, out, _ = diff("--manifests", str(manifests), "--node", "worker1", *node_ip, "--current-save", EMPTY)
    assert "198.51.100.21:8080" in out
    assert "198.51.100.22" not in out
