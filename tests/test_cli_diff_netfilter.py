"""`ipvsctl diff` and the nftables half: compared offline from `nft -j list table inet ipvsctl`, or left out."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ipvsctl.cli import app
from ipvsctl.ipvsadm import write_save
from ipvsctl.kube.manifests import load_manifests
from ipvsctl.netfilter.elements import Element, desired_elements
from ipvsctl.translate import NodeContext, Policy, translate

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CLUSTER = str(EXAMPLES / "cluster")
NODE = NodeContext("worker1", ("192.0.2.11",))
LB = ("--load-balancer-ip-cidr", "192.0.2.96/28")
runner = CliRunner()


def diff(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["diff", "--manifests", CLUSTER, "--node", "worker1", *LB, *args])
    return result.exit_code, result.stdout, result.stderr


def example_tables(tmp_path: Path, *, drop: int = 0) -> tuple[str, str]:
    """worker1's saved IPVS table and an `nft -j` listing of its nftables table, ``drop`` elements short."""
    loaded = load_manifests([CLUSTER])
    policy = Policy(load_balancer_ip_cidrs=None)
    translation = translate(loaded.services, loaded.slices, node=NODE, policy=policy)
    table = translation.table
    roles = {key: translation.results[owner].roles[key] for key, owner in translation.owners.items()}
    filtered = {key.address for key in table.services if key.address not in NODE.addresses}
    elements = sorted(desired_elements(table.services, roles, filtered_addresses=filtered))
    save = tmp_path / "current.save"
    save.write_text(write_save(table))
    listing = tmp_path / "nft.json"
    listing.write_text(json.dumps(_listing(elements[drop:])))
    return str(save), str(listing)


def _listing(elements: list[Element]) -> dict[str, object]:
    sets: dict[str, list[object]] = {}
    for name, value in elements:
        sets.setdefault(name, []).append(value[0] if len(value) == 1 else {"concat": list(value)})
    entries: list[object] = [{"table": {"family": "inet", "name": "ipvsctl"}}]
    entries += [
        {"set": {"family": "inet", "table": "ipvsctl", "name": name, "elem": elem}} for name, elem in sets.items()
    ]
    return {"nftables": entries}


def test_a_node_in_sync_in_both_halves_exits_0(tmp_path: Path) -> None:
    """The saved table and the nftables listing hold what the manifests ask: exit 0, nothing printed for nft."""
    save, listing = example_tables(tmp_path)
    code, out, _ = diff("--current-save", save, "--current-nftables", listing)
    assert (code, "nftables" in out) == (0, False)


def test_a_missing_element_is_a_pending_change(tmp_path: Path) -> None:
    """One element missing from the listing: exit 1, an `+ element` line and its count."""
    save, listing = example_tables(tmp_path, drop=1)
    code, out, _ = diff("--current-save", save, "--current-nftables", listing)
    assert code == 1
    assert [line for line in out.splitlines() if line.startswith("  + element")]
    assert "nftables inet ipvsctl: 1 elements to add, 0 to delete" in out


def test_json_output_carries_the_element_changes(tmp_path: Path) -> None:
    """-o json: a netfilter object with the elements to add and delete."""
    save, listing = example_tables(tmp_path, drop=2)
    code, out, _ = diff("--current-save", save, "--current-nftables", listing, "-o", "json")
    document = json.loads(out)
    assert (code, len(document["netfilter"]["add"]), document["netfilter"]["delete"]) == (1, 2, [])


def test_an_offline_diff_without_a_listing_says_nftables_was_not_compared(tmp_path: Path) -> None:
    """No --current-nftables: the IPVS half is compared, and a notice says the nftables half was not."""
    save, _ = example_tables(tmp_path)
    code, _, err = diff("--current-save", save)
    assert code == 0
    assert "nftables: not compared" in err


def test_no_netfilter_leaves_the_half_out_silently(tmp_path: Path) -> None:
    """--no-netfilter (a CNI does it): nothing about nftables, not even a notice."""
    save, _ = example_tables(tmp_path)
    code, _, err = diff("--current-save", save, "--no-netfilter")
    assert (code, "nftables" in err) == (0, False)


def test_a_listing_needs_a_saved_table(tmp_path: Path) -> None:
    """--current-nftables against the live kernel makes no sense: a usage error naming the flag."""
    _, listing = example_tables(tmp_path)
    code, _, err = diff("--current-nftables", listing)
    assert code == 2
    assert "--current-nftables" in err
