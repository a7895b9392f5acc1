"""`ipvsctl show` with the nftables half: what the table does to each owned VIP, and whether it is there."""

from __future__ import annotations

from ipvsctl.backend.base import KernelState
from ipvsctl.backend.nft.base import NetfilterState
from ipvsctl.model import Protocol, RealServer, ServiceKey, Table, VirtualService
from ipvsctl.show import show_json, show_text

VIP = ServiceKey(Protocol.TCP, "203.0.113.20", 443)
NODE_PORT = ServiceKey(Protocol.TCP, "192.0.2.11", 30443)
STATE = KernelState(
    Table.of([VirtualService(VIP, reals=(RealServer("198.51.100.10", 8443),)), VirtualService(NODE_PORT)])
)
TABLE = NetfilterState(
    defined=False,
    present=True,
    elements=frozenset(
        {
            ("vips4", ("203.0.113.20",)),
            ("services4", ("203.0.113.20", "tcp", 443)),
            ("ranged4", ("203.0.113.20", "tcp", 443)),
            ("allowed4", ("203.0.113.20", "tcp", 443, "192.0.2.0/24")),
        }
    ),
)


def owned(_key: ServiceKey) -> bool:
    return True


def test_text_says_what_nftables_does_to_each_vip() -> None:
    """Each VIP gets an nftables line: the filtered, ranged VIP its treatment, the Local NodePort 'nothing'."""
    lines = show_text(STATE, owned=owned, owners={}, pods={}, netfilter=TABLE).splitlines()
    assert "  nftables: filter: open; sources 192.0.2.0/24" in lines
    assert any(line.startswith("  nftables: nothing") for line in lines)
    assert lines[-1] == "nftables inet ipvsctl: present, 4 elements"


def test_json_carries_each_vips_treatment_and_the_table() -> None:
    """-o json: a netfilter object per virtual service, and the table's presence and size."""
    document = show_json(STATE, owned=owned, owners={}, pods={}, netfilter=TABLE)
    by_port = {entry["port"]: entry["netfilter"] for entry in document["virtualServices"]}  # type: ignore[attr-defined]
    assert by_port[443] == {"filtered": True, "masquerade": False, "clusterMasquerade": False,
                            "sourceRanges": ["192.0.2.0/24"]}  # fmt: skip
    assert document["netfilter"] == {"table": "inet ipvsctl", "present": True, "elements": 4}


def test_without_the_half_nothing_about_nftables_is_said() -> None:
    """--no-netfilter: no nftables lines, and null in JSON."""
    assert "nftables" not in show_text(STATE, owned=owned, owners={}, pods={})
    assert show_json(STATE, owned=owned, owners={}, pods={})["netfilter"] is None
