"""`ipvsctl explain` offline: manifests + a saved table (+ a saved connection table and nftables listing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ipvsctl.cli import app
from ipvsctl.ipvsadm import write_save
from ipvsctl.kube.manifests import load_manifests
from ipvsctl.netfilter.elements import Element, desired_elements
from ipvsctl.translate import NodeContext, Policy, translate
from tests.test_cli_imports import AGENT_LIBRARIES, loaded_by

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CLUSTER = str(EXAMPLES / "cluster")
NODE = NodeContext("worker1", ("192.0.2.11",))
STICKY = "203.0.113.10:8080"  # sample-session-affinity: ClientIP, 10800 s, pods on worker1 and worker2
LOCAL_NODE_PORT = "192.0.2.11:30085"  # sample-nodeport-local: externalTrafficPolicy Local
LB = ("--load-balancer-ip-cidr", "192.0.2.96/28")  # the example's ingress IP 192.0.2.100 is then a VIP
CONN_HEADER = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
# 192.0.2.50 pinned to 198.51.100.20:80 through 203.0.113.10:8080, 295 s left, and one connection of it.
PINNED = (
    CONN_HEADER
    + "TCP C0000232 0000 CB00710A 1F90 C6336414 0050 NONE            295\n"
    + "TCP C0000232 A1B2 CB00710A 1F90 C6336414 0050 ESTABLISHED     880\n"
)
runner = CliRunner()


@pytest.fixture
def save(tmp_path: Path) -> str:
    """worker1's desired table (every ingress IP honoured), saved as `ipvsadm -Sn` writes it."""
    loaded = load_manifests([CLUSTER])
    table = translate(loaded.services, loaded.slices, node=NODE, policy=Policy()).table
    path = tmp_path / "current.save"
    path.write_text(write_save(table))
    return str(path)


@pytest.fixture
def conn_file(tmp_path: Path) -> str:
    """A saved /proc/net/ip_vs_conn with a template pinning 192.0.2.50."""
    path = tmp_path / "ip_vs_conn"
    path.write_text(PINNED)
    return str(path)


def explain(*args: str) -> tuple[int, str, str]:
    """Run `ipvsctl explain` for worker1 of the example cluster: (exit code, stdout, stderr)."""
    result = runner.invoke(app, ["explain", "--manifests", CLUSTER, "--node", "worker1", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_pinned_client_exits_0_and_names_its_pod_and_time_left(save: str, conn_file: str) -> None:
    """The template's real server, Pod and seconds left are printed; exit 0 (a virtual service matches)."""
    code, out, _ = explain("--client", "192.0.2.50", "--to", STICKY, "--current-save", save, "--conn-file", conn_file)

    assert code == 0
    assert "Service default/sample-session-affinity port http tcp/8080" in out
    assert "pinned to 198.51.100.20:80 [pod default/sample-deployment-6c8d9f7b5d-7hv4m]" in out
    assert "295s of 10800s left" in out


def test_json_output_is_the_documented_schema(save: str, conn_file: str) -> None:
    """-o json: ipvsctl.explain/v1 with the Service, the pin and the client's connection."""
    code, out, _ = explain(
        "--client", "192.0.2.50", "--to", STICKY, "--current-save", save, "--conn-file", conn_file, "-o", "json"
    )
    document = json.loads(out)

    assert code == 0
    assert document["schema"] == "ipvsctl.explain/v1"
    assert (document["service"]["name"], document["service"]["vipSource"]) == (
        "sample-session-affinity",
        "spec.clusterIPs[0]",
    )
    assert document["decision"]["pin"]["expiresSeconds"] == 295
    assert [each["clientPort"] for each in document["connections"]] == [0xA1B2]


def test_without_a_connection_table_offline_the_pin_is_unknown(save: str) -> None:
    """Offline without --conn-file nothing is read from /proc: the pin is unknown and said so."""
    code, out, _ = explain("--client", "192.0.2.50", "--to", STICKY, "--current-save", save, "-o", "json")

    assert code == 0
    assert json.loads(out)["decision"]["by"] == "unknown"
    assert json.loads(out)["connections"] is None


def test_local_policy_lists_the_other_nodes_endpoints_as_left_out(save: str) -> None:
    """The eTP Local NodePort on worker1 leaves worker2's two pods out, each saying why."""
    _, out, _ = explain("--client", "192.0.2.50", "--to", LOCAL_NODE_PORT, "--current-save", save, "-o", "json")
    left = json.loads(out)["leftOut"]

    assert [(each["address"], each["node"], each["reason"]) for each in left] == [
        ("198.51.100.20", "worker2", "other-node"),
        ("198.51.100.21", "worker2", "other-node"),
    ]


def test_no_matching_virtual_service_exits_1(save: str) -> None:
    """A VIP:port nobody programs: exit 1 and the text says no virtual service matches."""
    code, out, _ = explain("--client", "192.0.2.50", "--to", "203.0.113.99:80", "--current-save", save)

    assert code == 1
    assert "no virtual service matches" in out


def test_another_protocol_exits_1(save: str) -> None:
    """--proto udp to a TCP-only VIP:port matches nothing: exit 1."""
    code, _, _ = explain("--client", "192.0.2.50", "--to", STICKY, "--proto", "udp", "--current-save", save)

    assert code == 1


def test_a_foreign_entry_in_the_saved_table_is_said_foreign(tmp_path: Path) -> None:
    """A saved entry at an address the agent does not hold is foreign: not ipvsctl's."""
    path = tmp_path / "foreign.save"
    path.write_text("-A -t 192.0.2.250:443 -s wlc\n-a -t 192.0.2.250:443 -r 198.51.100.99:443 -m -w 1\n")

    code, out, _ = explain("--client", "192.0.2.50", "--to", "192.0.2.250:443", "--current-save", str(path))

    assert code == 0
    assert "[foreign: not ipvsctl's, never touched by it]" in out


def _listing(elements: list[Element]) -> str:
    sets: dict[str, list[object]] = {}
    for name, value in elements:
        sets.setdefault(name, []).append(value[0] if len(value) == 1 else {"concat": list(value)})
    entries: list[object] = [{"table": {"family": "inet", "name": "ipvsctl"}}]
    entries += [{"set": {"family": "inet", "table": "ipvsctl", "name": n, "elem": e}} for n, e in sets.items()]
    return json.dumps({"nftables": entries})


def test_a_saved_nftables_listing_is_what_the_verdict_reads(save: str, tmp_path: Path) -> None:
    """With --current-nftables the verdict comes from the file: an empty table filters nothing."""
    listing = tmp_path / "nft.json"
    listing.write_text(_listing([]))

    code, out, _ = explain(
        "--client",
        "192.0.2.50",
        "--to",
        STICKY,
        "--current-save",
        save,
        "--current-nftables",
        str(listing),
        "-o",
        "json",
    )
    verdict = json.loads(out)["netfilter"]

    assert code == 0
    assert (verdict["source"], verdict["vipFilter"], verdict["portOpen"]) == ("file", False, False)


def test_offline_without_a_listing_the_verdict_is_what_the_agent_writes(save: str) -> None:
    """Without --current-nftables the verdict is the desired table's: the VIP filter lets the port through."""
    _, out, _ = explain("--client", "192.0.2.50", "--to", STICKY, "--current-save", save, "-o", "json")
    verdict = json.loads(out)["netfilter"]

    assert (verdict["source"], verdict["vipFilter"], verdict["portOpen"]) == ("desired", True, True)


def test_a_listing_with_desired_elements_gives_the_same_verdict_as_desired(save: str, tmp_path: Path) -> None:
    """A listing that holds the desired elements reads as the desired table does."""
    loaded = load_manifests([CLUSTER])
    translation = translate(loaded.services, loaded.slices, node=NODE, policy=Policy())
    roles = {key: translation.results[owner].roles[key] for key, owner in translation.owners.items()}
    filtered = {key.address for key in translation.table.services if key.address not in NODE.addresses}
    listing = tmp_path / "nft.json"
    listing.write_text(
        _listing(sorted(desired_elements(translation.table.services, roles, filtered_addresses=filtered)))
    )
    base = ("--client", "192.0.2.50", "--to", "192.0.2.100:8080", "--current-save", save, "-o", "json", *LB)

    _, from_file, _ = explain(*base, "--current-nftables", str(listing))
    _, desired, _ = explain(*base)
    file_verdict, desired_verdict = json.loads(from_file)["netfilter"], json.loads(desired)["netfilter"]

    assert file_verdict["masquerade"] is True
    assert {**file_verdict, "source": "", "tablePresent": None} == {**desired_verdict, "source": ""}


def test_no_netfilter_leaves_the_verdict_out(save: str) -> None:
    """--no-netfilter: the JSON's netfilter is null."""
    _, out, _ = explain(
        "--client", "192.0.2.50", "--to", STICKY, "--current-save", save, "--no-netfilter", "-o", "json"
    )

    assert json.loads(out)["netfilter"] is None


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        pytest.param(("--client", "192.0.2.50", "--to", "203.0.113.10"), "--to", id="to-without-port"),
        pytest.param(("--client", "192.0.2.50", "--to", "203.0.113.10:http"), "--to", id="to-port-not-a-number"),
        pytest.param(("--client", "192.0.2.50", "--to", "2001:db8::1:80"), "--to", id="to-ipv6-without-brackets"),
        pytest.param(("--client", "192.0.2.500", "--to", STICKY), "--client", id="client-not-an-ip"),
        pytest.param(("--client", "2001:db8::50", "--to", STICKY), "--client", id="client-of-another-family"),
        pytest.param(
            ("--client", "192.0.2.50", "--to", STICKY, "--bound-address", "203.0.113.10"),
            "--bound-address",
            id="bound-address-live",
        ),
        pytest.param(
            ("--client", "192.0.2.50", "--to", STICKY, "--current-nftables", "x.json"),
            "--current-nftables",
            id="nftables-listing-live",
        ),
    ],
)
def test_a_bad_flag_exits_2_naming_it(args: tuple[str, ...], flag: str) -> None:
    """A bad flag value exits 2 with one error line naming the flag, before anything is read."""
    code, out, err = explain(*args)

    assert code == 2
    assert err.startswith(f"error: {flag}: ")
    assert out == ""


def test_an_unreadable_connection_table_exits_2_naming_the_flag(save: str, tmp_path: Path) -> None:
    """A --conn-file that is not there: exit 2 naming --conn-file."""
    code, _, err = explain(
        "--client", "192.0.2.50", "--to", STICKY, "--current-save", save, "--conn-file", str(tmp_path / "absent")
    )

    assert code == 2
    assert err.startswith("error: --conn-file: cannot read")


def test_a_malformed_connection_table_exits_2_naming_the_line(save: str, tmp_path: Path) -> None:
    """A connection table line that does not parse: exit 2 naming the file and line."""
    path = tmp_path / "conn"
    path.write_text(CONN_HEADER + "TCP nothex 0000 CB00710A 1F90 C6336414 0050 NONE 295\n")

    code, _, err = explain("--client", "192.0.2.50", "--to", STICKY, "--current-save", save, "--conn-file", str(path))

    assert code == 2
    assert f"{path}:2: FromIP" in err


def test_the_manifests_are_required() -> None:
    """Without --manifests or --kubeconfig: exit 2 naming --manifests."""
    result = runner.invoke(app, ["explain", "--node", "worker1", "--client", "192.0.2.50", "--to", STICKY])

    assert result.exit_code == 2
    assert result.stderr.startswith("error: --manifests: ")


def test_a_connection_table_that_is_not_utf8_is_one_error_line(save: str, tmp_path: Path) -> None:
    """--conn-file with bytes that are not UTF-8: one error line naming the file and line, exit 2."""
    path = tmp_path / "conn"
    path.write_bytes(CONN_HEADER.encode() + b"\xff\n")

    code, _, err = explain("--client", "192.0.2.50", "--to", STICKY, "--current-save", save, "--conn-file", str(path))

    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith(f"error: {path}:2: not UTF-8 text (byte 0xff at column 1)")


def test_an_offline_explain_does_not_load_the_agents_libraries(save: str, conn_file: str) -> None:
    """Offline, explain loads none of structlog, kubernetes-asyncio, aiohttp, prometheus-client, pyroute2, rich."""
    args = ["--client", "192.0.2.50", "--to", STICKY, "--current-save", save, "--conn-file", conn_file]

    loaded = loaded_by("explain", "-f", CLUSTER, "--node", "worker1", *args)

    assert loaded & set(AGENT_LIBRARIES) == set()
